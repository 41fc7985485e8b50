/**
 * Restores that are safe and use every good copy:
 * - the backup's own source database is refused however its URL spells the server
 *   (localhost, 127.0.0.1, [::ffff:127.0.0.1], [::1] through a forwarder), at request time
 *   and again by the job before it writes, and the source keeps the rows written since;
 * - a damaged copy (flipped bytes in the middle, or in the age header) falls through to
 *   the next copy, and says "copy in ... is damaged"; a key that matches nothing stops at
 *   once and says "no identity matches"; verification and download do the same;
 * - a backup that failed only because one destination did restores and verifies from the
 *   copy it stored; one whose dump failed is refused, saying why.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { s3DestinationConfig, startS3Server, type S3TestServer } from '../helpers/s3server.js';
import {
  createDatabase,
  createMysqlFixture,
  createPgFixture,
  dropDatabase,
  tableFingerprints,
  uniqueName,
  urlFor,
  withMysqlConnection,
  withPgClient,
  type Kind,
} from '../helpers/databases.js';

const ORG = '/v1/organizations/default';

const s3Config = (s3: S3TestServer, prefix: string) => s3DestinationConfig(s3, prefix, { connect_timeout_ms: 500, request_timeout_ms: 3000, max_attempts: 2 });

/** The same database as `url`, with the host (and port) spelled otherwise. */
function respell(url: string, host: string, port?: number): string {
  const u = new URL(url);
  u.hostname = host;
  if (port !== undefined) u.port = String(port);
  return u.toString();
}

