/**
 * The JavaScript heap's settings for every `strongbox` process, applied by main.ts's first
 * import, before anything else loads: `npm start`, `node dist/src/main.js serve` and the
 * `strongbox` command all get them, with no node flag to remember.
 *
 * The young generation (where V8 allocates, and collects in cheap scavenges) doubles each
 * time a scavenge finds many survivors, up to 2 x 16 MiB on 64-bit: during start-up, and
 * again under load, it grew to 32 MiB and stayed there, resident, for the life of the
 * process; and the Buffers that die in it (every chunk a backup reads) are only freed at the
 * next scavenge, so tens of MiB of them piled up during a backup. That was a fifth of an idle
 * server's RSS and most of what a backup added to it (issue 14: 156 MiB idle, 240 MiB peak
 * with `jobs: 4`). Here it is held at 2 x YOUNG_SEMI_SPACE_MIB: big enough that the objects
 * of a request or a progress update die young (held at its initial 2 x 1 MiB, bench/memory.ts
 * measured 3-20 % more server CPU per backup and 9-21 % per list request; at 2 x 4 MiB no
 * cost), small enough to stay out of the way.
 *
 * `--max-semi-space-size` would say it directly, but V8 reads it only when the heap is made,
 * i.e. from the command line; the growth factor is read at each scavenge, so it is switched
 * here: no growth while the program loads, then growth allowed while the young generation is
 * below the cap and stopped once it reaches it (checked every 100 ms; a growth between two
 * checks can overshoot by one doubling). An operator's own setting wins: a semi-space flag
 * on the command line or in NODE_OPTIONS leaves V8's defaults alone.
 */
import v8 from 'node:v8';
import { collector } from './gc.js';

/** The cap of one semi-space (the young generation holds two). */
export const YOUNG_SEMI_SPACE_MIB = 4;

const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(a));
if (!own) {
  // Process-wide: the reader threads (pipeline/inspect-worker.ts) follow it too, within
  // their own resourceLimits.
  let growing = false;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  setInterval(() => {
    const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    const grow = young !== undefined && young.space_size < 2 * YOUNG_SEMI_SPACE_MIB * 1024 * 1024;
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(grow ? '--semi-space-growth-factor=2' : '--semi-space-growth-factor=1');
  }, 100).unref();
}

/**
 * Dead Buffers are freed only when V8 collects, and V8 hardly notices them: each chunk a
 * backup or a restore moves through this process (64 KiB read from a pipe or a file) is a
 * few hundred bytes of heap and 64 KiB outside it, so scavenges come rarely, and V8 waits for
 * ~64 MiB of such outside memory before it forces a collection (test/memory.test.ts: a
 * 217 MiB dump to two destinations added 45-48 MiB to the peak RSS, 34 with this). Here a
 * scavenge (about half a millisecond with the young generation above) runs whenever the
 * memory held by ArrayBuffers has grown by EXTERNAL_SLACK_MIB since the last look; Buffers
 * still in use survive it and raise the floor, so a large live Buffer causes no repeats.
 */
export const EXTERNAL_SLACK_MIB = 16;

const collect = collector();
if (collect) {
  let floor = process.memoryUsage().arrayBuffers;
  setInterval(() => {
    const held = process.memoryUsage().arrayBuffers;
    if (held < floor) floor = held;
    else if (held - floor >= EXTERNAL_SLACK_MIB * 1024 * 1024) {
      collect({ type: 'minor' });
      // Read at the next look too: the backing stores are freed by a sweeper right after.
      floor = process.memoryUsage().arrayBuffers;
    }
  }, 100).unref();
}
