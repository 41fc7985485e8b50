/**
 * PostgreSQL backup through the API of a real server process (one local destination, zstd,
 * age), against three baselines measured in the same run, rounds interleaved in rotating order:
 *   by hand  `pg_dump -Fc -Z0 | zstd -3 -T0 | age -r KEY | tee >(sha256sum) > file`
 *            (the same work, no Strongbox: what the issue's "≤ 1.05×" is measured against)
 *   raw      `pg_dump -Fc -Z0 > /dev/null` (the dump tool alone: the floor)
 *   cron     `pg_dump -Fc > file` (pg_dump's own zlib: what most cron scripts run)
 * Every file is fsynced, as Strongbox's local destination does before it reports a backup
 * good. Prints each ratio's median and spread, and the server's peak RSS (VmHWM), on data that
 * compresses like real data (../shared/bench/pg-realistic.sql), not pgbench's 50:1 filler.
 *
 *   node --import tsx bench/backup-pg.ts          # 2,000,000 orders (~540 MB on disk)
 *   BENCH_ROWS=6000000 ...                        # the issue's 1.6 GB
 *   BENCH_SKIP=cron,raw (leave those baselines out)
 *   BENCH_ROUNDS=5 (default) BENCH_KEEP=1 (keep the database) BENCH_NO_BUILD=1
 *   BENCH_CPU_PROF=/tmp/prof (the server runs with --cpu-prof; a profile per thread on exit)
 *   BENCH_BEFORE_ROOT=<another checkout, built> (its server as one more side: before/after a change)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupOnce, interleave, loadAverage, median, mib, pgTool, printRatios, psql, registerBranch, root, rssMb, sh, startServer, timeShell } from './backup-common.js';

const rows = Number(process.env.BENCH_ROWS ?? 2_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const dbName = `sbx_bench_${rows}`;
const sqlFile = path.resolve(root, '../shared/bench/pg-realistic.sql');

if (psql(`select count(*) from pg_database where datname = '${dbName}'`) !== '1') {
  console.log(`building ${dbName} from pg-realistic.sql with ${rows} rows (once; BENCH_KEEP=1 keeps it)...`);
  psql(`create database ${dbName}`);
  sh('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', dbName, '-q', '-v', `rows=${rows}`, '-f', sqlFile]);
}
console.log(`database ${dbName}: ${mib(Number(psql(`select pg_database_size('${dbName}')`)))} MiB on disk; ${os.cpus().length} cores, ${os.cpus()[0].model}; ${loadAverage()}`);

const server = await startServer();
const before = process.env.BENCH_BEFORE_ROOT ? await startServer(process.env.BENCH_BEFORE_ROOT) : null;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-out-'));
try {
  const branch = await registerBranch(server, 'bench', 'postgresql', `postgresql://postgres@127.0.0.1:5432/${dbName}`);
  const beforeBranch = before ? await registerBranch(before, 'bench', 'postgresql', `postgresql://postgres@127.0.0.1:5432/${dbName}`) : '';
  const beforeCpu: number[] = [];
  const idle = rssMb(server.pid);
  const dump = `${pgTool('pg_dump')} -h 127.0.0.1 -U postgres -d ${dbName}`;
  const out = path.join(scratch, 'out');
  let last: Awaited<ReturnType<typeof backupOnce>> | null = null;
  const cpu: number[] = [];
  // BENCH_SKIP=cron,raw (names of baselines): leave those out, for shorter runs.
  const skip = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean));
  const times = await interleave(
    [
      {
          name: 'strongbox',
          run: async (round: number) => {
            last = await backupOnce(server, branch);
            if (round >= 0) cpu.push(last.cpu);
            return last.seconds;
          },
        },
      ...(before
        ? [
            {
              name: 'before',
              run: async (round: number) => {
                const r = await backupOnce(before, beforeBranch);
                if (round >= 0) beforeCpu.push(r.cpu);
                return r.seconds;
              },
            },
          ]
        : []),
      { name: 'byhand', run: () => timeShell(`${dump} -Fc -Z0 | zstd -q -3 -T0 | age -r ${server.recipient} | tee >(sha256sum > ${out}.sha) > ${out}; sync ${out}`) },
      { name: 'raw', run: () => timeShell(`${dump} -Fc -Z0 > /dev/null`) },
      { name: 'cron', run: () => timeShell(`${dump} -Fc > ${out}; sync ${out}`) },
    ].filter((side) => !skip.has(side.name)),
    rounds,
  );
  const rss = rssMb(server.pid);
  printRatios(times, 'strongbox', [
    { name: 'byhand', label: 'by hand (pg_dump -Fc -Z0 | zstd -3 -T0 | age | tee >(sha256sum) > file)' },
    { name: 'raw', label: 'the raw read (pg_dump -Fc -Z0 > /dev/null)' },
    { name: 'cron', label: 'pg_dump -Fc > file' },
    ...(before ? [{ name: 'before', label: `the server of ${process.env.BENCH_BEFORE_ROOT} (the code before a change)` }] : []),
  ]);
  const b = last!;
  console.log(`stored ${mib(b.backup.size)} MiB from ${mib(b.progress.bytes_read)} MiB dumped; server CPU per backup: median ${median(cpu).toFixed(2)} s (spread ${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)})`);
  console.log(`server RSS: peak ${rss.peak.toFixed(0)} MiB (idle ${idle.current.toFixed(0)} MiB before the first backup; limit 200 MiB)`);
  console.log(`at the end: ${loadAverage()}`);
  if (before) console.log(`before: server CPU per backup median ${median(beforeCpu).toFixed(2)} s, peak RSS ${rssMb(before.pid).peak.toFixed(0)} MiB`);
} finally {
  await server.stop();
  await before?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
  if (!process.env.BENCH_KEEP) psql(`drop database ${dbName}`);
}
