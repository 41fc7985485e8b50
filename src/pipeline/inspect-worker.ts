/**
 * A reader thread behind storeStream's inspection (store.ts): reads raw dumps from the
 * channels store.ts opens (openFifos) and runs the readers (inspect.ts) on them. None of those
 * bytes enter the main thread's event loop or heap.
 *
 * Two ways to read, chosen per stream by store.ts:
 * - `blocking`: the thread is the stream's alone, in large blocking reads into one reused
 *   buffer: the least CPU per byte (no event per read, no garbage). For a dump read as one
 *   stream. With `outFd` the thread is also the pipe between the dump tool and the
 *   compressor: it reads what the dump tool writes, writes it on to zstd, then reads it
 *   itself, so the dump crosses one pipe fewer than through `tee` (and no tee process runs).
 *   The descriptors stay store.ts's, which closes them after 'done' or 'failed'.
 * - shared: several streams on one thread at once (the parts of a parallel backup), each
 *   read without blocking, as a pipe in this thread's own event loop, so a part that stalls
 *   (paused, or waiting on a lock) never holds up the others; one thread instead of an
 *   isolate of ~10 MiB per part, at ~10 % more CPU per byte. `tee` passes these on to zstd
 *   and writes the copy read here. The pipe handle owns the descriptor and closes it at the end.
 * Each stream is read to its end (or until passing it on failed): the end comes when the
 * writer (the dump tool, or tee) exits or is killed, or store.ts closes the writing end it
 * held when that never started.
 */
import fs from 'node:fs';
import net from 'node:net';
import { parentPort } from 'node:worker_threads';
import { RawInspector, type InspectSpec, type Inspection } from './inspect.js';

/** One stream to read. */
export interface InspectJob {
  /** Names the stream in the messages about it. */
  id: number;
  /** The reading end of the channel the dump tool (or tee) writes (store.ts openFifos). */
  fd: number;
  /** Read it alone, in blocking reads (see above); store.ts then closes `fd`, else this thread does. */
  blocking: boolean;
  /**
   * Blocking reads only: write every byte read to this descriptor (the compressor's input)
   * before reading it, so that this thread is the pipe between the dump tool and zstd and no
   * `tee` copies the dump. store.ts owns the descriptor and closes it after 'done' or 'failed'.
   */
  outFd?: number;
  spec: InspectSpec;
  /** How often to report the bytes read so far. */
  progressIntervalMs: number;
  /**
   * Bytes read so far, kept current after every read (one BigInt64 slot), which store.ts
   * reads on its own timer: a busy thread's progress messages may lag behind.
   */
  counter?: SharedArrayBuffer;
}

/** What the worker tells store.ts about a stream. */
export type InspectWorkerMessage =
  | { id: number; type: 'progress'; bytes: number }
  /** The dump's binlog position went by now (store.ts stamps consistent_at with its clock). */
  | { id: number; type: 'seen' }
  | { id: number; type: 'done'; inspection: Inspection }
  /**
   * The readers failed on this stream (a bug, or a read error), or passing it on failed
   * (`echo`: the process it was passed to went away, whose own exit says why).
   */
  | { id: number; type: 'failed'; message: string; echo?: boolean };

const port = parentPort!;
const post = (m: InspectWorkerMessage): void => port.postMessage(m);

// A pipe hands out at most what it holds (64 KiB by default) per read; the buffer is reused.
let buf: Buffer | null = null;

/** Why passing the stream on failed; EPIPE: its reader (zstd) is gone, which is only an echo. */
class PassError extends Error {
  constructor(readonly code: string | undefined, message: string) {
    super(message);
  }
}

/** Write `n` bytes of `data` to the blocking descriptor `fd`, all of them. */
function writeAll(fd: number, data: Buffer, n: number): void {
  let off = 0;
  try {
    while (off < n) off += fs.writeSync(fd, data, off, n - off);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PassError(code, `cannot pass the dump on to the compressor: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function readBlocking(job: InspectJob): void {
  const inspector = new RawInspector(job.spec, () => {
    post({ id: job.id, type: 'seen' });
    return new Date();
  });
  const counter = job.counter ? new BigInt64Array(job.counter) : null;
  buf ??= Buffer.allocUnsafe(1 << 20);
  let last = performance.now();
  try {
    for (;;) {
      const n = fs.readSync(job.fd, buf, 0, buf.length, null);
      if (n === 0) break;
      // Passed on first: the compressor works on it while the readers do.
      if (job.outFd !== undefined) writeAll(job.outFd, buf, n);
      inspector.update(buf.subarray(0, n));
      if (counter) Atomics.store(counter, 0, BigInt(inspector.bytes));
      const now = performance.now();
      if (now - last >= job.progressIntervalMs) {
        last = now;
        post({ id: job.id, type: 'progress', bytes: inspector.bytes });
      }
    }
    post({ id: job.id, type: 'done', inspection: inspector.end() });
  } catch (e) {
    const echo = e instanceof PassError && e.code === 'EPIPE';
    post({ id: job.id, type: 'failed', message: e instanceof Error ? e.message : String(e), ...(echo ? { echo } : {}) });
  }
}

function readShared(job: InspectJob): void {
  const inspector = new RawInspector(job.spec, () => {
    post({ id: job.id, type: 'seen' });
    return new Date();
  });
  const counter = job.counter ? new BigInt64Array(job.counter) : null;
  let last = performance.now();
  let over = false;
  // A pipe read without blocking, as process.stdin is: the handle owns the descriptor.
  const pipe = new net.Socket({ fd: job.fd, readable: true, writable: false });
  const failed = (e: unknown): void => {
    if (over) return;
    over = true;
    pipe.destroy();
    post({ id: job.id, type: 'failed', message: e instanceof Error ? e.message : String(e) });
  };
  pipe.on('data', (chunk: Buffer) => {
    if (over) return;
    try {
      inspector.update(chunk);
    } catch (e) {
      failed(e);
      return;
    }
    if (counter) Atomics.store(counter, 0, BigInt(inspector.bytes));
    const now = performance.now();
    if (now - last >= job.progressIntervalMs) {
      last = now;
      post({ id: job.id, type: 'progress', bytes: inspector.bytes });
    }
  });
  pipe.on('end', () => {
    if (over) return;
    let inspection: Inspection;
    try {
      inspection = inspector.end();
    } catch (e) {
      failed(e);
      return;
    }
    over = true;
    pipe.destroy();
    post({ id: job.id, type: 'done', inspection });
  });
  pipe.on('error', failed);
}

port.on('message', (job: InspectJob) => (job.blocking ? readBlocking(job) : readShared(job)));
