/**
 * Restore drills of an archived PostgreSQL branch (a private server with replication, its
 * WAL archived by the ArchiveManager): the drill a policy schedules restores the branch to
 * "latest" from its base backup into a scratch database and compares the copy with the
 * source while a writer keeps changing one table of it:
 * - the table nobody writes is compared and matches; the busy one is named as changed during
 *   the drill, not compared (no false alarm); the scratch database is gone afterwards;
 * - with an archived WAL segment lost, the drill fails naming the segment, and the failure
 *   becomes one verification.failed event, as other drills' failures do;
 * - the same drill of an archived MariaDB branch (a private server with log_bin): its dump and
 *   binlogs replayed to latest, compared the same way.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import mysql2 from 'mysql2/promise';
import { startPrivateMariadb, startArchivableShop, shopUrl, type PrivateServer } from '../helpers/private-servers.js';
import { ArchiveManager } from '../../src/archive/manager.js';
import { pitrScratchRoot } from '../../src/archive/postgres/server.js';
import { runDrills } from '../../src/jobs/drills.js';

let server: TestServer;
let pgs: PrivateServer;
let maria: PrivateServer | null = null;
let manager: ArchiveManager;
let shop: pg.Client;
const dbPath = '/v1/organizations/default/databases/shop';
let branchPath: string;
let policyId: string;

/** Insert into `busy` every 50 ms until stopped: the source keeps changing during a drill. */
function startWriter(): () => Promise<number> {
  let stop = false;
  let n = 0;
  const writer = new pg.Client({ connectionString: shopUrl(pgs) });
  const done = (async () => {
    await writer.connect();
    while (!stop) {
      await writer.query('INSERT INTO busy (v) VALUES ($1)', [`row ${++n}`]);
      await new Promise((r) => setTimeout(r, 50));
    }
    await writer.end();
  })();
  return async () => {
    stop = true;
    await done;
    return n;
  };
}

async function databases(): Promise<string[]> {
  return (await shop.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY 1')).rows.map((r) => r.datname);
}

/** Run a drill pass and wait for the drill it queued to end. */
async function drill(): Promise<any> {
  const pass = await runDrills(server.ctx);
  assert.equal(pass.drills.length, 1, `one drill queued: ${JSON.stringify(pass)}`);
  const id = pass.drills[0];
  return until(
    'the drill to end',
    async () => {
      const j = await server.ctx.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return j.state === 'success' || j.state === 'failed' ? j : undefined;
    },
    180_000,
    200,
  );
}

before(async () => {
  server = await startServer();
  ({ server: pgs, shop } = await startArchivableShop([
    'CREATE TABLE stable (id integer PRIMARY KEY, v text)',
    `INSERT INTO stable SELECT g, md5(g::text) FROM generate_series(1, 500) g`,
    'CREATE TABLE busy (id serial PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())',
  ]));
  branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', shopUrl(pgs));
  const on = await api(server, 'PATCH', branchPath, { archiving: true });
  assert.equal(on.status, 200, JSON.stringify(on.body));
  manager = new ArchiveManager(server.ctx, { intervalMs: 200, retryDelaysMs: [300] });
  manager.start();
  await until('the WAL receiver streaming', async () => ((await api(server, 'GET', branchPath)).body.archive?.state === 'streaming' ? true : undefined), 60_000);
  // The development policy covers the branch: one full verification a day.
  const policies = await api(server, 'GET', `${dbPath}/backup-policies`);
  policyId = policies.body.data.find((p: any) => p.target === 'development').id;
  const set = await api(server, 'PATCH', `${dbPath}/backup-policies/${policyId}`, { verification_frequency_value: 1, verification_frequency_unit: 'day' });
  assert.equal(set.status, 200, JSON.stringify(set.body));
});

after(async () => {
  if (server) fs.rmSync(pitrScratchRoot(server.ctx), { recursive: true, force: true });
  await manager?.stop();
  await shop?.end().catch(() => {});
  await server?.close();
  await pgs?.stop();
  await maria?.stop();
});

test('a drill of an archived branch restores to latest and compares what did not change while it ran', async () => {
  const started = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const base = await waitForBackup(server, branchPath, started.body.id, 120_000);
  assert.equal(base.state, 'success', JSON.stringify(base));
  assert.equal((await server.ctx.db.selectFrom('backups').select('method').where('id', '=', base.id).executeTakeFirstOrThrow()).method, 'base');

  const stopWriter = startWriter();
  let job;
  try {
    job = await drill();
  } finally {
    const written = await stopWriter();
    assert.ok(written > 10, `the writer wrote ${written} rows during the drill`);
  }
  const params = JSON.parse(job.params);
  assert.equal(params.restore_point, 'latest');
  assert.equal(job.state, 'success', job.error ?? '');
  const result = JSON.parse(job.result);
  const r = result.restore;
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.restore_point, 'latest');
  assert.ok(r.restored_to, 'the time the copy reaches');
  assert.ok(r.compared > 0, JSON.stringify(r));
  assert.equal(r.differences_total, 0);
  assert.ok(r.changed_on_source.some((n: string) => /busy/.test(n)), `busy changed during the drill: ${JSON.stringify(r.changed_on_source)}`);
  assert.ok(!r.changed_on_source.some((n: string) => /stable/.test(n)), 'stable did not');
  assert.match(r.note, /changed on the source while the drill ran and were not compared/);
  // The scratch database and the replay's folder are gone.
  assert.ok(!(await databases()).includes(r.database), `${r.database} was dropped`);
  const root = pitrScratchRoot(server.ctx);
  assert.deepEqual(fs.existsSync(root) ? fs.readdirSync(root) : [], []);
  // A full verification asked for the base backup alone replays to its own end and reads the copy.
  const asked = await api(server, 'POST', `${branchPath}/backups/${base.id}/verify`, { restore: true });
  assert.equal(asked.status, 202, JSON.stringify(asked.body));
  const alone = await until('the verification to end', async () => {
    const j = await server.ctx.db.selectFrom('jobs').selectAll().where('id', '=', asked.body.id).executeTakeFirstOrThrow();
    return j.state === 'success' || j.state === 'failed' ? j : undefined;
  }, 120_000, 200);
  assert.equal(alone.state, 'success', alone.error ?? '');
  const check = JSON.parse(alone.result ?? 'null').restore;
  assert.equal(check.restore_point, 'backup-end');
  assert.ok(check.tables >= 2, JSON.stringify(check));
  assert.match(check.note, /records no contents/);
});

