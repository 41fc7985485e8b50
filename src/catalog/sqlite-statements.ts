/**
 * Prepared statements reused on the SQLite catalog.
 *
 * Kysely's SQLite driver prepares every query it runs (`db.prepare(sql)`, then `all` or
 * `run`). Preparing means parsing and planning: for a list query over `backups` and its
 * indexes that took 85–95 µs, longer than running it (bench/list-api.ts, issue 14), and an
 * API request runs about ten queries, all on the one event loop (better-sqlite3 is
 * synchronous). Kysely compiles the same SQL text for the same query shape (values are bound
 * parameters), so a small cache keyed by that text turns nearly every prepare into a lookup.
 *
 * A statement is reused only when it is not `busy` (a streamed query still iterating it);
 * SQLite re-prepares a cached statement by itself after a schema change.
 */
import type SQLite from 'better-sqlite3';

/** Make `db.prepare` answer from a cache of up to `max` statements (least recently used dropped). */
export function reusePreparedStatements(db: SQLite.Database, max = 500): SQLite.Database {
  const prepare = db.prepare.bind(db) as (source: string) => SQLite.Statement;
  const cache = new Map<string, SQLite.Statement>();
  const cached = (source: string): SQLite.Statement => {
    const hit = cache.get(source);
    if (hit !== undefined && !hit.busy) {
      // Most recently used last: Map keeps insertion order.
      cache.delete(source);
      cache.set(source, hit);
      return hit;
    }
    const stmt = prepare(source);
    if (hit === undefined) {
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(source, stmt);
    }
    return stmt;
  };
  db.prepare = cached as typeof db.prepare;
  return db;
}
