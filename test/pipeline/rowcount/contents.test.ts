/**
 * What the row counters record beside the counts: per table (keyed by schema AND table)
 * a digest of its data as the dump writes it, and an inventory of the other objects.
 * Real pg_dump / mariadb-dump output: the same database gives the same contents however
 * the bytes are chunked, however mariadb-dump splits its INSERTs, and after a restore
 * into another database; each kind of change is named, and nothing else is.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { mysql, parseConnectionUrl, postgres, type ConnectionInfo, type Engine } from '../../../src/engines/index.js';
import { compareContents, describeDifference, rowCounterFor, type ContentDifference, type DumpContents } from '../../../src/pipeline/rowcount/index.js';
import { MysqlDumpRowCounter, createdObject } from '../../../src/pipeline/rowcount/mysqldump.js';
import { PgCustomRowCounter } from '../../../src/pipeline/rowcount/pgcustom.js';
import { ALL_BYTES, createDatabase, createMysqlFixture, createPgFixture, dropDatabase, mysqlUrl, pgUrl, uniqueName, withMysqlConnection, withPgClient } from '../../helpers/databases.js';
import { copyChunks, fixedChunks, pgArchiveBuffer, randomChunks, runThrough } from './helpers.js';
import { spawn } from 'node:child_process';

function info(url: string): ConnectionInfo {
  return parseConnectionUrl(url).info;
}

/** Dump with the engine through a counter; the contents and the dump's bytes. */
async function dumpContents(engine: Engine, url: string): Promise<{ contents: DumpContents; bytes: Buffer }> {
  const dump = await engine.dump(info(url));
  const rc = rowCounterFor(engine.kind);
  const [r] = await Promise.all([runThrough(dump.stdout, rc.stream, true), dump.done]);
  assert.equal(rc.reason(), null);
  return { contents: rc.contents()!, bytes: r.output! };
}

async function contentsOfBytes(kind: 'postgresql' | 'mysql', source: Readable): Promise<DumpContents | null> {
  const counter = kind === 'postgresql' ? new PgCustomRowCounter() : new MysqlDumpRowCounter();
  await runThrough(source, counter);
  return counter.contents();
}

/** The differences as short strings, sorted: "<problem> <kind> <schema>/<name>". */
function named(diffs: ContentDifference[]): string[] {
  return diffs.map((d) => `${d.problem} ${d.kind} ${d.schema ?? '-'}/${d.name}`).sort();
}

async function addPgObjects(url: string): Promise<void> {
  await withPgClient(url, (c) =>
    c.query(`
      -- x."y.z" and "x.y".z: one joined key "x.y.z" for two tables (issue 11, defect 3).
      CREATE SCHEMA x;
      CREATE SCHEMA "x.y";
      CREATE TABLE x."y.z" (id int PRIMARY KEY, v text);
      CREATE TABLE "x.y".z (id int PRIMARY KEY, v text);
      INSERT INTO x."y.z" VALUES (1, 'a'), (2, 'b');
      INSERT INTO "x.y".z VALUES (1, 'c'), (2, 'd'), (3, 'e');
      CREATE INDEX z_v ON "x.y".z (v);
      -- Inheritance: the parent has rows of its own besides its child's.
      CREATE TABLE parent (id int, v text);
      CREATE TABLE child (extra int) INHERITS (parent);
      INSERT INTO parent VALUES (1, 'own');
      INSERT INTO child VALUES (2, 'inherited', 7), (3, 'inherited', 8);
      CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
      CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (10);
      CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (10) TO (100);
      INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 40) g;
      CREATE MATERIALIZED VIEW item_mv AS SELECT id, name FROM items WHERE id < 10;
      CREATE SEQUENCE counter START 100;
      SELECT setval('counter', 150);
      -- Rows whose COPY lines start with a backslash: held back, then hashed as data.
      CREATE TABLE backslashes (t text);
      INSERT INTO backslashes VALUES (E'\\\\.'), (NULL), (E'\\\\'), ('.');
      SELECT lo_from_bytea(424242, '\\x0a5c2e0a'::bytea);
      SELECT lo_from_bytea(424243, decode(repeat('00ff', 40000), 'hex'));
    `),
  );
}

