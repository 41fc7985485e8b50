/**
 * The behaviour every StorageProvider must have (after restic's backend test suite).
 * A provider's test file calls storageConformance() with a factory for a fresh, empty
 * provider and a cleanup that removes everything it made.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';

import { StorageError, type ObjectWriter, type StorageProvider } from '../../src/storage/provider.js';

/** Read a whole stream into memory (test payloads only). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every key under `prefix`, sorted, with sizes. */
export async function listAll(provider: StorageProvider, prefix: string): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  for await (const info of provider.list(prefix)) out.push([info.key, info.size]);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `payload` cut into chunks of irregular sizes, as a dump would arrive. */
function irregularChunks(payload: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0, n = 0; i < payload.length; n++) {
    const size = [1, 4096, 65_536, 100_003, 7][n % 5];
    chunks.push(payload.subarray(i, i + size));
    i += size;
  }
  return Readable.from(chunks);
}

/** Write, end and wait for 'finish' (without committing). */
async function writeAndFinish(writer: ObjectWriter, data: Buffer | Readable): Promise<void> {
  await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, writer.stream);
}

function isStorageError(check: (e: StorageError) => boolean) {
  return (err: unknown): boolean => err instanceof StorageError && check(err);
}

const BAD_KEYS = ['', '../escape', 'a/../../escape', '/etc/passwd', 'a//b', 'a/', './a', 'a/./b', 'a\\..\\b', 'a\0b', '..'];

