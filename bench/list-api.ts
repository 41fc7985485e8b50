/**
 * The catalog API at 100,000 backups (issue 14): a real `strongbox serve` on a catalog with
 * BENCH_BACKUPS backups on ONE branch (plus a few smaller branches beside it), loaded from
 * other processes (bench/http-load.ts: keep-alive sockets, closed loop) while a probe in a
 * third process asks GET /health every 10 ms. For each scenario it prints req/s, p50/p99/max
 * of the loaded route and the probe's p99/max in the same seconds, and ratios to baselines
 * measured in the same run:
 *   - the list's req/s against GET /health's req/s at the same connections (the cost of an
 *     HTTP request through Fastify with no query);
 *   - the deep page (per_page=100&page=500) against page 1 of the same size (goal: ≤ 1.5×);
 *   - /health p99 under list load against /health p99 on an idle server (goal: unaffected);
 *   - the compatible views over the same catalog: the Yandex Cluster.ListBackups and Backup.List
 *     (folder) pages, page 1 against a deep page (the same position as the native deep page,
 *     reached by its pageToken), backupman's GET /api/backups (no paging in its contract: every
 *     backup, ~70 MB of JSON at 100,000; its time per request and MB/s);
 *   - "cycling" scenarios that ask a different page at each request (pages 1..50, native and
 *     Yandex), against page 1 asked again and again: a cache of answers cannot flatter them.
 * The catalog is built directly (one transaction of batched inserts, not dumps): backups
 * every 30 minutes for about 5.7 years, 2 stored copies each (local + S3), ~3 % failed or
 * canceled, ~10 % deleted by hand, row counts of 40 tables, a schema snapshot now and then,
 * restored branches of a few. Planner statistics are taken (ANALYZE) as a catalog that has run
 * a while has them.
 *
 *   node --import tsx bench/list-api.ts                   # SQLite catalog (the default)
 *   node --import tsx bench/list-api.ts --postgres        # a fresh PostgreSQL catalog on 127.0.0.1:5432 (dropped after)
 *   BENCH_BACKUPS=20000 BENCH_SECONDS=3 BENCH_CONNECTIONS=10,50 BENCH_ROUNDS=2 node --import tsx bench/list-api.ts
 *   BENCH_ONLY=deep ...    # only the scenarios whose name contains this
 *   BENCH_KEEP=1 ...       # keep the data directory (and PostgreSQL database)
 *   BENCH_PROFILE=/tmp/prof ...   # the server's CPU profile, written when it stops
 *   BENCH_WRITES_PER_SECOND=1 ...  # while each scenario runs, another connection writes to the
 *                                  # catalog this often (a running backup's progress: 1 a second);
 *                                  # 1000: about one write per request, so that neither the
 *                                  # response cache nor the lookups kept under the catalog's
 *                                  # change stamp (src/catalog/memo.ts) are of any help
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import pg from 'pg';
import { sql, type Insertable } from 'kysely';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { openCatalog } from '../src/catalog/db.js';
import { bootstrap } from '../src/bootstrap.js';
import { createDefaultPolicies } from '../src/catalog/policies.js';
import { encodePageToken } from '../src/api/compat/yandex/paging.js';
import { newId, nowIso } from '../src/catalog/ids.js';
import type { ArtifactsTable, BackupsTable, Database, SchemaSnapshotsTable } from '../src/catalog/schema.js';
import { statsOf, percentile, type LoadResult, type LoadSpec, type Stats } from './http-load.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKUPS = Number(process.env.BENCH_BACKUPS ?? 100_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '10,50').split(',').map(Number);
const ONLY = process.env.BENCH_ONLY ?? '';
const WRITES_PER_SECOND = Number(process.env.BENCH_WRITES_PER_SECOND ?? 0);
/** The writes a second each scenario's writer reached (startWriter). */
const writesDone: number[] = [];
const usePostgres = process.argv.includes('--postgres') || !!process.env.BENCH_CATALOG_URL;
const MIN = 60_000;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-list-'));
const tokenId = 'benchadmin';
const tokenSecret = 'bench-secret-0123456789abcdef';
let pgDatabase: string | null = null;
let catalogUrl = process.env.BENCH_CATALOG_URL ?? '';
if (usePostgres && !catalogUrl) {
  pgDatabase = `sbx_bench_list_${process.pid}`;
  await pgAdmin(`create database ${pgDatabase}`);
  catalogUrl = `postgres://postgres@127.0.0.1:5432/${pgDatabase}`;
}
async function pgAdmin(statement: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}
const env = {
  STRONGBOX_DATA_DIR: dataDir,
  STRONGBOX_BOOTSTRAP_TOKEN: `${tokenId}:${tokenSecret}`,
  // The limiter runs (its cost is part of every request) but never refuses the benchmark.
  STRONGBOX_RATE_LIMIT_PER_MINUTE: '1000000',
  ...(catalogUrl ? { STRONGBOX_CATALOG_URL: catalogUrl } : {}),
};

