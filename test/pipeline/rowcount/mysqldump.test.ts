/**
 * MysqlDumpRowCounter against real mariadb-dump output (compared with the engine's own
 * SELECT COUNT(*) per base table) and against hand-written dumps for the SQL corners a
 * real dump of the test server does not show.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { mysql, parseConnectionUrl, type ConnectionInfo } from '../../../src/engines/index.js';
import { MysqlDumpRowCounter } from '../../../src/pipeline/rowcount/mysqldump.js';
import { rowCounterFor } from '../../../src/pipeline/rowcount/index.js';
import {
  ALL_BYTES,
  addLargeTable,
  createMysqlFixture,
  dropDatabase,
  mysqlIdent,
  uniqueName,
  withMysqlConnection,
} from '../../helpers/databases.js';
import { fixedChunks, pgArchiveBuffer, randomChunks, runThrough } from './helpers.js';

/** Strings that would fool a counter that splits on commas, parentheses, semicolons or quotes. */
const NASTY_TEXTS = [
  "'),('",
  "x'); INSERT INTO items VALUES (1); --",
  ';',
  ';;',
  '\\',
  "\\'",
  "''",
  "it's",
  '"double" "quotes"',
  '\n),(\n',
  '\r\n',
  '\t',
  '-- not a comment',
  '# not a comment',
  '/* not a comment */',
  '*/',
  '/*!50000 not code */',
  '`',
  '``',
  'DELIMITER ;;',
  'INSERT INTO `values` VALUES (1),(2),(3);',
  'nul \u0000 byte',
  'emoji 😀 ),( 表',
  '(',
  ')',
  '0x414243',
  "_binary 'x'",
];
const ODD_TABLE = 'a;b),(c `q` \'s\'';

/** Tables, a view and routine bodies that a row counter could trip over. */
async function addAwkwardObjects(url: string): Promise<void> {
  await withMysqlConnection(url, async (c) => {
    await c.query(`
      CREATE TABLE empty_one (id INT) ENGINE=InnoDB;
      CREATE TABLE \`values\` (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
      INSERT INTO \`values\` VALUES (1, 'one'), (2, 'two'), (3, NULL);
      CREATE TABLE ${mysqlIdent(ODD_TABLE)} (id INT, v TEXT) ENGINE=InnoDB;
      INSERT INTO ${mysqlIdent(ODD_TABLE)} VALUES (1, 'x'), (2, '),(');
      CREATE TABLE nasty (id INT PRIMARY KEY, v TEXT, b LONGBLOB) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
      CREATE TABLE \`ünï cødé 表\` (id INT) ENGINE=InnoDB;
      INSERT INTO \`ünï cødé 表\` VALUES (1), (2), (3), (4);
      CREATE TABLE mem (id INT) ENGINE=MEMORY;
      INSERT INTO mem VALUES (1), (2);
      CREATE VIEW v_values AS SELECT id, v FROM \`values\`;
    `);
    for (const [i, text] of NASTY_TEXTS.entries()) {
      await c.query('INSERT INTO nasty VALUES (?, ?, ?)', [i + 1, text, Buffer.concat([ALL_BYTES, Buffer.from(text)])]);
    }
    // Bodies full of INSERT … VALUES and semicolons: none of those rows are data.
    await c.query(`
      CREATE PROCEDURE fill_items()
      BEGIN
        INSERT INTO empty_one VALUES (1), (2);
        INSERT INTO \`values\` VALUES (10, 'ten'),(11, 'eleven;');
        INSERT INTO empty_one VALUES (3);
      END`);
    await c.query(`
      CREATE TRIGGER nasty_audit AFTER INSERT ON nasty FOR EACH ROW
      BEGIN
        INSERT INTO empty_one VALUES (NEW.id);
        INSERT INTO empty_one VALUES (NEW.id + 1), (NEW.id + 2);
      END`);
    await c.query(`CREATE EVENT fill_later ON SCHEDULE EVERY 1 DAY DISABLE DO INSERT INTO empty_one VALUES (1),(2),(3)`);
    await c.query(`CREATE FUNCTION count_values() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM \`values\`)`);
  });
}

