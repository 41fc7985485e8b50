/**
 * The dashboard's settings pages in a real browser (Chromium, through playwright-core)
 * against a real server: create, edit and delete a backup policy with the server's preview
 * of its schedule on the page; make a token whose secret is shown once and works against the
 * API; add a local folder and an S3 bucket and test them (secrets never on the page, kept on
 * an edit); make a webhook and a channel pointing at a local HTTP receiver whose "send test"
 * arrives (signed with the secret the page showed once), see a real failed backup in the
 * delivery log and a disabled webhook's reason; the audit log lists those writes. Every page
 * is saved as a screenshot under test-results/ (a CI artifact), one also on a phone in dark mode.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { buildUi } from '../../ui/build.mjs';
import { ALL_ACCESSES } from '../../src/catalog/tokens.js';
import { EVENT_KINDS } from '../../src/notify/kinds.js';
import { NotificationService } from '../../src/notify/dispatch.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { assertLabelled, launchBrowser, screenshot, watchForProblems, type TestBrowser } from './browser.js';

const ORG = '/v1/organizations/default';

let server: TestServer;
let browser: TestBrowser;
let page: Page;
let uiDir: string;
let s3: S3TestServer;
let folders: string;
const gone = uniqueName('ui_set_gone');
let gonePath: string;
/** What the page reported that a test should never see: script errors, CSP refusals. */
let problems: string[] = [];

/** Requests the local receiver got: webhook deliveries and ntfy messages. */
interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
const received: Received[] = [];
let receiver: http.Server;
let receiverUrl: string;

const shot = (name: string, p: Page = page) => screenshot(p, name);

