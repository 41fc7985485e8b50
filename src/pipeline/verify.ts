/**
 * Checks a stream against the sha256 (and size) recorded when the artifact was written,
 * as it streams, so that a restore never consumes a whole corrupt artifact.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Thrown when an artifact's bytes do not match the checksum or size it was stored with. */
export class ChecksumMismatchError extends Error {
  constructor(
    readonly expectedSha256: string,
    readonly actualSha256: string | null,
    readonly expectedSize: number | null,
    readonly actualSize: number,
  ) {
    super(
      actualSha256 === null || actualSha256 === expectedSha256
        ? `size mismatch: expected ${expectedSize} bytes, got ${actualSize}${actualSha256 === null ? ' or more' : ''} (artifact is corrupt)`
        : `checksum mismatch: expected sha256 ${expectedSha256}, got ${actualSha256} (artifact is corrupt)`,
    );
    this.name = 'ChecksumMismatchError';
  }
}

/**
 * A pass-through stage that verifies the sha256 (and optionally the size) of the whole
 * stream. It always holds back the most recent chunk and releases the last one only
 * after the digest matched, so on a mismatch it errors with ChecksumMismatchError and
 * the consumer has never seen the complete stream: whatever it parsed so far is a
 * truncated input, which every restore tool rejects.
 */
export class Sha256Verifier extends Transform {
  readonly #expected: string;
  readonly #expectedSize: number | null;
  #hash: Hash = createHash('sha256');
  #bytes = 0;
  #held: Buffer | null = null;

  /** `expectedSha256` is hex (64 characters); `expectedSize` in bytes, when known. */
  constructor(expectedSha256: string, expectedSize?: number | null) {
    super();
    if (!/^[0-9a-fA-F]{64}$/.test(expectedSha256)) {
      throw new TypeError(`expected sha256 must be 64 hex characters, got "${expectedSha256}"`);
    }
    if (expectedSize != null && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
      throw new TypeError(`expected size must be a non-negative integer, got ${expectedSize}`);
    }
    this.#expected = expectedSha256.toLowerCase();
    this.#expectedSize = expectedSize ?? null;
  }

  /** Bytes received so far (including the one held-back chunk). */
  get bytes(): number {
    return this.#bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // An empty chunk must not become the held one: the final release would then give
    // nothing away and a corrupt stream could be seen whole.
    if (chunk.length === 0) return callback();
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    if (this.#expectedSize !== null && this.#bytes > this.#expectedSize) {
      // Fail as soon as it is certain rather than reading the rest of a bad artifact.
      this.#held = null;
      return callback(new ChecksumMismatchError(this.#expected, null, this.#expectedSize, this.#bytes));
    }
    const previous = this.#held;
    this.#held = chunk;
    callback(null, previous ?? undefined);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.#hash.digest('hex');
    const held = this.#held;
    this.#held = null;
    if (actual !== this.#expected || (this.#expectedSize !== null && this.#bytes !== this.#expectedSize)) {
      return callback(new ChecksumMismatchError(this.#expected, actual, this.#expectedSize, this.#bytes));
    }
    if (held) this.push(held);
    callback();
  }
}