describe('contents of real pg_dump archives', () => {
  test('keyed by (schema, table), stable, chunking-independent; each change is named and nothing else', async () => {
    const name = uniqueName('sbx_contents_pg');
    try {
      const url = await createPgFixture(name);
      await addPgObjects(url);
      const first = await dumpContents(postgres, url);
      const c = first.contents;

      // Defect 3: two tables, two records, each with its own rows.
      const xyz = c.tables.filter((t) => (t.schema === 'x' && t.table === 'y.z') || (t.schema === 'x.y' && t.table === 'z'));
      assert.deepEqual(xyz.map((t) => [t.schema, t.table, t.rows]).sort(), [
        ['x', 'y.z', 2],
        ['x.y', 'z', 3],
      ]);
      assert.notEqual(xyz[0].sha256, xyz[1].sha256);
      assert.equal(c.tables.find((t) => t.table === 'parent')!.rows, 1, "the parent's own rows");
      assert.equal(c.tables.find((t) => t.table === 'backslashes')!.rows, 4);
      assert.deepEqual(c.large_objects!.count, 2);
      const kinds = new Set(c.objects.map((o) => o.kind));
      for (const k of ['TABLE', 'INDEX', 'CONSTRAINT', 'FUNCTION', 'TRIGGER', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'SEQUENCE SET', 'SCHEMA']) assert.ok(kinds.has(k), `inventory has ${k}`);
      for (const k of ['ACL', 'DATABASE', 'ENCODING', 'BLOB', 'TABLE DATA']) assert.ok(!kinds.has(k), `inventory leaves ${k} out`);
      // The digest is of the rows' bytes exactly as the archive has them, nothing else.
      const lines = ['1\tc', '2\td', '3\te'].map((l) => l + '\n').join('');
      assert.equal(xyz.find((t) => t.schema === 'x.y')!.sha256, createHash('sha256').update(lines).digest('hex'));

      // The same database again, and the same bytes cut anywhere: the same contents.
      assert.deepEqual((await dumpContents(postgres, url)).contents, c);
      assert.deepEqual(await contentsOfBytes('postgresql', fixedChunks(first.bytes, 1)), c);
      assert.deepEqual(await contentsOfBytes('postgresql', randomChunks(first.bytes, 11, 4096)), c);

      await withPgClient(url, (cl) =>
        cl.query(`
          UPDATE "x.y".z SET v = 'changed' WHERE id = 2;
          CREATE OR REPLACE FUNCTION item_value(p_qty integer, p_price numeric) RETURNS numeric
            LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN p_qty * p_price + 1; END $$;
          DROP INDEX "x.y".z_v;
          CREATE TABLE added (id int);
          SELECT setval('counter', 151);
          SELECT lo_put(424242, 0, '\\x00'::bytea);
        `),
      );
      const changed = (await dumpContents(postgres, url)).contents;
      assert.deepEqual(named(compareContents(c, changed)), [
        'data large objects -/large objects',
        'data table data x.y/z',
        'definition FUNCTION public/item_value(integer, numeric)',
        'definition SEQUENCE SET public/counter',
        'missing INDEX x.y/z_v',
        'unexpected TABLE public/added',
        'unexpected table data public/added',
      ]);
      assert.deepEqual(compareContents(changed, changed), []);
      const described = compareContents(c, changed).map(describeDifference).join('\n');
      assert.match(described, /table "x\.y"\.z holds other data/);
      assert.match(described, /index "x\.y"\.z_v is missing/);
    } finally {
      await dropDatabase('postgresql', name);
    }
  });

  test('restored into another database, the copy has the same contents', async () => {
    const a = uniqueName('sbx_contents_pga');
    const b = uniqueName('sbx_contents_pgb');
    try {
      const url = await createPgFixture(a);
      await addPgObjects(url);
      const { contents, bytes } = await dumpContents(postgres, url);
      await createDatabase('postgresql', b);
      await postgres.restore(info(pgUrl(b)), Readable.from([bytes]));
      assert.deepEqual(compareContents(contents, (await dumpContents(postgres, pgUrl(b))).contents), []);
    } finally {
      await dropDatabase('postgresql', a);
      await dropDatabase('postgresql', b);
    }
  });
});

