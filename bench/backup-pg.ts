/**
 * PostgreSQL backup through the API of a real server process (one local destination, zstd,
 * age), against three baselines measured in the same run, rounds interleaved in rotating order:
 *   by hand  `pg_dump -Fc -Z0 | zstd -3 -T0 | age -r KEY | tee >(sha256sum) > file`
 *            (the same work, no Strongbox: what the issue's "≤ 1.05×" is measured against)
 *   raw      `pg_dump -Fc -Z0 > /dev/null` (the dump tool alone: the floor)
 *   cron     `pg_dump -Fc > file` (pg_dump's own zlib: what most cron scripts run)
 *   checked  by hand, plus a sha256 of every raw byte on the way (`pg_dump … | tee >(sha256sum)
 *            | zstd …`): the nearest shell equivalent of what Strongbox also does, reading the
 *            raw dump for exact row counts and content digests
 * Every file is fsynced, as Strongbox's local destination does before it reports a backup
 * good. Prints each ratio's median and spread, and the server's peak RSS (VmHWM), on data that
 * compresses like real data (bench/pg-realistic.sql), not pgbench's 50:1 filler.
 *
 *   node --import tsx bench/backup-pg.ts          # 2,000,000 orders (~540 MB on disk)
 *   BENCH_ROWS=6000000 ...                        # the issue's 1.6 GB
 *   BENCH_SKIP=cron,raw (leave those baselines out)
 *   BENCH_ROUNDS=5 (default) BENCH_KEEP=1 (keep the database) BENCH_NO_BUILD=1
 *   BENCH_CPU_PROF=/tmp/prof (the server runs with --cpu-prof; a profile per thread on exit)
 *   BENCH_BEFORE_ROOT=<another checkout, built> (its server as one more side: before/after a change)
 */
import os from 'node:os';
import path from 'node:path';
import { compareBackups, loadAverage, mib, pgTool, psql, root, sh } from './backup-common.js';

const rows = Number(process.env.BENCH_ROWS ?? 2_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const dbName = `sbx_bench_${rows}`;
const sqlFile = path.resolve(root, 'bench/pg-realistic.sql');

if (psql(`select count(*) from pg_database where datname = '${dbName}'`) !== '1') {
  console.log(`building ${dbName} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
  psql(`create database ${dbName}`);
  sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', dbName, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
}
console.log(`database ${dbName}: ${mib(Number(psql(`select pg_database_size('${dbName}')`)))} MiB on disk; ${os.cpus().length} cores, ${os.cpus()[0].model}; ${loadAverage()}`);

const dump = `${pgTool('pg_dump')} -h 127.0.0.1 -U postgres -d ${dbName}`;
try {
  await compareBackups(
    'postgresql',
    `postgresql://postgres@127.0.0.1:5432/${dbName}`,
    [
      {
        name: 'byhand',
        label: 'by hand (pg_dump -Fc -Z0 | zstd -3 -T0 | age | tee >(sha256sum) > file)',
        script: (out, recipient) => `${dump} -Fc -Z0 | zstd -q -3 -T0 | age -r ${recipient} | tee >(sha256sum > ${out}.sha) > ${out}; sync ${out}`,
      },
      {
        name: 'checked',
        label: 'by hand, reading the raw dump too (pg_dump -Fc -Z0 | tee >(sha256sum) | zstd | age | tee >(sha256sum) > file)',
        script: (out, recipient) => `${dump} -Fc -Z0 | tee >(sha256sum > ${out}.raw.sha) | zstd -q -3 -T0 | age -r ${recipient} | tee >(sha256sum > ${out}.sha) > ${out}; sync ${out}`,
      },
      { name: 'raw', label: 'the raw read (pg_dump -Fc -Z0 > /dev/null)', script: () => `${dump} -Fc -Z0 > /dev/null` },
      { name: 'cron', label: 'pg_dump -Fc > file', script: (out) => `${dump} -Fc > ${out}; sync ${out}` },
    ],
    rounds,
  );
} finally {
  if (!process.env.BENCH_KEEP) psql(`drop database ${dbName}`);
}
