/**
 * The Yandex Cloud managed-database view (/managed-postgresql/v1, /managed-mysql/v1) on
 * real PostgreSQL and MariaDB: shapes checked against the reference documents, keyset
 * paging, engine separation, auth, and backup / restore / delete operations end to end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { createDatabase, createMysqlFixture, createPgFixture, dropDatabase, mysqlUrl, pgUrl, tableFingerprints, uniqueName, urlFor } from '../helpers/databases.js';
import { assertYandexList, RFC3339, yandexReference } from '../helpers/compat-reference.js';
import { Scheduler } from '../../src/jobs/scheduler.js';

const PG = '/managed-postgresql/v1';
const MY = '/managed-mysql/v1';
const PG_REF = yandexReference('yandex-mdb-postgresql-list-backups.md');
const MY_REF = yandexReference('yandex-mdb-mysql-list-backups.md');
const isInt64 = (v: unknown) => typeof v === 'string' && /^\d+$/.test(v);
/** Fields API-NOTES adds to the MySQL document's Backup (which lists fewer); `status` on both. */
const PG_EXTRA = { status: (v: unknown) => v === 'DONE' || v === 'CREATING' };
const MY_EXTRA = { ...PG_EXTRA, size: isInt64, journalSize: isInt64, type: (v: unknown) => v === 'AUTOMATED' || v === 'MANUAL' };

