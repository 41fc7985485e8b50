/**
 * The server's memory (issue 14: peak RSS <= 200 MB during any backup or restore with
 * `jobs: 4`) and what keeping it down costs in CPU, measured through the API of real server
 * processes. Each round starts a fresh `strongbox serve` (built dist/) and records:
 *   start-up  the server's CPU seconds until GET /health answers
 *   idle      RSS once a branch is registered and the server has settled (1 s)
 *   backup    POST .../backups {jobs: 4} until success: wall time, the server's CPU time, and
 *             its highest RSS (VmRSS every 20 ms, and VmHWM)
 *   restore   POST .../branches {backup_id, jobs: 4} of that backup, into a new database
 *   requests  BENCH_REQUESTS GETs of the backups list (10 at a time): the server's CPU per request
 * With BENCH_BEFORE_ROOT=<another checkout, built> the code before a change runs as a second
 * side, in the same rounds (the order flips every round), and every figure is printed with
 * its ratio now/before (median and spread of the per-round ratios).
 *
 *   node --import tsx bench/memory.ts                 # 1,000,000 orders (~275 MB on disk), 3 rounds
 *   BENCH_BEFORE_ROOT=/tmp/before BENCH_ROWS=3000000 BENCH_ROUNDS=5 ...
 *   BENCH_KEEP=1 ...       keep the database (sbx_membench_<rows>) for the next run
 *   BENCH_DB=<name> ...    back up and restore that database instead (left as it is)
 *   BENCH_NO_BUILD=1 ...   use dist/ as it is
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { cpuSeconds, loadAverage, median, psql, registerBranch, root, rssMb, sh, startServer, type BenchServer } from './backup-common.js';

const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const jobs = Number(process.env.BENCH_JOBS ?? 4);
const requests = Number(process.env.BENCH_REQUESTS ?? 2000);
const beforeRoot = process.env.BENCH_BEFORE_ROOT ? path.resolve(process.env.BENCH_BEFORE_ROOT) : null;
// BENCH_DB: an existing database instead (e.g. one of four similar tables, so that jobs 4 runs four data parts at once).
const dbName = process.env.BENCH_DB ?? `sbx_membench_${rows}`;
const sqlFile = path.resolve(root, 'bench/pg-realistic.sql');

if (psql(`select count(*) from pg_database where datname = '${dbName}'`) !== '1') {
  console.log(`building ${dbName} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
  psql(`create database ${dbName}`);
  sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', dbName, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
}
if (!process.env.BENCH_NO_BUILD) sh('npm', ['run', 'build', '--silent']);
process.env.BENCH_NO_BUILD = '1';
// The servers inherit this (startServer): the request figure loads one token well past the default limit.
process.env.STRONGBOX_RATE_LIMIT_PER_MINUTE ??= '1000000';
console.log(`database ${dbName}: ${(Number(psql(`select pg_database_size('${dbName}')`)) / 2 ** 20).toFixed(0)} MiB; jobs ${jobs}; ${rounds} rounds; ${os.cpus().length} CPUs; ${loadAverage()}`);

type Figures = Record<'startCpu' | 'idle' | 'backupPeak' | 'backupCpu' | 'backupWall' | 'restorePeak' | 'restoreCpu' | 'restoreWall' | 'requestCpuMs' | 'peak', number>;

/** Highest VmRSS seen every 20 ms while `work` runs. */
async function sampled<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = rssMb(pid).current;
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid).current)), 20);
  try {
    const result = await work();
    return { result, peak: Math.max(peak, rssMb(pid).current) };
  } finally {
    clearInterval(timer);
  }
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 50));
}

