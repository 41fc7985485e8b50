// Exact per-table row counts, data digests and an inventory of the other objects, read from a
// dump as it streams past (no second scan of the database, no second pass over the data).
// A pass-through stage per engine: bytes unchanged; counts() and contents() are null
// (reason() says why) when the dump could not be read.
import type { Transform } from 'node:stream';
import { MysqlDumpRowCounter } from './mysqldump.js';
import { PgCustomRowCounter } from './pgcustom.js';
import type { DumpContents, ReaderOptions } from './contents.js';

export { MysqlDumpRowCounter } from './mysqldump.js';
export { PgCustomRowCounter } from './pgcustom.js';
export * from './contents.js';

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
  /**
   * Tables keyed by (schema, table) with rows and data digests, and the inventory of the
   * other objects, once the stream has ended; null when counts() is.
   */
  contents(): DumpContents | null;
  /** Why counts() is null; null when it is not. */
  reason(): string | null;
}

/** A row counter for the dumps of `kind`: pg_dump --format=custom --compress=0, or mysqldump/mariadb-dump SQL. */
export function rowCounterFor(kind: RowCountKind, options: ReaderOptions = {}): RowCounter {
  let counter: PgCustomRowCounter | MysqlDumpRowCounter;
  if (kind === 'postgresql') counter = new PgCustomRowCounter(options);
  else if (kind === 'mysql') counter = new MysqlDumpRowCounter(options);
  else throw new Error(`no row counter for engine kind "${String(kind)}"`);
  return {
    stream: counter,
    counts: () => counter.counts(),
    contents: () => counter.contents(),
    reason: () => counter.reason(),
  };
}
