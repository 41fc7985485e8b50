/**
 * Parallel dump and restore (`jobs: 4`) against one stream (`jobs: 1`), measured in the same
 * run through the API of a real server process, in interleaved pairs (the order flips every
 * round so both see the same machine weather):
 *   backup   POST .../backups {jobs: 1} vs {jobs: 4}, until success
 *   restore  POST .../branches {backup_id, jobs: 1} of the one-stream backup vs
 *            {backup_id, jobs: 4} of the parallel one, into new databases, until success
 * Prints the medians, the ratio parallel/single of each pair (median and spread) and the
 * server's peak RSS (VmHWM) over the whole run, on data that compresses like real data
 * (bench/pg-realistic.sql: two tables, orders ~2/3 of the bytes, events ~1/3; with
 * BENCH_ENGINE=mariadb, bench/mysql-realistic.sql: customers, orders, events, attachments).
 *
 *   node --import tsx bench/parallel.ts             # 1,000,000 orders (~250 MB on disk)
 *   BENCH_ENGINE=mariadb ...                        # the same on MariaDB (mariadb-dump parts)
 *   BENCH_ROWS=3000000 BENCH_ROUNDS=5 ...           # bigger, more rounds
 *   BENCH_KEEP=1 ...                                # keep the database for the next run
 *   BENCH_NO_BUILD=1 ...                            # use dist/ as it is
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const jobs = Number(process.env.BENCH_JOBS ?? 4);
const maria = process.env.BENCH_ENGINE === 'mariadb';
// A name of its own: bench/backup.ts drops its database when it ends.
const dbName = `sbx_parbench_${maria ? 'my_' : ''}${rows}`;
const sqlFile = maria ? path.resolve(root, 'bench/mysql-realistic.sql') : path.resolve(root, 'bench/pg-realistic.sql');

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const psql = (sql: string, db = 'postgres') => sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-Atc', sql]).trim();
const mariadb = (sql: string) => sh('mariadb', ['--no-defaults', '--protocol=TCP', '-h', '127.0.0.1', '-u', 'root', '-N', '-B', '-e', sql]).trim();
/** Drop a database of the engine benchmarked. */
const dropDb = (name: string) => (maria ? mariadb(`drop database if exists \`${name}\``) : psql(`drop database if exists ${name}`));

