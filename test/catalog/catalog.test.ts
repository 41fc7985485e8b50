/**
 * The catalog is dialect-agnostic: these tests run on the matrix's catalog (SQLite, then
 * PostgreSQL: see helpers/catalog.ts). Claiming work is exclusive even with several
 * workers racing on one catalog, and a lapsed lease is taken over.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { openCatalog, migrate, type Catalog } from '../../src/catalog/db.js';
import { createOrganization } from '../../src/catalog/organizations.js';
import { createBackup, listBackups } from '../../src/catalog/backups.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import { secretBox } from '../../src/secrets.js';
import { loadConfig } from '../../src/config.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { AppContext } from '../../src/context.js';
import { pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { catalogKind, newTestCatalog } from '../helpers/catalog.js';

const secrets = secretBox(Buffer.alloc(32, 7));

async function seed(catalog: Catalog, dataDir: string) {
  const org = await createOrganization(catalog.db, secrets, dataDir, uniqueName('org').replace(/_/g, '-'));
  const now = nowIso();
  const database = { id: newId(), organization_id: org.id, name: 'app', kind: 'postgresql' as const, created_at: now, updated_at: now, deleted_at: null, storage_destinations: null };
  await catalog.db.insertInto('databases').values(database).execute();
  const branch = {
    id: newId(),
    organization_id: org.id,
    database_id: database.id,
    name: 'main',
    production: 0,
    connection_url_enc: secrets.seal('postgresql://x@127.0.0.1/x'),
    conn_host: '127.0.0.1',
    conn_port: 5432,
    conn_database: 'x',
    conn_user: 'x',
    server_version: '15',
    created_at: now,
    updated_at: now,
    deleted_at: null,
    restored_from_backup_id: null,
    restore_job_id: null,
  };
  await catalog.db.insertInto('branches').values(branch).execute();
  return { org, database, branch };
}

function contextFor(catalog: Catalog, dataDir: string): AppContext {
  const config = loadConfig({ STRONGBOX_DATA_DIR: dataDir, STRONGBOX_MAX_CONCURRENT_BACKUPS: '64' });
  return { config, catalog, db: catalog.db, secrets, log: pino({ level: 'silent' }), clock: () => new Date(), nudge: () => {}, cancelLocal: () => false };
}

{
  const dialect = { name: catalogKind() };
  describe(`catalog on ${dialect.name}`, () => {
    let catalog: Catalog;
    let drop: () => Promise<void>;
    let url: string;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-catalog-data-'));

    before(async () => {
      ({ url, drop } = await newTestCatalog(catalogKind(), { fresh: true }));
      catalog = await openCatalog(url);
    });
    after(async () => {
      await catalog?.close();
      await drop?.();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    test('migrations are idempotent and concurrent opens are safe', async () => {
      await migrate(catalog.db);
      const others = await Promise.all([openCatalog(url), openCatalog(url)]);
      for (const c of others) await c.close();
      const tables = ['organizations', 'service_tokens', 'databases', 'branches', 'backups', 'artifacts', 'storage_destinations'];
      for (const t of tables) await catalog.db.selectFrom(t as 'backups').select((eb) => eb.fn.countAll().as('n')).execute();
    });

    test('backups: create, list newest first with filters and paging', async () => {
      const { database, branch } = await seed(catalog, dataDir);
      const base = Date.UTC(2026, 0, 1);
      for (let i = 0; i < 5; i++) {
        await createBackup(catalog.db, { database, branch, name: `b${i}`, retentionValue: 1, retentionUnit: 'day', emergency: false, actor: null, compression: 'zstd', now: new Date(base + i * 60_000) });
      }
      const all = await listBackups(catalog.db, { branchId: branch.id, includeDeleted: false }, 1, 2);
      assert.equal(all.total, 5);
      assert.deepEqual(all.rows.map((r) => r.name), ['b4', 'b3']);
      const from = await listBackups(catalog.db, { branchId: branch.id, includeDeleted: false, from: new Date(base + 2 * 60_000).toISOString() }, 1, 10);
      assert.deepEqual(from.rows.map((r) => r.name), ['b4', 'b3', 'b2']);
      const pending = await listBackups(catalog.db, { branchId: branch.id, includeDeleted: false, state: 'pending' }, 1, 10);
      assert.equal(pending.total, 5);
      const b = all.rows[0];
      assert.equal(typeof b.size, 'number', 'sizes come back as numbers on every dialect');
      assert.equal(b.expires_at, new Date(base + 4 * 60_000 + 86_400_000).toISOString());
    });

    test('workers racing for pending backups never claim the same one twice', async () => {
      const { database, branch } = await seed(catalog, dataDir);
      const ids = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const b = await createBackup(catalog.db, { database, branch, retentionValue: 1, retentionUnit: 'day', emergency: false, actor: null, compression: 'zstd', now: new Date(Date.UTC(2020, 0, 1) + i) });
        ids.add(b.id);
      }
      // Four workers, each on its own connection(s) to the same catalog, claiming as fast as they can.
      const extra = dialect.name === 'postgres' ? await Promise.all([openCatalog(url), openCatalog(url), openCatalog(url)]) : [];
      const runners = [catalog, ...extra].map((c) => new JobRunner(contextFor(c, dataDir)));
      const claimed: string[] = [];
      await Promise.all(
        runners.map(async (r) => {
          for (;;) {
            const b = await r.claim();
            if (!b) return;
            if (ids.has(b.id)) claimed.push(b.id);
          }
        }),
      );
      for (const c of extra) await c.close();
      assert.equal(claimed.length, 30, 'every backup claimed');
      assert.equal(new Set(claimed).size, 30, 'none claimed twice');
      const rows = await catalog.db.selectFrom('backups').select(['state', 'lease_owner', 'attempts']).where('id', 'in', [...ids]).execute();
      assert.ok(rows.every((r) => r.state === 'running' && r.lease_owner !== null && r.attempts === 1));
    });

    test('the catalog parses its own int8 columns as numbers, and no other connection of the process', async () => {
      assert.ok(catalog);
      // The engines read int8 values (sequence positions, system identifiers) from the
      // databases they back up, in the same process: those must stay exact.
      const exact = await withPgClient(pgUrl('postgres'), async (c) => (await c.query('SELECT 9223372036854775807::int8 AS v')).rows[0].v);
      assert.equal(exact, '9223372036854775807');
    });

    test('a backup whose lease lapsed is taken over and failed as interrupted, once', async () => {
      const { database, branch } = await seed(catalog, dataDir);
      const b = await createBackup(catalog.db, { database, branch, retentionValue: 1, retentionUnit: 'day', emergency: false, actor: null, compression: 'zstd', now: new Date() });
      const past = new Date(Date.now() - 60_000).toISOString();
      // A worker that died mid-backup: running, its lease expired a minute ago.
      await catalog.db.updateTable('backups').set({ state: 'running', lease_owner: 'dead-host:1:abc', lease_expires_at: past, started_at: past }).where('id', '=', b.id).execute();
      const runner = new JobRunner(contextFor(catalog, dataDir));
      assert.equal(await runner.recoverInterrupted(false), 1);
      const row = await catalog.db.selectFrom('backups').selectAll().where('id', '=', b.id).executeTakeFirstOrThrow();
      assert.equal(row.state, 'failed');
      assert.match(row.error ?? '', /interrupted/);
      assert.equal(row.lease_owner, null);
      // A second worker looking at the same moment finds nothing left to take over.
      assert.equal(await new JobRunner(contextFor(catalog, dataDir)).recoverInterrupted(false), 0);
    });

    test('copies left pending by a process killed after it failed their backup are cleared once the backup has been over for a lease', async () => {
      const { database, branch, org } = await seed(catalog, dataDir);
      const dest = await catalog.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', org.id).executeTakeFirstOrThrow();
      const root = path.join(dataDir, 'backups');
      const copyOf = async (state: 'failed' | 'running', endedAgoMs: number) => {
        const b = await createBackup(catalog.db, { database, branch, retentionValue: 1, retentionUnit: 'day', emergency: false, actor: null, compression: 'zstd', now: new Date() });
        const at = new Date(Date.now() - endedAgoMs).toISOString();
        const lease = state === 'running' ? { lease_owner: 'live-host:1:abc', lease_expires_at: new Date(Date.now() + 60_000).toISOString() } : { lease_owner: null, lease_expires_at: null };
        await catalog.db.updateTable('backups').set({ state, updated_at: at, ...lease }).where('id', '=', b.id).execute();
        const key = `leftover/${b.id}/dump.pgdump.zst`;
        fs.mkdirSync(path.join(root, path.dirname(key)), { recursive: true });
        fs.writeFileSync(path.join(root, key), 'half a dump');
        fs.writeFileSync(path.join(root, `leftover/${b.id}/manifest.json`), '{}');
        const id = newId();
        await catalog.db
          .insertInto('artifacts')
          .values({ id, backup_id: b.id, destination_id: dest.id, destination_name: dest.name, provider: 'local', path: key, state: 'pending', sha256: null, error: null, created_at: at, updated_at: at })
          .execute();
        return { id, file: path.join(root, key) };
      };
      const lease = contextFor(catalog, dataDir).config.leaseSeconds * 1000;
      // Killed between failing its backup and clearing its copy (the kill -9 loop found one).
      const orphan = await copyOf('failed', lease + 60_000);
      // Failed a moment ago: whoever failed it may still be clearing its copies.
      const recent = await copyOf('failed', 0);
      // Still running under a live lease: being written.
      const writing = await copyOf('running', 0);
      await new JobRunner(contextFor(catalog, dataDir)).recoverInterrupted(false);
      const state = async (id: string) => (await catalog.db.selectFrom('artifacts').select(['state', 'error']).where('id', '=', id).executeTakeFirstOrThrow());
      assert.deepEqual(await state(orphan.id), { state: 'failed', error: 'interrupted' });
      assert.ok(!fs.existsSync(orphan.file), 'the half-written copy is removed from storage');
      assert.ok(!fs.existsSync(path.join(path.dirname(orphan.file), 'manifest.json')), 'and its manifest');
      assert.equal((await state(recent.id)).state, 'pending');
      assert.ok(fs.existsSync(recent.file));
      assert.equal((await state(writing.id)).state, 'pending');
      assert.ok(fs.existsSync(writing.file));
    });
  });
}
