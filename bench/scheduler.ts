/**
 * Scheduler fan-in (issue 14): one scheduler pass that enqueues BENCH_SLOTS due slots (500
 * databases × their production and development policies, one branch each, by default) while
 * the API is loaded from other processes (bench/http-load.ts): a backups list of one branch
 * on BENCH_CONNECTIONS keep-alive sockets, and a GET /health probe every 5 ms. For each pass
 * it prints the pass's duration and the p50/p99/max of the requests that were in flight
 * during it, against the same requests in the seconds before it (the baseline, same run).
 * Goal: every request's p99 under 25 ms during the pass.
 *
 * The server runs in this process (buildApp, listening on a port; no job runner, so the
 * queued backups stay queued), so that the pass can be started at a known moment; between
 * passes its backups are removed and the policies made due again.
 *
 *   node --import tsx bench/scheduler.ts                  # SQLite catalog
 *   node --import tsx bench/scheduler.ts --postgres       # a fresh PostgreSQL catalog on 127.0.0.1:5432 (dropped after)
 *   BENCH_SLOTS=1000 BENCH_PASSES=3 BENCH_CONNECTIONS=4 BENCH_HISTORY=20 node --import tsx bench/scheduler.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import pg from 'pg';
import { sql, type Insertable } from 'kysely';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { bootstrap } from '../src/bootstrap.js';
import { buildApp } from '../src/app.js';
import { createDefaultPolicies } from '../src/catalog/policies.js';
import { runDuePolicies } from '../src/jobs/scheduler.js';
import { newId, nowIso } from '../src/catalog/ids.js';
import type { BackupsTable, Database } from '../src/catalog/schema.js';
import { percentile, type LoadResult, type LoadSpec, type Sample } from './http-load.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SLOTS = Number(process.env.BENCH_SLOTS ?? 1000);
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const HISTORY = Number(process.env.BENCH_HISTORY ?? 20);
const usePostgres = process.argv.includes('--postgres');
const HOUR = 3_600_000;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bench-scheduler-'));
let pgDatabase: string | null = null;
let catalogUrl = '';
async function pgAdmin(statement: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}
if (usePostgres) {
  pgDatabase = `sbx_bench_sched_${process.pid}`;
  await pgAdmin(`create database ${pgDatabase}`);
  catalogUrl = `postgres://postgres@127.0.0.1:5432/${pgDatabase}`;
}
const tokenId = 'benchadmin';
const tokenSecret = 'bench-secret-0123456789abcdef';
const config = loadConfig({
  STRONGBOX_DATA_DIR: dataDir,
  STRONGBOX_PORT: '0',
  STRONGBOX_BOOTSTRAP_TOKEN: `${tokenId}:${tokenSecret}`,
  STRONGBOX_RATE_LIMIT_PER_MINUTE: '1000000',
  ...(catalogUrl ? { STRONGBOX_CATALOG_URL: catalogUrl } : {}),
});
const ctx = await createContext(config, { log: pino({ level: 'silent' }) });
const { organizationId } = await bootstrap(ctx);

// ---------------------------------------------------------------------------------------------
// Seed: SLOTS / 2 databases, each a production and a development branch with its default
// policies, HISTORY past backups per branch.
const seedStart = performance.now();
const now = Date.now();
const created = new Date(now - 400 * 24 * HOUR);
const databases = Math.ceil(SLOTS / 2);
let firstBranch = '';
await ctx.db.transaction().execute(async (trx) => {
  for (let d = 0; d < databases; d++) {
    const database: Database = { id: newId(), organization_id: organizationId, name: `app${d}`, kind: 'postgresql', created_at: nowIso(created), updated_at: nowIso(created), deleted_at: null, storage_destinations: null };
    await trx.insertInto('databases').values(database).execute();
    await createDefaultPolicies(trx, database, created);
    const policies = await trx.selectFrom('backup_policies').select(['id', 'target']).where('database_id', '=', database.id).execute();
    const rows: Array<Insertable<BackupsTable>> = [];
    for (const [name, production] of [['main', true], ['dev', false]] as const) {
      if (d * 2 + (production ? 0 : 1) >= SLOTS) continue;
      const branchId = newId();
      if (!firstBranch) firstBranch = `app${d}/${name}`;
      await trx
        .insertInto('branches')
        .values({ id: branchId, organization_id: organizationId, database_id: database.id, name, production: production ? 1 : 0, connection_url_enc: ctx.secrets.seal(`postgres://app:secret@db${d}.internal/app`), conn_host: `db${d}.internal`, conn_port: 5432, conn_database: 'app', conn_user: 'app', server_version: '16.4', created_at: nowIso(created), updated_at: nowIso(created), deleted_at: null })
        .execute();
      const policy = policies.find((p) => p.target === (production ? 'production' : 'development'))!;
      for (let k = 0; k < HISTORY; k++) {
        const t = new Date(now - (HISTORY - k) * 12 * HOUR - 13 * HOUR);
        rows.push({ id: newId(), organization_id: organizationId, database_id: database.id, branch_id: branchId, name: `${name}-${k}`, state: 'success', backup_policy_id: policy.id, retention_value: 2, retention_unit: 'day', created_at: nowIso(t), updated_at: nowIso(t), started_at: nowIso(t), completed_at: nowIso(new Date(t.getTime() + 60_000)), expires_at: nowIso(new Date(now + 365 * 24 * HOUR)), deleted_at: null, engine: 'postgresql', compression: 'zstd', schedule_slot: nowIso(t), size: 1_000_000, protected: 0, required: 1, emergency: 0 });
      }
    }
    for (let i = 0; i < rows.length; i += 200) await trx.insertInto('backups').values(rows.slice(i, i + 200)).execute();
  }
});
await sql`analyze`.execute(ctx.db);
console.log(`seeded ${ctx.catalog.dialect} catalog: ${databases} databases, ${SLOTS} branches with ${HISTORY} backups each, in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

/** Every policy due now: its last run 13 hours ago (the default schedule is every 12 hours). */
async function makeDue(): Promise<void> {
  await ctx.db.deleteFrom('backups').where('state', 'in', ['pending', 'ignored']).execute();
  await ctx.db.updateTable('backup_policies').set({ last_ran_at: nowIso(new Date(Date.now() - 13 * HOUR)) }).execute();
}

