/**
 * Events from real work, delivered to a real webhook receiver: backups of a real
 * PostgreSQL database that succeed and fail (the reason comes along), a copy to a
 * destination that fails, restores that succeed and fail, a verification that fails, and
 * branches that go overdue on a clock the test moves. No delivered body carries the
 * connection password, the token secret or the webhook secret.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createPgFixture, dropDatabase, pgIdent, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { NotificationService } from '../../src/notify/dispatch.js';
import { sweepEvents } from '../../src/notify/events.js';
import { startReceiver, type Receiver } from './receiver.js';

const ORG = '/v1/organizations/default';
const DB = `${ORG}/databases/shop`;
const HOUR = 3_600_000;

describe('events from real backups, restores and verifications', () => {
  let server: TestServer;
  let receiver: Receiver;
  let service: NotificationService;
  let offset = 0;
  const clock = () => new Date(Date.now() + offset);
  const source = uniqueName('sbx_ntf_src');
  const doomed = uniqueName('sbx_ntf_gone');
  const role = uniqueName('sbx_ntf_role');
  const password = `Pw-${uniqueName('x')}`;
  const toDrop: string[] = [source, doomed];
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-notify-'));
  let mainPath: string;
  let gonePath: string;
  let webhookSecret: string;

  /** Events (webhook bodies) of one kind received so far. */
  const bodies = (kind?: string) => receiver.received.map((r) => JSON.parse(r.body)).filter((b) => kind === undefined || b.event === kind);

  /** Drive the service until an event of `kind` about `subject` has been delivered. */
  async function delivered(kind: string, match: (b: any) => boolean): Promise<any> {
    return until(`a ${kind} delivery`, async () => {
      await service.tick();
      return bodies(kind).find(match);
    }, 30_000);
  }

  before(async () => {
    await createPgFixture(source);
    await createPgFixture(doomed);
    await withPgClient(pgUrl('postgres'), async (c) => {
      // A role of its own with a password, so that the test can look for the password everywhere.
      await c.query(`create role ${pgIdent(role)} superuser login password '${password}'`);
    });
    server = await startServer({}, { clock });
    receiver = await startReceiver();
    service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const withPassword = (db: string) => {
      const u = new URL(pgUrl(db));
      u.username = role;
      u.password = password;
      return u.toString();
    };
    mainPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', withPassword(source));
    gonePath = await registerBranch(server, 'default', 'shop', 'postgresql', 'gone', withPassword(doomed));
    const w = await api(server, 'POST', `${ORG}/webhooks`, { url: `${receiver.url}/hook` });
    assert.equal(w.status, 201);
    webhookSecret = w.body.secret;
  });
  after(async () => {
    await receiver?.close();
    await server?.close();
    for (const d of toDrop) await dropDatabase('postgresql', d);
    await withPgClient(pgUrl('postgres'), (c) => c.query(`drop role if exists ${pgIdent(role)}`));
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  test('backup.succeeded: a real backup, with the backup as the API shows it', async () => {
    const r = await api(server, 'POST', `${mainPath}/backups`, {});
    const b = await waitForBackup(server, mainPath, r.body.id);
    assert.equal(b.state, 'success', JSON.stringify(b));
    const body = await delivered('backup.succeeded', (x) => x.data.backup.id === b.id);
    assert.equal(body.id, `backup-succeeded-${b.id}`);
    assert.equal(body.organization, 'default');
    assert.equal(body.created_at, b.completed_at);
    const shown = (await api(server, 'GET', `${mainPath}/backups/${b.id}`)).body;
    for (const k of ['id', 'name', 'state', 'size', 'created_at', 'completed_at', 'expires_at', 'protected', 'database_branch']) assert.deepEqual(body.data.backup[k], shown[k], k);
    assert.equal(body.data.database.name, 'shop');
    assert.equal(body.data.branch.name, 'main');
    assert.equal(body.data.branch.connection.user, role);
    assert.match(body.data.message, /^backup ".*" of shop\/main succeeded: .* in /);
    assert.equal(body.data.reason, null);
  });

  test('backup.failed: a branch whose database is gone fails, and the event says why', async () => {
    await dropDatabase('postgresql', doomed);
    const r = await api(server, 'POST', `${gonePath}/backups`, {});
    const b = await waitForBackup(server, gonePath, r.body.id);
    assert.equal(b.state, 'failed');
    const body = await delivered('backup.failed', (x) => x.data.backup.id === b.id);
    assert.match(body.data.reason, /does not exist/);
    assert.match(body.data.message, new RegExp(`backup ".*" of shop/gone failed: .*does not exist`));
    assert.equal(receiver.received.find((x) => JSON.parse(x.body).id === body.id)!.headers['x-strongbox-event'], 'backup.failed');
  });

  test('destination.failed: a copy that cannot be written, beside one that is', async () => {
    const folder = path.join(scratch, 'second');
    const d = await api(server, 'POST', `${ORG}/storage-destinations`, { name: 'second', provider: 'local', config: { path: folder } });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    const builtin = (await api(server, 'GET', `${ORG}/storage-destinations`)).body.data.map((x: any) => x.name);
    assert.equal((await api(server, 'PATCH', DB, { storage_destinations: builtin })).status, 200);
    // The folder becomes a file: nothing can be written under it (even as root).
    fs.rmSync(folder, { recursive: true, force: true });
    fs.writeFileSync(folder, 'not a folder');
    try {
      const r = await api(server, 'POST', `${mainPath}/backups`, {});
      const b = await waitForBackup(server, mainPath, r.body.id);
      assert.equal(b.state, 'failed');
      const body = await delivered('destination.failed', (x) => x.data.backup.id === b.id);
      assert.equal(body.data.artifact.destination, 'second');
      assert.equal(body.data.artifact.state, 'failed');
      assert.match(body.data.message, /could not be stored in destination "second"/);
      assert.ok(bodies('backup.failed').some((x) => x.data.backup.id === b.id), 'the backup failed too');
      assert.equal(bodies('destination.failed').filter((x) => x.data.backup.id === b.id).length, 1, 'only the copy that failed for its own sake');
    } finally {
      await api(server, 'PATCH', DB, { storage_destinations: null });
    }
  });

  test('restore.succeeded and restore.failed, verification.failed', async () => {
    const r = await api(server, 'POST', `${mainPath}/backups`, {});
    const b = await waitForBackup(server, mainPath, r.body.id);
    assert.equal(b.state, 'success');
    const name = uniqueName('sbx_ntf_rs');
    toDrop.push(name);
    assert.equal((await api(server, 'POST', `${DB}/branches`, { name, backup_id: b.id })).status, 201);
    assert.equal((await waitForRestore(server, DB, name)).restore.state, 'success');
    const ok = await delivered('restore.succeeded', (x) => x.data.backup.id === b.id);
    assert.equal(ok.data.restore.state, 'success');
    assert.equal(ok.data.restored_branch.name, name);
    assert.match(ok.data.message, new RegExp(`into branch "${name}" succeeded`));

    // A damaged copy: the verification asked for fails, and so does a restore of it.
    const backupPath = `${mainPath}/backups/${b.id}`;
    const [artifact] = (await api(server, 'GET', `${backupPath}/artifacts`)).body.data;
    const file = path.join(server.dataDir, 'backups', artifact.path);
    const bytes = fs.readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const v = await api(server, 'POST', `${backupPath}/verify`, {});
    assert.equal(v.status, 202, JSON.stringify(v.body));
    const vf = await delivered('verification.failed', (x) => x.data.verification?.id === v.body.id);
    assert.match(vf.data.reason, /sha256/);
    assert.equal(vf.data.verification.state, 'failed');
    const bad = uniqueName('sbx_ntf_bad');
    toDrop.push(bad);
    assert.equal((await api(server, 'POST', `${DB}/branches`, { name: bad, backup_id: b.id })).status, 201);
    assert.equal((await waitForRestore(server, DB, bad)).restore.state, 'failed');
    const rf = await delivered('restore.failed', (x) => x.data.restored_branch?.name === bad);
    assert.match(rf.data.reason, /checksum mismatch|damaged/);
  });

  test('an event recorded without a payload (a restore drill writes those) goes out with the backup as the API shows it', async () => {
    const b = await server.ctx.db.selectFrom('backups').selectAll().where('state', '=', 'success').orderBy('completed_at', 'desc').executeTakeFirstOrThrow();
    const id = `drill-failed-test-${b.id}`;
    await server.ctx.db
      .insertInto('events')
      .values({ id, organization_id: b.organization_id, kind: 'verification.failed', severity: 'error', database_id: b.database_id, branch_id: b.branch_id, backup_id: b.id, job_id: null, message: `restore drill of backup "${b.name}" failed: rows differ`, created_at: new Date(clock()).toISOString(), delivered_at: null })
      .execute();
    const body = await delivered('verification.failed', (x) => x.id === id);
    assert.equal(body.data.backup.id, b.id);
    assert.equal(body.data.branch.name, 'main');
    assert.match(body.data.message, /restore drill of backup .* failed: rows differ/);
  });

  test('each event is recorded once, however many passes and processes sweep', async () => {
    const again = await Promise.all([sweepEvents(server.ctx), sweepEvents(server.ctx), sweepEvents(server.ctx)]);
    assert.deepEqual(again, [[], [], []], 'nothing new');
    const ids = receiver.received.map((r) => JSON.parse(r.body).id);
    assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
    const rows = await server.ctx.db.selectFrom('events').select(['id']).execute();
    assert.equal(new Set(rows.map((r) => r.id)).size, rows.length);
  });

  test('backup.overdue: once per silence, on a clock the test moves', async () => {
    await service.tick();
    assert.equal(bodies('backup.overdue').length, 0, 'nothing is overdue yet');
    // The default policies run every 12 hours: a branch is overdue after 24 silent hours.
    offset += 25 * HOUR;
    const first = await delivered('backup.overdue', (x) => x.data.branch.name === 'main');
    assert.ok(bodies('backup.overdue').some((x) => x.data.branch.name === 'gone'), 'the branch that never succeeded too');
    assert.equal(first.data.overdue.frequency_seconds, 12 * 3600);
    assert.ok(first.data.overdue.silent_seconds > 24 * 3600);
    assert.ok(first.data.overdue.last_success_at);
    assert.match(first.data.message, /shop\/main has had no successful backup for 1 day/);
    await service.tick();
    await service.tick();
    assert.equal(bodies('backup.overdue').filter((x) => x.data.branch.name === 'main').length, 1, 'once per silence');

    // A success ends the silence; the next silence is a new event.
    const r = await api(server, 'POST', `${mainPath}/backups`, {});
    assert.equal((await waitForBackup(server, mainPath, r.body.id)).state, 'success');
    await service.tick();
    offset += 25 * HOUR;
    await until('a second overdue event for main', async () => {
      await service.tick();
      return bodies('backup.overdue').filter((x) => x.data.branch.name === 'main').length === 2 ? true : undefined;
    });
    assert.equal(bodies('backup.overdue').filter((x) => x.data.branch.name === 'gone').length, 1, 'still the same silence on "gone"');
  });

  test('no secret in any delivered body', async () => {
    const [, secret] = server.token.split(':');
    assert.ok(receiver.received.length >= 8, `${receiver.received.length} deliveries`);
    for (const r of receiver.received) {
      const text = r.body + JSON.stringify(r.headers);
      assert.ok(!text.includes(password), 'no connection password');
      assert.ok(!text.includes(secret), 'no token secret');
      assert.ok(!text.includes(webhookSecret), 'no webhook secret');
    }
    const events = await server.ctx.db.selectFrom('events').select(['payload', 'message']).execute();
    assert.ok(!JSON.stringify(events).includes(password), 'no connection password in stored events');
  });
});
