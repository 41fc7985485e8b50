/**
 * Opens the catalog. This file and nothing else knows which SQL dialect is in use:
 * SQLite (better-sqlite3, one file, the default) or PostgreSQL (several workers).
 * Everything else talks Kysely and stays dialect-agnostic.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider } from 'kysely';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { CatalogSchema } from './schema.js';
import { kyselySqliteDatabase, reusePreparedStatements } from './sqlite-statements.js';
import { enableMemo, requestScope, writesEndRequestMemo } from './memo.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_jobs_restore_verify.js';
import * as m0003 from './migrations/0003_backup_policies.js';
import * as m0004 from './migrations/0004_encryption_destinations.js';
import * as m0005 from './migrations/0005_schema_snapshots.js';
import * as m0006 from './migrations/0006_audit_log.js';
import * as m0007 from './migrations/0007_catalog_settings.js';
import * as m0008 from './migrations/0008_restore_fidelity.js';
import * as m0009 from './migrations/0009_contents_drills.js';
import * as m0010 from './migrations/0010_policy_names_unique.js';
import * as m0011 from './migrations/0011_notifications.js';
import * as m0012 from './migrations/0012_ui_sessions.js';
import * as m0013 from './migrations/0013_overview_index.js';
import * as m0014 from './migrations/0014_archiving.js';
import * as m0018 from './migrations/0018_backup_list_indexes.js';
import * as m0019 from './migrations/0019_parallel_parts.js';
import * as m0020 from './migrations/0020_pending_artifacts.js';

export type CatalogDb = Kysely<CatalogSchema>;

export interface Catalog {
  db: CatalogDb;
  dialect: 'sqlite' | 'postgres';
  /**
   * A value that changes whenever anything in the catalog may have changed since the last
   * call, from this process or any other: two equal stamps mean no write committed between
   * them. Reads made after a stamp was taken see at least everything committed before it, so
   * a response computed after taking stamp S stays right for as long as the stamp is S
   * (api/response-cache.ts). It may change without a write (never the other way round).
   * - SQLite: `PRAGMA data_version` (commits by other connections, other processes) and
   *   `total_changes()` (rows this connection changed, triggers included).
   * - PostgreSQL: the current transaction snapshot (`txid_current_snapshot()`): any commit,
   *   in any database of the cluster, assigns a transaction id or ends one in progress. Inside
   *   an API request (memo.ts requestScope) it is read once, at the first call, and the same
   *   value is returned for the rest of the request.
   */
  changeStamp(): Promise<string>;
  /** Close the catalog and release the process lock taken with it, if any. */
  close(): Promise<void>;
}

/**
 * A lock that says which processes work on a catalog, held for the process's life and
 * released by the kernel or the database server when the process dies (even by kill -9).
 *
 * - SQLite: one process at a time, whatever the mode: a second `serve` or `worker` would
 *   take the first one's running backups for abandoned work and fail them.
 * - PostgreSQL: `serve` and `worker` share it (that is the scale-out setup); a tool that
 *   needs every other process stopped (key rotation) takes it alone.
 */
export interface CatalogLock {
  mode: 'shared' | 'exclusive';
  /** What this process is (`serve`, `worker`, `token create`...), shown to a process that finds the catalog taken. */
  command: string;
  /** What to do instead, added to the refusal a process gets when this lock cannot be had. */
  advice?: string;
}

/** The catalog is in use by a process that excludes this one: the message says by whom and what to do. */
export class CatalogInUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogInUseError';
  }
}

interface Holder {
  pid: number;
  command: string;
  host: string;
  since: string;
}

function describeHolder(h: Holder | null): string {
  return h ? `\`${h.command}\`, pid ${h.pid} on ${h.host}, since ${h.since}` : 'it did not say which';
}

/**
 * SQLite: an EXCLUSIVE transaction held open on `<catalog>.lock`, a database of its own so
 * that the catalog's readers are never blocked. SQLite's locks are POSIX record locks, so
 * the kernel drops them when the process dies, however it dies; no stale lock is left.
 * Who holds it is written beside it (`<catalog>.lock.json`), for the refusal message only.
 */
