/**
 * Restore fidelity on "nasty" databases (helpers/nasty.ts): back each one up through
 * Strongbox, restore it into a new branch, and compare it with the source using our own
 * queries (an inventory of every object from the server catalogs, data fingerprints,
 * exact bytes, sequence positions, large objects), never Strongbox's verification. The
 * stock tools' result is compared the same way: Strongbox must keep at least what they
 * keep, and the database-level properties they lose.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, waitForBackup, waitForRestore, waitForVerification, type TestServer } from '../helpers/server.js';
import { mysql, parseConnectionUrl, postgres } from '../../src/engines/index.js';
import { dropDatabase, mysqlIdent, mysqlUrl, pgIdent, pgUrl, uniqueName, withMysqlConnection, withPgClient } from '../helpers/databases.js';
import {
  assertSameLines,
  NEAR_PACKET_LIMIT,
  createMysqlAccounts,
  createMysqlNasty,
  createPgNasty,
  createPgRoles,
  dataDiff,
  dropMysqlAccounts,
  dropPgRoles,
  lineDiff,
  mysqlData,
  mysqlInventory,
  pgData,
  pgInventory,
  stockCopy,
} from '../helpers/nasty.js';

async function backup(server: TestServer, branchPath: string): Promise<any> {
  const r = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForBackup(server, branchPath, r.body.id, 120_000);
  assert.equal(b.state, 'success', JSON.stringify(b));
  return b;
}

/** Restore `backupId` into a new branch (a new database of that name); returns the settled branch. */
async function restore(server: TestServer, dbPath: string, name: string, backupId: string, extra: Record<string, unknown> = {}): Promise<any> {
  const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: backupId, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return waitForRestore(server, dbPath, name, 120_000);
}

describe('PostgreSQL: a restore is the same database', () => {
  let server: TestServer;
  const roles = { owner: uniqueName('sbx_fid_own'), reader: uniqueName('sbx_fid_read') };
  const gone = uniqueName('sbx_fid_gone');
  const source = uniqueName('sbx_fid_pg');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/nasty-pg';
  let branchPath: string;
  let first: any;
  let inventory: string[];
  let data: Record<string, string>;

  before(async () => {
    await createPgRoles([roles.owner, roles.reader, gone]);
    await createPgNasty(source, roles);
    // A role that owns something at backup time and is gone by restore time.
    await withPgClient(pgUrl(source), (c) => c.query(`CREATE TABLE public.gone_owned (id int); ALTER TABLE public.gone_owned OWNER TO ${pgIdent(gone)}`));
    inventory = await pgInventory(pgUrl(source));
    data = await pgData(pgUrl(source));
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'nasty-pg', 'postgresql', 'main', pgUrl(source));
    first = await backup(server, branchPath);
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('postgresql', name);
    await dropPgRoles([roles.owner, roles.reader, gone]);
  });

  test('restore into a new branch: every object, every byte, the database properties; the stock tools keep no more', async () => {
    const name = uniqueName('sbx_fid_pg_r');
    databases.push(name);
    const branch = await restore(server, dbPath, name, first.id);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await pgInventory(pgUrl(name)), inventory, 'inventories of the source and the Strongbox copy');
    assert.deepEqual(dataDiff(data, await pgData(pgUrl(name))), [], 'data of the source and the Strongbox copy');
    // What full verification counts in a restored copy must be what the dump holds: the
    // parent's own row, not its children's too (they are tables of their own).
    const counts = await postgres.tableRowCounts(parseConnectionUrl(pgUrl(name)).info);
    assert.equal(counts['public.animals'], 1);
    assert.equal(counts['public.dogs'], 2);

    // pg_dump | pg_restore into a database with the server's defaults, compared the same way.
    const stock = uniqueName('sbx_fid_pg_s');
    databases.push(stock);
    await stockCopy('postgresql', source, stock);
    const stockLost = lineDiff(inventory, await pgInventory(pgUrl(stock))).onlyIn1;
    // What the stock tools lose here is exactly the database itself: its properties and the
    // sort order they give (Strongbox keeps both, above). Anything else lost would be a
    // difference in the comparison, not in the tools.
    assert.deepEqual(stockLost.map((l) => l.split(':')[0]).sort(), ['database', 'sort order'], stockLost.join('\n'));
    assert.deepEqual(dataDiff(data, await pgData(pgUrl(stock))), ['"public"."word_order"', '"public"."words"'], 'the stock copy sorts (and refreshes its materialized view) under another collation');
  });

  test('full verification passes: an inheritance parent counts only its own rows', async () => {
    const backupPath = `${branchPath}/backups/${first.id}`;
    const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
    assert.equal(full.status, 202, JSON.stringify(full.body));
    const v = await waitForVerification(server, backupPath, full.body.id, 120_000);
    assert.equal(v.state, 'success', JSON.stringify(v));
  });

  test('preserve_ownership keeps owners and grants, and names missing roles before anything starts', async () => {
    // The backup was taken while the role existed; it is gone now.
    await withPgClient(pgUrl(source), async (c) => {
      await c.query(`DROP TABLE public.gone_owned`);
    });
    await dropPgRoles([gone]);
    const refused = uniqueName('sbx_fid_pg_x');
    const r = await api(server, 'POST', `${dbPath}/branches`, { name: refused, backup_id: first.id, preserve_ownership: true });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.match(r.body.message, new RegExp(`preserve_ownership: .*do(es)? not exist on the server at .*"${gone}"`));
    assert.equal((await api(server, 'GET', `${dbPath}/branches/${refused}`)).status, 404, 'nothing was created');

    // A backup whose roles all exist restores with its owners and privileges.
    const second = await backup(server, branchPath);
    const name = uniqueName('sbx_fid_pg_o');
    databases.push(name);
    const branch = await restore(server, dbPath, name, second.id, { preserve_ownership: true });
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await pgInventory(pgUrl(name), { ownership: true }), await pgInventory(pgUrl(source), { ownership: true }), 'inventories with owners and privileges');

    // Without it, the restoring user owns everything and nothing is granted.
    const plain = uniqueName('sbx_fid_pg_p');
    databases.push(plain);
    assert.equal((await restore(server, dbPath, plain, second.id)).restore.state, 'success');
    const owners = (await pgInventory(pgUrl(plain), { ownership: true })).join('\n');
    assert.ok(!owners.includes(roles.owner) && !owners.includes(roles.reader), 'no owner or grantee of the source in a plain restore');
  });
});

