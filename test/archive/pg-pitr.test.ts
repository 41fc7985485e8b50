/**
 * PostgreSQL point-in-time recovery, end to end, through Strongbox's own archive: a private
 * PostgreSQL with replication, a branch switched to archiving (the ArchiveManager runs its
 * WAL receiver), a base backup, rows committed in seconds of their own, and restores:
 * - to a time between two commits → exactly the rows committed up to it, in a new database;
 * - to "latest" → every row archived;
 * - into target_data_dir → a data directory a plain postgres starts on, with the rows up to
 *   the time;
 * - with an archived segment gone → the recovery window shows the gap, and a restore to a
 *   time after it (or to latest) is refused with 409 naming the segment;
 * and after each, no temporary server and no scratch folder is left.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { freePort, postgresBinDir, startArchivableShop, shopUrl, type PrivateServer } from '../helpers/private-servers.js';
import { processesMentioning } from '../helpers/processes.js';
import { ArchiveManager } from '../../src/archive/manager.js';
import { segmentOfLsn } from '../../src/archive/postgres/wal.js';
import { ensureScratchRoot, pitrScratchRoot, sweepPitrScratch } from '../../src/archive/postgres/server.js';

let server: TestServer;
let pgs: PrivateServer;
let manager: ArchiveManager;
let shop: pg.Client;
const dbPath = '/v1/organizations/default/databases/shop';
let branchPath: string;
const isRoot = process.getuid?.() === 0;

/** Commit times (ISO, from the server's clock) of the rows written after the base backup, by id. */
const committed = new Map<number, string>();

async function insertRow(id: number): Promise<void> {
  await shop.query('INSERT INTO items VALUES ($1, $2)', [id, `row ${id}`]);
  // The commit's own time: each INSERT is its own transaction, now() is its start, and the
  // commit is right after; clock_timestamp() read afterwards is a safe upper bound.
  committed.set(id, (await shop.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0].t.toISOString());
}

/** Complete the server's current WAL segment and wait until the receiver stored it. */
async function switchAndWait(): Promise<string> {
  const seg = (await shop.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0].f;
  await shop.query('SELECT pg_switch_wal()');
  await until(`segment ${seg} archived`, async () => {
    const row = await server.ctx.db.selectFrom('archive_files').select('name').where('name', '=', seg).where('state', '=', 'success').executeTakeFirst();
    return row ? true : undefined;
  }, 60_000);
  return seg;
}

async function withPg<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgs.url });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