describe('contents of synthetic archives', () => {
  test('the \\. terminator and the chunking are not part of a digest; held-back lines are', async () => {
    const rows = ['1\tx', '\\\\.', '\\N', '2\t\\\\'];
    const expected = createHash('sha256').update(rows.map((r) => r + '\n').join('')).digest('hex');
    for (const terminator of [true, false]) {
      const archive = pgArchiveBuffer({ version: [1, 15, 0], tables: [{ dumpId: 10, schema: 'public', name: 't', chunks: copyChunks(rows, terminator) }] });
      for (const source of [fixedChunks(archive, 1), fixedChunks(archive, 7), randomChunks(archive, 3, 64)]) {
        const c = await contentsOfBytes('postgresql', source);
        assert.equal(c!.tables[0].sha256, expected, `terminator ${terminator}`);
        assert.equal(c!.tables[0].rows, 4);
      }
    }
    // A last line "\" without a newline is a row, and hashed.
    const lone = pgArchiveBuffer({ version: [1, 14, 0], tables: [{ dumpId: 10, schema: 'public', name: 't', chunks: [Buffer.from('1\n\\')] }] });
    const c = await contentsOfBytes('postgresql', fixedChunks(lone, 1));
    assert.equal(c!.tables[0].rows, 2);
    assert.equal(c!.tables[0].sha256, createHash('sha256').update('1\n\\').digest('hex'));
  });

  test('large objects: count, and a digest that tells objects apart', async () => {
    const one = { dumpId: 20, objects: [{ oid: 1, chunks: [Buffer.from('ab')] }, { oid: 2, chunks: [Buffer.from('c')] }] };
    const other = { dumpId: 20, objects: [{ oid: 1, chunks: [Buffer.from('a')] }, { oid: 2, chunks: [Buffer.from('bc')] }] };
    const split = { dumpId: 20, objects: [{ oid: 1, chunks: [Buffer.from('a'), Buffer.from('b')] }, { oid: 2, chunks: [Buffer.from('c')] }] };
    const of = async (blobs: typeof one) => (await contentsOfBytes('postgresql', fixedChunks(pgArchiveBuffer({ version: [1, 14, 0], tables: [], blobs }), 3)))!.large_objects!;
    assert.equal((await of(one)).count, 2);
    assert.notEqual((await of(one)).sha256, (await of(other)).sha256);
    assert.equal((await of(one)).sha256, (await of(split)).sha256);
  });

  test('no contents when no counts', async () => {
    const counter = new PgCustomRowCounter();
    await runThrough(fixedChunks(Buffer.from('not an archive'), 4), counter);
    assert.equal(counter.contents(), null);
  });
});

async function addMysqlObjects(url: string): Promise<void> {
  await withMysqlConnection(url, async (c) => {
    await c.query(`
      CREATE SEQUENCE seq START WITH 100;
      CREATE TABLE numbered (id INT DEFAULT NEXTVAL(seq), v VARCHAR(10)) ENGINE=InnoDB;
      INSERT INTO numbered (v) VALUES ('a'), ('b');
      CREATE TABLE versioned (id INT PRIMARY KEY, v TEXT) WITH SYSTEM VERSIONING;
      INSERT INTO versioned VALUES (1, 'one'), (2, 'two');
      UPDATE versioned SET v = 'uno' WHERE id = 1;
      CREATE TABLE binary_data (id INT PRIMARY KEY, b LONGBLOB, c VARBINARY(300));
      CREATE TABLE \`a.b\` (id INT);
      INSERT INTO \`a.b\` VALUES (1);
      CREATE PROCEDURE touch_items() UPDATE items SET qty = qty WHERE id = 0;
    `);
    await c.query('INSERT INTO binary_data VALUES (1, ?, ?), (2, ?, ?)', [ALL_BYTES, ALL_BYTES, Buffer.from("'),(\\;\n"), Buffer.alloc(0)]);
    await c.query('SELECT SETVAL(seq, 500)');
  });
}

