/**
 * Restore into a different server, tested rather than assumed: a backup of the fixture
 * taken from the shared test server is restored through the API into a database on a
 * private server this test starts (initdb + pg_ctl; mariadb-install-db + mariadbd) and
 * removes, then compared with our own queries (every row of every table, the names of
 * views, routines, triggers and events) and with the contents the backup recorded.
 *
 * The private PostgreSQL is the newest major installed here. Debian 12 packages only
 * PostgreSQL 15 (no postgresql-16/17 without the PGDG repository), so on this machine it
 * is another server of the same major; where a newer major is installed, the same test
 * restores a 15 backup into it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import mysql2 from 'mysql2/promise';
import { api, registerBranch, startServer, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createMysqlFixture, createPgFixture, dropDatabase, objectNames, tableFingerprints, uniqueName, type Kind } from '../helpers/databases.js';
import { startPrivateMariadb, startPrivatePostgres, type PrivateServer } from '../helpers/private-servers.js';
import { loadContents } from '../../src/catalog/contents.js';
import { dumpContents } from '../../src/jobs/comparison.js';
import { engineFor, parseConnectionUrl } from '../../src/engines/index.js';
import { compareContents } from '../../src/pipeline/rowcount/index.js';

function withDatabase(serverUrl: string, db: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

async function createOn(kind: Kind, server: PrivateServer, db: string): Promise<void> {
  if (kind === 'postgresql') {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    await c.query(`CREATE DATABASE "${db}" TEMPLATE template0 ENCODING 'UTF8'`);
    await c.end();
  } else {
    const c = await mysql2.createConnection({ uri: server.url });
    await c.query(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
    await c.end();
  }
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: a backup restored into another server`, () => {
    let server: TestServer;
    let other: PrivateServer;
    const source = uniqueName(`sbx_other_${kind === 'postgresql' ? 'pg' : 'my'}`);
    let sourceUrl: string;

    before(async () => {
      sourceUrl = kind === 'postgresql' ? await createPgFixture(source) : await createMysqlFixture(source);
      other = kind === 'postgresql' ? await startPrivatePostgres() : await startPrivateMariadb();
      server = await startServer();
    });
    after(async () => {
      await server?.close();
      await other?.stop();
      await dropDatabase(kind, source);
    });

    test('every row, every object, and the recorded contents come back on the other server', async (t) => {
      const dbName = kind === 'postgresql' ? 'otherpg' : 'othermy';
      const branchPath = await registerBranch(server, 'default', dbName, kind, 'main', sourceUrl);
      const b = await api(server, 'POST', `${branchPath}/backups`, {});
      assert.equal(b.status, 201);
      const backup = await waitForBackup(server, branchPath, b.body.id, 120_000);
      assert.equal(backup.state, 'success', JSON.stringify(backup));

      await createOn(kind, other, 'restored');
      const targetUrl = withDatabase(other.url, 'restored');
      const r = await api(server, 'POST', `/v1/organizations/default/databases/${dbName}/branches`, { name: 'elsewhere', backup_id: backup.id, connection_url: targetUrl });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const restored = await waitForRestore(server, `/v1/organizations/default/databases/${dbName}`, 'elsewhere', 120_000);
      assert.equal(restored.restore.state, 'success', JSON.stringify(restored.restore));

      // Our own comparison: every row of every table, read back from both servers.
      const before = await tableFingerprints(kind, sourceUrl, { quotedKeys: true });
      const afterwards = await tableFingerprints(kind, targetUrl, { quotedKeys: true });
      assert.ok(Object.keys(before).length >= 6);
      assert.deepEqual(afterwards, before);
      assert.deepEqual(await objectNames(kind, targetUrl), await objectNames(kind, sourceUrl));
      // And Strongbox's: the copy on the other server holds what the backup recorded.
      const recorded = (await loadContents(server.ctx.db, backup.id))!;
      const { contents } = await dumpContents(engineFor(kind), parseConnectionUrl(targetUrl).info, { signal: new AbortController().signal });
      assert.deepEqual(compareContents(recorded, contents!), []);
      const version = await api(server, 'GET', `/v1/organizations/default/databases/${dbName}/branches/elsewhere`);
      assert.equal(version.status, 200);
      t.diagnostic(`restored a ${kind} backup into a private server, version ${other.version}`);
    });
  });
}

describe('private servers for other tests (point-in-time recovery)', () => {
  test('PostgreSQL with replication streams WAL; MariaDB with logBin writes binlogs', async () => {
    const [p, m] = await Promise.all([startPrivatePostgres({ replication: true }), startPrivateMariadb({ logBin: true })]);
    try {
      const c = new pg.Client({ connectionString: p.url });
      await c.connect();
      const wal = (await c.query<{ wal_level: string }>('SHOW wal_level')).rows[0].wal_level;
      await c.end();
      assert.equal(wal, 'replica');
      // A replication connection is allowed (pg_hba from initdb trusts 127.0.0.1 for it).
      const rep = new pg.Client({ connectionString: p.url, replication: 'database' } as pg.ClientConfig & { replication: string });
      await rep.connect();
      const ident = await rep.query('IDENTIFY_SYSTEM');
      await rep.end();
      assert.match(String(ident.rows[0].systemid), /^\d+$/);

      const my = await mysql2.createConnection({ uri: m.url });
      const [rows] = await my.query<mysql2.RowDataPacket[]>('SELECT @@log_bin AS on_, @@binlog_format AS fmt');
      await my.end();
      assert.equal(Number(rows[0].on_), 1);
      assert.equal(rows[0].fmt, 'ROW');
    } finally {
      await Promise.all([p.stop(), m.stop()]);
    }
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(p.root), false, 'its folder is removed');
    assert.equal(existsSync(m.root), false);
  });
});