async function open(hash: string, heading: string): Promise<void> {
  await page.goto(`${server.url}/#${hash}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

before(async () => {
  uiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-'));
  const built = await buildUi({ outDir: uiDir, quiet: true });
  assert.ok(built.gzipBytes < 100 * 1024, `the dashboard is ${built.gzipBytes} bytes gzip; keep it under 100 KiB`);
  folders = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-dest-'));
  s3 = await startS3Server();
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  await createDatabase('postgresql', gone);
  server = await startServer({ STRONGBOX_UI_DIR: uiDir });
  // A branch whose database is gone: its backups fail, which makes a real event to deliver.
  gonePath = await registerBranch(server, 'default', 'shop', 'postgresql', 'gone', pgUrl(gone));
  await dropDatabase('postgresql', gone);

  browser = await launchBrowser();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  page = await browser.context.newPage();
  problems = watchForProblems(page);
  await page.goto(server.url + '/');
  await page.getByLabel('Service token').fill(server.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await s3?.close();
  await new Promise((r) => receiver?.close(r));
  await dropDatabase('postgresql', gone).catch(() => undefined);
  if (uiDir) fs.rmSync(uiDir, { recursive: true, force: true });
  if (folders) fs.rmSync(folders, { recursive: true, force: true });
});

test('the main navigation reaches every settings page', async () => {
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const [label, heading] of [
    ['Policies', 'Backup policies'],
    ['Destinations', 'Storage destinations'],
    ['Notifications', 'Notifications'],
    ['Tokens', 'Service tokens'],
    ['Audit log', 'Audit log'],
  ]) {
    await nav.getByRole('link', { name: label, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    assert.equal(await nav.getByRole('link', { name: label, exact: true }).getAttribute('aria-current'), 'page');
  }
});

test('a policy is created with the server’s preview of its schedule, edited, and deleted after confirming', async () => {
  await open('/policies', 'Backup policies');
  // The only database is chosen without asking.
  await page.waitForURL(/#\/policies\?database=shop$/);
  await page.getByRole('button', { name: 'New policy' }).click();
  await page.getByLabel('Name', { exact: true }).fill('nightly');
  await page.getByLabel('Every', { exact: true }).fill('1');
  await page.getByLabel('Unit').first().selectOption('day');
  await page.getByLabel('At (UTC)').fill('03:30');
  await page.getByLabel('Keep each backup for').fill('2');
  await page.getByLabel('Fully verify every Nth backup').fill('5');

  // The preview is the server's own: the same words and five runs.
  const expected = await api(server, 'POST', `${ORG}/databases/shop/backup-policies/preview`, {
    frequency_value: 1,
    frequency_unit: 'day',
    schedule_time: '03:30',
    schedule_day: null,
    schedule_week: null,
    retention_value: 2,
    retention_unit: 'day',
  });
  assert.equal(expected.status, 200, JSON.stringify(expected.body));
  assert.equal(expected.body.description, 'Every day at 03:30 UTC, kept for 2 days');
  await page.locator('.preview-description', { hasText: expected.body.description }).waitFor();
  const runs = await page.locator('.next-runs time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')));
  assert.equal(runs.length, 5);
  assert.deepEqual(runs, expected.body.next_runs);
  await assertLabelled(page);
  await shot('policy-form');

  // A schedule the server refuses says why, in the preview.
  await page.getByLabel('Unit').first().selectOption('hour');
  await page.getByLabel('Every', { exact: true }).fill('5');
  await page.locator('.preview .attention-text', { hasText: /frequency_value must divide 24/ }).waitFor();
  await page.getByLabel('Every', { exact: true }).fill('6');
  await page.locator('.preview-description', { hasText: /^Every 6 hours at :30/ }).waitFor();
  await page.getByLabel('Unit').first().selectOption('day');
  await page.getByLabel('Every', { exact: true }).fill('1');
  await page.locator('.preview-description', { hasText: expected.body.description }).waitFor();

  await page.getByRole('button', { name: 'Create policy' }).click();
  await page.locator('#policies-table tr[data-policy="nightly"]').waitFor();
  const list = await api(server, 'GET', `${ORG}/databases/shop/backup-policies`);
  const made = list.body.data.find((p: any) => p.name === 'nightly');
  assert.ok(made, 'the policy exists in the API');
  assert.deepEqual(
    [made.target, made.frequency_value, made.frequency_unit, made.schedule_time, made.retention_value, made.retention_unit, made.verify_every],
    ['production', 1, 'day', '03:30', 2, 'day', 5],
  );
  assert.equal(made.next_run_at, expected.body.next_runs[0]);
  await shot('policies');

  // Edit: weekly on Monday; the preview follows; the API has it.
  await page.getByRole('button', { name: 'Edit nightly' }).click();
  await page.getByLabel('Unit').first().selectOption('week');
  await page.getByLabel('On', { exact: true }).selectOption('1');
  await page.locator('.preview-description', { hasText: 'Every week on Monday at 03:30 UTC, kept for 2 days' }).waitFor();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#policies-table tr[data-policy="nightly"]', { hasText: 'on Monday' }).waitFor();
  const edited = (await api(server, 'GET', `${ORG}/databases/shop/backup-policies/${made.id}`)).body;
  assert.deepEqual([edited.frequency_unit, edited.schedule_day, edited.verify_every], ['week', 1, 5]);

  // Delete asks first; Cancel keeps it.
  await page.getByRole('button', { name: 'Delete nightly' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete this policy?' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal((await api(server, 'GET', `${ORG}/databases/shop/backup-policies/${made.id}`)).status, 200);
  await page.getByRole('button', { name: 'Delete nightly' }).click();
  await dialog.getByRole('button', { name: 'Delete policy' }).click();
  await page.locator('#policies-table tr[data-policy="nightly"]').waitFor({ state: 'detached' });
  assert.equal((await api(server, 'GET', `${ORG}/databases/shop/backup-policies/${made.id}`)).status, 404);
});

test('a token is created with its accesses; its secret is shown once and works against the API', async () => {
  await open('/tokens', 'Service tokens');
  await page.getByRole('button', { name: 'New token' }).click();
  // The accesses offered are exactly the API's.
  const offered = await page.locator('#token-accesses input[name=access]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
  assert.deepEqual(offered, [...ALL_ACCESSES]);
  await page.getByLabel('Name').fill('ci-reader');
  await page.getByRole('button', { name: 'Read only' }).click();
  await assertLabelled(page);
  await shot('token-form');
  await page.getByRole('button', { name: 'Create token' }).click();

  const secretBox = page.locator('.secret-once');
  await secretBox.waitFor();
  assert.match((await secretBox.textContent()) ?? '', /you will not see this again/);
  const credential = ((await secretBox.locator('.secret-value').textContent()) ?? '').trim();
  assert.match(credential, /^[A-Za-z0-9_-]+:sbx_[A-Za-z0-9_-]+$/);
  await shot('token-secret');
  await secretBox.getByRole('button', { name: 'Copy' }).click();
  await page.locator('.secret-once [role=status]', { hasText: /Copied|selected/ }).waitFor();
  if (/Copied/.test((await page.locator('.secret-once [role=status]').textContent()) ?? '')) {
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), credential);
  }

  // It authenticates, with exactly the read accesses chosen.
  const id = credential.split(':')[0];
  const asToken = { url: server.url, token: credential };
  assert.equal((await api(asToken, 'GET', `${ORG}/databases`)).status, 200);
  assert.equal((await api(asToken, 'POST', `${ORG}/databases`, { name: 'nope', kind: 'postgresql' })).status, 403);
  const accesses = (await api(server, 'GET', `${ORG}/service-tokens/${id}/accesses`)).body.data;
  assert.deepEqual(accesses.map((a: any) => a.access).sort(), ALL_ACCESSES.filter((a) => a.startsWith('read_')).sort());
  assert.ok(accesses.every((a: any) => a.resource_type === 'organization'));

  // Once dismissed, the secret is nowhere on the page, and a reload does not bring it back.
  await secretBox.getByRole('button', { name: 'I have copied it' }).click();
  await secretBox.waitFor({ state: 'detached' });
  const secret = credential.split(':')[1];
  assert.ok(!(await page.content()).includes(secret));
  await page.reload();
  await page.locator(`#tokens-table tr[data-token="${id}"]`).waitFor();
  assert.ok(!(await page.content()).includes(secret));
  // The list shows its accesses on demand.
  await page.locator(`#tokens-table tr[data-token="${id}"] summary`).click();
  await page.locator(`#tokens-table tr[data-token="${id}"] li`, { hasText: 'read_backups' }).waitFor();
  await shot('tokens');

  // Deleting it (after confirming) ends it.
  await page.getByRole('button', { name: 'Delete ci-reader' }).click();
  await page.getByRole('dialog', { name: 'Delete this token?' }).getByRole('button', { name: 'Delete token' }).click();
  await page.locator(`#tokens-table tr[data-token="${id}"]`).waitFor({ state: 'detached' });
  assert.equal((await api(asToken, 'GET', `${ORG}/databases`)).status, 401);
});