describe('MariaDB: a restore is the same database', () => {
  let server: TestServer;
  const roles = { owner: uniqueName('sbx_fid_own'), reader: uniqueName('sbx_fid_read') };
  const gone = uniqueName('sbx_fid_gone');
  const source = uniqueName('sbx_fid_my');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/nasty-my';
  let branchPath: string;
  let first: any;
  let inventory: string[];
  let data: Record<string, string>;

  before(async () => {
    await createMysqlAccounts([roles.owner, roles.reader, gone]);
    await createMysqlNasty(source, roles, { nearLimitRow: true });
    // An account that is a DEFINER at backup time and is gone by restore time.
    await withMysqlConnection(mysqlUrl(source), (c) => c.query(`CREATE DEFINER='${gone}'@'%' VIEW v_gone AS SELECT 1 AS one`));
    inventory = await mysqlInventory(mysqlUrl(source));
    data = await mysqlData(mysqlUrl(source), { history: true });
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'nasty-my', 'mysql', 'main', mysqlUrl(source));
    // Keep the history of system-versioned tables (our extension on the branch).
    const patched = await api(server, 'PATCH', branchPath, { dump_history: true });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.dump_history, true);
    first = await backup(server, branchPath);
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('mysql', name);
    await dropMysqlAccounts([roles.owner, roles.reader, gone]);
  });

  test('restore into a new branch: every object and byte (a 16 MB row of every byte value too), history, the database charset and collation', async () => {
    assert.ok(first.size > 0);
    const name = uniqueName('sbx_fid_my_r');
    databases.push(name);
    const branch = await restore(server, dbPath, name, first.id);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    // Without preserve_ownership the restoring account is every DEFINER: compared without them.
    assertSameLines(await mysqlInventory(mysqlUrl(name)), inventory, 'inventories of the source and the Strongbox copy');
    assert.deepEqual(dataDiff(data, await mysqlData(mysqlUrl(name), { history: true })), [], 'data of the source and the Strongbox copy');
    const [[row]] = (await withMysqlConnection(mysqlUrl(name), (c) => c.query('SELECT LENGTH(b) AS n FROM blobs WHERE id = 4'))) as any;
    assert.equal(Number(row.n), NEAR_PACKET_LIMIT);
    // What full verification counts in a restored copy must be what the dump holds: the
    // system-versioned table too, every row version (this dump kept the history).
    const counts = await mysql.tableRowCounts(parseConnectionUrl(mysqlUrl(name)).info);
    assert.equal(counts.hist, 4, JSON.stringify(counts));
  });

  test('the stock tools cannot restore it under another name (Strongbox can, above)', async () => {
    const stock = uniqueName('sbx_fid_my_s');
    databases.push(stock);
    // mariadb-dump | mariadb: the table whose default is NEXTVAL(seq) cannot take rows under
    // the dump's LOCK TABLES, and views and defaults still name the source database.
    await assert.rejects(stockCopy('mysql', source, stock), /was not locked with LOCK TABLES|Unknown column '[^']*\.parents\.id'/);
  });

  test('full verification passes: system-versioned tables are counted', async () => {
    const backupPath = `${branchPath}/backups/${first.id}`;
    const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
    assert.equal(full.status, 202, JSON.stringify(full.body));
    const v = await waitForVerification(server, backupPath, full.body.id, 120_000);
    assert.equal(v.state, 'success', JSON.stringify(v));
  });

  test('preserve_ownership keeps DEFINERs and grants, and names missing accounts before anything starts', async () => {
    await dropMysqlAccounts([gone]);
    const refused = uniqueName('sbx_fid_my_x');
    const r = await api(server, 'POST', `${dbPath}/branches`, { name: refused, backup_id: first.id, preserve_ownership: true });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.ok(r.body.message.includes(`'${gone}'@'%'`), r.body.message);

    await withMysqlConnection(mysqlUrl(source), (c) => c.query('DROP VIEW v_gone'));
    const second = await backup(server, branchPath);
    const name = uniqueName('sbx_fid_my_o');
    databases.push(name);
    const branch = await restore(server, dbPath, name, second.id, { preserve_ownership: true });
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await mysqlInventory(mysqlUrl(name), { ownership: true }), await mysqlInventory(mysqlUrl(source), { ownership: true }), 'inventories with DEFINERs and grants');
  });
});

