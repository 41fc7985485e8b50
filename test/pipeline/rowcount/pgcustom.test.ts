/**
 * PgCustomRowCounter against real pg_dump output (compared with the engine's own
 * SELECT count(*) per table) and against synthetic archives for the layouts and
 * failure modes a local pg_dump 15 cannot produce.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { parseConnectionUrl, postgres, type ConnectionInfo } from '../../../src/engines/index.js';
import { pickPgClient } from '../../../src/engines/postgres/clients.js';
import { PgCustomRowCounter } from '../../../src/pipeline/rowcount/pgcustom.js';
import { rowCounterFor } from '../../../src/pipeline/rowcount/index.js';
import { addLargeTable, createPgFixture, dropDatabase, pgIdent, uniqueName, withPgClient } from '../../helpers/databases.js';
import {
  copyChunks,
  fixedChunks,
  pgArchive,
  pgArchiveBuffer,
  pgInt,
  pgStr,
  randomChunks,
  runThrough,
  type SyntheticArchive,
} from './helpers.js';

const ODD_TABLE = 'tab\tand\nnewline "quoted"';

/** Objects beyond the standard fixture that a row counter could trip over. */
async function addAwkwardTables(url: string): Promise<void> {
  await withPgClient(url, async (c) => {
    await c.query(`
      CREATE TABLE empty_one (id integer);
      CREATE SCHEMA second;
      CREATE TABLE second.items (id integer PRIMARY KEY, note text);
      INSERT INTO second.items SELECT g, 'second ' || g FROM generate_series(1, 25) g;
      CREATE TABLE second.empty_two (x text);
      CREATE SCHEMA "ünï cødé";
      CREATE TABLE "ünï cødé"."表 table" (id integer);
      INSERT INTO "ünï cødé"."表 table" VALUES (1), (2);

      -- Rows of a table without columns are empty lines in COPY text.
      CREATE TABLE no_columns ();
      INSERT INTO no_columns SELECT FROM generate_series(1, 3);

      -- One text column: lines that are empty, ".", or a backslash-dot that is data.
      CREATE TABLE lone (t text);
      INSERT INTO lone VALUES ('\\.'), ('.'), (''), (NULL), (E'\\n'), (E'\\r\\n'), (E'\\\\'), (E'\\n\\\\.\\n'), (E'\\t'), ('\\N');

      -- Partitions are the tables; the partitioned parent holds no rows of its own.
      CREATE TABLE parted (id integer, v text) PARTITION BY RANGE (id);
      CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
      CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (1000);
      INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 300) g;

      CREATE UNLOGGED TABLE scratch (id integer);
      INSERT INTO scratch SELECT generate_series(1, 5);
      CREATE MATERIALIZED VIEW second.items_mv AS SELECT * FROM second.items;

      -- A large object full of newlines and "\\." bytes: a BLOBS block, not table data.
      SELECT lo_from_bytea(0, '\\x0a0a5c2e0a0a5c2e0a'::bytea);
    `);
    await c.query(`CREATE TABLE ${pgIdent(ODD_TABLE)} (id integer, "Semi;colon" text)`);
    await c.query(`INSERT INTO ${pgIdent(ODD_TABLE)} VALUES (1, $1), (2, $2)`, ['\\.\n\\.', 'a\tb\r\nc']);
  });
}

function info(url: string): ConnectionInfo {
  return parseConnectionUrl(url).info;
}

/** Dump with the engine through a counter; returns the counter, the dump bytes and the in/out hashes. */
async function dumpThroughCounter(conn: ConnectionInfo) {
  const dump = await postgres.dump(conn);
  const counter = new PgCustomRowCounter();
  const [result] = await Promise.all([runThrough(dump.stdout, counter, true), dump.done]);
  return { counter, result, bytes: result.output! };
}

async function countOf(source: Readable): Promise<PgCustomRowCounter> {
  const counter = new PgCustomRowCounter();
  await runThrough(source, counter);
  return counter;
}

