/**
 * The PostgreSQL engine: `pg` for probes and catalog queries, pg_dump (custom format) and
 * pg_restore for the data, with the client matched to the server's major version.
 */
import pg from 'pg';
import type { Readable } from 'node:stream';
import {
  EngineError,
  type ConnectionInfo,
  type DatabaseProperties,
  type DumpOptions,
  type DumpProcess,
  type Engine,
  type Ownership,
  type RestoreOptions,
  type ServerInfo,
} from '../engine.js';
import { connectFailure, queryFailure, requireSafeDatabaseName } from '../errors.js';
import { restoreInput, startTool, toolEnvironment, toolOutput, toolStdout } from '../process.js';
import { normalizeDdl, SCHEMA_LIMIT } from '../schema.js';
import { pickPgClient, serverMajorFromVersionNum } from './clients.js';
import { createDatabaseLike, readDatabaseProperties, readOwnershipRoles } from './properties.js';

const CONNECT_TIMEOUT_SECONDS = 5;

/** Databases to connect to for server-level work, in order of preference. */
const MAINTENANCE_DATABASES = ['postgres', 'template1'];

/** Schemas that belong to PostgreSQL itself, never to users. */
const SYSTEM_SCHEMA_FILTER = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** Quote an identifier for PostgreSQL: wrap in double quotes, double any inside. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Open a connection; driver errors are thrown as they are. */
export async function openClient(conn: ConnectionInfo, database: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database,
    // A function, because an empty string would make `pg` fall back to PGPASSWORD and
    // ~/.pgpass of this machine, and send those to whatever server the URL names.
    password: () => conn.password,
    connectionTimeoutMillis: CONNECT_TIMEOUT_SECONDS * 1000,
    application_name: 'strongbox',
  });
  // An idle client whose server goes away emits 'error'; without a listener that
  // would crash the process. The failure still surfaces through the pending query.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

async function connect(conn: ConnectionInfo, database: string): Promise<pg.Client> {
  try {
    return await openClient(conn, database);
  } catch (err) {
    throw connectFailure('postgresql', conn, err);
  }
}

