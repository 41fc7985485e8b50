/**
 * The backupman view (/api/backups) on real PostgreSQL and real local folders: the list
 * checked against the reference document, Status derived from the stored copies, two
 * destinations, starting backups, downloading a copy, and its X-Api-Key auth.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { createPgFixture, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { assertBackupmanList, backupmanReference } from '../helpers/compat-reference.js';
import type { Insertable } from 'kysely';
import { newId, nowIso } from '../../src/catalog/ids.js';
import type { BackupsTable } from '../../src/catalog/schema.js';

const REF = backupmanReference();
const sha256 = (b: Buffer | Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

/** The shared poll, at this file's 50 ms pace. */
const waitFor = <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000) => until(what, fn, ms, 50);

describe('backupman compatible view', () => {
  let server: TestServer;
  const source = uniqueName('sbx_bm');
  const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-bm-'));
  const dbPath = '/v1/organizations/default/databases/shop';
  let mainPath: string;
  let prodPath: string;
  let key: string;
  let mainOnly: string;
  let readOnly: string;
  let stranger: string;

  const bm = (method: string, url: string, apiKey: string | null = key) => api(server, method, url, undefined, null, apiKey === null ? {} : { 'x-api-key': apiKey });
  const results = async (apiKey: string = key) => {
    const r = await bm('GET', '/api/backups', apiKey);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertBackupmanList(REF, r.body);
    return r.body.Results as any[];
  };

  async function token(org: string, grants: Array<{ accesses: string[]; database?: string; branch?: string }>): Promise<string> {
    const t = await api(server, 'POST', `/v1/organizations/${org}/service-tokens`, { name: 'bm' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const g of grants) assert.equal((await api(server, 'POST', `/v1/organizations/${org}/service-tokens/${t.body.id}/accesses`, g)).status, 200);
    return `${t.body.id}:${t.body.token}`;
  }

  before(async () => {
    server = await startServer();
    await createPgFixture(source);
    mainPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl(source));
    prodPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'prod', pgUrl(source), true);
    const second = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'second', provider: 'local', config: { path: path.join(extra, 'second') } });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'second'] })).status, 200);
    key = await token('default', [{ accesses: ['read_backups', 'write_backups', 'restore_backup'] }]);
    mainOnly = await token('default', [{ accesses: ['read_backups', 'write_backups'], database: 'shop', branch: 'main' }]);
    readOnly = await token('default', [{ accesses: ['read_backups'] }]);
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'other' })).status, 201);
    stranger = await token('other', [{ accesses: ['read_backups', 'write_backups', 'restore_backup', 'restore_production_branch_backup'] }]);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
    fs.rmSync(extra, { recursive: true, force: true });
  });

  test('the reference document parses: its example has exactly the fields of its tables', () => {
    assert.deepEqual(Object.keys(REF.example.Results[0]).sort(), REF.backup.map((f) => f.name).sort());
    assert.deepEqual(Object.keys(REF.example.Results[0].DriveFiles[0]).sort(), REF.driveFile.map((f) => f.name).sort());
    assert.deepEqual(REF.backup.find((f) => f.name === 'Status')?.enum, ['pending', 'finished', 'failed']);
    assert.deepEqual(REF.backup.filter((f) => f.nullable).map((f) => f.name), ['DumpPath', 'UpdatedAt', 'DriveFiles']);
  });

  test('401 {"error": "Unauthorized"} without a valid X-Api-Key', async () => {
    for (const k of [null, '', 'garbage', 'nosuchid:nosuchsecretnosuchsecret', `${key.split(':')[0]}:wrongsecretwrongsecret`]) {
      const r = await bm('GET', '/api/backups', k);
      assert.equal(r.status, 401, `key ${k}`);
      assert.deepEqual(r.body, { error: 'Unauthorized' });
    }
    // The native Authorization header is not what this dialect reads.
    const r = await api(server, 'GET', '/api/backups', undefined, key);
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: 'Unauthorized' });
    assert.deepEqual((await bm('POST', '/api/backups', null)).body, { error: 'Unauthorized' });
    assert.deepEqual((await bm('GET', '/api/backups/x/download', null)).body, { error: 'Unauthorized' });
  });

  test('POST /api/backups backs up every branch the key may write', async () => {
    const r = await bm('POST', '/api/backups');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { Message: 'Backup started' });
    const listOf = async (p: string) => (await api(server, 'GET', `${p}/backups`)).body.data;
    for (const p of [mainPath, prodPath]) {
      const [b] = await listOf(p);
      assert.ok(b, `a backup of ${p}`);
      assert.equal((await waitForBackup(server, p, b.id)).state, 'success');
    }
    // A key that may write one branch backs up that one only.
    assert.deepEqual((await bm('POST', '/api/backups', mainOnly)).body, { Message: 'Backup started' });
    const main = await listOf(mainPath);
    assert.equal(main.length, 2);
    assert.equal((await waitForBackup(server, mainPath, main[0].id)).state, 'success');
    assert.equal((await listOf(prodPath)).length, 1);

    const ro = await bm('POST', '/api/backups', readOnly);
    assert.equal(ro.status, 403);
    assert.match(ro.body.error, /write_backups/);
    assert.deepEqual(Object.keys(ro.body), ['error']);
  });

  test('GET /api/backups: the reference shape, newest first, Label, DumpPath and two DriveFiles', async () => {
    const list = await results();
    assert.equal(list.length, 3);
    const native = new Map<string, any>();
    for (const p of [mainPath, prodPath]) for (const b of (await api(server, 'GET', `${p}/backups`)).body.data) native.set(b.id, b);
    assert.deepEqual(list.map((b) => b.Id), [...native.values()].sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id)).map((b) => b.id));
    for (const b of list) {
      const n = native.get(b.Id);
      const branch = n.database_branch.name;
      assert.equal(b.Label, `shop/${branch}`);
      assert.equal(b.Status, 'finished');
      assert.equal(b.CreatedAt, n.created_at);
      assert.equal(b.UpdatedAt, n.updated_at);
      const artifacts = (await api(server, 'GET', `${branch === 'main' ? mainPath : prodPath}/backups/${b.Id}/artifacts`)).body.data;
      assert.equal(artifacts.length, 2);
      assert.deepEqual(
        b.DriveFiles.map((f: any) => [f.Id, f.BackupId, f.Provider, f.Label, f.Path, f.Status, f.CreatedAt, f.UpdatedAt]),
        artifacts.map((a: any) => [a.id, b.Id, 'local', path.basename(a.path), a.path, 'finished', a.created_at, a.updated_at]),
      );
      // DumpPath is the dump itself, on this machine.
      assert.ok(path.isAbsolute(b.DumpPath));
      assert.equal(sha256(fs.readFileSync(b.DumpPath)), artifacts[0].sha256);
      assert.ok([path.join(server.dataDir, 'backups', artifacts[0].path), path.join(extra, 'second', artifacts[0].path)].includes(b.DumpPath));
    }
    // A key sees the branches it may read, and another organization's key sees none of them.
    assert.deepEqual(new Set((await results(mainOnly)).map((b) => b.Label)), new Set(['shop/main']));
    assert.deepEqual(await results(stranger), []);
  });

  test('Status follows the stored copies: pending while made, failed when one copy failed or it was canceled', async () => {
    // Not started yet (the worker is paused): pending, with no DriveFiles.
    await server.runner.stop();
    const queued = (await api(server, 'POST', `${mainPath}/backups`, {})).body;
    let entry = (await results()).find((b) => b.Id === queued.id);
    assert.equal(entry.Status, 'pending');
    assert.deepEqual(entry.DriveFiles, []);
    assert.equal(entry.DumpPath, null);
    // Canceled before it ran: failed.
    assert.equal((await api(server, 'POST', `${mainPath}/backups/${queued.id}/cancel`, {})).body.state, 'canceled');
    entry = (await results()).find((b) => b.Id === queued.id);
    assert.equal(entry.Status, 'failed');
    await server.runner.start();

    // Running, its copies being written: a lock makes pg_dump wait mid-backup.
    await withPgClient(pgUrl(source), async (c) => {
      await c.query('BEGIN');
      await c.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      const running = (await api(server, 'POST', `${mainPath}/backups`, {})).body;
      await waitFor('the copies to be started', async () => {
        const arts = await server.ctx.db.selectFrom('artifacts').select('state').where('backup_id', '=', running.id).execute();
        return arts.length === 2 ? true : undefined;
      });
      const e = (await results()).find((b) => b.Id === running.id);
      assert.equal(e.Status, 'pending');
      assert.deepEqual(e.DriveFiles.map((f: any) => f.Status), ['pending', 'pending']);
      assert.equal(e.DumpPath, null, 'no good copy yet');
      await c.query('ROLLBACK');
      assert.equal((await waitForBackup(server, mainPath, running.id)).state, 'success');
      assert.equal((await results()).find((b) => b.Id === running.id).Status, 'finished');
    });

    // One destination fails (its folder became a file), the other keeps its copy: failed.
    const flakyDir = path.join(extra, 'flaky');
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'flaky', provider: 'local', config: { path: flakyDir } })).status, 201);
    assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'flaky'] })).status, 200);
    fs.rmSync(flakyDir, { recursive: true, force: true });
    fs.writeFileSync(flakyDir, 'not a folder');
    try {
      const b = await waitForBackup(server, mainPath, (await api(server, 'POST', `${mainPath}/backups`, {})).body.id);
      assert.equal(b.state, 'failed');
      const e = (await results()).find((x) => x.Id === b.id);
      assert.equal(e.Status, 'failed');
      assert.deepEqual(e.DriveFiles.map((f: any) => f.Status).sort(), ['failed', 'finished']);
      assert.ok(e.DriveFiles.every((f: any) => f.Label === path.basename(f.Path) && f.Label.startsWith('dump.')));
      assert.ok(e.DumpPath && fs.existsSync(e.DumpPath), 'the good local copy is still the dump');
      const failedFile = e.DriveFiles.find((f: any) => f.Status === 'failed');
      const r = await bm('GET', `/api/backups/${failedFile.Id}/download`);
      assert.equal(r.status, 409);
      assert.match(r.body.error, /failed/);
    } finally {
      fs.rmSync(flakyDir);
      assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'second'] })).status, 200);
    }
  });

  test('GET /api/backups/{driveFileId}/download streams the stored bytes of that copy', async () => {
    const [latest] = (await results()).filter((b) => b.Label === 'shop/main' && b.Status === 'finished');
    const artifacts = (await api(server, 'GET', `${mainPath}/backups/${latest.Id}/artifacts`)).body.data;
    assert.equal(latest.DriveFiles.length, 2);
    for (const file of latest.DriveFiles) {
      const res = await fetch(`${server.url}/api/backups/${file.Id}/download`, { headers: { 'x-api-key': key } });
      assert.equal(res.status, 200);
      const bytes = Buffer.from(await res.arrayBuffer());
      const artifact = artifacts.find((a: any) => a.id === file.Id);
      assert.equal(sha256(bytes), artifact.sha256);
      assert.equal(bytes.length, artifact.size);
      assert.equal(res.headers.get('content-disposition'), `attachment; filename="${file.Label}"`);
      assert.equal(res.headers.get('x-checksum-sha256'), artifact.sha256);
    }
    const fileId = latest.DriveFiles[0].Id;
    // The dump's bytes are as good as a restore: the restore access is needed, on production the production one.
    const noRestore = await bm('GET', `/api/backups/${fileId}/download`, mainOnly);
    assert.equal(noRestore.status, 403);
    assert.match(noRestore.body.error, /restore_backup/);
    const prod = (await results()).find((b) => b.Label === 'shop/prod');
    const prodDenied = await bm('GET', `/api/backups/${prod.DriveFiles[0].Id}/download`);
    assert.equal(prodDenied.status, 403);
    assert.match(prodDenied.body.error, /restore_production_branch_backup/);
    assert.equal((await bm('GET', `/api/backups/${fileId}/download`, stranger)).status, 404, 'another organization: not found');
    const missing = await bm('GET', '/api/backups/nosuchfile/download');
    assert.equal(missing.status, 404);
    assert.deepEqual(Object.keys(missing.body), ['error']);
  });

  test('deleted backups are not listed and their copies cannot be downloaded', async () => {
    const [victim] = (await results()).filter((b) => b.Label === 'shop/main' && b.Status === 'finished');
    assert.equal((await api(server, 'DELETE', `${mainPath}/backups/${victim.Id}`)).status, 204);
    assert.ok(!(await results()).some((b) => b.Id === victim.Id));
    assert.equal((await bm('GET', `/api/backups/${victim.DriveFiles[0].Id}/download`)).status, 404);
  });

  test('POST /api/backups leaves out a branch whose restore has not succeeded', async () => {
    const [good] = (await api(server, 'GET', `${mainPath}/backups?state=success`)).body.data;
    const name = uniqueName('sbx_bm_rs');
    await server.runner.stop();
    try {
      assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: good.id })).status, 201);
      assert.deepEqual((await bm('POST', '/api/backups')).body, { Message: 'Backup started' });
      assert.deepEqual((await api(server, 'GET', `${dbPath}/branches/${name}/backups`)).body.data, [], 'not while it is being restored');
      const queued = await server.ctx.db.selectFrom('backups').select(['id', 'branch_id']).where('state', '=', 'pending').execute();
      assert.equal(queued.length, 2, 'main and prod');
    } finally {
      await server.runner.start();
    }
    await waitFor('the restore', async () => {
      const b = (await api(server, 'GET', `${dbPath}/branches/${name}`)).body;
      return ['pending', 'running'].includes(b.restore.state) ? undefined : b;
    });
    try {
      await waitFor('the backups to settle', async () => ((await server.ctx.db.selectFrom('backups').select('id').where('state', 'in', ['pending', 'running']).executeTakeFirst()) ? undefined : true));
      assert.deepEqual((await bm('POST', '/api/backups')).body, { Message: 'Backup started' });
      const [b] = (await api(server, 'GET', `${dbPath}/branches/${name}/backups`)).body.data;
      assert.ok(b, 'once restored, it is backed up like any branch');
      assert.equal((await waitForBackup(server, `${dbPath}/branches/${name}`, b.id)).state, 'success');
      assert.ok((await results()).some((x) => x.Label === `shop/${name}`));
    } finally {
      await dropDatabase('postgresql', name);
    }
  });
});