describe('PgCustomRowCounter on real pg_dump output', () => {
  test('fixture with awkward tables: counts equal tableRowCounts, bytes unchanged, any chunking', async () => {
    const name = uniqueName('sbx_rowcount_pg');
    try {
      const url = await createPgFixture(name);
      await addAwkwardTables(url);
      const conn = info(url);
      const { counter, result, bytes } = await dumpThroughCounter(conn);
      const expected = await postgres.tableRowCounts(conn);

      assert.equal(counter.reason(), null);
      assert.deepEqual(counter.counts(), expected);
      assert.equal(result.sha256Out, result.sha256In);
      assert.equal(result.bytesOut, result.bytesIn);
      // The awkward cases are really in there.
      assert.equal(expected['public.no_columns'], 3);
      assert.equal(expected['public.lone'], 10);
      assert.equal(expected['public.empty_one'], 0);
      assert.equal(expected['second.empty_two'], 0);
      assert.equal(expected[`public.${ODD_TABLE}`], 2);
      assert.equal(expected['Other Schema.odd "name"'], 3);
      assert.equal(expected['ünï cødé.表 table'], 2);
      assert.equal(expected['public.parted_low'], 99);
      assert.ok(!('public.parted' in expected) && !('second.items_mv' in expected));
      // pg_dump 15 ends every table's COPY data with the "\." line (not a row), in a chunk of its own.
      assert.ok(bytes.includes(Buffer.concat([pgInt(5), Buffer.from('\\.\n\n\n')])));
      // The large object is there, as a BLOBS block whose newlines are no rows.
      assert.ok(bytes.includes(pgStr('BLOBS')) && bytes.includes(Buffer.from('\n\n\\.\n\n\\.\n')));

      // Byte by byte, and in random chunk sizes, the counts are the same.
      const oneByte = await countOf(fixedChunks(bytes, 1));
      assert.deepEqual(oneByte.counts(), expected);
      for (const seed of [1, 2, 3]) {
        const random = await countOf(randomChunks(bytes, seed, 4096));
        assert.deepEqual(random.counts(), expected, `seed ${seed}`);
      }
      assert.ok(oneByte.peakRetainedBytes < 8 * 1024, `retained ${oneByte.peakRetainedBytes}`);
    } finally {
      await dropDatabase('postgresql', name);
    }
  });

  test('a table with 120,000 rows', async () => {
    const name = uniqueName('sbx_rowcount_pgbig');
    try {
      const url = await createPgFixture(name);
      await addLargeTable('postgresql', url, 120_000);
      const conn = info(url);
      const { counter, result, bytes } = await dumpThroughCounter(conn);
      const expected = await postgres.tableRowCounts(conn);
      assert.equal(expected['public.big'], 120_000);
      assert.deepEqual(counter.counts(), expected);
      assert.equal(result.sha256Out, result.sha256In);
      const random = await countOf(randomChunks(bytes, 42));
      assert.deepEqual(random.counts(), expected);
    } finally {
      await dropDatabase('postgresql', name);
    }
  });

  test('a compressed archive from pg_dump passes through unchanged, without counts', async () => {
    const name = uniqueName('sbx_rowcount_pgz');
    try {
      const conn = info(await createPgFixture(name));
      const client = await pickPgClient(15);
      const child = spawn(
        client.pgDump,
        ['--format=custom', '--no-password', `--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`, `--dbname=${conn.database}`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const counter = new PgCustomRowCounter();
      const result = await runThrough(child.stdout, counter);
      assert.equal(await exited, 0);
      assert.equal(counter.counts(), null);
      assert.match(counter.reason() ?? '', /compressed/);
      assert.equal(result.sha256Out, result.sha256In);
      assert.ok(result.bytesIn > 1000);
    } finally {
      await dropDatabase('postgresql', name);
    }
  });
});

const TWO_TABLES = (terminator: boolean): SyntheticArchive['tables'] => [
  { dumpId: 10, schema: 'public', name: 'a', chunks: copyChunks(['1\tx', '2\ty', '3\t\\\\.'], terminator) },
  { dumpId: 11, schema: 's p a c e', name: 'empty', chunks: copyChunks([], terminator) },
  // Rows split across chunks in odd places, as a buffering pg_dump might send them.
  { dumpId: 12, schema: 'public', name: 'split', chunks: [Buffer.from('1\tab'), Buffer.from('c\n2'), Buffer.from('\t\\N\n3\t'), Buffer.from('z\n')] },
];

describe('PgCustomRowCounter on synthetic archives', () => {
  for (const version of [
    [1, 12, 0],
    [1, 14, 0],
    [1, 15, 0],
    [1, 16, 0],
  ] as Array<[number, number, number]>) {
    for (const terminator of [true, false]) {
      test(`layout ${version.join('.')}, ${terminator ? 'with' : 'without'} the \\. terminator`, async () => {
        const archive = pgArchiveBuffer({
          version,
          tables: TWO_TABLES(terminator),
          blobs: { dumpId: 20, objects: [{ oid: 5001, chunks: [Buffer.from('\n\n\\.\n\n')] }, { oid: 5002, chunks: [] }] },
        });
        const expected = { 'public.a': 3, 's p a c e.empty': 0, 'public.split': 3 };
        for (const source of [fixedChunks(archive, 1), fixedChunks(archive, 65536), randomChunks(archive, 7, 64)]) {
          const counter = await countOf(source);
          assert.equal(counter.reason(), null);
          assert.deepEqual(counter.counts(), expected);
        }
      });
    }
  }

  test('rows of a table without columns (empty lines) and a last row without a newline', async () => {
    const archive = pgArchiveBuffer({
      version: [1, 14, 0],
      tables: [
        { dumpId: 10, schema: 'public', name: 'nocols', chunks: copyChunks(['', '', '']) },
        { dumpId: 11, schema: 'public', name: 'unterminated', chunks: [Buffer.from('1\n2')] },
      ],
    });
    const counter = await countOf(fixedChunks(archive, 3));
    assert.deepEqual(counter.counts(), { 'public.nocols': 3, 'public.unterminated': 2 });
  });

  test('1.16: a foreign table (relkind f) is not counted; a LATIN1 database names its tables in LATIN1', async () => {
    const archive = pgArchiveBuffer({
      version: [1, 16, 0],
      encoding: 'LATIN1',
      tables: [
        { dumpId: 10, schema: 'public', name: 'local', chunks: copyChunks(['1']), relkind: 0x72 },
        { dumpId: 11, schema: 'public', name: 'remote', chunks: copyChunks(['1', '2']), relkind: 0x66 },
      ],
    });
    // pgArchive writes names as UTF-8; a LATIN1 archive has them in LATIN1 (same length: 11 bytes).
    const latin = pgArchiveBuffer({
      version: [1, 14, 0],
      encoding: 'LATIN1',
      tables: [{ dumpId: 10, schema: 'public', name: 'placeholder', chunks: copyChunks(['1']) }],
    });
    const withLatinName = Buffer.from(
      latin.toString('latin1').split('placeholder').join('caf\u00e9_tables'),
      'latin1',
    );
    assert.deepEqual((await countOf(fixedChunks(archive, 5))).counts(), { 'public.local': 1 });
    assert.deepEqual((await countOf(fixedChunks(withLatinName, 5))).counts(), { 'public.café_tables': 1 });
  });

  test('counts() is null before the end', async () => {
    const counter = new PgCustomRowCounter();
    counter.write(pgArchiveBuffer({ version: [1, 14, 0], tables: TWO_TABLES(true) }));
    assert.equal(counter.counts(), null);
    assert.match(counter.reason() ?? '', /not been read to its end/);
    counter.destroy();
  });

  const unreadable: Array<[string, () => Buffer, RegExp]> = [
    ['random bytes', () => randomBytes(100_000), /not a pg_dump custom-format archive/],
    ['an empty stream', () => Buffer.alloc(0), /ended before its table of contents/],
    ['a plain SQL dump', () => Buffer.from('--\n-- PostgreSQL database dump\n--\nCOPY t FROM stdin;\n1\n\\.\n'), /not a pg_dump custom/],
    ['archive version 1.17', () => pgArchiveBuffer({ version: [1, 17, 0], tables: TWO_TABLES(true) }), /version 1\.17\.0 is not supported/],
    ['archive version 1.11', () => pgArchiveBuffer({ version: [1, 11, 0], tables: TWO_TABLES(true) }), /version 1\.11\.0 is not supported/],
    ['1.15 with zstd', () => pgArchiveBuffer({ version: [1, 15, 0], compression: 3, tables: TWO_TABLES(true) }), /compressed \(zstd\)/],
    ['1.14 with zlib', () => pgArchiveBuffer({ version: [1, 14, 0], compression: -1, tables: TWO_TABLES(true) }), /compressed \(zlib level -1\)/],
    [
      'TABLE DATA as INSERT statements',
      () =>
        pgArchiveBuffer({
          version: [1, 14, 0],
          tables: [{ dumpId: 10, schema: 'public', name: 't', copyStmt: null, chunks: [Buffer.from('INSERT INTO t VALUES (1);\n')] }],
        }),
      /not COPY data/,
    ],
    [
      'an unknown block type',
      () => Buffer.concat([pgArchiveBuffer({ version: [1, 14, 0], tables: TWO_TABLES(true) }), Buffer.from([7]), pgInt(10)]),
      /unknown data block type 7/,
    ],
    [
      'a negative chunk length',
      () =>
        Buffer.concat([
          pgArchiveBuffer({ version: [1, 14, 0], tables: [] }),
          Buffer.from([1]),
          pgInt(10),
          pgInt(-5),
        ]),
      /chunk length -5/,
    ],
  ];
  for (const [what, make, reason] of unreadable) {
    test(`${what}: no counts, reason given, bytes unchanged`, async () => {
      const input = make();
      const counter = new PgCustomRowCounter();
      const result = await runThrough(randomChunks(input, 3, 1000), counter);
      assert.equal(counter.counts(), null);
      assert.match(counter.reason() ?? '', reason);
      assert.equal(result.sha256Out, result.sha256In);
      assert.equal(result.bytesOut, input.length);
    });
  }

  test('an archive cut short anywhere gives no counts', async () => {
    const archive = pgArchiveBuffer({ version: [1, 15, 0], tables: TWO_TABLES(true) });
    for (let cut = 0; cut < archive.length; cut += 7) {
      const counter = await countOf(fixedChunks(archive.subarray(0, cut), 11));
      assert.equal(counter.counts(), null, `cut at ${cut}`);
      assert.ok(counter.reason(), `cut at ${cut}`);
    }
    // A TOC string claims to be longer than the rest of the stream.
    const lying = Buffer.concat([archive.subarray(0, 80), pgStr('x').subarray(0, 1), Buffer.from([0xff, 0xff, 0xff, 0x7f])]);
    assert.equal((await countOf(fixedChunks(lying, 13))).counts(), null);
  });

  test('memory stays bounded: 50 MB of rows and a 5 MB function definition', async () => {
    const row = Buffer.from(`${'x'.repeat(90)}\t42\n`);
    const rows = 52_000_000 / row.length;
    function* chunks(): Generator<Buffer> {
      // pg_dump 15 sends one chunk per row; mix in larger chunks too.
      for (let i = 0; i < rows; i += 100) {
        if (i % 1000 === 0) yield Buffer.concat(Array.from({ length: 100 }, () => row));
        else for (let j = 0; j < 100; j++) yield row;
      }
      yield Buffer.from('\\.\n\n\n');
    }
    const generated = Math.ceil(rows / 100) * 100;
    const archive: SyntheticArchive = {
      version: [1, 16, 0],
      hugeDefinitionBytes: 5 * 1024 * 1024,
      tables: [{ dumpId: 10, schema: 'public', name: 'big', chunks: chunks() }],
    };
    const counter = new PgCustomRowCounter();
    const result = await runThrough(Readable.from(pgArchive(archive), { objectMode: false }), counter);
    assert.ok(result.bytesIn > 55_000_000, `only ${result.bytesIn} bytes`);
    assert.deepEqual(counter.counts(), { 'public.big': generated });
    assert.ok(counter.peakRetainedBytes <= 4096, `retained up to ${counter.peakRetainedBytes} bytes`);
  });

  test('rowCounterFor("postgresql") wraps the same counter', async () => {
    const rc = rowCounterFor('postgresql');
    await runThrough(fixedChunks(pgArchiveBuffer({ version: [1, 14, 0], tables: TWO_TABLES(true) }), 100), rc.stream);
    assert.deepEqual(rc.counts(), { 'public.a': 3, 's p a c e.empty': 0, 'public.split': 3 });
    assert.equal(rc.reason(), null);
  });
});
