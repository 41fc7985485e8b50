/**
 * One stream, many destinations: the same bytes go to every target at the pace of the
 * slowest live one, and a destination that fails is dropped without stopping the others.
 */
import type { Readable, Writable } from 'node:stream';

/** A destination for {@link fanOut}. */
export interface FanOutTarget {
  id: string;
  stream: Writable;
}

/** How one target fared. `error` is set when `ok` is false. */
export interface FanOutResult {
  id: string;
  ok: boolean;
  error?: Error;
}

/** Options for {@link fanOut}. */
export interface FanOutOptions {
  /** Aborting destroys the source and every unfinished target. */
  signal?: AbortSignal;
}

class Target {
  readonly id: string;
  readonly stream: Writable;
  ok = false;
  error: Error | undefined;
  /** Wakes whoever waits on this target (for 'drain' or 'finish') when it settles. */
  #wake: (() => void) | null = null;
  readonly #onSettled: (t: Target) => void;

  constructor(target: FanOutTarget, onSettled: (t: Target) => void) {
    this.id = target.id;
    this.stream = target.stream;
    this.#onSettled = onSettled;
    // Listening for 'error' is also what keeps one target's failure from becoming an
    // uncaught exception that would take the whole process down.
    this.stream.on('error', (err) => this.fail(err));
    this.stream.on('close', () => {
      if (!this.settled) this.fail(new Error(`destination ${this.id} closed before it finished writing`));
    });
  }

  get settled(): boolean {
    return this.ok || this.error !== undefined;
  }

  fail(error: Error): void {
    if (this.settled) return;
    this.error = error;
    if (!this.stream.destroyed) this.stream.destroy(error);
    this.#settle();
  }

  #settle(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
    this.#onSettled(this);
  }

  /** Resolves once the target can take more bytes, or has failed. */
  drained(): Promise<void> {
    if (this.settled || !this.stream.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const onDrain = (): void => {
        this.#wake = null;
        resolve();
      };
      this.stream.once('drain', onDrain);
      this.#wake = () => {
        this.stream.off('drain', onDrain);
        resolve();
      };
    });
  }

  /** Ends the target and resolves once it has finished, or has failed. */
  end(): Promise<void> {
    if (this.settled) return Promise.resolve();
    return new Promise((resolve) => {
      const onFinish = (): void => {
        this.#wake = null;
        this.ok = true;
        this.#settle();
        resolve();
      };
      this.stream.once('finish', onFinish);
      this.#wake = () => {
        this.stream.off('finish', onFinish);
        resolve();
      };
      this.stream.end();
    });
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('the operation was aborted');
  err.name = 'AbortError';
  return err;
}

/**
 * Copy `source` into every target at once and end them. Backpressure: the next chunk is
 * read only when every live target has room, so memory stays bounded by the targets'
 * buffers whatever the stream's size.
 *
 * A target that errors (or closes early) is destroyed and recorded as failed while the
 * others continue; when no live target is left, the source is destroyed and reading
 * stops. A source error, or aborting `opts.signal`, destroys every unfinished target with
 * that error. Never rejects: resolves with one result per target, in order, once every
 * target has finished or failed. A target is `ok` only after its 'finish'.
 */
export async function fanOut(source: Readable, targets: FanOutTarget[], opts: FanOutOptions = {}): Promise<FanOutResult[]> {
  const live = new Set<Target>();
  let reading = true;
  const onSettled = (t: Target): void => {
    live.delete(t);
    // Nobody is left to write to: stop the producer (and, through its pipeline, whatever
    // child process feeds it) instead of reading the rest for nothing.
    if (reading && live.size === 0 && !source.destroyed) {
      source.destroy(new Error(`every destination failed (${t.id}: ${t.error?.message})`));
    }
  };
  const all = targets.map((t) => new Target(t, onSettled));
  for (const t of all) live.add(t);

  const failAll = (error: Error): void => {
    for (const t of [...live]) t.fail(error);
  };
  const onSourceError = (err: Error): void => failAll(err);
  source.on('error', onSourceError);

  const { signal } = opts;
  const onAbort = (): void => {
    const reason = abortReason(signal!);
    source.destroy(reason);
    failAll(reason);
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  try {
    let sourceDone = false;
    if (live.size === 0) {
      if (!source.destroyed) source.destroy(new Error('no destination to write to'));
    } else {
      try {
        for await (const chunk of source) {
          const full: Target[] = [];
          for (const t of [...live]) {
            if (t.stream.destroyed || t.stream.writableEnded) {
              // Its 'error'/'close' event is still on its way; report what it will say.
              t.fail(t.stream.errored ?? new Error(`destination ${t.id} closed before it finished writing`));
              continue;
            }
            if (!t.stream.write(chunk)) full.push(t);
          }
          if (full.length > 0) await Promise.all(full.map((t) => t.drained()));
          if (live.size === 0) break;
        }
        sourceDone = live.size > 0;
      } catch (err) {
        failAll(err instanceof Error ? err : new Error(String(err)));
      }
    }
    reading = false;
    if (sourceDone) await Promise.all([...live].map((t) => t.end()));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return all.map((t) => (t.ok ? { id: t.id, ok: true } : { id: t.id, ok: false, error: t.error }));
}
