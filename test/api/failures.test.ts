/**
 * Nothing half-written is ever reported good: a dump killed midway, a dump that hangs,
 * and a process that died mid-backup all end `failed`, with a readable reason and no
 * artifact left in storage.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';
import { catalogKind } from '../helpers/catalog.js';

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? (e as any).path, e.name));
}

/** Poll a yes/no condition every 50 ms. */
const waitUntil = (what: string, fn: () => Promise<boolean>, ms = 20_000) => until(what, async () => ((await fn()) ? true : undefined), ms, 50);

describe('failed dumps leave nothing that looks good', () => {
  let server: TestServer;
  const source = uniqueName('sbx_fail');
  let branchPath: string;
  let admin: pg.Client;
  let locker: pg.Client;

  before(async () => {
    server = await startServer();
    admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`create database "${source}"`);
    locker = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: source });
    await locker.connect();
    await locker.query('create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 1000) g');
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
  });
  after(async () => {
    await locker?.end().catch(() => {});
    await admin?.end().catch(() => {});
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('pg_dump killed by the server midway: failed, readable reason, no artifact', async () => {
    // Hold a lock that pg_dump must wait for, so it is surely mid-dump when its session is killed.
    await locker.query('begin; lock table t in access exclusive mode');
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201);
    await waitUntil('pg_dump to wait on the lock', async () => {
      const q = await admin.query("select pid from pg_stat_activity where datname = $1 and query ilike 'lock table%' and wait_event_type = 'Lock'", [source]);
      return q.rowCount! > 0;
    });
    await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and query ilike 'lock table%'", [source]);
    const done = await waitForBackup(server, branchPath, r.body.id);
    await locker.query('rollback');
    assert.equal(done.state, 'failed');
    assert.equal(done.size, 0);
    const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', r.body.id).executeTakeFirstOrThrow();
    assert.match(row.error ?? '', /pg_dump/);
    assert.match(row.error ?? '', /terminat/i);
    const arts = await api(server, 'GET', `${branchPath}/backups/${r.body.id}/artifacts`);
    assert.equal(arts.body.data.length, 1);
    assert.equal(arts.body.data[0].state, 'failed');
    assert.deepEqual(filesUnder(path.join(server.dataDir, 'backups')), [], 'no dump, manifest or partial file left');
    const dl = await api(server, 'GET', `${branchPath}/backups/${r.body.id}/download`);
    assert.equal(dl.status, 409, 'a failed backup has nothing to download');
  });

  test('after that, a normal backup of the same branch succeeds', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    const done = await waitForBackup(server, branchPath, r.body.id);
    assert.equal(done.state, 'success');
    assert.equal(filesUnder(path.join(server.dataDir, 'backups')).length, 2, 'the dump and its manifest');
  });

  test('a dump that hangs past the idle timeout is stopped and fails', async () => {
    await locker.query('begin; lock table t in access exclusive mode');
    const impatient = await startServer({ STRONGBOX_DUMP_IDLE_TIMEOUT_SECONDS: '2' });
    const branchPath = await registerBranch(impatient, 'default', 'app', 'postgresql', 'main', pgUrl(source));
    const r = await api(impatient, 'POST', `${branchPath}/backups`, {});
    const done = await waitForBackup(impatient, branchPath, r.body.id, 30_000);
    await locker.query('rollback');
    assert.equal(done.state, 'failed');
    const row = await impatient.ctx.db.selectFrom('backups').select('error').where('id', '=', r.body.id).executeTakeFirstOrThrow();
    assert.match(row.error ?? '', /no data for 2 s/);
    const left = await admin.query("select count(*)::int as n from pg_stat_activity where datname = $1 and query ilike 'lock table%'", [source]);
    assert.equal(left.rows[0].n, 0, 'the pg_dump session is gone');
    assert.deepEqual(filesUnder(path.join(impatient.dataDir, 'backups')), []);
    await impatient.close();
  });
});

