/**
 * Rate limiting per service token (PlanetScale's figure: 600 requests a minute), or per
 * client address for requests without a recognisable token. A token bucket: bursts up
 * to the minute's allowance, refilled continuously.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #perMs: number;

  constructor(
    readonly perMinute: number,
    readonly maxKeys = 20_000,
  ) {
    this.#perMs = perMinute / 60_000;
  }

  /** Take one request from `key`'s allowance: 0 when allowed, else the seconds to wait. */
  take(key: string, now = Date.now()): number {
    if (this.perMinute <= 0) return 0;
    let b = this.#buckets.get(key);
    if (!b) {
      // Forget the oldest keys rather than grow without bound under a flood of made-up ids.
      if (this.#buckets.size >= this.maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: this.perMinute, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.#perMs);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#perMs / 1000));
  }
}