test('destinations: a local folder is added and tested; an S3 bucket’s keys are never shown and kept on an edit', async () => {
  await open('/destinations', 'Storage destinations');
  const folder = path.join(folders, 'extra');
  await page.getByRole('button', { name: 'Add destination' }).click();
  await page.getByLabel('Name').fill('extra');
  await page.getByLabel('Folder').fill(folder);
  await assertLabelled(page);
  await page.getByRole('button', { name: 'Add destination' }).last().click();
  const row = page.locator('#destinations-table tr[data-destination="extra"]');
  await row.waitFor();
  assert.equal((await api(server, 'GET', `${ORG}/storage-destinations/extra`)).body.config.path, folder);

  await row.getByRole('button', { name: 'Test extra' }).click();
  await row.locator('.test-result.passed', { hasText: /Works/ }).waitFor();

  // A folder that became a file: the test says why it cannot be used.
  fs.rmSync(folder, { recursive: true, force: true });
  fs.writeFileSync(folder, 'not a folder');
  await row.getByRole('button', { name: 'Test extra' }).click();
  const failed = row.locator('.test-result.failed');
  await failed.waitFor();
  // The reason as the API gives it (its probe object's name differs from call to call).
  const answer = await api(server, 'POST', `${ORG}/storage-destinations/extra/test`);
  assert.equal(answer.body.ok, false);
  const shown = (await failed.textContent())?.replace(/^✗ /, '') ?? '';
  const words = (s: string) => s.replace(/strongbox-probe\/[0-9a-f]+/g, 'strongbox-probe/…');
  assert.equal(words(shown), words(answer.body.error));
  assert.match(shown, /^cannot use this destination: /);
  fs.rmSync(folder, { force: true });

  // S3, with keys: they go in, and never come back out onto the page.
  await page.getByRole('button', { name: 'Add destination' }).click();
  await page.getByLabel('Name').fill('bucket');
  await page.getByLabel('Kind').selectOption('s3');
  await page.getByLabel('Bucket', { exact: true }).fill(s3.bucket);
  await page.getByLabel('Prefix (optional)').fill('ui');
  await page.getByLabel('Region').fill(s3.region);
  await page.getByLabel('Endpoint (S3-compatible services only)').fill(s3.endpoint);
  await page.getByLabel('Path-style addressing (endpoint/bucket)').check();
  await page.getByLabel('Access key id').fill(s3.accessKeyId);
  await page.getByLabel('Secret access key').fill(s3.secretAccessKey);
  await assertLabelled(page);
  await shot('destination-form-s3');
  await page.getByRole('button', { name: 'Add destination' }).last().click();
  const bucketRow = page.locator('#destinations-table tr[data-destination="bucket"]');
  await bucketRow.waitFor();
  await bucketRow.getByRole('button', { name: 'Test bucket' }).click();
  await bucketRow.locator('.test-result.passed').waitFor();
  const noSecrets = async () => {
    const html = await page.content();
    assert.ok(!html.includes(s3.secretAccessKey) && !html.includes(s3.accessKeyId), 'no key on the page');
    assert.ok(!html.includes('[redacted]'), 'not even the placeholder');
  };
  await noSecrets();
  await shot('destinations');

  // Edit without typing the keys again: the prefix changes, the stored keys stay.
  await bucketRow.getByRole('button', { name: 'Edit bucket' }).click();
  assert.equal(await page.getByLabel('Secret access key').inputValue(), '');
  assert.equal(await page.getByLabel('Access key id').inputValue(), '');
  await noSecrets();
  await page.getByLabel('Prefix (optional)').fill('ui2');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#destinations-table tr[data-destination="bucket"]', { hasText: 'bucket strongbox-test/ui2' }).waitFor();
  const stored = await server.ctx.db.selectFrom('storage_destinations').select('config_enc').where('name', '=', 'bucket').executeTakeFirstOrThrow();
  const config = JSON.parse(server.ctx.secrets.open(stored.config_enc));
  assert.equal(config.prefix, 'ui2');
  assert.equal(config.secret_access_key, s3.secretAccessKey, 'the secret was kept');
  assert.equal(config.access_key_id, s3.accessKeyId);

  // Delete asks first.
  await bucketRow.getByRole('button', { name: 'Delete bucket' }).click();
  await page.getByRole('dialog', { name: 'Remove this destination?' }).getByRole('button', { name: 'Remove destination' }).click();
  await bucketRow.waitFor({ state: 'detached' });
  assert.equal((await api(server, 'GET', `${ORG}/storage-destinations/bucket`)).status, 404);
});

