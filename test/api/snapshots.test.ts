/** Schema snapshots: every backup records the DDL it saw; unchanged schemas share a snapshot; diffs show changes. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, waitForBackup, type TestServer } from '../helpers/server.js';
import { createMysqlFixture, createPgFixture, dropDatabase, mysqlUrl, pgUrl, uniqueName, urlFor, withMysqlConnection, withPgClient } from '../helpers/databases.js';
import { assertMatches, listBackupsSchema } from '../helpers/reference.js';

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: schema snapshots`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_snap');
    let branchPath: string;

    before(async () => {
      server = await startServer();
      if (kind === 'postgresql') await createPgFixture(source);
      else await createMysqlFixture(source);
      branchPath = await registerBranch(server, 'default', 'app', kind, 'main', urlFor(kind, source));
    });
    after(async () => {
      await server?.close();
      await dropDatabase(kind, source);
    });

    const backup = async () => waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    const text = async (url: string) => {
      const r = await fetch(url.startsWith('http') ? url : server.url + url, { headers: { authorization: server.token } });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
      return r.text();
    };

    test('a backup carries a snapshot whose url returns the DDL; unchanged schemas share it; a change shows in the diff', async () => {
      const b1 = await backup();
      assert.equal(b1.state, 'success');
      assert.ok(b1.schema_snapshot, 'the snapshot is set');
      assert.match(b1.schema_snapshot.url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/organizations\/default\/databases\/app\/schema-snapshots\/\w+$/);
      const ddl = await text(b1.schema_snapshot.url);
      assert.match(ddl, kind === 'postgresql' ? /CREATE TABLE public\.items/ : /CREATE TABLE `items`/);
      assert.doesNotMatch(ddl, /INSERT INTO|COPY .* FROM stdin/, 'DDL only, no data');
      assert.doesNotMatch(ddl, kind === 'postgresql' ? /\\restrict|Dumped from/ : /Dump completed|AUTO_INCREMENT=\d/, 'normalized');

      const b2 = await backup();
      assert.equal(b2.schema_snapshot.id, b1.schema_snapshot.id, 'the same schema, the same snapshot');
      const same = await text(`/v1/organizations/default/databases/app/schema-snapshots/${b1.schema_snapshot.id}/diff/${b2.schema_snapshot.id}`);
      assert.equal(same, '');

      if (kind === 'postgresql') await withPgClient(urlFor(kind, source), (c) => c.query('alter table items add column strongbox_note text'));
      else await withMysqlConnection(urlFor(kind, source), (c) => c.query('alter table items add column strongbox_note text'));
      const b3 = await backup();
      assert.notEqual(b3.schema_snapshot.id, b1.schema_snapshot.id);
      const diff = await text(`/v1/organizations/default/databases/app/schema-snapshots/${b1.schema_snapshot.id}/diff/${b3.schema_snapshot.id}`);
      assert.match(diff, /^--- /m);
      assert.match(diff, /^\+.*strongbox_note/m);
      assert.doesNotMatch(diff, /^-.*strongbox_note/m);

      const list = await api(server, 'GET', `${branchPath}/backups`);
      assertMatches(listBackupsSchema(), list.body);
      assert.equal((await api(server, 'GET', '/v1/organizations/default/databases/app/schema-snapshots/nope')).status, 404);
    });
  });
}

/**
 * A database whose account may hold one connection at a time (PostgreSQL: a role's CONNECTION
 * LIMIT 1; MariaDB: a user's MAX_USER_CONNECTIONS 1), with a table big enough that the dump
 * runs for a while: the schema dump beside it (a second connection) is refused and must be
 * taken again alone, and nothing read before the dump may still hold the connection.
 */
const oneConnection: Record<'postgresql' | 'mysql', { ddl: RegExp; create(source: string, account: string): Promise<string>; drop(account: string): Promise<void> }> = {
  postgresql: {
    ddl: /CREATE TABLE public\.events/,
    async create(source, role) {
      await withPgClient(pgUrl('postgres'), async (c) => {
        await c.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 1`);
        await c.query(`CREATE DATABASE ${source} OWNER ${role}`);
      });
      const url = new URL(pgUrl(source));
      url.username = role;
      await withPgClient(url.toString(), (c) =>
        c.query(`CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL);
                 INSERT INTO events SELECT g, md5(g::text) || repeat(' event text', 20) FROM generate_series(1, 400000) g`),
      );
      return url.toString();
    },
    drop: (role) => withPgClient(pgUrl('postgres'), async (c) => void (await c.query(`DROP ROLE IF EXISTS ${role}`))),
  },
  mysql: {
    ddl: /CREATE TABLE `events`/,
    async create(source, user) {
      await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
        await c.query(`CREATE DATABASE ${source}`);
        for (const host of ['%', 'localhost']) {
          await c.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY 'one-pass' WITH MAX_USER_CONNECTIONS 1`);
          await c.query(`GRANT ALL PRIVILEGES ON ${source}.* TO '${user}'@'${host}'`);
        }
      });
      const url = new URL(mysqlUrl(source));
      url.username = user;
      url.password = 'one-pass';
      await withMysqlConnection(url.toString(), async (c) => {
        await c.query('CREATE TABLE events (id BIGINT PRIMARY KEY, body TEXT NOT NULL)');
        await c.query("INSERT INTO events SELECT seq, CONCAT(MD5(seq), REPEAT(' event text', 20)) FROM seq_1_to_300000");
      });
      return url.toString();
    },
    drop: (user) =>
      withMysqlConnection(mysqlUrl('mysql'), async (c) => {
        for (const host of ['%', 'localhost']) await c.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
      }),
  },
};

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: an account allowed one connection`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_snap1');
    const account = uniqueName('sbx_one');
    let branchPath: string;

    before(async () => {
      server = await startServer();
      branchPath = await registerBranch(server, 'default', 'one', kind, 'main', await oneConnection[kind].create(source, account));
    });
    after(async () => {
      await server?.close();
      await dropDatabase(kind, source);
      await oneConnection[kind].drop(account);
    });

    test('the backup succeeds with its schema snapshot, and nothing beside the dump took its connection', async () => {
      for (let i = 0; i < 2; i++) {
        const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
        assert.equal(b.state, 'success', JSON.stringify(b));
        assert.ok(b.schema_snapshot, 'the snapshot is set');
        const r = await fetch(b.schema_snapshot.url, { headers: { authorization: server.token } });
        assert.match(await r.text(), oneConnection[kind].ddl);
      }
    });
  });
}
