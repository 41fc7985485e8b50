/**
 * Full verification by content, through the API of a real server, on both engines: a
 * backup records its tables keyed by (schema, table) with data digests and an inventory
 * of its other objects (catalog and manifest); a full verification restores it into a
 * scratch database, dumps that again and compares, names every difference, and drops the
 * scratch database; awkward data raises no false alarm; backups made before digests
 * existed still verify by row counts; a branch lists its verifications.
 */
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { ALL_BYTES, createMysqlFixture, createPgFixture, dropDatabase, pgUrl, mysqlUrl, uniqueName, withMysqlConnection, withPgClient, type Kind } from '../helpers/databases.js';
import { loadContents, saveContents } from '../../src/catalog/contents.js';
import type { DumpContents } from '../../src/pipeline/rowcount/index.js';

/** Objects a verification could stumble over (false alarms), beyond the standard fixture. */
async function addAwkward(kind: Kind, url: string): Promise<void> {
  if (kind === 'postgresql') {
    await withPgClient(url, (c) =>
      c.query(`
        CREATE SCHEMA x;
        CREATE SCHEMA "x.y";
        CREATE TABLE x."y.z" (id int PRIMARY KEY, v text);
        CREATE TABLE "x.y".z (id int PRIMARY KEY, v text);
        INSERT INTO x."y.z" VALUES (1, 'a'), (2, 'b');
        INSERT INTO "x.y".z VALUES (1, 'c'), (2, 'd'), (3, 'e');
        CREATE TABLE parent (id int, v text);
        CREATE TABLE child (extra int) INHERITS (parent);
        INSERT INTO parent VALUES (1, 'own');
        INSERT INTO child VALUES (2, 'inherited', 7);
        CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
        CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (10);
        CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (10) TO (100);
        INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 40) g;
        CREATE MATERIALIZED VIEW item_mv AS SELECT id, name FROM items WHERE id < 10;
        CREATE UNLOGGED TABLE scratchpad (id int);
        INSERT INTO scratchpad VALUES (1);
        SELECT lo_from_bytea(0, '\\x0a5c2e0a00ff'::bytea);
      `),
    );
  } else {
    await withMysqlConnection(url, async (c) => {
      await c.query(`
        CREATE TABLE \`x.y\` (id INT PRIMARY KEY, v TEXT);
        INSERT INTO \`x.y\` VALUES (1, 'c'), (2, 'd'), (3, 'e');
        CREATE SEQUENCE seq START WITH 100;
        CREATE TABLE numbered (id INT DEFAULT NEXTVAL(seq), v VARCHAR(10));
        INSERT INTO numbered (v) VALUES ('a'), ('b');
        CREATE TABLE versioned (id INT PRIMARY KEY, v TEXT) WITH SYSTEM VERSIONING;
        INSERT INTO versioned VALUES (1, 'one'), (2, 'two');
        UPDATE versioned SET v = 'uno' WHERE id = 1;
        CREATE TABLE binary_data (id INT PRIMARY KEY, b LONGBLOB);
      `);
      await c.query('INSERT INTO binary_data VALUES (1, ?), (2, ?)', [ALL_BYTES, Buffer.from("'),(\\;\n\u0000")]);
    });
  }
}

/** Ask for a full verification and wait for it to end; the verification as the API shows it. */
async function verifyFully(server: TestServer, branchPath: string, backupId: string): Promise<any> {
  const r = await api(server, 'POST', `${branchPath}/backups/${backupId}/verify`, { restore: true });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return until(`verification ${r.body.id}`, async () => {
    const list = await api(server, 'GET', `${branchPath}/backups/${backupId}/verifications`);
    const v = list.body.data.find((x: any) => x.id === r.body.id);
    return v && v.state !== 'pending' && v.state !== 'running' ? v : undefined;
  }, 120_000);
}

async function takeBackup(server: TestServer, branchPath: string): Promise<string> {
  const r = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForBackup(server, branchPath, r.body.id, 120_000);
  assert.equal(b.state, 'success', JSON.stringify(b));
  return b.id;
}