describe('backupman list across many batches', () => {
  let server: TestServer;
  let key: string;
  const branchIds: string[] = [];

  before(async () => {
    server = await startServer({}, { runner: false });
    await registerBranch(server, 'default', 'many', 'postgresql', 'main', pgUrl('postgres'));
    await registerBranch(server, 'default', 'many', 'postgresql', 'other', pgUrl('postgres'));
    const db = server.ctx.db;
    const branches = await db.selectFrom('branches').selectAll().where('name', 'in', ['main', 'other']).orderBy('name').execute();
    branchIds.push(...branches.map((b) => b.id));
    // 530 backups over the two branches (the route sends 100 at a time): interleaved in time,
    // some sharing a created_at (the order then goes by id), some deleted, some skipped runs.
    const states = ['success', 'success', 'failed', 'canceled', 'ignored', 'running'] as const;
    const start = Date.UTC(2026, 0, 1);
    const rows: Array<Insertable<BackupsTable>> = [];
    for (let k = 0; k < 530; k++) {
      const b = branches[k % 3 === 0 ? 1 : 0];
      const t = nowIso(new Date(start + Math.floor(k / 2) * 3_600_000));
      rows.push({
        id: newId(), organization_id: b.organization_id, database_id: b.database_id, branch_id: b.id, name: `b${k}`, state: states[k % states.length],
        retention_value: 2, retention_unit: 'day', created_at: t, updated_at: t, started_at: t, completed_at: t, expires_at: nowIso(new Date(start + 400 * 86_400_000)),
        deleted_at: k % 13 === 0 ? t : null, engine: 'postgresql', compression: 'zstd', required: 0, protected: 0, emergency: 0,
      });
    }
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += 100) await trx.insertInto('backups').values(rows.slice(i, i + 100)).execute();
    });
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'bm-many' });
    assert.equal((await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, { accesses: ['read_backups'] })).status, 200);
    key = `${t.body.id}:${t.body.token}`;
  });
  after(async () => {
    await server?.close();
  });

  test('every live backup once, newest first, as one JSON document', async () => {
    const r = await api(server, 'GET', '/api/backups', undefined, null, { 'x-api-key': key });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertBackupmanList(REF, r.body);
    const expected = await server.ctx.db
      .selectFrom('backups')
      .select('id')
      .where('branch_id', 'in', branchIds)
      .where('deleted_at', 'is', null)
      .where('state', '!=', 'ignored')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    assert.ok(expected.length > 300, `${expected.length} backups listed: more than three batches`);
    assert.deepEqual(r.body.Results.map((b: { Id: string }) => b.Id), expected.map((e) => e.id));
  });
});
