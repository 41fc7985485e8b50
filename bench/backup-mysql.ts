/**
 * MariaDB backup through the API of a real server process (one local destination, zstd,
 * age), against baselines measured in the same run, rounds interleaved in rotating order:
 *   issue    `mariadb-dump --single-transaction db | zstd -3 -T0 > file` (the baseline)
 *   by hand  the same work as Strongbox by hand: its dump options (routines, triggers, events,
 *            utf8mb4, --quick) `| zstd -3 -T0 | age -r KEY | tee >(sha256sum) > file`
 *   checked  by hand, plus a sha256 of every raw byte on the way (`… | tee >(sha256sum) | zstd …`):
 *            the nearest shell equivalent of Strongbox's reading the raw dump for exact row
 *            counts, content digests, the largest statement and the binlog position
 * Files are fsynced, as Strongbox's local destination does. Data: bench/mysql-realistic.sql
 * (text, numbers, times, JSON, multi-byte names, blobs), built once per size.
 *
 *   node --import tsx bench/backup-mysql.ts       # 1,000,000 orders: ~290 MB of SQL
 *   BENCH_MY_ROWS=2000000 ... BENCH_ROUNDS=5 (default) BENCH_KEEP=1 BENCH_NO_BUILD=1 BENCH_CPU_PROF=dir
 *   BENCH_BEFORE_ROOT=<another checkout, built> (its server as one more side: before/after a change)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareBackups, loadAverage, mariadb, mib, root, timeShell } from './backup-common.js';

const rows = Number(process.env.BENCH_MY_ROWS ?? 1_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const dbName = `sbx_bench_my_${rows}`;

/** Build the data set once (BENCH_KEEP=1 keeps it for the next run). */
export async function ensureMysqlDataset(): Promise<string> {
  if (mariadb(`select count(*) from information_schema.schemata where schema_name = '${dbName}'`) !== '1') {
    console.log(`building ${dbName} from mysql-realistic.sql with ${rows} orders (once; BENCH_KEEP=1 keeps it)...`);
    mariadb(`create database ${dbName}`);
    const sql = fs.readFileSync(path.join(root, 'bench/mysql-realistic.sql'), 'utf8').replaceAll(':rows', String(rows));
    const file = path.join(os.tmpdir(), `strongbox-bench-${process.pid}.sql`);
    fs.writeFileSync(file, sql);
    try {
      await timeShell(`mariadb -h 127.0.0.1 -uroot ${dbName} < ${file}`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
  return dbName;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await ensureMysqlDataset();
  const size = mariadb(`select sum(data_length + index_length) from information_schema.tables where table_schema = '${dbName}'`);
  console.log(`database ${dbName}: ${mib(Number(size))} MiB on disk; ${os.cpus().length} cores, ${os.cpus()[0].model}; ${loadAverage()}`);
  const dump = `mariadb-dump -h 127.0.0.1 -uroot --single-transaction`;
  try {
    await compareBackups(
      'mysql',
      `mysql://root@127.0.0.1:3306/${dbName}`,
      [
        { name: 'issue', label: 'mariadb-dump --single-transaction | zstd -3 -T0 > file', script: (out) => `${dump} ${dbName} | zstd -q -3 -T0 > ${out}; sync ${out}` },
        {
          name: 'byhand',
          label: 'the same work by hand (same dump options | zstd | age | tee >(sha256sum) > file)',
          script: (out, recipient) => `${dump} --quick --routines --triggers --events --default-character-set=utf8mb4 ${dbName} | zstd -q -3 -T0 | age -r ${recipient} | tee >(sha256sum > ${out}.sha) > ${out}; sync ${out}`,
        },
        {
          name: 'checked',
          label: 'the same, reading the raw dump too (… | tee >(sha256sum) | zstd | age | tee >(sha256sum) > file)',
          script: (out, recipient) => `${dump} --quick --routines --triggers --events --default-character-set=utf8mb4 ${dbName} | tee >(sha256sum > ${out}.raw.sha) | zstd -q -3 -T0 | age -r ${recipient} | tee >(sha256sum > ${out}.sha) > ${out}; sync ${out}`,
        },
      ],
      rounds,
    );
  } finally {
    if (!process.env.BENCH_KEEP) mariadb(`drop database ${dbName}`);
  }
}
