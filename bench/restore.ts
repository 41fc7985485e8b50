/**
 * Single-stream restores through the API of a real server process (a new branch from a
 * backup: the artifact read back and sha256-checked here, then age -d → zstd -d → the restore
 * tool as OS pipes; for MariaDB the dump passes through the server once more, to be rewritten
 * for its new name), against baselines measured in the same run, rounds interleaved in
 * rotating order. Each side restores into a database of its own, dropped after it.
 *   PostgreSQL  tool     `pg_restore --no-owner --no-acl --exit-on-error --single-transaction`
 *                        of the same dump as a plain file (pg_dump -Fc -Z0), one job
 *               by hand  `age -d | zstd -d | pg_restore …` of the stored artifact
 *   MariaDB     tool     `mariadb db < dump.sql` (the same dump, decrypted beforehand)
 *               by hand  `age -d | zstd -d | mariadb db`
 *   before    (BENCH_BEFORE_ROOT=<checkout>) that checkout's built server restoring the same
 *             backup (its artifact copied into its own data dir), e.g. the code before a change
 * Prints each ratio's median and spread, the load average before and after, and the server's
 * peak RSS (VmHWM). A dataset that already exists is used as it is and never dropped; one the
 * run builds is dropped at the end unless BENCH_KEEP=1.
 *
 *   node --import tsx bench/restore.ts
 *   BENCH_ENGINE=postgresql|mysql (default both) BENCH_ROWS (PostgreSQL orders, 1,000,000)
 *   BENCH_MY_ROWS (MariaDB orders, 500,000) BENCH_ROUNDS (3) BENCH_KEEP=1 BENCH_NO_BUILD=1
 *   BENCH_SERVER_ROOT=<checkout> BENCH_BEFORE_ROOT=<checkout> BENCH_CPU_PROF=dir
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupOnce, interleave, mariadb, mib, pgTool, printRatios, psql, registerBranch, root, rssMb, sh, startServer, timeShell, type BenchServer } from './backup-common.js';

const engines = (process.env.BENCH_ENGINE ?? 'postgresql,mysql').split(',');
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const pgRows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const myRows = Number(process.env.BENCH_MY_ROWS ?? 500_000);

/** Restore `backupId` into a new branch (a new database named after it) and wait; resolves with seconds. */
async function restoreOnce(server: BenchServer, database: string, backupId: string, branchName: string): Promise<number> {
  const base = `/v1/organizations/default/databases/${database}/branches`;
  const t0 = performance.now();
  await server.call('POST', base, { name: branchName, backup_id: backupId });
  // Polled every 200 ms: restores of a minute or more polled faster hit the server's
  // default rate limit (600 requests a minute); a 429 is waited out, not fatal.
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    let b: any;
    try {
      b = await server.call('GET', `${base}/${branchName}`);
    } catch (e) {
      if (/rate_limited/.test(String(e))) continue;
      throw e;
    }
    const state = b.restore?.state;
    if (state === 'success') break;
    if (state === 'failed' || state === 'canceled') throw new Error(`restore ${state}: ${b.restore.error}`);
  }
  return (performance.now() - t0) / 1000;
}

/** The stored artifact of a backup in the server's default local destination. */
async function artifactFile(server: BenchServer, branch: string, backupId: string): Promise<string> {
  const list = await server.call('GET', `${branch}/backups/${backupId}/artifacts`);
  return path.join(server.dataDir, 'backups', list.data[0].path);
}

const loadavg = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`load average at start: ${loadavg()} (${os.cpus().length} cores)`);
const server = await startServer();
// The code before a change, restoring the same backups as one more side.
const before = process.env.BENCH_BEFORE_ROOT ? await startServer(process.env.BENCH_BEFORE_ROOT) : null;
/** Datasets this run built (and may drop); one that was there is someone else's. */
const built: string[] = [];

/**
 * The same backup in the "before" server: the artifact and manifest copied into its data dir
 * and the catalog rebuilt from storage is more than a bench needs, so it takes its own backup
 * of the same database (same tools, same bytes up to timestamps).
 */