test('notifications: a webhook’s test arrives signed with the secret shown once; a channel’s too; the log and a disabled reason show', async () => {
  await open('/notifications', 'Notifications');
  const hooks = page.locator('section[aria-labelledby="webhooks-h"]');
  await hooks.getByRole('button', { name: 'Add webhook' }).click();
  await hooks.getByLabel('URL').fill(`${receiverUrl}/hook`);
  const offered = await hooks.locator('input[name=event]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
  assert.deepEqual(offered, [...EVENT_KINDS]);
  await assertLabelled(page);
  await hooks.getByRole('button', { name: 'Create webhook' }).click();
  const secretBox = hooks.locator('.secret-once');
  await secretBox.waitFor();
  const secret = ((await secretBox.locator('.secret-value').textContent()) ?? '').trim();
  assert.match(secret, /^whsec_/);
  await shot('webhook-secret');
  await secretBox.getByRole('button', { name: 'I have copied it' }).click();
  assert.ok(!(await page.content()).includes(secret));

  const listed = (await api(server, 'GET', `${ORG}/webhooks`)).body.data;
  assert.equal(listed.length, 1);
  const hookId: string = listed[0].id;
  const row = hooks.locator(`tr[data-target="${hookId}"]`);
  await row.getByRole('button', { name: /^Send a test to / }).click();
  await row.locator('.test-result.passed', { hasText: /Test delivered \(200\)/ }).waitFor();
  const delivery = received.find((r) => r.path === '/hook');
  assert.ok(delivery, 'the receiver got the test');
  const [t, v1] = String(delivery.headers['x-strongbox-signature']).split(',').map((p) => p.split('=')[1]);
  assert.equal(v1, crypto.createHmac('sha256', secret).update(`${t}.${delivery.body}`).digest('hex'), 'signed with the secret the page showed');
  assert.equal(JSON.parse(delivery.body).event, 'test');

  // An ntfy channel with an access token: the test arrives with it; the page never shows it.
  const channels = page.locator('section[aria-labelledby="notification-channels-h"]');
  await channels.getByRole('button', { name: 'Add channel' }).click();
  await channels.getByLabel('Name').fill('phone');
  await channels.getByLabel('Kind').selectOption('ntfy');
  await channels.getByLabel('Topic URL').fill(`${receiverUrl}/ntfy-topic`);
  const ntfyToken = `tk_${crypto.randomBytes(12).toString('hex')}`;
  await channels.getByLabel('Access token (optional)').fill(ntfyToken);
  await assertLabelled(page);
  await shot('channel-form');
  await channels.getByRole('button', { name: 'Create channel' }).click();
  await channels.locator('tbody tr', { hasText: 'phone' }).waitFor();
  const channel = (await api(server, 'GET', `${ORG}/notification-channels`)).body.data[0];
  const crow = channels.locator(`tr[data-target="${channel.id}"]`);
  await crow.waitFor();
  await crow.getByRole('button', { name: 'Send a test to phone' }).click();
  await crow.locator('.test-result.passed').waitFor();
  const note = received.find((r) => r.path === '/ntfy-topic');
  assert.ok(note, 'the ntfy topic got the test');
  assert.equal(note.headers.authorization, `Bearer ${ntfyToken}`);
  assert.ok(!(await page.content()).includes(ntfyToken));
  // An edit that leaves the token empty keeps it.
  await crow.getByRole('button', { name: 'Edit phone' }).click();
  assert.equal(await channels.getByLabel('Access token (optional)').inputValue(), '');
  await channels.getByRole('button', { name: 'Save changes' }).click();
  await channels.locator('form').waitFor({ state: 'detached' });
  assert.deepEqual((await api(server, 'GET', `${ORG}/notification-channels/${channel.id}`)).body.config.token, { set: true });

  // A real event: a failed backup, delivered by the notification service, in the delivery log.
  const failedBackup = (await api(server, 'POST', `${gonePath}/backups`, {})).body;
  assert.equal((await waitForBackup(server, gonePath, failedBackup.id)).state, 'failed');
  const service = new NotificationService(server.ctx);
  await until('the failure to reach the webhook', async () => {
    await service.tick();
    return received.some((r) => r.path === '/hook' && JSON.parse(r.body).event === 'backup.failed') ? true : undefined;
  }, 30_000, 300);
  await page.reload();
  await row.getByRole('button', { name: /^Delivery log of / }).click();
  await hooks.locator('.delivery-log tbody tr', { hasText: 'backup.failed' }).waitFor();
  await shot('webhook-deliveries');

  // Strongbox turned it off (as after failing too often): the reason is shown in the row.
  const reason = 'disabled after 10 failed deliveries in a row (last: HTTP 500 Internal Server Error)';
  await server.ctx.db.updateTable('webhooks').set({ enabled: 0, disabled_reason: reason }).where('id', '=', hookId).execute();
  await page.reload();
  await row.locator('.disabled-reason', { hasText: reason }).waitFor();
  await shot('notifications');
  await row.getByRole('button', { name: /^Enable / }).click();
  await row.locator('.disabled-reason').waitFor({ state: 'detached' });
  const hook = (await api(server, 'GET', `${ORG}/webhooks/${hookId}`)).body;
  assert.deepEqual([hook.enabled, hook.disabled_reason], [true, null]);
});

test('the audit log lists the writes made above, as the API does', async () => {
  await open('/audit', 'Audit log');
  await page.locator('#audit-table').waitFor();
  const apiPage = (await api(server, 'GET', `${ORG}/audit-log`)).body;
  const shown = await page.locator('#audit-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-route')));
  assert.deepEqual(
    shown,
    apiPage.data.map((e: any) => `${e.method} ${e.route}`),
  );
  const text = (await page.locator('#audit-table').textContent()) ?? '';
  for (const write of ['POST /v1/organizations/default/webhooks', 'POST /v1/organizations/default/storage-destinations/extra/test', 'DELETE /v1/organizations/default/service-tokens/', 'PATCH /v1/organizations/default/notification-channels/']) {
    assert.ok(text.includes(write), `the audit log shows ${write}`);
  }
  await assertLabelled(page);
  await shot('audit');
  if (apiPage.total_pages > 1) {
    await page.getByRole('button', { name: 'Older →' }).click();
    await page.waitForURL(/#\/audit\?page=2$/);
  }
});

test('on a 360 px phone in dark mode the settings pages fit the screen', async () => {
  const phone = await browser.context.newPage();
  const phoneProblems = watchForProblems(phone);
  try {
    await phone.setViewportSize({ width: 360, height: 780 });
    await phone.emulateMedia({ colorScheme: 'dark' });
    for (const [hash, heading, name] of [
      ['/policies?database=shop', 'Backup policies', 'policies-phone-dark'],
      ['/destinations', 'Storage destinations', 'destinations-phone-dark'],
      ['/notifications', 'Notifications', 'notifications-phone-dark'],
      ['/tokens', 'Service tokens', 'tokens-phone-dark'],
      ['/audit', 'Audit log', 'audit-phone-dark'],
    ]) {
      await phone.goto(`${server.url}/#${hash}`);
      await phone.getByRole('heading', { level: 1, name: heading }).waitFor();
      await phone.locator('table, .card').first().waitFor();
      const width = await phone.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `${hash} is ${width} px wide on a 360 px screen`);
      await shot(name, phone);
    }
    assert.equal(await phone.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(15, 19, 24)', 'dark background in dark mode');
  } finally {
    await phone.close();
  }
  assert.deepEqual([...problems, ...phoneProblems], []);
});