/** Run the conformance suite against providers built by `make`. */
export function storageConformance(
  name: string,
  make: () => Promise<{ provider: StorageProvider; cleanup(): Promise<void> }>,
  options: { unsupported?: Record<string, string> } = {},
): void {
  describe(`storage conformance: ${name}`, () => {
    // A store we did not write may lack an operation: those tests are reported as skipped,
    // with the reason, instead of silently left out.
    const titles = new Set<string>();
    const test = (title: string, fn: () => void | Promise<void>) => {
      titles.add(title);
      const reason = options.unsupported?.[title];
      return reason === undefined ? nodeTest(title, fn) : nodeTest(title, { skip: reason }, fn);
    };
    let provider: StorageProvider;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ provider, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    test('create + commit, then read back identical bytes (multi-MB, many chunks)', async () => {
      const payload = randomBytes(6 * 1024 * 1024 + 11);
      const key = 'org/db/main/backup-1/backup.pgdump.zst';
      const writer = await provider.create(key);
      await writeAndFinish(writer, irregularChunks(payload));
      await writer.commit();
      assert.deepEqual(await provider.stat(key), { key, size: payload.length });
      const back = await readAll(await provider.read(key));
      assert.equal(back.length, payload.length);
      assert.ok(back.equals(payload));
    });

    test('nothing is visible under the key before commit', async () => {
      const key = 'pending/object.bin';
      const writer = await provider.create(key);
      await writeAndFinish(writer, randomBytes(200_000));
      assert.equal(await provider.stat(key), null);
      assert.deepEqual(await listAll(provider, ''), []);
      await assert.rejects(provider.read(key), isStorageError((e) => e.notFound));
      await writer.commit();
      assert.deepEqual(await listAll(provider, ''), [[key, 200_000]]);
    });

    test('abort leaves nothing behind, before or after the stream ended', async () => {
      const a = await provider.create('aborted/after-end.bin');
      await writeAndFinish(a, randomBytes(100_000));
      await a.abort();
      await a.abort();

      const b = await provider.create('aborted/mid-write.bin');
      b.stream.write(randomBytes(100_000));
      await b.abort();

      assert.equal(await provider.stat('aborted/after-end.bin'), null);
      assert.equal(await provider.stat('aborted/mid-write.bin'), null);
      assert.deepEqual(await listAll(provider, ''), []);
      assert.deepEqual(await listAll(provider, 'aborted/'), []);
      await assert.rejects(a.commit(), StorageError);
    });

    test('removePartials clears what a dead writer left, and nothing committed', async () => {
      const kept = 'crash/kept.bin';
      await provider.put(kept, Buffer.from('committed'));
      // A writer that never reaches commit() or abort(): its process died mid-write.
      const dead = await provider.create('crash/dump.bin');
      await new Promise<void>((r) => dead.stream.write(randomBytes(64 * 1024), () => r()));
      await provider.removePartials('crash/dump.bin');
      await provider.removePartials('crash/dump.bin');
      await provider.removePartials('crash/never-written.bin');
      assert.equal(await provider.stat('crash/dump.bin'), null);
      assert.deepEqual(await listAll(provider, 'crash/'), [[kept, 9]]);
      assert.equal((await readAll(await provider.read(kept))).toString(), 'committed');
      dead.stream.destroy();
    });

    test('listPartials names what a dead writer left, by key and start time, until removePartials', async () => {
      const all = async (prefix: string) => {
        const out: Array<{ key: string; startedAt: Date }> = [];
        for await (const p of provider.listPartials(prefix)) out.push(p);
        return out;
      };
      if (!provider.capabilities.listPartials) {
        assert.deepEqual(await all(''), [], 'without the capability it lists nothing');
        return;
      }
      await provider.put('sweep/kept.bin', Buffer.from('committed'));
      const before = Date.now();
      // More than one part of any provider's (5 MiB minimum for S3), so that the upload
      // really exists on the service; the process "dies" without commit() or abort().
      const dead = await provider.create('sweep/a/dump.bin');
      dead.stream.on('error', () => {});
      dead.stream.write(randomBytes(6 * 1024 * 1024 + 1));
      const deadline = Date.now() + 10_000;
      while (!(await all('')).some((p) => p.key === 'sweep/a/dump.bin')) {
        if (Date.now() > deadline) throw new Error('the dead writer never showed in listPartials');
        await new Promise((r) => setTimeout(r, 50));
      }
      const listed = await all('');
      assert.deepEqual([...new Set(listed.map((p) => p.key))], ['sweep/a/dump.bin'], 'committed objects are never listed');
      for (const p of listed) {
        assert.ok(p.startedAt instanceof Date);
        assert.ok(Math.abs(p.startedAt.getTime() - before) < 3600_000, `a plausible start time: ${p.startedAt.toISOString()}`);
      }
      assert.deepEqual((await all('sweep/')).map((p) => p.key), listed.map((p) => p.key));
      assert.deepEqual((await all('sweep/a/dump')).map((p) => p.key), listed.map((p) => p.key));
      assert.deepEqual(await all('sweep/b'), []);
      assert.deepEqual(await all('other/'), []);
      await provider.removePartials('sweep/a/dump.bin');
      assert.deepEqual(await all(''), []);
      assert.deepEqual(await listAll(provider, 'sweep/'), [['sweep/kept.bin', 9]]);
      dead.stream.destroy();
    });

    test('a writer whose stream failed cannot be committed and leaves nothing after abort', async () => {
      const writer = await provider.create('failed/object.bin');
      writer.stream.write(randomBytes(50_000));
      writer.stream.on('error', () => {});
      writer.stream.destroy(new Error('upstream died'));
      await new Promise((resolve) => writer.stream.once('close', resolve));
      await assert.rejects(writer.commit(), StorageError);
      await writer.abort();
      assert.deepEqual(await listAll(provider, ''), []);
    });

    test('commit before the stream finished is refused', async () => {
      const writer = await provider.create('early/commit.bin');
      writer.stream.write(Buffer.from('half'));
      await assert.rejects(writer.commit(), StorageError);
      await writer.abort();
      assert.equal(await provider.stat('early/commit.bin'), null);
    });

    test('put, stat, list, delete', async () => {
      const key = 'org/db/main/backup-2/manifest.json';
      const body = Buffer.from(JSON.stringify({ id: 'backup-2' }));
      await provider.put(key, body);
      assert.deepEqual(await provider.stat(key), { key, size: body.length });
      assert.ok((await readAll(await provider.read(key))).equals(body));
      assert.deepEqual(await listAll(provider, 'org/'), [[key, body.length]]);
      await provider.delete(key);
      assert.equal(await provider.stat(key), null);
      assert.deepEqual(await listAll(provider, ''), []);
      await provider.delete(key);
    });

    test('put replaces an existing object', async () => {
      await provider.put('x/obj', Buffer.from('first version'));
      await provider.put('x/obj', Buffer.from('second'));
      assert.equal((await readAll(await provider.read('x/obj'))).toString(), 'second');
      assert.deepEqual(await listAll(provider, ''), [['x/obj', 6]]);
    });

    test('empty objects are objects', async () => {
      await provider.put('empty', Buffer.alloc(0));
      assert.deepEqual(await provider.stat('empty'), { key: 'empty', size: 0 });
      assert.equal((await readAll(await provider.read('empty'))).length, 0);
    });

    test('missing objects: delete succeeds, read is notFound, stat is null', async () => {
      await provider.delete('never/existed');
      await assert.rejects(provider.read('never/existed'), isStorageError((e) => e.notFound));
      assert.equal(await provider.stat('never/existed'), null);
    });

    test('keys that could escape, and malformed keys, are refused as permanent errors', async () => {
      const permanent = isStorageError((e) => e.permanent);
      for (const key of BAD_KEYS) {
        await assert.rejects(provider.create(key), permanent, `create(${JSON.stringify(key)})`);
        await assert.rejects(provider.put(key, Buffer.from('x')), permanent, `put(${JSON.stringify(key)})`);
        await assert.rejects(provider.read(key), permanent, `read(${JSON.stringify(key)})`);
        await assert.rejects(provider.stat(key), permanent, `stat(${JSON.stringify(key)})`);
        await assert.rejects(provider.delete(key), permanent, `delete(${JSON.stringify(key)})`);
      }
      for (const prefix of ['../', '/abs', 'a/../b', 'a\\b']) {
        await assert.rejects(listAll(provider, prefix), permanent, `list(${JSON.stringify(prefix)})`);
      }
      assert.deepEqual(await listAll(provider, ''), []);
    });

    test('list by prefix', async () => {
      const keys = ['p/a/1', 'p/a/2', 'p/b/1', 'pa/1', 'q/1', 'top'];
      for (const key of keys) await provider.put(key, Buffer.from(key));
      const keysOf = async (prefix: string): Promise<string[]> => (await listAll(provider, prefix)).map(([k]) => k);
      assert.deepEqual(await keysOf(''), keys);
      assert.deepEqual(await keysOf('p/'), ['p/a/1', 'p/a/2', 'p/b/1']);
      assert.deepEqual(await keysOf('p/a'), ['p/a/1', 'p/a/2']);
      assert.deepEqual(await keysOf('p'), ['p/a/1', 'p/a/2', 'p/b/1', 'pa/1']);
      assert.deepEqual(await keysOf('p/a/1'), ['p/a/1']);
      assert.deepEqual(await keysOf('nothing/'), []);
      assert.deepEqual(await listAll(provider, 'q/'), [['q/1', 3]]);
    });

    test('localPath matches the capability', async () => {
      await provider.put('lp/obj', Buffer.from('here'));
      const p = provider.localPath('lp/obj');
      if (provider.capabilities.localPath) assert.equal(typeof p, 'string');
      else assert.equal(p, null);
    });

    test('describe() names the provider', () => {
      const d = provider.describe();
      assert.equal(d.provider, provider.provider);
      assert.doesNotThrow(() => JSON.stringify(d));
    });

    const unknown = Object.keys(options.unsupported ?? {}).filter((t) => !titles.has(t));
    if (unknown.length) throw new Error(`storageConformance(${name}): "unsupported" names no test: ${unknown.join(', ')}`);
  });
}