describe('MariaDB: a statement larger than max_allowed_packet', () => {
  let server: TestServer;
  const source = uniqueName('sbx_fid_big');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/big';
  let branchPath: string;

  before(async () => {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`CREATE DATABASE ${mysqlIdent(source)}`));
    // 16,000,000 zero bytes: every one is escaped (\0), so the INSERT is 32 MB, twice the
    // default max_allowed_packet, whichever way it is dumped.
    await withMysqlConnection(mysqlUrl(source), (c) => c.query(`CREATE TABLE z (id INT PRIMARY KEY, b LONGBLOB); INSERT INTO z VALUES (1, REPEAT(UNHEX('00'), ${NEAR_PACKET_LIMIT}))`));
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'big', 'mysql', 'main', mysqlUrl(source));
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('mysql', name);
  });

  test('is recorded with the backup, warned about by verification, and refused before a restore starts, saying what to raise', async () => {
    const b = await backup(server, branchPath);
    const backupPath = `${branchPath}/backups/${b.id}`;
    const quick = await api(server, 'POST', `${backupPath}/verify`, {});
    const v = await waitForVerification(server, backupPath, quick.body.id, 120_000);
    assert.equal(v.state, 'success', 'a warning, not a failure');
    assert.equal(v.result.warnings.length, 1, JSON.stringify(v.result));
    assert.match(v.result.warnings[0], /larger than max_allowed_packet .*Raise max_allowed_packet on that server to at least 320\d{5}/);

    const name = uniqueName('sbx_fid_big_r');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.match(r.body.message, /statement of 320\d{5} bytes .*larger than max_allowed_packet of the server at 127\.0\.0\.1:3306 \(16777216 bytes/);
    assert.match(r.body.message, /SET GLOBAL max_allowed_packet = \d+/);
    const exists = await withMysqlConnection(mysqlUrl('mysql'), async (c) => ((await c.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [name])) as any)[0].length);
    assert.equal(exists, 0, 'no database was created');
  });
});