async function idsIn(database: string): Promise<number[]> {
  const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${pgs.port}/${database}` });
  await c.connect();
  try {
    return (await c.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
}

async function restoreTo(name: string, body: Record<string, unknown>): Promise<any> {
  const r = await api(server, 'POST', `${dbPath}/branches`, { name, parent_branch: 'main', ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForRestore(server, dbPath, name, 120_000);
  assert.equal(b.restore?.state, 'success', JSON.stringify(b.restore));
  return b;
}

/** Nothing of a point-in-time restore is left: no scratch folder, no temporary server. */
function assertNothingLeft(): void {
  const root = pitrScratchRoot(server.ctx);
  assert.deepEqual(fs.existsSync(root) ? fs.readdirSync(root) : [], [], 'scratch folders left');
  assert.deepEqual(processesMentioning(root).map((p) => p.argv.join(" ")), [], 'temporary servers left');
}

/** Between two commits: half way, so that clock granularity cannot blur it. */
function between(a: number, b: number): string {
  return new Date((Date.parse(committed.get(a)!) + Date.parse(committed.get(b)!)) / 2).toISOString();
}

before(async () => {
  server = await startServer();
  ({ server: pgs, shop } = await startArchivableShop([
    'CREATE TABLE items (id integer PRIMARY KEY, v text)',
    `INSERT INTO items VALUES (0, 'before the base backup')`,
  ]));
  branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', shopUrl(pgs));
  const on = await api(server, 'PATCH', branchPath, { archiving: true });
  assert.equal(on.status, 200, JSON.stringify(on.body));
  manager = new ArchiveManager(server.ctx, { intervalMs: 200, retryDelaysMs: [300] });
  manager.start();
  await until('the WAL receiver streaming', async () => {
    const b = await api(server, 'GET', branchPath);
    return b.body.archive?.state === 'streaming' ? true : undefined;
  }, 60_000);
});

after(async () => {
  if (server) fs.rmSync(pitrScratchRoot(server.ctx), { recursive: true, force: true });
  await manager?.stop();
  await shop?.end().catch(() => {});
  await server?.close();
  await pgs?.stop();
});

test('restore to a time between two commits, to latest, and into a data directory', async () => {
  const started = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const base = await waitForBackup(server, branchPath, started.body.id, 120_000);
  const why = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', base.id).executeTakeFirst();
  assert.equal(base.state, 'success', why?.error ?? JSON.stringify(base));
  const row = await server.ctx.db.selectFrom('backups').select(['method', 'recovery_start']).where('id', '=', base.id).executeTakeFirstOrThrow();
  assert.equal(row.method, 'base');

  for (const id of [1, 2, 3]) {
    await sleep(1100);
    await insertRow(id);
  }
  await switchAndWait();

  const window = (await api(server, 'GET', `${branchPath}/recovery-window`)).body;
  assert.ok(window.earliest && window.latest, JSON.stringify(window));
  assert.deepEqual(window.gaps, []);
  assert.ok(Date.parse(window.earliest) <= Date.parse(committed.get(1)!), `earliest ${window.earliest} is after the first commit`);
  assert.ok(Date.parse(window.latest) >= Date.parse(committed.get(3)!) - 1000, `latest ${window.latest} is before the last commit ${committed.get(3)}`);

  await restoreTo('at_one', { restore_point: between(1, 2) });
  assert.deepEqual(await idsIn('at_one'), [0, 1]);
  assertNothingLeft();

  await restoreTo('at_latest', { restore_point: 'latest' });
  assert.deepEqual(await idsIn('at_latest'), [0, 1, 2, 3]);
  assertNothingLeft();

  // The base backup by itself: replayed to its own end only.
  const own = await api(server, 'POST', `${dbPath}/branches`, { name: 'base_only', backup_id: base.id });
  assert.equal(own.status, 201, JSON.stringify(own.body));
  assert.equal((await waitForRestore(server, dbPath, 'base_only', 120_000)).restore?.state, 'success');
  assert.deepEqual(await idsIn('base_only'), [0]);

  // The Yandex view's time, for an archived cluster.
  const yx = await api(server, 'POST', '/managed-postgresql/v1/clusters:restore', { backupId: base.id, name: 'yx_at_two', time: between(2, 3), environment: 'PRODUCTION' }, `Bearer ${server.token}`);
  assert.equal(yx.status, 200, JSON.stringify(yx.body));
  const yxBranch = await waitForRestore(server, dbPath, 'yx_at_two', 120_000);
  assert.equal(yxBranch.restore?.state, 'success', JSON.stringify(yxBranch.restore));
  assert.equal(yxBranch.restore?.restore_point, between(2, 3));
  assert.deepEqual(await idsIn('yx_at_two'), [0, 1, 2]);
  assertNothingLeft();

  // Disaster recovery: the cluster itself, at a time between the 2nd and 3rd commit.
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-pitr-dd-')), 'recovered');
  fs.chmodSync(path.dirname(dir), 0o711); // the postgres user starts a server on it below
  try {
    await restoreTo('at_two_dir', { restore_point: between(2, 3), target_data_dir: dir });
    assert.ok(fs.existsSync(path.join(dir, 'PG_VERSION')));
    assert.ok(!fs.existsSync(path.join(dir, 'recovery.signal')), 'the recovered directory was promoted');
    assert.deepEqual(await idsOnDataDir(dir), [0, 1, 2]);
    assertNothingLeft();
  } finally {
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }

  // Refusals before anything starts.
  const before = await api(server, 'POST', `${dbPath}/branches`, { name: 'too_early', parent_branch: 'main', restore_point: '2001-01-01T00:00:00Z' });
  assert.equal(before.status, 409, JSON.stringify(before.body));
  assert.match(before.body.message, /before the earliest restorable time/);
  const future = await api(server, 'POST', `${dbPath}/branches`, { name: 'too_late', parent_branch: 'main', restore_point: new Date(Date.now() + 3_600_000).toISOString() });
  assert.equal(future.status, 409, JSON.stringify(future.body));
  const bad = await api(server, 'POST', `${dbPath}/branches`, { name: 'bad_time', parent_branch: 'main', restore_point: '2024-05-01 10:00' });
  assert.equal(bad.status, 422, JSON.stringify(bad.body));
  const noParent = await api(server, 'POST', `${dbPath}/branches`, { name: 'no_parent', restore_point: 'latest' });
  assert.equal(noParent.status, 422, JSON.stringify(noParent.body));
});

test('a missing archived segment: the window shows the gap, a restore past it is refused naming it', async () => {
  await sleep(1100);
  await insertRow(4);
  await switchAndWait();
  await sleep(1100);
  await insertRow(5);
  const lost = await switchAndWait();
  await sleep(1100);
  await insertRow(6);
  await switchAndWait();

  // As if its every copy were lost: gone from storage and from the catalog.
  const file = await server.ctx.db.selectFrom('archive_files').selectAll().where('name', '=', lost).executeTakeFirstOrThrow();
  const copies = await server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).execute();
  for (const c of copies) fs.rmSync(path.join(server.dataDir, 'backups', c.path), { force: true });
  await server.ctx.db.updateTable('archive_files').set({ state: 'deleted', deleted_at: new Date().toISOString() }).where('id', '=', file.id).execute();

  const window = (await api(server, 'GET', `${branchPath}/recovery-window`)).body;
  assert.equal(window.gaps.length, 1, JSON.stringify(window));
  assert.deepEqual(window.gaps[0].missing, [lost]);
  assert.equal(window.gaps[0].before, null);
  assert.ok(Date.parse(window.latest) < Date.parse(committed.get(5)!), `latest ${window.latest} should be before the gap`);

  for (const point of [between(5, 6), 'latest']) {
    const r = await api(server, 'POST', `${dbPath}/branches`, { name: 'across_gap', parent_branch: 'main', restore_point: point });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.ok(r.body.message.includes(lost), r.body.message);
  }
  const baseId = (await server.ctx.db.selectFrom('backups').select('id').where('method', '=', 'base').where('state', '=', 'success').executeTakeFirstOrThrow()).id;
  const yx = await api(server, 'POST', '/managed-postgresql/v1/clusters:restore', { backupId: baseId, name: 'yx_across_gap', time: between(5, 6) }, `Bearer ${server.token}`);
  assert.equal(yx.status, 409, JSON.stringify(yx.body));
  assert.equal(yx.body.code, 9, 'FAILED_PRECONDITION');
  assert.ok(yx.body.message.includes(lost), yx.body.message);
  // Before the gap still restores.
  await restoreTo('before_gap', { restore_point: between(3, 4) });
  assert.deepEqual(await idsIn('before_gap'), [0, 1, 2, 3]);
  assertNothingLeft();

  // A segment whose only copy is damaged: the catalog still lists it, so the request is
  // taken, and the restore fails naming the segment, with nothing left behind.
  // The segment where the base backup starts: every replay from it needs it.
  const start = JSON.parse((await server.ctx.db.selectFrom('backups').select('recovery_start').where('method', '=', 'base').where('state', '=', 'success').executeTakeFirstOrThrow()).recovery_start!);
  const needed = await server.ctx.db.selectFrom('archive_files').selectAll().where('name', '=', segmentOfLsn(start.timeline, start.lsn)).executeTakeFirstOrThrow();
  const copy = await server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', needed.id).executeTakeFirstOrThrow();
  const stored = path.join(server.dataDir, 'backups', copy.path);
  const bytes = fs.readFileSync(stored);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(stored, bytes);
  const r = await api(server, 'POST', `${dbPath}/branches`, { name: 'damaged', parent_branch: 'main', restore_point: between(3, 4) });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const failed = await waitForRestore(server, dbPath, 'damaged', 120_000);
  assert.equal(failed.restore?.state, 'failed');
  assert.match(failed.restore.error, new RegExp(`WAL segment "${needed.name}" could not be read back from any copy`));
  const exists = await withPg((c) => c.query(`SELECT 1 FROM pg_database WHERE datname = 'damaged'`));
  assert.equal(exists.rowCount, 0, 'the database the restore made was dropped');
  assertNothingLeft();
});

test('the scratch folder and server of a restore whose process died are swept', async () => {
  // What a kill -9 leaves: a scratch folder named after a job that no longer runs, with a
  // postgres running on its data directory. Made while the job runner is stopped (it sweeps
  // on every pass), then found by the runner's start, as after a restart.
  await server.runner.stop();
  const dir = path.join(ensureScratchRoot(server.ctx), 'deadjob00001');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  if (isRoot) spawnSync('chown', ['-R', 'postgres:postgres', dir]);
  const bin = postgresBinDir();
  const asPg = (cmd: string, args: string[]) => (isRoot ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' }));
  assert.equal(asPg(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']).status, 0);
  const port = await freePort();
  const started = asPg(`${bin}/pg_ctl`, ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=`, 'start']);
  assert.equal(started.status, 0, started.stderr);
  assert.ok(processesMentioning(data).length > 0);
  await server.runner.start();
  await until('the leftover folder removed', async () => (fs.existsSync(dir) ? undefined : true), 30_000);
  assert.deepEqual(processesMentioning(data), [], 'the leftover server was stopped');
  assert.equal(await sweepPitrScratch(server.ctx), 0, 'nothing left to sweep');
});

