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

type Row = Record<string, unknown>;

/** A reading statement whose rows are read as arrays and made into objects by a constructor compiled for its columns. */
class ArrayRowReader {
  readonly reader = true;
  #make!: (values: unknown[]) => Row;
  #width = 0;
  #stale = false;

  constructor(
    readonly stmt: SQLite.Statement,
    public generation: number,
  ) {
    stmt.raw(true);
    this.#compile();
  }

  /**
   * The schema changed (DDL ran): read the columns again after the next run. Not now: SQLite
   * re-prepares the statement when it next runs it, and until then names the old columns.
   */
  stale(generation: number): void {
    this.generation = generation;
    this.#stale = true;
  }

  #compile(): void {
    const names = this.stmt.columns().map((c) => c.name);
    this.#width = names.length;
    this.#stale = false;
    // Keys in column order; a repeated name keeps its last value, as better-sqlite3's objects do.
    this.#make = new Function('v', `return {${names.map((n, i) => `${JSON.stringify(n)}: v[${i}]`).join(', ')}};`) as (values: unknown[]) => Row;
  }

  get busy(): boolean {
    return this.stmt.busy;
  }

  all(params: unknown[]): Row[] {
    const rows = this.stmt.all(params) as unknown[][];
    // SQLite re-prepares a statement after a schema change: `select *` may have grown columns
    // even without DDL of ours (another process migrated).
    if (this.#stale || (rows.length > 0 && rows[0].length !== this.#width)) this.#compile();
    const out = new Array<Row>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.#make(rows[i]);
    return out;
  }

  *iterate(params: unknown[]): IterableIterator<Row> {
    for (const values of this.stmt.iterate(params) as IterableIterator<unknown[]>) {
      if (this.#stale || values.length !== this.#width) this.#compile();
      yield this.#make(values);
    }
  }
}

/**
 * What Kysely's SQLite driver is given in place of the database: its statements come from the
 * cache above, and a reading one returns its rows through raw mode (arrays) and a row
 * constructor compiled for its columns. better-sqlite3 makes each row object by setting its
 * properties one by one by name, which cost more than reading the rows: a page of 25 backups
 * of 17 columns, 122 → 74 µs (bench/list-api.ts, issue 14). Any DDL statement (a migration)
 * makes every reader read its columns again. Other users of the database (the change-stamp
 * pragmas) keep better-sqlite3's own statements.
 */
export function kyselySqliteDatabase(db: SQLite.Database): { prepare(source: string): unknown; close(): void } {
  const readers = new WeakMap<SQLite.Statement, ArrayRowReader>();
  let generation = 0;
  return {
    prepare(source: string) {
      const stmt = db.prepare(source);
      if (!stmt.reader) {
        if (/^\s*(create|alter|drop)\s/i.test(source)) generation++;
        return stmt;
      }
      let r = readers.get(stmt);
      if (r === undefined) readers.set(stmt, (r = new ArrayRowReader(stmt, generation)));
      else if (r.generation !== generation) r.stale(generation);
      return r;
    },
    close: () => db.close(),
  };
}
