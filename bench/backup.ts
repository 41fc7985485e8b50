/**
 * Backup throughput and memory, measured against a baseline taken in the same run:
 *   baseline  = `pg_dump -Fc -Z0 | zstd -3 -T0 | age -r KEY`, hashed and written to two files
 *               (the raw tools doing the same work, no Strongbox)
 *   strongbox = the same database backed up through the API of a real server process,
 *               compressed, age-encrypted and written to two destinations at once
 * Prints the time ratio and the server's peak RSS (VmHWM), on data that compresses like
 * real data (../shared/bench/pg-realistic.sql), not pgbench's 50:1 filler.
 *
 *   npm run bench                       # 1,000,000 orders (~250 MB on disk)
 *   BENCH_ROWS=6000000 npm run bench    # ~1.4 GB on disk
 *   BENCH_KEEP=1 ...                    # keep the database for the next run
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
const dbName = `sbx_bench_${rows}`;
const sqlFile = path.resolve(root, '../shared/bench/pg-realistic.sql');

function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const psql = (sql: string, db = 'postgres') => sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-Atc', sql]).trim();

function ensureDataset(): number {
  const exists = psql(`select count(*) from pg_database where datname = '${dbName}'`) === '1';
  if (!exists) {
    console.log(`building ${dbName} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
    psql(`create database ${dbName}`);
    sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', dbName, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
  }
  return Number(psql(`select pg_database_size('${dbName}')`));
}

function pgDumpPath(): string {
  const majors = fs.readdirSync('/usr/lib/postgresql').map(Number).sort((a, b) => b - a);
  return `/usr/lib/postgresql/${majors[0]}/bin/pg_dump`;
}

/**
 * The raw tools, piped by hand, doing the same work as Strongbox: what a careful shell
 * script would do (pg_dump | zstd | age, hashed, written to two files).
 */