// ---------------------------------------------------------------------------------------------
// Seed.
const seedStart = performance.now();
const ctx = await createContext(loadConfig(env), { log: pino({ level: 'silent' }) });
const { organizationId } = await bootstrap(ctx);
const now = Date.now();
const local = await ctx.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', organizationId).executeTakeFirstOrThrow();
const offsite = { id: newId(), name: 'offsite', provider: 's3' as const };
await ctx.db
  .insertInto('storage_destinations')
  .values({ id: offsite.id, organization_id: organizationId, name: offsite.name, provider: 's3', config_enc: ctx.secrets.seal(JSON.stringify({ bucket: 'bench', region: 'us-east-1' })), is_default: 0, created_at: nowIso(), updated_at: nowIso() })
  .execute();

const STEP = 30 * MIN;
const createdAt = new Date(now - BACKUPS * STEP - 7 * 24 * 60 * MIN);
const database: Database = { id: newId(), organization_id: organizationId, name: 'shop', kind: 'postgresql', created_at: nowIso(createdAt), updated_at: nowIso(createdAt), deleted_at: null, storage_destinations: null };
await ctx.db.insertInto('databases').values(database).execute();
await createDefaultPolicies(ctx.db, database, createdAt);
// Nothing due while the benchmark runs: the server's scheduler must not add backups to the list.
await ctx.db.updateTable('backup_policies').set({ last_ran_at: nowIso(new Date(now)) }).execute();
const policies = await ctx.db.selectFrom('backup_policies').select(['id', 'target']).where('database_id', '=', database.id).execute();
const branchSpecs = [
  { name: 'main', production: true, count: BACKUPS },
  { name: 'staging', production: false, count: Math.round(BACKUPS / 20) },
  { name: 'dev', production: false, count: Math.round(BACKUPS / 50) },
];
const tables = Array.from({ length: 40 }, (_, i) => `public.table_${String(i).padStart(2, '0')}`);
let first: { id: string; name: string } | null = null;
let sampleBackupId = '';
for (const [bi, spec] of branchSpecs.entries()) {
  const branchId = newId();
  first ??= { id: branchId, name: spec.name };
  await ctx.db
    .insertInto('branches')
    .values({
      id: branchId,
      organization_id: organizationId,
      database_id: database.id,
      name: spec.name,
      production: spec.production ? 1 : 0,
      connection_url_enc: ctx.secrets.seal(`postgres://app:secret@db${bi}.internal:5432/shop`),
      conn_host: `db${bi}.internal`,
      conn_port: 5432,
      conn_database: 'shop',
      conn_user: 'app',
      server_version: '16.4',
      created_at: nowIso(createdAt),
      updated_at: nowIso(createdAt),
      deleted_at: null,
    })
    .execute();
  const policy = policies.find((p) => p.target === (spec.production ? 'production' : 'development'))!;
  const snapshots: Array<Insertable<SchemaSnapshotsTable>> = [];
  const rows: Array<Insertable<BackupsTable>> = [];
  const artifacts: Array<Insertable<ArtifactsTable>> = [];
  const restoredFrom: string[] = [];
  const step = (BACKUPS * STEP) / spec.count;
  for (let k = 0; k < spec.count; k++) {
    const created = new Date(createdAt.getTime() + k * step + bi * 7_000);
    const started = new Date(created.getTime() + 2_000);
    const roll = (k * 7919 + bi * 104_729) % 100;
    const state: BackupsTable['state'] = roll < 2 ? 'failed' : roll < 3 ? 'canceled' : 'success';
    const seconds = 40 + ((k * 31 + bi * 17) % 200);
    const completed = new Date(started.getTime() + seconds * 1000);
    const size = 200_000_000 + (k % 5000) * 150_000;
    const deleted = roll >= 90 ? nowIso(new Date(completed.getTime() + 3 * 24 * 60 * MIN)) : null;
    const id = newId();
    if (k === Math.floor(spec.count / 2)) sampleBackupId ||= id;
    let snapshotId: string | null = null;
    if (state === 'success' && k % 500 === 0) {
      snapshotId = newId();
      snapshots.push({ id: snapshotId, organization_id: organizationId, database_id: database.id, branch_id: branchId, name: `snapshot-${k}`, sha256: 'cd'.repeat(32), ddl: 'create table t (id int);', created_at: nowIso(completed), updated_at: nowIso(completed), linted_at: null });
    }
    if (state === 'success' && k % 5000 === 4999) restoredFrom.push(id);
    rows.push({
      id,
      organization_id: organizationId,
      database_id: database.id,
      branch_id: branchId,
      name: `${spec.name}-${created.toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')}`,
      state,
      size: state === 'success' ? size : 0,
      raw_size: state === 'success' ? size * 4 : 0,
      pvc_size: size * 5,
      protected: k % 97 === 0 ? 1 : 0,
      required: 1,
      emergency: 0,
      backup_policy_id: policy.id,
      actor_id: null,
      actor_name: null,
      retention_value: 2,
      retention_unit: 'day',
      created_at: nowIso(created),
      updated_at: nowIso(completed),
      started_at: nowIso(started),
      completed_at: nowIso(completed),
      expires_at: nowIso(new Date(completed.getTime() + 100 * 365 * 24 * 60 * MIN)),
      deleted_at: deleted,
      error: state === 'failed' ? 'pg_dump exited with code 1: connection to server at "db.internal" failed: timeout expired' : state === 'canceled' ? 'canceled by request' : null,
      engine: 'postgresql',
      server_version: '16.4',
      client_version: '16.4',
      compression: 'zstd',
      sha256: state === 'success' ? 'ab'.repeat(32) : null,
      table_row_counts: state === 'success' ? JSON.stringify(Object.fromEntries(tables.map((t, i) => [t, 1000 * (i + 1) + k]))) : null,
      lease_owner: null,
      lease_expires_at: null,
      progress_raw_bytes: size * 4,
      progress_bytes: size,
      progress_at: nowIso(completed),
      schedule_slot: nowIso(created),
      schema_snapshot_id: snapshotId,
      database_properties: JSON.stringify({ encoding: 'UTF8', collate: 'en_US.UTF-8', ctype: 'en_US.UTF-8', extensions: ['pg_trgm', 'pgcrypto'] }),
    });
    for (const dest of [local, offsite]) {
      const stored = state === 'success';
      if (!stored && state !== 'failed') continue;
      artifacts.push({
        id: newId(),
        backup_id: id,
        destination_id: dest.id,
        destination_name: dest.name,
        provider: dest.provider,
        path: `default/shop/${spec.name}/${id}.dump.zst.age`,
        size: stored ? size : 0,
        sha256: stored ? 'ab'.repeat(32) : null,
        state: deleted ? 'deleted' : stored ? 'success' : 'failed',
        error: stored ? null : 'upload failed: connection reset',
        created_at: nowIso(created),
        updated_at: nowIso(completed),
      });
    }
  }
  await ctx.db.transaction().execute(async (trx) => {
    for (let i = 0; i < snapshots.length; i += 200) await trx.insertInto('schema_snapshots').values(snapshots.slice(i, i + 200)).execute();
    // SQLite takes at most 32766 bound values in one statement: batches of 200 rows.
    for (let i = 0; i < rows.length; i += 200) await trx.insertInto('backups').values(rows.slice(i, i + 200)).execute();
    for (let i = 0; i < artifacts.length; i += 500) await trx.insertInto('artifacts').values(artifacts.slice(i, i + 500)).execute();
    for (const [i, from] of restoredFrom.entries()) {
      const t = nowIso(new Date(now - i * 60 * MIN));
      await trx
        .insertInto('branches')
        .values({ id: newId(), organization_id: organizationId, database_id: database.id, name: `${spec.name}-restored-${i}`, production: 0, connection_url_enc: null, conn_host: 'db9.internal', conn_port: 5432, conn_database: `r${i}`, conn_user: 'app', server_version: '16.4', created_at: t, updated_at: t, deleted_at: null, restored_from_backup_id: from })
        .execute();
    }
  });
}
if (!process.env.BENCH_NO_ANALYZE) await sql`analyze`.execute(ctx.db);
const counts = {
  backups: Number((await ctx.db.selectFrom('backups').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  artifacts: Number((await ctx.db.selectFrom('artifacts').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  listed: Number((await ctx.db.selectFrom('backups').select((e) => e.fn.countAll().as('n')).where('branch_id', '=', first!.id).where('deleted_at', 'is', null).executeTakeFirstOrThrow()).n),
};
// Page tokens of the Yandex view: the position of the last backup of the page before, in the
// order of a cluster's list (the big branch) and of the folder's (every branch).
const listedOrder = async (branchId: string | null) => {
  let q = ctx.db.selectFrom('backups').select(['id', 'created_at']).where('organization_id', '=', organizationId).where('deleted_at', 'is', null).where('state', 'in', ['pending', 'running', 'success']);
  if (branchId) q = q.where('branch_id', '=', branchId);
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
};
const tokenAfter = (order: Array<{ id: string; created_at: string }>, n: number) => (n <= 0 || !order[n - 1] ? '' : encodePageToken({ createdAt: order[n - 1].created_at, id: order[n - 1].id }));
const clusterOrder = await listedOrder(first!.id);
const folderOrder = await listedOrder(null);
await ctx.catalog.close();
console.log(
  `seeded ${usePostgres ? 'postgres' : 'sqlite'} catalog: ${counts.backups} backups (${counts.listed} listed on branch "main"), ${counts.artifacts} artifacts in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
);

// ---------------------------------------------------------------------------------------------
// The server: `strongbox serve`, as an operator runs it (job runner, scheduler, request log).
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const logFile = path.join(dataDir, 'server.log');
// BENCH_PROFILE=<dir>: the server writes a CPU profile there when it stops (open it in Chrome's DevTools).
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_PROFILE)}`] : [];
const server = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(root, 'src/main.ts'), 'serve'], {
  cwd: root,
  // MALLOC_ARENA_MAX as `npm start` sets it (package.json); one in the bench's environment wins.
  env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', ...env, STRONGBOX_PORT: String(port), STRONGBOX_LOG_FORMAT: 'json' },
  stdio: ['ignore', fs.openSync(logFile, 'a'), fs.openSync(logFile, 'a')],
});
const cleanup = async () => {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  if (process.env.BENCH_KEEP) console.log(`kept the data directory: ${dataDir}${pgDatabase ? ` and the PostgreSQL database ${pgDatabase}` : ''}`);
  else {
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (pgDatabase) await pgAdmin(`drop database if exists ${pgDatabase} with (force)`);
  }
};
try {
  await waitUp(server, `${base}/health`);
  await measure();
} finally {
  await cleanup();
}

async function measure(): Promise<void> {
  const loadAtStart = os.loadavg();
  const headers = { authorization: `${tokenId}:${tokenSecret}` };
  const list = `/v1/organizations/default/databases/shop/branches/${first!.name}/backups`;
  const deepPage = Math.max(1, Math.min(500, Math.floor(counts.listed / 100) - 1));
  const scenarios: Array<{ name: string; paths: string[]; connections: number; headers?: Record<string, string> }> = [];
  for (const c of CONNECTIONS) {
    scenarios.push({ name: `health c${c}`, paths: ['/health'], connections: c });
    scenarios.push({ name: `list per_page=25 c${c}`, paths: [`${list}?per_page=25`], connections: c });
    scenarios.push({ name: `list per_page=100 c${c}`, paths: [`${list}?per_page=100`], connections: c });
    scenarios.push({ name: `deep per_page=100&page=${deepPage} c${c}`, paths: [`${list}?per_page=100&page=${deepPage}`], connections: c });
  }
  scenarios.push({ name: 'filter state=failed c10', paths: [`${list}?per_page=25&state=failed`], connections: 10 });
  scenarios.push({ name: 'filter from..to c10', paths: [`${list}?per_page=25&from=${nowIso(new Date(now - 400 * 24 * 60 * MIN))}&to=${nowIso(new Date(now - 300 * 24 * 60 * MIN))}`], connections: 10 });
  scenarios.push({ name: 'filter all=true page=200 c10', paths: [`${list}?per_page=25&all=true&page=200`], connections: 10 });
  scenarios.push({ name: 'get backup c10', paths: [`${list}/${sampleBackupId}`], connections: 10 });
  // A different page at each request (pages 1..50, in turn per connection).
  const pages50 = Array.from({ length: 50 }, (_, i) => i + 1);
  scenarios.push({ name: 'list per_page=25 page=1..50 c10', paths: pages50.map((p) => `${list}?per_page=25&page=${p}`), connections: 10 });
  // The compatible views over the same catalog.
  const yandex = { authorization: `Bearer ${tokenId}:${tokenSecret}` };
  const cluster = `/managed-postgresql/v1/clusters/${first!.id}/backups`;
  const folder = `/managed-postgresql/v1/backups?folderId=${organizationId}&`;
  const at = (base: string, order: Array<{ id: string; created_at: string }>, size: number, page: number) => {
    const token = tokenAfter(order, (page - 1) * size);
    return `${base}${base.endsWith('&') ? '' : '?'}pageSize=${size}${token ? `&pageToken=${token}` : ''}`;
  };
  scenarios.push({ name: 'yandex cluster pageSize=25 c10', paths: [at(cluster, clusterOrder, 25, 1)], connections: 10, headers: yandex });
  scenarios.push({ name: 'yandex cluster pageSize=100 c10', paths: [at(cluster, clusterOrder, 100, 1)], connections: 10, headers: yandex });
  scenarios.push({ name: `yandex cluster deep pageSize=100 (page ${deepPage}) c10`, paths: [at(cluster, clusterOrder, 100, deepPage)], connections: 10, headers: yandex });
  scenarios.push({ name: 'yandex cluster pageSize=25 page=1..50 c10', paths: pages50.map((p) => at(cluster, clusterOrder, 25, p)), connections: 10, headers: yandex });
  scenarios.push({ name: 'yandex folder pageSize=100 c10', paths: [at(folder, folderOrder, 100, 1)], connections: 10, headers: yandex });
  scenarios.push({ name: `yandex folder deep pageSize=100 (page ${deepPage}) c10`, paths: [at(folder, folderOrder, 100, deepPage)], connections: 10, headers: yandex });
  // A backup the Yandex view shows (it hides failed and deleted ones).
  scenarios.push({ name: 'yandex get backup c10', paths: [`/managed-postgresql/v1/backups/${clusterOrder[Math.floor(clusterOrder.length / 2)].id}`], connections: 10, headers: yandex });
  // backupman has no paging: every backup of the organization at each request.
  scenarios.push({ name: 'backupman list (all backups) c2', paths: ['/api/backups'], connections: 2, headers: { 'x-api-key': `${tokenId}:${tokenSecret}` } });
  const chosen = scenarios.filter((s) => s.name.includes(ONLY));

  // The server's own event-loop delay (prom-client's default metrics, reset at every scrape):
  // how long its loop was held, apart from how long the OS took to run the probe and the server.
  // Node records the time between the ticks of a 10 ms timer (prom-client's default
  // precision); what is over 10 ms is the delay.
  const loopDelay = async (): Promise<{ p99: number; max: number }> => {
    const text = await (await fetch(`${base}/metrics`, { headers })).text();
    const ms = (name: string) => Math.max(0, Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) * 1000 - 10);
    return { p99: ms('nodejs_eventloop_lag_p99_seconds'), max: ms('nodejs_eventloop_lag_max_seconds') };
  };
  // Warm-up: every route once (compiles, fills caches), then a short burst.
  for (const s of chosen) await load({ base, paths: s.paths, headers: s.headers ?? headers, connections: 2, seconds: 0.5 });
  await loopDelay();
  const idle = statsOf(...sampleOf(await load({ base, paths: ['/health'], connections: 1, seconds: Math.max(2, SECONDS / 2), everyMs: 10 })));
  const idleLoop = await loopDelay();

  const results = new Map<string, { load: Stats[]; probe: Stats[]; loop: Array<{ p99: number; max: number }>; cpu: number[]; counts: Array<[number, number]>; bytes: number[] }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of chosen) {
      await loopDelay();
      const startAt = Date.now() + 300;
      const cpu0 = cpuMs(server);
      const writer = WRITES_PER_SECOND > 0 ? startWriter(startAt) : null;
      const [main, probe] = await Promise.all([
        load({ base, paths: s.paths, headers: s.headers ?? headers, connections: s.connections, seconds: SECONDS, startAt, timeoutMs: 60_000 }),
        load({ base, paths: ['/health'], connections: 1, seconds: SECONDS, everyMs: 10, startAt }),
      ]);
      const cpu = cpuMs(server) - cpu0;
      const loop = await loopDelay();
      if (writer) writesDone.push(await writer.stop());
      const r = results.get(s.name) ?? { load: [], probe: [], loop: [], cpu: [], counts: [], bytes: [] };
      r.loop.push(loop);
      r.bytes.push(main.bytes / Math.max(1, main.samples.length));
      r.load.push(statsOf(...sampleOf(main)));
      r.probe.push(statsOf(...sampleOf(probe)));
      // The server's CPU time per request: what the machine's load changes little, unlike
      // req/s and latencies on a busy 2-core box (see cpuPerRequest).
      r.cpu.push(cpu);
      r.counts.push([main.samples.length, probe.samples.length]);
      results.set(s.name, r);
    }
  }
  const rss = peakRssMb(server);

  const med = (xs: number[]) => percentile(xs, 50);
  // The server's CPU ms per request of the scenario: its CPU time over the scenario, less what
  // the probe's /health requests cost (measured alone in the /health scenarios), over its requests.
  const healthCpu = new Map<number, number>();
  for (const c of CONNECTIONS) {
    const h = results.get(`health c${c}`);
    if (h) healthCpu.set(c, med(h.cpu.map((cpu, i) => cpu / (h.counts[i][0] + h.counts[i][1]))));
  }
  const probeCost = healthCpu.size ? Math.min(...healthCpu.values()) : 0;
  const cpuPerRequest = (r: { cpu: number[]; counts: Array<[number, number]> }) => med(r.cpu.map((cpu, i) => Math.max(0, cpu - r.counts[i][1] * probeCost) / Math.max(1, r.counts[i][0])));
  const spread = (xs: number[]) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})` : '');
  if (writesDone.length) console.log(`\ncatalog writes from another connection during the scenarios: ${med(writesDone).toFixed(0)} a second (asked: ${WRITES_PER_SECOND})`);
  console.log(`\n${SECONDS} s per scenario, ${ROUNDS} round(s) (medians; spread over rounds in brackets); /health probe every 10 ms from its own process`);
  console.log(`idle server: /health p50 ${idle.p50.toFixed(2)} ms, p99 ${idle.p99.toFixed(2)} ms, max ${idle.max.toFixed(1)} ms; its event loop's delay p99 ${idleLoop.p99.toFixed(1)} ms, max ${idleLoop.max.toFixed(1)} ms`);
  console.log(`${'scenario'.padEnd(52)} ${'req/s'.padStart(14)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)} ${'err'.padStart(5)} ${'CPU ms/req'.padStart(11)}   /health p99 / max during   server loop delay p99 / max`);
  for (const [name, r] of results) {
    const rps = r.load.map((x) => x.rps);
    console.log(
      `${name.padEnd(52)} ${(med(rps).toFixed(0) + spread(rps)).padStart(14)} ${med(r.load.map((x) => x.p50)).toFixed(2).padStart(8)} ${med(r.load.map((x) => x.p99)).toFixed(1).padStart(8)} ${Math.max(...r.load.map((x) => x.max)).toFixed(0).padStart(8)} ${String(r.load.reduce((a, x) => a + x.errors, 0)).padStart(5)} ${cpuPerRequest(r).toFixed(3).padStart(11)}   ${med(r.probe.map((x) => x.p99)).toFixed(1).padStart(7)} / ${Math.max(...r.probe.map((x) => x.max)).toFixed(0).padEnd(16)} ${med(r.loop.map((x) => x.p99)).toFixed(1).padStart(7)} / ${Math.max(...r.loop.map((x) => x.max)).toFixed(0)}`,
    );
  }
  const get = (n: string) => results.get(n);
  console.log('\nratios (same run):');
  for (const c of CONNECTIONS) {
    const h = get(`health c${c}`);
    const l25 = get(`list per_page=25 c${c}`);
    const l100 = get(`list per_page=100 c${c}`);
    const deep = get(`deep per_page=100&page=${deepPage} c${c}`);
    if (h && l25) console.log(`  c${c}: list per_page=25 req/s ÷ /health req/s = ${(med(l25.load.map((x) => x.rps)) / med(h.load.map((x) => x.rps))).toFixed(3)}; server CPU per list request ÷ per /health request = ${(cpuPerRequest(l25) / cpuPerRequest(h)).toFixed(1)}× (${cpuPerRequest(l25).toFixed(2)} ms: at most ${(1000 / cpuPerRequest(l25)).toFixed(0)} req/s on one core)`);
    if (l100 && deep) console.log(`  c${c}: deep page p50 ÷ page 1 p50 (per_page=100) = ${(med(deep.load.map((x) => x.p50)) / med(l100.load.map((x) => x.p50))).toFixed(2)}×, req/s ratio ${(med(l100.load.map((x) => x.rps)) / med(deep.load.map((x) => x.rps))).toFixed(2)}× (goal ≤ 1.5×)`);
    if (l25) console.log(`  c${c}: /health p99 under list load ÷ idle = ${(med(l25.probe.map((x) => x.p99)) / idle.p99).toFixed(1)}× (${med(l25.probe.map((x) => x.p99)).toFixed(1)} ms vs ${idle.p99.toFixed(1)} ms; goal ≤ 5 ms); the server's event loop held for at most ${med(l25.loop.map((x) => x.p99)).toFixed(1)} ms at p99 (idle ${idleLoop.p99.toFixed(1)} ms)`);
  }
  const rpsOf = (r: { load: Stats[] }) => med(r.load.map((x) => x.rps));
  const p50Of = (r: { load: Stats[] }) => med(r.load.map((x) => x.p50));
  const p99Of = (r: { load: Stats[] }) => med(r.load.map((x) => x.p99));
  const pair = (label: string, a: string, b: string, goal = '') => {
    const ra = get(a);
    const rb = get(b);
    if (ra && rb) console.log(`  ${label}: p50 ${(p50Of(rb) / p50Of(ra)).toFixed(2)}×, p99 ${(p99Of(rb) / p99Of(ra)).toFixed(2)}×, req/s ${(rpsOf(ra) / rpsOf(rb)).toFixed(2)}× slower (${rpsOf(ra).toFixed(0)} vs ${rpsOf(rb).toFixed(0)} req/s)${goal}`);
  };
  pair('native, pages 1..50 in turn ÷ page 1 again and again (per_page=25)', 'list per_page=25 c10', 'list per_page=25 page=1..50 c10');
  pair('yandex cluster, pages 1..50 in turn ÷ page 1 again and again (pageSize=25)', 'yandex cluster pageSize=25 c10', 'yandex cluster pageSize=25 page=1..50 c10');
  pair(`yandex cluster, deep page ${deepPage} ÷ page 1 (pageSize=100)`, 'yandex cluster pageSize=100 c10', `yandex cluster deep pageSize=100 (page ${deepPage}) c10`, ' (goal ≤ 1.5×)');
  pair(`yandex folder, deep page ${deepPage} ÷ page 1 (pageSize=100)`, 'yandex folder pageSize=100 c10', `yandex folder deep pageSize=100 (page ${deepPage}) c10`, ' (goal ≤ 1.5×)');
  pair('yandex cluster pageSize=25 ÷ native per_page=25 (page 1)', 'list per_page=25 c10', 'yandex cluster pageSize=25 c10');
  const h10 = get('health c10');
  const y25 = get('yandex cluster pageSize=25 c10');
  if (h10 && y25) console.log(`  yandex cluster pageSize=25 req/s ÷ /health req/s = ${(rpsOf(y25) / rpsOf(h10)).toFixed(3)}; server CPU ${cpuPerRequest(y25).toFixed(2)} ms per request`);
  const bm = get('backupman list (all backups) c2');
  if (bm) {
    const mb = med(bm.bytes) / 1e6;
    console.log(`  backupman list: ${counts.listed} + other branches' backups, ${mb.toFixed(1)} MB a response, p50 ${p50Of(bm).toFixed(0)} ms (${((mb * 1000) / p50Of(bm)).toFixed(1)} MB/s), server CPU ${cpuPerRequest(bm).toFixed(0)} ms a response; /health p99 meanwhile ${med(bm.probe.map((x) => x.p99)).toFixed(1)} ms`);
  }
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  console.log(`\nload average (1/5/15 min): ${la(loadAtStart)} at the start, ${la(os.loadavg())} at the end`);
  console.log(`\nserver peak RSS: ${rss} MB (run through tsx, whose compiler adds 30-40 MiB to what \`npm start\` uses); machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}`);
}

