/**
 * Restore drills over simulated hours and weeks, with real dumps and real restores: a
 * policy's `verify_every` fully verifies every Nth backup, its verification frequency at
 * least one per period, each exactly once however many schedulers tick at once; a failed
 * drill becomes one alertable event. And with a real process: a scratch database is
 * dropped after the process running the verification was killed with kill -9.
 */
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, until, type TestServer } from '../helpers/server.js';
import { addLargeTable, createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { periodIndex, periodStart } from '../../src/jobs/drills.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Until no backup and no job is pending or running. */
async function settle(server: TestServer): Promise<void> {
  await until(
    'backups and jobs to settle',
    async () => {
      const b = await server.ctx.db.selectFrom('backups').select('id').where('state', 'in', ['pending', 'running']).executeTakeFirst();
      const j = await server.ctx.db.selectFrom('jobs').select('id').where('state', 'in', ['pending', 'running']).executeTakeFirst();
      return b || j ? undefined : true;
    },
    120_000,
    20,
  );
}

describe('the drill grid', () => {
  test('periods are fixed on the epoch: weeks from Sunday, months from January', () => {
    const wed = new Date('2026-03-04T15:00:00Z');
    assert.equal(periodStart(periodIndex(wed, 1, 'week'), 1, 'week').toISOString(), '2026-03-01T00:00:00.000Z', 'the Sunday before');
    assert.equal(periodStart(periodIndex(wed, 1, 'month'), 1, 'month').toISOString(), '2026-03-01T00:00:00.000Z');
    assert.equal(periodStart(periodIndex(wed, 3, 'month'), 3, 'month').toISOString(), '2026-01-01T00:00:00.000Z');
    assert.equal(periodStart(periodIndex(wed, 6, 'hour'), 6, 'hour').toISOString(), '2026-03-04T12:00:00.000Z');
    assert.equal(periodStart(periodIndex(wed, 1, 'day'), 1, 'day').toISOString(), '2026-03-04T00:00:00.000Z');
    for (const unit of ['hour', 'day', 'week', 'month'] as const) {
      const i = periodIndex(wed, 2, unit);
      assert.equal(periodIndex(periodStart(i, 2, unit), 2, unit), i, unit);
      assert.equal(periodIndex(new Date(periodStart(i, 2, unit).getTime() - 1), 2, unit), i - 1, unit);
    }
  });
});

describe('restore drills scheduled by a policy (simulated clock)', () => {
  const start = Date.parse('2026-03-01T00:00:00Z');
  let now = new Date(start);
  let server: TestServer;
  const source = uniqueName('sbx_drills');
  const dbPath = '/v1/organizations/default/databases/drills';
  let branchPath: string;
  let policyId: string;
  /** Backup queued at each simulated hour. */
  const backupAt = new Map<number, string>();

  async function tickAt(hours: number): Promise<Awaited<ReturnType<Scheduler['tick']>>> {
    now = new Date(start + hours * HOUR);
    const r = await new Scheduler(server.ctx).tick();
    if (r.queued.length) backupAt.set(hours, r.queued[0]);
    await settle(server);
    return r;
  }

  async function drillJob(id: string) {
    return server.ctx.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  before(async () => {
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 200) g'));
    server = await startServer({}, { clock: () => now });
    branchPath = await registerBranch(server, 'default', 'drills', 'postgresql', 'main', pgUrl(source));
    const list = await api(server, 'GET', `${dbPath}/backup-policies`);
    policyId = list.body.data.find((p: any) => p.target === 'development').id;
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('drill fields: shown, validated', async () => {
    const p = await api(server, 'GET', `${dbPath}/backup-policies/${policyId}`);
    assert.equal(p.body.verify_every, null);
    assert.equal(p.body.verification_frequency_value, null);
    assert.equal(p.body.verification_frequency_unit, null);
    for (const [body, status, re] of [
      [{ verify_every: 0 }, 422, /verify_every/],
      [{ verification_frequency_value: 1 }, 422, /must be set together/],
      [{ verification_frequency_unit: 'week' }, 422, /must be set together/],
      [{ verification_frequency_value: 1, verification_frequency_unit: 'year' }, 422, /verification_frequency_unit/],
      [{ verify_every: 'two' }, 422, /verify_every/],
    ] as Array<[Record<string, unknown>, number, RegExp]>) {
      const r = await api(server, 'PATCH', `${dbPath}/backup-policies/${policyId}`, body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.body.code, 'invalid_params');
      assert.match(r.body.message, re);
    }
    const created = await api(server, 'POST', `${dbPath}/backup-policies`, {
      name: 'weekly-drill',
      target: 'production',
      retention_value: 1,
      retention_unit: 'day',
      frequency_value: 1,
      frequency_unit: 'day',
      schedule_time: '03:00',
      verification_frequency_value: 2,
      verification_frequency_unit: 'week',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.verification_frequency_value, 2);
    assert.equal(created.body.verification_frequency_unit, 'week');
    assert.equal(created.body.verify_every, null);
    assert.equal((await api(server, 'DELETE', `${dbPath}/backup-policies/${created.body.id}`)).status, 204);

    const set = await api(server, 'PATCH', `${dbPath}/backup-policies/${policyId}`, { frequency_value: 1, frequency_unit: 'hour', verify_every: 2 });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.verify_every, 2);
  });

  test('verify_every 2: every second backup is fully verified, once, even with racing schedulers', async () => {
    const drills: Record<number, string[]> = {};
    for (let h = 1; h <= 6; h++) drills[h] = (await tickAt(h)).drills;
    assert.deepEqual(drills[1], []);
    assert.deepEqual(drills[2], [], 'one success is not two');
    assert.equal(drills[3].length, 1, 'two successes since none: the newest is drilled');
    assert.deepEqual(drills[4], []);
    assert.equal(drills[5].length, 1);
    assert.deepEqual(drills[6], []);
    const first = await drillJob(drills[3][0]);
    const second = await drillJob(drills[5][0]);
    assert.equal(first.backup_id, backupAt.get(2));
    assert.equal(second.backup_id, backupAt.get(4));
    for (const j of [first, second]) {
      assert.equal(j.kind, 'verify');
      assert.equal(j.policy_id, policyId);
      assert.equal(j.state, 'success', j.error ?? '');
      assert.equal(JSON.parse(j.result!).restore.method, 'contents');
    }

    // Three schedulers at once when the next drill is due: one drill.
    now = new Date(start + 7 * HOUR);
    const racing = await Promise.all([new Scheduler(server.ctx).tick(), new Scheduler(server.ctx).tick(), new Scheduler(server.ctx).tick()]);
    assert.equal(racing.flatMap((r) => r.drills).length, 1, JSON.stringify(racing.map((r) => r.drills)));
    assert.equal(racing.flatMap((r) => r.queued).length, 1, 'and one backup for the slot');
    await settle(server);
    const third = await drillJob(racing.flatMap((r) => r.drills)[0]);
    assert.equal(third.backup_id, backupAt.get(6), 'two successes since the last drill: the newest of them');
    assert.equal(third.state, 'success');

    // The drills are listed with the branch's verifications and with their backups.
    const listed = await api(server, 'GET', `${branchPath}/verifications?drill=true`);
    assert.equal(listed.status, 200);
    assert.equal(listed.body.total_count, 3);
    assert.ok(listed.body.data.every((v: any) => v.drill_policy_id === policyId && v.kind === 'full' && v.state === 'success'));
    const ofBackup = await api(server, 'GET', `${branchPath}/backups/${first.backup_id}/verifications`);
    assert.equal(ofBackup.body.data[0].id, first.id);
    assert.equal(ofBackup.body.data[0].drill_policy_id, policyId);
  });

  test('a verification frequency: one full verification per week, counting one asked for', async () => {
    const set = await api(server, 'PATCH', `${dbPath}/backup-policies/${policyId}`, { verify_every: null, verification_frequency_value: 1, verification_frequency_unit: 'week', frequency_value: 1, frequency_unit: 'month' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    // Week 2026-03-08..14: no full verification yet.
    const w2 = 8 * 24;
    const r1 = await tickAt(w2 + 1);
    assert.equal(r1.drills.length, 1);
    const newest = await server.ctx.db.selectFrom('backups').select('id').where('state', '=', 'success').orderBy('created_at', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.equal((await drillJob(r1.drills[0])).backup_id, newest.id, "the branch's newest successful backup");
    assert.deepEqual((await tickAt(w2 + 30)).drills, [], 'one per week');
    // Week 2026-03-15..21: a full verification asked for through the API counts.
    now = new Date(start + (w2 + 7 * 24 + 2) * HOUR);
    const asked = await api(server, 'POST', `${branchPath}/backups/${newest.id}/verify`, { restore: true });
    assert.equal(asked.status, 202);
    await settle(server);
    assert.deepEqual((await tickAt(w2 + 7 * 24 + 3)).drills, []);
    // Week 2026-03-22..28: none asked for, so a drill.
    assert.equal((await tickAt(w2 + 14 * 24 + 5)).drills.length, 1);
  });

  test('a failed drill is recorded once as an alertable event', async () => {
    const newest = await server.ctx.db.selectFrom('backups').select(['id', 'name']).where('state', '=', 'success').orderBy('created_at', 'desc').limit(1).executeTakeFirstOrThrow();
    // Its only stored copy disappears.
    const art = await api(server, 'GET', `${branchPath}/backups/${newest.id}/artifacts`);
    fs.rmSync(path.join(server.dataDir, 'backups', art.body.data[0].path));
    const week = 8 * 24 + 21 * 24;
    const r = await tickAt(week + 1);
    assert.equal(r.drills.length, 1);
    const job = await drillJob(r.drills[0]);
    assert.equal(job.backup_id, newest.id);
    assert.equal(job.state, 'failed');
    assert.deepEqual(r.alerts, [], 'the drill had not ended when the pass looked');
    const next = await tickAt(week + 2);
    assert.deepEqual(next.alerts, [`drill-failed-${job.id}`]);
    const events = await server.ctx.db.selectFrom('events').selectAll().execute();
    assert.equal(events.length, 1);
    assert.equal(events[0].kind, 'verification.failed');
    assert.equal(events[0].severity, 'error');
    assert.equal(events[0].job_id, job.id);
    assert.equal(events[0].backup_id, newest.id);
    assert.equal(events[0].delivered_at, null);
    assert.match(events[0].message, new RegExp(`restore drill of backup "${newest.name}" failed: `));
    const again = await Promise.all([new Scheduler(server.ctx).tick(), new Scheduler(server.ctx).tick()]);
    assert.deepEqual(again.flatMap((x) => x.alerts), []);
    assert.equal((await server.ctx.db.selectFrom('events').select('id').execute()).length, 1);
    const failed = await api(server, 'GET', `${branchPath}/verifications?drill=true&state=failed`);
    assert.equal(failed.body.total_count, 1);
  });
});

describe('a scratch database outlives no crash (real process, kill -9)', () => {
  let cluster: Cluster;
  const source = uniqueName('sbx_drill_kill');

  before(async () => {
    await createDatabase('postgresql', source);
    // Large enough that restoring and dumping it again takes a few seconds.
    await addLargeTable('postgresql', pgUrl(source), 400_000);
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.close();
    await dropDatabase('postgresql', source);
  });

  test('killed while it verifies, the process drops the scratch database when it comes back', async () => {
    const branch = await registerBranch(cluster, 'default', 'killed', 'postgresql', 'main', pgUrl(source));
    const b = await api(cluster, 'POST', `${branch}/backups`, {});
    assert.equal(b.status, 201);
    await until('the backup', async () => {
      const r = await api(cluster, 'GET', `${branch}/backups/${b.body.id}`);
      if (r.body.state === 'failed') throw new Error(JSON.stringify(r.body));
      return r.body.state === 'success' ? true : undefined;
    }, 120_000);
    const v = await api(cluster, 'POST', `${branch}/backups/${b.body.id}/verify`, { restore: true });
    assert.equal(v.status, 202);
    const scratch = `sbx_scratch_${v.body.id}`;
    const exists = () => withPgClient(pgUrl('postgres'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [scratch])).rowCount === 1);
    await until('the scratch database', async () => ((await exists()) ? true : undefined), 60_000, 20);
    await cluster.serve.kill9();
    assert.equal(await exists(), true, 'the crash left it behind');
    const recorded = await cluster.query<{ scratch_database: string | null; state: string }>(`SELECT scratch_database, state FROM jobs WHERE id = ${cluster.kind === 'postgres' ? '$1' : '?'}`, [v.body.id]);
    assert.equal(recorded[0].scratch_database, scratch, 'recorded before it was created');

    await cluster.serve.start();
    await until('the scratch database to be dropped', async () => ((await exists()) ? undefined : true), 60_000, 100);
    const job = await until('the interrupted verification', async () => {
      const list = await api(cluster, 'GET', `${branch}/backups/${b.body.id}/verifications`);
      const j = list.body.data.find((x: any) => x.id === v.body.id);
      return j.state === 'failed' ? j : undefined;
    }, 60_000);
    assert.match(job.error, /interrupted/);
    const after = await cluster.query<{ scratch_database: string | null }>(`SELECT scratch_database FROM jobs WHERE id = ${cluster.kind === 'postgres' ? '$1' : '?'}`, [v.body.id]);
    assert.equal(after[0].scratch_database, null);
    assert.ok(cluster.serve.logs().some((l) => l.msg === 'dropped the scratch database of an interrupted verification'));
  });
});