// ---------------------------------------------------------------------------------------------
const app = await buildApp(ctx);
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
const [dbName, branchName] = firstBranch.split('/');
const listPath = `/v1/organizations/default/databases/${dbName}/branches/${branchName}/backups?per_page=25`;
const headers = { authorization: `${tokenId}:${tokenSecret}` };

function load(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/http-load.ts'), JSON.stringify(spec)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load generator exited with ${code}`))));
  });
}

/** Samples in flight at some moment of [from, to] (epoch ms). */
const during = (xs: Sample[], from: number, to: number) => xs.filter((s) => s[2] === 200 && s[0] <= to && s[0] + s[1] >= from).map((s) => s[1]);
const fmt = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(1).padStart(6)}  p99 ${percentile(xs, 99).toFixed(1).padStart(6)}  max ${Math.max(...xs).toFixed(0).padStart(5)} ms (${String(xs.length).padStart(5)} req)`;

const rows: Array<{ pass: number; ms: number; queued: number; list: number[]; health: number[]; listBefore: number[]; healthBefore: number[] }> = [];
for (let pass = 1; pass <= PASSES; pass++) {
  await makeDue();
  // The load generators need about a second to start; they run 5 s, the pass starts at 3 s.
  const startAt = Date.now() + 1500;
  const loads = Promise.all([
    load({ base, paths: [listPath], headers, connections: CONNECTIONS, seconds: 5, startAt }),
    load({ base, paths: ['/health'], connections: 1, seconds: 5, everyMs: 5, startAt }),
  ]);
  await new Promise((r) => setTimeout(r, startAt + 3000 - Date.now()));
  const t0 = performance.timeOrigin + performance.now();
  const result = await runDuePolicies(ctx);
  const t1 = performance.timeOrigin + performance.now();
  const [list, health] = await loads;
  rows.push({
    pass,
    ms: t1 - t0,
    queued: result.queued.length + result.ignored.length,
    list: during(list.samples, t0, t1),
    health: during(health.samples, t0, t1),
    listBefore: during(list.samples, t0 - 2000, t0 - 100),
    healthBefore: during(health.samples, t0 - 2000, t0 - 100),
  });
}
const rss = (process.resourceUsage().maxRSS / 1024).toFixed(0);
console.log(`\nload: ${listPath} on ${CONNECTIONS} connections, /health every 5 ms; requests in flight during the pass vs the 2 s before it`);
for (const r of rows) {
  console.log(`pass ${r.pass}: ${r.queued} slots in ${r.ms.toFixed(0)} ms`);
  console.log(`  list    during ${fmt(r.list)}   before ${fmt(r.listBefore)}   p99 ratio ${(percentile(r.list, 99) / percentile(r.listBefore, 99)).toFixed(1)}×`);
  console.log(`  /health during ${fmt(r.health)}   before ${fmt(r.healthBefore)}   p99 ratio ${(percentile(r.health, 99) / percentile(r.healthBefore, 99)).toFixed(1)}×`);
}
const worst = Math.max(...rows.map((r) => Math.max(percentile(r.list, 99), percentile(r.health, 99))));
console.log(`\nworst request p99 during a pass: ${worst.toFixed(1)} ms (goal < 25 ms) ${worst < 25 ? 'ok' : 'NOT MET'}`);
console.log(`peak RSS (server, this process): ${rss} MB; machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}`);

await app.close();
await ctx.catalog.close();
fs.rmSync(dataDir, { recursive: true, force: true });
if (pgDatabase) await pgAdmin(`drop database if exists ${pgDatabase} with (force)`);
