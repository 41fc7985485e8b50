/**
 * The contract every source engine (PostgreSQL, MySQL/MariaDB) implements.
 * An engine knows how to talk to one kind of server: probe it, dump a database as a
 * byte stream, count rows, and restore a dump into a new database.
 *
 * Secrets: the password in `ConnectionInfo` must only ever reach a child process
 * through its environment (PGPASSWORD / MYSQL_PWD), never its arguments, and must
 * never appear in an error message.
 */
import type { Readable, Writable } from 'node:stream';

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
  /**
   * MariaDB: dump system-versioned tables with their history (`--dump-history`), not just
   * their current rows. Ignored by PostgreSQL, which has no such tables.
   */
  dumpHistory?: boolean;
  /**
   * Write the dump straight into this stream's pipe (the stdin of another child process,
   * e.g. the compressor's) or this descriptor (a FIFO a reader thread reads), not through
   * this process: `DumpProcess.stdout` is then an empty stream and `done` still reports the
   * tool's exit. See pipeline/store.ts.
   */
  output?: Writable | number;
}

/**
 * Properties of a database itself (not of its objects) that a dump of its contents
 * does not carry, recorded at backup time so that a restore can create the new database
 * like the old one. Engine-specific fields are absent on the other engine.
 */
export interface DatabaseProperties {
  /** The dumped database's name (references to it in a dump are rewritten for the target). */
  name: string;
  /** PostgreSQL: server encoding name, e.g. "UTF8". */
  encoding?: string;
  /** PostgreSQL: 'libc', 'icu' or 'builtin' (17+). */
  locale_provider?: string;
  /** PostgreSQL: LC_COLLATE and LC_CTYPE. */
  lc_collate?: string;
  lc_ctype?: string;
  /** PostgreSQL: the ICU (or builtin) locale, and ICU tailoring rules (16+). */
  icu_locale?: string | null;
  icu_rules?: string | null;
  /** PostgreSQL: `ALTER DATABASE … SET` settings as the server stores them ("name=value"). */
  settings?: string[];
  /** PostgreSQL: CONNECTION LIMIT (-1: none). */
  connection_limit?: number;
  /** MySQL/MariaDB: default character set and collation. */
  character_set?: string;
  collation?: string;
  /**
   * MariaDB: how many times each cycling sequence has wrapped (only those that have).
   * mariadb-dump's `SETVAL(seq, value, 0)` leaves the round out, and a value below the
   * start is then ignored: the restored sequence would start over.
   */
  sequence_rounds?: Record<string, number>;
  /** COMMENT ON DATABASE (PostgreSQL) or the schema comment (MariaDB 10.5+); null when none. */
  comment?: string | null;
}

/** An account a restored object must belong to or be granted to, and grants to re-create. */
export interface Ownership {
  /**
   * Roles (PostgreSQL) or accounts (MySQL, as `'user'@'host'`, or a bare role) that own
   * objects, are granted privileges, or are the DEFINER of views, routines, triggers and
   * events of the database. Sorted, distinct.
   */
  roles: string[];
  /**
   * MySQL only: privileges granted on the database, its tables and columns (a dump of
   * one database does not carry them). PostgreSQL's GRANTs are inside the dump.
   */
  grants?: Array<{ grantee: string; privilege: string; table: string | null; column: string | null; grantable: boolean }>;
}

export interface RestoreOptions {
  signal?: AbortSignal;
  /**
   * Drop the objects the dump creates before creating them again, so a restore can land
   * in a database that already holds an older copy (PostgreSQL: `--clean --if-exists`;
   * MySQL dumps already carry `DROP TABLE IF EXISTS`). Objects not in the dump stay.
   */
  clean?: boolean;
  /**
   * Keep owners and privileges as the dump has them (PostgreSQL: no `--no-owner
   * --no-acl`; MySQL: keep DEFINER clauses and re-create `grants`). The roles must exist;
   * check with `missingRoles` first. Without it objects belong to the restoring user.
   */
  preserveOwnership?: boolean;
  /** MySQL: grants to re-create on the restored database when preserving ownership. */
  grants?: Ownership['grants'];
  /**
   * The name of the database the dump was taken from. MySQL dumps name it in a few places
   * (sequence references in column defaults and views, `ALTER DATABASE` around routines);
   * they are rewritten to the target so that nothing reaches back to the source.
   */
  sourceDatabase?: string;
  /** MariaDB: DatabaseProperties.sequence_rounds of the dumped database. */
  sequenceRounds?: Record<string, number>;
  /**
   * Where `input` comes from when that is a chain of child processes (pipeline/unpack.ts):
   * a tool that reads the dump unchanged calls this once with its own stdin right after it
   * started: the writing end of its stdin FIFO (`ToolRun.stdinFd`, then no longer the tool's
   * to close), which the last process writes into directly, without passing through this
   * process; `input` is then not read. `stopTool` is called when the stream turns out bad,
   * before the tool could read an end of file that is not the end. A tool that rewrites the
   * dump on its way reads `input` as usual.
   */
  pipeTo?: (stdin: Writable | number, stopTool: () => void) => void;
  /**
   * PostgreSQL: restore only these sections of the archive (`--section`), e.g. pre-data and
   * data, with post-data (indexes, constraints, triggers) built afterwards in parallel from
   * the archive's table of contents (jobs/restore.ts). All of them when left out.
   */
  sections?: Array<'pre-data' | 'data' | 'post-data'>;
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
  /**
   * Exact row count of every base table, keyed "schema.table" (PostgreSQL) or "table"
   * (MySQL): the rows a dump of that table holds (PostgreSQL: without inheriting
   * children; MariaDB system-versioned tables: every row version, since a dump made
   * with history restores them all and one without restores only current rows).
   */
  tableRowCounts(conn: ConnectionInfo): Promise<Record<string, number>>;
  /** Start a consistent dump of `conn.database`, picking a client that matches the server. */
  dump(conn: ConnectionInfo, options?: DumpOptions): Promise<DumpProcess>;
  /**
   * Restore a raw (decompressed, decrypted) dump stream into `conn.database`, which must
   * exist. Resolves when the restore tool exited 0; rejects with EngineError otherwise.
   */
  restore(conn: ConnectionInfo, input: Readable, options?: RestoreOptions): Promise<void>;
  /**
   * CREATE DATABASE `name` on the server of `conn` (name validated, quoted as an
   * identifier), with the encoding, locale, collation, settings and comment of
   * `properties` when given (else the server's defaults). Throws EngineError when the
   * server cannot create it so (a locale or collation it lacks); resolves with notes on
   * properties it could not keep that do not change the data (a setting this server
   * refuses), empty when everything was kept.
   */
  createDatabase(conn: ConnectionInfo, name: string, properties?: DatabaseProperties | null): Promise<string[]>;
  /** The properties of the database of `conn` that CREATE DATABASE would need to make it again. */
  databaseProperties(conn: ConnectionInfo): Promise<DatabaseProperties>;
  /** The roles and grants the objects of the database of `conn` need (see Ownership). */
  ownership(conn: ConnectionInfo): Promise<Ownership>;
  /**
   * Which of `roles` (as `ownership` names them) do not exist on the server of `conn`.
   * Throws EngineError when this account cannot tell.
   */
  missingRoles(conn: ConnectionInfo, roles: string[]): Promise<string[]>;
  /**
   * The largest statement the server of `conn` accepts (MySQL's max_allowed_packet), or
   * null when statements have no such limit that a dump could hit (PostgreSQL).
   */
  maxStatementBytes(conn: ConnectionInfo): Promise<number | null>;
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
