/**
 * The JavaScript heap's settings for every `strongbox` process, applied by main.ts's first
 * import, before anything else loads: `npm start`, `node dist/src/main.js serve` and the
 * `strongbox` command all get them, with no node flag to remember.
 *
 * The young generation (where V8 allocates, and collects in cheap scavenges) doubles each
 * time a scavenge finds many survivors, up to 2 x 16 MiB on 64-bit: during start-up, and
 * again under load, it grows to 32 MiB and stays there, resident, for the life of the
 * process; and the Buffers that die in it (every chunk a backup reads) are only freed at
 * the next scavenge, so tens of MiB of them piled up during a backup. That was a fifth of
 * an idle server's RSS and most of what a backup added to it (issue 14: 156 MiB idle,
 * 240 MiB peak with `jobs: 4`). Kept at its initial size (2 x 1 MiB) it scavenges more
 * often, which the benchmarks show costs no measurable CPU (bench/memory.ts): what a
 * scavenge costs is the live objects it copies, not the garbage it skips.
 *
 * `--max-semi-space-size` would say it directly, but V8 reads it only when the heap is
 * made, so it can be set on the command line only; the growth factor is read at each
 * scavenge, so setting it here takes effect at once. An operator's own setting wins:
 * `node --max-semi-space-size=16 ...` or the same in NODE_OPTIONS leaves the default
 * growth alone.
 */
import v8 from 'node:v8';

const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(a));
// Process-wide: the reader threads (pipeline/inspect-worker.ts) made later keep theirs small too.
if (!own) v8.setFlagsFromString('--semi-space-growth-factor=1');
