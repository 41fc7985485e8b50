/**
 * The contract every source engine (PostgreSQL, MySQL/MariaDB) implements.
 * An engine knows how to talk to one kind of server: probe it, dump a database as a
 * byte stream, count rows, and restore a dump into a new database.
 *
 * Secrets: the password in `ConnectionInfo` must only ever reach a child process
 * through its environment (PGPASSWORD / MYSQL_PWD), never its arguments, and must
 * never appear in an error message.
 */
import type { Readable } from 'node:stream';

export type EngineKind = 'postgresql' | 'mysql';

/** A parsed connection URL. `password` is a secret. */
export interface ConnectionInfo {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export interface ServerInfo {
  /** Human-readable server version, e.g. "15.20" or "10.11.19-MariaDB". */
  version: string;
  /** Major version used to pick a matching client (15 for PostgreSQL 15.x; 10 for MariaDB 10.11). */
  major: number;
  /** Size of the database on the server, in bytes, as the server reports it. */
  sizeBytes: number;
}

/** A running dump. */
export interface DumpProcess {
  /** The raw dump bytes (pg_dump custom format, or SQL text for MySQL). */
  stdout: Readable;
  /**
   * Settles when the child process has exited: resolves on exit code 0, rejects with an
   * EngineError (whose message holds the tail of stderr, secrets scrubbed) otherwise,
   * or when it was killed.
   */
  done: Promise<void>;
  /** Stop the dump: SIGTERM, then SIGKILL after a grace period. Safe to call twice. */
  kill(): void;
  /** The client tool and its version, e.g. "pg_dump (PostgreSQL) 15.19". */
  clientVersion: string;
}

export interface DumpOptions {
  /** Aborting kills the child process; `done` then rejects. */
  signal?: AbortSignal;
  /** The server's major version when the caller already probed it (saves a connection). */
  serverMajor?: number;
}

export interface RestoreOptions {
  signal?: AbortSignal;
  /**
   * Drop the objects the dump creates before creating them again, so a restore can land
   * in a database that already holds an older copy (PostgreSQL: `--clean --if-exists`;
   * MySQL dumps already carry `DROP TABLE IF EXISTS`). Objects not in the dump stay.
   */
  clean?: boolean;
}

export interface Engine {
  readonly kind: EngineKind;
  /** File name suffix of a raw dump, before compression: ".pgdump" or ".sql". */
  readonly dumpSuffix: string;
  /**
   * Connect, read the server version and the database's size. Throws EngineError with a
   * clear, password-free message when the server does not answer or refuses.
   */
  probe(conn: ConnectionInfo): Promise<ServerInfo>;
  /** Exact row count of every base table, keyed "schema.table" (PostgreSQL) or "table" (MySQL). */
  tableRowCounts(conn: ConnectionInfo): Promise<Record<string, number>>;
  /** Start a consistent dump of `conn.database`, picking a client that matches the server. */
  dump(conn: ConnectionInfo, options?: DumpOptions): Promise<DumpProcess>;
  /**
   * Restore a raw (decompressed, decrypted) dump stream into `conn.database`, which must
   * exist. Resolves when the restore tool exited 0; rejects with EngineError otherwise.
   */
  restore(conn: ConnectionInfo, input: Readable, options?: RestoreOptions): Promise<void>;
  /** CREATE DATABASE `name` on the server of `conn` (name validated, quoted as an identifier). */
  createDatabase(conn: ConnectionInfo, name: string): Promise<void>;
  /** DROP DATABASE IF EXISTS `name` on the server of `conn`. */
  dropDatabase(conn: ConnectionInfo, name: string): Promise<void>;
  /** Whether `name` exists on the server of `conn`. */
  databaseExists(conn: ConnectionInfo, name: string): Promise<boolean>;
  /** Whether the database of `conn` has any user tables, views or routines. */
  databaseIsEmpty(conn: ConnectionInfo): Promise<boolean>;
  /**
   * The database's schema as DDL (no data), normalized so that two dumps of an unchanged
   * schema are byte-identical (no timestamps, versions, random tokens or counters).
   */
  schemaDump(conn: ConnectionInfo, options?: DumpOptions): Promise<string>;
}

/** An error from a source database or a dump/restore tool. Its message is safe to show users. */
export class EngineError extends Error {
  /**
   * @param permanent whether retrying cannot help (bad credentials, missing database);
   *   false for what may pass (network errors, a server restarting).
   * @param cause the underlying error, for logs; its message may hold details not meant for users.
   */
  constructor(message: string, readonly permanent = true, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'EngineError';
  }
}
