/**
 * Webhooks end to end against a real HTTP receiver: the API (secret shown once, clear
 * 4xx), signed bodies a receiver can verify, retries with backoff on a clock the test
 * controls, the 2 s deadline, disabling an endpoint that keeps failing, the delivery log,
 * and two processes sharing one catalog sending each delivery once.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { NotificationService } from '../../src/notify/dispatch.js';
import { notificationDeliveries } from '../../src/metrics.js';
import { rotateSecretKey } from '../../src/rotate.js';
import { loadSecretBox } from '../../src/secrets.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import { startReceiver, type Receiver } from './receiver.js';

const ORG = '/v1/organizations/default';

describe('webhooks', () => {
  let server: TestServer;
  let receiver: Receiver;
  let offset = 0;
  const clock = () => new Date(Date.now() + offset);

  before(async () => {
    server = await startServer({}, { clock });
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver?.close();
    await server?.close();
  });
  afterEach(async () => {
    // Each test's webhooks go, so that the next test's events reach only its own.
    const list = await api(server, 'GET', `${ORG}/webhooks?per_page=100`);
    for (const w of list.body.data) await api(server, 'DELETE', `${ORG}/webhooks/${w.id}`);
    receiver.received.length = 0;
    receiver.answer = () => ({ status: 200, body: 'ok' });
  });

  /** An event as the sweep would record it. */
  async function addEvent(kind = 'backup.failed', message = 'backup "x" of app/main failed: boom'): Promise<string> {
    const org = await server.ctx.db.selectFrom('organizations').select('id').where('name', '=', 'default').executeTakeFirstOrThrow();
    const id = `test-${newId()}`;
    await server.ctx.db
      .insertInto('events')
      .values({ id, organization_id: org.id, kind, severity: 'error', database_id: null, branch_id: null, backup_id: null, job_id: null, message, created_at: nowIso(clock()), delivered_at: null, payload: JSON.stringify({ message, reason: 'boom' }) })
      .execute();
    return id;
  }

  async function createWebhook(body: Record<string, unknown> = {}) {
    const r = await api(server, 'POST', `${ORG}/webhooks`, { url: `${receiver.url}/hook`, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  }

  test('create, read, change, delete: the signing secret is shown once', async () => {
    const w = await createWebhook({ events: ['backup.failed', 'backup.overdue'] });
    assert.match(w.secret, /^whsec_/);
    assert.deepEqual(w.events, ['backup.failed', 'backup.overdue']);
    assert.equal(w.enabled, true);
    assert.equal(w.database, null);
    assert.equal(w.disabled_reason, null);
    assert.equal(w.last_sent_at, null);
    const got = await api(server, 'GET', `${ORG}/webhooks/${w.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.secret, undefined, 'the secret is not shown again');
    assert.ok(!JSON.stringify(got.body).includes(w.secret));
    const list = await api(server, 'GET', `${ORG}/webhooks`);
    assert.equal(list.body.total_count, 1);
    assert.ok(!JSON.stringify(list.body).includes(w.secret));
    const patched = await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { events: ['backup.succeeded'], enabled: false });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.events, ['backup.succeeded']);
    assert.equal(patched.body.enabled, false);
    // Stored sealed: the catalog row does not hold the secret in the clear.
    const row = await server.ctx.db.selectFrom('webhooks').selectAll().where('id', '=', w.id).executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(row).includes(w.secret));
    assert.equal((await api(server, 'DELETE', `${ORG}/webhooks/${w.id}`)).status, 204);
    assert.equal((await api(server, 'GET', `${ORG}/webhooks/${w.id}`)).status, 404);
  });

  test('bad input gets a clear 4xx in the native error shape', async () => {
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['POST', `${ORG}/webhooks`, { url: 'ftp://example.com/x' }, 422, /http:\/\/ or https:\/\//],
      ['POST', `${ORG}/webhooks`, { url: 'not a url' }, 422, /not a valid URL/],
      ['POST', `${ORG}/webhooks`, { url: 'https://user:pw@example.com/x' }, 422, /user name or password/],
      ['POST', `${ORG}/webhooks`, {}, 422, /url/],
      ['POST', `${ORG}/webhooks`, { url: 'https://example.com', events: ['backup.exploded'] }, 422, /must be one of: backup\.succeeded, backup\.failed/],
      ['POST', `${ORG}/webhooks`, { url: 'https://example.com', events: [] }, 422, /events/],
      ['POST', `${ORG}/webhooks`, { url: 'https://example.com', database: 'nope' }, 422, /no database "nope"/],
      ['POST', `${ORG}/webhooks`, { url: 'https://example.com', surprise: 1 }, 422, /unknown field "surprise"/],
      ['POST', `${ORG}/webhooks`, { url: 'https://example.com', enabled: 'yes' }, 422, /enabled/],
      ['GET', `${ORG}/webhooks?page=0`, undefined, 400, /page/],
      ['GET', `${ORG}/webhooks/doesnotexist`, undefined, 404, /not found/],
      ['PATCH', `${ORG}/webhooks/doesnotexist`, { enabled: true }, 404, /not found/],
      ['POST', `${ORG}/webhooks/doesnotexist/test`, undefined, 404, /not found/],
      ['GET', '/v1/organizations/nosuchorg/webhooks', undefined, 404, /not found/],
    ];
    for (const [method, url, body, status, message] of cases) {
      const r = await api(server, method, url, body);
      assert.equal(r.status, status, `${method} ${url} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message']);
      assert.match(r.body.message, message, `${method} ${url} ${JSON.stringify(body)}`);
    }
    const w = await createWebhook();
    const bad = await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { url: 'javascript:alert(1)' });
    assert.equal(bad.status, 422);
    assert.match(bad.body.message, /http:\/\/ or https:\/\//);
  });

  test('reading needs read_organization, changing needs write_organization', async () => {
    const t = await api(server, 'POST', `${ORG}/service-tokens`, { name: 'reader' });
    await api(server, 'POST', `${ORG}/service-tokens/${t.body.id}/accesses`, { accesses: ['read_organization'] });
    const reader = `${t.body.id}:${t.body.token}`;
    const w = await createWebhook();
    assert.equal((await api(server, 'GET', `${ORG}/webhooks`, undefined, reader)).status, 200);
    assert.equal((await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`, undefined, reader)).status, 200);
    assert.equal((await api(server, 'POST', `${ORG}/webhooks`, { url: 'https://example.com' }, reader)).status, 403);
    assert.equal((await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { enabled: false }, reader)).status, 403);
    assert.equal((await api(server, 'POST', `${ORG}/webhooks/${w.id}/test`, undefined, reader)).status, 403);
    assert.equal((await api(server, 'DELETE', `${ORG}/webhooks/${w.id}`, undefined, reader)).status, 403);
  });

  test('a delivery is JSON signed with the secret: the receiver can verify it', async () => {
    const w = await createWebhook({ events: ['backup.failed'] });
    const eventId = await addEvent('backup.failed');
    await addEvent('backup.succeeded'); // not asked for
    const counted = async () => (await notificationDeliveries.get()).values.find((v) => v.labels.type === 'webhook' && v.labels.outcome === 'success')?.value ?? 0;
    const before = await counted();
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const pass = await service.tick();
    assert.equal(pass.sent.length, 1, JSON.stringify(pass));
    assert.equal(await counted(), before + 1, 'the attempt is counted in strongbox_notification_deliveries_total');
    assert.equal(receiver.received.length, 1);
    const req = receiver.received[0];
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/hook');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['x-strongbox-event'], 'backup.failed');
    assert.equal(req.headers['x-strongbox-delivery'], pass.sent[0].delivery);
    const body = JSON.parse(req.body);
    assert.deepEqual(Object.keys(body), ['id', 'event', 'created_at', 'organization', 'data']);
    assert.equal(body.id, eventId);
    assert.equal(body.event, 'backup.failed');
    assert.equal(body.organization, 'default');
    assert.equal(body.data.reason, 'boom');

    // What the README tells receivers to do.
    const sig = String(req.headers['x-strongbox-signature']);
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
    assert.ok(m, sig);
    const expected = crypto.createHmac('sha256', w.secret).update(`${m[1]}.${req.body}`).digest('hex');
    assert.ok(crypto.timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(m[2], 'hex')), 'the signature verifies');
    assert.ok(Math.abs(Number(m[1]) - clock().getTime() / 1000) < 60, 'the timestamp is now');
    const forged = crypto.createHmac('sha256', 'another secret').update(`${m[1]}.${req.body}`).digest('hex');
    assert.notEqual(forged, m[2]);

    // Sent once: another pass finds nothing to do.
    const again = await service.tick();
    assert.equal(again.sent.length, 0);
    assert.equal(receiver.received.length, 1);
    const shown = await api(server, 'GET', `${ORG}/webhooks/${w.id}`);
    assert.equal(shown.body.last_sent_success, true);
    assert.equal(shown.body.last_sent_result, '200 OK');
    const log = await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`);
    assert.equal(log.status, 200);
    assert.equal(log.body.total_count, 1);
    assert.deepEqual(log.body.data[0].event.id, eventId);
    assert.equal(log.body.data[0].event.kind, 'backup.failed');
    assert.equal(log.body.data[0].success, true);
    assert.equal(log.body.data[0].status_code, 200);
    assert.equal(log.body.data[0].attempt, 1);
    assert.equal(log.body.data[0].next_attempt_at, null);
  });

  test('failed attempts are retried after 10 s, then 1 min; the delivery log shows every step', async () => {
    const w = await createWebhook({ events: ['backup.failed'] });
    let calls = 0;
    receiver.answer = () => (++calls <= 2 ? { status: 500, body: 'database on fire' } : { status: 204 });
    const eventId = await addEvent();
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const first = await service.tick();
    assert.equal(first.sent.length, 1);
    assert.equal(first.sent[0].state, 'pending');
    let log = await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`);
    const d = log.body.data[0];
    assert.equal(d.attempt, 1);
    assert.equal(d.success, false);
    assert.equal(d.status_code, 500);
    assert.match(d.error, /HTTP 500.*database on fire/);
    assert.ok(Math.abs(Date.parse(d.next_attempt_at) - (clock().getTime() + 10_000)) < 2000, `retry in 10 s: ${d.next_attempt_at}`);

    assert.equal((await service.tick()).sent.length, 0, 'not before its time');
    offset += 11_000;
    const second = await service.tick();
    assert.equal(second.sent.length, 1);
    log = await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`);
    assert.equal(log.body.data[0].attempt, 2);
    assert.ok(Math.abs(Date.parse(log.body.data[0].next_attempt_at) - (clock().getTime() + 60_000)) < 2000, 'then in a minute');
    offset += 30_000;
    assert.equal((await service.tick()).sent.length, 0);
    offset += 31_000;
    const third = await service.tick();
    assert.equal(third.sent[0].state, 'success');
    log = await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`);
    assert.deepEqual([log.body.data[0].attempt, log.body.data[0].success, log.body.data[0].status_code, log.body.data[0].error, log.body.data[0].next_attempt_at], [3, true, 204, null, null]);
    // Every attempt carried the same event id and delivery id, so a receiver can drop duplicates.
    assert.equal(receiver.received.length, 3);
    assert.deepEqual(new Set(receiver.received.map((r) => JSON.parse(r.body).id)), new Set([eventId]));
    assert.equal(new Set(receiver.received.map((r) => r.headers['x-strongbox-delivery'])).size, 1);
  });

  test('a receiver that never answers is given up on after 2 s', async () => {
    const w = await createWebhook({ events: ['backup.failed'] });
    receiver.answer = () => 'hang';
    await addEvent();
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const t0 = Date.now();
    const pass = await service.tick();
    const took = Date.now() - t0;
    assert.equal(pass.sent.length, 1);
    assert.equal(pass.sent[0].result.success, false);
    assert.equal(pass.sent[0].result.status_code, null);
    assert.match(pass.sent[0].result.error!, /no answer within 2 s/);
    assert.ok(pass.sent[0].result.duration_ms >= 1900 && took < 6000, `took ${took} ms (attempt ${pass.sent[0].result.duration_ms} ms)`);
    const shown = await api(server, 'GET', `${ORG}/webhooks/${w.id}`);
    assert.equal(shown.body.last_sent_success, false);
    assert.match(shown.body.last_sent_result, /no answer within 2 s/);
  });

  test('an endpoint that keeps failing is disabled and says why; enabling it again clears that', async () => {
    const w = await createWebhook({ events: ['backup.failed'] });
    receiver.answer = () => ({ status: 503, body: 'down for maintenance' });
    await addEvent();
    await addEvent();
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0, retryDelaysMs: [1000], disableAfter: 2 });
    await service.tick();
    offset += 1500;
    const pass = await service.tick();
    assert.deepEqual(pass.sent.map((s) => s.state), ['failed', 'failed'], 'given up after the second attempt');
    const shown = await api(server, 'GET', `${ORG}/webhooks/${w.id}`);
    assert.equal(shown.body.enabled, false);
    assert.match(shown.body.disabled_reason, /2 deliveries in a row failed all 2 attempts/);
    assert.match(shown.body.disabled_reason, /HTTP 503/);
    const log = await api(server, 'GET', `${ORG}/webhooks/${w.id}/deliveries`);
    assert.deepEqual(log.body.data.map((d: any) => [d.state, d.attempt, d.status_code]), [['failed', 2, 503], ['failed', 2, 503]]);

    // Disabled: new events are not sent to it.
    await addEvent();
    const quiet = await service.tick();
    assert.equal(quiet.sent.length, 0);
    assert.equal(receiver.received.length, 4);

    receiver.answer = () => ({ status: 200 });
    const enabled = await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { enabled: true });
    assert.equal(enabled.body.enabled, true);
    assert.equal(enabled.body.disabled_reason, null);
    await addEvent();
    const back = await service.tick();
    assert.deepEqual(back.sent.map((s) => s.state), ['success']);
  });

  test('send test: the result comes back at once, failures included', async () => {
    const w = await createWebhook();
    const ok = await api(server, 'POST', `${ORG}/webhooks/${w.id}/test`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.success, true);
    assert.equal(ok.body.status_code, 200);
    assert.equal(ok.body.event.kind, 'test');
    const req = receiver.received.at(-1)!;
    assert.equal(req.headers['x-strongbox-event'], 'test');
    assert.equal(JSON.parse(req.body).data.test, true);
    const sig = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-strongbox-signature']))!;
    assert.equal(crypto.createHmac('sha256', w.secret).update(`${sig[1]}.${req.body}`).digest('hex'), sig[2]);

    receiver.answer = () => ({ status: 404, body: 'no such hook' });
    const bad = await api(server, 'POST', `${ORG}/webhooks/${w.id}/test`);
    assert.equal(bad.status, 200);
    assert.equal(bad.body.success, false);
    assert.equal(bad.body.status_code, 404);
    assert.match(bad.body.error, /HTTP 404.*no such hook/);

    const gone = await startReceiver();
    await gone.close();
    const closed = await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { url: `${gone.url}/nothing-listens` });
    assert.equal(closed.status, 200);
    const refused = await api(server, 'POST', `${ORG}/webhooks/${w.id}/test`);
    assert.equal(refused.body.success, false);
    assert.match(refused.body.error, /connection refused/);
    assert.equal((await api(server, 'GET', `${ORG}/webhooks/${w.id}`)).body.last_sent_success, false);
  });

  test('filters: only the events asked for, only the database asked for', async () => {
    await api(server, 'POST', `${ORG}/databases`, { name: 'filtered', kind: 'postgresql' });
    await api(server, 'POST', `${ORG}/databases`, { name: 'other', kind: 'postgresql' });
    const dbs = await server.ctx.db.selectFrom('databases').select(['id', 'name']).where('name', 'in', ['filtered', 'other']).execute();
    const w = await createWebhook({ events: ['backup.failed'], database: 'filtered' });
    assert.equal(w.database, 'filtered');
    const org = await server.ctx.db.selectFrom('organizations').select('id').where('name', '=', 'default').executeTakeFirstOrThrow();
    for (const d of dbs) {
      await server.ctx.db
        .insertInto('events')
        .values({ id: `test-${newId()}`, organization_id: org.id, kind: 'backup.failed', severity: 'error', database_id: d.id, branch_id: null, backup_id: null, job_id: null, message: `about ${d.name}`, created_at: nowIso(clock()), delivered_at: null, payload: JSON.stringify({ message: `about ${d.name}` }) })
        .execute();
    }
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    await service.tick();
    assert.deepEqual(receiver.received.map((r) => JSON.parse(r.body).data.message), ['about filtered']);
    const cleared = await api(server, 'PATCH', `${ORG}/webhooks/${w.id}`, { database: null });
    assert.equal(cleared.body.database, null);
  });

  test('a delivery whose sender was killed mid-send is sent by another process once its lease lapses', async () => {
    await createWebhook({ events: ['backup.failed'] });
    const eventId = await addEvent();
    const service = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    await service.fanOut();
    // What kill -9 leaves behind: a delivery claimed (attempt counted) by a process that is gone.
    const lapse = nowIso(new Date(clock().getTime() + 60_000));
    await server.ctx.db.updateTable('notification_deliveries').set({ lease_owner: 'dead-host:1:gone', lease_expires_at: lapse, attempts: 1 }).where('event_id', '=', eventId).execute();
    assert.equal((await service.tick()).sent.length, 0, 'not while the lease holds');
    assert.equal(receiver.received.length, 0);
    offset += 61_000;
    const pass = await service.tick();
    assert.deepEqual(pass.sent.map((x) => x.state), ['success']);
    assert.equal(receiver.received.length, 1);
    const row = await server.ctx.db.selectFrom('notification_deliveries').selectAll().where('event_id', '=', eventId).executeTakeFirstOrThrow();
    assert.deepEqual([row.state, row.attempts, row.lease_owner], ['success', 2, null]);
  });

  test('two processes on one catalog send each delivery once', async () => {
    await createWebhook({ events: ['backup.failed'] });
    const ids = [];
    for (let i = 0; i < 30; i++) ids.push(await addEvent());
    const a = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const b = new NotificationService(server.ctx, { overdueEveryMs: 0 });
    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
    await Promise.all([a.tick(), b.tick()]);
    assert.equal(ra.sent.length + rb.sent.length >= 20, true);
    assert.equal(receiver.received.length, 30, 'every event once');
    assert.deepEqual(new Set(receiver.received.map((r) => JSON.parse(r.body).id)), new Set(ids));
  });
});

describe('webhooks and the secret key', () => {
  test('rotating the key re-seals webhook secrets and channel secrets', async () => {
    const server = await startServer();
    try {
      const w = await api(server, 'POST', `${ORG}/webhooks`, { url: 'https://hooks.example.com/x' });
      const c = await api(server, 'POST', `${ORG}/notification-channels`, { name: 'tg', type: 'telegram', config: { bot_token: '1:secret-token', chat_id: 1 } });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      await rotateSecretKey({ ...server.ctx, config: { ...server.ctx.config, secretKey: null } }, null);
      const box = loadSecretBox(server.dataDir, null);
      const wh = await server.ctx.db.selectFrom('webhooks').select('secret_enc').where('id', '=', w.body.id).executeTakeFirstOrThrow();
      assert.equal(box.open(wh.secret_enc), w.body.secret);
      const ch = await server.ctx.db.selectFrom('notification_channels').select('secrets_enc').where('id', '=', c.body.id).executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(box.open(ch.secrets_enc)), { bot_token: '1:secret-token' });
    } finally {
      await server.close();
    }
  });
});
