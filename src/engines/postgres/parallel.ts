/**
 * Parallel dumps and restores of PostgreSQL (`jobs: N`, issue 14).
 *
 * Dump: one connection exports a snapshot (`pg_export_snapshot()` in a REPEATABLE READ
 * transaction that stays open, holding ACCESS SHARE locks on every table so none can be
 * dropped or altered under the dumps, as pg_dump -j's leader does) and lists the tables
 * with their sizes in that same snapshot. Every pg_dump then reads that one snapshot
 * (`--snapshot`): one for the pre-data section, one for post-data, and N for the data
 * section over disjoint sets of tables, largest first, each to the emptiest set. One of
 * the N is dumped as "everything but the others' tables" (`--exclude-table`), so whatever
 * is not a plain table of ours (sequence values, large objects, extension configuration
 * tables) lands in exactly one part and nothing can fall between the sets.
 *
 * Restore: pre-data (one transaction), then the data parts side by side (each its own
 * pg_restore, one transaction each), then post-data with `pg_restore -j N` so that
 * indexes and constraints are built in parallel; that needs a seekable file, and
 * post-data holds no rows, so it is a small temporary file.
 */
import type pg from 'pg';
import type { Readable, Writable } from 'node:stream';
import { EngineError, type ConnectionInfo, type DumpProcess, type RestoreOptions } from '../engine.js';
import { connectFailure, queryFailure, requireSafeDatabaseName } from '../errors.js';
import { restoreInput, startTool, toolStdout } from '../process.js';
import { pickPgClient, serverMajorFromVersionNum } from './clients.js';
import { connectionArgs, openClient, toolEnv } from './index.js';

/** The sections of a pg_dump archive, in restore order. */
export type PgSection = 'pre-data' | 'data' | 'post-data';

/** One plain table whose rows a data part holds. */
export interface PgDataTable {
  schema: string;
  table: string;
  /** pg_table_size (heap + TOAST) when planned: what the dump has to read. */
  bytes: number;
}

/** What one data part dumps. */
export interface PgDataPart {
  /** The tables it holds (for the manifest; and its `--table` list unless `rest`). */
  tables: PgDataTable[];
  /**
   * Dumped as everything except the other parts' tables: it also holds sequence values,
   * large objects and whatever else the data section has that is not a table of ours.
   */
  rest: boolean;
  /** Sequences owned by this part's tables: excluded from the rest part, which would repeat them. */
  ownedSequences: Array<{ schema: string; name: string }>;
  /** Planned bytes (tables, plus large objects for the rest part). */
  bytes: number;
}

/** The most parts (and processes) a request may ask for. */
export const MAX_JOBS = 16;

/** A held snapshot: pg_dumps started with `--snapshot=id` see exactly the data it sees. */
export interface HeldSnapshot {
  id: string;
  /** Plain tables of the database in that snapshot, largest first. */
  tables: PgDataTable[];
  /** Sequences owned by a table column (serial/identity), by the owning table. */
  ownedSequences: Map<string, Array<{ schema: string; name: string }>>;
  /** Bytes of large objects (pg_largeobject), which only the rest part dumps. */
  largeObjectBytes: number;
  /** End the exporting transaction. Safe to call twice; never throws. */
  release(): Promise<void>;
}

const tableKey = (schema: string, table: string): string => JSON.stringify([schema, table]);

/** Quote an identifier for PostgreSQL. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A pg_dump `--table`/`--exclude-table` pattern that matches exactly this one relation:
 * inside double quotes every pattern character (`*`, `?`, `.`, regex syntax) is literal
 * and case is kept; a double quote is written twice.
 */