async function databaseExists(kind: Kind, name: string): Promise<boolean> {
  if (kind === 'postgresql') return withPgClient(pgUrl('postgres'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
  return withMysqlConnection(mysqlUrl('mysql'), async (c) => ((await c.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [name]))[0] as unknown[]).length === 1);
}

function findManifest(dir: string, backupId: string): any {
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.name === 'manifest.json' && d.endsWith(backupId)) return JSON.parse(fs.readFileSync(p, 'utf8'));
    }
  }
  throw new Error(`no manifest for ${backupId}`);
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: full verification compares contents`, () => {
    let server: TestServer;
    const source = uniqueName(`sbx_digest_${kind === 'postgresql' ? 'pg' : 'my'}`);
    let url: string;
    let branchPath: string;
    let first: string;
    let second: string;
    // PostgreSQL keys "x"."y.z" and "x.y"."z" apart; MySQL has one database, so a dotted name alone.
    const dotted = kind === 'postgresql' ? { schema: 'x.y', table: 'z' } : { schema: null, table: 'x.y' };

    before(async () => {
      url = kind === 'postgresql' ? await createPgFixture(source) : await createMysqlFixture(source);
      await addAwkward(kind, url);
      server = await startServer();
      branchPath = await registerBranch(server, 'default', `digests-${kind === 'postgresql' ? 'pg' : 'my'}`, kind, 'main', url);
      first = await takeBackup(server, branchPath);
    });
    after(async () => {
      await server?.close();
      await dropDatabase(kind, source);
    });

    test('the backup records its tables by (schema, table) with rows and digests, and its other objects, in the catalog and the manifest', async () => {
      const contents = (await loadContents(server.ctx.db, first))!;
      assert.ok(contents, 'contents recorded');
      const row = contents.tables.find((t) => t.schema === dotted.schema && t.table === dotted.table);
      assert.equal(row?.rows, 3);
      assert.match(row!.sha256, /^[0-9a-f]{64}$/);
      if (kind === 'postgresql') {
        assert.equal(contents.tables.find((t) => t.schema === 'x' && t.table === 'y.z')?.rows, 2, 'x."y.z" is a table of its own');
        assert.equal(contents.large_objects?.count, 1);
      }
      assert.ok(contents.objects.some((o) => o.kind === 'TRIGGER'));
      assert.ok(contents.objects.some((o) => o.kind === 'VIEW'));
      assert.deepEqual(findManifest(path.join(server.dataDir, 'backups'), first).contents, contents);
    });

    test('a full verification of awkward data passes by contents, and drops its scratch database', async () => {
      const v = await verifyFully(server, branchPath, first);
      assert.equal(v.state, 'success', JSON.stringify(v.error ?? v.result?.restore));
      assert.equal(v.kind, 'full');
      assert.equal(v.drill_policy_id, null);
      assert.equal(v.result.restore.method, 'contents');
      assert.deepEqual(v.result.restore.differences, []);
      assert.equal(v.result.restore.database, `sbx_scratch_${v.id}`);
      assert.equal(await databaseExists(kind, v.result.restore.database), false, 'scratch database dropped');
      const job = await server.ctx.db.selectFrom('jobs').select('scratch_database').where('id', '=', v.id).executeTakeFirstOrThrow();
      assert.equal(job.scratch_database, null);
    });

    test('same data, same digests: a second backup records the same contents', async () => {
      second = await takeBackup(server, branchPath);
      const a = (await loadContents(server.ctx.db, first))!;
      const b = (await loadContents(server.ctx.db, second))!;
      assert.deepEqual(b.tables, a.tables);
      assert.deepEqual(b.objects, a.objects);
    });

    test('a copy that is not what the backup recorded: every difference is named, and nothing else', async () => {
      // One row changed, same count. The new backup's dump holds the change; its record is
      // made to say the old data (as a lost or mixed-up dump would), plus an object that is
      // not there and another definition, so that the copy differs from the record in
      // exactly those places.
      if (kind === 'postgresql') await withPgClient(url, (c) => c.query(`UPDATE "x.y".z SET v = 'changed' WHERE id = 2`));
      else await withMysqlConnection(url, (c) => c.query("UPDATE `x.y` SET v = 'changed' WHERE id = 2"));
      const third = await takeBackup(server, branchPath);
      const recorded = (await loadContents(server.ctx.db, second))!;
      const trigger = recorded.objects.find((o) => o.kind === 'TRIGGER')!;
      const tampered: DumpContents = {
        ...recorded,
        objects: [
          ...recorded.objects.map((o) => (o === trigger ? { ...o, sha256: '0'.repeat(64) } : o)),
          { kind: 'FUNCTION', schema: kind === 'postgresql' ? 'public' : null, name: 'lost_function()', sha256: '1'.repeat(64) },
        ],
      };
      await saveContents(server.ctx.db, third, tampered, new Date());
      const v = await verifyFully(server, branchPath, third);
      assert.equal(v.state, 'failed');
      const named = v.result.restore.differences.map((d: any) => `${d.problem} ${d.kind} ${d.schema ?? '-'}/${d.name}`).sort();
      assert.deepEqual(named, [
        `data table data ${dotted.schema ?? '-'}/${dotted.table}`,
        `definition TRIGGER ${trigger.schema ?? '-'}/${trigger.name}`,
        `missing FUNCTION ${kind === 'postgresql' ? 'public' : '-'}/lost_function()`,
      ]);
      assert.equal(v.result.restore.differences_total, 3);
      assert.match(v.error, /differs from the backup in 3 place\(s\)/);
      assert.match(v.error, kind === 'postgresql' ? /table "x\.y"\.z holds other data/ : /table "x\.y" holds other data/);
      assert.equal(await databaseExists(kind, v.result.restore.database), false, 'scratch database dropped after a failed verification too');
      const backup = await api(server, 'GET', `${branchPath}/backups/${third}/verifications`);
      assert.equal(backup.body.data[0].state, 'failed');
    });

    test('a backup made before digests existed still verifies, by row counts', async () => {
      await server.ctx.db.deleteFrom('backup_contents').where('backup_id', '=', first).execute();
      const legacy = await server.ctx.db.selectFrom('backups').select('table_row_counts').where('id', '=', first).executeTakeFirstOrThrow();
      assert.ok(legacy.table_row_counts, 'the string-keyed counts of older backups are still there');
      const v = await verifyFully(server, branchPath, first);
      assert.equal(v.state, 'success', JSON.stringify(v.error ?? v.result?.restore));
      assert.equal(v.result.restore.method, 'row counts');
      assert.match(v.result.restore.note, /row counts only/);
    });

    test('the branch lists its verifications, newest first, and filters drills', async () => {
      const all = await api(server, 'GET', `${branchPath}/verifications`);
      assert.equal(all.status, 200);
      assert.equal(all.body.total_count, 3);
      assert.deepEqual(all.body.data.map((v: any) => v.state), ['success', 'failed', 'success']);
      const drills = await api(server, 'GET', `${branchPath}/verifications?drill=true`);
      assert.equal(drills.body.total_count, 0);
      const failed = await api(server, 'GET', `${branchPath}/verifications?state=failed&per_page=1`);
      assert.equal(failed.body.data.length, 1);
      const bad = await api(server, 'GET', `${branchPath}/verifications?state=bogus`);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
    });
  });
}
