/**
 * The dashboard in a real browser (Chromium, through playwright-core) against a real server
 * and real databases: sign in, watch a backup of a database big enough to take a few seconds
 * move its progress bar, restore it and count the rows in the new database, see why a backup
 * of a database that is gone failed (the very text the API gives), download a copy and check its
 * sha256, see a schema diff, delete with confirmation,
 * sign out. Every page is saved as a screenshot under test-results/ (a CI artifact).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildUi } from '../../ui/build.mjs';
import { addLargeTable, createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { startThrottleProxy, type ThrottleProxy } from '../helpers/throttle-proxy.js';
import { assertLabelled as labelled, launchBrowser, screenshot, watchForProblems, type TestBrowser } from './browser.js';

/** Rows in the big table (~165 MB as the dump reads them). */
const BIG_ROWS = 1_000_000;
/**
 * The main branch's server is reached through a link of this speed (helpers/throttle-proxy.ts):
 * its dump runs for about 10 s however fast the machine, so the progress bar is seen moving.
 * (Unthrottled, a fast run finished within one progress update and the bar showed one value.)
 */
const LINK_BYTES_PER_SECOND = 16 * 1024 * 1024;

let server: TestServer;
let link: ThrottleProxy;
let browser: TestBrowser;
let page: Page;
let uiDir: string;
const source = uniqueName('ui_big');
const gone = uniqueName('ui_gone');
const created: string[] = [];
let mainPath: string;
let gonePath: string;
let backupId: string;
let failedId: string;
/** What the page reported that a test should never see: script errors, CSP refusals. */
let problems: string[] = [];

const shot = (name: string, p: Page = page) => screenshot(p, name);
const assertLabelled = (p: Page = page) => labelled(p);

const hashPath = (...parts: string[]) => '#/' + parts.map(encodeURIComponent).join('/');

before(async () => {
  uiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-'));
  const built = await buildUi({ outDir: uiDir, quiet: true });
  assert.ok(built.gzipBytes < 100 * 1024, `the dashboard is ${built.gzipBytes} bytes gzip; keep it under 100 KiB`);
  await createDatabase('postgresql', source);
  created.push(source);
  await addLargeTable('postgresql', pgUrl(source), BIG_ROWS);
  await createDatabase('postgresql', gone);
  server = await startServer({ STRONGBOX_UI_DIR: uiDir });
  const direct = new URL(pgUrl(source));
  link = await startThrottleProxy({ host: direct.hostname, port: Number(direct.port || 5432) }, LINK_BYTES_PER_SECOND);
  const throttled = new URL(direct);
  throttled.port = String(link.port);
  mainPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', throttled.toString(), true);
  gonePath = await registerBranch(server, 'default', 'shop', 'postgresql', 'gone', pgUrl(gone));
  // The branch stays registered; its database does not: its next backup fails.
  await dropDatabase('postgresql', gone);
  browser = await launchBrowser();
  page = await browser.context.newPage();
  problems = watchForProblems(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
  await link?.close();
  for (const db of created) await dropDatabase('postgresql', db).catch(() => undefined);
  if (uiDir) fs.rmSync(uiDir, { recursive: true, force: true });
});

test('a wrong token is refused with the server’s message; the right one signs in to the overview', async () => {
  await page.goto(server.url + '/');
  await page.getByLabel('Service token').waitFor();
  await assertLabelled();
  await shot('sign-in');

  const wrong = await api(server, 'POST', '/ui/session', { token: 'tknope:not-the-secret' }, null);
  assert.equal(wrong.status, 401);
  await page.getByLabel('Service token').fill('tknope:not-the-secret');
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.equal((await page.locator('[role=alert] .error-text').textContent())?.trim(), wrong.body.message);

  // By keyboard: the field, then Enter.
  await page.getByLabel('Service token').fill(server.token);
  await page.getByLabel('Service token').press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await page.locator('#overview-table').waitFor();
  assert.match((await page.locator('.token-name').textContent()) ?? '', /server admin/);
  // The secret is nowhere on the page or in its storage; the session lives in an HttpOnly cookie.
  const secret = server.token.split(':')[1];
  assert.ok(!(await page.content()).includes(secret));
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('strongbox_session'), 'the session cookie is HttpOnly');
  const rows = await page.locator('#overview-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-branch')));
  assert.deepEqual(rows.sort(), ['shop/gone', 'shop/main']);
  await assertLabelled();
  await shot('overview-empty');
});

