/**
 * What content digests cost. The dump readers (src/pipeline/rowcount) sit in every
 * backup's stream; with digests they also hash each table's rows and each object's
 * definition. Measured here on the Node process's CPU time, against baselines taken in
 * the same run:
 *   - the same reader with digests off (counts and inventory only): the digest's own cost;
 *   - one sha256 over the whole stream (what HashCounter already does twice per backup);
 *   - the dump tool itself (pg_dump / mariadb-dump writing to a file), which the reader
 *     runs beside, on the other core.
 * The dumps are taken once to a file and fed to each reader in 64 KiB chunks, as a pipe
 * delivers them; each measurement is the median of BENCH_ROUNDS runs.
 *
 *   node --import tsx bench/digests.ts            # 1,000,000 orders (pg-realistic.sql), 500,000 MariaDB rows
 *   BENCH_ROWS=300000 BENCH_MY_ROWS=200000 ...    # smaller
 *   BENCH_KEEP=1 ...                              # keep the databases (shared with bench/backup.ts)
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { rowCounterFor } from '../src/pipeline/rowcount/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const myRows = Number(process.env.BENCH_MY_ROWS ?? 500_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const pgDb = `sbx_bench_${rows}`;
const myDb = `sbx_bench_my_${myRows}`;
const sqlFile = path.resolve(root, 'bench/pg-realistic.sql');

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const psql = (sql: string, db = 'postgres') => sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-Atc', sql]).trim();
const mariadb = (sql: string) => sh('mariadb', ['--no-defaults', '-h', '127.0.0.1', '-u', 'root', '-N', '-e', sql]).trim();

function ensurePg(): void {
  if (psql(`select count(*) from pg_database where datname = '${pgDb}'`) === '1') return;
  console.log(`building ${pgDb} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
  psql(`create database ${pgDb}`);
  sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', pgDb, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
}

function ensureMy(): void {
  if (mariadb(`select count(*) from information_schema.schemata where schema_name = '${myDb}'`) === '1') return;
  console.log(`building ${myDb} with ${myRows} rows...`);
  mariadb(`create database ${myDb}`);
  // Rows shaped like an orders table: numbers, short text, a timestamp, a longer note, some NULLs.
  mariadb(`use ${myDb};
    create table orders (id int primary key, customer varchar(40), amount decimal(12,2), status varchar(12), created_at datetime(6), note text);
    insert into orders select seq, concat('customer ', seq % 9973), (seq * 7919 % 100000) / 100, elt(1 + seq % 4, 'new', 'paid', 'shipped', 'returned'),
      timestamp '2024-01-01 00:00:00' + interval seq second, if(seq % 3 = 0, null, concat(md5(seq), ' ', md5(seq * 3))) from seq_1_to_${myRows};`);
}

function pgDumpPath(): string {
  const majors = fs.readdirSync('/usr/lib/postgresql').map(Number).sort((a, b) => b - a);
  return `/usr/lib/postgresql/${majors[0]}/bin/pg_dump`;
}

/** Run the dump tool into `file`; wall seconds. */
async function dumpTo(kind: 'postgresql' | 'mysql', file: string): Promise<number> {
  const t0 = performance.now();
  const [cmd, args] =
    kind === 'postgresql'
      ? [pgDumpPath(), ['--format=custom', '--compress=0', '-h', '127.0.0.1', '-U', 'postgres', '-d', pgDb]]
      : ['mariadb-dump', ['--no-defaults', '-h', '127.0.0.1', '-u', 'root', '--single-transaction', '--quick', '--routines', '--triggers', '--events', '--default-character-set=utf8mb4', myDb]];
  const child = spawn(cmd, args, { stdio: ['ignore', fs.openSync(file, 'w'), 'inherit'] });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`${cmd} exited ${code}`);
  return (performance.now() - t0) / 1000;
}

/** CPU seconds this process spends feeding `file` through `stage` (null: reading alone). */
async function cpuOf(file: string, stage: (() => Transform) | null): Promise<number> {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const before = process.cpuUsage();
  const source = fs.createReadStream(file, { highWaterMark: 64 * 1024 });
  await (stage ? pipeline(source, stage(), sink) : pipeline(source, sink));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

function sha256Stage(): Transform {
  const h = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      h.digest();
      cb();
    },
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(kind: 'postgresql' | 'mysql'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-digests-'));
  const file = path.join(dir, 'dump');
  try {
    await dumpTo(kind, file); // warm the caches
    const dumpSeconds = median(await Promise.all([dumpTo(kind, file)]));
    const size = fs.statSync(file).size;
    const results = { read: [] as number[], sha256: [] as number[], counts: [] as number[], digests: [] as number[] };
    let tables = 0;
    let objects = 0;
    for (let i = 0; i < rounds; i++) {
      results.read.push(await cpuOf(file, null));
      results.sha256.push(await cpuOf(file, sha256Stage));
      results.counts.push(await cpuOf(file, () => rowCounterFor(kind, { digests: false }).stream));
      const rc = rowCounterFor(kind);
      results.digests.push(await cpuOf(file, () => rc.stream));
      const c = rc.contents();
      if (!c) throw new Error(`the ${kind} reader could not read the dump: ${rc.reason()}`);
      tables = c.tables.length;
      objects = c.objects.length;
    }
    const read = median(results.read);
    const [sha, counts, digests] = [median(results.sha256) - read, median(results.counts) - read, median(results.digests) - read];
    const mib = size / 1048576;
    console.log(`${kind}: ${mib.toFixed(0)} MiB dump, ${tables} tables, ${objects} other objects; ${kind === 'postgresql' ? 'pg_dump' : 'mariadb-dump'} took ${dumpSeconds.toFixed(2)} s`);
    console.log(`  reader, counts only        : ${counts.toFixed(2)} s CPU (${(mib / counts).toFixed(0)} MiB/s)`);
    console.log(`  reader, counts + digests   : ${digests.toFixed(2)} s CPU (${(mib / digests).toFixed(0)} MiB/s)`);
    console.log(`  digest cost                : ${(digests - counts).toFixed(2)} s CPU = ${(digests / counts).toFixed(2)}x the reader without digests`);
    console.log(`                               = ${((digests - counts) / sha).toFixed(2)}x one sha256 of the stream (${sha.toFixed(2)} s; a backup already does two)`);
    console.log(`                               = ${(((digests - counts) / dumpSeconds) * 100).toFixed(1)} % of the dump tool's own time`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

ensurePg();
ensureMy();
await measure('postgresql');
await measure('mysql');
if (!process.env.BENCH_KEEP) {
  psql(`drop database ${pgDb}`);
  mariadb(`drop database ${myDb}`);
}
