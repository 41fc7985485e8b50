/**
 * Retrying storage calls: exponential backoff with jitter around any provider, so that
 * providers themselves never retry and only say which errors are permanent.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { ObjectInfo, ObjectWriter, PartialInfo, StorageProvider } from './provider.js';

/** Options for {@link withRetry}. */
export interface RetryOptions {
  /** Total tries, the first included. Default 4. */
  attempts?: number;
  /** Delay before the first retry; doubles each time. Default 200 ms. */
  baseMs?: number;
  /** Longest delay between two tries. Default 10 s. */
  maxMs?: number;
  /** Aborting stops waiting and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called before each retry (for logs). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Whether retrying cannot help: errors marked `permanent` (StorageError, or any error
 * carrying that flag), missing objects, and aborts.
 */
export function isPermanent(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { permanent?: unknown; notFound?: unknown; name?: unknown };
  return e.permanent === true || e.notFound === true || e.name === 'AbortError';
}

/**
 * Call `fn` until it resolves, retrying errors that are not permanent after
 * `baseMs * 2^(n-1)` (capped at `maxMs`) scaled by a random factor in [0.5, 1), so that
 * many workers hitting the same outage do not retry in lockstep. Rejects with the last
 * error after `attempts` tries, or at once with a permanent error.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { attempts = 4, baseMs = 200, maxMs = 10_000, signal, onRetry } = opts;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`attempts must be a positive integer, got ${attempts}`);
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || isPermanent(err) || signal?.aborted) throw err;
      const delay = Math.round(Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
      onRetry?.(err, attempt, delay);
      await sleep(delay, undefined, { signal });
    }
  }
}

/** A listing retried until its first item only: a restart after that would yield items twice. */
async function* retryUntilFirst<T>(list: () => AsyncIterable<T>, opts: RetryOptions): AsyncIterable<T> {
  const first = await withRetry(async () => {
    const it = list()[Symbol.asyncIterator]();
    return { it, next: await it.next() };
  }, opts);
  for (let next = first.next; !next.done; next = await first.it.next()) yield next.value;
}

/**
 * Wrap a provider so every call that its contract says is safe to retry is retried with
 * {@link withRetry}. `commit()` is never retried, and `list()` and `listPartials()` only
 * until their first item.
 */
export function retryingProvider(inner: StorageProvider, opts: RetryOptions = {}): StorageProvider {
  return {
    provider: inner.provider,
    capabilities: inner.capabilities,
    create: (key: string): Promise<ObjectWriter> => withRetry(() => inner.create(key), opts),
    put: (key: string, data: Buffer): Promise<void> => withRetry(() => inner.put(key, data), opts),
    read: (key: string) => withRetry(() => inner.read(key), opts),
    stat: (key: string) => withRetry(() => inner.stat(key), opts),
    delete: (key: string): Promise<void> => withRetry(() => inner.delete(key), opts),
    removePartials: (key: string): Promise<void> => withRetry(() => inner.removePartials(key), opts),
    list: (prefix: string): AsyncIterable<ObjectInfo> => retryUntilFirst(() => inner.list(prefix), opts),
    listPartials: (prefix: string): AsyncIterable<PartialInfo> => retryUntilFirst(() => inner.listPartials(prefix), opts),
    localPath: (key: string) => inner.localPath(key),
    describe: () => inner.describe(),
  } satisfies StorageProvider;
}
