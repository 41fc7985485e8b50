/**
 * Asking V8 to collect, for heap.ts and for the end of a job.
 *
 * `gc` is handed out by a context made after `--expose-gc` is set (no node flag needed); a
 * process started with --expose-gc has it already. Nothing here runs until first used.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * `gc({ type: 'minor' })`: a scavenge of the young generation. `gc()`: a full collection, whose
 * ArrayBuffers are freed at once (in Node 20, `gc({ type: 'major' })` left them held: test/gc.test.ts).
 */
export type Collect = (opts?: { type: 'minor' }) => void;

let cached: Collect | null | undefined;

/** V8's `gc`, or null where it cannot be had. */
export function collector(): Collect | null {
  if (cached !== undefined) return cached;
  const exposed = (globalThis as { gc?: Collect }).gc;
  if (exposed) return (cached = exposed);
  try {
    // --expose-gc set now reaches contexts made from now on: a fresh one hands out `gc`.
    v8.setFlagsFromString('--expose-gc');
    cached = vm.runInNewContext('gc') as Collect;
  } catch {
    cached = null;
  }
  return cached;
}

/** At most one full collection this often (ms), however many jobs end. */
export const AFTER_JOB_MIN_INTERVAL_MS = 5_000;
let lastAfterJob = -Infinity;

/**
 * A full collection once a backup, restore or verification has ended (at most one every
 * AFTER_JOB_MIN_INTERVAL_MS). What a job leaves behind is garbage in the old generation: the
 * objects and the Buffer headers (each holding 64 KiB outside the heap) that outlived two
 * scavenges while they waited in a pipe. V8 collects the old generation only once it has grown
 * well past its size at the last collection, so job after job the server's RSS rose by 10-20
 * MiB each before a collection brought it down (a MariaDB `jobs: 4` backup and restore, four
 * times over in one server: 133 → 232 MiB, 238 at the peak, the heap 54 → 98 MiB, ArrayBuffers
 * 4 → 46 MiB; with this, 169 → 186 MiB). It takes 22-30 ms on the event loop here, right after
 * the job (setImmediate), at most once every 5 seconds.
 */
export function collectAfterJob(now = performance.now()): boolean {
  if (now - lastAfterJob < AFTER_JOB_MIN_INTERVAL_MS) return false;
  const gc = collector();
  if (!gc) return false;
  lastAfterJob = now;
  setImmediate(() => gc());
  return true;
}
