/**
 * Point-in-time recovery in the dashboard, in a real browser against a real server and a
 * private PostgreSQL with replication: switch archiving on from the branch page and see it
 * streaming; see the API's precondition errors in full for a server that refuses replication
 * (the machine's shared one); see the recovery window on the overview; restore to a UTC time
 * between two commits from the restore page and find exactly the rows committed up to it in
 * the new database; lose an archived segment and see the gap in red with the segment named.
 * Screenshots under test-results/ (pitr-*.png).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { buildUi } from '../../ui/build.mjs';
import { createDatabase, dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { startArchivableShop, shopUrl, type PrivateServer } from '../helpers/private-servers.js';
import { ArchiveManager } from '../../src/archive/manager.js';
import { pitrScratchRoot } from '../../src/archive/postgres/server.js';
import { assertLabelled, launchBrowser, screenshot, watchForProblems, type TestBrowser } from './browser.js';

let server: TestServer;
let pgs: PrivateServer;
let manager: ArchiveManager;
let shop: pg.Client;
let browser: TestBrowser;
let page: Page;
let uiDir: string;
let problems: string[] = [];
let mainPath: string;
let sharedPath: string;
const shared = uniqueName('ui_pitr_shared');
/** The UTC second restored to: after row 1's commit, before row 2's. */
let restorePoint = '';

const hashPath = (...parts: string[]) => '#/' + parts.map(encodeURIComponent).join('/');

/** Complete the current WAL segment and wait until the receiver stored it; its name. */
async function switchAndWait(): Promise<string> {
  const seg = (await shop.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0].f;
  await shop.query('SELECT pg_switch_wal()');
  await until(`segment ${seg} archived`, async () => server.ctx.db.selectFrom('archive_files').select('id').where('name', '=', seg).where('state', '=', 'success').executeTakeFirst(), 60_000);
  return seg;
}