/** mariadb-dump with extra options (another INSERT layout), as bytes. */
async function mariadbDump(conn: ConnectionInfo, extra: string[]): Promise<Buffer> {
  const args = ['--no-defaults', '--protocol=TCP', `--host=${conn.host}`, `--port=${conn.port}`, `--user=${conn.user}`, '--single-transaction', '--routines', '--triggers', '--events', '--default-character-set=utf8mb4', ...extra, conn.database];
  const child = spawn('mariadb-dump', args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MYSQL_PWD: conn.password } });
  const chunks: Buffer[] = [];
  for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('close', resolve)));
  assert.equal(code, 0);
  return Buffer.concat(chunks);
}

describe('contents of real mariadb-dump output', () => {
  test('stable, whatever the chunking and however INSERTs are split; each change is named and nothing else', async () => {
    const name = uniqueName('sbx_contents_my');
    try {
      const url = await createMysqlFixture(name);
      await addMysqlObjects(url);
      const { contents: c, bytes } = await dumpContents(mysql, url);
      assert.deepEqual(c.tables.find((t) => t.table === 'a.b'), { schema: null, table: 'a.b', rows: 1, sha256: c.tables.find((t) => t.table === 'a.b')!.sha256 });
      assert.equal(c.tables.find((t) => t.table === 'versioned')!.rows, 2);
      assert.equal(c.tables.find((t) => t.table === 'binary_data')!.rows, 2);
      const objects = c.objects.map((o) => `${o.kind} ${o.name}`).sort();
      for (const o of ['EVENT nightly_noop', 'FUNCTION item_value', 'PROCEDURE touch_items', 'SEQUENCE seq', 'SEQUENCE SET seq', 'TABLE items', 'TABLE numbered', 'TRIGGER items_note_default', 'VIEW item_totals']) {
        assert.ok(objects.includes(o), `${o} in ${objects.join(', ')}`);
      }
      assert.ok(!objects.includes('TABLE item_totals'), 'the view placeholder is replaced by the view');
      assert.equal(c.large_objects, null);

      assert.deepEqual((await dumpContents(mysql, url)).contents, c);
      assert.deepEqual(await contentsOfBytes('mysql', fixedChunks(bytes, 1)), c);
      assert.deepEqual(await contentsOfBytes('mysql', randomChunks(bytes, 5, 2048)), c);
      // One INSERT per row, or many small ones: the rows' digests do not change.
      for (const extra of [['--skip-extended-insert'], ['--net-buffer-length=4096']]) {
        const other = await contentsOfBytes('mysql', randomChunks(await mariadbDump(info(url), extra), 7, 4096));
        assert.deepEqual(other!.tables, c.tables, extra.join(' '));
      }

      await withMysqlConnection(url, (cl) =>
        cl.query(`
          UPDATE texts SET body = 'changed' WHERE id = 1;
          DROP TRIGGER items_note_default;
          CREATE TRIGGER items_note_default BEFORE INSERT ON items FOR EACH ROW SET NEW.note = COALESCE(NEW.note, 'other');
          DROP VIEW item_totals;
          -- Above the cached block NEXTVAL took (100 + 1000): the dump writes the next value not cached.
          SELECT SETVAL(seq, 5000);
          CREATE TABLE added (id INT);
        `),
      );
      const changed = (await dumpContents(mysql, url)).contents;
      assert.deepEqual(named(compareContents(c, changed)), [
        'definition SEQUENCE SET -/seq',
        'definition TRIGGER -/items_note_default',
        'missing VIEW -/item_totals',
        'unexpected TABLE -/added',
        'unexpected table data -/added',
        'data table data -/texts',
      ].sort());
    } finally {
      await dropDatabase('mysql', name);
    }
  });

  test('restored under another name (sequence references rewritten), the copy has the same contents', async () => {
    const a = uniqueName('sbx_contents_mya');
    const b = uniqueName('sbx_contents_myb');
    try {
      const url = await createMysqlFixture(a);
      await addMysqlObjects(url);
      const { contents, bytes } = await dumpContents(mysql, url);
      assert.match(bytes.toString('latin1'), new RegExp(`nextval\\(\`${a}\`\\.\`seq\`\\)`), 'the dump names its own database');
      await createDatabase('mysql', b);
      await mysql.restore(info(mysqlUrl(b)), Readable.from([bytes]), { sourceDatabase: a });
      assert.deepEqual(compareContents(contents, (await dumpContents(mysql, mysqlUrl(b))).contents), []);
    } finally {
      await dropDatabase('mysql', a);
      await dropDatabase('mysql', b);
    }
  });
});

