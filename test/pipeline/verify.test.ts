import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ChecksumMismatchError, Sha256Verifier } from '../../src/pipeline/verify.js';
import { chunked, collector } from './helpers.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A consumer that counts bytes and whether it saw the end of the stream. */
function counting(): Writable & { bytes: number; finished: boolean } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.bytes += chunk.length;
      cb();
    },
  }) as Writable & { bytes: number; finished: boolean };
  w.bytes = 0;
  w.finished = false;
  w.on('finish', () => (w.finished = true));
  return w;
}

describe('Sha256Verifier', () => {
  test('passes good data through unchanged', async () => {
    const input = randomBytes(2 * 1024 * 1024 + 5);
    const out = collector();
    await pipeline(chunked(input, 50_000), new Sha256Verifier(sha256(input), input.length), out);
    assert.ok(out.data().equals(input));
  });

  test('accepts an upper-case digest and no size', async () => {
    const input = randomBytes(1000);
    const out = collector();
    await pipeline(chunked(input, 100), new Sha256Verifier(sha256(input).toUpperCase()), out);
    assert.ok(out.data().equals(input));
  });

  test('empty stream with the empty digest', async () => {
    const out = collector();
    await pipeline(Readable.from([]), new Sha256Verifier(sha256(Buffer.alloc(0)), 0), out);
    assert.equal(out.data().length, 0);
  });

  test('a flipped byte errors and the consumer never sees the whole stream', async () => {
    const input = randomBytes(1024 * 1024);
    const expected = sha256(input);
    for (const position of [0, input.length / 2, input.length - 1]) {
      const bad = Buffer.from(input);
      bad[position] ^= 0x01;
      const out = counting();
      const err = await pipeline(chunked(bad, 64 * 1024), new Sha256Verifier(expected, input.length), out).then(
        () => assert.fail('corrupt data was accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ChecksumMismatchError);
      assert.match(err.message, /^checksum mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64} \(artifact is corrupt\)$/);
      assert.equal(err.expectedSha256, expected);
      assert.ok(out.bytes < input.length, `consumer received ${out.bytes} of ${input.length}`);
      assert.equal(out.finished, false);
    }
  });

  test('a single-chunk corrupt artifact gives the consumer nothing', async () => {
    const input = randomBytes(1000);
    const out = counting();
    await assert.rejects(pipeline(Readable.from([input]), new Sha256Verifier(sha256(Buffer.alloc(1000))), out), ChecksumMismatchError);
    assert.equal(out.bytes, 0);
  });

  test('truncated data fails on size and digest', async () => {
    const input = randomBytes(300_000);
    const out = counting();
    await assert.rejects(
      pipeline(chunked(input.subarray(0, 200_000)), new Sha256Verifier(sha256(input), input.length), out),
      ChecksumMismatchError,
    );
    assert.ok(out.bytes < 200_000);
  });

  test('extra bytes fail as soon as the size is exceeded', async () => {
    const input = randomBytes(300_000);
    const longer = Buffer.concat([input, randomBytes(10)]);
    const out = counting();
    await assert.rejects(pipeline(chunked(longer), new Sha256Verifier(sha256(input), input.length), out), /size mismatch/);
    assert.ok(out.bytes < input.length);
  });

  test('rejects a malformed expected digest', () => {
    assert.throws(() => new Sha256Verifier('abc'), TypeError);
    assert.throws(() => new Sha256Verifier('z'.repeat(64)), TypeError);
    assert.throws(() => new Sha256Verifier('a'.repeat(64), -1), TypeError);
  });
});
