/**
 * Nothing of a failed or dead write stays in storage (issue 10, defect 11): an S3 upload
 * whose abort failed too kept its parts for ever (31 MB seen), so the retention sweeper
 * now lists unfinished writes through the providers (capabilities.listPartials) and
 * removes the stale ones, never those of a backup still running. Real PostgreSQL, a real
 * S3-compatible server with fault injection, real folders.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { sweepExpired, sweepStalePartials } from '../../src/jobs/retention.js';
import { localProvider } from '../../src/storage/local/index.js';
import { openDestination } from '../../src/destinations.js';
import type { AppContext } from '../../src/context.js';

async function openDestinationByName(ctx: AppContext, name: string) {
  return openDestination(ctx, await ctx.db.selectFrom('storage_destinations').selectAll().where('name', '=', name).executeTakeFirstOrThrow());
}

describe('leftovers of unfinished writes', () => {
  let server: TestServer;
  let s3: S3TestServer;
  const source = uniqueName('sbx_left');
  const branchPath = '/v1/organizations/default/databases/left/branches/main';

  before(async () => {
    s3 = await startS3Server();
    server = await startServer();
    await createDatabase('postgresql', source);
    // More than one 5 MiB part once compressed and encrypted, so the upload is multipart.
    await withPgClient(pgUrl(source), (c) => c.query('create table t as select g, md5(g::text) || md5(random()::text) as v from generate_series(1, 250000) g'));
    await registerBranch(server, 'default', 'left', 'postgresql', 'main', pgUrl(source));
    const config = {
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: s3.bucket,
      prefix: 'left',
      force_path_style: true,
      access_key_id: s3.accessKeyId,
      secret_access_key: s3.secretAccessKey,
      part_size_mb: 5,
      queue_size: 2,
      max_attempts: 2,
    };
    assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config })).status, 201);
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default/databases/left', { storage_destinations: ['local', 'offsite'] })).status, 200);
  });
  after(async () => {
    await server?.close();
    const left = s3?.openUploads() ?? [];
    await s3?.close();
    await dropDatabase('postgresql', source);
    assert.deepEqual(left, [], 'no unfinished upload outlives the tests');
  });

  test('an S3 upload whose abort failed as well is swept at the next pass; one nobody accounts for once a day old', async () => {
    // Parts are refused for good, and so is the abort: the writer can remove nothing.
    s3.fail('UploadPart', 1000, 403, 'AccessDenied');
    s3.fail('AbortMultipartUpload', 1000, 500, 'InternalError');
    let b;
    try {
      b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id, 60_000);
    } finally {
      s3.fail('UploadPart', 0);
      s3.fail('AbortMultipartUpload', 0);
    }
    const arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    const remote = arts.find((a: any) => a.provider === 's3');
    assert.equal(remote.state, 'failed');
    assert.match(remote.error, /AccessDenied|Access Denied|denied/i);
    const open = s3.openUploads();
    assert.deepEqual(open.map((u) => u.key), [`left/${remote.path}`], 'the upload the writer could not abort');

    // An upload no backup accounts for (another tool's, a writer whose row is gone): only by age.
    const stranger = await openDestinationByName(server.ctx, 'offsite');
    const unknownKey = 'default/left/main/20200101T000000Z-unknown/dump.pgdump.zst';
    const w = await stranger.create(unknownKey);
    w.stream.on('error', () => {});
    w.stream.write(Buffer.alloc(6 * 1024 * 1024 + 1));
    await until('the unknown upload to begin', async () => (s3.openUploads().length === 2 ? true : undefined), 10_000);

    // The backup has ended: its leftover goes at once, however young.
    assert.deepEqual(await sweepStalePartials(server.ctx), [{ destination: 'offsite', key: remote.path }]);
    assert.deepEqual(s3.openUploads().map((u) => u.key), [`left/${unknownKey}`], 'younger than a day: could be a live writer');
    assert.deepEqual(await sweepStalePartials(server.ctx, { maxAgeMs: 0 }), [{ destination: 'offsite', key: unknownKey }]);
    assert.deepEqual(s3.openUploads(), []);
    w.stream.destroy();
  });

  test("a running backup's partial is never swept; a dead writer's is, with its empty folder", async () => {
    const root = path.join(server.dataDir, 'backups');
    // A writer whose process died: its partial file and the folders it made stay behind.
    const deadKey = 'default/left/main/20200101T000000Z-deadwriter/dump.pgdump.zst';
    const dead = await localProvider(root).create(deadKey);
    await new Promise<void>((r) => dead.stream.write(Buffer.alloc(1000), () => r()));

    const locker = new pg.Client({ connectionString: pgUrl(source) });
    await locker.connect();
    let id: string;
    try {
      // The dump waits on the lock, with its partial files already open in both destinations.
      await locker.query('begin; lock table t in access exclusive mode');
      id = (await api(server, 'POST', `${branchPath}/backups`, {})).body.id;
      const livePath = await until('the live backup to open its copies', async () => {
        const arts = (await api(server, 'GET', `${branchPath}/backups/${id}/artifacts`)).body.data;
        const local = arts.find((a: any) => a.provider === 'local' && a.state === 'pending');
        if (!local) return undefined;
        const dir = path.join(root, path.dirname(local.path));
        return fs.existsSync(dir) && fs.readdirSync(dir).some((n) => n.includes('.partial-')) ? local.path : undefined;
      });
      const removed = await sweepStalePartials(server.ctx, { maxAgeMs: 0 });
      assert.deepEqual(removed.filter((r) => r.destination === 'local'), [{ destination: 'local', key: deadKey }]);
      assert.ok(!removed.some((r) => r.key === livePath), 'the live backup keeps its partial');
      assert.equal(fs.existsSync(path.join(root, 'default/left/main/20200101T000000Z-deadwriter')), false, 'the dead writer\'s folder went with it');
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
      dead.stream.destroy();
    }
    const b = await waitForBackup(server, branchPath, id, 60_000);
    assert.equal(b.state, 'success', 'the live backup finished: its partials were left alone');
  });

  test('the retention pass sweeps at its first run in a process', async () => {
    const root = path.join(server.dataDir, 'backups');
    const key = 'default/left/main/20200101T000000Z-firstpass/dump.pgdump.zst';
    const w = await localProvider(root).create(key);
    await new Promise<void>((r) => w.stream.write(Buffer.alloc(10), () => r()));
    const partial = fs.readdirSync(path.join(root, path.dirname(key)))[0];
    // A day and a minute old.
    const old = new Date(Date.now() - 24 * 3600_000 - 60_000);
    fs.utimesSync(path.join(root, path.dirname(key), partial), old, old);
    try {
      const first = await sweepExpired(server.ctx);
      assert.deepEqual(first.partialsRemoved, [{ destination: 'local', key }]);
      assert.equal(fs.existsSync(path.join(root, path.dirname(key))), false);
      assert.deepEqual((await sweepExpired(server.ctx)).partialsRemoved, [], 'then hourly, not at every pass');
    } finally {
      w.stream.destroy();
    }
  });
});
