/**
 * Encryption: artifacts are age files; restoring needs an identity, a missing or wrong
 * one is a clear error, one given with the request works and is not kept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createPgFixture, dropDatabase, pgUrl, tableFingerprints, uniqueName } from '../helpers/databases.js';

function keygen(): { identity: string; recipient: string } {
  const out = execFileSync('age-keygen', [], { encoding: 'utf8' });
  return { identity: out.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!, recipient: /# public key: (\S+)/.exec(out)![1] };
}

describe('encryption', () => {
  let server: TestServer;
  const source = uniqueName('sbx_enc');
  const toDrop = [source];
  const dbPath = '/v1/organizations/default/databases/app';
  let branchPath: string;
  let generatedKey: string;

  before(async () => {
    server = await startServer();
    await createPgFixture(source);
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source));
    const org = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
    generatedKey = `${server.dataDir}/age/${org.id}.key`;
  });
  after(async () => {
    await server?.close();
    for (const d of toDrop) await dropDatabase('postgresql', d);
  });

  test('the default organization has a generated identity, mode 0600, whose public key is its recipient', async () => {
    assert.equal(fs.statSync(generatedKey).mode & 0o777, 0o600);
    const org = await api(server, 'GET', '/v1/organizations/default');
    const pub = /# public key: (\S+)/.exec(fs.readFileSync(generatedKey, 'utf8'))![1];
    assert.deepEqual(org.body.encryption_recipients, [pub]);
  });

  test('without an identity a restore fails clearly; with age_identity in the request it works and the key is not kept', async () => {
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'success');
    const identity = fs.readFileSync(generatedKey, 'utf8');
    fs.renameSync(generatedKey, `${generatedKey}.offline`); // "moved offline"
    try {
      const n1 = uniqueName('sbx_enc_a');
      toDrop.push(n1);
      await api(server, 'POST', `${dbPath}/branches`, { name: n1, backup_id: b.id });
      const r1 = await waitForRestore(server, dbPath, n1);
      assert.equal(r1.restore.state, 'failed');
      assert.match(r1.restore.error, /encrypted.*no identity is available.*STRONGBOX_AGE_IDENTITY_FILE.*age_identity/);

      const wrong = keygen();
      const n2 = uniqueName('sbx_enc_b');
      toDrop.push(n2);
      await api(server, 'POST', `${dbPath}/branches`, { name: n2, backup_id: b.id, age_identity: wrong.identity });
      const r2 = await waitForRestore(server, dbPath, n2);
      assert.equal(r2.restore.state, 'failed');
      assert.match(r2.restore.error, /cannot decrypt the backup/);
      assert.ok(!r2.restore.error.includes('AGE-SECRET-KEY'));

      const bad = await api(server, 'POST', `${dbPath}/branches`, { name: 'x1', backup_id: b.id, age_identity: 'AGE-SECRET-KEY-1' + 'X'.repeat(58) + 'not-a-key' });
      assert.equal(bad.status, 422);
      assert.ok(!bad.body.message.includes('not-a-key'), 'the identity is never echoed');

      const n3 = uniqueName('sbx_enc_c');
      toDrop.push(n3);
      const ok = await api(server, 'POST', `${dbPath}/branches`, { name: n3, backup_id: b.id, age_identity: identity });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.ok(!JSON.stringify(ok.body).includes('AGE-SECRET-KEY'));
      const r3 = await waitForRestore(server, dbPath, n3);
      assert.equal(r3.restore.state, 'success', r3.restore.error);
      assert.deepEqual(await tableFingerprints('postgresql', pgUrl(n3)), await tableFingerprints('postgresql', pgUrl(source)));
      const jobs = await server.ctx.db.selectFrom('jobs').select('secret_enc').execute();
      assert.ok(jobs.every((j) => j.secret_enc === null), 'no identity stays in the catalog after its job');
      assert.deepEqual(fs.readdirSync(`${server.dataDir}/tmp`), [], 'no temporary identity file left');
    } finally {
      fs.renameSync(`${generatedKey}.offline`, generatedKey);
    }
  });

  test('recipients can be replaced: new backups go to the new key only', async () => {
    const mine = keygen();
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default', { encryption_recipients: ['age1notakey'] })).status, 422);
    const p = await api(server, 'PATCH', '/v1/organizations/default', { encryption_recipients: [mine.recipient] });
    assert.equal(p.status, 200);
    assert.deepEqual(p.body.encryption_recipients, [mine.recipient]);
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    const res = await fetch(`${server.url}${branchPath}/backups/${b.id}/download`, { headers: { authorization: server.token } });
    const bytes = Buffer.from(await res.arrayBuffer());
    const keyFile = `${server.dataDir}/mine.key`;
    fs.writeFileSync(keyFile, mine.identity + '\n', { mode: 0o600 });
    const plain = execFileSync('age', ['-d', '-i', keyFile], { input: bytes });
    assert.equal(execFileSync('zstd', ['-d', '-c'], { input: plain }).subarray(0, 5).toString(), 'PGDMP');
    assert.throws(() => execFileSync('age', ['-d', '-i', generatedKey], { input: bytes, stdio: 'pipe' }), 'the old key cannot read it');

    // A full verification restores, so it needs the key too.
    const v = await api(server, 'POST', `${branchPath}/backups/${b.id}/verify`, { restore: true, age_identity: mine.identity });
    assert.equal(v.status, 202);
    const ver = await until('the verification', async () => {
      const x = (await api(server, 'GET', `${branchPath}/backups/${b.id}/verifications`)).body.data[0];
      return ['pending', 'running'].includes(x.state) ? undefined : x;
    });
    assert.equal(ver.state, 'success', ver.error);
    // Turning encryption off is explicit.
    assert.deepEqual((await api(server, 'PATCH', '/v1/organizations/default', { encryption_recipients: [] })).body.encryption_recipients, []);
    const plainBackup = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    const arts = (await api(server, 'GET', `${branchPath}/backups/${plainBackup.id}/artifacts`)).body.data;
    assert.match(arts[0].path, /dump\.pgdump\.zst$/);
  });
});