async function beforeBackup(database: string, kind: 'postgresql' | 'mysql', url: string): Promise<string> {
  const branch = await registerBranch(before!, database, kind, url);
  return (await backupOnce(before!, branch)).backup.id;
}
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-restore-'));
let seq = 0;
const name = (prefix: string) => `${prefix}_${process.pid}_${seq++}`;
try {
  const idle = rssMb(server.pid);
  if (engines.includes('postgresql')) {
    const db = `sbx_bench_${pgRows}`;
    if (psql(`select count(*) from pg_database where datname = '${db}'`) !== '1') {
      built.push(db);
      console.log(`building ${db} from pg-realistic.sql with ${pgRows} rows (once; BENCH_KEEP=1 keeps it)...`);
      psql(`create database ${db}`);
      sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-q', '-v', `rows=${pgRows}`, '-f', path.resolve(root, 'bench/pg-realistic.sql')]);
    }
    console.log(`PostgreSQL ${db}: ${mib(Number(psql(`select pg_database_size('${db}')`)))} MiB on disk; ${os.cpus().length} cores`);
    const branch = await registerBranch(server, 'pgbench', 'postgresql', `postgresql://postgres@127.0.0.1:5432/${db}`);
    const { backup } = await backupOnce(server, branch);
    const beforeId = before ? await beforeBackup('pgbench', 'postgresql', `postgresql://postgres@127.0.0.1:5432/${db}`) : '';
    const stored = await artifactFile(server, branch, backup.id);
    const dumpFile = path.join(scratch, 'pg.dump');
    await timeShell(`${pgTool('pg_dump')} -h 127.0.0.1 -U postgres -Fc -Z0 -d ${db} > ${dumpFile}`);
    const restore = `${pgTool('pg_restore')} -h 127.0.0.1 -U postgres --no-owner --no-acl --exit-on-error --single-transaction`;
    const into = async (what: (target: string) => Promise<number>, create: boolean): Promise<number> => {
      const target = name('sbx_bench_r');
      if (create) psql(`create database ${target}`);
      try {
        return await what(target);
      } finally {
        psql(`drop database if exists ${target}`);
      }
    };
    const times = await interleave(
      [
        { name: 'strongbox', run: () => into((t) => restoreOnce(server, 'pgbench', backup.id, t), false) },
        { name: 'tool', run: () => into((t) => timeShell(`${restore} -d ${t} ${dumpFile}`), true) },
        { name: 'byhand', run: () => into((t) => timeShell(`age -d -i ${server.identityFile} ${stored} | zstd -q -d | ${restore} -d ${t}`), true) },
        ...(before ? [{ name: 'before', run: () => into((t) => restoreOnce(before, 'pgbench', beforeId, t), false) }] : []),
      ],
      rounds,
    );
    printRatios(times, 'strongbox', [
      { name: 'tool', label: 'pg_restore --single-transaction of the dump as a plain file, one job' },
      { name: 'byhand', label: 'age -d | zstd -d | pg_restore (the same work by hand)' },
      ...(before ? [{ name: 'before', label: `the server of ${process.env.BENCH_BEFORE_ROOT}` }] : []),
    ]);
    if (before) printRatios(times, 'before', [{ name: 'tool', label: 'pg_restore --single-transaction of the dump as a plain file, one job' }]);
    console.log(`load average: ${loadavg()}`);
  }
  if (engines.includes('mysql')) {
    process.env.BENCH_MY_ROWS = String(myRows);
    const { ensureMysqlDataset } = await import('./backup-mysql.js');
    const existed = mariadb(`select count(*) from information_schema.schemata where schema_name = 'sbx_bench_my_${myRows}'`) === '1';
    const db = await ensureMysqlDataset();
    if (!existed) built.push(db);
    console.log(`MariaDB ${db}: ${mib(Number(mariadb(`select sum(data_length + index_length) from information_schema.tables where table_schema = '${db}'`)))} MiB on disk`);
    const branch = await registerBranch(server, 'mybench', 'mysql', `mysql://root@127.0.0.1:3306/${db}`);
    const { backup } = await backupOnce(server, branch);
    const beforeId = before ? await beforeBackup('mybench', 'mysql', `mysql://root@127.0.0.1:3306/${db}`) : '';
    const stored = await artifactFile(server, branch, backup.id);
    const sqlFile = path.join(scratch, 'dump.sql');
    await timeShell(`age -d -i ${server.identityFile} ${stored} | zstd -q -d > ${sqlFile}`);
    const into = async (what: (target: string) => Promise<number>, create: boolean): Promise<number> => {
      const target = name('sbx_bench_r');
      if (create) mariadb(`create database ${target}`);
      try {
        return await what(target);
      } finally {
        mariadb(`drop database if exists ${target}`);
      }
    };
    const client = 'mariadb -h 127.0.0.1 -uroot';
    const times = await interleave(
      [
        { name: 'strongbox', run: () => into((t) => restoreOnce(server, 'mybench', backup.id, t), false) },
        { name: 'tool', run: () => into((t) => timeShell(`${client} ${t} < ${sqlFile}`), true) },
        { name: 'byhand', run: () => into((t) => timeShell(`age -d -i ${server.identityFile} ${stored} | zstd -q -d | ${client} ${t}`), true) },
        ...(before ? [{ name: 'before', run: () => into((t) => restoreOnce(before, 'mybench', beforeId, t), false) }] : []),
      ],
      rounds,
    );
    printRatios(times, 'strongbox', [
      { name: 'tool', label: 'mariadb db < dump.sql' },
      { name: 'byhand', label: 'age -d | zstd -d | mariadb db (the same work by hand, without the rewrite)' },
      ...(before ? [{ name: 'before', label: `the server of ${process.env.BENCH_BEFORE_ROOT}` }] : []),
    ]);
    if (before) printRatios(times, 'before', [{ name: 'tool', label: 'mariadb db < dump.sql' }]);
    console.log(`load average: ${loadavg()}`);
  }
  const rss = rssMb(server.pid);
  console.log(`server RSS: peak ${rss.peak.toFixed(0)} MiB (idle ${idle.current.toFixed(0)} MiB at start; limit 200 MiB)`);
  console.log(`load average at the end: ${loadavg()}`);
} finally {
  await server.stop();
  await before?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
  if (!process.env.BENCH_KEEP) {
    for (const db of built) {
      if (db.startsWith('sbx_bench_my_')) mariadb(`drop database if exists ${db}`);
      else psql(`drop database if exists ${db}`);
    }
  }
}