/**
 * Write to the catalog WRITES_PER_SECOND times a second from this process's own connection
 * (another connection than the server's, as a worker's would be) until stopped: the progress
 * of a backup of another branch. Resolves to the writes a second it reached.
 */
function startWriter(startAt: number): { stop(): Promise<number> } {
  let stopped = false;
  let writes = 0;
  const interval = 1000 / WRITES_PER_SECOND;
  const running = (async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
    const began = performance.now();
    const writerCatalog = await openCatalog(ctx.config.catalogUrl);
    const db = writerCatalog.db;
    const target = (await db.selectFrom('backups').select('id').where('branch_id', '!=', first!.id).limit(1).executeTakeFirstOrThrow()).id;
    while (!stopped) {
      await db.updateTable('backups').set({ progress_bytes: writes, progress_at: nowIso() }).where('id', '=', target).execute();
      writes++;
      const next = began + writes * interval;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
    const rate = writes / ((performance.now() - began) / 1000);
    await writerCatalog.close();
    return rate;
  })();
  return {
    stop: async () => {
      stopped = true;
      return running;
    },
  };
}

function sampleOf(r: LoadResult): [LoadResult['samples'], number] {
  return [r.samples, r.seconds];
}

/** Run bench/http-load.ts in a process of its own and read its JSON result. */
function load(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/http-load.ts'), JSON.stringify(spec)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load generator exited with ${code}`))));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function waitUp(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}; see ${logFile}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`the server did not answer ${url} within 60 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** CPU time (user + system) the server process has used, in ms. */
function cpuMs(child: ChildProcess): number {
  const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command), in clock ticks.
  // 100 ticks a second (getconf CLK_TCK) on Linux.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The server's peak resident set (VmHWM), in MB. */
function peakRssMb(child: ChildProcess): string {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return m ? (Number(m[1]) / 1024).toFixed(0) : '?';
  } catch {
    return '?';
  }
}
