/**
 * list_backups at scale (issue 14): the page the API answers is the page a plain
 * `ORDER BY created_at DESC, id DESC LIMIT/OFFSET` gives, for every filter, near and deep
 * pages and across month boundaries (where the per-month counts of migration 0018 locate a
 * page); total_count is exact, and stays exact after deletes through the API, retention,
 * state changes and new backups (the counts are kept by triggers in the catalog).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type Insertable } from 'kysely';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { pgUrl } from '../helpers/databases.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import type { BackupsTable } from '../../src/catalog/schema.js';
import { sweepExpired } from '../../src/jobs/retention.js';

const DAY = 24 * 3_600_000;

describe('list_backups paging and total_count at scale', () => {
  let server: TestServer;
  let branchPath: string;
  let branchId: string;
  let policyIds: string[];
  const states = ['success', 'success', 'success', 'success', 'failed', 'canceled', 'ignored'] as const;

  before(async () => {
    server = await startServer({}, { runner: false });
    branchPath = await registerBranch(server, 'default', 'paging', 'postgresql', 'main', pgUrl('postgres'), true);
    const db = server.ctx.db;
    const branch = await db.selectFrom('branches').selectAll().where('name', '=', 'main').where('conn_database', '=', 'postgres').orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    branchId = branch.id;
    policyIds = (await db.selectFrom('backup_policies').select('id').where('database_id', '=', branch.database_id).orderBy('target').execute()).map((p) => p.id);
    // 1,300 backups over about 14 months, several a day; every 50th shares its created_at with
    // the one before (the order then goes by id), some deleted, some without a policy.
    const start = Date.UTC(2025, 0, 1);
    const rows: Array<Insertable<BackupsTable>> = [];
    for (let k = 0; k < 1300; k++) {
      const created = new Date(start + Math.floor(k * (430 / 1300) * DAY) + (k % 50 === 1 ? 0 : (k % 7) * 60_000));
      const t = nowIso(k % 50 === 1 && rows.length ? new Date(rows[rows.length - 1].created_at as string) : created);
      rows.push({
        id: newId(),
        organization_id: branch.organization_id,
        database_id: branch.database_id,
        branch_id: branch.id,
        name: `b${k}`,
        state: states[k % states.length],
        backup_policy_id: k % 5 === 0 ? null : policyIds[k % 2],
        retention_value: 2,
        retention_unit: 'day',
        created_at: t,
        updated_at: t,
        started_at: k % 11 === 0 ? null : nowIso(new Date(Date.parse(t) + 5_000)),
        completed_at: nowIso(new Date(Date.parse(t) + 60_000)),
        expires_at: nowIso(new Date(Date.parse(t) + 100 * 365 * DAY)),
        deleted_at: k % 9 === 0 ? nowIso(new Date(Date.parse(t) + DAY)) : null,
        engine: 'postgresql',
        compression: 'zstd',
        required: 0,
        protected: 0,
        emergency: 0,
      });
    }
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += 200) await trx.insertInto('backups').values(rows.slice(i, i + 200)).execute();
    });
  });
  after(async () => {
    await server?.close();
  });

  type Filter = { qs: string; all?: boolean; state?: string; policy?: string; from?: string; to?: string };

  /** The page as OFFSET gives it, and the count, straight from the catalog. */
  async function expected(f: Filter, page: number, perPage: number): Promise<{ ids: string[]; total: number }> {
    let q = server.ctx.db.selectFrom('backups').where('branch_id', '=', branchId);
    if (!f.all) q = q.where('deleted_at', 'is', null);
    if (f.state) q = q.where('state', '=', f.state as never);
    if (f.policy) q = q.where('backup_policy_id', '=', f.policy);
    if (f.from) q = q.where(sql<string>`coalesce(started_at, created_at)`, '>=', f.from);
    if (f.to) q = q.where(sql<string>`coalesce(started_at, created_at)`, '<=', f.to);
    const { n } = await q.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
    const rows = await q.select('id').orderBy('created_at', 'desc').orderBy('id', 'desc').limit(perPage).offset((page - 1) * perPage).execute();
    return { ids: rows.map((r) => r.id), total: Number(n) };
  }

  async function check(f: Filter, page: number, perPage: number): Promise<number> {
    const r = await api(server, 'GET', `${branchPath}/backups?per_page=${perPage}&page=${page}${f.qs}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const want = await expected(f, page, perPage);
    assert.equal(r.body.total_count, want.total, `total_count of ${f.qs || 'the default list'}`);
    assert.deepEqual(
      r.body.data.map((b: any) => b.id),
      want.ids,
      `page ${page} of per_page=${perPage}${f.qs}`,
    );
    return want.total;
  }

  const filters = (): Filter[] => [
    { qs: '' },
    { qs: '&all=true', all: true },
    { qs: '&state=failed', state: 'failed' },
    { qs: '&state=success', state: 'success' },
    { qs: `&policy=${policyIds[1]}`, policy: policyIds[1] },
    { qs: `&policy=${policyIds[0]}&state=success`, policy: policyIds[0], state: 'success' },
    { qs: '&all=true&state=canceled', all: true, state: 'canceled' },
    { qs: '&from=2025-03-10T00:00:00Z&to=2025-09-01T00:00:00Z', from: '2025-03-10T00:00:00.000Z', to: '2025-09-01T00:00:00.000Z' },
  ];

  test('every page of every filter equals the OFFSET result, with the exact total_count', async () => {
    for (const f of filters()) {
      for (const perPage of [37, 100]) {
        const total = await expected(f, 1, perPage).then((e) => e.total);
        const pages = Math.ceil(total / perPage);
        assert.ok(pages > 1 || f.state, `the fixture gives ${f.qs} several pages`);
        for (let page = 1; page <= pages + 1; page++) await check(f, page, perPage);
      }
    }
  });

  test('total_count and pages stay exact after deletes (API and retention), state changes and new backups', async () => {
    const db = server.ctx.db;
    // Deleted through the API.
    const live = await db.selectFrom('backups').select(['id', 'state']).where('branch_id', '=', branchId).where('deleted_at', 'is', null).where('state', '=', 'success').orderBy('created_at').limit(40).execute();
    for (const b of live.slice(0, 5)) assert.equal((await api(server, 'DELETE', `${branchPath}/backups/${b.id}`)).status, 204);
    // Expired and swept by retention (the newest success of the branch is always kept).
    await db.updateTable('backups').set({ expires_at: '2000-01-01T00:00:00.000Z' }).where('id', 'in', live.slice(5, 25).map((b) => b.id)).execute();
    const swept = await sweepExpired(server.ctx);
    assert.ok(swept.deleted.length >= 15, JSON.stringify(swept));
    // State changes (a backup that fails late, one moved to another policy), and new backups.
    await db.updateTable('backups').set({ state: 'failed' }).where('id', 'in', live.slice(25, 30).map((b) => b.id)).execute();
    await db.updateTable('backups').set({ backup_policy_id: null }).where('id', 'in', live.slice(30, 35).map((b) => b.id)).execute();
    // Undeleted (a catalog repair) and physically removed rows are counted too.
    await db.updateTable('backups').set({ deleted_at: null }).where('branch_id', '=', branchId).where('name', 'in', ['b9', 'b18']).execute();
    await db.deleteFrom('backups').where('id', 'in', live.slice(35, 38).map((b) => b.id)).execute();
    for (let i = 0; i < 3; i++) assert.equal((await api(server, 'POST', `${branchPath}/backups`, { name: `new-${i}` })).status, 201);

    for (const f of filters()) {
      const total = await check(f, 1, 50);
      await check(f, Math.max(1, Math.ceil(total / 50) - 1), 50);
      await check(f, Math.ceil(total / 100), 100);
    }
    // The counters equal a count of the rows, key by key.
    const counts = await db.selectFrom('backup_counts').select(['live', 'state', 'policy_key', 'month', 'n']).where('branch_id', '=', branchId).where('n', '!=', 0).execute();
    const recount = await db
      .selectFrom('backups')
      .select((eb) => [
        sql<number>`case when deleted_at is null then 1 else 0 end`.as('live'),
        'state',
        sql<string>`coalesce(backup_policy_id, '')`.as('policy_key'),
        sql<string>`substr(created_at, 1, 7)`.as('month'),
        eb.fn.countAll<number | string>().as('n'),
      ])
      .where('branch_id', '=', branchId)
      .groupBy([sql`case when deleted_at is null then 1 else 0 end`, 'state', sql`coalesce(backup_policy_id, '')`, sql`substr(created_at, 1, 7)`])
      .execute();
    const key = (r: { live: number | string; state: string; policy_key: string; month: string; n: number | string }) => `${Number(r.live)} ${r.state} ${r.policy_key} ${r.month} ${Number(r.n)}`;
    assert.deepEqual(counts.map(key).sort(), recount.map(key).sort());
  });
});
