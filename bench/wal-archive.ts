/**
 * Does WAL archiving keep up with a write load? A private PostgreSQL with replication, a real
 * Strongbox server process (its catalog in a fresh database on the machine's PostgreSQL, so
 * this script can read archive_files while it runs) with archiving on for the branch, and
 * pgbench writing for a minute. Sampled every second:
 *   - the server's WAL position (pg_current_wal_lsn) → its WAL rate;
 *   - the archive's end (the highest end_lsn of a stored segment) → the archive lag in bytes,
 *     and in complete segments not stored yet (the segment being written cannot be archived
 *     before it is complete: a lag under one segment is the floor, not a delay);
 *   - per segment, the time from the server passing its end to its row in the catalog;
 *   - the Strongbox process's CPU (its own, and its tools': pg_receivewal, pg_waldump) and
 *     peak RSS (VmHWM).
 * After the load, the last segment is completed (pg_switch_wal) and the time until it is
 * stored is the drain time.
 *
 *   node --import tsx bench/wal-archive.ts                  # pgbench for a minute
 *   BENCH_LOAD=bulk node --import tsx bench/wal-archive.ts  # wide rows inserted flat out
 *   BENCH_SECONDS=60 BENCH_CLIENTS=2 BENCH_SCALE=10 BENCH_RATE=0 (pgbench -R, 0 = flat out)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { api, registerBranch, until } from '../test/helpers/server.js';
import { freePort, postgresBinDir, startPrivatePostgres } from '../test/helpers/private-servers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const clients = Number(process.env.BENCH_CLIENTS ?? 2);
const scale = Number(process.env.BENCH_SCALE ?? 10);
const rate = Number(process.env.BENCH_RATE ?? 0);
/** pgbench (TPC-B-like small transactions) or bulk (wide rows inserted flat out: the most WAL this server writes). */
const load = process.env.BENCH_LOAD === 'bulk' ? 'bulk' : 'pgbench';
const SEGMENT = 16 * 1024 * 1024;
/** USER_HZ: /proc's CPU times are in these ticks (100 on Linux everywhere it runs). */
const TICK = 100;
const MiB = 1024 * 1024;

const parseLsn = (lsn: string) => {
  const [hi, lo] = lsn.split('/');
  return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
};

/** utime+stime (and the reaped children's) of a process, in seconds; null when it is gone. */
function cpuOf(pid: number): { self: number; children: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    return { self: (Number(f[11]) + Number(f[12])) / TICK, children: (Number(f[13]) + Number(f[14])) / TICK };
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d), ...childrenOf(Number(d)));
    } catch {
      /* gone */
    }
  }
  return out;
}

function vmHwmMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const pgs = await startPrivatePostgres({ replication: true });
  const catalogName = `sbx_bench_wal_${crypto.randomBytes(4).toString('hex')}`;
  const shared = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' });
  await shared.connect();
  await shared.query(`CREATE DATABASE ${catalogName}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-wal-'));
  let server: ChildProcess | null = null;
  let catalog: pg.Client | null = null;
  let source: pg.Client | null = null;
  try {
    const bin = postgresBinDir();
    const pgbench = fs.existsSync(path.join(bin, 'pgbench')) ? path.join(bin, 'pgbench') : 'pgbench';
    const conn = ['-h', '127.0.0.1', '-p', String(pgs.port), '-U', 'postgres'];
    spawnSync(path.join(bin, 'createdb'), [...conn, 'bench'], { stdio: 'inherit' });
    console.log(`pgbench -i -s ${scale} (before archiving: the load measured is the run only)...`);
    const init = spawnSync(pgbench, [...conn, '-i', '-q', '-s', String(scale), 'bench'], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i: ${init.stderr}`);

    const port = await freePort();
    const token = `bench01:${crypto.randomBytes(18).toString('base64url')}`;
    const catalogUrl = `postgresql://postgres@127.0.0.1:5432/${catalogName}`;
    // MALLOC_ARENA_MAX as `npm start` sets it (package.json); one in the bench's environment wins.
    const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token, STRONGBOX_CATALOG_URL: catalogUrl, STRONGBOX_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' };
    server = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts'), 'serve'], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    const sb = { url: `http://127.0.0.1:${port}`, token };
    await until('the server', async () => ((await fetch(`${sb.url}/health`).catch(() => null))?.ok ? true : undefined), 60_000, 200);
    const branchPath = await registerBranch(sb, 'default', 'bench', 'postgresql', 'main', `postgresql://postgres@127.0.0.1:${pgs.port}/bench`);
    const on = await api(sb, 'PATCH', branchPath, { archiving: true });
    if (on.status !== 200) throw new Error(`archiving on: ${on.status} ${JSON.stringify(on.body)}`);
    await until('the receiver streaming', async () => ((await api(sb, 'GET', branchPath)).body.archive?.state === 'streaming' ? true : undefined), 60_000, 200);

    catalog = new pg.Client({ connectionString: catalogUrl });
    await catalog.connect();
    source = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${pgs.port}/bench` });
    await source.connect();
    const currentLsn = async () => parseLsn((await source!.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    const archivedEnd = async () => {
      const r = await catalog!.query<{ end_lsn: string }>(`SELECT end_lsn FROM archive_files WHERE kind = 'wal' AND state = 'success' AND end_lsn IS NOT NULL`);
      return r.rows.reduce((m, x) => Math.max(m, parseLsn(x.end_lsn)), 0);
    };
    const segmentTimes = async () => (await catalog!.query<{ end_lsn: string; created_at: string }>(`SELECT end_lsn, created_at FROM archive_files WHERE kind = 'wal' AND state = 'success' AND end_lsn IS NOT NULL`)).rows;

    // CPU baselines: the server, and the children alive now (pg_receivewal).
    const pid = server.pid!;
    const cpu0 = cpuOf(pid)!;
    const kids0 = new Map(childrenOf(pid).map((k) => [k, cpuOf(k)?.self ?? 0]));
    const lsn0 = await currentLsn();
    const samples: Array<{ t: number; lsn: number; archived: number }> = [];
    let sampling = true;
    const kidsLast = new Map<number, number>();
    const sampler = (async () => {
      while (sampling) {
        const t = Date.now();
        samples.push({ t, lsn: await currentLsn(), archived: await archivedEnd() });
        for (const k of childrenOf(pid)) kidsLast.set(k, cpuOf(k)?.self ?? kidsLast.get(k) ?? 0);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - t))));
      }
    })();

    const t0 = Date.now();
    let tps = '?';
    if (load === 'bulk') {
      // Wide rows inserted as fast as the clients can: the server's WAL rate when it is the bottleneck.
      console.log(`bulk inserts, ${clients} clients, ${seconds} s, with archiving on...`);
      await source.query('CREATE TABLE IF NOT EXISTS bulk (id bigint, v text)');
      let rows = 0;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${pgs.port}/bench` });
          await c.connect();
          while (Date.now() - t0 < seconds * 1000) {
            await c.query(`INSERT INTO bulk SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 5000) g`);
            rows += 5000;
          }
          await c.end();
        }),
      );
      tps = `${Math.round(rows / ((Date.now() - t0) / 1000))} rows/s (${rows} rows of ~300 bytes)`;
    } else {
      console.log(`pgbench -c ${clients} -T ${seconds}${rate ? ` -R ${rate}` : ''} with archiving on...`);
      // Not spawnSync: the sampler must keep running meanwhile.
      const child = spawn(pgbench, [...conn, '-c', String(clients), '-j', String(clients), '-T', String(seconds), ...(rate ? ['-R', String(rate)] : []), '-n', 'bench'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      if (code !== 0) throw new Error(`pgbench: ${err}`);
      tps = `${/tps = ([\d.]+)/.exec(out)?.[1] ?? '?'} tps (pgbench TPC-B-like)`;
    }
    const loadSeconds = (Date.now() - t0) / 1000;
    const lsnEnd = await currentLsn();
    // Drain: complete the last segment and wait until the archive holds everything written.
    const tEnd = Date.now();
    await source.query('SELECT pg_switch_wal()');
    await until('the archive to hold the load', async () => ((await archivedEnd()) >= lsnEnd ? true : undefined), 300_000, 100);
    const drain = (Date.now() - tEnd) / 1000;
    sampling = false;
    await sampler;

    const cpu1 = cpuOf(pid)!;
    // Children: pg_receivewal (alive throughout), pg_waldump and the like (reaped: in cutime).
    let toolsCpu = cpu1.children - cpu0.children;
    for (const [k, last] of kidsLast) toolsCpu += last - (kids0.get(k) ?? 0);
    const ownCpu = cpu1.self - cpu0.self;
    const wall = (Date.now() - t0) / 1000;
    const rss = vmHwmMiB(pid);

    const during = samples.filter((s) => s.t >= t0 && s.t <= tEnd);
    const lagBytes = during.map((s) => Math.max(0, s.lsn - s.archived));
    // Complete segments not stored yet: the one being written is not one of them.
    const lagSegments = during.map((s) => Math.max(0, Math.floor(s.lsn / SEGMENT) - Math.ceil(s.archived / SEGMENT)));
    // Per segment stored during the load: from the first sample at or past its end to its row.
    const delays: number[] = [];
    for (const seg of await segmentTimes()) {
      const end = parseLsn(seg.end_lsn);
      if (end <= lsn0) continue;
      const passed = samples.find((s) => s.lsn >= end);
      if (passed) delays.push((Date.parse(seg.created_at) - passed.t) / 1000);
    }
    const walBytes = lsnEnd - lsn0;

    console.log('');
    console.log(`machine                      : ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}; PostgreSQL ${pgs.version} (fsync off), ${clients} clients${load === 'pgbench' ? `, pgbench scale ${scale}` : ''}`);
    console.log(`load                         : ${load}, ${loadSeconds.toFixed(0)} s, ${tps}`);
    console.log(`server WAL rate              : ${mib(walBytes / loadSeconds)}/s (${mib(walBytes)} in ${loadSeconds.toFixed(0)} s, ${(walBytes / SEGMENT).toFixed(1)} segments)`);
    console.log(`archive lag, bytes           : max ${mib(Math.max(0, ...lagBytes))}, median ${mib(median(lagBytes))} (sampled every second; under one 16 MiB segment = only the segment being written)`);
    console.log(`archive lag, whole segments  : max ${Math.max(0, ...lagSegments)}, median ${median(lagSegments)} complete segment(s) not stored yet`);
    console.log(`segment stored after complete: max ${Math.max(0, ...delays).toFixed(1)} s, median ${median(delays).toFixed(1)} s (${delays.length} segments; ±1 s sampling)`);
    console.log(`drain after the load         : ${drain.toFixed(1)} s until the last segment was stored`);
    console.log(`Strongbox CPU                : ${((ownCpu / wall) * 100).toFixed(0)}% of a core (node), ${((toolsCpu / wall) * 100).toFixed(0)}% (its tools: pg_receivewal, pg_waldump), over ${wall.toFixed(0)} s`);
    console.log(`Strongbox peak RSS           : ${rss.toFixed(0)} MiB (node process through tsx, whose compiler adds 30-40 MiB; VmHWM)`);
    console.log(`keeps up                     : ${Math.max(0, ...lagSegments) <= 1 ? 'yes' : 'NO'} (at most one complete segment waiting at any sample)`);
  } finally {
    await source?.end().catch(() => {});
    await catalog?.end().catch(() => {});
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    await shared.query(`DROP DATABASE IF EXISTS ${catalogName} WITH (FORCE)`).catch(() => {});
    await shared.end();
    await pgs.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