/** A plain TCP forwarder on [::1] to 127.0.0.1:`port`: a proxy or tunnel in front of the same server. */
async function forwarder(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((res, rej) => server.once('error', rej).listen(0, '::1', () => res()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

async function countItems(kind: Kind, db: string): Promise<number> {
  if (kind === 'postgresql') return withPgClient(urlFor(kind, db), async (c) => Number((await c.query('select count(*) as n from items')).rows[0].n));
  return withMysqlConnection(urlFor(kind, db), async (c) => Number(((await c.query('select count(*) as n from items')) as any)[0][0].n));
}

async function addItem(kind: Kind, db: string, id: number): Promise<void> {
  const sql = `insert into items (id, name, qty, price, created_at) values (${id}, 'written after the backup', 1, 1, ${kind === 'postgresql' ? 'now()' : 'now(6)'})`;
  if (kind === 'postgresql') await withPgClient(urlFor(kind, db), (c) => c.query(sql));
  else await withMysqlConnection(urlFor(kind, db), (c) => c.query(sql));
}

async function waitForJob(server: TestServer, id: string): Promise<any> {
  return until(`job ${id}`, async () => {
    const j = await server.ctx.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return j.state === 'pending' || j.state === 'running' ? undefined : j;
  });
}

async function verifyAndWait(server: TestServer, backupPath: string, body: object): Promise<any> {
  const v = await api(server, 'POST', `${backupPath}/verify`, body);
  assert.equal(v.status, 202, JSON.stringify(v.body));
  return until('the verification', async () => {
    const x = (await api(server, 'GET', `${backupPath}/verifications`)).body.data.find((y: any) => y.id === v.body.id);
    return ['pending', 'running'].includes(x.state) ? undefined : x;
  });
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: the source database is refused by identity, not by spelling`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_rf_src');
    const toDrop = [source];
    const dbPath = `${ORG}/databases/idn_${kind === 'postgresql' ? 'pg' : 'my'}`;
    let branchPath: string;
    let backupId: string;
    let rowsAfterBackup: number;
    const serverPort = kind === 'postgresql' ? 5432 : 3306;

    before(async () => {
      server = await startServer();
      if (kind === 'postgresql') await createPgFixture(source);
      else await createMysqlFixture(source);
      branchPath = await registerBranch(server, 'default', dbPath.split('/').pop()!, kind, 'main', urlFor(kind, source));
      const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
      assert.equal(b.state, 'success');
      backupId = b.id;
      await addItem(kind, source, 900001);
      rowsAfterBackup = await countItems(kind, source);
    });
    after(async () => {
      await server?.close();
      for (const d of toDrop) await dropDatabase(kind, d);
    });

    test('every spelling of the source is refused at request time (409), and the source keeps its new rows', async () => {
      const proxy = await forwarder(serverPort);
      try {
        const spellings = [
          urlFor(kind, source),
          respell(urlFor(kind, source), 'localhost'),
          respell(urlFor(kind, source), '[::ffff:127.0.0.1]'),
          respell(urlFor(kind, source), '[::1]', proxy.port),
        ];
        for (const [i, url] of spellings.entries()) {
          const r = await api(server, 'POST', `${dbPath}/branches`, { name: `onto-source-${i}`, backup_id: backupId, connection_url: url, overwrite: true });
          assert.equal(r.status, 409, `${url}: ${JSON.stringify(r.body)}`);
          assert.match(r.body.message, /own source database/);
        }
      } finally {
        await proxy.close();
      }
      assert.equal(await countItems(kind, source), rowsAfterBackup);
      const branches = (await api(server, 'GET', `${dbPath}/branches`)).body.data.map((b: any) => b.name);
      assert.deepEqual(branches, ['main'], 'no branch was made for a refused restore');
    });

    test('another database on the same server, spelled "localhost", is still a fine target', async () => {
      const other = uniqueName('sbx_rf_other');
      toDrop.push(other);
      await createDatabase(kind, other);
      const r = await api(server, 'POST', `${dbPath}/branches`, { name: 'beside', backup_id: backupId, connection_url: respell(urlFor(kind, other), 'localhost') });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const done = await waitForRestore(server, dbPath, 'beside');
      assert.equal(done.restore.state, 'success', done.restore.error);
      assert.equal(await countItems(kind, other), rowsAfterBackup - 1);
    });

    test('the job checks again before writing: a target re-pointed at the source after the request is refused', async () => {
      const decoy = uniqueName('sbx_rf_decoy');
      toDrop.push(decoy);
      await createDatabase(kind, decoy);
      await server.runner.stop();
      try {
        const r = await api(server, 'POST', `${dbPath}/branches`, { name: 'late', backup_id: backupId, connection_url: urlFor(kind, decoy), overwrite: true });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        // Before the job runs, the new branch's URL is changed to the source, spelled otherwise.
        const p = await api(server, 'PATCH', `${dbPath}/branches/late`, { connection_url: respell(urlFor(kind, source), 'localhost') });
        assert.equal(p.status, 200, JSON.stringify(p.body));
      } finally {
        await server.runner.start();
      }
      const done = await waitForRestore(server, dbPath, 'late');
      assert.equal(done.restore.state, 'failed');
      assert.match(done.restore.error, /refused: .*own source database/);
      assert.equal(await countItems(kind, source), rowsAfterBackup, 'the source keeps the row written after the backup');
    });
  });
}

/** Flip 4 bytes of a file in place at `at`. */
function flipBytes(file: string, at: number): void {
  const buf = fs.readFileSync(file);
  for (let i = 0; i < 4; i++) buf[at + i] ^= 0xff;
  fs.writeFileSync(file, buf);
}

/**
 * Replace 4 characters of the age header's first recipient stanza body with other base64
 * characters: the header still parses, and age reports "no identity matched any of the
 * recipients", exactly as it does for a wrong key.
 */
function damageStanza(file: string): void {
  const buf = fs.readFileSync(file);
  const stanza = buf.indexOf('\n-> X25519 ');
  assert.ok(stanza > 0, 'an age file with an X25519 stanza');
  const body = buf.indexOf('\n', stanza + 1) + 1;
  for (let i = 0; i < 4; i++) buf[body + 4 + i] = buf[body + 4 + i] === 0x41 ? 0x42 : 0x41;
  fs.writeFileSync(file, buf);
}

function keygen(): string {
  return execFileSync('age-keygen', [], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
}

describe('damaged copies: the next copy is used, and the message says which copy is damaged', () => {
  let server: TestServer;
  let s3: S3TestServer;
  const sources: Record<Kind, string> = { postgresql: uniqueName('sbx_rf_dpg'), mysql: uniqueName('sbx_rf_dmy') };
  const toDrop: Array<[Kind, string]> = [];
  const paths: Record<Kind, { db: string; branch: string }> = {} as any;

  before(async () => {
    s3 = await startS3Server();
    server = await startServer();
    assert.equal((await api(server, 'POST', `${ORG}/storage-destinations`, { name: 'offsite', provider: 's3', config: s3Config(s3, 'faults') })).status, 201);
    for (const kind of ['postgresql', 'mysql'] as const) {
      const db = `dmg_${kind === 'postgresql' ? 'pg' : 'my'}`;
      toDrop.push([kind, sources[kind]]);
      if (kind === 'postgresql') await createPgFixture(sources[kind]);
      else await createMysqlFixture(sources[kind]);
      const branch = await registerBranch(server, 'default', db, kind, 'main', urlFor(kind, sources[kind]));
      assert.equal((await api(server, 'PATCH', `${ORG}/databases/${db}`, { storage_destinations: ['local', 'offsite'] })).status, 200);
      paths[kind] = { db: `${ORG}/databases/${db}`, branch };
    }
    assert.ok((await api(server, 'GET', `${ORG}`)).body.encryption_recipients.length > 0, 'backups are encrypted');
  });
  after(async () => {
    await server?.close();
    await s3?.close();
    for (const [kind, d] of toDrop) await dropDatabase(kind, d);
  });

  /** A new backup on both destinations; returns it and the file of its local copy. */
  async function backupBoth(kind: Kind): Promise<{ id: string; path: string; localFile: string; sha256: string }> {
    const b = await waitForBackup(server, paths[kind].branch, (await api(server, 'POST', `${paths[kind].branch}/backups`, {})).body.id);
    assert.equal(b.state, 'success');
    const arts = (await api(server, 'GET', `${paths[kind].branch}/backups/${b.id}/artifacts`)).body.data;
    assert.deepEqual(arts.map((a: any) => a.state).sort(), ['success', 'success']);
    const local = arts.find((a: any) => a.provider === 'local');
    return { id: b.id, path: `${paths[kind].branch}/backups/${b.id}`, localFile: path.join(server.dataDir, 'backups', local.path), sha256: local.sha256 };
  }

  async function restoreNew(kind: Kind, backupId: string, extra: object = {}): Promise<{ branch: any; job: any; name: string }> {
    const name = uniqueName('sbx_rf_r');
    toDrop.push([kind, name]);
    const r = await api(server, 'POST', `${paths[kind].db}/branches`, { name, backup_id: backupId, ...extra });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, paths[kind].db, name);
    return { branch, job: await waitForJob(server, branch.restore.id), name };
  }

  for (const kind of ['postgresql', 'mysql'] as const) {
    test(`${kind}: 4 flipped bytes in the middle of the local copy: restored from S3, the local copy named as damaged`, async () => {
      const b = await backupBoth(kind);
      flipBytes(b.localFile, Math.floor(fs.statSync(b.localFile).size / 2));
      const { branch, job, name } = await restoreNew(kind, b.id);
      assert.equal(branch.restore.state, 'success', branch.restore.error);
      const result = JSON.parse(job.result);
      assert.equal(result.destination, 'offsite');
      assert.equal(result.problems.length, 1);
      assert.match(result.problems[0], /^copy in "local" is damaged: /);
      assert.doesNotMatch(result.problems[0], /decrypt|identity/);
      assert.deepEqual(await tableFingerprints(kind, urlFor(kind, name)), await tableFingerprints(kind, urlFor(kind, sources[kind])));
      const local = (await api(server, 'GET', `${b.path}/artifacts`)).body.data.find((a: any) => a.provider === 'local');
      assert.equal(local.verification, 'failed');
      assert.match(local.error, /^damaged: /);
    });
  }

  test('damage in the age header that age reports as "no identity matched" is still found to be damage', async () => {
    const b = await backupBoth('postgresql');
    damageStanza(b.localFile);
    const { branch, job } = await restoreNew('postgresql', b.id);
    assert.equal(branch.restore.state, 'success', branch.restore.error);
    const result = JSON.parse(job.result);
    assert.equal(result.destination, 'offsite');
    assert.match(result.problems[0], /^copy in "local" is damaged: /);
  });

  test('a key that matches no recipient stops at the first intact copy and says "no identity matches"', async () => {
    const b = await backupBoth('postgresql');
    s3.resetRequests();
    const { branch } = await restoreNew('postgresql', b.id, { age_identity: keygen() });
    assert.equal(branch.restore.state, 'failed');
    assert.match(branch.restore.error, /no identity matches/);
    assert.doesNotMatch(branch.restore.error, /damaged/);
    assert.equal(s3.requests.GetObject ?? 0, 0, 'the S3 copy, the same ciphertext, was not tried');
  });

  test('every copy damaged: the restore fails naming each one, and the database it created is dropped', async () => {
    const b = await backupBoth('postgresql');
    flipBytes(b.localFile, Math.floor(fs.statSync(b.localFile).size / 2));
    // The S3 test server keeps each object as a file of its own, under a random name.
    const objects = path.join(s3.dir, 'objects');
    const remoteFile = fs.readdirSync(objects).map((f) => path.join(objects, f)).find((f) => createHash('sha256').update(fs.readFileSync(f)).digest('hex') === b.sha256);
    assert.ok(remoteFile, 'the S3 copy is found by its content');
    flipBytes(remoteFile, Math.floor(fs.statSync(remoteFile).size / 2));
    const { branch, name } = await restoreNew('postgresql', b.id);
    assert.equal(branch.restore.state, 'failed');
    assert.match(branch.restore.error, /copy in "local" is damaged.*copy in "offsite" is damaged/);
    assert.match(branch.restore.error, /was dropped/);
    assert.equal(await withPgClient(urlFor('postgresql', 'postgres'), async (c) => (await c.query('select 1 from pg_database where datname = $1', [name])).rowCount), 0);
  });

  test('verification names the damaged copy and restores the good one; download skips a copy known to be damaged', async () => {
    const b = await backupBoth('postgresql');
    flipBytes(b.localFile, Math.floor(fs.statSync(b.localFile).size / 2));
    // Before anyone knows: the download is cut off before its end, never a whole corrupt file...
    const first = await fetch(`${server.url}${b.path}/download`, { headers: { authorization: server.token } });
    const body = await first.arrayBuffer().then((x) => Buffer.from(x), () => null);
    if (first.status === 200) assert.equal(body, null, 'a copy found damaged at its end is cut off');
    else assert.match(JSON.parse(body!.toString()).message, /corrupt/);
    // ...and the damage it found is recorded, so the next download reads the S3 copy.
    await until('the damage recorded', async () => ((await api(server, 'GET', `${b.path}/artifacts`)).body.data.find((a: any) => a.provider === 'local').verification === 'failed' ? true : undefined), 5000);
    const second = await fetch(`${server.url}${b.path}/download`, { headers: { authorization: server.token } });
    assert.equal(second.status, 200);
    assert.equal(createHash('sha256').update(Buffer.from(await second.arrayBuffer())).digest('hex'), b.sha256);

    const full = await verifyAndWait(server, b.path, { restore: true });
    assert.equal(full.state, 'failed', 'a damaged copy fails the verification');
    assert.match(full.error, /copy in "local" is damaged/);
    const local = full.result.artifacts.find((a: any) => a.destination === 'local');
    assert.equal(local.damaged, true);
    assert.equal(full.result.artifacts.find((a: any) => a.destination === 'offsite').ok, true);
    assert.equal(full.result.restore.ok, true, full.result.restore.error);
  });
});

describe('a backup that failed only because one destination did', () => {
  let server: TestServer;
  let s3: S3TestServer;
  const source = uniqueName('sbx_rf_part');
  const gone = uniqueName('sbx_rf_gone');
  const toDrop = [source, gone];
  const dbPath = `${ORG}/databases/partial`;
  let branchPath: string;

  before(async () => {
    s3 = await startS3Server();
    server = await startServer();
    await createPgFixture(source);
    branchPath = await registerBranch(server, 'default', 'partial', 'postgresql', 'main', urlFor('postgresql', source));
    assert.equal((await api(server, 'POST', `${ORG}/storage-destinations`, { name: 'offsite', provider: 's3', config: s3Config(s3, 'partial') })).status, 201);
    assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'offsite'] })).status, 200);
  });
  after(async () => {
    await server?.close();
    await s3?.close();
    for (const d of toDrop) await dropDatabase('postgresql', d);
  });

  test('restores and verifies from its stored copy; the artifacts list shows which copy is good', async () => {
    s3.goAway();
    let b: any;
    try {
      b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    } finally {
      s3.restore();
    }
    assert.equal(b.state, 'failed');
    const arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.equal(arts.find((a: any) => a.provider === 'local').state, 'success');
    assert.equal(arts.find((a: any) => a.provider === 's3').state, 'failed');

    const name = uniqueName('sbx_rf_part_r');
    toDrop.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const restored = await waitForRestore(server, dbPath, name);
    assert.equal(restored.restore.state, 'success', restored.restore.error);
    assert.deepEqual(await tableFingerprints('postgresql', urlFor('postgresql', name)), await tableFingerprints('postgresql', urlFor('postgresql', source)));

    const v = await verifyAndWait(server, `${branchPath}/backups/${b.id}`, { restore: true });
    assert.equal(v.state, 'success', v.error);
    assert.deepEqual(v.result.artifacts.map((a: any) => a.destination), ['local']);
    assert.equal(v.result.restore.ok, true);
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${b.id}`)).body.state, 'failed', 'the backup stays failed until repair stores every copy');
  });

  test('a backup whose dump failed has no copy: restore, verify and download are refused, saying why', async () => {
    await createPgFixture(gone);
    const goneBranch = await registerBranch(server, 'default', 'partial', 'postgresql', 'doomed', urlFor('postgresql', gone));
    await dropDatabase('postgresql', gone);
    const b = await waitForBackup(server, goneBranch, (await api(server, 'POST', `${goneBranch}/backups`, {})).body.id);
    assert.equal(b.state, 'failed');
    const r = await api(server, 'POST', `${dbPath}/branches`, { name: 'from-nothing', backup_id: b.id });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /dump never completed.*does not exist/);
    const v = await api(server, 'POST', `${goneBranch}/backups/${b.id}/verify`, {});
    assert.equal(v.status, 409);
    assert.match(v.body.message, /dump never completed/);
    const d = await api(server, 'GET', `${goneBranch}/backups/${b.id}/download`);
    assert.equal(d.status, 409);
    assert.match(d.body.message, /dump never completed/);
  });
});