function lockSqlite(file: string, lock: CatalogLock): () => void {
  const lockFile = `${file}.lock`;
  const holderFile = `${lockFile}.json`;
  const holderNow = (): Holder | null => {
    try {
      return JSON.parse(fs.readFileSync(holderFile, 'utf8')) as Holder;
    } catch {
      return null;
    }
  };
  // timeout 0: fail at once instead of waiting for a lock that is held for days.
  const db = new SQLite(lockFile, { timeout: 0 });
  try {
    // No journal file: nothing is ever written, the transaction only holds the lock.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
    throw new CatalogInUseError(
      `the SQLite catalog ${file} is in use by another Strongbox process (${describeHolder(holderNow())}). A SQLite catalog serves one process at a time` +
        (lock.advice ? `: ${lock.advice}` : ': stop that process first; to run several workers, put the catalog on PostgreSQL (STRONGBOX_CATALOG_URL=postgres://...)'),
    );
  }
  const me: Holder = { pid: process.pid, command: lock.command, host: os.hostname(), since: new Date().toISOString() };
  fs.writeFileSync(holderFile, JSON.stringify(me) + '\n', { mode: 0o600 });
  return () => {
    try {
      if (holderNow()?.pid === process.pid) fs.rmSync(holderFile, { force: true });
    } finally {
      db.close();
    }
  };
}

/** The advisory lock's key on PostgreSQL ("Sbx" + 1): advisory locks are per database, so per catalog. */
const PG_LOCK = [0x536278, 1] as const;

/**
 * PostgreSQL: a session advisory lock on a connection of its own, kept for the process's
 * life; the server drops it when that connection ends, so a killed process never leaves
 * it behind. The connection's application_name says who holds it.
 */
async function lockPostgres(url: string, lock: CatalogLock): Promise<() => Promise<void>> {
  const name = `strongbox ${lock.command} pid ${process.pid} on ${os.hostname()}`.slice(0, 63);
  const client = new pg.Client({ connectionString: url, application_name: name });
  // A lost connection loses the lock; the catalog's own pool reports the outage. Without a
  // listener the 'error' event would kill the process.
  client.on('error', () => {});
  await client.connect();
  const fn = lock.mode === 'shared' ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const { rows } = await client.query(`select ${fn}($1::int, $2::int) as ok`, [...PG_LOCK]);
  if (rows[0].ok) return async () => void (await client.end().catch(() => {}));
  const holders = await client.query(
    `select a.application_name as name, l.mode from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.classid = $1 and l.objid = $2 and l.granted and l.database = (select oid from pg_database where datname = current_database())`,
    [...PG_LOCK],
  );
  await client.end().catch(() => {});
  const who = holders.rows.map((r) => r.name || 'a process').join('; ') || 'another process';
  if (lock.mode === 'exclusive') {
    throw new CatalogInUseError(`Strongbox processes are running on this catalog (${who}): stop every \`serve\` and \`worker\` first${lock.advice ? `; ${lock.advice}` : ''}`);
  }
  throw new CatalogInUseError(`a tool that needs the catalog to itself is running on it (${who}): start again when it has finished`);
}

export interface OpenCatalogOptions {
  /** Take the process lock (see CatalogLock) before touching the catalog; none by default. */
  lock?: CatalogLock;
}

/**
 * int8 columns (sizes) come back as strings by default; the catalog's sizes fit in a
 * double. Only the catalog's pool parses them as numbers: a process-wide parser would also
 * round the int8 values the engines read from the databases being backed up (sequence
 * positions, system identifiers).
 */
const catalogTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/** Numbered migrations, in order. Add new files here; never edit a landed one. */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_jobs_restore_verify': m0002,
  '0003_backup_policies': m0003,
  '0004_encryption_destinations': m0004,
  '0005_schema_snapshots': m0005,
  '0006_audit_log': m0006,
  '0007_catalog_settings': m0007,
  '0008_restore_fidelity': m0008,
  '0009_contents_drills': m0009,
  '0010_policy_names_unique': m0010,
  '0011_notifications': m0011,
  '0012_ui_sessions': m0012,
  '0013_overview_index': m0013,
  '0014_archiving': m0014,
  '0018_backup_list_indexes': m0018,
  '0019_parallel_parts': m0019,
  '0020_pending_artifacts': m0020,
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

/**
 * Open the catalog at `url` ("sqlite:<file>" or "postgres://...") and bring its schema up
 * to date. With `lock`, the process lock is taken first (CatalogInUseError when it cannot
 * be had) and released by close().
 */
export async function openCatalog(url: string, opts: OpenCatalogOptions = {}): Promise<Catalog> {
  let catalog: Catalog;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Before the catalog is even opened: nothing of a running process's work may be touched.
    const unlock = opts.lock && file !== ':memory:' ? lockSqlite(path.resolve(file), opts.lock) : () => {};
    // Statements are prepared once per SQL text, not per query (sqlite-statements.ts).
    const sqlite = reusePreparedStatements(new SQLite(file));
    // WAL lets API reads go on while a job writes; busy_timeout waits out short write locks
    // instead of failing with SQLITE_BUSY.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('synchronous = NORMAL');
    if (file !== ':memory:') {
      try {
        fs.chmodSync(file, 0o600);
      } catch {
        /* best effort: the file may be on a filesystem without modes */
      }
    }
    const db = new Kysely<CatalogSchema>({ dialect: new SqliteDialect({ database: kyselySqliteDatabase(sqlite) as unknown as SQLite.Database }) });
    // Read outside Kysely's connection mutex on purpose (synchronously): a transaction in
    // progress holds the mutex, and the reads of a response wait for it to end anyway.
    const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
    const totalChanges = sqlite.prepare('SELECT total_changes()').pluck();
    const stamp = () => `${dataVersion.get() as number}:${totalChanges.get() as number}`;
    // Small lookups (names, counts, policies) are reused under the stamp (memo.ts).
    enableMemo(db, stamp);
    catalog = {
      db,
      dialect: 'sqlite',
      changeStamp: async () => stamp(),
      close: async () => {
        try {
          await db.destroy();
        } finally {
          unlock();
        }
      },
    };
  } else {
    const unlock = opts.lock ? await lockPostgres(url, opts.lock) : async () => {};
    const pool = new pg.Pool({ connectionString: url, max: 10, types: catalogTypes });
    // An idle connection the server ends (a restart, idle_session_timeout, pg_terminate_backend,
    // DROP DATABASE ... FORCE) is an 'error' event on the pool: unheard, it crashed the whole
    // process. The pool has already dropped that client and the next query opens a new one;
    // a catalog that is really gone fails that query, where the caller reports it.
    pool.on('error', () => {});
    const db = new Kysely<CatalogSchema>({ dialect: new PostgresDialect({ pool }), plugins: [writesEndRequestMemo] });
    const readStamp = async () => (await pool.query<{ s: string }>('select txid_current_snapshot()::text as s')).rows[0].s;
    // One round trip per API request, shared by its lookups (memo.ts) and the response cache.
    const requestStamp = () => {
      const scope = requestScope.getStore();
      if (scope === undefined || scope.wrote) return null;
      scope.stamp ??= readStamp();
      return scope.stamp;
    };
    enableMemo(db, requestStamp);
    catalog = {
      db,
      dialect: 'postgres',
      changeStamp: () => requestStamp() ?? readStamp(),
      close: async () => {
        try {
          await db.destroy();
        } finally {
          await unlock();
        }
      },
    };
  }
  try {
    await migrate(catalog.db);
  } catch (e) {
    await catalog.close().catch(() => {});
    throw e;
  }
  return catalog;
}

/** Run pending migrations. Kysely's Migrator takes a lock so that concurrent starts are safe. */
export async function migrate(db: CatalogDb): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`catalog migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? error}`);
  }
}
