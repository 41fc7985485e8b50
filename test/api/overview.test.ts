/**
 * The dashboard's reads: the overview (checked against real backups of a real PostgreSQL
 * database: last run and its failure reason, last success, stored bytes, overdue on a
 * controlled clock, a failed restore drill, what a token may see), a branch's backup
 * history, and the plain-words preview of a policy's schedule.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { runDrills } from '../../src/jobs/drills.js';

const HOUR = 3_600_000;

describe('overview and backup history', () => {
  let server: TestServer;
  let offsetMs = 0;
  const source = uniqueName('sbx_overview');
  const gone = uniqueName('sbx_overview_gone');
  const org = '/v1/organizations/default';
  let mainPath: string;
  let brokenPath: string;
  let sidePath: string;
  const backups: any[] = [];
  let failed: any;

  async function overview(token: string = server.token): Promise<Map<string, any>> {
    const r = await api(server, 'GET', `${org}/overview`, undefined, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return new Map(r.body.data.map((e: any) => [`${e.database.name}/${e.branch.name}`, e]));
  }

  async function token(grants: Array<{ accesses: string[]; database?: string; branch?: string }>): Promise<string> {
    const t = await api(server, 'POST', `${org}/service-tokens`, { name: 'overview-test' });
    assert.equal(t.status, 201);
    for (const g of grants) assert.equal((await api(server, 'POST', `${org}/service-tokens/${t.body.id}/accesses`, g)).status, 200);
    return `${t.body.id}:${t.body.token}`;
  }

  before(async () => {
    server = await startServer({}, { clock: () => new Date(Date.now() + offsetMs) });
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('CREATE TABLE items (id int primary key, label text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000) g'));
    await createDatabase('postgresql', gone);
    mainPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl(source), true);
    brokenPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'broken', pgUrl(gone));
    sidePath = await registerBranch(server, 'default', 'other', 'postgresql', 'side', pgUrl(source));
    // Its database disappears after registration: its backups fail, with a reason.
    await dropDatabase('postgresql', gone);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
    await dropDatabase('postgresql', gone);
  });

  test('before any backup: every branch, nothing stored, the next run of its policy, not overdue yet', async () => {
    const o = await overview();
    assert.deepEqual([...o.keys()], ['other/side', 'shop/broken', 'shop/main'], 'sorted by database, then branch');
    const main = o.get('shop/main');
    assert.deepEqual(main.database, { id: main.database.id, name: 'shop', kind: 'postgresql' });
    assert.deepEqual(main.branch, { id: main.branch.id, name: 'main', production: true });
    assert.equal(main.last_backup, null);
    assert.equal(main.last_success, null);
    assert.equal(main.last_success_age_seconds, null);
    assert.equal(main.stored_bytes, 0);
    assert.equal(main.backup_count, 0);
    assert.equal(main.last_drill, null);
    assert.equal(main.overdue, false);
    assert.equal(main.attention, false);
    const policies = (await api(server, 'GET', `${org}/databases/shop/backup-policies`)).body.data;
    const production = policies.find((p: any) => p.target === 'production');
    const development = policies.find((p: any) => p.target === 'development');
    assert.equal(main.next_run_at, production.next_run_at, "the production policy's next run");
    assert.equal(o.get('shop/broken').next_run_at, development.next_run_at);
    // Never backed up: overdue counts from when the branch was covered (after the policy: the branch is younger).
    const branch = (await api(server, 'GET', mainPath)).body;
    assert.equal(main.overdue_at, new Date(Date.parse(branch.created_at) + 2 * 12 * HOUR).toISOString());
  });

  test('after real backups: last run, last success, stored bytes of live copies, the failure reason', async () => {
    for (let i = 0; i < 2; i++) {
      const b = await api(server, 'POST', `${mainPath}/backups`, {});
      assert.equal(b.status, 201, JSON.stringify(b.body));
      const done = await waitForBackup(server, mainPath, b.body.id);
      assert.equal(done.state, 'success');
      backups.push(done);
    }
    const f = await api(server, 'POST', `${brokenPath}/backups`, {});
    failed = await waitForBackup(server, brokenPath, f.body.id);
    assert.equal(failed.state, 'failed');
    const reason = (await server.ctx.db.selectFrom('backups').select('error').where('id', '=', failed.id).executeTakeFirstOrThrow()).error;
    assert.ok(reason && reason.length > 0);

    const artifactBytes = async (id: string) => {
      const a = await api(server, 'GET', `${mainPath}/backups/${id}/artifacts`);
      assert.equal(a.status, 200);
      return a.body.data.filter((x: any) => x.state === 'success').reduce((n: number, x: any) => n + x.size, 0);
    };
    const [first, second] = backups;
    const bytes = [await artifactBytes(first.id), await artifactBytes(second.id)];
    assert.ok(bytes[0] > 0 && bytes[1] > 0);

    let o = await overview();
    const main = o.get('shop/main');
    assert.equal(main.last_backup.id, second.id);
    assert.equal(main.last_backup.name, second.name);
    assert.equal(main.last_backup.state, 'success');
    assert.equal(main.last_backup.created_at, second.created_at);
    assert.equal(main.last_backup.completed_at, second.completed_at);
    assert.equal(main.last_backup.size, second.size);
    assert.equal(main.last_backup.error, null);
    assert.equal(main.last_backup.duration_seconds, (Date.parse(second.completed_at) - Date.parse(second.started_at)) / 1000);
    assert.deepEqual(main.last_success, { id: second.id, name: second.name, completed_at: second.completed_at, size: second.size });
    assert.ok(main.last_success_age_seconds >= 0 && main.last_success_age_seconds < 120);
    assert.equal(main.stored_bytes, bytes[0] + bytes[1]);
    assert.equal(main.backup_count, 2);
    assert.equal(main.overdue, false);
    assert.equal(main.overdue_at, new Date(Date.parse(second.completed_at) + 24 * HOUR).toISOString());
    assert.equal(main.attention, false);

    const broken = o.get('shop/broken');
    assert.equal(broken.last_backup.id, failed.id);
    assert.equal(broken.last_backup.state, 'failed');
    assert.equal(broken.last_backup.error, reason, 'the failure reason in full');
    assert.equal(broken.last_success, null);
    assert.equal(broken.stored_bytes, 0);
    assert.equal(broken.backup_count, 0);
    assert.equal(broken.attention, true, 'its last run failed');

    // A deleted backup no longer counts as stored, nor as the last run or success.
    assert.equal((await api(server, 'DELETE', `${mainPath}/backups/${first.id}`)).status, 204);
    o = await overview();
    assert.equal(o.get('shop/main').stored_bytes, bytes[1]);
    assert.equal(o.get('shop/main').backup_count, 1);
    assert.equal(o.get('shop/main').last_success.id, second.id);
  });

  test('overdue on a controlled clock: no success for more than twice the policy frequency', async () => {
    const second = backups[1];
    offsetMs = 23 * HOUR;
    try {
      let main = (await overview()).get('shop/main');
      assert.equal(main.overdue, false, '23 h after the last success of a 12-hour policy');
      offsetMs = 25 * HOUR;
      const o = await overview();
      main = o.get('shop/main');
      assert.equal(main.overdue, true);
      assert.equal(main.overdue_at, new Date(Date.parse(second.completed_at) + 24 * HOUR).toISOString());
      assert.equal(main.attention, true);
      const expectedAge = (Date.now() + offsetMs - Date.parse(second.completed_at)) / 1000;
      assert.ok(Math.abs(main.last_success_age_seconds - expectedAge) < 60, `${main.last_success_age_seconds} vs ${expectedAge}`);
      assert.equal(o.get('other/side').overdue, true, 'never backed up, covered for 25 h');
    } finally {
      offsetMs = 0;
    }
    assert.equal((await overview()).get('shop/main').overdue, false);
  });

  test('a failed restore drill marks the branch', async () => {
    const second = backups[1];
    const policies = (await api(server, 'GET', `${org}/databases/shop/backup-policies`)).body.data;
    const production = policies.find((p: any) => p.target === 'production');
    const set = await api(server, 'PATCH', `${org}/databases/shop/backup-policies/${production.id}`, { verification_frequency_value: 1, verification_frequency_unit: 'hour' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    // The only stored copy of the newest backup disappears: its drill fails.
    const art = await api(server, 'GET', `${mainPath}/backups/${second.id}/artifacts`);
    fs.rmSync(path.join(server.dataDir, 'backups', art.body.data[0].path));
    const { drills } = await runDrills(server.ctx);
    assert.equal(drills.length, 1);
    const job = await until('the drill', async () => {
      const j = await server.ctx.db.selectFrom('jobs').selectAll().where('id', '=', drills[0]).executeTakeFirstOrThrow();
      return j.state === 'pending' || j.state === 'running' ? undefined : j;
    });
    assert.equal(job.state, 'failed');
    const main = (await overview()).get('shop/main');
    assert.deepEqual(main.last_drill, { state: 'failed', completed_at: job.completed_at, error: job.error });
    assert.equal(main.overdue, false);
    assert.equal(main.last_backup.state, 'success');
    assert.equal(main.attention, true, 'its last drill failed');
    assert.equal((await overview()).get('other/side').last_drill, null);
  });

  test("each token sees the branches it may read backups of, and no other organization's", async () => {
    const mainOnly = await token([{ accesses: ['read_backups'], database: 'shop', branch: 'main' }]);
    assert.deepEqual([...(await overview(mainOnly)).keys()], ['shop/main']);
    const otherDb = await token([{ accesses: ['read_backups'], database: 'other' }]);
    assert.deepEqual([...(await overview(otherDb)).keys()], ['other/side']);
    const noBackups = await token([{ accesses: ['read_databases', 'read_branches'] }]);
    assert.deepEqual([...(await overview(noBackups)).keys()], []);
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'overview-elsewhere' })).status, 201);
    assert.equal((await api(server, 'GET', '/v1/organizations/overview-elsewhere/overview', undefined, mainOnly)).status, 404);
    assert.equal((await api(server, 'GET', `${org}/overview`, undefined, null)).status, 401);
    // The history follows the same accesses.
    assert.equal((await api(server, 'GET', `${mainPath}/backup-history`, undefined, otherDb)).status, 403);
    assert.equal((await api(server, 'GET', `${mainPath}/backup-history`, undefined, mainOnly)).status, 200);
  });

  test('backup history: oldest first, deleted backups included (they happened), within the days asked for', async () => {
    const r = await api(server, 'GET', `${mainPath}/backup-history`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.data.map((p: any) => p.id), backups.map((b) => b.id));
    const [p] = r.body.data;
    assert.deepEqual(Object.keys(p).sort(), ['completed_at', 'created_at', 'duration_seconds', 'id', 'name', 'size', 'state']);
    assert.equal(p.size, backups[0].size);
    assert.equal(p.state, 'success');
    assert.equal(p.duration_seconds, (Date.parse(backups[0].completed_at) - Date.parse(backups[0].started_at)) / 1000);
    const broken = await api(server, 'GET', `${brokenPath}/backup-history?days=7`);
    assert.deepEqual(broken.body.data.map((x: any) => [x.id, x.state]), [[failed.id, 'failed']]);
    assert.deepEqual((await api(server, 'GET', `${sidePath}/backup-history`)).body.data, []);
    // Seen from 10 days on, a 7-day window holds nothing.
    offsetMs = 10 * 24 * HOUR;
    try {
      assert.deepEqual((await api(server, 'GET', `${mainPath}/backup-history?days=7`)).body.data, []);
      assert.equal((await api(server, 'GET', `${mainPath}/backup-history?days=30`)).body.data.length, 2);
    } finally {
      offsetMs = 0;
    }
    for (const bad of ['days=0', 'days=abc', 'days=100000', 'other=1']) {
      const x = await api(server, 'GET', `${mainPath}/backup-history?${bad}`);
      assert.equal(x.status, 400, bad);
      assert.equal(x.body.code, 'bad_request');
    }
    assert.equal((await api(server, 'GET', `${org}/databases/shop/branches/nope/backup-history`)).status, 404);
  });
});

describe('policy preview', () => {
  let server: TestServer;
  const url = '/v1/organizations/default/databases/previewed/backup-policies/preview';

  before(async () => {
    server = await startServer({}, { runner: false });
    assert.equal((await api(server, 'POST', '/v1/organizations/default/databases', { name: 'previewed', kind: 'postgresql' })).status, 201);
  });
  after(async () => server?.close());

  async function preview(body: Record<string, unknown>): Promise<{ description: string; runs: Date[] }> {
    const before = Date.now();
    const r = await api(server, 'POST', url, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['description', 'next_runs']);
    assert.equal(r.body.next_runs.length, 5);
    const runs = r.body.next_runs.map((s: string) => new Date(s));
    assert.ok(runs[0].getTime() > before - 1000, 'the first run is after now');
    for (let i = 1; i < runs.length; i++) assert.ok(runs[i] > runs[i - 1], 'in order');
    return { description: r.body.description, runs };
  }

  test('schedules in plain words, with their next five runs', async () => {
    let p = await preview({ frequency_value: 1, frequency_unit: 'day', schedule_time: '02:00', retention_value: 2, retention_unit: 'day' });
    assert.equal(p.description, 'Every day at 02:00 UTC, kept for 2 days');
    assert.ok(p.runs.every((d) => d.toISOString().endsWith('T02:00:00.000Z')));
    assert.ok(p.runs.slice(1).every((d, i) => d.getTime() - p.runs[i].getTime() === 24 * HOUR));
    assert.ok(p.runs[0].getTime() - Date.now() <= 24 * HOUR);

    p = await preview({ frequency_value: 6, frequency_unit: 'hour', schedule_time: '03:15' });
    assert.equal(p.description, 'Every 6 hours at :15 (03:15, 09:15, 15:15 and 21:15 UTC)');
    assert.ok(p.runs.every((d) => d.getUTCMinutes() === 15 && d.getUTCHours() % 6 === 3));
    assert.ok(p.runs.slice(1).every((d, i) => d.getTime() - p.runs[i].getTime() === 6 * HOUR));

    p = await preview({ frequency_value: 1, frequency_unit: 'hour', schedule_time: '00:45', retention_value: 1, retention_unit: 'week' });
    assert.equal(p.description, 'Every hour at :45, kept for 1 week');
    p = await preview({ frequency_value: 2, frequency_unit: 'hour', schedule_time: '01:30' });
    assert.equal(p.description, 'Every 2 hours at :30, from 01:30 UTC');
    assert.ok(p.runs.every((d) => d.getUTCHours() % 2 === 1 && d.getUTCMinutes() === 30));

    p = await preview({ frequency_value: 1, frequency_unit: 'week', schedule_time: '03:00', schedule_day: 0 });
    assert.equal(p.description, 'Every week on Sunday at 03:00 UTC');
    assert.ok(p.runs.every((d) => d.getUTCDay() === 0 && d.getUTCHours() === 3));
    p = await preview({ frequency_value: 2, frequency_unit: 'week', schedule_time: '23:59', schedule_day: 5, retention_value: 3, retention_unit: 'month' });
    assert.equal(p.description, 'Every 2 weeks on Friday at 23:59 UTC, kept for 3 months');
    assert.ok(p.runs.slice(1).every((d, i) => d.getTime() - p.runs[i].getTime() === 14 * 24 * HOUR));

    p = await preview({ frequency_value: 1, frequency_unit: 'month', schedule_time: '04:30', schedule_day: 1, schedule_week: 0 });
    assert.equal(p.description, 'Every month on the first Monday at 04:30 UTC');
    assert.ok(p.runs.every((d) => d.getUTCDay() === 1 && d.getUTCDate() <= 7));
    p = await preview({ frequency_value: 1, frequency_unit: 'month', schedule_time: '04:00', schedule_day: 2, schedule_week: 2 });
    assert.equal(p.description, 'Every month on the third Tuesday at 04:00 UTC');
    assert.ok(p.runs.every((d) => d.getUTCDay() === 2 && d.getUTCDate() >= 15 && d.getUTCDate() <= 21));
    p = await preview({ frequency_value: 3, frequency_unit: 'month', schedule_time: '00:00', schedule_week: 2, retention_value: 1, retention_unit: 'year' });
    assert.equal(p.description, 'Every 3 months (January, April, July and October) on the 15th at 00:00 UTC, kept for 1 year');
    assert.ok(p.runs.every((d) => d.getUTCDate() === 15 && d.getUTCMonth() % 3 === 0));
    p = await preview({ frequency_value: 1, frequency_unit: 'month', schedule_time: '12:00' });
    assert.equal(p.description, 'Every month on the 1st at 12:00 UTC');
    assert.ok(p.runs.every((d) => d.getUTCDate() === 1));

    // A preview changes nothing: it is not a write for the audit log (the dashboard asks as the user types).
    const audit = await api(server, 'GET', '/v1/organizations/default/audit-log?per_page=100');
    assert.equal(audit.status, 200);
    assert.deepEqual(audit.body.data.filter((e: any) => String(e.path).endsWith('/backup-policies/preview')), []);
  });

  test('a schedule that cannot be used is a 400 naming every problem; nothing is saved', async () => {
    const count = async () => (await api(server, 'GET', '/v1/organizations/default/databases/previewed/backup-policies')).body.total_count;
    const policies = await count();
    let r = await api(server, 'POST', url, { frequency_value: 5, frequency_unit: 'hour', schedule_time: '00:00' });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'bad_request');
    assert.match(r.body.message, /frequency_value must divide 24/);
    r = await api(server, 'POST', url, { frequency_value: 1, frequency_unit: 'day', schedule_time: '25:00', schedule_day: 3 });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /schedule_time must be HH:MM/);
    assert.match(r.body.message, /schedule_day is only meaningful for weekly or monthly/);
    r = await api(server, 'POST', url, { frequency_value: 1, frequency_unit: 'day', schedule_time: '01:00', retention_value: 2 });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /retention_value and retention_unit/);
    r = await api(server, 'POST', url, { frequency_value: 1, frequency_unit: 'fortnight', schedule_time: '01:00' });
    assert.equal(r.status, 422, 'a body that is not the documented shape: as policy creation answers it');
    r = await api(server, 'POST', url, { frequency_value: 1, frequency_unit: 'day', schedule_time: '01:00', colour: 'red' });
    assert.equal(r.status, 422);
    assert.equal(await count(), policies);
    assert.equal((await api(server, 'POST', '/v1/organizations/default/databases/nope/backup-policies/preview', { frequency_value: 1, frequency_unit: 'day', schedule_time: '01:00' })).status, 404);
  });
});