function info(url: string): ConnectionInfo {
  return parseConnectionUrl(url).info;
}

async function dumpThroughCounter(conn: ConnectionInfo) {
  const dump = await mysql.dump(conn);
  const counter = new MysqlDumpRowCounter();
  const [result] = await Promise.all([runThrough(dump.stdout, counter, true), dump.done]);
  return { counter, result, bytes: result.output! };
}

async function countOf(source: Readable): Promise<MysqlDumpRowCounter> {
  const counter = new MysqlDumpRowCounter();
  await runThrough(source, counter);
  return counter;
}

/** Run mariadb-dump directly with extra options (the engine always uses its own set). */
async function dumpWith(conn: ConnectionInfo, extra: string[]): Promise<Buffer> {
  const args = [
    '--no-defaults',
    '--protocol=TCP',
    `--host=${conn.host}`,
    `--port=${conn.port}`,
    `--user=${conn.user}`,
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob',
    '--default-character-set=utf8mb4',
    ...extra,
    conn.database,
  ];
  const child = spawn('mariadb-dump', args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MYSQL_PWD: conn.password } });
  const chunks: Buffer[] = [];
  for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('close', resolve)));
  assert.equal(code, 0, `mariadb-dump ${extra.join(' ')} failed`);
  return Buffer.concat(chunks);
}

describe('MysqlDumpRowCounter on real mariadb-dump output', () => {
  test('fixture with awkward tables and routines: counts equal tableRowCounts, bytes unchanged, any chunking', async () => {
    const name = uniqueName('sbx_rowcount_my');
    try {
      const url = await createMysqlFixture(name);
      await addAwkwardObjects(url);
      const conn = info(url);
      const { counter, result, bytes } = await dumpThroughCounter(conn);
      const expected = await mysql.tableRowCounts(conn);

      assert.equal(counter.reason(), null);
      assert.deepEqual(counter.counts(), expected);
      assert.equal(result.sha256Out, result.sha256In);
      assert.equal(result.bytesOut, result.bytesIn);
      // The awkward cases are really in there.
      assert.equal(expected.empty_one, 0);
      assert.equal(expected.values, 3);
      assert.equal(expected[ODD_TABLE], 2);
      assert.equal(expected.nasty, NASTY_TEXTS.length);
      assert.equal(expected['ünï cødé 表'], 4);
      assert.equal(expected.items, 400);
      assert.ok(!('v_values' in expected) && !('item_totals' in expected));
      const text = bytes.toString('utf8');
      assert.match(text, /DELIMITER ;;\n[^]*INSERT INTO empty_one VALUES \(NEW\.id \+ 1\)/);
      assert.match(text, /PROCEDURE `fill_items`[^]*INSERT INTO `values` VALUES \(10, 'ten'\),\(11, 'eleven;'\);/);
      assert.match(text, /EVENT `fill_later`[^]*DO INSERT INTO empty_one VALUES \(1\),\(2\),\(3\)/);
      assert.match(text, /CREATE VIEW `v_values`/);

      const oneByte = await countOf(fixedChunks(bytes, 1));
      assert.deepEqual(oneByte.counts(), expected);
      for (const seed of [1, 2, 3]) {
        const random = await countOf(randomChunks(bytes, seed, 4096));
        assert.deepEqual(random.counts(), expected, `seed ${seed}`);
      }
    } finally {
      await dropDatabase('mysql', name);
    }
  });

  test('a table with 120,000 rows', async () => {
    const name = uniqueName('sbx_rowcount_mybig');
    try {
      const url = await createMysqlFixture(name);
      await addLargeTable('mysql', url, 120_000);
      const conn = info(url);
      const { counter, result, bytes } = await dumpThroughCounter(conn);
      const expected = await mysql.tableRowCounts(conn);
      assert.equal(expected.big, 120_000);
      assert.deepEqual(counter.counts(), expected);
      assert.equal(result.sha256Out, result.sha256In);
      // --quick with extended inserts: the big table comes as several INSERT statements.
      assert.ok((bytes.toString('latin1').match(/^INSERT INTO `big` VALUES\s/gm) ?? []).length > 1);
      const random = await countOf(randomChunks(bytes, 42));
      assert.deepEqual(random.counts(), expected);
    } finally {
      await dropDatabase('mysql', name);
    }
  });

  test('other mariadb-dump insert styles count the same', async () => {
    const name = uniqueName('sbx_rowcount_mystyle');
    try {
      const url = await createMysqlFixture(name);
      await addAwkwardObjects(url);
      const conn = info(url);
      const expected = await mysql.tableRowCounts(conn);
      for (const extra of [
        ['--skip-extended-insert'],
        ['--complete-insert'],
        ['--insert-ignore', '--complete-insert'],
        ['--replace'],
        ['--skip-add-locks', '--skip-disable-keys', '--skip-tz-utc'],
      ]) {
        const bytes = await dumpWith(conn, extra);
        const counter = await countOf(randomChunks(bytes, 9, 8192));
        assert.equal(counter.reason(), null, extra.join(' '));
        assert.deepEqual(counter.counts(), expected, extra.join(' '));
      }
    } finally {
      await dropDatabase('mysql', name);
    }
  });
});

