/**
 * Narrow windows that the kill loop can only hit by luck, set up on purpose:
 * - a backup killed while it wrote a copy's manifest, or after the manifest was written but
 *   before the copy was recorded as stored: recovery must leave nothing of such a copy (a
 *   manifest without its dump would describe a backup that is not there, and a catalog
 *   rebuilt from storage would bring it back);
 * - a restore killed while its CREATE DATABASE runs (the server completes it after the
 *   process is gone): recovery must drop that database, which it only knows to do if the
 *   restore recorded it was creating it before it began.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, until } from '../helpers/server.js';
import { catalogKind } from '../helpers/catalog.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { openDestination } from '../../src/destinations.js';
import pg from 'pg';
import { databaseExists, waitForBackupOf, waitForRestoreOf } from '../helpers/chaos.js';
import { startCluster } from '../helpers/cluster.js';
import { newId, nowIso } from '../../src/catalog/ids.js';

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)));
}

test('a backup killed while writing or after writing its manifest leaves neither dump nor manifest', async () => {
  const source = uniqueName('sbx_ic');
  await createDatabase('postgresql', source);
  const server = await startServer({}, { runner: false });
  try {
    const branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
    const dest = await server.ctx.db.selectFrom('storage_destinations').selectAll().where('name', '=', 'local').executeTakeFirstOrThrow();
    const provider = openDestination(server.ctx, dest);
    const backupsDir = path.join(server.dataDir, 'backups');

    // As the dead process left them: both claimed, each copy's dump committed, then
    //  - "writing": killed in the middle of the manifest's write (its partial file is there);
    //  - "written": killed after the manifest was stored, before the copy was recorded.
    for (const stage of ['writing', 'written'] as const) {
      const id = (await api(server, 'POST', `${branchPath}/backups`, {})).body.id as string;
      assert.equal((await server.runner.claim())?.id, id);
      const folder = `default/app/main/x-${id}`;
      const dump = await provider.create(`${folder}/dump.pgdump.zst`);
      await new Promise<void>((resolve, reject) => dump.stream.end(Buffer.alloc(1000, 1), () => resolve()).once('error', reject));
      await dump.commit();
      if (stage === 'written') await provider.put(`${folder}/manifest.json`, Buffer.from('{"backup_id": "' + id + '"}\n'));
      else {
        const manifest = await provider.create(`${folder}/manifest.json`);
        await new Promise<void>((resolve) => manifest.stream.write(Buffer.from('{"backup_id"'), () => resolve()));
      }
      const now = nowIso(new Date());
      await server.ctx.db
        .insertInto('artifacts')
        .values({ id: newId(), backup_id: id, destination_id: dest.id, destination_name: dest.name, provider: 'local', path: `${folder}/dump.pgdump.zst`, state: 'pending', sha256: null, error: null, created_at: now, updated_at: now })
        .execute();
    }
    const before = filesUnder(backupsDir);
    assert.equal(before.filter((f) => f.endsWith('/manifest.json')).length, 1);
    assert.equal(before.filter((f) => /\/\.manifest\.json\.partial-/.test(f)).length, 1);

    await server.runner.start();
    // SQLite: recovered at start; PostgreSQL: once the 5 s lease lapses, at the next tick.
    await until('both backups to be failed', async () => {
      const rows = await server.ctx.db.selectFrom('backups').select('state').execute();
      return rows.every((r) => r.state === 'failed') ? true : undefined;
    }, catalogKind() === 'sqlite' ? 2_000 : 15_000, 100);
    // Failed first, then its copies removed: a moment apart.
    await until('the copies to be removed', async () => (filesUnder(backupsDir).length === 0 ? true : undefined), 5_000, 50).catch(() => {});
    assert.deepEqual(filesUnder(backupsDir), [], 'no dump, manifest or partial manifest is left');
  } finally {
    await server.close();
    await dropDatabase('postgresql', source);
  }
});

test('a restore killed while it creates its database leaves no database behind', async () => {
  const source = uniqueName('sbx_icr');
  const target = uniqueName('sbx_icr_t');
  await createDatabase('postgresql', source);
  // A real process to kill, on the matrix's catalog.
  const cluster = await startCluster();
  const locker = new pg.Client({ connectionString: pgUrl('postgres') });
  await locker.connect();
  try {
    const branchPath = await registerBranch(cluster, 'default', 'app', 'postgresql', 'main', pgUrl(source));
    const b = (await api(cluster, 'POST', `${branchPath}/backups`, {})).body.id as string;
    assert.equal((await waitForBackupOf(cluster, branchPath, b)).state, 'success');
    // CREATE DATABASE ... TEMPLATE template0 waits for this lock on template0: the process
    // dies while its CREATE DATABASE is in flight, which the server then completes.
    await locker.query("BEGIN; COMMENT ON DATABASE template0 IS 'held by a Strongbox test'");
    assert.equal((await api(cluster, 'POST', '/v1/organizations/default/databases/app/branches', { name: target, backup_id: b })).status, 201);
    // Asked from another session: inside the locker's transaction pg_stat_activity stays as first read.
    await until('CREATE DATABASE to wait on the lock', () => withPgClient(pgUrl('postgres'), async (c) => {
      const q = await c.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'CREATE DATABASE%' AND strpos(query, $1) > 0", [target]);
      return q.rowCount ? true : undefined;
    }), 60_000, 50);
    await cluster.serve.kill9();
    await locker.query('ROLLBACK');
    await until('the orphaned CREATE DATABASE to complete', async () => ((await databaseExists('postgresql', target)) ? true : undefined), 30_000, 50);

    await cluster.serve.start();
    // SQLite: recovered at start; PostgreSQL: once the 5 s lease lapses, at the next tick.
    const branch = await waitForRestoreOf(cluster, '/v1/organizations/default/databases/app', target, 30_000);
    assert.equal(branch.restore.state, 'failed');
    assert.match(branch.restore.error ?? '', /interrupted/);
    // Failed first, then its database dropped: a moment apart.
    await until('recovery to drop the database the interrupted restore created', async () => ((await databaseExists('postgresql', target)) ? undefined : true), 10_000, 100);
  } finally {
    await locker.query('ROLLBACK').catch(() => {});
    await locker.end();
    await cluster.close();
    await dropDatabase('postgresql', source);
    await dropDatabase('postgresql', target);
  }
});