describe('Yandex Cloud compatible view', () => {
  let server: TestServer;
  // A clock that can be moved forward, so a backup policy's slot comes without waiting.
  let offset = 0;
  const pgSource = uniqueName('sbx_ya_pg');
  const mySource = uniqueName('sbx_ya_my');
  const pgDrop: string[] = [pgSource];
  const myDrop: string[] = [mySource];
  let pgPath: string;
  let myPath: string;
  let pgCluster: string;
  let myCluster: string;
  let orgId: string;
  /** <id>:<secret> of tokens of the default organization, and of another one. */
  let full: string;
  let reader: string;
  let restoreOnly: string;
  let stranger: string;
  let firstBackup: string;

  const bearer = (t: string | null) => (t === null ? null : `Bearer ${t}`);
  const ya = (method: string, url: string, body?: unknown, token: string | null = full) => api(server, method, url, body, bearer(token));

  async function token(org: string, accesses: string[]): Promise<string> {
    const t = await api(server, 'POST', `/v1/organizations/${org}/service-tokens`, { name: `ya-${accesses.join('+')}` });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const g = await api(server, 'POST', `/v1/organizations/${org}/service-tokens/${t.body.id}/accesses`, { accesses });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    return `${t.body.id}:${t.body.token}`;
  }

  async function waitOperation(prefix: string, id: string, tokenValue: string = full): Promise<any> {
    return until(`operation ${id}`, async () => {
      const r = await ya('GET', `${prefix}/operations/${id}`, undefined, tokenValue);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.done ? r.body : undefined;
    }, 90_000);
  }

  /** Cluster.Backup, then wait for its operation. */
  async function backupNow(prefix: string, cluster: string): Promise<any> {
    const r = await ya('POST', `${prefix}/clusters/${cluster}:backup`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return waitOperation(prefix, r.body.id);
  }

  async function allIds(prefix: string, url: string): Promise<string[]> {
    const r = await ya('GET', `${prefix}${url}${url.includes('?') ? '&' : '?'}pageSize=1000`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.backups.map((b: any) => b.id);
  }

  function assertError(r: { status: number; body: any }, status: number, code: number, message?: RegExp): void {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['code', 'details', 'message']);
    assert.equal(r.body.code, code, JSON.stringify(r.body));
    assert.equal(typeof r.body.message, 'string');
    assert.deepEqual(r.body.details, []);
    if (message) assert.match(r.body.message, message);
  }

  function assertOperation(op: any, prefix: string, metadataType: string): void {
    assert.equal(typeof op.id, 'string');
    assert.equal(typeof op.description, 'string');
    assert.ok(RFC3339.test(op.createdAt) && RFC3339.test(op.modifiedAt), JSON.stringify(op));
    assert.equal(typeof op.createdBy, 'string');
    assert.equal(typeof op.done, 'boolean');
    const engine = prefix === PG ? 'postgresql' : 'mysql';
    assert.equal(op.metadata['@type'], `type.googleapis.com/yandex.cloud.mdb.${engine}.v1.${metadataType}`);
    assert.ok(!('response' in op && 'error' in op), 'response and error are exclusive');
    if (!op.done) assert.ok(!('response' in op) && !('error' in op));
  }

  before(async () => {
    server = await startServer({}, { clock: () => new Date(Date.now() + offset) });
    await createPgFixture(pgSource);
    await createMysqlFixture(mySource);
    pgPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl(pgSource));
    myPath = await registerBranch(server, 'default', 'store', 'mysql', 'main', mysqlUrl(mySource));
    pgCluster = (await api(server, 'GET', pgPath)).body.id;
    myCluster = (await api(server, 'GET', myPath)).body.id;
    orgId = (await api(server, 'GET', '/v1/organizations')).body.data.find((o: any) => o.name === 'default').id;
    full = await token('default', ['read_backups', 'write_backups', 'delete_backups', 'restore_backup']);
    reader = await token('default', ['read_backups']);
    restoreOnly = await token('default', ['restore_backup']);
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'other' })).status, 201);
    stranger = await token('other', ['read_backups', 'write_backups', 'delete_backups', 'restore_backup']);
  });
  after(async () => {
    await server?.close();
    for (const d of pgDrop) await dropDatabase('postgresql', d);
    for (const d of myDrop) await dropDatabase('mysql', d);
  });

  test('the reference documents parse: their JSON examples have exactly the fields of their tables', () => {
    for (const ref of [PG_REF, MY_REF]) {
      const itemFields = ref.fields.filter((f) => f.path.startsWith('backups[].')).map((f) => f.path.slice('backups[].'.length));
      assert.deepEqual(Object.keys(ref.example.backups[0]).sort(), [...itemFields].sort());
      assert.deepEqual(Object.keys(ref.example).sort(), ['backups', 'nextPageToken']);
    }
    assert.deepEqual(PG_REF.fields.find((f) => f.path === 'backups[].type')?.enum, ['AUTOMATED', 'MANUAL']);
  });

  test('auth: Bearer <id>:<secret> is required; 401, 403 and 404 in the Yandex error shape', async () => {
    const url = `${PG}/clusters/${pgCluster}/backups`;
    assertError(await ya('GET', url, undefined, null), 401, 16);
    assertError(await api(server, 'GET', url, undefined, full), 401, 16, undefined); // no "Bearer"
    assertError(await api(server, 'GET', url, undefined, 'Bearer garbage'), 401, 16);
    assertError(await api(server, 'GET', url, undefined, `Bearer ${full.split(':')[0]}:wrongsecretwrongsecret`), 401, 16);
    assert.equal((await ya('GET', url, undefined, reader)).status, 200);
    assertError(await ya('GET', url, undefined, restoreOnly), 403, 7, /read_backups/);
    // Another organization's token never learns that the cluster exists.
    assertError(await ya('GET', url, undefined, stranger), 404, 5);
    assertError(await ya('POST', `${PG}/clusters/${pgCluster}:backup`, undefined, stranger), 404, 5);
    assertError(await ya('GET', `${PG}/backups?folderId=${orgId}`, undefined, stranger), 404, 5);
    assertError(await ya('GET', `${PG}/no/such/route`), 404, 5);
  });

  test('Cluster.Backup: an Operation, CREATING until it is DONE, then a MANUAL backup in every list', async () => {
    // With the worker paused, the backup stays pending: CREATING, and refused for restore and delete.
    await server.runner.stop();
    const r = await ya('POST', `${PG}/clusters/${pgCluster}:backup`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const op = r.body;
    assertOperation(op, PG, 'BackupClusterMetadata');
    assert.equal(op.done, false);
    assert.match(op.id, /^bk-/);
    assert.equal(op.createdBy, full.split(':')[0]);
    assert.equal(op.metadata.clusterId, pgCluster);
    const id = op.metadata.backupId;
    firstBackup = id;
    const creating = await ya('GET', `${PG}/backups/${id}`);
    assert.equal(creating.status, 200, JSON.stringify(creating.body));
    assert.equal(creating.body.status, 'CREATING');
    assert.equal(creating.body.createdAt, creating.body.startedAt, 'not started: both are the time it was asked for');
    assert.deepEqual(await allIds(PG, `/clusters/${pgCluster}/backups`), [id]);
    assertError(await ya('POST', `${PG}/clusters:restore`, { backupId: id, name: uniqueName('sbx_ya_no') }), 409, 9, /DONE/);
    assertError(await ya('DELETE', `${PG}/backups/${id}`), 409, 9, /DONE/);
    await server.runner.start();

    const done = await waitOperation(PG, op.id);
    assertOperation(done, PG, 'BackupClusterMetadata');
    assert.equal(done.error, undefined, JSON.stringify(done));
    const native = await waitForBackup(server, pgPath, id);
    assert.equal(native.state, 'success');
    assert.deepEqual(done.response, {
      '@type': 'type.googleapis.com/yandex.cloud.mdb.postgresql.v1.Backup',
      id,
      folderId: orgId,
      createdAt: native.completed_at,
      sourceClusterId: pgCluster,
      startedAt: native.started_at,
      size: String(native.size),
      type: 'MANUAL',
      method: 'BASE',
      journalSize: '0',
      status: 'DONE',
    });
    assert.ok(Number(done.response.size) > 0);
    const { '@type': _t, ...backup } = done.response;
    assert.deepEqual((await ya('GET', `${PG}/backups/${id}`, undefined, reader)).body, backup);

    const list = await ya('GET', `${PG}/clusters/${pgCluster}/backups`);
    assertYandexList(PG_REF, list.body, { lastPage: true, extra: PG_EXTRA });
    assert.deepEqual(list.body.backups, [backup]);
    const folder = await ya('GET', `${PG}/backups?folderId=${orgId}`);
    assertYandexList(PG_REF, folder.body, { lastPage: true, extra: PG_EXTRA });
    assert.deepEqual(folder.body.backups, [backup]);
    // The colon may come percent-encoded.
    const encoded = await ya('POST', `${PG}/clusters/${pgCluster}%3Abackup`);
    assert.equal(encoded.status, 200, JSON.stringify(encoded.body));
    await waitOperation(PG, encoded.body.id);
    // Only ":backup" is an action of a cluster.
    assertError(await ya('POST', `${PG}/clusters/${pgCluster}:explode`), 404, 5);
  });

  test('keyset pages of 2 over 7 backups: chained tokens, no duplicate or gap, stable while a backup is added', async () => {
    for (let i = 0; i < 5; i++) await backupNow(PG, pgCluster);
    const url = `${PG}/clusters/${pgCluster}/backups`;
    const before = await allIds(PG, `/clusters/${pgCluster}/backups`);
    assert.equal(before.length, 7);
    // Newest first, in the order the native API lists them.
    const native = (await api(server, 'GET', `${pgPath}/backups?per_page=100`)).body.data.map((b: any) => b.id);
    assert.deepEqual(before, native);

    const seen: string[] = [];
    let r = await ya('GET', `${url}?pageSize=2`);
    assertYandexList(PG_REF, r.body, { lastPage: false, extra: PG_EXTRA });
    seen.push(...r.body.backups.map((b: any) => b.id));
    // A new backup arrives between two page requests: the pages already handed out do not shift.
    const added = await backupNow(PG, pgCluster);
    let pages = 1;
    while (r.body.nextPageToken !== undefined) {
      assert.equal(r.body.backups.length, 2);
      assert.ok(r.body.nextPageToken.length <= 100 && r.body.nextPageToken.length > 0);
      r = await ya('GET', `${url}?pageSize=2&pageToken=${encodeURIComponent(r.body.nextPageToken)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assertYandexList(PG_REF, r.body, { lastPage: r.body.nextPageToken === undefined, extra: PG_EXTRA });
      seen.push(...r.body.backups.map((b: any) => b.id));
      pages++;
    }
    assert.equal(pages, 4);
    assert.equal(r.body.backups.length, 1);
    assert.deepEqual(seen, before, 'every backup once, in order');
    const now = await allIds(PG, `/clusters/${pgCluster}/backups`);
    assert.deepEqual(now, [added.metadata.backupId, ...before], 'the new one comes first');
    // The same tokens page the folder list (also newest first).
    assert.deepEqual(await allIds(PG, `/backups?folderId=${orgId}`), now);
    const f1 = await ya('GET', `${PG}/backups?folderId=${orgId}&pageSize=3`);
    const f2 = await ya('GET', `${PG}/backups?folderId=${orgId}&pageSize=3&pageToken=${f1.body.nextPageToken}`);
    assert.deepEqual([...f1.body.backups, ...f2.body.backups].map((b: any) => b.id), now.slice(0, 6));
  });

  test('pageSize and pageToken are validated: 400 INVALID_ARGUMENT with a clear message', async () => {
    const url = `${PG}/clusters/${pgCluster}/backups`;
    const all = await allIds(PG, `/clusters/${pgCluster}/backups`);
    const zero = await ya('GET', `${url}?pageSize=0`);
    assert.equal(zero.status, 200);
    assert.deepEqual(zero.body.backups.map((b: any) => b.id), all, '0 means the default (100)');
    assert.ok(!('nextPageToken' in zero.body));
    assert.equal((await ya('GET', `${url}?pageSize=1000`)).status, 200);
    assertError(await ya('GET', `${url}?pageSize=1001`), 400, 3, /pageSize/);
    assertError(await ya('GET', `${url}?pageSize=-1`), 400, 3, /pageSize/);
    assertError(await ya('GET', `${url}?pageSize=two`), 400, 3, /pageSize/);
    assertError(await ya('GET', `${url}?pageToken=${'a'.repeat(101)}`), 400, 3, /pageToken/);
    assertError(await ya('GET', `${url}?pageToken=not*a*token`), 400, 3, /pageToken .* not a page token/);
    assertError(await ya('GET', `${url}?pageToken=Zm9v`), 400, 3, /pageToken/); // base64url of "foo"
    const forged = Buffer.from(JSON.stringify({ c: 'yesterday', i: 'x' })).toString('base64url');
    assertError(await ya('GET', `${url}?pageToken=${forged}`), 400, 3, /pageToken/);
    assert.deepEqual((await ya('GET', `${url}?pageToken=`)).body.backups.map((b: any) => b.id), all, 'an empty token is the first page');
    assertError(await ya('GET', `${PG}/clusters/${'c'.repeat(51)}/backups`), 400, 3, /clusterId/);
    assertError(await ya('GET', `${PG}/clusters/nosuchcluster/backups`), 404, 5, /nosuchcluster/);
    assertError(await ya('GET', `${PG}/backups`), 400, 3, /folderId/);
    assertError(await ya('GET', `${PG}/backups?folderId=nosuchfolder`), 404, 5);
  });

  test('each prefix sees only its engine; MySQL backups have the MySQL shapes', async () => {
    assertError(await ya('GET', `${PG}/clusters/${myCluster}/backups`), 404, 5);
    assertError(await ya('POST', `${PG}/clusters/${myCluster}:backup`), 404, 5);
    assertError(await ya('GET', `${MY}/clusters/${pgCluster}/backups`), 404, 5);
    assertError(await ya('GET', `${MY}/backups/${firstBackup}`), 404, 5);
    assertError(await ya('GET', `${MY}/operations/bk-${firstBackup}`), 404, 5);
    assertError(await ya('DELETE', `${MY}/backups/${firstBackup}`), 404, 5);

    const r = await ya('POST', `${MY}/clusters/${myCluster}:backup`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertOperation(r.body, MY, 'BackupClusterMetadata');
    assert.match(r.body.description, /MySQL/);
    const done = await waitOperation(MY, r.body.id);
    assert.equal(done.response['@type'], 'type.googleapis.com/yandex.cloud.mdb.mysql.v1.Backup');
    assert.equal(done.response.status, 'DONE');
    assert.ok(!('method' in done.response), 'method is PostgreSQL only');
    const list = await ya('GET', `${MY}/clusters/${myCluster}/backups`);
    assertYandexList(MY_REF, list.body, { lastPage: true, extra: MY_EXTRA });
    assert.deepEqual(list.body.backups.map((b: any) => b.id), [done.metadata.backupId]);
    assert.deepEqual(await allIds(MY, `/backups?folderId=${orgId}`), [done.metadata.backupId]);
    assert.ok(!(await allIds(PG, `/backups?folderId=${orgId}`)).includes(done.metadata.backupId));
  });

  test('failed backups are not listed, and GET of one is NOT_FOUND; their operation carries the error', async () => {
    const gone = uniqueName('sbx_ya_gone');
    await createDatabase('postgresql', gone);
    const brokenPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'broken', pgUrl(gone));
    await dropDatabase('postgresql', gone);
    const cluster = (await api(server, 'GET', brokenPath)).body.id;
    const op = await backupNow(PG, cluster);
    assert.equal(op.response, undefined);
    assert.equal(op.error.code, 13);
    assert.ok(op.error.message.length > 0);
    assert.deepEqual(op.error.details, []);
    const id = op.metadata.backupId;
    assert.equal((await waitForBackup(server, brokenPath, id)).state, 'failed');
    assert.deepEqual(await allIds(PG, `/clusters/${cluster}/backups`), []);
    assert.ok(!(await allIds(PG, `/backups?folderId=${orgId}`)).includes(id));
    assertError(await ya('GET', `${PG}/backups/${id}`), 404, 5);
    assertError(await ya('DELETE', `${PG}/backups/${id}`), 404, 5);
    assertError(await ya('POST', `${PG}/clusters:restore`, { backupId: id, name: uniqueName('sbx_ya_no') }), 404, 5);
  });

  test('a backup made by a backup policy is AUTOMATED', async () => {
    const policies = (await api(server, 'GET', '/v1/organizations/default/databases/shop/backup-policies')).body.data;
    const dev = policies.find((p: any) => p.target === 'development');
    // Move the clock just past the development policy's next slot and let the scheduler run.
    offset = Date.parse(dev.next_run_at) - Date.now() + 60_000;
    const result = await new Scheduler(server.ctx).tick();
    const ours = await server.ctx.db.selectFrom('backups').select(['id', 'backup_policy_id']).where('branch_id', '=', pgCluster).where('id', 'in', result.queued).execute();
    assert.equal(ours.length, 1, JSON.stringify(result));
    assert.equal(ours[0].backup_policy_id, dev.id);
    const done = await waitOperation(PG, `bk-${ours[0].id}`);
    assert.equal(done.response.type, 'AUTOMATED');
    assert.equal(done.createdBy, '', 'no token asked for it');
    const listed = (await ya('GET', `${PG}/clusters/${pgCluster}/backups?pageSize=1`)).body.backups[0];
    assert.equal(listed.id, ours[0].id);
    assert.equal(listed.type, 'AUTOMATED');
    assert.equal(listed.status, 'DONE');
    // Every other one was asked for by hand.
    const rest = (await ya('GET', `${PG}/clusters/${pgCluster}/backups`)).body.backups.slice(1);
    assert.ok(rest.length >= 8 && rest.every((b: any) => b.type === 'MANUAL'));
  });

  for (const [prefix, kind] of [[PG, 'postgresql'], [MY, 'mysql']] as const) {
    test(`${kind}: Cluster.Restore into a new cluster: an Operation whose cluster has the same tables`, async () => {
      const cluster = kind === 'postgresql' ? pgCluster : myCluster;
      const source = kind === 'postgresql' ? pgSource : mySource;
      const [backupId] = await allIds(prefix, `/clusters/${cluster}/backups`);
      const name = uniqueName('sbx_ya_rs');
      (kind === 'postgresql' ? pgDrop : myDrop).push(name);
      // Yandex's other fields are accepted and ignored.
      const body = { backupId, name, folderId: orgId, environment: 'PRODUCTION', configSpec: { resources: { resourcePresetId: 's2.micro' } }, hostSpecs: [{ zoneId: 'ru-central1-a' }], time: new Date().toISOString() };
      assertError(await ya('POST', `${prefix}/clusters:restore`, body, reader), 403, 7, /restore_backup/);
      // The worker paused: the new cluster exists but is still being restored.
      await server.runner.stop();
      const r = await ya('POST', `${prefix}/clusters:restore`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assertOperation(r.body, prefix, 'RestoreClusterMetadata');
      assert.match(r.body.id, /^rs-/);
      assert.equal(r.body.done, false);
      assert.equal(r.body.metadata.backupId, backupId);
      const newCluster = r.body.metadata.clusterId;
      assert.notEqual(newCluster, cluster);
      assert.equal((await ya('GET', `${prefix}/operations/${r.body.id}`, undefined, reader)).body.done, false);
      assertError(await ya('POST', `${prefix}/clusters/${newCluster}:backup`), 409, 9, /still being restored/);
      await server.runner.start();

      const done = await waitOperation(prefix, r.body.id);
      assert.equal(done.error, undefined, JSON.stringify(done.error));
      assert.deepEqual(done.response, { '@type': `type.googleapis.com/yandex.cloud.mdb.${kind}.v1.Cluster`, id: newCluster, folderId: orgId, name, status: 'RUNNING' });
      assert.deepEqual(await tableFingerprints(kind, urlFor(kind, name)), await tableFingerprints(kind, urlFor(kind, source)));
      // The new cluster is a cluster like any other.
      assert.deepEqual((await ya('GET', `${prefix}/clusters/${newCluster}/backups`)).body, { backups: [] });

      assertError(await ya('POST', `${prefix}/clusters:restore`, { backupId, name }), 409, 6, /already exists/);
      assertError(await ya('POST', `${prefix}/clusters:restore`, { backupId }), 400, 3, /name/);
      assertError(await ya('POST', `${prefix}/clusters:restore`, { backupId: 7, name: 'x' }), 400, 3, /backupId/);
      assertError(await ya('POST', `${prefix}/clusters:restore`, { backupId, name: 'Not A Name' }), 400, 3, /name/);
      assertError(await ya('POST', `${prefix}/clusters:restore`, '{"backupId": '), 400, 3, /JSON/);
      assertError(await ya('POST', `${prefix}/clusters:restore`, { backupId: 'nosuchbackup', name: 'x' }), 404, 5);
      assertError(await ya('POST', `${prefix === PG ? MY : PG}/clusters:restore`, { backupId, name: 'x' }), 404, 5, /not found/);
      assertError(await ya('GET', `${prefix}/operations/${r.body.id}`, undefined, stranger), 404, 5);
    });
  }

  test('Backup.Delete: a done Operation, then the backup is gone from every list; protected ones are FAILED_PRECONDITION', async () => {
    const id = firstBackup;
    assert.equal((await api(server, 'PATCH', `${pgPath}/backups/${id}`, { protected: true })).status, 200);
    assertError(await ya('DELETE', `${PG}/backups/${id}`), 409, 9, /protected/);
    assert.equal((await api(server, 'PATCH', `${pgPath}/backups/${id}`, { protected: false })).status, 200);
    assertError(await ya('DELETE', `${PG}/backups/${id}`, undefined, reader), 403, 7, /delete_backups/);
    assertError(await ya('GET', `${PG}/operations/dl-${id}`), 404, 5, /not found/);
    const [artifact] = (await api(server, 'GET', `${pgPath}/backups/${id}/artifacts`)).body.data;
    const file = path.join(server.dataDir, 'backups', artifact.path);
    assert.ok(fs.existsSync(file));

    const r = await ya('DELETE', `${PG}/backups/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertOperation(r.body, PG, 'DeleteBackupMetadata');
    assert.equal(r.body.id, `dl-${id}`);
    assert.equal(r.body.done, true);
    assert.equal(r.body.metadata.backupId, id);
    assert.deepEqual(r.body.response, { '@type': 'type.googleapis.com/google.protobuf.Empty' });
    const again = await ya('GET', `${PG}/operations/dl-${id}`, undefined, reader);
    assert.equal(again.status, 200);
    assert.equal(again.body.done, true);

    assert.ok(!fs.existsSync(file), 'the stored copy is removed');
    assert.ok((await api(server, 'GET', `${pgPath}/backups/${id}`)).body.deleted_at);
    assertError(await ya('GET', `${PG}/backups/${id}`), 404, 5);
    assert.ok(!(await allIds(PG, `/clusters/${pgCluster}/backups`)).includes(id));
    assert.ok(!(await allIds(PG, `/backups?folderId=${orgId}`)).includes(id));
    assertError(await ya('DELETE', `${PG}/backups/${id}`), 404, 5);
  });

  test('unknown operations are NOT_FOUND', async () => {
    for (const id of ['nope', 'bk-nosuchbackup', 'rs-nosuchjob', 'dl-nosuchbackup', 'bk-', 'x'.repeat(100)]) {
      assertError(await ya('GET', `${PG}/operations/${id}`), 404, 5);
    }
  });

  test('the OpenAPI document describes both mounts', async () => {
    const doc = await api(server, 'GET', '/openapi.json', undefined, null);
    const paths = Object.keys(doc.body.paths);
    for (const p of [PG, MY]) {
      assert.ok(paths.includes(`${p}/clusters/{clusterId}/backups`), paths.join('\n'));
      assert.ok(paths.includes(`${p}/operations/{operationId}`));
      assert.ok(paths.includes(`${p}/clusters:restore`), paths.join('\n'));
      assert.ok(paths.includes(`${p}/clusters/{clusterId}:backup`), paths.join('\n'));
    }
  });
});
