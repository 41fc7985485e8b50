import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { zstdCompress } from '../../src/pipeline/compress.js';
import { fanOut } from '../../src/pipeline/fanout.js';
import { HashCounter } from '../../src/pipeline/hash.js';
import { childProcesses, collector, randomSource } from './helpers.js';

const MB = 1024 * 1024;

/** A target that fails with `message` once it has been given more than `after` bytes. */
function failingAfter(after: number, message: string): Writable & { bytes: number } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.bytes += chunk.length;
      setImmediate(() => cb(w.bytes > after ? new Error(message) : null));
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}

/** An endless source that counts what it produced. */
function endless(): Readable & { produced: number } {
  const r = new Readable({
    read() {
      r.produced += 64 * 1024;
      this.push(randomBytes(64 * 1024));
    },
  }) as Readable & { produced: number };
  r.produced = 0;
  return r;
}

describe('fanOut', () => {
  test('every target gets identical bytes', async () => {
    const source = randomSource(5 * MB + 333, 50_000);
    const targets = ['a', 'b', 'c'].map((id) => ({ id, stream: collector() }));
    const results = await fanOut(source, targets);
    assert.deepEqual(results, [
      { id: 'a', ok: true },
      { id: 'b', ok: true },
      { id: 'c', ok: true },
    ]);
    for (const t of targets) assert.ok(t.stream.data().equals(source.payload), `target ${t.id} differs`);
  });

  test('the slowest target sets the pace: the source is never read far ahead', async () => {
    const source = randomSource(8 * MB, 64 * 1024);
    let slowDone = 0;
    let maxAhead = 0;
    const chunks: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        setTimeout(() => {
          slowDone += chunk.length;
          cb();
        }, 1);
      },
    });
    // Sample how far the source has got beyond what the slow target has fully written.
    const sampler = setInterval(() => (maxAhead = Math.max(maxAhead, source.produced - slowDone)), 1);
    const fast = collector();
    const results = await fanOut(source, [
      { id: 'fast', stream: fast },
      { id: 'slow', stream: slow },
    ]).finally(() => clearInterval(sampler));
    assert.ok(results.every((r) => r.ok));
    assert.ok(Buffer.concat(chunks).equals(source.payload));
    assert.ok(fast.data().equals(source.payload));
    assert.ok(maxAhead > 0, 'the sampler saw nothing');
    // Source buffer + the slow target's buffer + a chunk in flight: a few hundred KiB,
    // however long the stream is.
    assert.ok(maxAhead <= 512 * 1024, `source ran ${maxAhead} bytes ahead of the slow target`);
  });

  test('a failing target is dropped and the others complete', async () => {
    const source = randomSource(4 * MB);
    const a = collector();
    const c = collector();
    const b = failingAfter(MB, 'bucket went away');
    const results = await fanOut(source, [
      { id: 'a', stream: a },
      { id: 'b', stream: b },
      { id: 'c', stream: c },
    ]);
    assert.deepEqual(results[0], { id: 'a', ok: true });
    assert.equal(results[1].ok, false);
    assert.match(results[1].error!.message, /bucket went away/);
    assert.deepEqual(results[2], { id: 'c', ok: true });
    assert.ok(a.data().equals(source.payload));
    assert.ok(c.data().equals(source.payload));
    assert.ok(b.destroyed);
  });

  test('a target that closes early without an error is a failure', async () => {
    const source = randomSource(2 * MB);
    const ok = collector();
    const quitter = new Writable({
      write(_chunk, _enc, cb) {
        cb();
        this.destroy();
      },
    });
    const results = await fanOut(source, [
      { id: 'ok', stream: ok },
      { id: 'quitter', stream: quitter },
    ]);
    assert.equal(results[0].ok, true);
    assert.equal(results[1].ok, false);
    assert.match(results[1].error!.message, /closed before it finished/);
  });

  test('when every target fails, the source is destroyed and reading stops', async () => {
    const source = endless();
    const results = await fanOut(source, [
      { id: 'x', stream: failingAfter(256 * 1024, 'x broke') },
      { id: 'y', stream: failingAfter(512 * 1024, 'y broke') },
    ]);
    assert.deepEqual(
      results.map((r) => [r.id, r.ok, r.error?.message]),
      [
        ['x', false, 'x broke'],
        ['y', false, 'y broke'],
      ],
    );
    assert.ok(source.destroyed);
    assert.ok(source.produced < 4 * MB, `source produced ${source.produced} bytes`);
  });

  test('when every target fails, an upstream pipeline rejects and its zstd is gone', async () => {
    const source = endless();
    const hash = new HashCounter();
    const [upstream, results] = await Promise.allSettled([
      pipeline(source, zstdCompress(1), hash),
      fanOut(hash, [{ id: 'only', stream: failingAfter(128 * 1024, 'disk full') }]),
    ]);
    assert.equal(upstream.status, 'rejected');
    assert.match(String((upstream as PromiseRejectedResult).reason), /every destination failed/);
    assert.equal(results.status, 'fulfilled');
    for (let i = 0; i < 20 && childProcesses('zstd').length > 0; i++) await sleep(50);
    assert.deepEqual(childProcesses('zstd'), []);
  });

  test('a source error fails and destroys every target', async () => {
    let n = 0;
    const source = new Readable({
      read() {
        n++;
        if (n === 20) this.destroy(new Error('pg_dump exited with code 1'));
        else this.push(randomBytes(16 * 1024));
      },
    });
    const targets = ['a', 'b'].map((id) => ({ id, stream: collector() }));
    let finished = 0;
    for (const t of targets) t.stream.on('finish', () => finished++);
    const results = await fanOut(source, targets);
    for (const r of results) {
      assert.equal(r.ok, false);
      assert.equal(r.error!.message, 'pg_dump exited with code 1');
    }
    for (const t of targets) assert.ok(t.stream.destroyed);
    assert.equal(finished, 0, 'a target was ended as if the stream were complete');
  });

  test('aborting destroys the source and every target', async () => {
    const source = endless();
    const slow = new Writable({
      write(_chunk, _enc, cb) {
        setTimeout(cb, 5);
      },
    });
    const other = collector();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const results = await fanOut(
      source,
      [
        { id: 'slow', stream: slow },
        { id: 'other', stream: other },
      ],
      { signal: ac.signal },
    );
    for (const r of results) {
      assert.equal(r.ok, false);
      assert.equal(r.error!.name, 'AbortError');
    }
    assert.ok(source.destroyed && slow.destroyed && other.destroyed);
  });

  test('an already aborted signal writes nothing', async () => {
    const source = randomSource(MB);
    const t = collector();
    const results = await fanOut(source, [{ id: 't', stream: t }], { signal: AbortSignal.abort() });
    assert.equal(results[0].ok, false);
    assert.equal(t.data().length, 0);
  });

  test('composes with a hashing pipeline upstream', async () => {
    const source = randomSource(3 * MB);
    const hash = new HashCounter();
    const a = collector();
    const b = collector();
    const [, results] = await Promise.all([
      pipeline(source, hash),
      fanOut(hash, [
        { id: 'a', stream: a },
        { id: 'b', stream: b },
      ]),
    ]);
    assert.ok(results.every((r) => r.ok));
    assert.equal(hash.digest(), createHash('sha256').update(source.payload).digest('hex'));
    assert.ok(a.data().equals(source.payload) && b.data().equals(source.payload));
  });
});