async function measure(serverRoot: string): Promise<Figures> {
  const server: BenchServer = await startServer(serverRoot);
  const restored: string[] = [];
  try {
    const startCpu = cpuSeconds(server.pid);
    const branch = await registerBranch(server, 'bench', 'postgresql', `postgresql://postgres@127.0.0.1:5432/${dbName}`);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssMb(server.pid).current;

    let cpu0 = cpuSeconds(server.pid);
    let w0 = performance.now();
    const backup = await sampled(server.pid, async () => {
      const b = await server.call('POST', `${branch}/backups`, { jobs });
      await until(async () => {
        const d = await server.call('GET', `${branch}/backups/${b.id}`);
        if (d.state === 'success') return true;
        if (d.state !== 'pending' && d.state !== 'running') throw new Error(`backup ${d.state}: ${(await server.call('GET', `${branch}/backups/${b.id}/progress`)).error}`);
        return false;
      });
      return b.id as string;
    });
    const backupCpu = cpuSeconds(server.pid) - cpu0;
    const backupWall = (performance.now() - w0) / 1000;

    const name = `sbx_membench_r${crypto.randomBytes(4).toString('hex')}`;
    restored.push(name);
    w0 = performance.now();
    const restoreCpu0 = cpuSeconds(server.pid);
    const restore = await sampled(server.pid, async () => {
      const db = '/v1/organizations/default/databases/bench';
      await server.call('POST', `${db}/branches`, { name, backup_id: backup.result, jobs });
      await until(async () => {
        const b = await server.call('GET', `${db}/branches/${name}`);
        if (b.restore?.state === 'success') return true;
        if (b.restore?.state !== 'pending' && b.restore?.state !== 'running') throw new Error(`restore: ${JSON.stringify(b.restore)}`);
        return false;
      });
    });
    const restoreWall = (performance.now() - w0) / 1000;
    const restoreCpu = cpuSeconds(server.pid) - restoreCpu0;

    // Requests: the list a dashboard or a CLI reads most, 10 in flight.
    cpu0 = cpuSeconds(server.pid);
    let left = requests;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (left-- > 0) await server.call('GET', `${branch}/backups?per_page=25`);
      }),
    );
    const requestCpuMs = ((cpuSeconds(server.pid) - cpu0) * 1000) / requests;
    return { startCpu, idle, backupPeak: backup.peak, backupCpu, backupWall, restorePeak: restore.peak, restoreCpu, restoreWall, requestCpuMs, peak: rssMb(server.pid).peak };
  } finally {
    await server.stop();
    for (const db of restored) psql(`drop database if exists ${db}`);
  }
}

const sides = [{ name: 'now', root }, ...(beforeRoot ? [{ name: 'before', root: beforeRoot }] : [])];
const results = new Map<string, Figures[]>(sides.map((s) => [s.name, []]));
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const f = await measure(side.root);
      results.get(side.name)!.push(f);
      console.log(
        `round ${round + 1} ${side.name.padEnd(6)}: start-up CPU ${f.startCpu.toFixed(2)} s, idle ${f.idle.toFixed(0)} MiB; backup ${f.backupWall.toFixed(2)} s, CPU ${f.backupCpu.toFixed(2)} s, ` +
          `RSS ${f.backupPeak.toFixed(0)} MiB; restore ${f.restoreWall.toFixed(2)} s, CPU ${f.restoreCpu.toFixed(2)} s, RSS ${f.restorePeak.toFixed(0)} MiB; ${f.requestCpuMs.toFixed(2)} ms CPU a request; VmHWM ${f.peak.toFixed(0)} MiB (${loadAverage()})`,
      );
    }
  }
} finally {
  if (!process.env.BENCH_KEEP && !process.env.BENCH_DB) psql(`drop database if exists ${dbName}`);
}

const labels: Array<[keyof Figures, string, string]> = [
  ['idle', 'idle RSS', 'MiB'],
  ['backupPeak', `highest RSS, backup jobs ${jobs}`, 'MiB'],
  ['restorePeak', `highest RSS, restore jobs ${jobs}`, 'MiB'],
  ['peak', 'VmHWM over the run', 'MiB'],
  ['startCpu', 'start-up CPU', 's'],
  ['backupCpu', 'server CPU per backup', 's'],
  ['backupWall', 'backup wall time', 's'],
  ['restoreCpu', 'server CPU per restore', 's'],
  ['restoreWall', 'restore wall time', 's'],
  ['requestCpuMs', 'server CPU per list request', 'ms'],
];
console.log(`\nmedians over ${rounds} rounds (${loadAverage()}):`);
const now = results.get('now')!;
const before = results.get('before');
for (const [key, label, unit] of labels) {
  const mine = now.map((f) => f[key]);
  let line = `  ${label.padEnd(32)} ${median(mine).toFixed(2).padStart(8)} ${unit}`;
  if (before) {
    const theirs = before.map((f) => f[key]);
    const ratios = mine.map((x, i) => x / theirs[i]);
    line += `   before ${median(theirs).toFixed(2).padStart(8)} ${unit}   ratio ${median(ratios).toFixed(2)} (spread ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  }
  console.log(line);
}
console.log(`  target: highest RSS <= 200 MB (190.7 MiB) during any backup or restore with jobs ${jobs}`);