export function exactPattern(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * Export a snapshot of `conn.database` and keep it: the connection stays in its
 * transaction until `release()`. Lists the tables and locks them (ACCESS SHARE: reads and
 * writes go on, DROP and ALTER wait) in the same transaction.
 */
export async function holdSnapshot(conn: ConnectionInfo, options: { lockTimeoutMs?: number } = {}): Promise<HeldSnapshot> {
  requireSafeDatabaseName(conn.database);
  let client: pg.Client;
  try {
    client = await openClient(conn, conn.database);
  } catch (err) {
    throw connectFailure('postgresql', conn, err);
  }
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
  };
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const id = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;
    // Plain tables (partitions included: each holds its own rows), not those of
    // extensions (their configuration tables are dumped only when pg_dump decides).
    const tables = await client.query<{ schema: string; table: string; bytes: string }>(
      `SELECT n.nspname AS schema, c.relname AS table, pg_table_size(c.oid)::text AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname`,
    );
    // pg_dump dumps a sequence owned by a table together with that table (getOwnedSeqs).
    const owned = await client.query<{ schema: string; name: string; table_schema: string; table: string }>(
      `SELECT sn.nspname AS schema, s.relname AS name, tn.nspname AS table_schema, t.relname AS table
         FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
        WHERE s.relkind = 'S'`,
    );
    const lo = await client.query<{ bytes: string }>(`SELECT pg_table_size('pg_largeobject')::text AS bytes`);
    const list: PgDataTable[] = tables.rows.map((r) => ({ schema: r.schema, table: r.table, bytes: Number(r.bytes) }));
    // A table held by an ALTER or DROP that never ends must not hold the backup for ever.
    if (options.lockTimeoutMs) await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`);
    // In batches: one statement naming thousands of tables is still one round trip each.
    for (let i = 0; i < list.length; i += 500) {
      const names = list.slice(i, i + 500).map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`);
      await client.query(`LOCK TABLE ${names.join(', ')} IN ACCESS SHARE MODE`);
    }
    const ownedSequences = new Map<string, Array<{ schema: string; name: string }>>();
    for (const r of owned.rows) {
      const key = tableKey(r.table_schema, r.table);
      const list = ownedSequences.get(key) ?? [];
      list.push({ schema: r.schema, name: r.name });
      ownedSequences.set(key, list);
    }
    return { id, tables: list, ownedSequences, largeObjectBytes: Number(lo.rows[0].bytes), release };
  } catch (err) {
    await release();
    if (err instanceof EngineError) throw err;
    throw queryFailure('postgresql', conn, 'exporting a snapshot for a parallel dump', err);
  }
}

/**
 * Spread the snapshot's tables over at most `jobs` data parts: largest first, each to the
 * part with the fewest bytes so far. The rest part (index 0) starts with the large
 * objects. Parts that got nothing are dropped, except the rest part, which always exists.
 */
export function planDataParts(snapshot: Pick<HeldSnapshot, 'tables' | 'ownedSequences' | 'largeObjectBytes'>, jobs: number): PgDataPart[] {
  const n = Math.max(1, Math.min(MAX_JOBS, Math.floor(jobs)));
  const parts: PgDataPart[] = Array.from({ length: n }, (_, i) => ({ tables: [], rest: i === 0, ownedSequences: [], bytes: i === 0 ? snapshot.largeObjectBytes : 0 }));
  const sorted = [...snapshot.tables].sort((a, b) => b.bytes - a.bytes || a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table));
  for (const t of sorted) {
    let best = parts[0];
    for (const p of parts) if (p.bytes < best.bytes) best = p;
    best.tables.push(t);
    best.bytes += t.bytes;
    best.ownedSequences.push(...(snapshot.ownedSequences.get(tableKey(t.schema, t.table)) ?? []));
  }
  return parts.filter((p) => p.rest || p.tables.length > 0);
}

/** pg_dump's selection arguments for a data part of `parts`. */
export function dataPartArgs(parts: PgDataPart[], index: number): string[] {
  const part = parts[index];
  if (!part.rest) return part.tables.map((t) => `--table=${exactPattern(t.schema, t.table)}`);
  const args: string[] = [];
  for (const other of parts) {
    if (other === part) continue;
    for (const t of other.tables) args.push(`--exclude-table=${exactPattern(t.schema, t.table)}`);
    // The other part dumps these with their table; here they would come a second time.
    for (const s of other.ownedSequences) args.push(`--exclude-table=${exactPattern(s.schema, s.name)}`);
  }
  return args;
}

export interface SectionDumpOptions {
  snapshot: string;
  section: PgSection;
  /** Extra selection arguments (dataPartArgs). */
  selection?: string[];
  serverMajor: number;
  signal?: AbortSignal;
  /** Write the dump straight into this stream's pipe (another process's stdin) or descriptor: see DumpOptions.output. */
  output?: Writable | number;
}