async function ids(database: string): Promise<number[]> {
  const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${pgs.port}/${database}` });
  await c.connect();
  try {
    return (await c.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
}

before(async () => {
  uiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-'));
  await buildUi({ outDir: uiDir, quiet: true });
  server = await startServer({ STRONGBOX_UI_DIR: uiDir });
  ({ server: pgs, shop } = await startArchivableShop([
    'CREATE TABLE items (id integer PRIMARY KEY, v text)',
    `INSERT INTO items VALUES (0, 'before the base backup')`,
  ]));
  mainPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', shopUrl(pgs), true);
  await createDatabase('postgresql', shared);
  sharedPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'shared', pgUrl(shared));
  manager = new ArchiveManager(server.ctx, { intervalMs: 200, retryDelaysMs: [300] });
  manager.start();
  browser = await launchBrowser();
  page = await browser.context.newPage();
  problems = watchForProblems(page);
  await page.goto(server.url + '/');
  await page.getByLabel('Service token').fill(server.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#overview-table').waitFor();
});

after(async () => {
  await browser?.close();
  if (server) fs.rmSync(pitrScratchRoot(server.ctx), { recursive: true, force: true });
  await manager?.stop();
  await shop?.end().catch(() => {});
  await server?.close();
  await pgs?.stop();
  await dropDatabase('postgresql', shared).catch(() => undefined);
  if (uiDir) fs.rmSync(uiDir, { recursive: true, force: true });
});

test('archiving switched on from the branch page streams; a server without replication shows every problem', async () => {
  // The shared server refuses replication: the page shows the API's 422 in full.
  const refused = await api(server, 'PATCH', sharedPath, { archiving: true });
  assert.equal(refused.status, 422, JSON.stringify(refused.body));
  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'shared', 'backups'));
  const sharedPanel = page.locator('.archiving-panel');
  await sharedPanel.getByRole('button', { name: 'Switch archiving on' }).click();
  await sharedPanel.locator('[role=alert] .error-text').waitFor();
  assert.equal((await sharedPanel.locator('[role=alert] .error-text').textContent())?.trim(), refused.body.message);
  assert.equal(await sharedPanel.locator('[data-archive-state]').getAttribute('data-archive-state'), 'off');
  await screenshot(page, 'pitr-archiving-refused');

  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'main', 'backups'));
  const panel = page.locator('.archiving-panel');
  await panel.getByRole('heading', { name: 'Point-in-time recovery' }).waitFor();
  assert.equal(await panel.locator('[data-archive-state]').getAttribute('data-archive-state'), 'off');
  await assertLabelled(page);
  await panel.getByRole('button', { name: 'Switch archiving on' }).click();
  // The page polls while the receiver starts: "streaming" shows up by itself.
  await panel.locator('[data-archive-state=streaming]').waitFor({ timeout: 60_000 });
  assert.equal((await api(server, 'GET', mainPath)).body.archive.state, 'streaming');
  await panel.getByRole('button', { name: 'Switch archiving off' }).waitFor();
  await screenshot(page, 'pitr-archiving-streaming');
});

test('the overview shows the recovery window; the restore page restores to a UTC time between two commits', async () => {
  const started = await api(server, 'POST', `${mainPath}/backups`, {});
  assert.equal((await waitForBackup(server, mainPath, started.body.id, 120_000)).state, 'success');
  await sleep(1100);
  await shop.query(`INSERT INTO items VALUES (1, 'one')`);
  // The next whole second after row 1's commit (an upper bound read after it), then row 2 after it.
  const afterOne = (await shop.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0].t.getTime();
  const point = Math.ceil((afterOne + 1) / 1000) * 1000;
  restorePoint = new Date(point).toISOString();
  await sleep(point - Date.now() + 600);
  await shop.query(`INSERT INTO items VALUES (2, 'two')`);
  await switchAndWait();

  await page.goto(server.url + '/');
  const row = page.locator('#overview-table tr[data-branch="shop/main"]');
  await row.locator('[data-archive-state=streaming]').waitFor();
  await row.locator('[data-latest]').waitFor();
  const window = (await api(server, 'GET', `${mainPath}/recovery-window`)).body;
  assert.equal(await row.locator('[data-latest]').getAttribute('data-latest'), window.latest);
  assert.equal(await row.locator('[data-earliest]').getAttribute('data-earliest'), window.earliest);
  assert.equal(await page.locator('#overview-table tr[data-branch="shop/shared"] [data-archive-state]').getAttribute('data-archive-state'), 'off');
  await screenshot(page, 'pitr-overview');

  await page.goto(server.url + '/' + '#/restore?database=shop&branch=main');
  await page.getByRole('heading', { level: 1, name: 'Restore a backup' }).waitFor();
  await page.getByLabel('The branch at a point in time (continuous archiving)').check();
  await page.locator('.point-in-time [data-latest]').waitFor();
  await page.getByLabel('At a time').check();
  // The input reads UTC, to the second.
  await page.getByLabel('Time (UTC)').fill(restorePoint.slice(0, 19));
  await page.getByLabel('New branch name').fill('at_one');
  assert.match((await page.locator('#r-when-hint').textContent()) ?? '', new RegExp(`Restores to ${restorePoint.slice(0, 10)} ${restorePoint.slice(11, 19)} UTC`));
  await assertLabelled(page);
  await screenshot(page, 'pitr-restore-form');
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  await page.waitForURL(/watch=at_one/);
  // Its phase shows while it runs (fetching, replaying, copying out), if the page catches it.
  const phases = new Set<string>();
  await until(
    'the restore to succeed in the page',
    async () => {
      const phase = await page.locator('[data-phase]').textContent({ timeout: 50 }).catch(() => null);
      if (phase) phases.add(phase.trim());
      const state = (await page.locator('#restore-h .badge').textContent().catch(() => ''))?.trim() ?? '';
      return state.endsWith('success') || state.endsWith('failed') ? state : undefined;
    },
    180_000,
    100,
  );
  const b = (await api(server, 'GET', '/v1/organizations/default/databases/shop/branches/at_one')).body;
  assert.equal(b.restore.state, 'success', JSON.stringify(b.restore));
  assert.equal(b.restore.restore_point, restorePoint);
  assert.match((await page.locator('.result').textContent()) ?? '', /into database at_one/);
  assert.match((await page.locator('.card').first().textContent()) ?? '', new RegExp(`Point in time: ${restorePoint.slice(0, 10)} ${restorePoint.slice(11, 19)} UTC`));
  await screenshot(page, 'pitr-restore-done');
  assert.deepEqual(await ids('at_one'), [0, 1]);
  for (const p of phases) assert.match(p, /fetching|replaying|copying/, `phase "${p}"`);
});

test('a lost archived segment shows as a gap in red, naming the segment', async () => {
  await shop.query(`INSERT INTO items VALUES (3, 'three')`);
  const lost = await switchAndWait();
  await shop.query(`INSERT INTO items VALUES (4, 'four')`);
  await switchAndWait();
  const file = await server.ctx.db.selectFrom('archive_files').selectAll().where('name', '=', lost).executeTakeFirstOrThrow();
  const copies = await server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).execute();
  for (const c of copies) fs.rmSync(path.join(server.dataDir, 'backups', c.path), { force: true });
  await server.ctx.db.updateTable('archive_files').set({ state: 'deleted', deleted_at: new Date().toISOString() }).where('id', '=', file.id).execute();

  await page.goto(server.url + '/' + hashPath('databases', 'shop', 'branches', 'main', 'backups'));
  const gap = page.locator('.archiving-panel .gap');
  await gap.waitFor();
  assert.ok(((await gap.textContent()) ?? '').includes(lost), await gap.textContent() ?? '');
  const [color, danger] = await gap.evaluate((el) => [getComputedStyle(el).color, getComputedStyle(document.documentElement).getPropertyValue('--danger').trim()]);
  const rgb = (hex: string) => `rgb(${parseInt(hex.slice(1, 3), 16)}, ${parseInt(hex.slice(3, 5), 16)}, ${parseInt(hex.slice(5, 7), 16)})`;
  assert.equal(color, rgb(danger), 'the gap is in the danger color');
  await screenshot(page, 'pitr-gap');
  assert.deepEqual(problems, []);
});
