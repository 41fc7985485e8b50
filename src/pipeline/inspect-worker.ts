/**
 * The worker thread behind storeStream's inspection (store.ts): reads the raw dump from a
 * FIFO that `tee` writes, in large blocking reads into one reused buffer, and runs the
 * readers (inspect.ts) on it. None of those bytes enter the main thread's event loop or
 * heap: no per-chunk callbacks, no garbage for the main thread's collector.
 *
 * One job at a time, then it waits for the next (store.ts keeps an idle worker, so a
 * backup does not pay for starting a thread). It reads each stream to its end whatever
 * happens: the end comes when tee exits or is killed (or store.ts closes the writing end it
 * held, when tee never started). The descriptor is store.ts's, already open: tee writes
 * into the pipe from the start without waiting for this thread (openRawChannel).
 */
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { RawInspector, type InspectSpec, type Inspection } from './inspect.js';

/** One stream to read. */
export interface InspectJob {
  /** The reading end of the channel tee writes (store.ts openRawChannel), closed by store.ts once this job is over. */
  fd: number;
  spec: InspectSpec;
  /** How often to report the bytes read so far. */
  progressIntervalMs: number;
  /**
   * Bytes read so far, kept current after every read (one BigInt64 slot): the reads block,
   * so a dump that stalls right after a burst would otherwise leave its bytes unreported
   * until the next read; store.ts reads this on its own timer.
   */
  counter?: SharedArrayBuffer;
}

/** What the worker tells store.ts about the current job. */
export type InspectWorkerMessage =
  | { type: 'progress'; bytes: number }
  /** The dump's binlog position went by now (store.ts stamps consistent_at with its clock). */
  | { type: 'seen' }
  | { type: 'done'; inspection: Inspection };

const port = parentPort!;
const post = (m: InspectWorkerMessage): void => port.postMessage(m);
// A pipe hands out at most what it holds (64 KiB by default) per read; the buffer is reused.
const buf = Buffer.allocUnsafe(1 << 20);

function run(job: InspectJob): void {
  const inspector = new RawInspector(job.spec, () => {
    post({ type: 'seen' });
    return new Date();
  });
  const fd = job.fd;
  let last = performance.now();
  const counter = job.counter ? new BigInt64Array(job.counter) : null;
  // The descriptor is store.ts's (opened by the main thread): it closes it after 'done'.
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    inspector.update(buf.subarray(0, n));
    if (counter) Atomics.store(counter, 0, BigInt(inspector.bytes));
    const now = performance.now();
    if (now - last >= job.progressIntervalMs) {
      last = now;
      post({ type: 'progress', bytes: inspector.bytes });
    }
  }
  post({ type: 'done', inspection: inspector.end() });
}

port.on('message', (job: InspectJob) => run(job));
