/**
 * Turns on the event loop for API requests (issue 14: `/health` and running jobs stalled
 * while the backups list was loaded). A catalog read on SQLite runs on the event loop
 * (better-sqlite3 is synchronous), and Node serves every request whose bytes arrived in one
 * poll of the sockets before it looks at anything else: ten clients each asking for a list
 * page held `/health`, the progress of running backups and their pipes for ten pages' time.
 *
 * Here the loop's time goes in slices: the first API request after the loop went round opens
 * a slice of SLICE_MS; a request that comes while the slice is spent waits for the next round
 * (setImmediate, after the loop has polled every socket and pipe again) and tries again then.
 * Requests keep their order; a loop that is not busy never defers one; the work is the same,
 * only who goes first changes. Public routes (`/health`, the OpenAPI document) never wait.
 */
import { performance } from 'node:perf_hooks';

/** How long API requests may hold the event loop in one round before other events are heard. */
export const SLICE_MS = 2;

let sliceStart = -1;

function endSlice(): void {
  sliceStart = -1;
}

/** null: go on now. A promise: wait for it (the next round of the loop), then go on. */
export function takeTurn(): Promise<void> | null {
  const now = performance.now();
  if (sliceStart < 0) {
    sliceStart = now;
    // Runs before any request deferred from here on: the next round opens a new slice.
    setImmediate(endSlice);
  }
  if (now - sliceStart < SLICE_MS) return null;
  return new Promise((resolve) =>
    setImmediate(() => {
      const again = takeTurn();
      if (again === null) resolve();
      else void again.then(resolve);
    }),
  );
}
