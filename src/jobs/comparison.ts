/**
 * The heart of a full verification: compare a restored copy with what its backup recorded.
 *
 * A backup that recorded its contents (tables by schema and table with data digests, the
 * inventory of the other objects) is compared by dumping the restored copy again through
 * the same reader and comparing table by table, object by object: every difference is
 * named. An older backup, which recorded only row counts keyed "schema.table", falls back
 * to counting the copy's rows.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Backup } from '../catalog/schema.js';
import { loadContents } from '../catalog/contents.js';
import type { ConnectionInfo, Engine } from '../engines/index.js';
import { compareContents, describeDifference, rowCounterFor, type ContentDifference, type DumpContents } from '../pipeline/rowcount/index.js';

/** At most this many differences are kept in a verification's result (the count says how many there were). */
export const MAX_DIFFERENCES = 1000;

export interface Comparison {
  /** `contents`: digests and inventory compared; `row counts`: an older backup, counts only. */
  method: 'contents' | 'row counts';
  tables: number;
  /** Every difference found (up to MAX_DIFFERENCES), tables first. */
  differences: ContentDifference[];
  differences_total: number;
  /** Row counts that differ, keyed as the backup recorded them (kept for older readers of results). */
  mismatches: Array<{ table: string; expected: number | null; actual: number | null }>;
  /** Something worth knowing that is not a failure. */
  note: string | null;
  /** Why the copy is not the backed-up database; null when it is. */
  error: string | null;
}

/** "schema.table" (PostgreSQL) or "table" (MySQL): how older results and messages name a table. */
function legacyKey(schema: string | null, table: string): string {
  return schema === null ? table : `${schema}.${table}`;
}

/** Dump `conn` through the row counter of `engine` and return what it holds (or why it could not be read). */
export async function dumpContents(
  engine: Engine,
  conn: ConnectionInfo,
  opts: { signal: AbortSignal; dumpHistory?: boolean },
): Promise<{ contents: DumpContents | null; reason: string | null; clientVersion: string }> {
  const counter = rowCounterFor(engine.kind);
  const dump = await engine.dump(conn, { signal: opts.signal, ...(opts.dumpHistory ? { dumpHistory: true } : {}) });
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const flow = pipeline(dump.stdout, counter.stream, sink, { signal: opts.signal });
  flow.catch(() => dump.kill());
  const [flowR, doneR] = await Promise.allSettled([flow, dump.done]);
  if (doneR.status === 'rejected') throw doneR.reason;
  if (flowR.status === 'rejected') throw flowR.reason;
  return { contents: counter.contents(), reason: counter.reason(), clientVersion: dump.clientVersion };
}

/**
 * Compare the restored copy at `copy` with what `backup` recorded. Never throws for a
 * difference (that is `error`); throws when the copy cannot be read at all.
 */
export async function compareRestored(ctx: AppContext, engine: Engine, backup: Backup, copy: ConnectionInfo, signal: AbortSignal): Promise<Comparison> {
  const result: Comparison = { method: 'contents', tables: 0, differences: [], differences_total: 0, mismatches: [], note: null, error: null };
  const expected = await loadContents(ctx.db, backup.id);
  if (expected === null) return compareCounts(engine, backup, copy, result);

  const dumped = await dumpContents(engine, copy, { signal, dumpHistory: expected.dump_options?.dump_history === true });
  if (dumped.contents === null) {
    result.error = `the restored copy could not be read back to compare: ${dumped.reason}`;
    return result;
  }
  const actual = dumped.contents;
  result.tables = actual.tables.length;
  let differences = compareContents(expected, actual);
  // Another dump tool writes definitions in another form; data and the set of objects
  // still compare, a definition's wording does not.
  if (backup.client_version && dumped.clientVersion !== backup.client_version) {
    const worded = differences.filter((d) => d.problem === 'definition');
    if (worded.length) {
      differences = differences.filter((d) => d.problem !== 'definition');
      result.note = `${worded.length} definition(s) read differently, not counted as failures: the backup was dumped by ${backup.client_version}, the copy by ${dumped.clientVersion}`;
    }
  }
  result.differences_total = differences.length;
  result.differences = differences.slice(0, MAX_DIFFERENCES);
  for (const d of differences) {
    if (d.kind !== 'table data' || (d.problem !== 'rows' && d.problem !== 'missing' && d.problem !== 'unexpected')) continue;
    result.mismatches.push({ table: legacyKey(d.schema, d.name), expected: typeof d.expected === 'number' ? d.expected : null, actual: typeof d.actual === 'number' ? d.actual : null });
  }
  if (differences.length) {
    const shown = differences.slice(0, 5).map(describeDifference).join('; ');
    result.error = `the restored copy differs from the backup in ${differences.length} place(s): ${shown}${differences.length > 5 ? '; …' : ''}`;
  }
  return result;
}

/** An older backup: only row counts, keyed "schema.table" / "table", were recorded. */
async function compareCounts(engine: Engine, backup: Backup, copy: ConnectionInfo, result: Comparison): Promise<Comparison> {
  result.method = 'row counts';
  const actual = await engine.tableRowCounts(copy);
  result.tables = Object.keys(actual).length;
  const expected = backup.table_row_counts === null ? null : (JSON.parse(backup.table_row_counts) as Record<string, number>);
  if (expected === null) {
    result.note = 'no row counts were recorded at backup time: every table was read, counts not compared';
    return result;
  }
  for (const table of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    const e = table in expected ? expected[table] : null;
    const a = table in actual ? actual[table] : null;
    if (e !== a) result.mismatches.push({ table, expected: e, actual: a });
  }
  result.note = 'this backup recorded row counts only (it predates content digests): counts compared, not contents';
  if (result.mismatches.length) {
    result.error = `row counts differ in ${result.mismatches.length} table(s): ${result.mismatches
      .slice(0, 5)
      .map((m) => `${m.table} (${m.expected} recorded, ${m.actual} restored)`)
      .join(', ')}`;
  }
  return result;
}
