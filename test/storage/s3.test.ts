import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { StorageError, type ObjectWriter, type StorageProvider } from '../../src/storage/provider.js';
import { retryingProvider } from '../../src/storage/retry.js';
import { parseS3Config, redactS3Config, s3Provider, type S3Config } from '../../src/storage/s3/index.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { listAll, readAll, storageConformance } from './conformance.js';

const MiB = 1024 * 1024;

let server: S3TestServer | null = null;
let starting: Promise<S3TestServer> | null = null;
/** One server for the whole file, started by whichever test needs it first. */
function s3(): Promise<S3TestServer> {
  starting ??= startS3Server().then((s) => (server = s));
  return starting;
}

let prefixes = 0;
function freshPrefix(): string {
  return `t${process.pid}-${++prefixes}-${randomBytes(3).toString('hex')}`;
}

function configFor(s: S3TestServer, extra: Record<string, unknown> = {}): S3Config {
  return parseS3Config({
    endpoint: s.endpoint,
    bucket: s.bucket,
    force_path_style: true,
    access_key_id: s.accessKeyId,
    secret_access_key: s.secretAccessKey,
    part_size_mb: 5,
    queue_size: 2,
    ...extra,
  });
}

/** The raw SDK against the server itself, to look behind the provider's back. */
function rawClient(s: S3TestServer): S3Client {
  return new S3Client({
    endpoint: s.directEndpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}

/** Unfinished multipart uploads under `prefix`, as ListMultipartUploads reports them. */
async function openUploads(s: S3TestServer, prefix: string): Promise<string[]> {
  const out = await rawClient(s).send(new ListMultipartUploadsCommand({ Bucket: s.bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

/** Remove every object and unfinished upload under `prefix`. */
async function clean(s: S3TestServer, provider: StorageProvider, prefix: string): Promise<void> {
  for await (const { key } of provider.list('')) await provider.delete(key);
  const client = rawClient(s);
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket: s.bucket, Prefix: `${prefix}/` }));
  for (const u of out.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: s.bucket, Key: u.Key, UploadId: u.UploadId }));
}

after(async () => {
  if (server) {
    // Every test cleans up after itself: nothing may be left half-uploaded.
    const left = server.openUploads();
    await server.close();
    assert.deepEqual(left, [], 'unfinished multipart uploads left behind');
  }
});

storageConformance('s3', async () => {
  const s = await s3();
  const prefix = freshPrefix();
  const provider = s3Provider(configFor(s, { prefix }));
  return { provider, cleanup: () => clean(s, provider, prefix) };
});

/** `total` random bytes in chunks of `chunk`, made as they are read; `digest()` is their sha256 once all were read. */
function randomSource(total: number, chunk = 256 * 1024): { stream: Readable; digest(): string } {
  const hash = createHash('sha256');
  let left = total;
  const stream = new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const data = randomBytes(Math.min(chunk, left));
      left -= data.length;
      hash.update(data);
      this.push(data);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Write the bytes and wait for 'finish' (the parts are all uploaded then), without committing. */
async function writeAll(writer: ObjectWriter, data: Buffer | Readable): Promise<void> {
  await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, writer.stream);
}

async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function gcFunction(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  // Without --expose-gc on the command line: the flag still works when set before use.
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('s3 storage', () => {
  let s: S3TestServer;
  let prefix: string;
  let provider: StorageProvider;
  before(async () => {
    s = await s3();
  });

  /** A provider under a fresh prefix; everything it made is removed after `fn`. */
  async function withProvider(extra: Record<string, unknown>, fn: (p: StorageProvider) => Promise<void>): Promise<void> {
    prefix = freshPrefix();
    provider = s3Provider(configFor(s, { prefix, ...extra }));
    s.restore();
    s.failParts(0);
    s.resetRequests();
    try {
      await fn(provider);
    } finally {
      s.restore();
      s.failParts(0);
      await clean(s, s3Provider(configFor(s, { prefix })), prefix);
    }
  }

  test('40 MB with 5 MB parts, 2 at a time: multipart, read back identical', () =>
    withProvider({ part_size_mb: 5, queue_size: 2 }, async (p) => {
      const source = randomSource(40 * MiB, 100_003);
      const writer = await p.create('big/dump.bin');
      await writeAll(writer, source.stream);
      await writer.commit();
      assert.deepEqual(await p.stat('big/dump.bin'), { key: 'big/dump.bin', size: 40 * MiB });
      assert.equal(await sha256Of(await p.read('big/dump.bin')), source.digest());
      assert.equal(s.requests.CreateMultipartUpload, 1);
      assert.equal(s.requests.UploadPart, 8);
      assert.equal(s.requests.CompleteMultipartUpload, 1);
      assert.equal(s.requests.PutObject, undefined);
      assert.ok(s.peaks.UploadPart <= 2, `at most queue_size parts in flight, saw ${s.peaks.UploadPart}`);
      assert.deepEqual(await openUploads(s, prefix), []);
    }));

  test('an object of at most one part is one PutObject at commit', () =>
    withProvider({}, async (p) => {
      const exact = randomBytes(5 * MiB);
      const writer = await p.create('small/exact');
      await writeAll(writer, exact);
      assert.equal(s.requests.PutObject, undefined, 'nothing sent before commit');
      await writer.commit();
      const empty = await p.create('small/empty');
      await writeAll(empty, Readable.from([]));
      await empty.commit();
      assert.equal(s.requests.PutObject, 2);
      assert.equal(s.requests.CreateMultipartUpload, undefined);
      assert.ok((await readAll(await p.read('small/exact'))).equals(exact));
      assert.deepEqual(await p.stat('small/empty'), { key: 'small/empty', size: 0 });
    }));

  test('parts are uploaded as bytes arrive, and nothing is visible before commit', () =>
    withProvider({}, async (p) => {
      const payload = randomBytes(12 * MiB);
      const writer = await p.create('pending/dump');
      writer.stream.write(payload.subarray(0, 11 * MiB));
      await waitFor('two parts uploaded', () => s.openUploads().some((u) => u.key === `${prefix}/pending/dump` && u.parts === 2));
      assert.equal(await p.stat('pending/dump'), null);
      writer.stream.end(payload.subarray(11 * MiB));
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      assert.equal(await p.stat('pending/dump'), null);
      assert.deepEqual(await listAll(p, ''), []);
      await assert.rejects(p.read('pending/dump'), (e) => e instanceof StorageError && e.notFound);
      assert.deepEqual(await openUploads(s, prefix), [`${prefix}/pending/dump`]);
      await writer.commit();
      assert.deepEqual(await listAll(p, ''), [['pending/dump', 12 * MiB]]);
      assert.ok((await readAll(await p.read('pending/dump'))).equals(payload));
      assert.deepEqual(await openUploads(s, prefix), []);
    }));

  test('abort leaves no multipart upload behind, after the end or with parts in flight', () =>
    withProvider({}, async (p) => {
      const ended = await p.create('aborted/ended');
      await writeAll(ended, randomBytes(12 * MiB));
      assert.deepEqual(await openUploads(s, prefix), [`${prefix}/aborted/ended`]);
      await ended.abort();
      await ended.abort();
      assert.deepEqual(await openUploads(s, prefix), []);

      const midway = await p.create('aborted/midway');
      midway.stream.write(randomBytes(16 * MiB));
      await waitFor('parts in flight', () => (s.requests.UploadPart ?? 0) >= 2);
      await midway.abort();
      assert.deepEqual(await openUploads(s, prefix), []);
      await assert.rejects(midway.commit(), StorageError);
      assert.deepEqual(await listAll(p, ''), []);
    }));

  test('removePartials aborts the uploads a dead writer left, and only that key\'s', () =>
    withProvider({}, async (p) => {
      await p.put('crash/dump', Buffer.from('committed earlier'));
      const dead = await p.create('crash/dump');
      const other = await p.create('crash/dump.other');
      // The dead writer's own parts may now fail with NoSuchUpload: nobody listens to it.
      dead.stream.on('error', () => {});
      dead.stream.write(randomBytes(6 * MiB));
      dead.stream.write(randomBytes(6 * MiB));
      other.stream.write(randomBytes(6 * MiB));
      await waitFor('both uploads started', () => s.openUploads().filter((u) => u.key.startsWith(`${prefix}/crash/`) && u.parts > 0).length === 2);
      // Another process (a new provider) cleans up after the dead one.
      await s3Provider(configFor(s, { prefix })).removePartials('crash/dump');
      assert.deepEqual(await openUploads(s, prefix), [`${prefix}/crash/dump.other`]);
      assert.equal((await readAll(await p.read('crash/dump'))).toString(), 'committed earlier');
      await p.removePartials('crash/dump');
      await other.abort();
      await dead.abort();
      assert.deepEqual(await openUploads(s, prefix), []);
    }));

  test('two failed part uploads (HTTP 500) are retried and the object is identical', () =>
    withProvider({}, async (p) => {
      const source = randomSource(18 * MiB);
      s.failParts(2);
      const writer = await p.create('flaky/dump');
      await writeAll(writer, source.stream);
      await writer.commit();
      assert.equal(s.requests.UploadPart, 4 + 2);
      assert.equal(await sha256Of(await p.read('flaky/dump')), source.digest());
    }));

  test('a failing complete (HTTP 503) is retried by the SDK', () =>
    withProvider({}, async (p) => {
      const payload = randomBytes(6 * MiB);
      s.fail('CompleteMultipartUpload', 1, 503, 'SlowDown');
      const writer = await p.create('flaky/complete');
      await writeAll(writer, payload);
      await writer.commit();
      assert.equal(s.requests.CompleteMultipartUpload, 2);
      assert.ok((await readAll(await p.read('flaky/complete'))).equals(payload));
    }));

  test('parts failing past max_attempts fail the stream (not permanent) and abort the upload', () =>
    withProvider({ max_attempts: 2 }, async (p) => {
      s.failParts(100);
      const writer = await p.create('broken/dump');
      await assert.rejects(writeAll(writer, randomBytes(12 * MiB)), (e) => e instanceof StorageError && !e.permanent && /upload a part/.test(e.message));
      await assert.rejects(writer.commit(), StorageError);
      await writer.abort();
      assert.deepEqual(await openUploads(s, prefix), []);
    }));

  test('a server gone away fails writes within a bounded time, not permanently; abort can be retried', () =>
    withProvider({ connect_timeout_ms: 1000, request_timeout_ms: 1000, max_attempts: 3 }, async (p) => {
      const writer = await p.create('gone/dump');
      writer.stream.on('error', () => {});
      writer.stream.write(randomBytes(6 * MiB));
      await waitFor('the first part', () => s.openUploads().some((u) => u.key === `${prefix}/gone/dump` && u.parts === 1));
      s.goAway();
      const started = Date.now();
      await assert.rejects(
        pipeline(randomSource(20 * MiB).stream, writer.stream),
        (e) => e instanceof StorageError && !e.permanent,
      );
      assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms`);
      for (const call of [() => p.put('gone/x', Buffer.from('x')), () => p.stat('gone/x'), () => p.read('gone/x'), () => p.delete('gone/x'), () => listAll(p, '')]) {
        await assert.rejects(call(), (e) => e instanceof StorageError && !e.permanent && !e.notFound);
      }
      // The upload could not be aborted while the server is away: abort says so, and works later.
      await assert.rejects(writer.abort(), (e) => e instanceof StorageError && !e.permanent);
      s.restore();
      await writer.abort();
      assert.deepEqual(await openUploads(s, prefix), []);
    }));

  test('a server that stops answering fails calls after request_timeout_ms, not permanently', () =>
    withProvider({ request_timeout_ms: 300, max_attempts: 2 }, async (p) => {
      s.stall();
      const started = Date.now();
      await assert.rejects(p.put('stall/x', Buffer.from('x')), (e) => e instanceof StorageError && !e.permanent);
      const writer = await p.create('stall/dump');
      await assert.rejects(writeAll(writer, randomBytes(6 * MiB)), (e) => e instanceof StorageError && !e.permanent);
      assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms`);
      s.restore();
      await writer.abort();
      await p.removePartials('stall/dump');
    }));

  test('memory stays bounded: 64 MB through 5 MB parts, 2 at a time', (t) =>
    withProvider({ part_size_mb: 5, queue_size: 2 }, async (p) => {
      const gc = gcFunction();
      const live = () => {
        const m = process.memoryUsage();
        return m.heapUsed + m.arrayBuffers;
      };
      gc();
      gc();
      const baseline = live();
      let peak = 0;
      const sampler = setInterval(() => {
        // Twice: V8 frees the backing stores of dead buffers after a collection, in the
        // background; the second collection waits for the first one's to be freed.
        gc();
        gc();
        peak = Math.max(peak, live() - baseline);
      }, 100);
      const source = randomSource(64 * MiB, 64 * 1024);
      try {
        const writer = await p.create('memory/dump');
        await writeAll(writer, source.stream);
        await writer.commit();
      } finally {
        clearInterval(sampler);
      }
      // Parts in flight (2 × 5) + the part being filled + one being cut + the stream's and
      // sockets' buffers: about 20 MB; 40 MB leaves room for noise.
      t.diagnostic(`peak growth ${(peak / MiB).toFixed(1)} MiB`);
      assert.ok(peak < 40 * MiB, `grew by ${(peak / MiB).toFixed(1)} MiB`);
      assert.ok(peak > 5 * MiB, `the sampler saw the parts (${(peak / MiB).toFixed(1)} MiB)`);
      assert.equal(await sha256Of(await p.read('memory/dump')), source.digest());
    }));

  test('the writer stops accepting bytes while queue_size parts are uploading', () =>
    withProvider({ part_size_mb: 5, queue_size: 2 }, async (p) => {
      s.stall();
      const writer = await p.create('backpressure/dump');
      let accepted = 0;
      const source = randomSource(100 * MiB, 64 * 1024);
      source.stream.on('data', (chunk: Buffer) => (accepted += chunk.length));
      const flow = pipeline(source.stream, writer.stream).catch(() => {});
      await waitFor('two parts cut', () => accepted > 10 * MiB);
      await sleep(500);
      // 2 parts uploading + 1 filling + the stream's own buffers, never the whole source.
      assert.ok(accepted < 20 * MiB, `accepted ${(accepted / MiB).toFixed(1)} MiB`);
      // The abort waits for the (uncancellable) CreateMultipartUpload, which the restored
      // server then answers.
      const aborting = writer.abort();
      s.restore();
      await aborting;
      await flow;
      await p.removePartials('backpressure/dump');
    }));

  test('errors: wrong credentials and a missing bucket are permanent, and no credential is ever shown', async () => {
    const session = `SESSION${randomBytes(16).toString('hex')}`;
    const wrongSecret = `WRONG${randomBytes(16).toString('hex')}`;
    const secrets = [s.secretAccessKey, wrongSecret, session, s.accessKeyId];
    const shown = (e: unknown) => `${String(e)}\n${inspect(e, { depth: 10 })}\n${JSON.stringify(e)}`;
    const noSecrets = (text: string) => {
      for (const secret of secrets) assert.ok(!text.includes(secret), `a credential appears in: ${text}`);
    };

    const wrong = s3Provider(configFor(s, { secret_access_key: wrongSecret, session_token: session }));
    for (const call of [() => wrong.put('x', Buffer.from('x')), () => wrong.read('x'), () => listAll(wrong, '')]) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof StorageError && e.permanent && !e.notFound, String(e));
        assert.match(e.message, /access denied \(SignatureDoesNotMatch\)/);
        noSecrets(shown(e));
        return true;
      });
    }
    const writer = await wrong.create('x/dump');
    await assert.rejects(writeAll(writer, randomBytes(6 * MiB)), (e) => {
      assert.ok(e instanceof StorageError && e.permanent, String(e));
      noSecrets(shown(e));
      return true;
    });
    await writer.abort();

    const unknownKey = s3Provider(configFor(s, { access_key_id: 'AKIANOTKNOWN0000', secret_access_key: wrongSecret }));
    await assert.rejects(unknownKey.put('x', Buffer.from('x')), (e) => e instanceof StorageError && e.permanent && /InvalidAccessKeyId/.test(e.message) && !e.message.includes('AKIANOTKNOWN0000'));

    const noBucket = s3Provider(configFor(s, { bucket: 'no-such-bucket' }));
    for (const call of [() => noBucket.put('x', Buffer.from('x')), () => noBucket.read('x'), () => noBucket.delete('x'), () => listAll(noBucket, '')]) {
      await assert.rejects(call(), (e) => e instanceof StorageError && e.permanent && /bucket "no-such-bucket" does not exist/.test(e.message));
    }

    for (const provider of [wrong, s3Provider(configFor(s, { session_token: session }))]) {
      const described = JSON.stringify(provider.describe());
      noSecrets(described);
      assert.deepEqual(provider.describe(), { provider: 's3', endpoint: s.endpoint, region: 'us-east-1', bucket: s.bucket, prefix: '' });
    }
  });

  test('throttling and server errors are not permanent; the retry wrapper gets past them', () =>
    withProvider({}, async (p) => {
      s.fail('PutObject', 1, 503, 'SlowDown');
      await assert.rejects(p.put('t/x', Buffer.from('x')), (e) => e instanceof StorageError && !e.permanent && /SlowDown/.test(e.message));
      s.fail('HeadObject', 1, 500);
      await assert.rejects(p.stat('t/x'), (e) => e instanceof StorageError && !e.permanent);
      s.fail('HeadObject', 1, 403);
      await assert.rejects(p.stat('t/x'), (e) => e instanceof StorageError && e.permanent && /access denied/.test(e.message));
      s.fail('PutObject', 2, 500);
      await retryingProvider(p, { baseMs: 1 }).put('t/x', Buffer.from('after two tries'));
      assert.equal(s.requests.PutObject, 4);
      assert.equal((await readAll(await p.read('t/x'))).toString(), 'after two tries');
    }));

  test('a prefix isolates providers; list pages through and skips what is not a valid key', async () => {
    const paged = await startS3Server({ pageSize: 2 });
    try {
      const a = s3Provider(configFor(paged, { prefix: 'team/a/' }));
      const b = s3Provider(configFor(paged, { prefix: 'team/b' }));
      const root = s3Provider(configFor(paged));
      const keys = ['k1', 'k2', 'sub/k3', 'sub/k4', 'z'];
      for (const key of keys) await a.put(key, Buffer.from(key));
      await b.put('k1', Buffer.from('other'));
      // Written by another tool: a folder marker and a key with an empty segment.
      await root.put('team/a/x', Buffer.from('x'));
      const raw = rawClient(paged);
      await raw.send(new PutObjectCommand({ Bucket: paged.bucket, Key: 'team/a/folder/', Body: Buffer.alloc(0), ContentLength: 0 }));
      await raw.send(new PutObjectCommand({ Bucket: paged.bucket, Key: 'team/a/bad//key', Body: Buffer.from('x'), ContentLength: 1 }));

      assert.deepEqual((await listAll(a, '')).map(([k]) => k), [...keys, 'x'].sort());
      assert.deepEqual(await listAll(a, 'sub/'), [['sub/k3', 6], ['sub/k4', 6]]);
      assert.deepEqual(await listAll(b, ''), [['k1', 5]]);
      assert.ok(paged.requests.ListObjectsV2 >= 4, 'several pages');
      assert.equal((await readAll(await b.read('k1'))).toString(), 'other');
      assert.equal(await b.stat('k2'), null);
      assert.deepEqual(await root.stat('team/a/sub/k3'), { key: 'team/a/sub/k3', size: 6 });
      assert.deepEqual(a.describe(), { provider: 's3', endpoint: paged.endpoint, region: 'us-east-1', bucket: paged.bucket, prefix: 'team/a' });

      // removePartials pages through ListMultipartUploads too.
      const writers: ObjectWriter[] = [];
      for (let i = 0; i < 5; i++) {
        const w = await a.create(i % 2 === 0 ? 'dead' : `dead${i}`);
        w.stream.on('error', () => {});
        w.stream.write(randomBytes(6 * MiB));
        writers.push(w);
      }
      await waitFor('five uploads', () => paged.openUploads().filter((u) => u.parts === 1).length === 5);
      await a.removePartials('dead');
      assert.deepEqual(paged.openUploads().map((u) => u.key).sort(), ['team/a/dead1', 'team/a/dead3']);
      for (const w of writers) await w.abort();
      assert.deepEqual(paged.openUploads(), []);
    } finally {
      await paged.close();
    }
  });

  test('keys with spaces, unicode and URL syntax round-trip', () =>
    withProvider({}, async (p) => {
      const keys = ['org/my db/back up+1', 'org/ünïcødé/✓ 日本', 'org/odd/100% ?x=1&y#z', "org/odd/quote's (1) [2] {3} ~!@$^*;:,=", 'org/odd/-._'];
      for (const key of keys) await p.put(key, Buffer.from(key));
      const big = randomBytes(6 * MiB);
      const writer = await p.create('org/odd/multi part+ü ?#');
      await writeAll(writer, big);
      await writer.commit();
      assert.deepEqual(
        (await listAll(p, 'org/')).map(([k]) => k),
        [...keys, 'org/odd/multi part+ü ?#'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
      for (const key of keys) {
        assert.deepEqual(await p.stat(key), { key, size: Buffer.byteLength(key) });
        assert.equal((await readAll(await p.read(key))).toString(), key);
      }
      assert.ok((await readAll(await p.read('org/odd/multi part+ü ?#'))).equals(big));
      for (const key of keys) await p.delete(key);
      assert.deepEqual((await listAll(p, 'org/')).map(([k]) => k), ['org/odd/multi part+ü ?#']);
    }));

  test('concurrent writers of one provider do not mix their parts', () =>
    withProvider({ queue_size: 3 }, async (p) => {
      const sources = Array.from({ length: 3 }, () => randomSource(11 * MiB + 7, 70_001));
      await Promise.all(
        sources.map(async (source, i) => {
          const w = await p.create(`many/${i}`);
          await writeAll(w, source.stream);
          await w.commit();
        }),
      );
      for (const [i, source] of sources.entries()) assert.equal(await sha256Of(await p.read(`many/${i}`)), source.digest());
    }));

  test('a slow reader is not timed out, a silent server is', () =>
    withProvider({ request_timeout_ms: 300 }, async (p) => {
      const payload = randomBytes(24 * MiB);
      await p.put('r/slow', payload);
      const slow = await p.read('r/slow');
      const chunks: Buffer[] = [];
      let paused = false;
      await pipeline(
        slow,
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            chunks.push(chunk);
            // One long pause in the middle, as pg_restore building an index would make.
            if (!paused && chunks.length === 10) {
              paused = true;
              setTimeout(callback, 1500);
            } else callback();
          },
        }),
      );
      assert.ok(Buffer.concat(chunks).equals(payload));

      const silent = await p.read('r/slow');
      const started = Date.now();
      let received = 0;
      let stalled = false;
      await assert.rejects(
        (async () => {
          for await (const chunk of silent) {
            received += (chunk as Buffer).length;
            if (received > 4 * MiB && !stalled) {
              stalled = true;
              s.stall();
            }
          }
        })(),
        (e) => e instanceof StorageError && !e.permanent && /read "r\/slow".*no data for 300 ms/.test(e.message),
      );
      assert.ok(received < payload.length);
      assert.ok(Date.now() - started < 5000);
    }));

  test('a failed read stream reports the error to its consumer', () =>
    withProvider({}, async (p) => {
      await p.put('r/x', randomBytes(32 * MiB));
      const stream = await p.read('r/x');
      s.goAway();
      await assert.rejects(pipeline(stream, new Writable({ write: (_c, _e, cb) => setTimeout(cb, 1) })));
    }));
});

