// Exact per-table row counts read from a dump as it streams past (no second scan of the database).
// A pass-through stage per engine: bytes unchanged; counts() is null (reason() says why) when the dump was not countable.
import type { Transform } from 'node:stream';
import { MysqlDumpRowCounter } from './mysqldump.js';
import { PgCustomRowCounter } from './pgcustom.js';

export { MysqlDumpRowCounter } from './mysqldump.js';
export { PgCustomRowCounter } from './pgcustom.js';

export type RowCountKind = 'postgresql' | 'mysql';

export interface RowCounter {
  /** Put this in the dump's pipeline; it passes every byte through unchanged. */
  stream: Transform;
  /**
   * Rows per table once the stream has ended: keys as `Engine.tableRowCounts` has them
   * ("schema.table" on PostgreSQL, "table" on MySQL), empty tables included. Null when
   * the dump could not be counted, or has not ended yet.
   */
  counts(): Record<string, number> | null;
  /** Why counts() is null; null when it is not. */
  reason(): string | null;
}

/** A row counter for the dumps of `kind`: pg_dump --format=custom --compress=0, or mysqldump/mariadb-dump SQL. */
export function rowCounterFor(kind: RowCountKind): RowCounter {
  let counter: PgCustomRowCounter | MysqlDumpRowCounter;
  if (kind === 'postgresql') counter = new PgCustomRowCounter();
  else if (kind === 'mysql') counter = new MysqlDumpRowCounter();
  else throw new Error(`no row counter for engine kind "${String(kind)}"`);
  return {
    stream: counter,
    counts: () => counter.counts(),
    reason: () => counter.reason(),
  };
}
