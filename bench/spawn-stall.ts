/**
 * How long starting a backup's processes stalls the event loop (every request to the server
 * waits that long), at a server's size in memory: storeStream (its mkfifo, zstd and age
 * started on the spawner thread, src/pipeline/spawner.ts) against the same processes started
 * here with child_process.spawn, as storeStream did before (the baseline, in the same run,
 * rounds interleaved). Each round starts BENCH_STREAMS streams at once (a `jobs: 4` backup
 * stores four parts) of 1 MiB each, while a 1 ms timer records how late it fires. The same
 * for restores: unpackStream (age -d and zstd -d on the spawner thread, their output read
 * here, as a MariaDB restore reads it) against age -d | zstd -d spawned here.
 *
 *   node --import tsx bench/spawn-stall.ts    # BENCH_RSS_MIB (220), BENCH_STREAMS (4), BENCH_ROUNDS (10)
 *                                             # BENCH_KIND=backup|restore (both by default)
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { storeStream } from '../src/pipeline/store.js';
import { unpackStream } from '../src/pipeline/unpack.js';

const rssMib = Number(process.env.BENCH_RSS_MIB ?? 220);
const streams = Number(process.env.BENCH_STREAMS ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 10);
const kinds = process.env.BENCH_KIND ? [process.env.BENCH_KIND] : ['backup', 'restore'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-spawn-'));
const keygen = spawnSync('age-keygen', ['-o', path.join(dir, 'key.txt')], { encoding: 'utf8' });
const recipient = /(age1\S+)/.exec(keygen.stderr)![1];
const data = randomBytes(1 << 20);
const identity = path.join(dir, 'key.txt');
const stored = spawnSync('sh', ['-c', `zstd -q -c -3 | age -r ${recipient}`], { input: data, maxBuffer: 1 << 24 }).stdout;

// A heap like a busy server's: objects and buffers, touched (a fork copies the page tables of what is mapped).
const ballast: unknown[] = [];
while (process.memoryUsage().rss < rssMib * 2 ** 20) {
  for (let i = 0; i < 100_000; i++) ballast.push({ id: i, name: `row ${i}`, tags: [i, i + 1] });
  ballast.push(Buffer.alloc(4 << 20, 1));
}

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

/** The baseline: zstd | age started here, fed and read here, as storeStream did before. */
function byHand(): Promise<void> {
  return new Promise((resolve, reject) => {
    // storeStream made its FIFOs with mkfifo too.
    const mkfifo = spawn('mkfifo', ['-m', '600', path.join(dir, `f${Math.random()}`)], { stdio: 'ignore' });
    mkfifo.on('exit', () => {
      const age = spawn('age', ['-r', recipient], { stdio: ['pipe', 'pipe', 'pipe'] });
      const zstd = spawn('zstd', ['-q', '-c', '-3', '-T0'], { stdio: ['pipe', age.stdin, 'pipe'] });
      age.stdin.destroy();
      age.stdout.pipe(sink());
      age.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`age exited with ${code}`))));
      zstd.stdin.end(data);
    });
  });
}

async function aside(): Promise<void> {
  await storeStream({ readable: Readable.from([data]) }, { compression: 'zstd', recipients: [recipient], targets: [{ id: 'x', stream: sink() }] });
}

/** The baseline of a restore: age -d | zstd -d started here, fed and read here, as unpackStream did before. */
function unpackByHand(): Promise<void> {
  return new Promise((resolve, reject) => {
    const zstd = spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const age = spawn('age', ['-d', '-i', identity], { stdio: ['pipe', zstd.stdin, 'pipe'] });
    zstd.stdin.destroy();
    zstd.stdout.pipe(sink());
    zstd.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited with ${code}`))));
    age.stdin.end(stored);
  });
}

async function unpackAside(): Promise<void> {
  const u = unpackStream(Readable.from([stored]), { compression: 'zstd', identityFiles: [identity] });
  u.readable.pipe(sink());
  await u.done;
}

/** The timer's lateness while `streams` streams are stored (or unpacked) at once. */
async function measure(run: () => Promise<void>): Promise<{ max: number; p99: number; ms: number }> {
  const late: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    late.push(now - last - 1);
    last = now;
  }, 1);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: streams }, run));
  const ms = performance.now() - t0;
  clearInterval(timer);
  late.sort((a, b) => a - b);
  return { max: late.at(-1) ?? 0, p99: late[Math.floor(late.length * 0.99)] ?? 0, ms };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB; ${os.cpus().length} cores; ${streams} streams at once, ${rounds} rounds; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const kind of kinds) {
  const sides = kind === 'restore' ? { baseline: unpackByHand, spawner: unpackAside } : { baseline: byHand, spawner: aside };
  const results: Record<string, Array<{ max: number; p99: number; ms: number }>> = { baseline: [], spawner: [] };
  await measure(sides.spawner);
  await measure(sides.baseline);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? (['spawner', 'baseline'] as const) : (['baseline', 'spawner'] as const);
    for (const side of order) results[side].push(await measure(sides[side]));
  }
  for (const side of ['baseline', 'spawner'] as const) {
    const xs = results[side];
    console.log(`${kind}, ${side === 'baseline' ? 'spawned here (before)' : 'spawner thread (now)'}: longest stall median ${median(xs.map((x) => x.max)).toFixed(1)} ms (worst ${Math.max(...xs.map((x) => x.max)).toFixed(1)}), p99 lateness ${median(xs.map((x) => x.p99)).toFixed(1)} ms, wall ${median(xs.map((x) => x.ms)).toFixed(0)} ms`);
  }
  const ratio = median(results.spawner.map((x) => x.max)) / median(results.baseline.map((x) => x.max));
  console.log(`${kind}: longest stall, spawner / spawned here: ${ratio.toFixed(2)}`);
}
fs.rmSync(dir, { recursive: true, force: true });
ballast.length = 0;