test('a running backup shows a moving progress bar, then its stored copies with their sha256', async () => {
  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'main', 'backups'));
  await page.getByRole('heading', { level: 1, name: 'Backups of shop/main' }).waitFor();
  await assertLabelled();
  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.waitForURL(/#\/databases\/shop\/branches\/main\/backups\/[^/]+$/);
  backupId = decodeURIComponent(page.url().split('/').pop()!);

  // Sample the bar while the dump runs: bytes and the bar's value must grow.
  const samples: Array<{ bytes: number; value: number | null }> = [];
  let shotTaken = false;
  await until(
    'the backup to finish in the page',
    async () => {
      const s = await page.evaluate(() => {
        const bar = document.querySelector<HTMLElement>('.progress');
        const p = bar?.querySelector('progress');
        return bar ? { bytes: Number(bar.dataset.bytes), value: p && p.hasAttribute('value') ? p.value : null } : null;
      });
      if (s) {
        samples.push(s);
        if (!shotTaken && s.bytes > 0) {
          shotTaken = true;
          await shot('backup-running');
        }
      }
      const state = (await page.locator('.facts .badge').first().textContent())?.trim();
      return state?.endsWith('success') || state?.endsWith('failed') ? state : undefined;
    },
    120_000,
    150,
  );
  const api1 = await waitForBackup(server, mainPath, backupId);
  assert.equal(api1.state, 'success');
  const distinctBytes = [...new Set(samples.map((s) => s.bytes).filter((b) => b > 0))];
  assert.ok(distinctBytes.length >= 2, `the bar showed ${distinctBytes.length} different byte counts (${JSON.stringify(samples.slice(-5))}); expected it to move`);
  assert.deepEqual(distinctBytes, [...distinctBytes].sort((a, b) => a - b), 'bytes only grow');
  const values = samples.map((s) => s.value).filter((v): v is number => v !== null);
  if (values.length) assert.ok(Math.max(...values) > Math.min(...values), `the progress bar's value moved (${values.join(', ')})`);

  // The copies as the API lists them, sha256 and all.
  const arts = await api(server, 'GET', `${mainPath}/backups/${backupId}/artifacts`);
  await page.locator('code.hash').first().waitFor();
  const shown = await page.locator('code.hash').allTextContents();
  assert.deepEqual(shown, arts.body.data.map((a: { sha256: string }) => a.sha256));
  await shot('backup-detail');

  // Download: the bytes as stored, whose sha256 is the one shown.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
  const file = await download.path();
  const digest = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  assert.equal(digest, shown[0]);

  // Protect, as a button press (a write: the CSRF header goes with it).
  // exact: a name is otherwise matched as a substring, and "Unprotect" contains "protect".
  await page.getByRole('button', { name: 'Protect', exact: true }).click();
  await page.getByRole('button', { name: 'Unprotect', exact: true }).waitFor();
  assert.equal((await api(server, 'GET', `${mainPath}/backups/${backupId}`)).body.protected, true);
  await page.getByRole('button', { name: 'Unprotect', exact: true }).click();
  await page.getByRole('button', { name: 'Protect', exact: true }).waitFor();
  assert.equal((await api(server, 'GET', `${mainPath}/backups/${backupId}`)).body.protected, false);

  // Verify: the verification appears and ends passed without reloading the page.
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  await page.locator('section[aria-labelledby=verifications-h] tbody tr .badge', { hasText: 'success' }).first().waitFor({ timeout: 60_000 });
});

test('the backup restores into a new branch whose database has every row', async () => {
  await page.getByRole('link', { name: 'Restore…' }).click();
  await page.getByRole('heading', { level: 1, name: 'Restore a backup' }).waitFor();
  // The backup the detail page linked is chosen once the branch's backups have loaded.
  await page.locator(`#r-backup option[value="${backupId}"]`).waitFor({ state: 'attached' });
  assert.equal(await page.getByLabel('Backup', { exact: true }).inputValue(), backupId);
  await assertLabelled();
  const target = uniqueName('ui_restored').replace(/_/g, '-');
  created.push(target);
  await page.getByLabel('New branch name').fill(target);
  await shot('restore-form');
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: `Restore into shop/${target}` }).waitFor();
  await page.locator('.result').waitFor({ timeout: 120_000 });
  await shot('restore-result');
  const text = (await page.locator('.result').textContent()) ?? '';
  assert.match(text, new RegExp(`into database ${target} on`));
  const branch = await api(server, 'GET', `/v1/organizations/default/databases/shop/branches/${target}`);
  assert.equal(branch.body.restore.state, 'success');
  const rows = await withPgClient(pgUrl(branch.body.connection.database), (c) => c.query('SELECT count(*)::int AS n FROM big'));
  assert.equal(rows.rows[0].n, BIG_ROWS);
});

