import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  DriveApi,
  googleDriveProvider,
  parseDriveConfig,
  redactDriveConfig,
  type DriveConfig,
  type DriveCredentials,
} from '../../src/storage/gdrive/index.js';
import { driveString } from '../../src/storage/gdrive/query.js';
import { StorageError, type ObjectWriter, type StorageProvider } from '../../src/storage/provider.js';
import { retryingProvider } from '../../src/storage/retry.js';
import { parseDriveQuery, startFakeDrive, type FakeDrive } from '../helpers/fakedrive.js';
import { listAll, readAll, storageConformance } from './conformance.js';

const MB = 1024 * 1024;

function configFor(drive: FakeDrive, kind: 'oauth' | 'service_account', extra: Partial<DriveConfig> = {}): DriveConfig {
  return {
    folder_id: drive.folderId,
    credentials: kind === 'oauth' ? drive.oauthCredentials : drive.serviceAccountCredentials,
    api_base: drive.apiBase,
    token_uri: drive.tokenUri,
    chunk_size_mb: 1,
    request_timeout_ms: 10_000,
    ...extra,
  };
}

for (const kind of ['oauth', 'service_account'] as const) {
  storageConformance(`google_drive (${kind === 'oauth' ? 'oauth' : 'service account'})`, async () => {
    const drive = await startFakeDrive();
    return { provider: googleDriveProvider(configFor(drive, kind)), cleanup: () => drive.close() };
  });
}

/** Run `fn` against a fresh fake Drive and a provider on it. */
async function withDrive(
  fn: (drive: FakeDrive, provider: StorageProvider) => Promise<void>,
  extra: Partial<DriveConfig> = {},
  kind: 'oauth' | 'service_account' = 'oauth',
): Promise<void> {
  const drive = await startFakeDrive();
  try {
    await fn(drive, googleDriveProvider(configFor(drive, kind, extra)));
  } finally {
    await drive.close();
  }
}

async function writeAndFinish(writer: ObjectWriter, data: Buffer | Readable): Promise<void> {
  await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, writer.stream);
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const permanent = (e: unknown): boolean => e instanceof StorageError && e.permanent;
const transient = (e: unknown): boolean => e instanceof StorageError && !e.permanent;