describe('definitions on hand-written mariadb-dump output', () => {
  const dump = (definer: string, body: string, db = 'shop') =>
    Buffer.from(
      `-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: 127.0.0.1    Database: ${db}\n` +
        `-- ------------------------------------------------------\n\nCREATE TABLE \`t\` (\n  \`id\` int(11) DEFAULT nextval(\`${db}\`.\`s\`)\n);\n` +
        `DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=${definer}*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW ${body} */;;\nDELIMITER ;\n` +
        `\n-- Dump completed on 2026-01-01  0:00:00\n`,
    );
  const objects = async (b: Buffer) => (await contentsOfBytes('mysql', fixedChunks(b, 3)))!.objects;

  test('the DEFINER and the dumped database\'s own name are not part of a definition; the body is', async () => {
    const base = await objects(dump('`root`@`127.0.0.1`', 'SET NEW.id = 1'));
    assert.deepEqual(base.map((o) => `${o.kind} ${o.name}`), ['TABLE t', 'TRIGGER tr']);
    assert.deepEqual(await objects(dump('`app`@`%`', 'SET NEW.id = 1')), base, 'another definer');
    assert.deepEqual(await objects(dump("'root'@'localhost'", 'SET NEW.id = 1')), base, 'quoted the other way');
    assert.deepEqual(await objects(dump('`root`@`127.0.0.1`', 'SET NEW.id = 1', 'other_name')), base, 'dumped under another database name');
    assert.notDeepEqual(await objects(dump('`root`@`127.0.0.1`', 'SET NEW.id = 2')), base, 'another body');
  });

  test('a 6 MiB definition is digested as it passes, not kept', async () => {
    const body = (fill: string) => `BEGIN\n${`SET @x = '${fill.repeat(1000)}';\n`.repeat(6 * 1024)} END`;
    const run = async (fill: string) => {
      const counter = new MysqlDumpRowCounter();
      await runThrough(fixedChunks(dump('`root`@`localhost`', body(fill)), 64 * 1024), counter);
      assert.equal(counter.reason(), null);
      assert.ok(counter.peakRetainedBytes <= 8 * 1024, `retained up to ${counter.peakRetainedBytes} bytes`);
      return counter.contents()!.objects.find((o) => o.kind === 'TRIGGER')!;
    };
    const a = await run('a');
    assert.equal(a.name, 'tr');
    assert.deepEqual(await run('a'), a);
    assert.notEqual((await run('b')).sha256, a.sha256);
  });
});

describe('names of CREATE statements as mariadb-dump writes them', () => {
  const cases: Array<[string, { kind: string; name: string } | null]> = [
    ['CREATE TABLE `t` (\n  `id` int)', { kind: 'TABLE', name: 't' }],
    ['CREATE TABLE IF NOT EXISTS `db`.`a.b` (x int)', { kind: 'TABLE', name: 'a.b' }],
    ['CREATE*/ /*!50017 DEFINER=`root`@`127.0.0.1`*/ /*!50003 trigger tr before insert on t for each row set new.b = 1 \n*/', { kind: 'TRIGGER', name: 'tr' }],
    ['CREATE DEFINER=`root`@`%` PROCEDURE `p``q`()\nselect 1', { kind: 'PROCEDURE', name: 'p`q' }],
    ['CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`table`@`localhost` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1', { kind: 'VIEW', name: 'v' }],
    ['CREATE*/ /*!50117 DEFINER=`root`@`127.0.0.1`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY', { kind: 'EVENT', name: 'e' }],
    ['CREATE SEQUENCE `s` start with 5', { kind: 'SEQUENCE', name: 's' }],
    ['CREATE DATABASE x', null],
  ];
  for (const [text, expected] of cases) {
    test(text.split('\n')[0].slice(0, 60), () => assert.deepEqual(createdObject(text), expected));
  }
});
