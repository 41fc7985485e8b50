/**
 * Restores, verification, protection and deletion through the API, on PostgreSQL and
 * MariaDB: every backup proves it can come back, and nothing half-restored stays.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, waitForBackup, waitForRestore, waitForVerification, type TestServer } from '../helpers/server.js';
import {
  createDatabase,
  createMysqlFixture,
  createPgFixture,
  dropDatabase,
  objectNames,
  tableFingerprints,
  uniqueName,
  urlFor,
  withMysqlConnection,
  withPgClient,
  mysqlUrl,
  pgUrl,
} from '../helpers/databases.js';

async function databaseExists(kind: 'postgresql' | 'mysql', name: string): Promise<boolean> {
  if (kind === 'postgresql') return withPgClient(pgUrl('postgres'), async (c) => (await c.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1);
  return withMysqlConnection(mysqlUrl('mysql'), async (c) => ((await c.query('select 1 from information_schema.schemata where schema_name = ?', [name])) as any)[0].length === 1);
}

/** Flip one byte in the middle of a stored artifact. */
function corrupt(server: TestServer, artifactPath: string): void {
  const file = path.join(server.dataDir, 'backups', artifactPath);
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(file, bytes);
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: restore, verify, protect, delete`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_rs_src');
    const toDrop: string[] = [source];
    const dbPath = '/v1/organizations/default/databases/shop';
    let branchPath: string;
    let good: any;

    before(async () => {
      server = await startServer();
      if (kind === 'postgresql') await createPgFixture(source);
      else await createMysqlFixture(source);
      branchPath = await registerBranch(server, 'default', 'shop', kind, 'main', urlFor(kind, source));
      const r = await api(server, 'POST', `${branchPath}/backups`, { retention_value: 1, retention_unit: 'hour' });
      good = await waitForBackup(server, branchPath, r.body.id);
      assert.equal(good.state, 'success');
    });
    after(async () => {
      await server?.close();
      for (const name of toDrop) await dropDatabase(kind, name);
    });

    test('restore into a new branch on the same server gives identical tables', async () => {
      const name = uniqueName('sbx_rs_new');
      toDrop.push(name);
      const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: good.id });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.restore.backup_id, good.id);
      assert.ok(['pending', 'running'].includes(r.body.restore.state));
      assert.equal(r.body.connection.database, name);
      const branch = await waitForRestore(server, dbPath, name);
      assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
      assert.ok(branch.restore.completed_at && branch.restore.bytes > 0);
      assert.deepEqual(await tableFingerprints(kind, urlFor(kind, name)), await tableFingerprints(kind, urlFor(kind, source)));
      assert.deepEqual(await objectNames(kind, urlFor(kind, name)), await objectNames(kind, urlFor(kind, source)));

      const b = await api(server, 'GET', `${branchPath}/backups/${good.id}`);
      assert.deepEqual(b.body.restored_branches.map((x: any) => x.name), [name]);
      assert.ok(Date.parse(b.body.expires_at) >= Date.now() + 86_400_000 - 60_000, 'restoring kept the backup for at least another day');

      // The restored branch is a branch like any other: it can be backed up.
      const again = await api(server, 'POST', `${dbPath}/branches/${name}/backups`, {});
      assert.equal((await waitForBackup(server, `${dbPath}/branches/${name}`, again.body.id)).state, 'success');
    });

    test('a restore never overwrites: existing names and non-empty targets are refused', async () => {
      const r1 = await api(server, 'POST', `${dbPath}/branches`, { name: source, backup_id: good.id });
      assert.equal(r1.status, 409, 'a database of that name exists on the server');
      assert.match(r1.body.message, /already exists/);

      const filled = uniqueName('sbx_rs_full');
      toDrop.push(filled);
      await createDatabase(kind, filled);
      if (kind === 'postgresql') await withPgClient(pgUrl(filled), (c) => c.query('create table keepme (id int); insert into keepme values (1)'));
      else await withMysqlConnection(mysqlUrl(filled), (c) => c.query('create table keepme (id int)'));
      const r2 = await api(server, 'POST', `${dbPath}/branches`, { name: 'into-full', backup_id: good.id, connection_url: urlFor(kind, filled) });
      assert.equal(r2.status, 409);
      assert.match(r2.body.message, /not empty.*overwrite/);

      const r3 = await api(server, 'POST', `${dbPath}/branches`, { name: 'over-full', backup_id: good.id, connection_url: urlFor(kind, filled), overwrite: true });
      assert.equal(r3.status, 201, JSON.stringify(r3.body));
      assert.equal((await waitForRestore(server, dbPath, 'over-full')).restore.state, 'success');
      const restored = await tableFingerprints(kind, urlFor(kind, filled));
      const original = await tableFingerprints(kind, urlFor(kind, source));
      for (const [table, fp] of Object.entries(original)) assert.deepEqual(restored[table], fp, table);

      const empty = uniqueName('sbx_rs_empty');
      toDrop.push(empty);
      await createDatabase(kind, empty);
      const r4 = await api(server, 'POST', `${dbPath}/branches`, { name: 'into-empty', backup_id: good.id, connection_url: urlFor(kind, empty) });
      assert.equal(r4.status, 201);
      assert.equal((await waitForRestore(server, dbPath, 'into-empty')).restore.state, 'success');
      assert.deepEqual(await tableFingerprints(kind, urlFor(kind, empty)), original);

      const r5 = await api(server, 'POST', `${dbPath}/branches`, { name: 'onto-source', backup_id: good.id, connection_url: urlFor(kind, source), overwrite: true });
      assert.equal(r5.status, 409, 'never into the source itself');
    });

    test('quick and full verification pass on a good backup and leave no scratch database', async () => {
      const backupPath = `${branchPath}/backups/${good.id}`;
      const quick = await api(server, 'POST', `${backupPath}/verify`, {});
      assert.equal(quick.status, 202);
      assert.equal(quick.body.kind, 'quick');
      const q = await waitForVerification(server, backupPath, quick.body.id);
      assert.equal(q.state, 'success', JSON.stringify(q));
      assert.equal(q.result.artifacts[0].ok, true);
      assert.equal(q.result.artifacts[0].sha256, (await api(server, 'GET', `${backupPath}/artifacts`)).body.data[0].sha256);

      const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
      const f = await waitForVerification(server, backupPath, full.body.id);
      assert.equal(f.state, 'success', JSON.stringify(f));
      assert.equal(f.kind, 'full');
      assert.ok(f.result.restore.ok && f.result.restore.tables >= 3);
      assert.deepEqual(f.result.restore.mismatches, []);
      assert.equal(await databaseExists(kind, f.result.restore.database), false, 'the scratch database was dropped');

      const arts = await api(server, 'GET', `${backupPath}/artifacts`);
      assert.equal(arts.body.data[0].verification, 'passed');
      assert.ok(arts.body.data[0].verified_at);
      const list = await api(server, 'GET', `${backupPath}/verifications`);
      assert.deepEqual(list.body.data.map((v: any) => v.id), [full.body.id, quick.body.id]);
    });

    test('a corrupted artifact fails verification and restore with a checksum message, and leaves no half-restored database', async () => {
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      const b = await waitForBackup(server, branchPath, r.body.id);
      const backupPath = `${branchPath}/backups/${b.id}`;
      const [artifact] = (await api(server, 'GET', `${backupPath}/artifacts`)).body.data;
      corrupt(server, artifact.path);

      const v = await waitForVerification(server, backupPath, (await api(server, 'POST', `${backupPath}/verify`, {})).body.id);
      assert.equal(v.state, 'failed');
      assert.match(v.error, /sha256 .* differs from the recorded/);
      assert.equal((await api(server, 'GET', `${backupPath}/artifacts`)).body.data[0].verification, 'failed');

      const name = uniqueName('sbx_rs_bad');
      toDrop.push(name);
      assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id })).status, 201);
      const branch = await waitForRestore(server, dbPath, name);
      assert.equal(branch.restore.state, 'failed');
      assert.match(branch.restore.error, /copy in "local" is damaged: checksum mismatch/);
      assert.match(branch.restore.error, /was dropped/);
      assert.equal(await databaseExists(kind, name), false, 'no half-restored database is left');

      // Restoring over an existing empty database that we did not create: on PostgreSQL the
      // single transaction leaves it exactly as it was.
      if (kind === 'postgresql') {
        const target = uniqueName('sbx_rs_bad2');
        toDrop.push(target);
        await createDatabase(kind, target);
        await api(server, 'POST', `${dbPath}/branches`, { name: 'bad-into-empty', backup_id: b.id, connection_url: urlFor(kind, target) });
        const br = await waitForRestore(server, dbPath, 'bad-into-empty');
        assert.equal(br.restore.state, 'failed');
        assert.deepEqual(await tableFingerprints(kind, urlFor(kind, target)), {}, 'nothing was committed');
      }

      // A corrupt artifact is never delivered whole: refused before the first byte, or cut off.
      const dl = await fetch(`${server.url}${backupPath}/download`, { headers: { authorization: server.token } });
      if (dl.status === 200) await assert.rejects(dl.arrayBuffer());
      else {
        assert.equal(dl.status, 409);
        assert.match(((await dl.json()) as any).message, /corrupt/);
      }
    });

    test('protected backups survive DELETE; deleted ones are gone from disk and listed only with all=true', async () => {
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      const b = await waitForBackup(server, branchPath, r.body.id);
      const backupPath = `${branchPath}/backups/${b.id}`;
      const [artifact] = (await api(server, 'GET', `${backupPath}/artifacts`)).body.data;
      const file = path.join(server.dataDir, 'backups', artifact.path);
      assert.ok(fs.existsSync(file));

      assert.equal((await api(server, 'PATCH', backupPath, { protected: true, name: 'x' })).status, 422, 'only protected may change');
      assert.equal((await api(server, 'PATCH', backupPath, { protected: 'yes' })).status, 422);
      const p = await api(server, 'PATCH', backupPath, { protected: true });
      assert.equal(p.status, 200);
      assert.equal(p.body.protected, true);
      const refused = await api(server, 'DELETE', backupPath);
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'conflict');
      assert.ok(fs.existsSync(file), 'a protected backup keeps its artifact');

      assert.equal((await api(server, 'PATCH', backupPath, { protected: false })).status, 200);
      assert.equal((await api(server, 'DELETE', backupPath)).status, 204);
      assert.equal(fs.existsSync(file), false, 'the dump is gone');
      assert.equal(fs.existsSync(path.join(path.dirname(file), 'manifest.json')), false, 'the manifest is gone');
      assert.equal((await api(server, 'DELETE', backupPath)).status, 204, 'deleting again is fine');

      const listed = await api(server, 'GET', `${branchPath}/backups`);
      assert.ok(!listed.body.data.some((x: any) => x.id === b.id));
      const all = await api(server, 'GET', `${branchPath}/backups?all=true`);
      const gone = all.body.data.find((x: any) => x.id === b.id);
      assert.ok(gone && gone.deleted_at);
      assert.equal((await api(server, 'GET', `${backupPath}/artifacts`)).body.data[0].state, 'deleted');
      assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name: 'from-deleted', backup_id: b.id })).status, 409);
      assert.equal((await api(server, 'POST', `${backupPath}/verify`, {})).status, 409);
    });
  });
}

describe('accesses, cancellation and busy backups', () => {
  let server: TestServer;
  const source = uniqueName('sbx_rs_acl');
  const toDrop: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/app';
  let prodPath: string;
  let devPath: string;
  let prodBackup: any;
  let devBackup: any;

  async function token(accesses: string[]): Promise<string> {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: accesses.join('+') });
    await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, { accesses });
    return `${t.body.id}:${t.body.token}`;
  }

  before(async () => {
    server = await startServer();
    await createPgFixture(source);
    prodPath = await registerBranch(server, 'default', 'app', 'postgresql', 'prod', pgUrl(source), true);
    devPath = await registerBranch(server, 'default', 'app', 'postgresql', 'dev', pgUrl(source), false);
    prodBackup = await waitForBackup(server, prodPath, (await api(server, 'POST', `${prodPath}/backups`, {})).body.id);
    devBackup = await waitForBackup(server, devPath, (await api(server, 'POST', `${devPath}/backups`, {})).body.id);
  });
  after(async () => {
    await server?.close();
    for (const name of toDrop) await dropDatabase('postgresql', name);
  });

  test('production backups need the production accesses to restore and delete', async () => {
    const dev = await token(['restore_backup', 'delete_backups', 'read_backups', 'read_branches']);
    const name = uniqueName('sbx_rs_acl_r');
    toDrop.push(name);
    assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: prodBackup.id }, dev)).status, 403);
    assert.equal((await api(server, 'DELETE', `${prodPath}/backups/${prodBackup.id}`, undefined, dev)).status, 403);
    assert.equal((await api(server, 'GET', `${prodPath}/backups/${prodBackup.id}/download`, undefined, dev)).status, 403);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: devBackup.id }, dev);
    assert.equal(r.status, 201, 'the development access restores development backups');
    assert.equal((await waitForRestore(server, dbPath, name)).restore.state, 'success');

    const prod = await token(['restore_production_branch_backup', 'delete_production_branch_backups']);
    const name2 = uniqueName('sbx_rs_acl_p');
    toDrop.push(name2);
    assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name: name2, backup_id: prodBackup.id }, prod)).status, 201);
    assert.equal((await waitForRestore(server, dbPath, name2)).restore.state, 'success');
    const none = await token(['read_backups']);
    assert.equal((await api(server, 'POST', `${devPath}/backups/${devBackup.id}/verify`, { restore: true }, none)).status, 403, 'a full verify restores: it needs the restore access');
    const quick = await api(server, 'POST', `${devPath}/backups/${devBackup.id}/verify`, {}, none);
    assert.equal(quick.status, 202);
    // Let it finish: the next test needs this backup busy with its restore alone.
    await waitForVerification(server, `${devPath}/backups/${devBackup.id}`, quick.body.id);
  });

  test('a backup being restored cannot be deleted', async () => {
    await server.runner.stop();
    try {
      const name = uniqueName('sbx_rs_busy');
      toDrop.push(name);
      assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: devBackup.id })).status, 201);
      const r = await api(server, 'DELETE', `${devPath}/backups/${devBackup.id}`);
      assert.equal(r.status, 409);
      assert.match(r.body.message, /being restored/);
    } finally {
      await server.runner.start();
    }
  });

  test('cancel: a running dump is killed, nothing is stored; a pending one is canceled in place', async () => {
    const locker = await import('pg').then((m) => new m.default.Client({ host: '127.0.0.1', user: 'postgres', database: source }));
    await locker.connect();
    try {
      await locker.query('begin; lock table items in access exclusive mode');
      const running = await api(server, 'POST', `${devPath}/backups`, {});
      const deadline = Date.now() + 20_000;
      // Polled from outside the locking transaction: inside it, pg_stat_activity is a snapshot.
      const dumping = () => withPgClient(pgUrl('postgres'), (c) => c.query("select 1 from pg_stat_activity where datname = $1 and query ilike 'lock table%'", [source]));
      while ((await dumping()).rowCount === 0) {
        if (Date.now() > deadline) throw new Error('pg_dump never started');
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = (await api(server, 'GET', `${devPath}/backups/${running.body.id}`)).body;
      assert.equal(before.state, 'running');
      const c = await api(server, 'POST', `${devPath}/backups/${running.body.id}/cancel`);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assert.equal(c.body.state, 'canceled');
      assert.equal((await dumping()).rowCount, 0, 'no pg_dump left');
      const arts = (await api(server, 'GET', `${devPath}/backups/${running.body.id}/artifacts`)).body.data;
      assert.ok(arts.every((a: any) => a.state !== 'success'));
      const file = path.join(server.dataDir, 'backups', arts[0].path);
      assert.equal(fs.existsSync(file), false);
      assert.deepEqual(fs.existsSync(path.dirname(file)) ? fs.readdirSync(path.dirname(file)) : [], [], 'no partial file');
      assert.equal((await api(server, 'POST', `${devPath}/backups/${running.body.id}/cancel`)).status, 409, 'already canceled');
      assert.equal((await api(server, 'DELETE', `${devPath}/backups/${running.body.id}`)).status, 204, 'a canceled backup can be deleted');
    } finally {
      await locker.query('rollback');
      await locker.end();
    }

    await server.runner.stop();
    try {
      const pending = await api(server, 'POST', `${devPath}/backups`, {});
      assert.equal((await api(server, 'DELETE', `${devPath}/backups/${pending.body.id}`)).status, 409, 'a pending backup must be canceled, not deleted');
      const c = await api(server, 'POST', `${devPath}/backups/${pending.body.id}/cancel`);
      assert.equal(c.body.state, 'canceled');
    } finally {
      await server.runner.start();
    }
  });
});

describe('cancel mid-stream', () => {
  test('a backup cancelled while its bytes flow ends canceled, with no pg_dump or zstd left and nothing stored', async () => {
    const source = uniqueName('sbx_rs_big');
    await createDatabase('postgresql', source);
    // zstd at level 19 is slow, so the dump of a modest table takes seconds: long enough to cancel mid-stream.
    const server = await startServer({ STRONGBOX_ZSTD_LEVEL: '19' });
    try {
      await withPgClient(pgUrl(source), (c) => c.query("create table big as select g as id, md5(g::text) || md5((g * 7)::text) as v from generate_series(1, 1500000) g"));
      const branchPath = await registerBranch(server, 'default', 'big', 'postgresql', 'main', pgUrl(source));
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      const deadline = Date.now() + 30_000;
      let progress: any;
      for (;;) {
        progress = (await api(server, 'GET', `${branchPath}/backups/${r.body.id}/progress`)).body;
        if (progress.bytes_read > 0) break;
        assert.ok(['pending', 'running'].includes(progress.state), `the backup ended (${progress.state}) before it could be canceled`);
        if (Date.now() > deadline) throw new Error('no progress reported');
        await new Promise((res) => setTimeout(res, 50));
      }
      assert.ok(progress.rate_bytes_per_second > 0);
      const c = await api(server, 'POST', `${branchPath}/backups/${r.body.id}/cancel`);
      assert.equal(c.body.state, 'canceled', JSON.stringify(c.body));
      const dumps = await withPgClient(pgUrl('postgres'), (cl) => cl.query("select 1 from pg_stat_activity where datname = $1 and application_name = 'strongbox' and query ilike 'copy %'", [source]));
      assert.equal(dumps.rowCount, 0, 'the pg_dump session is gone');
      const { allProcesses } = await import('../helpers/processes.js');
      const children = allProcesses().filter((p) => p.ppid === process.pid && /pg_dump|zstd/.test(p.name));
      assert.deepEqual(children, [], 'no pg_dump or zstd child left');
      const arts = (await api(server, 'GET', `${branchPath}/backups/${r.body.id}/artifacts`)).body.data;
      assert.ok(arts.length === 1 && arts[0].state === 'failed');
      const files = fs.existsSync(path.join(server.dataDir, 'backups')) ? fs.readdirSync(path.join(server.dataDir, 'backups'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()) : [];
      assert.deepEqual(files, [], 'no dump, manifest or partial file');
    } finally {
      await server.close();
      await dropDatabase('postgresql', source);
    }
  });
});
