/**
 * The worker thread behind storeStream's inspection (store.ts): reads the raw dump from a
 * FIFO that `tee` writes, in large blocking reads into one reused buffer, and runs the
 * readers (inspect.ts) on it. None of those bytes enter the main thread's event loop or
 * heap: no per-chunk callbacks, no garbage for the main thread's collector.
 *
 * It reads to the end of the FIFO whatever happens, so `tee` never blocks on it: the end
 * comes when every writer has closed it (tee exited or was killed; store.ts also opens and
 * closes it once when tee never did, so that the open below returns).
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { RawInspector, type InspectSpec, type Inspection } from './inspect.js';

/** What store.ts gives the worker. */
export interface InspectWorkerData {
  fifo: string;
  spec: InspectSpec;
  /** How often to report the bytes read so far. */
  progressIntervalMs: number;
}

/** What the worker tells store.ts. */
export type InspectWorkerMessage =
  | { type: 'open'; fd: number }
  | { type: 'progress'; bytes: number }
  /** The dump's binlog position went by now (store.ts stamps consistent_at with its clock). */
  | { type: 'seen' }
  | { type: 'done'; inspection: Inspection };

const port = parentPort!;
const { fifo, spec, progressIntervalMs } = workerData as InspectWorkerData;
const post = (m: InspectWorkerMessage): void => port.postMessage(m);

const inspector = new RawInspector(spec, () => {
  post({ type: 'seen' });
  return new Date();
});
// Blocks until the writer opens its end (or store.ts does, to release us).
const fd = fs.openSync(fifo, 'r');
post({ type: 'open', fd });
// A pipe hands out at most what it holds (64 KiB by default) per read; the buffer is reused.
const buf = Buffer.allocUnsafe(1 << 20);
let last = performance.now();
try {
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    inspector.update(buf.subarray(0, n));
    const now = performance.now();
    if (now - last >= progressIntervalMs) {
      last = now;
      post({ type: 'progress', bytes: inspector.bytes });
    }
  }
} finally {
  fs.closeSync(fd);
}
post({ type: 'done', inspection: inspector.end() });
