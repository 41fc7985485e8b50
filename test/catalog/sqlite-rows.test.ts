/**
 * Kysely's rows on the SQLite catalog are read as arrays and made into objects by a compiled
 * constructor (src/catalog/sqlite-statements.ts): they must be exactly better-sqlite3's own
 * objects, after schema changes too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { kyselySqliteDatabase, reusePreparedStatements } from '../../src/catalog/sqlite-statements.js';

function open() {
  const sqlite = reusePreparedStatements(new SQLite(':memory:'));
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: kyselySqliteDatabase(sqlite) as unknown as SQLite.Database }) });
  return { sqlite, db };
}

test('rows equal better-sqlite3 objects: types, nulls, blobs, odd and repeated names', async () => {
  const { sqlite, db } = open();
  sqlite.exec(`create table t (id integer primary key, "odd ""name""" text, n real, b blob, z text)`);
  sqlite.prepare(`insert into t values (?, ?, ?, ?, ?)`).run(1, 'é\u0000x', 1.5, Buffer.from([0, 255]), null);
  sqlite.prepare(`insert into t values (?, ?, ?, ?, ?)`).run(2, '', -0, null, 'z');
  const text = `select *, id as n, 'lit' as "__proto__" from t order by id`;
  const ours = (await sql.raw(text).execute(db)).rows;
  const theirs = new SQLite(':memory:'); // an untouched statement of the same query, on a copy
  theirs.exec(`create table t (id integer primary key, "odd ""name""" text, n real, b blob, z text)`);
  theirs.prepare(`insert into t values (?, ?, ?, ?, ?)`).run(1, 'é\u0000x', 1.5, Buffer.from([0, 255]), null);
  theirs.prepare(`insert into t values (?, ?, ?, ?, ?)`).run(2, '', -0, null, 'z');
  const expected = theirs.prepare(text).all();
  assert.deepEqual(ours, expected);
  assert.deepEqual(Object.keys(ours[0] as object), Object.keys(expected[0] as object), 'the same keys in the same order');
  assert.equal((ours[0] as { n: number }).n, 1, 'a repeated name keeps its last value');
  assert.equal(Object.getPrototypeOf(ours[0]), Object.prototype);
  // Streamed rows too (Kysely's stream(): the backupman list).
  const streamed = [];
  for await (const r of db.selectFrom('t').selectAll().orderBy('id').stream()) streamed.push(r);
  assert.deepEqual(streamed, theirs.prepare('select * from t order by id').all());
  theirs.close();
  await db.destroy();
});

test('a cached select * sees columns added later, through Kysely or behind its back', async () => {
  const { sqlite, db } = open();
  await db.schema.createTable('t').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('a', 'text').execute();
  await db.insertInto('t').values({ id: 1, a: 'x' }).execute();
  const read = () => db.selectFrom('t').selectAll().execute();
  assert.deepEqual(await read(), [{ id: 1, a: 'x' }]);
  await db.schema.alterTable('t').addColumn('b', 'integer', (c) => c.defaultTo(7)).execute();
  assert.deepEqual(await read(), [{ id: 1, a: 'x', b: 7 }]);
  sqlite.exec(`alter table t add column c text default 'c'`);
  assert.deepEqual(await read(), [{ id: 1, a: 'x', b: 7, c: 'c' }]);
  // A rename keeps the width: only the DDL through Kysely (migrations) can say so.
  await db.schema.alterTable('t').renameColumn('a', 'renamed').execute();
  assert.deepEqual(await read(), [{ id: 1, renamed: 'x', b: 7, c: 'c' }]);
  await db.destroy();
});
