/**
 * One dump, many safe copies, with a real S3-compatible server on this machine: local and
 * S3 at once, S3 part failures retried, S3 going away (the local copy still good, repair
 * later), and the catalog rebuilt from S3 alone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { s3DestinationConfig, startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { createPgFixture, dropDatabase, pgUrl, tableFingerprints, uniqueName } from '../helpers/databases.js';

const s3Config = (s3: S3TestServer, prefix: string) => s3DestinationConfig(s3, prefix, { connect_timeout_ms: 1000, request_timeout_ms: 5000, max_attempts: 4 });

async function restoreInto(server: TestServer, backupId: string, name: string): Promise<any> {
  const r = await api(server, 'POST', '/v1/organizations/default/databases/shop/branches', { name, backup_id: backupId });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return waitForRestore(server, '/v1/organizations/default/databases/shop', name);
}

describe('local + S3', () => {
  let server: TestServer;
  let s3: S3TestServer;
  const source = uniqueName('sbx_s3');
  const toDrop = [source];
  let branchPath: string;

  before(async () => {
    s3 = await startS3Server();
    server = await startServer();
    await createPgFixture(source);
    // Enough data for several 5 MiB parts after compression and encryption.
    const { withPgClient } = await import('../helpers/databases.js');
    await withPgClient(pgUrl(source), (c) => c.query("create table noise as select g, md5(random()::text) || md5(random()::text) as v from generate_series(1, 400000) g"));
    branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl(source));
    const d = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3Config(s3, 'strongbox') });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    assert.equal(d.body.config.secret_access_key, '[redacted]');
    assert.ok(!JSON.stringify(d.body).includes(s3.secretAccessKey));
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default/databases/shop', { storage_destinations: ['local', 'offsite'] })).status, 200);
  });
  after(async () => {
    await server?.close();
    await s3?.close();
    for (const d of toDrop) await dropDatabase('postgresql', d);
  });

  test('both copies are identical, and each restores on its own', async () => {
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'success');
    assert.ok(b.size > 10 * 1024 * 1024, 'a multipart upload');
    const arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    const local = arts.find((a: any) => a.provider === 'local');
    const remote = arts.find((a: any) => a.provider === 's3');
    assert.equal(local.state, 'success');
    assert.equal(remote.state, 'success');
    assert.equal(local.sha256, remote.sha256);
    assert.ok(s3.requests.UploadPart >= 2);
    // Take the local copy away: the restore reads the S3 one.
    fs.rmSync(path.join(server.dataDir, 'backups', local.path));
    const name = uniqueName('sbx_s3_r');
    toDrop.push(name);
    const restored = await restoreInto(server, b.id, name);
    assert.equal(restored.restore.state, 'success', restored.restore.error);
    assert.deepEqual(await tableFingerprints('postgresql', pgUrl(name)), await tableFingerprints('postgresql', pgUrl(source)));
  });

  test('failed part uploads are retried and the copy is still good', async () => {
    s3.failParts(2);
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'success');
    const v = await api(server, 'POST', `${branchPath}/backups/${b.id}/verify`, {});
    const done = await until('verify', async () => {
      const list = await api(server, 'GET', `${branchPath}/backups/${b.id}/verifications`);
      const x = list.body.data.find((y: any) => y.id === v.body.id);
      return ['pending', 'running'].includes(x.state) ? undefined : x;
    });
    assert.equal(done.state, 'success', done.error);
    assert.equal(done.result.artifacts.length, 2);
  });

  test('when S3 goes away the local copy still succeeds; repair fills S3 in later', async () => {
    s3.goAway();
    let b: any;
    try {
      b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    } finally {
      s3.restore();
    }
    assert.equal(b.state, 'failed');
    const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', b.id).executeTakeFirstOrThrow();
    assert.match(row.error ?? '', /offsite/);
    let arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.equal(arts.find((a: any) => a.provider === 'local').state, 'success');
    assert.equal(arts.find((a: any) => a.provider === 's3').state, 'failed');
    assert.deepEqual(s3.openUploads(), [], 'no unfinished multipart upload left behind');

    const r = await api(server, 'POST', `${branchPath}/backups/${b.id}/repair`);
    assert.equal(r.status, 202);
    await until('repair', async () => {
      const j = await server.ctx.db.selectFrom('jobs').select('state').where('id', '=', r.body.id).executeTakeFirstOrThrow();
      return ['pending', 'running'].includes(j.state) ? undefined : j;
    });
    arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.deepEqual(arts.map((a: any) => a.state), ['success', 'success']);
    assert.equal(arts[0].sha256, arts[1].sha256);
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${b.id}`)).body.state, 'success');
  });
});

describe('catalog rebuild from S3', () => {
  test('delete the catalog file, rebuild from S3, restore a backup', async () => {
    const s3 = await startS3Server();
    const source = uniqueName('sbx_s3rb');
    const restored = uniqueName('sbx_s3rb_r');
    await createPgFixture(source);
    const first = await startServer();
    const dataDir = first.dataDir;
    let second: TestServer | undefined;
    try {
      const branchPath = await registerBranch(first, 'default', 'shop', 'postgresql', 'main', pgUrl(source));
      assert.equal((await api(first, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3Config(s3, 'rb') })).status, 201);
      assert.equal((await api(first, 'PATCH', '/v1/organizations/default/databases/shop', { storage_destinations: ['offsite'] })).status, 200);
      const b = await waitForBackup(first, branchPath, (await api(first, 'POST', `${branchPath}/backups`, {})).body.id);
      assert.equal(b.state, 'success');
      await first.loseCatalog();
      fs.rmSync(path.join(dataDir, 'backups'), { recursive: true, force: true });

      second = await startServer({ STRONGBOX_DATA_DIR: dataDir });
      assert.equal((await api(second, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3Config(s3, 'rb') })).status, 201);
      const r = await api(second, 'POST', '/v1/organizations/default/storage-destinations/offsite/rebuild');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.backups_added, 1);
      assert.deepEqual(r.body.problems, []);
      await api(second, 'PATCH', branchPath, { connection_url: pgUrl(source) });
      const branch = await restoreInto(second, b.id, restored);
      assert.equal(branch.restore.state, 'success', branch.restore.error);
      assert.deepEqual(await tableFingerprints('postgresql', pgUrl(restored)), await tableFingerprints('postgresql', pgUrl(source)));
    } finally {
      await second?.close();
      await s3.close();
      await dropDatabase('postgresql', source);
      await dropDatabase('postgresql', restored);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
