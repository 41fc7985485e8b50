import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { HashCounter } from '../../src/pipeline/hash.js';
import { chunked, collector } from './helpers.js';

describe('HashCounter', () => {
  test('passes bytes through unchanged and matches crypto sha256 and length', async () => {
    const input = randomBytes(3 * 1024 * 1024 + 17);
    const hash = new HashCounter();
    const out = collector();
    await pipeline(chunked(input, 10_000), hash, out);
    assert.ok(out.data().equals(input));
    assert.equal(hash.bytes, input.length);
    assert.equal(hash.digest(), createHash('sha256').update(input).digest('hex'));
  });

  test('empty stream', async () => {
    const hash = new HashCounter();
    await pipeline(Readable.from([]), hash, collector());
    assert.equal(hash.bytes, 0);
    assert.equal(hash.digest(), createHash('sha256').digest('hex'));
  });

  test('digest() before the end throws', () => {
    const hash = new HashCounter();
    hash.write(Buffer.from('abc'));
    assert.throws(() => hash.digest(), /before the stream finished/);
    hash.destroy();
  });

  test('progress is throttled and reported once more at the end', async () => {
    const reports: number[] = [];
    const hash = new HashCounter({ onProgress: (b) => reports.push(b), progressIntervalMs: 40 });
    const chunks = Array.from({ length: 30 }, () => randomBytes(1000));
    const slow = Readable.from(
      (async function* () {
        for (const c of chunks) {
          await sleep(5);
          yield c;
        }
      })(),
    );
    const started = performance.now();
    await pipeline(slow, hash, collector());
    const elapsed = performance.now() - started;
    // At most one report per 40 ms plus the final one: far fewer than the 30 chunks.
    assert.ok(reports.length >= 2, `got ${reports.length} reports`);
    assert.ok(reports.length <= Math.ceil(elapsed / 40) + 2 && reports.length < 30, `got ${reports.length} reports in ${elapsed} ms`);
    assert.equal(reports.at(-1), 30_000);
    assert.deepEqual([...reports].sort((a, b) => a - b), reports, 'reports must not go backwards');
  });

  test('a throwing progress callback errors the stream', async () => {
    const hash = new HashCounter({
      onProgress: () => {
        throw new Error('progress sink broke');
      },
    });
    await assert.rejects(pipeline(chunked(randomBytes(1000)), hash, collector()), /progress sink broke/);
  });
});
