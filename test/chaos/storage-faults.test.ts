/**
 * Storage faults, through the fault-injecting proxy in front of the test S3 server:
 * - 20 % of part uploads fail (HTTP 500; one in five, at seeded places): backups still succeed through the
 *   provider's retries, and what S3 stores is byte for byte what was recorded;
 * - the endpoint goes away in the middle of an upload: the local copy still succeeds, the
 *   backup is failed naming the S3 destination, and once the endpoint is back a repair
 *   completes the backup (and nothing of the broken upload stays behind).
 * The seed is printed; STRONGBOX_CHAOS_SEED=<seed> replays the same draws.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { chaosSeed, seededRandom } from '../helpers/cluster.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { dropDatabase, uniqueName } from '../helpers/databases.js';
import { createSource, localObjects, s3DestinationConfig, s3Objects, urlOf } from '../helpers/chaos.js';

describe('storage faults', () => {
  const seed = chaosSeed();
  let s3: S3TestServer;
  let server: TestServer;
  const source = uniqueName('sbx_sf');
  const prefix = `faults-${Date.now().toString(36)}`;
  let branchPath: string;
  const say = (m: string) => `[seed ${seed}] ${m}`;

  before(async () => {
    process.stdout.write(`chaos seed: ${seed} (replay with STRONGBOX_CHAOS_SEED=${seed})\n`);
    s3 = await startS3Server();
    server = await startServer();
    // 16 MiB of random bytes: about four 5 MiB parts per copy.
    await createSource('postgresql', source, 1000, 16);
    // Enough attempts that a part failing every time at 20 % (0.2^8) does not happen in a CI lifetime.
    const d = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3DestinationConfig(s3, prefix, { max_attempts: 8 }) });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', urlOf('postgresql', source));
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default/databases/shop', { storage_destinations: ['local', 'offsite'] })).status, 200);
  });
  after(async () => {
    await server?.close();
    await s3?.close();
    await dropDatabase('postgresql', source);
  });

  const artifactsOf = async (id: string) => (await api(server, 'GET', `${branchPath}/backups/${id}/artifacts`)).body.data as any[];

  /** Every copy of these backups is stored, with the recorded sha256, in S3 and locally (storage read once). */
  async function assertCopiesIntact(ids: string[]): Promise<void> {
    const ours = (key: string) => ids.some((id) => key.includes(id));
    const remote = await s3Objects(s3, prefix, ours);
    const local = localObjects(path.join(server.dataDir, 'backups'), ours);
    for (const id of ids) {
      const arts = await artifactsOf(id);
      for (const a of arts) {
        const obj = (a.provider === 's3' ? remote : local).find((o) => o.key === a.path);
        assert.ok(obj, say(`${a.destination} copy of ${id} is stored`));
        assert.equal(obj.sha256, a.sha256, say(`${a.destination} copy of ${id} has the recorded sha256`));
      }
      assert.equal(new Set(arts.map((a) => a.sha256)).size, 1, say('both copies are identical'));
    }
  }

  test('20 % of part uploads failing: backups still succeed through retries, byte for byte', async (t) => {
    s3.resetRequests();
    s3.failShare(0.2, seededRandom(seed));
    const ids: string[] = [];
    try {
      // Two at once, so that the failures hit parts of concurrent uploads too.
      for (let round = 0; round < 2; round++) {
        const posted = await Promise.all([0, 1].map(async () => (await api(server, 'POST', `${branchPath}/backups`, {})).body.id as string));
        for (const id of posted) {
          const b = await waitForBackup(server, branchPath, id, 120_000);
          ids.push(b.id);
          assert.equal(b.state, 'success', say(`backup ${b.id} with 20 % part failures: ${JSON.stringify(await artifactsOf(b.id))}`));
        }
      }
    } finally {
      s3.failShare(0, Math.random);
    }
    t.diagnostic(`${ids.length} backups, ${s3.requests.UploadPart} part uploads, ${s3.injected.UploadPart ?? 0} failed on purpose`);
    // Four backups of four parts or so: at least three runs of five part uploads.
    assert.ok((s3.injected.UploadPart ?? 0) >= 3, say(`part uploads were really failed: ${JSON.stringify(s3.injected)} of ${JSON.stringify(s3.requests)}`));
    await assertCopiesIntact(ids);
    assert.deepEqual(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`)), [], say('no unfinished multipart upload'));
  });

  test('the endpoint goes away mid-upload: local succeeds, the backup says why, repair completes it later', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    const id = r.body.id;
    try {
      await until('a part stored in S3', async () => (s3.openUploads().some((u) => u.key.startsWith(`${prefix}/`) && u.key.includes(id) && u.parts >= 1) ? true : undefined), 60_000, 20);
      s3.goAway();
      const b = await waitForBackup(server, branchPath, id, 120_000);
      assert.equal(b.state, 'failed');
    } finally {
      s3.restore();
    }
    const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', id).executeTakeFirstOrThrow();
    assert.match(row.error ?? '', /offsite/, 'the reason names the destination that failed');
    let arts = await artifactsOf(id);
    assert.equal(arts.find((a) => a.provider === 'local').state, 'success');
    assert.equal(arts.find((a) => a.provider === 's3').state, 'failed');

    const rep = await api(server, 'POST', `${branchPath}/backups/${id}/repair`);
    assert.equal(rep.status, 202, JSON.stringify(rep.body));
    const job = await until('the repair', async () => {
      const j = await server.ctx.db.selectFrom('jobs').select(['state', 'error']).where('id', '=', rep.body.id).executeTakeFirstOrThrow();
      return j.state === 'pending' || j.state === 'running' ? undefined : j;
    }, 120_000);
    assert.equal(job.state, 'success', job.error ?? '');
    arts = await artifactsOf(id);
    assert.deepEqual(arts.map((a) => a.state), ['success', 'success']);
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${id}`)).body.state, 'success');
    await assertCopiesIntact([id]);
    // The upload cut off by the outage could not be aborted then; it must not stay forever.
    assert.deepEqual(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`)), [], 'the upload broken by the outage was aborted');
  });
});
