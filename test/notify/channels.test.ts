/**
 * Notification channels against local receivers: Slack, Discord, Telegram (its API base
 * URL pointed at a local server) and ntfy as real HTTP servers, email through a real SMTP
 * server (smtp-server) with a login. Secret settings never come back from the API.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { NotificationService } from '../../src/notify/dispatch.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import { startReceiver, type Receiver } from './receiver.js';

const ORG = '/v1/organizations/default';
const BOT_TOKEN = '123456789:AAF-secret_bot_token_value';
const SLACK_URL_PATH = '/services/T000/B000/slack-secret-path';
const SMTP_PASSWORD = 'smtp-Passw0rd-secret';

interface Mail {
  from: string;
  to: string[];
  raw: string;
}

describe('notification channels', () => {
  let server: TestServer;
  let receiver: Receiver;
  let smtp: SMTPServer;
  let smtpPort: number;
  const mails: Mail[] = [];
  const logins: string[] = [];

  before(async () => {
    server = await startServer();
    receiver = await startReceiver((r) => (r.url.includes('/sendMessage') ? { status: 200, body: '{"ok":true,"result":{}}' } : { status: 200, body: 'ok' }));
    smtp = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, cb) {
        if (auth.username === 'strongbox' && auth.password === SMTP_PASSWORD) {
          logins.push(auth.username);
          return cb(null, { user: auth.username });
        }
        return cb(new Error('Invalid username or password'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ from: String(session.envelope.mailFrom && session.envelope.mailFrom.address), to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
          cb();
        });
      },
    });
    await new Promise<void>((res) => smtp.listen(0, '127.0.0.1', () => res()));
    smtpPort = (smtp.server.address() as AddressInfo).port;
  });
  after(async () => {
    await receiver?.close();
    await new Promise<void>((res) => (smtp ? smtp.close(() => res()) : res()));
    await server?.close();
  });
  afterEach(async () => {
    const list = await api(server, 'GET', `${ORG}/notification-channels?per_page=100`);
    for (const c of list.body.data) await api(server, 'DELETE', `${ORG}/notification-channels/${c.id}`);
    receiver.received.length = 0;
    mails.length = 0;
  });

  async function addEvent(kind: string, message: string): Promise<string> {
    const org = await server.ctx.db.selectFrom('organizations').select('id').where('name', '=', 'default').executeTakeFirstOrThrow();
    const id = `test-${newId()}`;
    const data = { message, database: { name: 'shop' }, branch: { name: 'main' } };
    await server.ctx.db
      .insertInto('events')
      .values({ id, organization_id: org.id, kind, severity: kind.endsWith('succeeded') ? 'info' : 'error', database_id: null, branch_id: null, backup_id: null, job_id: null, message, created_at: nowIso(), delivered_at: null, payload: JSON.stringify(data) })
      .execute();
    return id;
  }

  async function create(body: Record<string, unknown>) {
    const r = await api(server, 'POST', `${ORG}/notification-channels`, body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  }

  test('Slack, Discord, Telegram and ntfy get the event in their own format', async () => {
    await create({ name: 'slack', type: 'slack', config: { url: `${receiver.url}${SLACK_URL_PATH}` }, events: ['backup.failed'] });
    await create({ name: 'discord', type: 'discord', config: { url: `${receiver.url}/api/webhooks/1/discord-secret` }, events: ['backup.failed'] });
    await create({ name: 'telegram', type: 'telegram', config: { bot_token: BOT_TOKEN, chat_id: -1001234, api_url: receiver.url }, events: ['backup.failed'] });
    await create({ name: 'ntfy', type: 'ntfy', config: { url: `${receiver.url}/strongbox-alerts`, token: 'tk_ntfy_secret_token' }, events: ['backup.failed'] });
    const message = 'backup "nightly" of shop/main failed: pg_dump: error: connection to server failed <&>';
    await addEvent('backup.failed', message);
    await addEvent('backup.succeeded', 'not asked for');
    const pass = await new NotificationService(server.ctx, { overdueEveryMs: 0 }).tick();
    assert.equal(pass.sent.length, 4, JSON.stringify(pass.sent));
    assert.ok(pass.sent.every((s) => s.result.success), JSON.stringify(pass.sent));
    const at = (p: (u: string) => boolean) => {
      const r = receiver.received.filter((x) => p(x.url));
      assert.equal(r.length, 1, JSON.stringify(receiver.received.map((x) => x.url)));
      return r[0];
    };

    const slack = at((u) => u === SLACK_URL_PATH);
    const s = JSON.parse(slack.body);
    assert.match(s.text, /Backup failed: shop\/main/);
    assert.match(s.text, /connection to server failed &lt;&amp;&gt;/, 'mrkdwn escaped');
    assert.equal(s.blocks[0].type, 'header');
    assert.equal(s.blocks[0].text.text, 'Backup failed: shop/main');
    assert.match(s.blocks[1].text.text, /backup "nightly" of shop\/main failed/);

    const discord = at((u) => u.startsWith('/api/webhooks/'));
    const d = JSON.parse(discord.body);
    assert.equal(d.embeds[0].title, 'Backup failed: shop/main');
    assert.equal(d.embeds[0].description, message);
    assert.equal(d.embeds[0].color, 0xe01e5a);
    assert.deepEqual(d.allowed_mentions, { parse: [] });

    const telegram = at((u) => u.includes('/sendMessage'));
    assert.equal(telegram.url, `/bot${BOT_TOKEN}/sendMessage`);
    const t = JSON.parse(telegram.body);
    assert.equal(t.chat_id, '-1001234');
    assert.match(t.text, /^Backup failed: shop\/main\nbackup "nightly"/);

    const ntfy = at((u) => u === '/strongbox-alerts');
    assert.equal(ntfy.headers.title, 'Backup failed: shop/main');
    assert.equal(ntfy.headers.priority, 'high');
    assert.equal(ntfy.headers.tags, 'rotating_light,strongbox');
    assert.equal(ntfy.headers.authorization, 'Bearer tk_ntfy_secret_token');
    assert.match(ntfy.body, /^backup "nightly" of shop\/main failed/);

    const list = await api(server, 'GET', `${ORG}/notification-channels`);
    for (const c of list.body.data) {
      assert.equal(c.last_sent_success, true, c.name);
      const log = await api(server, 'GET', `${ORG}/notification-channels/${c.id}/deliveries`);
      assert.equal(log.body.data.length, 1);
      assert.equal(log.body.data[0].event.kind, 'backup.failed');
      assert.equal(log.body.data[0].success, true);
    }
  });

  test('email through a real SMTP server, with a login', async () => {
    const c = await create({
      name: 'ops mail',
      type: 'email',
      config: { host: '127.0.0.1', port: smtpPort, starttls: false, user: 'strongbox', password: SMTP_PASSWORD, from: 'Strongbox <backups@example.com>', to: ['ops@example.com', 'dba@example.com'] },
      events: ['backup.overdue'],
    });
    assert.deepEqual(c.config, { host: '127.0.0.1', port: smtpPort, secure: false, starttls: false, user: 'strongbox', from: 'Strongbox <backups@example.com>', to: ['ops@example.com', 'dba@example.com'], password: { set: true } });
    await addEvent('backup.overdue', 'shop/main has had no successful backup for 1 day 2 hours');
    const pass = await new NotificationService(server.ctx, { overdueEveryMs: 0 }).tick();
    assert.equal(pass.sent.length, 1);
    assert.equal(pass.sent[0].result.success, true, JSON.stringify(pass.sent[0].result));
    assert.equal(pass.sent[0].result.status_code, 250);
    assert.equal(mails.length, 1);
    assert.equal(mails[0].from, 'backups@example.com');
    assert.deepEqual(mails[0].to, ['ops@example.com', 'dba@example.com']);
    assert.match(mails[0].raw, /^Subject: \[Strongbox\] Backup overdue: shop\/main\r?$/m);
    assert.match(mails[0].raw.replace(/=\r?\n/g, ''), /shop\/main has had no successful backup for 1 day 2 hours/);
    assert.ok(logins.length >= 1, 'it logged in');

    const test1 = await api(server, 'POST', `${ORG}/notification-channels/${c.id}/test`);
    assert.equal(test1.status, 200);
    assert.equal(test1.body.success, true, JSON.stringify(test1.body));
    assert.match(mails[1].raw, /^Subject: \[Strongbox\] Test notification\r?$/m);

    // A wrong password: the test says so, and the password is not in what it says.
    const wrong = await api(server, 'PATCH', `${ORG}/notification-channels/${c.id}`, { config: { password: 'not-the-password' } });
    assert.equal(wrong.status, 200, JSON.stringify(wrong.body));
    assert.deepEqual(wrong.body.config.password, { set: true });
    const refused = await api(server, 'POST', `${ORG}/notification-channels/${c.id}/test`);
    assert.equal(refused.body.success, false);
    assert.match(refused.body.error, /EAUTH|Invalid username or password/);
    assert.ok(!JSON.stringify(refused.body).includes('not-the-password'));
  });

  test('send test for each HTTP channel; failures come back with the reason, without the secret', async () => {
    const tg = await create({ name: 'tg', type: 'telegram', config: { bot_token: BOT_TOKEN, chat_id: '@strongbox_ops', api_url: receiver.url } });
    const ok = await api(server, 'POST', `${ORG}/notification-channels/${tg.id}/test`);
    assert.equal(ok.body.success, true, JSON.stringify(ok.body));
    assert.equal(JSON.parse(receiver.received.at(-1)!.body).chat_id, '@strongbox_ops');

    receiver.answer = () => ({ status: 400, body: '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}' });
    try {
      const bad = await api(server, 'POST', `${ORG}/notification-channels/${tg.id}/test`);
      assert.equal(bad.body.success, false);
      assert.equal(bad.body.status_code, 400);
      assert.match(bad.body.error, /chat not found/);
      assert.ok(!JSON.stringify(bad.body).includes(BOT_TOKEN));
      const shown = await api(server, 'GET', `${ORG}/notification-channels/${tg.id}`);
      assert.equal(shown.body.last_sent_success, false);
      assert.match(shown.body.last_sent_result, /chat not found/);
    } finally {
      receiver.answer = () => ({ status: 200, body: 'ok' });
    }
    // Unreachable: the error does not repeat the URL, whose path holds the token.
    const gone = await startReceiver();
    await gone.close();
    await api(server, 'PATCH', `${ORG}/notification-channels/${tg.id}`, { config: { api_url: gone.url } });
    const refused = await api(server, 'POST', `${ORG}/notification-channels/${tg.id}/test`);
    assert.equal(refused.body.success, false);
    assert.match(refused.body.error, /connection refused/);
    assert.ok(!JSON.stringify(refused.body).includes(BOT_TOKEN));
  });

  test('secret settings never come back; PATCH keeps them unless given, null removes an optional one', async () => {
    const slack = await create({ name: 'sl', type: 'slack', config: { url: `${receiver.url}${SLACK_URL_PATH}` } });
    assert.deepEqual(slack.config, { url: { set: true } });
    const tg = await create({ name: 'tg2', type: 'telegram', config: { bot_token: BOT_TOKEN, chat_id: 42 } });
    assert.deepEqual(tg.config, { chat_id: '42', api_url: 'https://api.telegram.org', bot_token: { set: true } });
    const nt = await create({ name: 'nt', type: 'ntfy', config: { url: 'https://ntfy.sh/strongbox-test', token: 'tk_ntfy_secret_token' } });
    const renamed = await api(server, 'PATCH', `${ORG}/notification-channels/${nt.id}`, { name: 'ntfy-renamed', config: { url: 'https://ntfy.example.com/alerts' } });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.deepEqual(renamed.body.config, { url: 'https://ntfy.example.com/alerts', token: { set: true } });
    const untokened = await api(server, 'PATCH', `${ORG}/notification-channels/${nt.id}`, { config: { token: null } });
    assert.deepEqual(untokened.body.config, { url: 'https://ntfy.example.com/alerts', token: { set: false } });
    const all = JSON.stringify([(await api(server, 'GET', `${ORG}/notification-channels`)).body, (await api(server, 'GET', `${ORG}/notification-channels/${tg.id}`)).body]);
    for (const secret of [BOT_TOKEN, SLACK_URL_PATH, 'tk_ntfy_secret_token']) assert.ok(!all.includes(secret), secret);
    const rows = JSON.stringify(await server.ctx.db.selectFrom('notification_channels').selectAll().execute());
    for (const secret of [BOT_TOKEN, SLACK_URL_PATH]) assert.ok(!rows.includes(secret), `${secret} is sealed at rest`);
  });

  test('bad input gets a clear 4xx', async () => {
    await create({ name: 'taken', type: 'ntfy', config: { url: 'https://ntfy.sh/x' } });
    const cases: Array<[unknown, number, RegExp]> = [
      [{ name: 'p', type: 'pager', config: {} }, 422, /type must be one of: slack, discord, telegram, ntfy, email/],
      [{ name: 'p', type: 'slack', config: {} }, 422, /config\.url is required/],
      [{ name: 'p', type: 'slack', config: { url: 'file:///etc/passwd' } }, 422, /http:\/\/ or https:\/\//],
      [{ name: 'p', type: 'slack', config: { url: 'https://hooks.slack.com/x', channel: '#ops' } }, 422, /unknown field "channel" for a slack channel/],
      [{ name: 'p', type: 'telegram', config: { chat_id: 1 } }, 422, /config\.bot_token is required/],
      [{ name: 'p', type: 'telegram', config: { chat_id: 1, bot_token: 'nope' } }, 422, /does not look like a bot token/],
      [{ name: 'p', type: 'telegram', config: { bot_token: BOT_TOKEN } }, 422, /config\.chat_id is required/],
      [{ name: 'p', type: 'telegram', config: { bot_token: BOT_TOKEN, chat_id: 1, api_url: 'gopher://x' } }, 422, /config\.api_url must be an http/],
      [{ name: 'p', type: 'email', config: { host: 'smtp.example.com', from: 'a@b.c', to: [] } }, 422, /config\.to must be a list/],
      [{ name: 'p', type: 'email', config: { host: 'smtp.example.com', from: 'a@b.c', to: ['not an address'] } }, 422, /"not an address" is not an email address/],
      [{ name: 'p', type: 'email', config: { host: 'smtp.example.com', from: 'a@b.c', to: ['x@y.z'], port: 99999 } }, 422, /config\.port/],
      [{ name: 'p', type: 'email', config: { host: 'smtp.example.com', from: 'a@b.c', to: ['x@y.z'], password: 'x' } }, 422, /without config\.user/],
      [{ name: 'p', type: 'ntfy', config: { url: 'https://ntfy.sh/x' }, events: ['backup.deleted'] }, 422, /must be one of/],
      [{ name: 'taken', type: 'ntfy', config: { url: 'https://ntfy.sh/x' } }, 409, /already exists/],
      [{ type: 'ntfy', config: { url: 'https://ntfy.sh/x' } }, 422, /missing required field "name"/],
    ];
    for (const [body, status, message] of cases) {
      const r = await api(server, 'POST', `${ORG}/notification-channels`, body);
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message']);
      assert.match(r.body.message, message, JSON.stringify(body));
    }
    assert.equal((await api(server, 'GET', `${ORG}/notification-channels?per_page=0`)).status, 400);
    assert.equal((await api(server, 'GET', `${ORG}/notification-channels/nosuch`)).status, 404);
    assert.equal((await api(server, 'GET', `${ORG}/notification-channels/nosuch/deliveries`)).status, 404);
  });
});