async function baseline(): Promise<{ seconds: number; bytes: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-base-'));
  const recipient = /# public key: (\S+)/.exec(sh('age-keygen', []))![1];
  const t0 = performance.now();
  const dump = spawn(pgDumpPath(), ['-Fc', '-Z0', '-h', '127.0.0.1', '-U', 'postgres', '-d', dbName], { stdio: ['ignore', 'pipe', 'inherit'] });
  const zstd = spawn('zstd', ['-q', '-c', '-3', '-T0'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const age = spawn('age', ['-r', recipient], { stdio: ['pipe', 'pipe', 'inherit'] });
  dump.stdout.pipe(zstd.stdin);
  zstd.stdout.pipe(age.stdin);
  let bytes = 0;
  const hash = crypto.createHash('sha256');
  const files = [fs.createWriteStream(path.join(dir, 'a')), fs.createWriteStream(path.join(dir, 'b'))];
  age.stdout.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
    let wait = 0;
    for (const f of files) if (!f.write(c)) wait++;
    if (wait) {
      age.stdout.pause();
      let drained = 0;
      for (const f of files) f.once('drain', () => ++drained === wait && age.stdout.resume());
    }
  });
  await Promise.all([dump, zstd, age].map((p) => new Promise((r) => p.on('exit', r))));
  await Promise.all(files.map((f) => new Promise((r) => f.end(r))));
  for (const f of ['a', 'b']) {
    const fd = fs.openSync(path.join(dir, f), 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  const seconds = (performance.now() - t0) / 1000;
  fs.rmSync(dir, { recursive: true, force: true });
  return { seconds, bytes };
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
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

interface Round {
  baseline: number;
  strongbox: number;
}

async function strongbox(rounds: number): Promise<{ rounds: Round[]; bytes: number; baselineBytes: number; rawBytes: number; idleRssMb: number; peakRssMb: number }> {
  sh('npm', ['run', 'build', '--silent']);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-'));
  const port = await freePort();
  const token = `bench01:${crypto.randomBytes(18).toString('base64url')}`;
  const env = { ...process.env, STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token, STRONGBOX_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' };
  const server = spawn(process.execPath, [path.join(root, 'dist/src/main.js'), 'serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, url: string, body?: unknown) => {
    const r = await fetch(base + url, { method, headers: { authorization: token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json: any = await r.json();
    if (!r.ok) throw new Error(`${method} ${url}: ${JSON.stringify(json)}`);
    return json;
  };
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        if (i > 600) throw new Error('server did not start in 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Two destinations at once, as the design promises: the default local folder and a second one.
    await call('POST', '/v1/organizations/default/storage-destinations', { name: 'second', provider: 'local', config: { path: path.join(dataDir, 'backups', 'second') } });
    await call('POST', '/v1/organizations/default/databases', { name: 'bench', kind: 'postgresql' });
    await call('PATCH', '/v1/organizations/default/databases/bench', { storage_destinations: ['local', 'second'] });
    await call('POST', '/v1/organizations/default/databases/bench/branches', { name: 'main', connection_url: `postgresql://postgres@127.0.0.1:5432/${dbName}` });
    const idleRssMb = peakRssMb(server.pid!);
    const branch = '/v1/organizations/default/databases/bench/branches/main/backups';
    const results: Round[] = [];
    let done: any;
    let progress: any;
    let baselineBytes = 0;
    // Alternate baseline and Strongbox so that both see the same machine weather.
    for (let i = 0; i < rounds; i++) {
      const base = await baseline();
      baselineBytes = base.bytes;
      const t0 = performance.now();
      const b = await call('POST', branch, {});
      for (;;) {
        done = await call('GET', `${branch}/${b.id}`);
        if (done.state !== 'pending' && done.state !== 'running') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const seconds = (performance.now() - t0) / 1000;
      if (done.state !== 'success') throw new Error(`backup ${done.state}`);
      progress = await call('GET', `${branch}/${b.id}/progress`);
      results.push({ baseline: base.seconds, strongbox: seconds });
      console.log(`round ${i + 1}: baseline ${base.seconds.toFixed(2)} s, strongbox ${seconds.toFixed(2)} s, ratio ${(seconds / base.seconds).toFixed(2)}`);
    }
    return { rounds: results, bytes: done.size, baselineBytes, rawBytes: progress.bytes_read, idleRssMb, peakRssMb: peakRssMb(server.pid!) };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.on('exit', r));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dbSize = ensureDataset();
console.log(`database ${dbName}: ${mb(dbSize)} MiB on disk`);
// Warm the page cache so neither side pays for the first cold read.
await baseline();
const s = await strongbox(Number(process.env.BENCH_ROUNDS ?? 3));
const ratio = median(s.rounds.map((r) => r.strongbox / r.baseline));
console.log(`baseline  dump|zstd|age|sha256|2 files: median ${median(s.rounds.map((r) => r.baseline)).toFixed(2)} s, ${mb(s.baselineBytes)} MiB out`);
console.log(`strongbox backup through the API   : median ${median(s.rounds.map((r) => r.strongbox)).toFixed(2)} s, ${mb(s.bytes)} MiB stored from ${mb(s.rawBytes)} MiB dumped (${(s.rawBytes / s.bytes).toFixed(2)}:1)`);
console.log(`time ratio strongbox/baseline      : ${ratio.toFixed(2)} (median of per-round ratios)`);
console.log(`server peak RSS                    : ${s.peakRssMb.toFixed(0)} MiB (idle ${s.idleRssMb.toFixed(0)} MiB, +${(s.peakRssMb - s.idleRssMb).toFixed(0)} MiB over ${s.rounds.length} backups to 2 destinations; target < 200 MiB)`);
console.log(`stored size ratio strongbox/base   : ${(s.bytes / s.baselineBytes).toFixed(3)}`);
if (!process.env.BENCH_KEEP) psql(`drop database ${dbName}`);