describe('a backup left running by a process that died', () => {
  // SQLite: one process owns the catalog, so whatever is running at start was abandoned.
  // PostgreSQL: other workers may be alive, so only a lapsed lease (5 s here) is taken over.
  test('is marked failed ("interrupted") on start (SQLite) or once its lease lapses (PostgreSQL), and its partial files are removed', async () => {
    const source = uniqueName('sbx_intr');
    const admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`create database "${source}"`);
    const server = await startServer({}, { runner: false });
    try {
      const branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      // Simulate the dead process: the backup was claimed and had started writing.
      const claimed = await server.runner.claim();
      assert.equal(claimed?.id, r.body.id);
      const dest = await server.ctx.db.selectFrom('storage_destinations').selectAll().executeTakeFirstOrThrow();
      const key = `default/app/main/x-${r.body.id}/dump.pgdump.zst`;
      const { openDestination } = await import('../../src/destinations.js');
      const writer = await openDestination(server.ctx, dest).create(key);
      writer.stream.write(Buffer.alloc(1000, 1));
      await new Promise((res) => setTimeout(res, 50));
      await server.ctx.db
        .insertInto('artifacts')
        .values({ id: 'art' + r.body.id, backup_id: r.body.id, destination_id: dest.id, destination_name: dest.name, provider: 'local', path: key, state: 'pending', sha256: null, error: null, created_at: new Date().toISOString(), updated_at: new Date().toISOString() })
        .execute();
      assert.ok(filesUnder(path.join(server.dataDir, 'backups')).length > 0, 'a partial file exists');

      await server.runner.start();
      const waitMs = catalogKind() === 'sqlite' ? 0 : 5_000 + 3_000;
      const b = await until('the interrupted backup to be failed', async () => {
        const got = await api(server, 'GET', `${branchPath}/backups/${r.body.id}`);
        return got.body.state === 'running' ? undefined : got;
      }, waitMs, 100);
      assert.equal(b.body.state, 'failed');
      const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', r.body.id).executeTakeFirstOrThrow();
      assert.match(row.error ?? '', /interrupted/);
      // The backup is marked failed first, then what it had stored is removed: a moment apart.
      await until('the partial file to be removed', async () => (filesUnder(path.join(server.dataDir, 'backups')).length === 0 ? true : undefined), 5_000, 50);
      assert.deepEqual(filesUnder(path.join(server.dataDir, 'backups')), [], 'the partial file is gone');
      writer.stream.destroy();
    } finally {
      await server.close();
      await admin.end();
      await dropDatabase('postgresql', source);
    }
  });
});

describe('shutting down while a backup runs', () => {
  test('stops the dump, records the backup as interrupted, and lets the process exit', async () => {
    const source = uniqueName('sbx_stop');
    const admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`create database "${source}"`);
    const locker = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: source });
    await locker.connect();
    await locker.query('create table t (id int primary key)');
    const server = await startServer();
    try {
      const branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
      await locker.query('begin; lock table t in access exclusive mode');
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      await waitUntil('pg_dump to start', async () => (await admin.query("select 1 from pg_stat_activity where datname = $1 and query ilike 'lock table%'", [source])).rowCount! > 0);
      await server.app.close();
      await server.runner.stop();
      assert.equal(server.runner.active, 0);
      const row = await server.ctx.db.selectFrom('backups').select(['state', 'error']).where('id', '=', r.body.id).executeTakeFirstOrThrow();
      assert.equal(row.state, 'failed');
      assert.match(row.error ?? '', /shut down/);
      await waitUntil('the pg_dump session to end', async () => (await admin.query("select 1 from pg_stat_activity where datname = $1 and query ilike 'lock table%'", [source])).rowCount === 0);
      assert.deepEqual(filesUnder(path.join(server.dataDir, 'backups')), []);
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
      // The server is closed already; this drops its catalog and files.
      await server.close();
      await admin.end();
      await dropDatabase('postgresql', source);
    }
  });
});