describe('s3 configuration', () => {
  const base = { bucket: 'backups' };
  const refuses = (raw: unknown, field: RegExp) =>
    assert.throws(() => parseS3Config(raw), (e) => e instanceof StorageError && e.permanent && field.test(e.message), JSON.stringify(raw));

  test('defaults', () => {
    assert.deepEqual(parseS3Config(base), {
      region: 'us-east-1',
      bucket: 'backups',
      prefix: '',
      force_path_style: false,
      part_size_mb: 16,
      queue_size: 4,
      connect_timeout_ms: 10_000,
      request_timeout_ms: 120_000,
      max_attempts: 5,
    });
  });

  test('every field', () => {
    const config = parseS3Config({
      endpoint: 'https://minio.internal:9000/',
      region: 'eu-west-3',
      bucket: 'backups',
      prefix: 'strongbox/prod/',
      force_path_style: 'true',
      access_key_id: 'AKIAEXAMPLE',
      secret_access_key: 'secret/with+chars',
      session_token: 'token',
      part_size_mb: '64',
      queue_size: 8,
      connect_timeout_ms: 500,
      request_timeout_ms: 1000,
      max_attempts: 1,
    });
    assert.equal(config.endpoint, 'https://minio.internal:9000');
    assert.equal(config.prefix, 'strongbox/prod');
    assert.equal(config.force_path_style, true);
    assert.equal(config.part_size_mb, 64);
    assert.deepEqual(parseS3Config(config), config, 'a parsed configuration parses to itself');
  });

  test('bad values are refused naming the field', () => {
    refuses({}, /bucket is required/);
    refuses({ bucket: '' }, /bucket is required/);
    refuses({ bucket: 'a/b' }, /bucket must be/);
    refuses({ ...base, region: 'us east' }, /region/);
    refuses({ ...base, part_size_mb: 4 }, /part_size_mb must be an integer from 5 to 512/);
    refuses({ ...base, part_size_mb: 513 }, /part_size_mb/);
    refuses({ ...base, part_size_mb: 5.5 }, /part_size_mb/);
    refuses({ ...base, queue_size: 0 }, /queue_size must be an integer from 1 to 16/);
    refuses({ ...base, queue_size: 17 }, /queue_size/);
    refuses({ ...base, max_attempts: 0 }, /max_attempts/);
    refuses({ ...base, request_timeout_ms: -1 }, /request_timeout_ms/);
    refuses({ ...base, connect_timeout_ms: 'soon' }, /connect_timeout_ms/);
    refuses({ ...base, force_path_style: 'yes' }, /force_path_style must be true or false/);
    for (const prefix of ['/abs', '../up', 'a/../b', 'a//b', 'a\\b', './a']) refuses({ ...base, prefix }, /prefix/);
    refuses({ ...base, endpoint: 'ftp://host' }, /endpoint must be an http/);
    refuses({ ...base, endpoint: 'not a url' }, /endpoint/);
    refuses({ ...base, access_key_id: 'AKIA' }, /secret_access_key is required/);
    refuses({ ...base, secret_access_key: 'shh' }, /access_key_id is required/);
    refuses({ ...base, session_token: 'tok' }, /session_token needs/);
    refuses({ ...base, secret_key: 'typo' }, /"secret_key" is not a known field/);
    refuses(null, /must be an object/);
    refuses('s3://bucket', /must be an object/);
  });

  test('secrets are never quoted in errors', () => {
    for (const raw of [
      { ...base, endpoint: 'https://AKIAUSER:SECRETPASS@host' },
      { ...base, access_key_id: 'AKIA SECRETPASS', secret_access_key: 'x' },
      { ...base, access_key_id: 'AKIA', secret_access_key: 'SECRET PASS' },
    ]) {
      assert.throws(() => parseS3Config(raw), (e) => e instanceof StorageError && !/SECRET/.test(e.message));
    }
  });

  test('redaction', () => {
    const config = parseS3Config({ ...base, access_key_id: 'AKIAEXAMPLE', secret_access_key: 'very-secret', session_token: 'tok' });
    const redacted = redactS3Config(config);
    assert.equal(redacted.access_key_id, '[redacted]');
    assert.equal(redacted.secret_access_key, '[redacted]');
    assert.equal(redacted.session_token, '[redacted]');
    assert.equal(redacted.bucket, 'backups');
    assert.equal(config.secret_access_key, 'very-secret', 'the original is untouched');
    assert.deepEqual(redactS3Config({ bucket: 'b' }), { bucket: 'b' });
    assert.deepEqual(redactS3Config({ bucket: 'b', secret_access_key: 'raw' } as Record<string, unknown>), { bucket: 'b', secret_access_key: '[redacted]' });
    const provider = s3Provider(config);
    assert.deepEqual(provider.describe(), { provider: 's3', endpoint: null, region: 'us-east-1', bucket: 'backups', prefix: '' });
    assert.deepEqual(provider.capabilities, { localPath: false, listPartials: true });
    assert.equal(provider.localPath('a/b'), null);
    assert.throws(() => provider.localPath('../a'), StorageError);
  });
});
