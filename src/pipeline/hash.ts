/**
 * Checksum and byte count of a stream as it passes, for the artifact's manifest and
 * for progress reports.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Options for {@link HashCounter}. */
export interface HashCounterOptions {
  /**
   * Called with the bytes seen so far, at most once per `progressIntervalMs` while data
   * flows, and always once at the end with the final count. Must not throw.
   */
  onProgress?: (bytes: number) => void;
  /** Minimum time between two progress calls; defaults to 250 ms. */
  progressIntervalMs?: number;
  /** Compute the sha256 (default true); false when only the count is wanted, e.g. for progress. */
  sha256?: boolean;
}

/**
 * A pass-through stage that computes the sha256 and the byte count of everything that
 * flows through it, unchanged.
 */
export class HashCounter extends Transform {
  #hash: Hash | null;
  #digest: string | null = null;
  #bytes = 0;
  #lastProgressAt = Number.NEGATIVE_INFINITY;
  readonly #onProgress: ((bytes: number) => void) | undefined;
  readonly #intervalMs: number;

  constructor(opts: HashCounterOptions = {}) {
    super();
    this.#onProgress = opts.onProgress;
    this.#intervalMs = opts.progressIntervalMs ?? 250;
    this.#hash = opts.sha256 === false ? null : createHash('sha256');
  }

  /** Bytes seen so far (the total once the stream has finished). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Hex sha256 of everything that passed. Throws until the stream has been flushed, or when made with `sha256: false`. */
  digest(): string {
    if (this.#hash === null && this.#digest === null) throw new Error('HashCounter made with sha256: false has no digest');
    if (this.#digest === null) throw new Error('HashCounter.digest() called before the stream finished');
    return this.#digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash?.update(chunk);
    this.#bytes += chunk.length;
    if (this.#onProgress) {
      const now = performance.now();
      if (now - this.#lastProgressAt >= this.#intervalMs) {
        this.#lastProgressAt = now;
        try {
          this.#onProgress(this.#bytes);
        } catch (err) {
          callback(err as Error);
          return;
        }
      }
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash?.digest('hex') ?? null;
    try {
      this.#onProgress?.(this.#bytes);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }
}
