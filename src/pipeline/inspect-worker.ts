/**
 * A reader thread behind storeStream's inspection (store.ts): reads raw dumps from the
 * channels `tee` writes (store.ts openRawChannel) and runs the readers (inspect.ts) on them.
 * None of those bytes enter the main thread's event loop or heap.
 *
 * One thread reads several streams at once (the parts of a parallel backup, backups of
 * several branches): each channel is read without blocking, as a pipe in this thread's own
 * event loop, so a stream that stalls (a paused part, a dump waiting on a lock) never holds
 * up the others. Each stream is read to its end whatever happens: the end comes when tee
 * exits or is killed (or store.ts closes the writing end it held, when tee never started).
 * The descriptor is store.ts's, already open, and this thread closes it at the end of its
 * stream (the pipe handle owns it from the start).
 */
import net from 'node:net';
import { parentPort } from 'node:worker_threads';
import { RawInspector, type InspectSpec, type Inspection } from './inspect.js';

/** One stream to read. */
export interface InspectJob {
  /** Names the stream in the messages about it. */
  id: number;
  /** The reading end of the channel tee writes (store.ts openRawChannel); closed here at its end. */
  fd: number;
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
  /** The readers failed on this stream (a bug, or a read error): it was closed. */
  | { id: number; type: 'failed'; message: string };

const port = parentPort!;
const post = (m: InspectWorkerMessage): void => port.postMessage(m);

function start(job: InspectJob): void {
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

port.on('message', (job: InspectJob) => start(job));