const HEAD = '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n';
const TAIL = '\n-- Dump completed on 2024-01-01  0:00:00\n';

/** Count a hand-written dump body, fed whole, byte by byte and in random pieces; all must agree. */
async function countBody(body: string): Promise<Record<string, number> | null> {
  const bytes = Buffer.from(HEAD + body + TAIL, 'utf8');
  const results: Array<Record<string, number> | null> = [];
  for (const source of [fixedChunks(bytes, bytes.length), fixedChunks(bytes, 1), randomChunks(bytes, 5, 50)]) {
    const counter = await countOf(source);
    results.push(counter.counts());
    if (!counter.counts()) assert.fail(`no counts: ${counter.reason()}`);
  }
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[2], results[0]);
  return results[0];
}

describe('MysqlDumpRowCounter on hand-written dumps', () => {
  test('old-style view placeholders (a table, then dropped and replaced) are not tables', async () => {
    const counts = await countBody(`
DROP TABLE IF EXISTS \`t\`;
CREATE TABLE \`t\` (\`id\` int);
INSERT INTO \`t\` VALUES (1),(2);
DROP TABLE IF EXISTS \`v\`;
/*!50001 DROP VIEW IF EXISTS \`v\`*/;
/*!50001 CREATE TABLE \`v\` (
  \`id\` tinyint NOT NULL
) ENGINE=MyISAM */;
/*!50001 DROP TABLE IF EXISTS \`v\`*/;
/*!50001 DROP VIEW IF EXISTS \`v\`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=\`root\`@\`localhost\` SQL SECURITY DEFINER */
/*!50001 VIEW \`v\` AS select \`t\`.\`id\` AS \`id\` from \`t\` */;
/*!50001 CREATE TABLE \`w\` (\`id\` tinyint NOT NULL) ENGINE=MyISAM */;
/*!50001 CREATE OR REPLACE VIEW \`w\` AS select 1 AS \`id\` */;
`);
    assert.deepEqual(counts, { t: 2 });
  });

  test('insert variants: column lists, qualified names, IGNORE, REPLACE, ON DUPLICATE KEY, nested parentheses', async () => {
    const counts = await countBody(`
CREATE TABLE \`a\` (id int);
CREATE TABLE IF NOT EXISTS \`b\` (id int);
CREATE TABLE \`db\`.\`c\` (id int);
CREATE TABLE d (id int);
INSERT INTO \`a\` (\`id\`, \`x\`) VALUES (1, CONCAT('a', '(', ')')),(2, POINT(1, 2));
INSERT IGNORE INTO \`b\` VALUES (1),(2),(3);
REPLACE INTO \`db\`.\`c\` VALUES (1);
REPLACE INTO \`c\` VALUE (2);
INSERT INTO \`a\` VALUES (3) ON DUPLICATE KEY UPDATE id = VALUES(id), x = (1);
INSERT LOW_PRIORITY INTO d VALUES(1) , ( 2 ) ,(3);
insert into d values (4);
INSERT INTO d SET id = 5;
/*!40000 INSERT INTO d VALUES (6) */;
`);
    assert.deepEqual(counts, { a: 3, b: 3, c: 2, d: 6 });
  });

  test('strings, identifiers and comments that hide parentheses, commas and semicolons', async () => {
    const counts = await countBody(`
CREATE TABLE \`t;1\` (id int);
-- INSERT INTO \`t;1\` VALUES (100);
# INSERT INTO \`t;1\` VALUES (100);
/* INSERT INTO \`t;1\` VALUES (100); */
INSERT INTO \`t;1\` VALUES ('a\\'),(\\'',1),('b'')(''',2),("c\\"),(",3),('d\\\\'),(4),(0x2C29283B,-5),
(b'101',--6
7),(/* ), ( */ 8),(# ),(
9),('),(\\\\',10);
SELECT 1--1;
SELECT '-- not a comment', "# nor this", \`/* nor this */\`;
`);
    assert.deepEqual(counts, { 't;1': 10 });
  });

  // By design, only statements under the default ";" delimiter are data: mysqldump writes
  // rows nowhere else, so the (7) below, a statement of its own in a ";;" block, is not counted.
  test('DELIMITER blocks: INSERTs in routine and trigger bodies are not rows', async () => {
    const counts = await countBody(`
CREATE TABLE \`t\` (id int);
INSERT INTO \`t\` VALUES (1);
DELIMITER ;;
CREATE DEFINER=\`root\`@\`%\` PROCEDURE \`p\`()
BEGIN
  INSERT INTO \`t\` VALUES (2),(3);
  INSERT INTO \`t\` VALUES (4);
  CREATE TABLE \`ghost\` (id int);
END ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`root\`@\`%\`*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN
INSERT INTO t VALUES (5);
INSERT INTO t VALUES (6);
END */;;
INSERT INTO \`t\` VALUES (7);;
DELIMITER ;
INSERT INTO \`t\` VALUES (8),(9);
delimiter $$
CREATE PROCEDURE q() BEGIN INSERT INTO t VALUES (10); END$$
delimiter ;
INSERT INTO \`t\` VALUES (11);
`);
    assert.deepEqual(counts, { t: 4 });
  });

  test('DROP TABLE lists remove tables', async () => {
    const counts = await countBody(`
CREATE TABLE \`a\` (id int);
CREATE TABLE \`b\` (id int);
CREATE TABLE \`c\` (id int);
CREATE TABLE \`d\` (id int);
DROP TABLE IF EXISTS \`a\`, \`b\`;
DROP TEMPORARY TABLE c;
DROP VIEW IF EXISTS \`d\`;
`);
    assert.deepEqual(counts, { c: 0, d: 0 });
  });

  const unreadable: Array<[string, () => Buffer, RegExp]> = [
    ['random bytes', () => randomBytes(100_000), /not a mysqldump/],
    ['an empty stream', () => Buffer.alloc(0), /not a mysqldump/],
    ['a pg_dump archive', () => pgArchiveBuffer({ version: [1, 14, 0], tables: [] }), /not a mysqldump/],
    ['a dump without the trailer', () => Buffer.from(`${HEAD}CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n`), /no "-- Dump completed" trailer/],
    ['a dump that ends in a string', () => Buffer.from(`${HEAD}CREATE TABLE t (id int);\nINSERT INTO t VALUES ('1${TAIL}`), /inside a string/],
    ['a dump that ends in a statement', () => Buffer.from(`${HEAD}CREATE TABLE t (id int);\nINSERT INTO t VALUES (1)${TAIL}`), /middle of a statement/],
    ['a dump that ends in a conditional comment', () => Buffer.from(`${HEAD}/*!40000 ALTER TABLE t;\n${TAIL}`), /inside a \/\*! … \*\/ comment/],
  ];
  for (const [what, make, reason] of unreadable) {
    test(`${what}: no counts, reason given, bytes unchanged`, async () => {
      const input = make();
      const counter = new MysqlDumpRowCounter();
      const result = await runThrough(randomChunks(input, 3, 1000), counter);
      assert.equal(counter.counts(), null);
      assert.match(counter.reason() ?? '', reason);
      assert.equal(result.sha256Out, result.sha256In);
      assert.equal(result.bytesOut, input.length);
    });
  }

  test('a dump cut short anywhere gives no counts', async () => {
    const body = `CREATE TABLE \`t\` (id int);\nINSERT INTO \`t\` VALUES (1,'a;b'),(2,'c');\nDELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END ;;\nDELIMITER ;\n`;
    const bytes = Buffer.from(HEAD + body + TAIL);
    // Every cut before the trailer line (a cut inside it loses nothing but the date).
    for (let cut = 0; cut <= bytes.length - TAIL.length; cut += 3) {
      const counter = await countOf(fixedChunks(bytes.subarray(0, cut), 7));
      assert.equal(counter.counts(), null, `cut at ${cut}`);
    }
    assert.deepEqual((await countOf(fixedChunks(bytes, 7))).counts(), { t: 2 });
  });

  test('counts() is null before the end', () => {
    const counter = new MysqlDumpRowCounter();
    counter.write(Buffer.from(`${HEAD}CREATE TABLE t (id int);\n`));
    assert.equal(counter.counts(), null);
    assert.match(counter.reason() ?? '', /not been read to its end/);
    counter.destroy();
  });

  test('memory stays bounded: 50 MB with megabyte strings, comments and identifiers', async () => {
    const bigString = `'${"it''s \\' a ),( long; string ".repeat(10_000)}'`;
    const bigHex = `0x${'AB'.repeat(200_000)}`;
    const rowsPerInsert = 100;
    const inserts = 36;
    function* gen(): Generator<Buffer> {
      yield Buffer.from(`${HEAD}CREATE TABLE \`t\` (\`${'c'.repeat(3_000_000)}\` int, \`x\` text);\n`);
      yield Buffer.from(`/* ${'a long comment '.repeat(200_000)} */\n-- ${'x'.repeat(1_000_000)}\n`);
      for (let i = 0; i < inserts; i++) {
        const rows: string[] = [];
        for (let r = 0; r < rowsPerInsert; r++) rows.push(r % 50 === 0 ? `(${r},${bigString},${bigHex})` : `(${r},'x',0x00)`);
        yield Buffer.from(`INSERT INTO \`t\` VALUES ${rows.join(',')};\n`);
      }
      yield Buffer.from(TAIL);
    }
    const counter = new MysqlDumpRowCounter();
    const result = await runThrough(Readable.from(gen(), { objectMode: false }), counter);
    assert.ok(result.bytesIn > 50_000_000, `only ${result.bytesIn} bytes`);
    assert.deepEqual(counter.counts(), { t: inserts * rowsPerInsert });
    assert.ok(counter.peakRetainedBytes <= 8 * 1024, `retained up to ${counter.peakRetainedBytes} bytes`);
  });

  test('rowCounterFor("mysql") wraps the same counter', async () => {
    const rc = rowCounterFor('mysql');
    await runThrough(fixedChunks(Buffer.from(`${HEAD}CREATE TABLE \`t\` (id int);\nINSERT INTO \`t\` VALUES (1),(2);\n${TAIL}`), 10), rc.stream);
    assert.deepEqual(rc.counts(), { t: 2 });
    assert.equal(rc.reason(), null);
  });
});
