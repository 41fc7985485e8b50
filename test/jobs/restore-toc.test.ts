/**
 * A single-stream PostgreSQL backup restored with `jobs: N` (jobs/restore-toc.ts): rows in one
 * stream and one transaction, then indexes, constraints and triggers built by `pg_restore -j N`
 * from the archive's table of contents, captured from the start of the stored copy. The copy
 * is every object and every byte of the source (helpers/nasty.ts), the same as a restore in one
 * stream; a damaged copy still fails the restore and leaves no database behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, startServer, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { assertSameLines, createPgNasty, createPgRoles, dataDiff, dropPgRoles, pgData, pgInventory } from '../helpers/nasty.js';

function logLines(server: TestServer): string[] {
  return fs.readFileSync(path.join(server.dataDir, 'server.log'), 'utf8').split('\n').filter(Boolean);
}

describe('PostgreSQL: a single-stream backup restored with jobs: 3', () => {
  let server: TestServer;
  const roles = { owner: uniqueName('sbx_toc_own'), reader: uniqueName('sbx_toc_read') };
  const source = uniqueName('sbx_toc_pg');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/toc-pg';
  let branchPath: string;
  let inventory: string[];
  let data: Record<string, string>;
  let backup: any;

  before(async () => {
    await createPgRoles([roles.owner, roles.reader]);
    await createPgNasty(source, roles);
    // Several indexes and constraints to build side by side, a deferred foreign key, a trigger.
    await withPgClient(pgUrl(source), async (c) => {
      await c.query(`CREATE TABLE public.ledger (id bigserial PRIMARY KEY, account int NOT NULL, amount numeric(12,2) NOT NULL CHECK (amount <> 0), note text)`);
      await c.query(`INSERT INTO public.ledger (account, amount, note) SELECT g % 997, (g % 50) + 1, md5(g::text) FROM generate_series(1, 60000) g`);
      await c.query(`CREATE INDEX ledger_account ON public.ledger (account)`);
      await c.query(`CREATE INDEX ledger_note ON public.ledger (note text_pattern_ops) WHERE amount > 10`);
      await c.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, name text UNIQUE)`);
      await c.query(`INSERT INTO public.accounts SELECT g, 'account ' || g FROM generate_series(0, 996) g`);
      await c.query(`ALTER TABLE public.ledger ADD CONSTRAINT ledger_account_fk FOREIGN KEY (account) REFERENCES public.accounts (id) DEFERRABLE INITIALLY DEFERRED`);
      await c.query(`CREATE FUNCTION public.ledger_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no writes'; END $$`);
      await c.query(`CREATE TRIGGER ledger_guard BEFORE UPDATE ON public.ledger FOR EACH ROW EXECUTE FUNCTION public.ledger_guard()`);
    });
    inventory = await pgInventory(pgUrl(source));
    data = await pgData(pgUrl(source));
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'toc-pg', 'postgresql', 'main', pgUrl(source));
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    backup = await waitForBackup(server, branchPath, r.body.id, 180_000);
    assert.equal(backup.state, 'success', JSON.stringify(backup));
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('postgresql', name);
    await dropPgRoles([roles.owner, roles.reader]);
  });

  test('every object and every byte as in the source; post-data built by pg_restore -j from the table of contents', async () => {
    const name = uniqueName('sbx_toc_r');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: backup.id, jobs: 3 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, dbPath, name, 180_000);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await pgInventory(pgUrl(name)), inventory, 'inventories of the source and the copy');
    assert.deepEqual(dataDiff(data, await pgData(pgUrl(name))), [], 'data of the source and the copy');
    assert.ok(
      logLines(server).some((l) => /pg_restore -j/.test(l) && l.includes(backup.id)),
      'the log says post-data was built in parallel',
    );
  });

  test('a damaged copy fails the restore, names the damage, and leaves no database', async () => {
    const arts = await api(server, 'GET', `${branchPath}/backups/${backup.id}/artifacts`);
    const file = path.join(server.dataDir, 'backups', arts.body.data[0].path);
    const original = fs.readFileSync(file);
    try {
      const bad = Buffer.from(original);
      const at = Math.floor(bad.length / 2);
      for (let i = 0; i < 4; i++) bad[at + i] ^= 0xff;
      fs.writeFileSync(file, bad);
      const name = uniqueName('sbx_toc_bad');
      databases.push(name);
      const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: backup.id, jobs: 3 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const branch = await waitForRestore(server, dbPath, name, 180_000);
      assert.equal(branch.restore.state, 'failed', JSON.stringify(branch.restore));
      assert.match(branch.restore.error, /damaged/);
      const exists = await withPgClient(pgUrl('postgres'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount);
      assert.equal(exists, 0, 'the database the restore created was dropped');
    } finally {
      fs.writeFileSync(file, original);
    }
  });
});
