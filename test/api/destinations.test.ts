/**
 * Storage destinations, fan-out to several at once, repair of a failed copy, and
 * rebuilding the catalog from storage after it is lost.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createPgFixture, dropDatabase, pgUrl, tableFingerprints, uniqueName } from '../helpers/databases.js';

describe('storage destinations', () => {
  let server: TestServer;
  const source = uniqueName('sbx_dest');
  const toDrop = [source];
  const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-dest-'));
  const dbPath = '/v1/organizations/default/databases/app';
  let branchPath: string;

  before(async () => {
    server = await startServer();
    await createPgFixture(source);
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
  });
  after(async () => {
    await server?.close();
    for (const d of toDrop) await dropDatabase('postgresql', d);
    fs.rmSync(extra, { recursive: true, force: true });
  });

  test('create, list, get, patch, with validation and a probe', async () => {
    const list = await api(server, 'GET', '/v1/organizations/default/storage-destinations');
    assert.deepEqual(list.body.data.map((d: any) => [d.name, d.provider, d.default]), [['local', 'local', true]]);
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'bad', provider: 'local', config: { path: 'relative/dir' } })).status, 422);
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'bad', provider: 'ftp', config: {} })).status, 422);
    const unwritable = path.join(extra, 'a-file');
    fs.writeFileSync(unwritable, 'x');
    const r = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'bad', provider: 'local', config: { path: path.join(unwritable, 'sub') } });
    assert.equal(r.status, 422);
    assert.match(r.body.message, /cannot use this destination/);
    const ok = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'second', provider: 'local', config: { path: path.join(extra, 'second') } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(ok.body.default, false);
    assert.deepEqual(fs.readdirSync(path.join(extra, 'second')), [], 'the probe object was cleaned up');
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'second', provider: 'local', config: { path: extra } })).status, 409);
    assert.equal((await api(server, 'GET', '/v1/organizations/default/storage-destinations/second')).body.config.path, path.join(extra, 'second'));
  });

  test('one dump, two destinations: identical artifacts, each restorable; the database chooses', async () => {
    assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'nope'] })).status, 422);
    const p = await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'second'] });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.deepEqual(p.body.storage_destinations, ['local', 'second']);
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'success');
    const arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.deepEqual(arts.map((a: any) => a.destination).sort(), ['local', 'second']);
    assert.equal(arts[0].sha256, arts[1].sha256);
    const second = arts.find((a: any) => a.destination === 'second');
    const file = path.join(extra, 'second', second.path);
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'), second.sha256);
    assert.ok(fs.existsSync(path.join(path.dirname(file), 'manifest.json')), 'a manifest beside every copy');

    // Break the local copy: the restore falls back to the second destination's.
    const local = arts.find((a: any) => a.destination === 'local');
    const localFile = path.join(server.dataDir, 'backups', local.path);
    const bytes = fs.readFileSync(localFile);
    bytes[100] ^= 0xff;
    fs.writeFileSync(localFile, bytes);
    const name = uniqueName('sbx_dest_r');
    toDrop.push(name);
    await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id });
    const branch = await waitForRestore(server, dbPath, name);
    assert.equal(branch.restore.state, 'success', branch.restore.error);
    assert.deepEqual(await tableFingerprints('postgresql', pgUrl(name)), await tableFingerprints('postgresql', pgUrl(source)));
    const job = await server.ctx.db.selectFrom('jobs').select('result').where('id', '=', branch.restore.id).executeTakeFirstOrThrow();
    assert.equal(JSON.parse(job.result!).destination, 'second');
    assert.match(JSON.parse(job.result!).problems[0], /corrupt/);
  });

  test('a destination that fails does not stop the other; repair makes the backup whole', async () => {
    const dir = path.join(extra, 'flaky');
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'flaky', provider: 'local', config: { path: dir } })).status, 201);
    assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'flaky'] })).status, 200);
    // The destination goes away: its folder becomes a file, so nothing can be written there.
    fs.rmSync(dir, { recursive: true, force: true });
    fs.writeFileSync(dir, 'not a folder');
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'failed');
    const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', b.id).executeTakeFirstOrThrow();
    assert.match(row.error ?? '', /flaky/, 'the reason names the destination');
    let arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.equal(arts.find((a: any) => a.destination === 'local').state, 'success', 'the good copy is kept');
    assert.equal(arts.find((a: any) => a.destination === 'flaky').state, 'failed');
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${b.id}/download`)).status, 200, 'and usable');

    fs.rmSync(dir);
    const r = await api(server, 'POST', `${branchPath}/backups/${b.id}/repair`);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    await until('repair', async () => {
      const j = await server.ctx.db.selectFrom('jobs').select('state').where('id', '=', r.body.id).executeTakeFirstOrThrow();
      return ['pending', 'running'].includes(j.state) ? undefined : j;
    });
    arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.deepEqual(arts.map((a: any) => a.state), ['success', 'success']);
    assert.equal(arts[0].sha256, arts[1].sha256);
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${b.id}`)).body.state, 'success');
    assert.equal((await api(server, 'POST', `${branchPath}/backups/${b.id}/repair`)).status, 409, 'nothing left to repair');
  });

  test('a destination holding live artifacts cannot be deleted', async () => {
    const r = await api(server, 'DELETE', '/v1/organizations/default/storage-destinations/second');
    assert.equal(r.status, 409);
    const empty = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'unused', provider: 'local', config: { path: path.join(extra, 'unused') } });
    assert.equal(empty.status, 201);
    assert.equal((await api(server, 'DELETE', '/v1/organizations/default/storage-destinations/unused')).status, 204);
    assert.equal((await api(server, 'GET', '/v1/organizations/default/storage-destinations/unused')).status, 404);
  });
});

describe('catalog rebuild', () => {
  test('after the catalog file is lost, backups come back from the manifests and restore', async () => {
    const source = uniqueName('sbx_rebuild');
    const restored = uniqueName('sbx_rebuilt');
    await createPgFixture(source);
    const first = await startServer();
    const dataDir = first.dataDir;
    let second: TestServer | undefined;
    try {
      const branchPath = await registerBranch(first, 'default', 'shop', 'postgresql', 'main', pgUrl(source), true);
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push((await waitForBackup(first, branchPath, (await api(first, 'POST', `${branchPath}/backups`, { name: `b${i}` })).body.id)).id);
      // Lose the catalog (not the data, not the keys).
      await first.loseCatalog();

      second = await startServer({ STRONGBOX_DATA_DIR: dataDir });
      assert.equal((await api(second, 'GET', branchPath)).status, 404, 'the catalog is empty');
      const r = await api(second, 'POST', '/v1/organizations/default/storage-destinations/local/rebuild');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { manifests: 2, backups_added: 2, artifacts_added: 2, databases_added: 1, branches_added: 1, problems: [] });
      const list = await api(second, 'GET', `${branchPath}/backups`);
      assert.deepEqual(list.body.data.map((b: any) => b.id).sort(), [...ids].sort());
      assert.ok(list.body.data.every((b: any) => b.state === 'success' && b.size > 0));
      const again = await api(second, 'POST', '/v1/organizations/default/storage-destinations/local/rebuild');
      assert.equal(again.body.backups_added, 0, 'rebuilding twice adds nothing');

      // New backups need the connection URL again; restores work from storage alone.
      const nb = await api(second, 'POST', `${branchPath}/backups`, {});
      assert.equal(nb.status, 409);
      assert.match(nb.body.message, /no connection URL/);
      assert.equal((await api(second, 'PATCH', branchPath, { connection_url: pgUrl(source) })).status, 200);
      await api(second, 'POST', '/v1/organizations/default/databases/shop/branches', { name: restored, backup_id: ids[1] });
      const b = await waitForRestore(second, '/v1/organizations/default/databases/shop', restored);
      assert.equal(b.restore.state, 'success', b.restore.error);
      assert.deepEqual(await tableFingerprints('postgresql', pgUrl(restored)), await tableFingerprints('postgresql', pgUrl(source)));
      // The manifest's contents came back too: a rebuilt backup still verifies by contents.
      const v = await api(second, 'POST', `${branchPath}/backups/${ids[0]}/verify`, { restore: true });
      assert.equal(v.status, 202, JSON.stringify(v.body));
      const done = await until('the full verification', async () => {
        const list = await api(second!, 'GET', `${branchPath}/backups/${ids[0]}/verifications`);
        const x = list.body.data.find((e: any) => e.id === v.body.id);
        return x && x.state !== 'pending' && x.state !== 'running' ? x : undefined;
      }, 120_000);
      assert.equal(done.state, 'success', JSON.stringify(done.result));
      assert.equal(done.result.restore.method, 'contents');
    } finally {
      await second?.close();
      await dropDatabase('postgresql', source);
      await dropDatabase('postgresql', restored);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
