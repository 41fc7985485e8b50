/**
 * Policies, the scheduler and retention over simulated weeks, with real dumps: backups
 * happen on time (exactly one per slot, even across restarts and racing workers) and
 * expire on time (protected ones and the last good one stay).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import pg from 'pg';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { Scheduler, runDuePolicies } from '../../src/jobs/scheduler.js';
import { openCatalog } from '../../src/catalog/db.js';
import { loadConfig } from '../../src/config.js';
import { secretBox } from '../../src/secrets.js';
import { createOrganization } from '../../src/catalog/organizations.js';
import { createDefaultPolicies } from '../../src/catalog/policies.js';
import { newId } from '../../src/catalog/ids.js';
import type { AppContext } from '../../src/context.js';

const HOUR = 3_600_000;

async function settle(server: TestServer): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const busy = await server.ctx.db.selectFrom('backups').select('id').where('state', 'in', ['pending', 'running']).executeTakeFirst();
    if (!busy) return;
    if (Date.now() > deadline) throw new Error('backups did not settle');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('an hourly policy over a simulated day and a half, then a broken source', () => {
  // Simulated hours of backups (each a real pg_dump): long enough for the 6-hour retention to
  // sweep many times over, and for a protected backup to outlive it by far.
  const HOURS = 36;
  const start = Date.parse('2026-03-01T00:00:00Z');
  let now = new Date(start);
  let server: TestServer;
  let scheduler: Scheduler;
  const source = uniqueName('sbx_sched');
  const dbPath = '/v1/organizations/default/databases/app';
  let branchPath: string;
  let policyId: string;

  before(async () => {
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 200) g'));
    server = await startServer({}, { clock: () => now });
    scheduler = new Scheduler(server.ctx);
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('a new database has the required default policies: every 12 hours, kept 2 days', async () => {
    const list = await api(server, 'GET', `${dbPath}/backup-policies`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.data.map((p: any) => [p.name, p.target, p.frequency_value, p.frequency_unit, p.retention_value, p.retention_unit, p.required]).sort(), [
      ['default-development', 'development', 12, 'hour', 2, 'day', true],
      ['default-production', 'production', 12, 'hour', 2, 'day', true],
    ]);
    const dev = list.body.data.find((p: any) => p.target === 'development');
    assert.equal(dev.next_run_at, '2026-03-01T12:00:00.000Z', 'first slot after creation');
    assert.equal(dev.last_ran_at, null);
    const del = await api(server, 'DELETE', `${dbPath}/backup-policies/${dev.id}`);
    assert.equal(del.status, 409, 'a required policy cannot be deleted');
    // ...but it can be edited: move it out of the way of this test's hourly policy.
    const patched = await api(server, 'PATCH', `${dbPath}/backup-policies/${dev.id}`, { frequency_value: 1, frequency_unit: 'month', schedule_week: 3 });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.required, true);
    assert.equal(patched.body.next_run_at, '2026-03-22T00:00:00.000Z');
  });

  test('policy validation gives clear errors', async () => {
    const base = { name: 'p', target: 'development', retention_value: 1, retention_unit: 'day', frequency_value: 1, frequency_unit: 'day', schedule_time: '03:30' };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ schedule_time: '25:00' }, /schedule_time must be HH:MM/],
      [{ schedule_time: '3:30' }, /schedule_time/],
      [{ schedule_day: 2 }, /schedule_day is only meaningful for weekly or monthly/],
      [{ frequency_unit: 'week', schedule_day: 7 }, /schedule_day must be 0 \(Sunday\) to 6/],
      [{ frequency_unit: 'week', schedule_week: 1 }, /schedule_week is only meaningful for monthly/],
      [{ frequency_unit: 'month', schedule_week: 4 }, /schedule_week must be 0 to 3/],
      [{ frequency_unit: 'hour', frequency_value: 5 }, /must divide 24/],
      [{ frequency_unit: 'fortnight' }, /frequency_unit/],
      [{ retention_value: 0 }, /retention_value/],
      [{ target: 'staging' }, /target/],
      [{ surprise: 1 }, /surprise/],
    ];
    for (const [change, message] of cases) {
      const r = await api(server, 'POST', `${dbPath}/backup-policies`, { ...base, ...change });
      assert.equal(r.status, 422, JSON.stringify(change));
      assert.equal(r.body.code, 'invalid_params');
      assert.match(r.body.message, message, JSON.stringify(change));
    }
  });

  test(`every hour for ${HOURS} hours: ${HOURS} backups, one per slot, expired ones swept on time, protected ones kept`, async () => {
    const created = await api(server, 'POST', `${dbPath}/backup-policies`, {
      name: 'hourly',
      display_name: 'Hourly',
      target: 'development',
      retention_value: 6,
      retention_unit: 'hour',
      frequency_value: 1,
      frequency_unit: 'hour',
      schedule_time: '00:00',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    policyId = created.body.id;
    assert.equal(created.body.next_run_at, '2026-03-01T01:00:00.000Z');
    let protectedId = '';
    for (let h = 1; h <= HOURS; h++) {
      now = new Date(start + h * HOUR);
      const r = await scheduler.tick();
      assert.equal(r.queued.length, 1, `hour ${h}: one backup queued`);
      await settle(server);
      // A second pass at the same moment finds nothing due: one backup per slot.
      assert.equal((await scheduler.tick()).queued.length, 0);
      if (h === 10) {
        protectedId = r.queued[0];
        assert.equal((await api(server, 'PATCH', `${branchPath}/backups/${protectedId}`, { protected: true })).status, 200);
      }
      // Swept on time: nothing unprotected is past its expiry after a pass.
      const overdue = await server.ctx.db.selectFrom('backups').select('id').where('deleted_at', 'is', null).where('protected', '=', 0).where('expires_at', '<', now.toISOString()).execute();
      assert.deepEqual(overdue, [], `hour ${h}: expired backups were swept`);
    }
    const all = await api(server, 'GET', `${branchPath}/backups?policy=${policyId}&all=true&per_page=100`);
    assert.equal(all.body.total_count, HOURS);
    assert.ok(all.body.data.every((b: any) => b.state === 'success'));
    const b0 = all.body.data[0];
    assert.equal(b0.backup_policy.id, policyId);
    assert.equal(b0.backup_policy.display_name, 'Hourly');
    assert.equal(b0.required, false);
    assert.equal(b0.actor, null, 'nobody asked for a scheduled backup');
    const slots = await server.ctx.db.selectFrom('backups').select('schedule_slot').where('backup_policy_id', '=', policyId).execute();
    assert.equal(new Set(slots.map((s) => s.schedule_slot)).size, HOURS);

    const live = await api(server, 'GET', `${branchPath}/backups?policy=${policyId}&per_page=100`);
    // Kept 6 hours: the backups of the last 7 hours are not expired yet, plus the protected one.
    assert.deepEqual(live.body.data.map((b: any) => b.created_at).sort(), [
      new Date(start + 10 * HOUR).toISOString(),
      ...[6, 5, 4, 3, 2, 1, 0].map((ago) => HOURS - ago).map((h) => new Date(start + h * HOUR).toISOString()),
    ]);
    const policy = await api(server, 'GET', `${dbPath}/backup-policies/${policyId}`);
    assert.equal(policy.body.last_ran_at, new Date(start + HOURS * HOUR).toISOString());
    assert.equal(policy.body.next_run_at, new Date(start + (HOURS + 1) * HOUR).toISOString());
  });

  test('when every later backup fails, expiry never removes the last good one', async () => {
    await dropDatabase('postgresql', source);
    for (let h = HOURS + 1; h <= HOURS + 12; h++) {
      now = new Date(start + h * HOUR);
      await scheduler.tick();
      await settle(server);
    }
    const live = await api(server, 'GET', `${branchPath}/backups?policy=${policyId}&per_page=100`);
    const good = live.body.data.filter((b: any) => b.state === 'success').map((b: any) => b.created_at).sort();
    assert.deepEqual(good, [new Date(start + 10 * HOUR).toISOString(), new Date(start + HOURS * HOUR).toISOString()], 'the protected one and the last good one');
    const last = live.body.data.find((b: any) => b.created_at === new Date(start + HOURS * HOUR).toISOString());
    assert.ok(Date.parse(last.expires_at) < now.getTime(), 'it is past its expiry, and kept anyway');
    const failed = live.body.data.filter((b: any) => b.state === 'failed');
    assert.equal(failed.length, 7, 'failed backups expire like any other (the last 7 hours remain)');
    await createDatabase('postgresql', source);
  });
});

describe('overlap and restarts', () => {
  const start = Date.parse('2026-05-01T00:00:00Z');
  let now = new Date(start);
  let server: TestServer;
  const source = uniqueName('sbx_sched2');
  let branchPath: string;
  let policyId: string;
  const dbPath = '/v1/organizations/default/databases/app';

  before(async () => {
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key); insert into t select generate_series(1, 10)'));
    server = await startServer({}, { clock: () => now });
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source), true);
    const p = await api(server, 'POST', `${dbPath}/backup-policies`, { name: 'hourly', target: 'production', retention_value: 1, retention_unit: 'day', frequency_value: 1, frequency_unit: 'hour', schedule_time: '00:15' });
    policyId = p.body.id;
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  const slotBackups = async () =>
    (await server.ctx.db.selectFrom('backups').select(['schedule_slot', 'state', 'error']).where('backup_policy_id', '=', policyId).orderBy('schedule_slot').execute());

  test('a slot arriving while the branch still has a backup running is recorded as ignored', async () => {
    const locker = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: source });
    await locker.connect();
    try {
      await locker.query('begin; lock table t in access exclusive mode');
      now = new Date(start + 15 * 60_000); // 00:15, a slot
      assert.equal((await new Scheduler(server.ctx).tick()).queued.length, 1);
      const deadline = Date.now() + 20_000;
      while ((await slotBackups())[0].state !== 'running') {
        if (Date.now() > deadline) throw new Error('never started');
        await new Promise((r) => setTimeout(r, 20));
      }
      now = new Date(start + 75 * 60_000); // 01:15, the next slot, while the first still runs
      const r = await new Scheduler(server.ctx).tick();
      assert.equal(r.ignored.length, 1);
      const rows = await slotBackups();
      assert.equal(rows[1].state, 'ignored');
      assert.match(rows[1].error ?? '', /already had a backup in progress/);
      const listed = await api(server, 'GET', `${branchPath}/backups?state=ignored`);
      assert.equal(listed.body.total_count, 1);
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
    await settle(server);
  });

  test('after a restart, a recently missed slot runs once and older ones are not replayed', async () => {
    // Down from 01:20 to 02:45: the 02:15 slot was missed by 30 minutes.
    now = new Date(start + 165 * 60_000);
    const restarted = new Scheduler(server.ctx);
    assert.equal((await restarted.tick()).queued.length, 1);
    await settle(server);
    now = new Date(start + 170 * 60_000);
    assert.equal((await restarted.tick()).queued.length, 0, 'not twice');
    // Down for 4 hours (02:50 to 06:50): only the 06:15 slot runs, the ones before are gone.
    now = new Date(start + 410 * 60_000);
    assert.equal((await new Scheduler(server.ctx).tick()).queued.length, 1);
    await settle(server);
    const slots = (await slotBackups()).map((b) => b.schedule_slot);
    assert.deepEqual(slots, ['2026-05-01T00:15:00.000Z', '2026-05-01T01:15:00.000Z', '2026-05-01T02:15:00.000Z', '2026-05-01T06:15:00.000Z']);
  });

  test('two schedulers ticking at the same moment make one backup per slot', async () => {
    now = new Date(start + 435 * 60_000); // 07:15
    const results = await Promise.all([new Scheduler(server.ctx).tick(), new Scheduler(server.ctx).tick(), new Scheduler(server.ctx).tick()]);
    assert.equal(results.reduce((n, r) => n + r.queued.length, 0), 1);
    await settle(server);
  });
});

describe('racing schedulers on a shared PostgreSQL catalog', () => {
  test('many workers, many slots: exactly one backup per (policy, branch, slot)', async () => {
    const catalogDb = uniqueName('sbx_sched_cat');
    await createDatabase('postgresql', catalogDb);
    const url = `postgres://postgres@127.0.0.1:5432/${catalogDb}`;
    const catalogs = await Promise.all([openCatalog(url), openCatalog(url), openCatalog(url), openCatalog(url)]);
    try {
      let now = new Date('2026-06-01T00:00:00Z');
      const secrets = secretBox(Buffer.alloc(32, 3));
      const ctxs: AppContext[] = catalogs.map((catalog) => ({
        config: loadConfig({ STRONGBOX_DATA_DIR: '/tmp/unused' }),
        catalog,
        db: catalog.db,
        secrets,
        log: pino({ level: 'silent' }),
        clock: () => now,
        nudge: () => {},
        cancelLocal: () => false,
      }));
      const db = catalogs[0].db;
      const org = await createOrganization(db, secrets, '/tmp/unused', 'race');
      const database = { id: newId(), organization_id: org.id, name: 'app', kind: 'postgresql' as const, created_at: now.toISOString(), updated_at: now.toISOString(), deleted_at: null, storage_destinations: null };
      await db.insertInto('databases').values(database).execute();
      await createDefaultPolicies(db, database, now);
      for (const name of ['a', 'b', 'c']) {
        await db
          .insertInto('branches')
          .values({ id: newId(), organization_id: org.id, database_id: database.id, name, production: 1, connection_url_enc: secrets.seal(pgUrl('x')), conn_host: 'h', conn_port: 1, conn_database: 'x', conn_user: 'u', server_version: '15', created_at: now.toISOString(), updated_at: now.toISOString(), deleted_at: null })
          .execute();
      }
      for (let slot = 1; slot <= 10; slot++) {
        now = new Date(Date.parse('2026-06-01T00:00:00Z') + slot * 12 * HOUR);
        await Promise.all(ctxs.map((c) => runDuePolicies(c)));
        // The backups are never run here: mark them done so the next slot is not "busy".
        await db.updateTable('backups').set({ state: 'success' }).where('state', '=', 'pending').execute();
      }
      const rows = await db.selectFrom('backups').select(['branch_id', 'schedule_slot', 'state']).execute();
      assert.equal(rows.length, 30, '3 production branches x 10 slots');
      assert.equal(new Set(rows.map((r) => `${r.branch_id}/${r.schedule_slot}`)).size, 30);
      assert.ok(rows.every((r) => r.state === 'success'), 'none was ignored: no slot was claimed twice');
    } finally {
      for (const c of catalogs) await c.close();
      await dropDatabase('postgresql', catalogDb);
    }
  });
});