test('a backup of a database that is gone shows why it failed, word for word as the API says', async () => {
  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'gone', 'backups'));
  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.waitForURL(/#\/databases\/shop\/branches\/gone\/backups\/[^/]+$/);
  failedId = decodeURIComponent(page.url().split('/').pop()!);
  const done = await waitForBackup(server, gonePath, failedId);
  assert.equal(done.state, 'failed');
  const progress = await api(server, 'GET', `${gonePath}/backups/${failedId}/progress`);
  const reason: string = progress.body.error;
  assert.ok(reason && reason.length > 0);
  await page
    .locator('.failure .failure-reason')
    .waitFor({ timeout: 30_000 })
    .catch(async (e: unknown) => {
      // Once seen in CI (1 run in many, not reproduced): say what the page showed instead.
      const shown = (await page.locator('body').innerText().catch(() => '(page unreadable)')).slice(0, 2000);
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nthe backup is ${done.state} in the API; the page shows:\n${shown}`);
    });
  assert.equal(await page.locator('.failure .failure-reason').textContent(), reason);
  await shot('backup-failed');

  // The backup and its copies load side by side; a backup that fails between the two answers
  // is read as failed, its copies as still running. Served that way (the server's own answer
  // for the copies, as it was a moment earlier), the page still finds the reason.
  let held = 0;
  await page.route(/\/artifacts$/, async (route) => {
    if (held++ > 0) return route.continue();
    const response = await route.fetch();
    const body = await response.json();
    await route.fulfill({ response, json: { ...body, backup_state: 'running', backup_error: null } });
  });
  // The page is on that backup already: a reload loads it afresh.
  assert.equal(page.url(), server.url + '/' + hashPath('databases', 'shop', 'branches', 'gone', 'backups', failedId));
  await page.reload();
  await page.locator('.failure .failure-reason').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('.failure .failure-reason').textContent(), reason);
  assert.ok(held >= 2, 'the copies were read again');
  await page.unroute(/\/artifacts$/);

  // The list shows it in full too.
  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'gone', 'backups'));
  await page.locator('.reason-row .failure-reason').first().waitFor();
  assert.equal(await page.locator('.reason-row .failure-reason').first().textContent(), reason);
  await shot('backups-list');

  // The overview marks the branch, in words.
  await page.goto(server.url + '/#/');
  const row = page.locator('#overview-table tr[data-branch="shop/gone"]');
  await row.waitFor();
  assert.match((await row.textContent()) ?? '', /Last backup failed/);
  assert.equal(await row.getAttribute('class'), 'attention');
  assert.doesNotMatch((await page.locator('#overview-table tr[data-branch="shop/main"]').textContent()) ?? '', /failed/);
  // shop/main's chart has the backup taken above.
  await page.locator('section[aria-label="History of shop/main"] svg circle').first().waitFor();
  await shot('overview');
});

test('a backup shows its schema diff to the previous backup: the column added in between', async () => {
  const small = uniqueName('ui_schema');
  await createDatabase('postgresql', small);
  created.push(small);
  await withPgClient(pgUrl(small), (c) => c.query('CREATE TABLE orders (id integer PRIMARY KEY, total numeric NOT NULL)'));
  const smallPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'small', pgUrl(small));
  const first = await waitForBackup(server, smallPath, (await api(server, 'POST', `${smallPath}/backups`, {})).body.id);
  assert.equal(first.state, 'success');
  await withPgClient(pgUrl(small), (c) => c.query('ALTER TABLE orders ADD COLUMN gift_note text'));
  const second = await waitForBackup(server, smallPath, (await api(server, 'POST', `${smallPath}/backups`, {})).body.id);
  assert.equal(second.state, 'success');

  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'small', 'backups', second.id));
  const diff = page.locator('pre.diff');
  await diff.waitFor();
  const added = await diff.locator('.diff-add').allTextContents();
  assert.ok(added.some((l) => l.startsWith('+') && l.includes('gift_note')), `added lines: ${added.join('')}`);
  assert.ok(!(await diff.locator('.diff-del').allTextContents()).some((l) => l.includes('gift_note')));
  // The same patch the API gives.
  const patch = await api(server, 'GET', `/v1/organizations/default/databases/shop/schema-snapshots/${first.schema_snapshot.id}/diff/${second.schema_snapshot.id}`);
  assert.equal(await diff.textContent(), patch.body);
  await shot('backup-schema-diff');
});

test('delete asks first: cancel keeps the backup, confirming deletes it', async () => {
  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'gone', 'backups', failedId));
  await page.getByRole('button', { name: 'Delete…' }).click();
  const dialog = page.getByRole('dialog', { name: /Delete backup/ });
  await dialog.waitFor();
  await shot('delete-confirmation');
  // The safe choice has the focus; Escape closes like Cancel.
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Cancel');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal((await api(server, 'GET', `${gonePath}/backups/${failedId}`)).body.deleted_at, null);

  await page.getByRole('button', { name: 'Delete…' }).click();
  await dialog.getByRole('button', { name: 'Delete backup' }).click();
  await page.waitForURL(/#\/databases\/shop\/branches\/gone\/backups$/);
  assert.notEqual((await api(server, 'GET', `${gonePath}/backups/${failedId}`)).body.deleted_at, null);
});

test('on a 360 px phone in dark mode the overview fits the screen', async () => {
  const phone = await browser.context.newPage();
  try {
    await phone.setViewportSize({ width: 360, height: 780 });
    await phone.emulateMedia({ colorScheme: 'dark' });
    await phone.goto(server.url + '/#/');
    await phone.locator('#overview-table').waitFor();
    // The charts load as they scroll into view.
    await phone.locator('section[aria-label="History of shop/main"]').scrollIntoViewIfNeeded();
    await phone.locator('section[aria-label="History of shop/main"] svg').first().waitFor();
    const { pageWidth, bg } = await phone.evaluate(() => ({ pageWidth: document.documentElement.scrollWidth, bg: getComputedStyle(document.body).backgroundColor }));
    assert.ok(pageWidth <= 360, `the page is ${pageWidth} px wide on a 360 px screen`);
    assert.equal(bg, 'rgb(15, 19, 24)', 'dark background in dark mode');
    await shot('overview-phone-dark', phone);
  } finally {
    await phone.close();
  }
});

test('a page whose first request gets no answer says so and loads by itself once the server answers', async () => {
  const other = await browser.context.newPage();
  try {
    // The overview's request: no answer twice (as while the server restarts), then a 503, then through.
    let tries = 0;
    await other.route(/\/v1\/organizations\/[^/]+\/overview$/, async (route) => {
      tries++;
      if (tries <= 2) return route.abort('connectionrefused');
      if (tries === 3) return route.fulfill({ status: 503, contentType: 'application/json', json: { code: 'unavailable', message: 'The server is starting.' } });
      return route.continue();
    });
    await other.goto(server.url + '/#/');
    const alert = other.locator('[role=alert] .error-text');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /^Could not reach the Strongbox server .* Trying again in 1 s\.$/);
    await other.locator('[role=alert] .error-text', { hasText: 'The server is starting. Trying again in 4 s.' }).waitFor({ timeout: 10_000 });
    // No click, no reload: the table comes once the server answers, and the error goes.
    await other.locator('#overview-table').waitFor({ timeout: 15_000 });
    assert.equal(tries, 4);
    assert.equal(await other.locator('[role=alert]').count(), 0);
  } finally {
    await other.close();
  }
});

test('sign out ends the session on the server', async () => {
  const cookie = (await browser.context.cookies(server.url)).find((c) => c.name === 'strongbox_session');
  assert.ok(cookie, 'signed in with a session cookie');
  assert.equal(cookie.httpOnly, true);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Service token').waitFor();
  const after = await api(server, 'GET', '/ui/session', undefined, null, { cookie: `strongbox_session=${cookie.value}` });
  assert.equal(after.status, 401);
  assert.deepEqual(problems, []);
});