/** Rejects with what `p` rejects with, asserting it took less than `ms`. */
async function rejectsWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  const started = Date.now();
  try {
    await p;
  } catch (err) {
    assert.ok(Date.now() - started < ms, `took ${Date.now() - started} ms`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('google drive storage', () => {
  test('a 20 MB upload goes in 1 MB chunks, holds at most two chunks, and reads back identical', () =>
    withDrive(async (drive, provider) => {
      const payload = randomBytes(20 * MB);
      const piece = 100_000;
      let produced = 0;
      let worstLag = 0;
      async function* source(): AsyncGenerator<Buffer> {
        for (let i = 0; i < payload.length; i += piece) {
          // What the provider took but Drive has not got yet is in its memory.
          worstLag = Math.max(worstLag, produced - drive.stats.bytesReceived);
          produced += Math.min(piece, payload.length - i);
          yield payload.subarray(i, i + piece);
        }
      }
      const key = 'org/db/branch/x/dump.zst';
      const writer = await provider.create(key);
      await writeAndFinish(writer, Readable.from(source()));
      await writer.commit();
      assert.equal(drive.stats.chunkPuts, 20);
      // One chunk filling, one in flight, plus the stream's own 256 KiB buffer and a piece.
      assert.ok(worstLag <= 2 * MB + 256 * 1024 + 2 * piece, `lag ${worstLag}`);
      assert.deepEqual(await provider.stat(key), { key, size: payload.length });
      const back = await readAll(await provider.read(key));
      assert.equal(md5(back), md5(payload));
      assert.deepEqual(drive.paths(), ['org/', 'org/db/', 'org/db/branch/', 'org/db/branch/x/', 'org/db/branch/x/dump.zst']);
    }));

  test('quarter-MiB chunks, and sizes on and around chunk boundaries', () =>
    withDrive(
      async (drive, provider) => {
        for (const size of [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * 256 * 1024]) {
          const payload = randomBytes(size);
          await provider.put(`sizes/${size}`, payload);
          assert.ok((await readAll(await provider.read(`sizes/${size}`))).equals(payload), `size ${size}`);
        }
        // The empty object is made by the upload's only request: "bytes */0", no body.
        assert.equal(drive.stats.chunkPuts, 0 + 1 + 1 + 1 + 2 + 3);
        assert.equal(drive.stats.statusQueries, 1);
      },
      { chunk_size_mb: 0.25 },
    ));

  test('before commit only a marked partial file exists; commit renames it', () =>
    withDrive(async (drive, provider) => {
      const writer = await provider.create('a/b.bin');
      await writeAndFinish(writer, randomBytes(3 * MB + 5));
      const paths = drive.paths();
      assert.equal(paths.length, 2);
      assert.match(paths[1], /^a\/\.b\.bin\.partial-[0-9a-f]{16}$/);
      assert.deepEqual(drive.filesAt(paths[1])[0].appProperties, { strongbox_partial: '1' });
      assert.equal(await provider.stat('a/b.bin'), null);
      assert.deepEqual(await listAll(provider, ''), []);
      await writer.commit();
      assert.deepEqual(drive.paths(), ['a/', 'a/b.bin']);
      const [file] = drive.filesAt('a/b.bin');
      assert.deepEqual(Object.keys(file.appProperties), ['strongbox_committed']);
    }));

  test('a replaced object is never missing: the new one is renamed in, then the old one removed', () =>
    withDrive(async (drive, provider) => {
      await provider.put('r/obj', Buffer.from('old'));
      const writer = await provider.create('r/obj');
      await writeAndFinish(writer, Buffer.from('new!'));
      assert.equal((await readAll(await provider.read('r/obj'))).toString(), 'old');
      await writer.commit();
      assert.equal((await readAll(await provider.read('r/obj'))).toString(), 'new!');
      assert.deepEqual(drive.paths(), ['r/', 'r/obj']);
    }));

  test('of several files with one name (a cleanup that failed), the newest committed is the object', () =>
    withDrive(async (drive, provider) => {
      await provider.put('d/obj', Buffer.from('current'));
      drive.addFile('d', 'obj', Buffer.from('older'), { appProperties: { strongbox_committed: '1000' } });
      drive.addFile('d', 'obj', Buffer.from('made by hand'));
      assert.equal((await readAll(await provider.read('d/obj'))).toString(), 'current');
      assert.deepEqual(await listAll(provider, ''), [['d/obj', 7]]);
      await provider.delete('d/obj');
      assert.deepEqual(drive.paths(), ['d/']);
    }));

  test('Google Docs files, folders and foreign partial files are not objects', () =>
    withDrive(async (drive, provider) => {
      await provider.put('k/real', Buffer.from('x'));
      drive.addFile('k', 'notes', null, { mimeType: 'application/vnd.google-apps.document' });
      drive.addFile('k', '.real.partial-0123456789abcdef', Buffer.from('half'));
      assert.deepEqual(await listAll(provider, ''), [['k/real', 1]]);
      assert.equal(await provider.stat('k'), null);
      assert.equal(await provider.stat('k/notes'), null);
      await assert.rejects(provider.read('k'), (e) => e instanceof StorageError && e.notFound);
      await provider.removePartials('k/real');
      assert.deepEqual(drive.paths(), ['k/', 'k/notes', 'k/real']);
    }));

  test('listings page through small pages', () =>
    withDrive(async (drive, provider) => {
      const keys = Array.from({ length: 11 }, (_, i) => `many/${String(i).padStart(2, '0')}`);
      for (const key of keys) await provider.put(key, Buffer.from(key));
      assert.deepEqual(
        (await listAll(provider, 'many/')).map(([k]) => k),
        keys,
      );
      assert.ok(drive.stats.requests.some((r) => r.includes('pageToken=')));
    }));

  test('writers racing to make one folder end up in a single folder', () =>
    withDrive(async (drive, provider) => {
      const other = googleDriveProvider(configFor(drive, 'service_account'));
      await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? provider : other).put(`race/sub/${i}`, Buffer.from(String(i)))));
      assert.deepEqual(drive.paths(), ['race/', 'race/sub/', ...Array.from({ length: 8 }, (_, i) => `race/sub/${i}`)]);
      assert.equal((await listAll(other, 'race/')).length, 8);
    }));

  test('an access token that expires mid-upload is refreshed and the upload goes on', () =>
    withDrive(async (drive, provider) => {
      const payload = randomBytes(6 * MB);
      const writer = await provider.create('t/dump');
      async function* source(): AsyncGenerator<Buffer> {
        for (let i = 0; i < payload.length; i += MB / 2) {
          if (i === 3 * MB) drive.expireTokens();
          yield payload.subarray(i, i + MB / 2);
        }
      }
      await writeAndFinish(writer, Readable.from(source()));
      await writer.commit();
      assert.ok(drive.stats.unauthorized >= 1);
      assert.equal(drive.stats.tokenRequests, 2);
      assert.ok((await readAll(await provider.read('t/dump'))).equals(payload));
    }));

  test('a token is renewed shortly before it expires, without a 401', async () => {
    const drive = await startFakeDrive({ tokenLifetimeSeconds: 2 });
    try {
      for (const kind of ['oauth', 'service_account'] as const) {
        const provider = googleDriveProvider(configFor(drive, kind));
        const before = drive.stats.tokenRequests;
        assert.equal(await provider.stat('x'), null);
        assert.equal(await provider.stat('x'), null);
        assert.equal(drive.stats.tokenRequests, before + 1, 'cached');
        await new Promise((r) => setTimeout(r, 1600));
        assert.equal(await provider.stat('x'), null);
        assert.equal(drive.stats.tokenRequests, before + 2, 'renewed');
      }
      assert.equal(drive.stats.unauthorized, 0);
    } finally {
      await drive.close();
    }
  });

  test('names with quotes, spaces and Unicode; backslashes are refused', () =>
    withDrive(async (drive, provider) => {
      const keys = ["it's/o'brien's \"dump\".zst", "''/'", 'spaced out/ü ñ 日本', 'x/a\'b"c'];
      for (const key of keys) await provider.put(key, Buffer.from(key));
      for (const key of keys) {
        assert.equal((await readAll(await provider.read(key))).toString(), key);
        assert.deepEqual(await provider.stat(key), { key, size: Buffer.byteLength(key) });
      }
      assert.deepEqual((await listAll(provider, '')).map(([k]) => k), [...keys].sort());
      assert.deepEqual((await listAll(provider, "it's/")).map(([k]) => k), [keys[0]]);
      assert.ok(drive.stats.queries.some((q) => q.includes("name = 'it\\'s'")));
      await assert.rejects(provider.put('a\\b', Buffer.from('x')), permanent);
      for (const key of keys) await provider.delete(key);
      assert.deepEqual(await listAll(provider, ''), []);
    }));

  test('query string literals escape quotes and backslashes', () => {
    for (const s of ["it's", 'back\\slash', "\\'", "'\\", '\\\\', 'trailing\\', "''", 'plain']) {
      const literal = driveString(s);
      assert.deepEqual(parseDriveQuery(`name = ${literal} and 'p' in parents and trashed = false`), [
        { field: 'name', op: '=', value: s },
        { field: 'parents', op: 'in', value: 'p' },
        { field: 'trashed', op: '=', value: false },
      ]);
    }
    assert.equal(driveString("a'b\\c"), "'a\\'b\\\\c'");
    assert.throws(() => parseDriveQuery("name = 'it's'"));
  });

  test('failed chunks are retried, resuming from what Drive says it holds', () =>
    withDrive(async (drive, provider) => {
      const payload = randomBytes(5 * MB + 3);
      const writer = await provider.create('f/dump');
      drive.failNextChunks(1);
      drive.failNextChunks(2, { keep: 'half' });
      drive.failNextChunks(1, { status: 503 });
      await writeAndFinish(writer, payload);
      await writer.commit();
      assert.equal(drive.stats.failedChunks, 4);
      assert.ok(drive.stats.statusQueries >= 4);
      assert.ok((await readAll(await provider.read('f/dump'))).equals(payload));
    }));

  test('a chunk that keeps failing fails the write as transient, and abort leaves nothing', () =>
    withDrive(async (drive, provider) => {
      const writer = await provider.create('f/doomed');
      drive.failNextChunks(100);
      const err = await rejectsWithin(writeAndFinish(writer, randomBytes(3 * MB)), 30_000);
      assert.ok(transient(err), String(err));
      await assert.rejects(writer.commit(), StorageError);
      await writer.abort();
      assert.deepEqual(drive.paths(), ['f/']);
    }));

  test('abort mid-upload cancels the session', () =>
    withDrive(async (drive, provider) => {
      const writer = await provider.create('m/dump');
      await new Promise<void>((resolve) => writer.stream.write(randomBytes(3 * MB), () => resolve()));
      await writer.abort();
      await writer.abort();
      assert.ok(drive.stats.requests.some((r) => r.startsWith('DELETE /upload/drive/v3/files')));
      assert.deepEqual(drive.paths(), ['m/']);
    }));

  test('a server that stops answering gives a transient error within the request timeout', () =>
    withDrive(
      async (drive, provider) => {
        await provider.put('g/ok', Buffer.from('ok'));
        drive.goAway('hang');
        assert.ok(transient(await rejectsWithin(provider.stat('g/ok'), 3000)));
        assert.ok(transient(await rejectsWithin(provider.put('g/new', Buffer.from('x')), 3000)));
        assert.ok(transient(await rejectsWithin(provider.read('g/ok'), 3000)));
        drive.comeBack();
        assert.equal((await readAll(await provider.read('g/ok'))).toString(), 'ok');
      },
      { request_timeout_ms: 300 },
    ));

  for (const mode of ['hang', 'reset'] as const) {
    test(`a server that goes away mid-upload (${mode}) fails the write as transient within a bounded time`, () =>
      withDrive(
        async (drive, provider) => {
          const writer = await provider.create('g/big');
          async function* source(): AsyncGenerator<Buffer> {
            for (let i = 0; i < 8; i++) {
              if (i === 3) drive.goAway(mode);
              yield randomBytes(MB);
            }
          }
          const err = await rejectsWithin(writeAndFinish(writer, Readable.from(source())), 20_000);
          assert.ok(transient(err), String(err));
          const started = Date.now();
          await writer.abort();
          assert.ok(Date.now() - started < 5000);
          drive.comeBack();
          assert.deepEqual(await listAll(provider, ''), []);
        },
        { request_timeout_ms: 300 },
      ));
  }

  test('a download that stalls fails as transient after the request timeout', () =>
    withDrive(
      async (drive, provider) => {
        const payload = randomBytes(2 * MB);
        await provider.put('s/obj', payload);
        drive.stallNextDownload();
        const stream = await provider.read('s/obj');
        assert.ok(transient(await rejectsWithin(readAll(stream), 3000)));
        assert.ok((await readAll(await provider.read('s/obj'))).equals(payload));
      },
      { request_timeout_ms: 500 },
    ));

  test('a cached folder deleted behind the provider is a transient error, and a retry makes it again', () =>
    withDrive(async (drive, provider) => {
      await provider.put('x/y/obj', Buffer.from('1'));
      drive.remove('x');
      await assert.rejects(provider.put('x/y/other', Buffer.from('2')), (e) => transient(e) && /deleted meanwhile/.test((e as Error).message));
      await provider.put('x/y/other', Buffer.from('2'));
      assert.deepEqual(drive.paths(), ['x/', 'x/y/', 'x/y/other']);
      drive.remove('x/y');
      const retrying = retryingProvider(provider, { baseMs: 10 });
      assert.equal(await retrying.stat('x/y/other'), null);
      await retrying.put('x/y/again', Buffer.from('3'));
      assert.deepEqual(await listAll(provider, ''), [['x/y/again', 1]]);
    }));

  test('where deleting for good is refused (a shared drive content manager), files go to the trash', () =>
    withDrive(async (drive, provider) => {
      await provider.put('t/obj', Buffer.from('x'));
      drive.failNext(1, { method: 'DELETE' }, { status: 403, reason: 'insufficientFilePermissions' });
      await provider.delete('t/obj');
      assert.equal(drive.filesAt('t/obj').length, 0);
      assert.equal(await provider.stat('t/obj'), null);
      assert.ok(drive.stats.requests.some((r) => r.startsWith('PATCH /drive/v3/files/')));
    }));

  test('dropped connections give transient errors, which the retry wrapper gets past', () =>
    withDrive(async (drive, provider) => {
      await provider.put('n/obj', Buffer.from('x'));
      drive.goAway('reset');
      assert.ok(transient(await rejectsWithin(provider.stat('n/obj'), 3000)));
      drive.comeBack();
      drive.failNext(2, { method: 'GET', path: '/drive/v3/files' }, { status: 503, reason: 'backendError' });
      const retrying = retryingProvider(provider, { baseMs: 10 });
      assert.deepEqual(await retrying.stat('n/obj'), { key: 'n/obj', size: 1 });
    }));

  test('which API errors are permanent', () =>
    withDrive(async (drive, provider) => {
      const cases: Array<[number, string, boolean]> = [
        [400, 'badRequest', true],
        [403, 'storageQuotaExceeded', true],
        [403, 'insufficientFilePermissions', true],
        [403, 'rateLimitExceeded', false],
        [403, 'userRateLimitExceeded', false],
        [429, 'rateLimitExceeded', false],
        [500, 'backendError', false],
        [503, 'backendError', false],
      ];
      for (const [status, reason, isPermanent] of cases) {
        drive.failNext(1, { method: 'POST', path: '/upload/' }, { status, reason, message: 'nope' });
        const err = await provider.put('e/obj', Buffer.from('x')).catch((e: unknown) => e);
        assert.ok(err instanceof StorageError, `${status} ${reason}`);
        assert.equal(err.permanent, isPermanent, `${status} ${reason}: ${err.message}`);
        assert.equal(err.notFound, false);
        assert.match(err.message, new RegExp(`HTTP ${status} ${reason}`));
      }
    }));

  test('a missing or unshared root folder is a permanent error naming folder_id', () =>
    withDrive(async (drive) => {
      const provider = googleDriveProvider(configFor(drive, 'oauth', { folder_id: 'doesNotExist123' }));
      for (const call of [() => provider.put('a/b', Buffer.from('x')), () => provider.stat('a'), () => listAll(provider, '')]) {
        await assert.rejects(call(), (e) => permanent(e) && /folder_id doesNotExist123 does not exist or is not shared/.test((e as Error).message));
      }
    }));

  test('secrets never show in errors, describe() or the redacted configuration', async () => {
    const drive = await startFakeDrive();
    try {
      const sa = drive.serviceAccountCredentials;
      const oauth = drive.oauthCredentials;
      const keyLines = sa.private_key.split('\n').filter((l) => l.length > 20);
      const secrets = (): string[] => [oauth.client_secret, oauth.refresh_token, ...keyLines, ...drive.accessTokens()];
      const clean = (text: string): void => {
        for (const s of secrets()) assert.ok(!text.includes(s), `leaked ${s.slice(0, 12)}… in ${text}`);
      };
      const messages: string[] = [];
      const collect = async (p: Promise<unknown>): Promise<void> => {
        const err = await p.then(
          () => assert.fail('expected a rejection'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof StorageError);
        messages.push(err.message, String(err.stack));
      };

      // Wrong refresh token, wrong client secret, key of another account.
      const badOauth = googleDriveProvider(configFor(drive, 'oauth', { credentials: { ...oauth, refresh_token: 'refresh-wrong-0123456789' } }));
      await collect(badOauth.stat('x'));
      const badClient = googleDriveProvider(configFor(drive, 'oauth', { credentials: { ...oauth, client_secret: 'secret-wrong-0123456789' } }));
      await collect(badClient.put('x', Buffer.from('x')));
      const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const badSa = googleDriveProvider(configFor(drive, 'service_account', { credentials: { ...sa, private_key: otherKey } }));
      await collect(badSa.stat('x'));
      assert.ok(messages.some((m) => /invalid_grant: Token has been expired or revoked/.test(m)));
      assert.ok(messages.some((m) => /invalid_grant: Invalid JWT Signature/.test(m)));
      assert.ok(messages.some((m) => /invalid_client/.test(m)));
      for (const m of messages.slice()) {
        assert.ok(!m.includes('refresh-wrong-0123456789') && !m.includes('secret-wrong-0123456789'), m);
        assert.ok(!otherKey.split('\n').some((l) => l.length > 20 && m.includes(l)), m);
      }

      // A server that echoes the bearer token back in its error message.
      for (const kind of ['oauth', 'service_account'] as const) {
        const provider = googleDriveProvider(configFor(drive, kind));
        await provider.put('ok', Buffer.from('x'));
        drive.failNext(1, { method: 'GET' }, { status: 403, reason: 'forbidden', message: 'you sent $AUTHORIZATION' });
        await collect(provider.stat('ok'));
        assert.match(messages[messages.length - 2], /you sent Bearer \[redacted\]/);
        const d = provider.describe();
        assert.deepEqual(d, { provider: 'google_drive', folder_id: drive.folderId });
        messages.push(JSON.stringify(d), JSON.stringify(redactDriveConfig(configFor(drive, kind))));
      }
      assert.ok(drive.accessTokens().length >= 2);
      for (const m of messages) clean(m);

      assert.deepEqual(redactDriveConfig(parseDriveConfig(configFor(drive, 'service_account'))), {
        folder_id: drive.folderId,
        credentials: { type: 'service_account', client_email: sa.client_email, private_key: '[redacted]' },
        api_base: drive.apiBase,
        token_uri: drive.tokenUri,
        chunk_size_mb: 1,
        request_timeout_ms: 10_000,
      });
      assert.deepEqual(redactDriveConfig(configFor(drive, 'oauth')).credentials, {
        type: 'oauth',
        client_id: oauth.client_id,
        client_secret: '[redacted]',
        refresh_token: '[redacted]',
      });
      // A raw stored configuration: unknown fields are hidden too.
      assert.deepEqual(
        redactDriveConfig({ folder_id: 'f', password: 'p', credentials: { ...sa, private_key_id: 'k', project_id: 'p', extra: 'x' } }),
        {
          folder_id: 'f',
          password: '[redacted]',
          credentials: { type: 'service_account', client_email: sa.client_email, private_key: '[redacted]', private_key_id: '[redacted]', project_id: 'p', extra: '[redacted]' },
        },
      );
      assert.deepEqual(redactDriveConfig({ folder_id: 'f', credentials: 'oops' }), { folder_id: 'f', credentials: '[redacted]' });
    } finally {
      await drive.close();
    }
  });

  test('configuration: defaults, and errors that name the field without echoing secrets', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const sa: DriveCredentials = { type: 'service_account', client_email: 'a@b.iam.gserviceaccount.com', private_key: pem };
    const oauth: DriveCredentials = { type: 'oauth', client_id: 'id', client_secret: 'TOPSECRET-1', refresh_token: 'TOPSECRET-2' };

    assert.deepEqual(parseDriveConfig({ folder_id: 'abc_DEF-123', credentials: oauth }), {
      folder_id: 'abc_DEF-123',
      credentials: oauth,
      api_base: 'https://www.googleapis.com',
      token_uri: 'https://oauth2.googleapis.com/token',
      chunk_size_mb: 8,
      request_timeout_ms: 120_000,
    });
    // A Google key file pasted whole, its key with literal "\n" as environment variables have it.
    const keyFile = { ...sa, project_id: 'p', private_key_id: 'k', private_key: pem.replace(/\n/g, '\\n'), token_uri: 'https://oauth2.example.com/token' };
    const parsed = parseDriveConfig({ folder_id: 'f', credentials: keyFile });
    assert.deepEqual(parsed.credentials, { ...sa, token_uri: 'https://oauth2.example.com/token' });
    assert.equal(parsed.token_uri, 'https://oauth2.example.com/token');

    const bad: Array<[unknown, RegExp]> = [
      [null, /configuration must be an object/],
      [{ credentials: oauth }, /folder_id must be a non-empty string/],
      [{ folder_id: "a' or 'b", credentials: oauth }, /folder_id must be a Drive folder id/],
      [{ folder_id: 'f' }, /credentials must be an object/],
      [{ folder_id: 'f', credentials: { type: 'apikey' } }, /credentials\.type must be "oauth" or "service_account"/],
      [{ folder_id: 'f', credentials: { ...oauth, refresh_token: '' } }, /credentials\.refresh_token must be a non-empty string/],
      [{ folder_id: 'f', credentials: { ...sa, client_email: 3 } }, /credentials\.client_email/],
      [{ folder_id: 'f', credentials: { ...sa, private_key: 'TOPSECRET-3 not a key' } }, /credentials\.private_key must be an RSA private key/],
      [{ folder_id: 'f', credentials: oauth, api_base: 'http://drive.example.com' }, /api_base must be an https:\/\/ URL/],
      [{ folder_id: 'f', credentials: oauth, token_uri: 'https://u:TOPSECRET-4@example.com/t' }, /token_uri must not carry credentials/],
      [{ folder_id: 'f', credentials: oauth, chunk_size_mb: 1.1 }, /chunk_size_mb must be a multiple of 0\.25/],
      [{ folder_id: 'f', credentials: oauth, chunk_size_mb: 0 }, /chunk_size_mb/],
      [{ folder_id: 'f', credentials: oauth, chunk_size_mb: '8' }, /chunk_size_mb/],
      [{ folder_id: 'f', credentials: oauth, request_timeout_ms: -1 }, /request_timeout_ms/],
      [{ folder_id: 'f', credentials: oauth, chunksize: 8 }, /chunksize is not a known field/],
    ];
    for (const [raw, message] of bad) {
      assert.throws(
        () => parseDriveConfig(raw),
        (e) => permanent(e) && message.test((e as Error).message) && !/TOPSECRET/.test((e as Error).message),
        JSON.stringify(raw)?.slice(0, 80),
      );
    }
    assert.throws(() => googleDriveProvider({ folder_id: '', credentials: oauth }), permanent);
  });
});

// Against the real Google Drive, only when credentials for a scratch folder are given.
const realCredentials = process.env.STRONGBOX_TEST_GDRIVE_CREDENTIALS;
const realFolder = process.env.STRONGBOX_TEST_GDRIVE_FOLDER;
if (realCredentials && realFolder) {
  const base = parseDriveConfig({ folder_id: realFolder, credentials: JSON.parse(realCredentials) as unknown });
  const api = new DriveApi(base);
  // Each test gets its own new folder under the one given, deleted with everything in it after.
  storageConformance('google_drive (real Google Drive)', async () => {
    const folder = await api.createFolder(realFolder, `strongbox-test-${randomBytes(6).toString('hex')}`, 'make a test folder');
    return {
      provider: googleDriveProvider({ ...base, folder_id: folder.id, chunk_size_mb: 1 }),
      cleanup: () => api.delete(folder.id, 'remove the test folder'),
    };
  });
} else {
  test('google_drive against the real Google Drive', {
    skip: 'set STRONGBOX_TEST_GDRIVE_CREDENTIALS (credentials JSON) and STRONGBOX_TEST_GDRIVE_FOLDER (a scratch folder id) to run',
  }, () => {});
}