test('a lost WAL segment fails the drill, naming it, as a verification.failed event', async () => {
  // A segment written after the base backup, lost from storage and the catalog.
  await shop.query(`INSERT INTO stable VALUES (1001, 'after the first drill')`);
  const seg = (await shop.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0].f;
  await shop.query('SELECT pg_switch_wal()');
  const file = await until('the segment archived', async () => server.ctx.db.selectFrom('archive_files').selectAll().where('name', '=', seg).where('state', '=', 'success').executeTakeFirst(), 60_000);
  await shop.query(`INSERT INTO stable VALUES (1002, 'after the lost segment')`);
  await shop.query('SELECT pg_switch_wal()');
  const copies = await server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).execute();
  for (const c of copies) fs.rmSync(path.join(server.dataDir, 'backups', c.path), { force: true });
  await server.ctx.db.updateTable('archive_files').set({ state: 'deleted', deleted_at: new Date().toISOString() }).where('id', '=', file.id).execute();

  // Today's drill was done: forget it so the period's drill is due again.
  await server.ctx.db.deleteFrom('jobs').where('kind', '=', 'verify').execute();
  const job = await drill();
  assert.equal(job.state, 'failed');
  assert.ok(job.error.includes(seg), job.error);
  assert.match(job.error, /cannot be restored to its latest time/);
  const r = JSON.parse(job.result).restore;
  assert.equal(r.ok, false);

  const pass = await runDrills(server.ctx);
  assert.deepEqual(pass.alerts, [`drill-failed-${job.id}`]);
  const event = await server.ctx.db.selectFrom('events').selectAll().where('job_id', '=', job.id).executeTakeFirstOrThrow();
  assert.equal(event.kind, 'verification.failed');
  assert.ok(event.message.includes(seg), event.message);
  assert.deepEqual((await runDrills(server.ctx)).alerts, [], 'recorded once');
});

test('a drill of an archived MariaDB branch replays its dump and binlogs to latest and compares the same way', async () => {
  maria = await startPrivateMariadb({ logBin: true });
  const root = await mysql2.createConnection({ host: '127.0.0.1', port: maria.port, user: 'root' });
  try {
    await root.query('CREATE DATABASE shop');
    await root.query('CREATE TABLE shop.stable (id INT PRIMARY KEY, v TEXT)');
    await root.query("INSERT INTO shop.stable VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    await root.query('CREATE TABLE shop.busy (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)');
    const mariaPath = await registerBranch(server, 'default', 'maria', 'mysql', 'main', `mysql://root@127.0.0.1:${maria.port}/shop`);
    const on = await api(server, 'PATCH', mariaPath, { archiving: true });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    const policies = await api(server, 'GET', '/v1/organizations/default/databases/maria/backup-policies');
    const dev = policies.body.data.find((p: any) => p.target === 'development').id;
    assert.equal((await api(server, 'PATCH', `/v1/organizations/default/databases/maria/backup-policies/${dev}`, { verification_frequency_value: 1, verification_frequency_unit: 'day' })).status, 200);
    const dump = await waitForBackup(server, mariaPath, (await api(server, 'POST', `${mariaPath}/backups`, {})).body.id, 120_000);
    assert.equal(dump.state, 'success', JSON.stringify(dump));
    await root.query("INSERT INTO shop.stable VALUES (4, 'after the dump: only the binlog has it')");

    let stop = false;
    let written = 0;
    const writer = (async () => {
      const c = await mysql2.createConnection({ host: '127.0.0.1', port: maria!.port, user: 'root', database: 'shop' });
      while (!stop) {
        await c.query('INSERT INTO busy (v) VALUES (?)', [`row ${++written}`]);
        await new Promise((r) => setTimeout(r, 50));
      }
      await c.end();
    })();
    let job;
    try {
      job = await drill();
    } finally {
      stop = true;
      await writer;
    }
    assert.equal(JSON.parse(job.params).restore_point, 'latest');
    assert.equal(job.state, 'success', job.error ?? '');
    const r = JSON.parse(job.result).restore;
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.ok(r.compared > 0, JSON.stringify(r));
    assert.equal(r.differences_total, 0);
    assert.ok(r.changed_on_source.some((n: string) => /busy/.test(n)), JSON.stringify(r.changed_on_source));
    assert.ok(!r.changed_on_source.some((n: string) => /stable/.test(n)), JSON.stringify(r.changed_on_source));
    const [dbs] = await root.query<mysql2.RowDataPacket[]>('SHOW DATABASES');
    assert.ok(!dbs.some((d) => d.Database === r.database), `${r.database} was dropped`);
  } finally {
    await root.end();
  }
});