/** Start a plain postgres on a recovered data directory and read the rows of shop.items. */
async function idsOnDataDir(dir: string): Promise<number[]> {
  const bin = postgresBinDir();
  const sock = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-pitr-sock-'));
  if (isRoot) spawnSync('chown', ['postgres:postgres', sock]);
  const port = await freePort();
  const asPg = (args: string[]) => (isRoot ? spawnSync('runuser', ['-u', 'postgres', '--', `${bin}/pg_ctl`, ...args], { encoding: 'utf8' }) : spawnSync(`${bin}/pg_ctl`, args, { encoding: 'utf8' }));
  const started = asPg(['-D', dir, '-l', path.join(sock, 'log'), '-w', '-t', '60', '-o', `-p ${port} -k ${sock} -c listen_addresses=`, 'start']);
  try {
    assert.equal(started.status, 0, `${started.stderr}\n${fs.existsSync(path.join(sock, 'log')) ? fs.readFileSync(path.join(sock, 'log'), 'utf8') : ''}`);
    const c = new pg.Client({ host: sock, port, user: 'postgres', database: 'shop' });
    await c.connect();
    try {
      return (await c.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
    } finally {
      await c.end();
    }
  } finally {
    asPg(['-D', dir, '-m', 'immediate', 'stop']);
    fs.rmSync(sock, { recursive: true, force: true });
  }
}
