/**
 * The CLI's point-in-time recovery commands against a real server and a private PostgreSQL
 * with replication: `strongbox branch archiving ... on|status`, `strongbox branch
 * recovery-window`, and `strongbox restore --from BRANCH --restore-point TIME|latest --wait`,
 * with the rows of the restored databases checked; plus the usage errors of a restore with
 * neither --backup nor --restore-point, and the API's 409 for a time the archive cannot reach.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from './helpers/server.js';
import { startArchivableShop, shopUrl, type PrivateServer } from './helpers/private-servers.js';
import { ArchiveManager } from '../src/archive/manager.js';
import { pitrScratchRoot } from '../src/archive/postgres/server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const main = path.join(root, 'src/main.ts');

let server: TestServer;
let pgs: PrivateServer;
let manager: ArchiveManager;
let shop: pg.Client;
let branchPath: string;

/** Run the CLI (a child process; async, so the in-process server answers meanwhile). */
async function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, STRONGBOX_URL: server.url, STRONGBOX_TOKEN: server.token };
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  return { status, stdout, stderr };
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

/** Commit a row; its commit time (an upper bound, from the server's clock). */
async function insert(id: number): Promise<string> {
  await shop.query('INSERT INTO items VALUES ($1)', [id]);
  return (await shop.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0].t.toISOString();
}

before(async () => {
  server = await startServer();
  ({ server: pgs, shop } = await startArchivableShop([
    'CREATE TABLE items (id integer PRIMARY KEY)',
    'INSERT INTO items VALUES (0)',
  ]));
  branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', shopUrl(pgs));
  manager = new ArchiveManager(server.ctx, { intervalMs: 200, retryDelaysMs: [300] });
  manager.start();
});

after(async () => {
  if (server) fs.rmSync(pitrScratchRoot(server.ctx), { recursive: true, force: true });
  await manager?.stop();
  await shop?.end().catch(() => {});
  await server?.close();
  await pgs?.stop();
});

test('archiving on, the recovery window and restores to a time and to latest, from the CLI', async () => {
  const empty = await cli(['branch', 'recovery-window', 'default/shop/main']);
  assert.equal(empty.status, 0, empty.stderr);
  assert.match(empty.stdout, /nothing restorable to a point in time/);

  const on = await cli(['branch', 'archiving', 'default/shop/main', 'on']);
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stdout, /archiving on/);
  await until('streaming', async () => ((await cli(['branch', 'archiving', 'default/shop/main', 'status'])).stdout.includes('on, streaming') ? true : undefined), 60_000, 500);

  const started = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal((await waitForBackup(server, branchPath, started.body.id, 120_000)).state, 'success');
  await sleep(1100);
  const one = await insert(1);
  await sleep(1100);
  const two = await insert(2);
  const seg = (await shop.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0].f;
  await shop.query('SELECT pg_switch_wal()');
  await until('the segment archived', async () => server.ctx.db.selectFrom('archive_files').select('id').where('name', '=', seg).executeTakeFirst(), 60_000);

  const window = await cli(['branch', 'recovery-window', 'default/shop/main']);
  assert.equal(window.status, 0, window.stderr);
  const m = /restorable from (\S+) to (\S+)/.exec(window.stdout);
  assert.ok(m, window.stdout);
  assert.ok(Date.parse(m[2]) >= Date.parse(two) - 1000, window.stdout);
  const json = JSON.parse((await cli(['branch', 'recovery-window', 'default/shop/main', '--json'])).stdout);
  assert.deepEqual(json.gaps, []);

  const between = new Date((Date.parse(one) + Date.parse(two)) / 2).toISOString();
  const at = await cli(['restore', 'default/shop/at_one', '--from', 'main', '--restore-point', between, '--wait']);
  assert.equal(at.status, 0, at.stderr + at.stdout);
  assert.match(at.stdout, new RegExp(`restoring main at ${between.replace(/[.]/g, '\\.')}`));
  assert.match(at.stdout, /restore succeeded: branch at_one/);
  assert.deepEqual(await ids('at_one'), [0, 1]);

  const latest = await cli(['restore', 'default/shop/now_copy', '--from', 'main', '--restore-point', 'latest', '--wait']);
  assert.equal(latest.status, 0, latest.stderr + latest.stdout);
  assert.deepEqual(await ids('now_copy'), [0, 1, 2]);
});

test('usage errors, and a time the archive cannot reach refused with the server’s reason', async () => {
  const neither = await cli(['restore', 'default/shop/x']);
  assert.equal(neither.status, 2, neither.stderr);
  assert.match(neither.stderr, /--backup ID \(or --restore-point TIME\|latest with --from BRANCH\)/);
  const fromOnly = await cli(['restore', 'default/shop/x', '--backup', 'abc', '--from', 'main']);
  assert.equal(fromOnly.status, 2);
  assert.match(fromOnly.stderr, /--from only applies with --restore-point/);
  const bad = await cli(['restore', 'default/shop/x', '--from', 'main', '--restore-point', 'yesterday']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--restore-point must be "latest" or a time with its time zone/);
  const future = await cli(['restore', 'default/shop/x', '--from', 'main', '--restore-point', new Date(Date.now() + 3_600_000).toISOString()]);
  assert.notEqual(future.status, 0);
  assert.match(future.stderr, /cannot restore to .*the archive reaches/);
  const help = await cli(['restore', '--help']);
  assert.match(help.stdout, /--restore-point TIME\|latest/);
  assert.match(help.stdout, /--from BRANCH/);
});