/** Start pg_dump of one section (and selection) of `conn.database` in the held snapshot. */
export async function dumpSection(conn: ConnectionInfo, options: SectionDumpOptions): Promise<DumpProcess> {
  requireSafeDatabaseName(conn.database);
  if (options.signal?.aborted) throw new EngineError('pg_dump was canceled before it started');
  const client = await pickPgClient(options.serverMajor);
  const run = await startTool({
    name: `pg_dump (${options.section})`,
    path: client.pgDump,
    // As the single-stream dump: custom format, no compression of its own.
    args: ['--format=custom', '--compress=0', `--snapshot=${options.snapshot}`, `--section=${options.section}`, ...(options.selection ?? []), ...connectionArgs(conn)],
    env: toolEnv(conn),
    secrets: [conn.password],
    stdin: 'ignore',
    stdout: options.output,
    signal: options.signal,
  });
  return { stdout: toolStdout(run), done: run.done, kill: run.kill, clientVersion: client.versionLine };
}

export interface SectionRestoreOptions {
  signal?: AbortSignal;
  /** Keep owners and privileges (see RestoreOptions.preserveOwnership). */
  preserveOwnership?: boolean;
  /** Where the part comes from when that is a chain of processes: see RestoreOptions.pipeTo. */
  pipeTo?: RestoreOptions['pipeTo'];
}

/**
 * Restore a pre-data or data part streaming into `conn.database`, in one transaction: a
 * part that fails leaves nothing of itself behind.
 */
export async function restoreSectionStream(conn: ConnectionInfo, section: 'pre-data' | 'data', input: Readable, options: SectionRestoreOptions = {}): Promise<void> {
  try {
    requireSafeDatabaseName(conn.database);
    if (options.signal?.aborted) throw new EngineError('pg_restore was canceled before it started');
    const client = await pickPgClient(await serverMajor(conn));
    const run = await startTool({
      name: `pg_restore (${section})`,
      path: client.pgRestore,
      args: [
        ...(section === 'data' ? ['--data-only'] : []),
        ...(options.preserveOwnership ? [] : ['--no-owner', '--no-acl']),
        '--exit-on-error',
        '--single-transaction',
        ...connectionArgs(conn),
      ],
      env: toolEnv(conn),
      secrets: [conn.password],
      stdin: options.pipeTo ? 'fifo' : 'pipe',
      signal: options.signal,
    });
    await restoreInput(run, input, options.pipeTo, `pg_restore (${section})`, [conn.password]);
  } catch (err) {
    input.destroy();
    throw err;
  }
}

/**
 * Restore the post-data part from `file` (a seekable copy) with `jobs` parallel workers:
 * indexes, constraints and triggers are built side by side. Not one transaction (pg_restore
 * cannot combine the two); a failure here fails the restore, whose database is then dropped.
 */
export async function restorePostDataFile(conn: ConnectionInfo, file: string, jobs: number, options: SectionRestoreOptions = {}): Promise<void> {
  requireSafeDatabaseName(conn.database);
  if (options.signal?.aborted) throw new EngineError('pg_restore was canceled before it started');
  const client = await pickPgClient(await serverMajor(conn));
  const run = await startTool({
    name: 'pg_restore (post-data)',
    path: client.pgRestore,
    args: [
      ...(options.preserveOwnership ? [] : ['--no-owner', '--no-acl']),
      '--exit-on-error',
      // A no-op for a post-data part; for a whole archive's table of contents (jobs/restore-toc.ts) it keeps to post-data.
      '--section=post-data',
      `--jobs=${Math.max(1, Math.min(MAX_JOBS, Math.floor(jobs)))}`,
      ...connectionArgs(conn),
      // After `--`: a file name can never be read as an option.
      '--',
      file,
    ],
    env: toolEnv(conn),
    secrets: [conn.password],
    stdin: 'ignore',
    signal: options.signal,
    // It reads a file, not a pipe from us: killed with us, rather than building indexes in a
    // database that recovery is about to drop.
    dieWithParent: true,
  });
  run.child.stdout!.resume();
  await run.done;
}

/** The server's major version (for picking pg_restore); null lets the picker choose the newest. */
async function serverMajor(conn: ConnectionInfo): Promise<number | null> {
  try {
    const client = await openClient(conn, conn.database);
    try {
      const res = await client.query<{ num: string }>(`SELECT current_setting('server_version_num') AS num`);
      return serverMajorFromVersionNum(Number(res.rows[0].num));
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    return null;
  }
}
