/**
 * How fast the dashboard's overview answers on the embedded (SQLite) catalog with 10,000
 * backups, against baselines measured in the same run on the same server:
 *   - GET /health (the cost of an HTTP request through Fastify, with no query);
 *   - GET .../backups?per_page=25 of one branch (the API's plainest authenticated list).
 * The catalog is seeded directly (rows, not dumps): databases with their default policies,
 * 20 branches, backups twice a day per branch, most successful with two stored copies
 * (local + S3), a few failed or canceled, the older ones deleted by retention with their
 * copies marked deleted, and a restore drill every 20th backup. Each endpoint is called
 * BENCH_REQUESTS times in turn (after a warm-up); latencies are the client's, over HTTP.
 *
 *   node --import tsx bench/overview.ts                     # 10,000 backups over 20 branches
 *   BENCH_BACKUPS=50000 BENCH_BRANCHES=50 node --import tsx bench/overview.ts
 *   BENCH_CATALOG_URL=postgres://postgres@127.0.0.1/sbx_bench_overview ...   # an empty PostgreSQL database instead
 *   BENCH_KEEP=1 ...                                        # keep the data directory (and its catalog) to look at
 *   BENCH_NO_ANALYZE=1 ...                                  # no planner statistics (a catalog just filled)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { bootstrap } from '../src/bootstrap.js';
import { buildApp } from '../src/app.js';
import { createDefaultPolicies } from '../src/catalog/policies.js';
import { newId, nowIso } from '../src/catalog/ids.js';
import type { Insertable } from 'kysely';
import type { ArtifactsTable, BackupsTable, Database, JobsTable } from '../src/catalog/schema.js';

const BACKUPS = Number(process.env.BENCH_BACKUPS ?? 10_000);
const BRANCHES = Number(process.env.BENCH_BRANCHES ?? 20);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 300);
const HOUR = 3_600_000;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-overview-'));
const tokenId = 'benchadmin';
const tokenSecret = 'bench-secret-0123456789abcdef';
const config = loadConfig({
  STRONGBOX_DATA_DIR: dataDir,
  STRONGBOX_PORT: '0',
  STRONGBOX_BOOTSTRAP_TOKEN: `${tokenId}:${tokenSecret}`,
  STRONGBOX_RATE_LIMIT_PER_MINUTE: '0',
  ...(process.env.BENCH_CATALOG_URL ? { STRONGBOX_CATALOG_URL: process.env.BENCH_CATALOG_URL } : {}),
});
const ctx = await createContext(config, { log: pino({ level: 'silent' }) });
const { organizationId } = await bootstrap(ctx);

// ---------------------------------------------------------------------------------------------
// Seed: what a year of twice-daily backups of 20 branches leaves in a catalog.
const seedStart = performance.now();
const now = Date.now();
const local = await ctx.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', organizationId).executeTakeFirstOrThrow();
const offsite = { id: newId(), name: 'offsite', provider: 's3' as const };
await ctx.db
  .insertInto('storage_destinations')
  .values({ id: offsite.id, organization_id: organizationId, name: offsite.name, provider: 's3', config_enc: ctx.secrets.seal(JSON.stringify({ bucket: 'bench', region: 'us-east-1' })), is_default: 0, created_at: nowIso(), updated_at: nowIso() })
  .execute();

const perBranch = Math.ceil(BACKUPS / BRANCHES);
const spanMs = (perBranch / 2) * 24 * HOUR; // two a day
const createdAt = new Date(now - spanMs - 7 * 24 * HOUR);
const databases: Database[] = [];
const branches: Array<{ id: string; database: Database; production: boolean; name: string }> = [];
for (let d = 0; d < Math.ceil(BRANCHES / 4); d++) {
  const database: Database = { id: newId(), organization_id: organizationId, name: `app${d}`, kind: d % 3 === 2 ? 'mysql' : 'postgresql', created_at: nowIso(createdAt), updated_at: nowIso(createdAt), deleted_at: null, storage_destinations: null };
  await ctx.db.insertInto('databases').values(database).execute();
  await createDefaultPolicies(ctx.db, database, createdAt);
  databases.push(database);
}
for (let i = 0; i < BRANCHES; i++) {
  const database = databases[Math.floor(i / 4)];
  const production = i % 4 === 0;
  const name = production ? 'main' : `dev${i % 4}`;
  const id = newId();
  await ctx.db
    .insertInto('branches')
    .values({
      id,
      organization_id: organizationId,
      database_id: database.id,
      name,
      production: production ? 1 : 0,
      connection_url_enc: ctx.secrets.seal(`postgres://app:secret@db${i}.internal:5432/${database.name}`),
      conn_host: `db${i}.internal`,
      conn_port: 5432,
      conn_database: database.name,
      conn_user: 'app',
      server_version: '16.4',
      created_at: nowIso(createdAt),
      updated_at: nowIso(createdAt),
      deleted_at: null,
    })
    .execute();
  branches.push({ id, database, production, name });
}
const policies = await ctx.db.selectFrom('backup_policies').select(['id', 'database_id', 'target']).execute();

let seeded = 0;
for (const [bi, branch] of branches.entries()) {
  const policy = policies.find((p) => p.database_id === branch.database.id && p.target === (branch.production ? 'production' : 'development'))!;
  const rows: Array<Insertable<BackupsTable>> = [];
  const artifacts: Array<Insertable<ArtifactsTable>> = [];
  const jobs: Array<Insertable<JobsTable>> = [];
  const count = Math.min(perBranch, BACKUPS - seeded);
  for (let k = 0; k < count; k++) {
    const created = new Date(now - spanMs + k * 12 * HOUR + bi * 60_000);
    const started = new Date(created.getTime() + 2_000);
    const roll = (k * 7919 + bi * 104_729) % 100;
    const state: BackupsTable['state'] = roll < 3 ? 'failed' : roll < 4 ? 'canceled' : 'success';
    const seconds = 40 + ((k * 31 + bi * 17) % 200);
    const completed = new Date(started.getTime() + seconds * 1000);
    const size = 200_000_000 + k * 150_000 + ((bi * 7_777_777) % 50_000_000);
    // Retention: what is older than two weeks is gone (deleted with its copies), as the sweeper leaves it.
    const deleted = completed.getTime() < now - 14 * 24 * HOUR ? nowIso(new Date(completed.getTime() + 14 * 24 * HOUR)) : null;
    const id = newId();
    rows.push({
      id,
      organization_id: organizationId,
      database_id: branch.database.id,
      branch_id: branch.id,
      name: `${created.toISOString().slice(0, 16).replace(/[-:T]/g, '.')}`,
      state,
      size: state === 'success' ? size : 0,
      raw_size: state === 'success' ? size * 4 : 0,
      pvc_size: size * 5,
      protected: k % 97 === 0 ? 1 : 0,
      required: 0,
      emergency: 0,
      backup_policy_id: policy.id,
      actor_id: null,
      actor_name: null,
      retention_value: 2,
      retention_unit: 'week',
      created_at: nowIso(created),
      updated_at: nowIso(completed),
      started_at: nowIso(started),
      completed_at: nowIso(completed),
      expires_at: nowIso(new Date(completed.getTime() + 14 * 24 * HOUR)),
      deleted_at: deleted,
      error: state === 'failed' ? 'pg_dump exited with code 1: connection to server at "db.internal" failed: timeout expired' : state === 'canceled' ? 'canceled by a user' : null,
      engine: branch.database.kind,
      server_version: '16.4',
      client_version: '16.4',
      compression: 'zstd',
      sha256: state === 'success' ? 'ab'.repeat(32) : null,
      table_row_counts: null,
      lease_owner: null,
      lease_expires_at: null,
      progress_raw_bytes: size * 4,
      progress_bytes: size,
      progress_at: nowIso(completed),
      schedule_slot: nowIso(created),
    });
    for (const dest of [local, offsite]) {
      const stored = state === 'success' || (state === 'failed' && dest === local && roll === 0);
      if (!stored && state !== 'failed') continue;
      artifacts.push({
        id: newId(),
        backup_id: id,
        destination_id: dest.id,
        destination_name: dest.name,
        provider: dest.provider,
        path: `default/${branch.database.name}/${branch.name}/${id}.dump.zst.age`,
        size: stored ? size : 0,
        sha256: stored ? 'ab'.repeat(32) : null,
        state: deleted ? 'deleted' : stored ? 'success' : 'failed',
        error: stored ? null : 'upload failed: connection reset',
        created_at: nowIso(created),
        updated_at: nowIso(completed),
      });
    }
    if (state === 'success' && k % 20 === 19) {
      jobs.push({
        id: newId(),
        organization_id: organizationId,
        kind: 'verify',
        backup_id: id,
        branch_id: null,
        state: k % 200 === 199 ? 'failed' : 'success',
        params: JSON.stringify({ restore: true, drill: { policy_id: policy.id, rule: 'every' } }),
        result: null,
        error: k % 200 === 199 ? 'copy in "offsite" failed its check: sha256 mismatch' : null,
        actor_id: null,
        created_at: nowIso(new Date(completed.getTime() + 60_000)),
        updated_at: nowIso(new Date(completed.getTime() + 600_000)),
        started_at: nowIso(new Date(completed.getTime() + 60_000)),
        completed_at: nowIso(new Date(completed.getTime() + 600_000)),
        lease_owner: null,
        lease_expires_at: null,
        policy_id: policy.id,
        drill_key: `every:${policy.id}:${id}`,
      });
    }
  }
  seeded += count;
  await ctx.db.transaction().execute(async (trx) => {
    // SQLite takes at most 32766 bound values in one statement: batches of 200 rows.
    for (let i = 0; i < rows.length; i += 200) await trx.insertInto('backups').values(rows.slice(i, i + 200)).execute();
    for (let i = 0; i < artifacts.length; i += 500) await trx.insertInto('artifacts').values(artifacts.slice(i, i + 500)).execute();
    for (let i = 0; i < jobs.length; i += 500) await trx.insertInto('jobs').values(jobs.slice(i, i + 500)).execute();
  });
}
const totals = {
  backups: Number((await ctx.db.selectFrom('backups').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  artifacts: Number((await ctx.db.selectFrom('artifacts').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  drills: Number((await ctx.db.selectFrom('jobs').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
};
// Planner statistics, as a catalog that has run a while has them (PostgreSQL's autovacuum
// takes them after a burst of inserts within a minute or so). BENCH_NO_ANALYZE=1 measures
// the moment before, the worst case of a freshly filled catalog.
if (!process.env.BENCH_NO_ANALYZE) {
  const { sql } = await import('kysely');
  await sql`analyze`.execute(ctx.db);
}
console.log(`seeded ${ctx.catalog.dialect} catalog: ${totals.backups} backups, ${totals.artifacts} artifacts, ${totals.drills} drills over ${BRANCHES} branches in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

// ---------------------------------------------------------------------------------------------
// Measure.
const app = await buildApp(ctx);
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
const auth = { authorization: `${tokenId}:${tokenSecret}` };
const first = branches[0];
const endpoints = [
  { name: 'GET /health', url: '/health' },
  { name: 'GET backups per_page=25', url: `/v1/organizations/default/databases/${first.database.name}/branches/${first.name}/backups?per_page=25` },
  { name: 'GET overview', url: '/v1/organizations/default/overview' },
  { name: 'GET backup-history 90 d', url: `/v1/organizations/default/databases/${first.database.name}/branches/${first.name}/backup-history?days=90` },
];

async function call(url: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(base + url, { headers: auth });
  const body = await res.text();
  const ms = performance.now() - t;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${body.slice(0, 300)}`);
  return ms;
}

const overview = JSON.parse(await (await fetch(`${base}/v1/organizations/default/overview`, { headers: auth })).text());
console.log(`overview: ${overview.data.length} branches, ${overview.data.filter((e: any) => e.attention).length} needing attention, ${(JSON.stringify(overview).length / 1024).toFixed(1)} KiB`);

const samples = new Map<string, number[]>(endpoints.map((e) => [e.name, []]));
for (const e of endpoints) for (let i = 0; i < 20; i++) await call(e.url); // warm-up
// Interleaved, so that a slow moment of the machine falls on every endpoint alike.
for (let i = 0; i < REQUESTS; i++) for (const e of endpoints) samples.get(e.name)!.push(await call(e.url));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const stats = new Map([...samples].map(([k, xs]) => [k, { p50: pct(xs, 50), p95: pct(xs, 95) }]));
const health = stats.get('GET /health')!;
const list = stats.get('GET backups per_page=25')!;
console.log(`\n${REQUESTS} requests each, client-side latency over HTTP:`);
for (const [name, s] of stats) {
  console.log(
    `${name.padEnd(26)} p50 ${s.p50.toFixed(2).padStart(7)} ms  p95 ${s.p95.toFixed(2).padStart(7)} ms   ` +
      `vs /health p50 ×${(s.p50 / health.p50).toFixed(1)}  vs backups list p50 ×${(s.p50 / list.p50).toFixed(2)}`,
  );
}
const o = stats.get('GET overview')!;
console.log(`\noverview target (well under 100 ms): p95 ${o.p95.toFixed(1)} ms ${o.p95 < 100 ? 'ok' : 'NOT MET'}`);

await app.close();
await ctx.catalog.close();
if (process.env.BENCH_KEEP) console.log(`kept the data directory: ${dataDir}`);
else fs.rmSync(dataDir, { recursive: true, force: true });
