/**
 * Lookups reused under the catalog's change stamp (src/catalog/memo.ts) never answer with
 * what a write changed, whoever wrote: this process through the catalog, another connection
 * (another process), or a transaction in progress reading its own writes. Runs on the
 * matrix's catalog: SQLite keeps lookups wherever they are made; PostgreSQL only inside an
 * API request's scope (the last two tests), where a request sees what was committed before
 * it began, and its own writes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCatalog, type Catalog } from '../../src/catalog/db.js';
import { createOrganization } from '../../src/catalog/organizations.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import { secretBox } from '../../src/secrets.js';
import { resolveBranch } from '../../src/api/resolve.js';
import { listBackups } from '../../src/catalog/backup-list.js';
import { requestScope } from '../../src/catalog/memo.js';
import { createBackup } from '../../src/catalog/backups.js';
import type { Principal } from '../../src/api/auth.js';
import type { ServiceToken } from '../../src/catalog/schema.js';
import { uniqueName } from '../helpers/databases.js';
import { newTestCatalog, type TestCatalog } from '../helpers/catalog.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const secrets = secretBox(Buffer.alloc(32, 9));
let tc: TestCatalog;
let catalog: Catalog;
let other: Catalog; // another connection to the same catalog: what another process sees and writes
let dataDir: string;
let orgName: string;
let databaseId: string;
let branchId: string;
const principal = { token: { superuser: 1, organization_id: null } as unknown as ServiceToken, accesses: [] } as Principal;

before(async () => {
  tc = await newTestCatalog();
  catalog = await openCatalog(tc.url);
  other = await openCatalog(tc.url);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-memo-'));
  orgName = uniqueName('org').replace(/_/g, '-');
  const org = await createOrganization(catalog.db, secrets, dataDir, orgName);
  const now = nowIso();
  databaseId = newId();
  branchId = newId();
  await catalog.db.insertInto('databases').values({ id: databaseId, organization_id: org.id, name: 'app', kind: 'postgresql', created_at: now, updated_at: now, deleted_at: null, storage_destinations: null }).execute();
  await catalog.db
    .insertInto('branches')
    .values({ id: branchId, organization_id: org.id, database_id: databaseId, name: 'main', production: 0, connection_url_enc: null, conn_host: 'h', conn_port: 5432, conn_database: 'x', conn_user: 'x', server_version: '15', created_at: now, updated_at: now, deleted_at: null, restored_from_backup_id: null, restore_job_id: null })
    .execute();
});
after(async () => {
  await other?.close();
  await catalog?.close();
  await tc?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const resolve = (name: string, db = catalog.db) => resolveBranch(db, principal, orgName, 'app', name);

test('a branch renamed by another connection is seen at once, under both names', async () => {
  assert.equal((await resolve('main')).branch.id, branchId);
  assert.equal((await resolve('main')).branch.id, branchId, 'asked again (a memo hit on SQLite)');
  await other.db.updateTable('branches').set({ name: 'renamed' }).where('id', '=', branchId).execute();
  await assert.rejects(resolve('main'), /Branch "main" not found/);
  assert.equal((await resolve('renamed')).branch.name, 'renamed');
  // And back, through this process's own connection.
  await catalog.db.updateTable('branches').set({ name: 'main' }).where('id', '=', branchId).execute();
  await assert.rejects(resolve('renamed'), /not found/);
  assert.equal((await resolve('main')).branch.name, 'main');
});

test('a transaction reads its own writes, and its rollback leaves nothing behind', async () => {
  assert.equal((await resolve('main')).branch.production, 0);
  await catalog.db
    .transaction()
    .execute(async (trx) => {
      await trx.updateTable('branches').set({ production: 1 }).where('id', '=', branchId).execute();
      assert.equal((await resolveBranch(trx, principal, orgName, 'app', 'main')).branch.production, 1);
      throw new Error('roll back');
    })
    .catch((e: Error) => assert.equal(e.message, 'roll back'));
  assert.equal((await resolve('main')).branch.production, 0);
});

test('what a lookup returns is frozen: it is shared until the next write', async () => {
  const { branch } = await resolve('main');
  assert.throws(() => {
    (branch as { name: string }).name = 'changed in place';
  }, TypeError);
  assert.equal((await resolve('main')).branch.name, 'main');
});

test("a list's total_count and pages follow backups written by another connection", async () => {
  const filter = { branchId, includeDeleted: false };
  const cols = ['id', 'name'] as const;
  assert.equal((await listBackups(catalog.db, filter, 1, 10, cols)).total, 0);
  const insert = async (db: Catalog['db'], i: number) => {
    const { database, branch } = await resolve('main');
    const destination = await db.selectFrom('storage_destinations').select(['id', 'name']).where('organization_id', '=', database.organization_id).executeTakeFirstOrThrow();
    const { id } = await createBackup(db, { database, branch, retentionValue: 1, retentionUnit: 'month', emergency: false, actor: null, compression: 'zstd', now: new Date(Date.UTC(2026, i % 12, 1 + i)) });
    const at = nowIso();
    const size = 1000 + i;
    await db.insertInto('artifacts').values({ id: newId(), backup_id: id, destination_id: destination.id, destination_name: destination.name, provider: 'local', path: `p${i}`, size, sha256: null, state: 'success', error: null, created_at: at, updated_at: at } as never).execute();
    return { id, size };
  };
  const made: Array<{ id: string; size: number }> = [];
  for (let i = 0; i < 5; i++) made.push(await insert(other.db, i));
  const page = await listBackups(catalog.db, filter, 1, 10, cols);
  assert.equal(page.total, 5);
  assert.deepEqual(new Set(page.rows.map((r) => r.id)), new Set(made.map((m) => m.id)));
  for (const r of page.rows) assert.equal(r.stored_bytes, made.find((m) => m.id === r.id)!.size, 'stored_bytes: the good copies, summed with the page');
  made.push(await insert(catalog.db, 7));
  assert.equal((await listBackups(catalog.db, filter, 1, 10, cols)).total, 6);
  await other.db.updateTable('backups').set({ deleted_at: nowIso() }).where('id', '=', made[0].id).execute();
  const after = await listBackups(catalog.db, filter, 1, 2, cols);
  assert.equal(after.total, 5);
  assert.ok(!after.rows.some((r) => r.id === made[0].id));
  assert.equal((await listBackups(catalog.db, filter, 3, 2, cols)).rows.length, 1, 'the last page, after a skip by the month counts');
});

// An API request's scope (app.ts): on PostgreSQL its lookups share one stamp, read once.
const inRequest = <T>(fn: () => Promise<T>): Promise<T> => requestScope.run({}, fn);

test('each request sees what was committed before it began, whoever wrote it', async () => {
  assert.equal((await inRequest(() => resolve('main'))).branch.name, 'main');
  await inRequest(async () => {
    assert.equal((await resolve('main')).branch.id, branchId);
    assert.equal((await resolve('main')).branch.id, branchId, 'asked twice in one request');
  });
  await other.db.updateTable('branches').set({ name: 'moved' }).where('id', '=', branchId).execute();
  await inRequest(async () => {
    await assert.rejects(resolve('main'), /not found/);
    assert.equal((await resolve('moved')).branch.id, branchId);
  });
  await other.db.updateTable('branches').set({ name: 'main' }).where('id', '=', branchId).execute();
  assert.equal((await inRequest(() => resolve('main'))).branch.id, branchId);
});

test('a request that writes reads its own writes, even what it looked up before writing', async () => {
  await inRequest(async () => {
    await assert.rejects(resolve('made-here'), /not found/, 'looked up (and kept as missing) first');
    await catalog.db.updateTable('branches').set({ name: 'made-here' }).where('id', '=', branchId).execute();
    assert.equal((await resolve('made-here')).branch.id, branchId);
    await assert.rejects(resolve('main'), /not found/);
  });
  await inRequest(() => catalog.db.updateTable('branches').set({ name: 'main' }).where('id', '=', branchId).execute());
  await inRequest(async () => {
    assert.equal((await resolve('main')).branch.id, branchId);
    await assert.rejects(resolve('made-here'), /not found/);
  });
});