function ensureDataset(): number {
  if (maria) {
    if (mariadb(`select count(*) from information_schema.schemata where schema_name = '${dbName}'`) !== '1') {
      console.log(`building ${dbName} from mysql-realistic.sql with ${rows} orders (once; BENCH_KEEP=1 keeps it)...`);
      mariadb(`create database ${dbName}`);
      const file = path.join(os.tmpdir(), `${dbName}.sql`);
      fs.writeFileSync(file, fs.readFileSync(sqlFile, 'utf8').replaceAll(':rows', String(rows)));
      try {
        sh('bash', ['-c', `mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -u root ${dbName} < ${file}`]);
      } finally {
        fs.rmSync(file, { force: true });
      }
    }
    return Number(mariadb(`select sum(data_length + index_length) from information_schema.tables where table_schema = '${dbName}'`));
  }
  if (psql(`select count(*) from pg_database where datname = '${dbName}'`) !== '1') {
    console.log(`building ${dbName} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
    psql(`create database ${dbName}`);
    sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', dbName, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
  }
  return Number(psql(`select pg_database_size('${dbName}')`));
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** The server's resident set now (VmRSS), in MiB. */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Highest VmRSS seen (sampled every 20 ms) while `work` runs, per kind of work. */
const peaks: Record<string, number> = {};
async function sampled<T>(what: string, pid: number, work: () => Promise<T>): Promise<T> {
  let peak = rssMb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 20);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    peaks[what] = Math.max(peaks[what] ?? 0, peak, rssMb(pid));
  }
}

const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

const dbSize = ensureDataset();
console.log(`load average at the start: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`);
console.log(`${maria ? 'MariaDB' : 'PostgreSQL'} database ${dbName}: ${mb(dbSize)} MiB on disk; ${os.cpus().length} CPUs; jobs ${jobs} vs 1, ${rounds} rounds`);
if (!process.env.BENCH_NO_BUILD) sh('npm', ['run', 'build', '--silent']);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-par-'));
const port = await freePort();
const token = `bench02:${crypto.randomBytes(18).toString('base64url')}`;
// As `npm start` runs it (package.json); MALLOC_ARENA_MAX=<n> in the bench's environment wins.
const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token, STRONGBOX_RATE_LIMIT_PER_MINUTE: '100000', STRONGBOX_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' };
const server = spawn(process.execPath, [path.join(root, 'dist/src/main.js'), 'serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
const call = async (method: string, url: string, body?: unknown) => {
  const r = await fetch(base + url, { method, headers: { authorization: token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json: any = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(`${method} ${url}: ${JSON.stringify(json)}`);
  return json;
};
const restored: string[] = [];
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      if (i > 600) throw new Error('server did not start in 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const dbPath = '/v1/organizations/default/databases/bench';
  await call('POST', '/v1/organizations/default/databases', { name: 'bench', kind: maria ? 'mysql' : 'postgresql' });
  await call('POST', `${dbPath}/branches`, { name: 'main', connection_url: maria ? `mysql://root@127.0.0.1:3306/${dbName}` : `postgresql://postgres@127.0.0.1:5432/${dbName}` });
  const idleRss = peakRssMb(server.pid!);
  const backups = `${dbPath}/branches/main/backups`;

  const backup = (n: number) => sampled(`backup jobs ${n}`, server.pid!, () => backupOnce(n));
  const restore = (id: string, n: number) => sampled(`restore jobs ${n}`, server.pid!, () => restoreOnce(id, n));
  const backupOnce = async (n: number): Promise<{ seconds: number; id: string; size: number }> => {
    const t0 = performance.now();
    const b = await call('POST', backups, { jobs: n });
    for (;;) {
      const done = await call('GET', `${backups}/${b.id}`);
      if (done.state === 'success') {
        const seconds = (performance.now() - t0) / 1000;
        if (maria && n > 1) {
          // How long commits were blocked, after how many tries (manifest.json of the local copy).
          const a = (await call('GET', `${backups}/${b.id}/artifacts`)).data[0];
          const m = JSON.parse(fs.readFileSync(path.join(dataDir, 'backups', path.dirname(a.path), 'manifest.json'), 'utf8'));
          console.log(`  jobs ${n}: commits blocked ${m.consistency?.commits_blocked_ms} ms (${m.consistency?.method}, taken at try ${m.consistency?.attempts})`);
        }
        return { seconds, id: b.id, size: done.size };
      }
      if (done.state !== 'pending' && done.state !== 'running') throw new Error(`backup with jobs ${n}: ${done.state}: ${(await call('GET', `${backups}/${b.id}/artifacts`)).backup_error}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const restoreOnce = async (backupId: string, n: number): Promise<number> => {
    const name = `sbx_parbench_r${crypto.randomBytes(4).toString('hex')}`;
    restored.push(name);
    const t0 = performance.now();
    await call('POST', `${dbPath}/branches`, { name, backup_id: backupId, jobs: n });
    for (;;) {
      const b = await call('GET', `${dbPath}/branches/${name}`);
      if (b.restore?.state === 'success') break;
      if (b.restore?.state !== 'pending' && b.restore?.state !== 'running') throw new Error(`restore with jobs ${n}: ${JSON.stringify(b.restore)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - t0) / 1000;
    dropDb(name);
    await call('DELETE', `${dbPath}/branches/${name}`);
    return seconds;
  };

  // Warm the page cache so neither side pays for the first cold read.
  await backup(1);
  const b1: number[] = [];
  const bN: number[] = [];
  const r1: number[] = [];
  const rN: number[] = [];
  let sizes = { single: 0, parallel: 0 };
  for (let i = 0; i < rounds; i++) {
    const flip = i % 2 === 1;
    const [first, second] = flip ? [jobs, 1] : [1, jobs];
    const x = await backup(first);
    const y = await backup(second);
    const single = flip ? y : x;
    const parallel = flip ? x : y;
    b1.push(single.seconds);
    bN.push(parallel.seconds);
    sizes = { single: single.size, parallel: parallel.size };
    const rx = await restore(flip ? parallel.id : single.id, first);
    const ry = await restore(flip ? single.id : parallel.id, second);
    r1.push(flip ? ry : rx);
    rN.push(flip ? rx : ry);
    console.log(
      `round ${i + 1}: backup ${b1[i].toFixed(2)} s vs ${bN[i].toFixed(2)} s (${(bN[i] / b1[i]).toFixed(2)}), restore ${r1[i].toFixed(2)} s vs ${rN[i].toFixed(2)} s (${(rN[i] / r1[i]).toFixed(2)})`,
    );
    for (const id of [single.id, parallel.id]) await call('DELETE', `${backups}/${id}`);
  }
  const peak = peakRssMb(server.pid!);
  const ratios = (a: number[], b: number[]) => a.map((x, i) => b[i] / x);
  console.log(`backup  jobs 1: median ${median(b1).toFixed(2)} s; jobs ${jobs}: median ${median(bN).toFixed(2)} s; ratio ${jobs}/1 median ${median(ratios(b1, bN)).toFixed(2)} (spread ${spread(ratios(b1, bN))})`);
  console.log(`restore jobs 1: median ${median(r1).toFixed(2)} s; jobs ${jobs}: median ${median(rN).toFixed(2)} s; ratio ${jobs}/1 median ${median(ratios(r1, rN)).toFixed(2)} (spread ${spread(ratios(r1, rN))})`);
  console.log(`stored: ${mb(sizes.single)} MiB in one stream, ${mb(sizes.parallel)} MiB in parts`);
  console.log(`server peak RSS over the run: ${peak.toFixed(0)} MiB (idle ${idleRss.toFixed(0)} MiB; target <= 200 MiB with jobs ${jobs})`);
  console.log(`highest RSS while each ran: ${Object.entries(peaks).map(([k, v]) => `${k} ${v.toFixed(0)} MiB`).join(', ')}`);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  for (const name of restored) dropDb(name);
  fs.rmSync(dataDir, { recursive: true, force: true });
  if (!process.env.BENCH_KEEP) dropDb(dbName);
  console.log(`load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`);
}