async function withDatabase<T>(conn: ConnectionInfo, what: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(conn, conn.database);
  try {
    return await work(client);
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw queryFailure('postgresql', conn, what, err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Run `work` connected to the server's maintenance database (`postgres`, else `template1`). */
async function withMaintenance<T>(conn: ConnectionInfo, what: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  let client: pg.Client | undefined;
  for (const database of MAINTENANCE_DATABASES) {
    try {
      client = await openClient(conn, database);
      break;
    } catch (err) {
      // Only a missing database (invalid_catalog_name) is worth another try; bad
      // credentials or an unreachable server stay that way.
      const last = database === MAINTENANCE_DATABASES[MAINTENANCE_DATABASES.length - 1];
      if ((err as { code?: unknown }).code !== '3D000' || last) throw connectFailure('postgresql', conn, err);
    }
  }
  if (!client) throw new EngineError('no maintenance database to connect to');
  try {
    return await work(client);
  } catch (err) {
    throw queryFailure('postgresql', conn, what, err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The server's major version, or null when it cannot be asked (the tool will then say why). */
async function serverMajorOrNull(conn: ConnectionInfo): Promise<number | null> {
  try {
    return await withDatabase(conn, 'reading the server version', async (client) => {
      const res = await client.query<{ num: string }>(`SELECT current_setting('server_version_num') AS num`);
      return serverMajorFromVersionNum(Number(res.rows[0].num));
    });
  } catch {
    return null;
  }
}

/** The environment of a PostgreSQL client tool: the password through PGPASSWORD only. */
export function toolEnv(conn: ConnectionInfo): NodeJS.ProcessEnv {
  return toolEnvironment({
    PGPASSWORD: conn.password,
    PGCONNECT_TIMEOUT: String(CONNECT_TIMEOUT_SECONDS),
    PGAPPNAME: 'strongbox',
  });
}

/** Connection arguments shared by pg_dump and pg_restore; `=` forms so no value can read as an option. */
export function connectionArgs(conn: ConnectionInfo): string[] {
  return [
    '--no-password',
    `--host=${conn.host}`,
    `--port=${conn.port}`,
    `--username=${conn.user}`,
    // Safe names contain no "=" and no "://", so pg_dump cannot mistake this for a conninfo string.
    `--dbname=${conn.database}`,
  ];
}

export const postgres = {
  kind: 'postgresql',
  dumpSuffix: '.pgdump',

  async probe(conn: ConnectionInfo): Promise<ServerInfo> {
    return withDatabase(conn, 'probing the server', async (client) => {
      const res = await client.query<{ num: string; version: string; size: string }>(
        `SELECT current_setting('server_version_num') AS num,
                current_setting('server_version') AS version,
                pg_database_size(current_database())::text AS size`,
      );
      const row = res.rows[0];
      return {
        // "15.20 (Debian 15.20-0+deb12u1)" → "15.20": the packaging suffix is noise in a manifest.
        version: row.version.split(' ')[0],
        major: serverMajorFromVersionNum(Number(row.num)),
        sizeBytes: Number(row.size),
      };
    });
  },

  async tableRowCounts(conn: ConnectionInfo): Promise<Record<string, number>> {
    return withDatabase(conn, 'counting rows', async (client) => {
      // One snapshot for all tables, so the counts describe one moment like a dump does.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        // relkind 'r' only: a partitioned parent holds no rows of its own; its
        // partitions are counted as the tables they are.
        const tables = await client.query<{ schema: string; table: string }>(
          `SELECT n.nspname AS schema, c.relname AS table
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND ${SYSTEM_SCHEMA_FILTER}
            ORDER BY 1, 2`,
        );
        const counts: Record<string, number> = {};
        for (const { schema, table } of tables.rows) {
          // ONLY: an inheritance parent's count must not include its children's rows,
          // which the dump holds (and counts) as their own tables.
          const res = await client.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM ONLY ${quoteIdent(schema)}.${quoteIdent(table)}`,
          );
          counts[`${schema}.${table}`] = Number(res.rows[0].n);
        }
        return counts;
      } finally {
        await client.query('COMMIT').catch(() => undefined);
      }
    });
  },

  async dump(conn: ConnectionInfo, options: DumpOptions = {}): Promise<DumpProcess> {
    requireSafeDatabaseName(conn.database);
    if (options.signal?.aborted) throw new EngineError('pg_dump was canceled before it started');
    const client = await pickPgClient(options.serverMajor ?? (await serverMajorOrNull(conn)));
    if (options.signal?.aborted) throw new EngineError('pg_dump was canceled before it started');
    const run = await startTool({
      name: 'pg_dump',
      path: client.pgDump,
      // Custom format so pg_restore can reorder and skip; its own compression off because
      // the pipeline compresses (zstd) better and in one place.
      args: ['--format=custom', '--compress=0', ...connectionArgs(conn)],
      env: toolEnv(conn),
      secrets: [conn.password],
      stdin: 'ignore',
      stdout: options.output,
      signal: options.signal,
    });
    return { stdout: toolStdout(run), done: run.done, kill: run.kill, clientVersion: client.versionLine };
  },

  async schemaDump(conn: ConnectionInfo, options: DumpOptions = {}): Promise<string> {
    requireSafeDatabaseName(conn.database);
    const client = await pickPgClient(options.serverMajor ?? (await serverMajorOrNull(conn)));
    const run = await startTool({
      name: 'pg_dump',
      path: client.pgDump,
      args: ['--schema-only', '--no-owner', '--no-acl', '--format=plain', ...connectionArgs(conn)],
      env: toolEnv(conn),
      secrets: [conn.password],
      stdin: 'ignore',
      signal: options.signal,
    });
    return normalizeDdl('postgresql', await toolOutput(run, 'pg_dump --schema-only', SCHEMA_LIMIT));
  },

  async restore(conn: ConnectionInfo, input: Readable, options: RestoreOptions = {}): Promise<void> {
    try {
      requireSafeDatabaseName(conn.database);
      if (options.signal?.aborted) throw new EngineError('pg_restore was canceled before it started');
      const client = await pickPgClient(await serverMajorOrNull(conn));
      if (options.signal?.aborted) throw new EngineError('pg_restore was canceled before it started');
      const run = await startTool({
        name: 'pg_restore',
        path: client.pgRestore,
        // The restore lands in a new database, possibly on another server, where the
        // original roles need not exist: objects belong to the restoring user. One
        // transaction, so that a failure anywhere (a bad checksum found at the very end of
        // the stream included) commits nothing.
        // With preserveOwnership, owners and GRANTs come back as they were: the caller
        // checked that the roles exist.
        args: [
          ...(options.preserveOwnership ? [] : ['--no-owner', '--no-acl']),
          '--exit-on-error',
          '--single-transaction',
          ...(options.clean ? ['--clean', '--if-exists'] : []),
          ...(options.sections ?? []).map((section) => `--section=${section}`),
          ...connectionArgs(conn),
        ],
        env: toolEnv(conn),
        secrets: [conn.password],
        // pg_restore reads the dump as it is: straight from the process before it when it can.
        stdin: options.pipeTo ? 'fifo' : 'pipe',
        signal: options.signal,
      });
      await restoreInput(run, input, options.pipeTo, 'pg_restore', [conn.password]);
    } catch (err) {
      input.destroy();
      throw err;
    }
  },

  async createDatabase(conn: ConnectionInfo, name: string, properties?: DatabaseProperties | null): Promise<string[]> {
    requireSafeDatabaseName(name);
    try {
      return await withMaintenance(conn, `creating database "${name}"`, async (client) => {
        const num = Number((await client.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`)).rows[0].n);
        return createDatabaseLike(client, quoteIdent(name), properties ?? null, num);
      });
    } catch (err) {
      // A locale this server lacks: say which, and that the backup's sort order needs it.
      if (properties && err instanceof EngineError && /locale|collation|encoding/i.test(err.message) && !/already exists/.test(err.message)) {
        const locale = properties.locale_provider === 'libc' ? properties.lc_collate : `${properties.locale_provider} ${properties.icu_locale}`;
        throw new EngineError(
          `cannot create database "${name}" like the backed-up one (encoding ${properties.encoding}, locale ${locale}): ${err.message}; the server needs that locale for text to sort as it did`,
          err.permanent,
        );
      }
      throw err;
    }
  },

  async databaseProperties(conn: ConnectionInfo): Promise<DatabaseProperties> {
    return withDatabase(conn, 'reading database properties', (client) => readDatabaseProperties(client, conn.database));
  },

  async ownership(conn: ConnectionInfo): Promise<Ownership> {
    // The GRANTs themselves are in the dump; only the roles must exist where it lands.
    return withDatabase(conn, 'reading owners and grantees', async (client) => ({ roles: await readOwnershipRoles(client) }));
  },

  async missingRoles(conn: ConnectionInfo, roles: string[]): Promise<string[]> {
    if (roles.length === 0) return [];
    return withMaintenance(conn, 'looking up roles', async (client) => {
      const res = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])', [roles]);
      const present = new Set(res.rows.map((r) => r.rolname));
      return roles.filter((r) => !present.has(r));
    });
  },

  async maxStatementBytes(): Promise<number | null> {
    return null;
  },

  async dropDatabase(conn: ConnectionInfo, name: string): Promise<void> {
    requireSafeDatabaseName(name);
    await withMaintenance(conn, `dropping database "${name}"`, (client) =>
      client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`),
    );
  },

  async databaseExists(conn: ConnectionInfo, name: string): Promise<boolean> {
    requireSafeDatabaseName(name);
    return withMaintenance(conn, `looking up database "${name}"`, async (client) => {
      const res = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      return res.rowCount === 1;
    });
  },

  async databaseIsEmpty(conn: ConnectionInfo): Promise<boolean> {
    return withDatabase(conn, 'inspecting the database', async (client) => {
      // Objects that belong to an extension (deptype 'e') come with CREATE EXTENSION,
      // not from a user, so they do not make a database non-empty.
      const res = await client.query<{ n: string }>(
        `SELECT (
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${SYSTEM_SCHEMA_FILTER}
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE ${SYSTEM_SCHEMA_FILTER}
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
         )::text AS n`,
      );
      return Number(res.rows[0].n) === 0;
    });
  },
} satisfies Engine;
