/**
 * What the backup and restore benchmarks share: a real server process (built dist/, its own
 * data dir, one local destination, age encryption to a key of the bench's own), backups and
 * restores through its API, baselines run by hand in bash (the pipelines people write),
 * interleaved rounds in rotating order so that every side sees the same machine weather,
 * and a report of medians, spreads and the server's peak RSS (VmHWM).
 * BENCH_SERVER_ROOT=<checkout> runs that checkout's built server instead of this one's;
 * BENCH_BEFORE_ROOT=<checkout> runs it beside this one's, as one more side ("before"), so
 * that a change is measured against the code before it in the same run.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export const psql = (sql: string, db = 'postgres'): string => sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-Atc', sql]).trim();
export const mariadb = (sql: string, db?: string): string => sh('mariadb', ['-h', '127.0.0.1', '-uroot', '-N', '-B', ...(db ? [db] : []), '-e', sql]).trim();

/** A PostgreSQL client tool of the newest major on this machine (what Strongbox picks for a current server). */
export function pgTool(name: string): string {
  const majors = fs.readdirSync('/usr/lib/postgresql').map(Number).sort((a, b) => b - a);
  return `/usr/lib/postgresql/${majors[0]}/bin/${name}`;
}

/** Run a bash pipeline (set -o pipefail: any stage failing fails it); resolves with the seconds it took. */
export async function timeShell(script: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn('bash', ['-c', `set -euo pipefail; ${script}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`baseline failed (${code}): ${script}\n${stderr}`);
  return (performance.now() - t0) / 1000;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resident memory of a process: the current and the peak (VmHWM) since it started, in MiB. */
export function rssMb(pid: number): { current: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { current: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** CPU seconds (user + system) a process has used so far, all its threads together. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface BenchServer {
  pid: number;
  dataDir: string;
  /** The age recipient backups are encrypted to, and the identity file that decrypts them. */
  recipient: string;
  identityFile: string;
  call(method: string, url: string, body?: unknown): Promise<any>;
  stop(): Promise<void>;
}

/**
 * Build (unless BENCH_NO_BUILD) and start `strongbox serve` with a data dir of its own, its
 * default local destination only, and the default organization encrypting to a fresh key.
 */
export async function startServer(serverRoot = process.env.BENCH_SERVER_ROOT ?? root): Promise<BenchServer> {
  // BENCH_SERVER_ROOT: another checkout's built dist/ (e.g. the commit before a change, for its numbers).
  if (!process.env.BENCH_NO_BUILD && serverRoot === root) sh('npm', ['run', 'build', '--silent']);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-'));
  const identityFile = path.join(dataDir, 'bench-age.key');
  sh('age-keygen', ['-o', identityFile]);
  const recipient = /# public key: (\S+)/.exec(fs.readFileSync(identityFile, 'utf8'))![1];
  const port = await freePort();
  const token = `bench01:${crypto.randomBytes(18).toString('base64url')}`;
  const env = {
    ...process.env,
    // As `npm start` runs it (package.json); MALLOC_ARENA_MAX=<n> in the bench's environment wins.
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
    STRONGBOX_DATA_DIR: dataDir,
    STRONGBOX_PORT: String(port),
    STRONGBOX_BOOTSTRAP_TOKEN: token,
    STRONGBOX_AGE_IDENTITY_FILE: identityFile,
    STRONGBOX_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  };
  const nodeArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const server = spawn(process.execPath, [...nodeArgs, path.join(serverRoot, 'dist/src/main.js'), 'serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, url: string, body?: unknown): Promise<any> => {
    const r = await fetch(base + url, { method, headers: { authorization: token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json: any = await r.json();
    if (!r.ok) throw new Error(`${method} ${url}: ${JSON.stringify(json)}`);
    return json;
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      if (i > 600) throw new Error('server did not start in 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await call('PATCH', '/v1/organizations/default', { encryption_recipients: [recipient] });
  return {
    pid: server.pid!,
    dataDir,
    recipient,
    identityFile,
    call,
    async stop() {
      server.kill('SIGTERM');
      await new Promise((r) => server.on('exit', r));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Register `name` (a database with one branch "main") on the server; returns the branch's API path. */
export async function registerBranch(server: BenchServer, name: string, kind: 'postgresql' | 'mysql', url: string): Promise<string> {
  await server.call('POST', '/v1/organizations/default/databases', { name, kind });
  await server.call('POST', `/v1/organizations/default/databases/${name}/branches`, { name: 'main', connection_url: url });
  return `/v1/organizations/default/databases/${name}/branches/main`;
}

/**
 * Take one backup through the API and wait for it; resolves with the seconds from the request
 * to success, and the CPU time the server process used meanwhile (its own work: the dump
 * tools and compressors are other processes).
 */
export async function backupOnce(server: BenchServer, branch: string): Promise<{ seconds: number; cpu: number; backup: any; progress: any }> {
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  const b = await server.call('POST', `${branch}/backups`, {});
  let done: any;
  for (;;) {
    done = await server.call('GET', `${branch}/backups/${b.id}`);
    if (done.state !== 'pending' && done.state !== 'running') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(server.pid) - cpu0;
  if (done.state !== 'success') {
    const progress = await server.call('GET', `${branch}/backups/${b.id}/progress`);
    throw new Error(`backup ${done.state}: ${progress.error}`);
  }
  return { seconds, cpu, backup: done, progress: await server.call('GET', `${branch}/backups/${b.id}/progress`) };
}

/** One side of a comparison: a name and what to run (resolves with seconds). */
export interface Side {
  name: string;
  run(round: number): Promise<number>;
}

/**
 * Run every side once per round, in an order that rotates from round to round, after one
 * warm-up round that is not counted (page cache, first connections). Returns seconds per side.
 */
export async function interleave(sides: Side[], rounds: number, log = true): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>(sides.map((s) => [s.name, []]));
  for (let round = -1; round < rounds; round++) {
    const order = sides.map((_, i) => sides[(i + Math.max(0, round)) % sides.length]);
    const line: string[] = [];
    for (const side of order) {
      const s = await side.run(round);
      if (round >= 0) times.get(side.name)!.push(s);
      line.push(`${side.name} ${s.toFixed(2)} s`);
    }
    if (log) console.log(`${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${line.join(', ')}`);
  }
  return times;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Print, for each baseline, the median and spread (min–max) of the per-round ratios
 * subject/baseline, with both medians in seconds.
 */
export function printRatios(times: Map<string, number[]>, subject: string, baselines: Array<{ name: string; label: string }>): void {
  const mine = times.get(subject)!;
  console.log(`${subject}: median ${median(mine).toFixed(2)} s over ${mine.length} rounds`);
  for (const b of baselines) {
    // A baseline left out of the run (BENCH_SKIP) has no times.
    const theirs = times.get(b.name);
    if (!theirs) continue;
    const ratios = mine.map((s, i) => s / theirs[i]);
    console.log(
      `  vs ${b.label}: ratio ${median(ratios).toFixed(2)} (spread ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}; baseline median ${median(theirs).toFixed(2)} s)`,
    );
  }
}

export const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);

/** The machine's load average (1, 5, 15 min): every figure is reported with it (the machine is shared and noisy). */
export const loadAverage = (): string => `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;

/** A shell pipeline a backup is compared with; `script` may write to `out` (a scratch file) and encrypt to `recipient` (the server's). */
export interface BackupBaseline {
  name: string;
  label: string;
  script(out: string, recipient: string): string;
}

/**
 * Backups of `url` through the API of a fresh server (and of BENCH_BEFORE_ROOT's server, as
 * one more side, when set) against `baselines`, rounds interleaved in rotating order
 * (BENCH_SKIP=name,name leaves baselines out); prints every ratio, the server's CPU per backup
 * and its RSS. Stops the servers and removes its scratch folder at the end.
 */
export async function compareBackups(kind: 'postgresql' | 'mysql', url: string, baselines: BackupBaseline[], rounds: number): Promise<void> {
  const server = await startServer();
  const before = process.env.BENCH_BEFORE_ROOT ? await startServer(process.env.BENCH_BEFORE_ROOT) : null;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-out-'));
  try {
    const out = path.join(scratch, 'out');
    const idle = rssMb(server.pid);
    const skip = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean));
    const cpu: Record<'strongbox' | 'before', number[]> = { strongbox: [], before: [] };
    let last: Awaited<ReturnType<typeof backupOnce>> | null = null;
    const apiSide = async (name: 'strongbox' | 'before', s: BenchServer): Promise<Side> => {
      const branch = await registerBranch(s, 'bench', kind, url);
      return {
        name,
        run: async (round: number) => {
          const r = await backupOnce(s, branch);
          if (name === 'strongbox') last = r;
          if (round >= 0) cpu[name].push(r.cpu);
          return r.seconds;
        },
      };
    };
    const sides: Side[] = [await apiSide('strongbox', server), ...(before ? [await apiSide('before', before)] : [])];
    for (const b of baselines) if (!skip.has(b.name)) sides.push({ name: b.name, run: () => timeShell(b.script(out, server.recipient)) });
    const times = await interleave(sides, rounds);
    const rss = rssMb(server.pid);
    printRatios(times, 'strongbox', [
      ...baselines.map(({ name, label }) => ({ name, label })),
      ...(before ? [{ name: 'before', label: `the server of ${process.env.BENCH_BEFORE_ROOT} (the code before a change)` }] : []),
    ]);
    const b = last!;
    const c = cpu.strongbox;
    console.log(`stored ${mib(b.backup.size)} MiB from ${mib(b.progress.bytes_read)} MiB dumped; server CPU per backup: median ${median(c).toFixed(2)} s (spread ${Math.min(...c).toFixed(2)}–${Math.max(...c).toFixed(2)})`);
    console.log(`server RSS: peak ${rss.peak.toFixed(0)} MiB (idle ${idle.current.toFixed(0)} MiB before the first backup; limit 200 MiB)`);
    console.log(`at the end: ${loadAverage()}`);
    if (before) console.log(`before: server CPU per backup median ${median(cpu.before).toFixed(2)} s, peak RSS ${rssMb(before.pid).peak.toFixed(0)} MiB`);
  } finally {
    await server.stop();
    await before?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
