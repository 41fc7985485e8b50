/**
 * The MySQL/MariaDB engine: `mysql2` for probes and catalog queries, mariadb-dump (or
 * mysqldump) for a consistent SQL dump and the mariadb (or mysql) client to load it.
 */
import mysql2 from 'mysql2/promise';
import { pipeline, type Readable } from 'node:stream';
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
import { feedTool, findInPath, startTool, toolEnvironment, toolOutput, toolStdout, toolVersionLine } from '../process.js';
import { normalizeDdl, SCHEMA_LIMIT } from '../schema.js';
import { MysqlDumpRewriter } from './rewrite.js';
import { applyGrants, createDatabaseSql, readGrants, readOwnershipRoles, readSequenceRounds, parseAccount } from './ownership.js';

const CONNECT_TIMEOUT_SECONDS = 5;

/** Quote an identifier for MySQL: wrap in backticks, double any inside. */
export function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** "10.11.19-MariaDB-0+deb12u1" → { version: "10.11.19-MariaDB", major: 10 }; "8.0.36" → { "8.0.36", 8 }. */
export function parseServerVersion(raw: string): { version: string; major: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)(-MariaDB)?/i.exec(raw);
  if (!m) return { version: raw, major: Number.parseInt(raw, 10) || 0 };
  return { version: m[0], major: Number(m[1]) };
}

interface MysqlTools {
  dump: { path: string; name: string; versionLine: string };
  client: { path: string; name: string };
}

let toolsCache: Promise<MysqlTools> | undefined;

async function findTool(names: string[], install: string): Promise<{ path: string; name: string }> {
  for (const name of names) {
    const path = await findInPath(name);
    if (path) return { path, name };
  }
  throw new EngineError(`no ${names.join(' or ')} found in PATH; install ${install}`);
}

/** mariadb-dump / mariadb when present (the names MariaDB will keep), else the mysql* names. */
export function mysqlTools(): Promise<MysqlTools> {
  toolsCache ??= (async () => {
    const dump = await findTool(['mariadb-dump', 'mysqldump'], 'mariadb-client (or mysql-client)');
    const client = await findTool(['mariadb', 'mysql'], 'mariadb-client (or mysql-client)');
    const versionLine = (await toolVersionLine(dump.path)) ?? dump.name;
    return { dump: { ...dump, versionLine }, client };
  })();
  // A failed lookup is not cached: the client may be installed while we run.
  toolsCache.catch(() => {
    toolsCache = undefined;
  });
  return toolsCache;
}

async function connect(conn: ConnectionInfo, database: string | undefined): Promise<mysql2.Connection> {
  try {
    return await mysql2.createConnection({
      host: conn.host,
      port: conn.port,
      user: conn.user,
      password: conn.password,
      database,
      connectTimeout: CONNECT_TIMEOUT_SECONDS * 1000,
      supportBigNumbers: true,
      bigNumberStrings: true,
      multipleStatements: false,
    });
  } catch (err) {
    throw connectFailure('mysql', conn, err);
  }
}

export async function withConnection<T>(
  conn: ConnectionInfo,
  database: string | undefined,
  what: string,
  work: (c: mysql2.Connection) => Promise<T>,
): Promise<T> {
  const c = await connect(conn, database);
  // Like pg, a connection that dies while idle emits 'error'; the pending query reports it.
  c.on('error', () => undefined);
  try {
    return await work(c);
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw queryFailure('mysql', conn, what, err);
  } finally {
    await c.end().catch(() => c.destroy());
  }
}

export function toolEnv(conn: ConnectionInfo): NodeJS.ProcessEnv {
  return toolEnvironment({ MYSQL_PWD: conn.password });
}

/**
 * Arguments every client tool gets first. `--no-defaults` (which must come first) keeps
 * option files of this machine (~/.my.cnf, /etc/mysql) from adding a password, host or
 * other settings: the URL alone says where to connect and as whom. TCP always, like the
 * driver used for probes, so both reach the same server as the same account.
 */
export function connectionArgs(conn: ConnectionInfo): string[] {
  return [
    '--no-defaults',
    '--protocol=TCP',
    `--host=${conn.host}`,
    `--port=${conn.port}`,
    `--user=${conn.user}`,
    // Rows larger than the default 16 MB packet would otherwise fail to dump or load.
    '--max-allowed-packet=1G',
  ];
}

/** MySQL's mysqldump renamed --master-data to --source-data in 8.0.26 (and dropped the old name in 8.4). */
function masterDataOption(versionLine: string): string {
  const m = /Ver (\d+)\.(\d+)\.(\d+)/.exec(versionLine);
  const mysql8 = m && !/MariaDB/i.test(versionLine) && (Number(m[1]) > 8 || (Number(m[1]) === 8 && (Number(m[2]) > 0 || Number(m[3]) >= 26)));
  return mysql8 ? '--source-data=2' : '--master-data=2';
}

/**
 * Whether a dump of `conn` can record its binlog position (`--master-data=2`) without
 * failing or locking: the server must write binlogs (with log_bin off there is no position
 * and mariadb-dump would fail, so the dump is taken without one). MariaDB reads the position
 * of its consistent snapshot (Binlog_snapshot_file), which needs no privilege; elsewhere
 * mariadb-dump takes a brief FLUSH TABLES WITH READ LOCK, which needs RELOAD and the
 * right to read the binlog status, so without those the dump goes without a position rather
 * than failing. A server that cannot be asked: no position (the dump itself reports why).
 */
async function canRecordBinlogPosition(conn: ConnectionInfo): Promise<boolean> {
  try {
    return await withConnection(conn, undefined, 'reading the binlog settings', async (c) => {
      const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT @@global.log_bin AS on_');
      if (Number(rows[0].on_) !== 1) return false;
      const [snap] = await c.query<mysql2.RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Binlog_snapshot_file'");
      if (snap.length > 0) return true;
      const [privs] = await c.query<mysql2.RowDataPacket[]>(
        `SELECT privilege_type AS p FROM information_schema.user_privileges
          WHERE grantee = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
      );
      const have = new Set(privs.map((r) => String(r.p).toUpperCase()));
      return have.has('RELOAD') && (have.has('REPLICATION CLIENT') || have.has('BINLOG MONITOR') || have.has('SUPER'));
    });
  } catch {
    return false;
  }
}

export const mysql = {
  kind: 'mysql',
  dumpSuffix: '.sql',

  async probe(conn: ConnectionInfo): Promise<ServerInfo> {
    return withConnection(conn, conn.database, 'probing the server', async (c) => {
      const [rows] = await c.query<mysql2.RowDataPacket[]>(
        `SELECT VERSION() AS version,
                (SELECT COALESCE(SUM(data_length + index_length), 0)
                   FROM information_schema.tables WHERE table_schema = ?) AS size`,
        [conn.database],
      );
      const { version, major } = parseServerVersion(String(rows[0].version));
      return { version, major, sizeBytes: Number(rows[0].size) };
    });
  },

  async tableRowCounts(conn: ConnectionInfo): Promise<Record<string, number>> {
    return withConnection(conn, conn.database, 'counting rows', async (c) => {
      // One snapshot for all tables (InnoDB), so the counts describe one moment like the
      // --single-transaction dump does.
      await c.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await c.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      try {
        // MariaDB lists system-versioned tables as 'SYSTEM VERSIONED', not 'BASE TABLE';
        // they hold data like any other table.
        const [tables] = await c.query<mysql2.RowDataPacket[]>(
          `SELECT table_name AS name, table_type AS type FROM information_schema.tables
            WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY table_name`,
          [conn.database],
        );
        const counts: Record<string, number> = {};
        for (const { name, type } of tables) {
          // Every row version: a dump with --dump-history restores them all, one without
          // restores only current rows, which are then all there is.
          const all = type === 'SYSTEM VERSIONED' ? ' FOR SYSTEM_TIME ALL' : '';
          const [rows] = await c.query<mysql2.RowDataPacket[]>(
            `SELECT COUNT(*) AS n FROM ${quoteIdent(conn.database)}.${quoteIdent(String(name))}${all}`,
          );
          counts[String(name)] = Number(rows[0].n);
        }
        return counts;
      } finally {
        await c.query('COMMIT').catch(() => undefined);
      }
    });
  },

  async dump(conn: ConnectionInfo, options: DumpOptions = {}): Promise<DumpProcess> {
    requireSafeDatabaseName(conn.database);
    const tools = await mysqlTools();
    if (options.signal?.aborted) throw new EngineError(`${tools.dump.name} was canceled before it started`);
    const coordinates = await canRecordBinlogPosition(conn);
    const run = await startTool({
      name: tools.dump.name,
      path: tools.dump.path,
      args: [
        ...connectionArgs(conn),
        // One consistent InnoDB snapshot without locking writers out.
        '--single-transaction',
        '--quick',
        '--routines',
        '--triggers',
        '--events',
        // Binary strings as they are, escaped, not --hex-blob, which doubles them: a 16 MB
        // BLOB would become a 32 MB INSERT that a server with the default 16 MiB
        // max_allowed_packet refuses. Binary values pass utf8mb4 untouched (their charset
        // is binary); text of any charset goes to utf8mb4 and back, which is lossless for
        // any text the server holds. Not --default-character-set=binary: it would keep
        // text unconverted too, but the server then reads UUID and INET6 literals as
        // 16-byte binary values and stores NULL.
        '--default-character-set=utf8mb4',
        ...(options.dumpHistory ? ['--dump-history'] : []),
        // The binlog position of the snapshot, as a comment (archive/mysql/coordinates.ts
        // reads it off the stream): where a point-in-time restore replays binlogs from.
        ...(coordinates ? [masterDataOption(tools.dump.versionLine)] : []),
        // The database name as a positional argument without --databases: no CREATE
        // DATABASE / USE in the dump, so it restores into a database of any name.
        conn.database,
      ],
      env: toolEnv(conn),
      secrets: [conn.password],
      stdin: 'ignore',
      stdout: options.output,
      signal: options.signal,
    });
    return { stdout: toolStdout(run), done: run.done, kill: run.kill, clientVersion: tools.dump.versionLine };
  },

  async schemaDump(conn: ConnectionInfo, options: DumpOptions = {}): Promise<string> {
    requireSafeDatabaseName(conn.database);
    const tools = await mysqlTools();
    const run = await startTool({
      name: tools.dump.name,
      path: tools.dump.path,
      args: [...connectionArgs(conn), '--no-data', '--single-transaction', '--routines', '--triggers', '--events', '--skip-dump-date', '--default-character-set=utf8mb4', conn.database],
      env: toolEnv(conn),
      secrets: [conn.password],
      stdin: 'ignore',
      signal: options.signal,
    });
    return normalizeDdl('mysql', await toolOutput(run, `${tools.dump.name} --no-data`, SCHEMA_LIMIT));
  },

  async restore(conn: ConnectionInfo, input: Readable, options: RestoreOptions = {}): Promise<void> {
    try {
      requireSafeDatabaseName(conn.database);
      const tools = await mysqlTools();
      if (options.signal?.aborted) throw new EngineError(`${tools.client.name} was canceled before it started`);
      const run = await startTool({
        name: tools.client.name,
        path: tools.client.path,
        args: [
          ...connectionArgs(conn),
          `--database=${conn.database}`,
          // mariadb-dump has no such option, so only the client gets it.
          `--connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
          '--default-character-set=utf8mb4',
          // Read the dump byte for byte: no interpretation of backslash commands or NULs
          // that happen to occur in data.
          '--binary-mode',
        ],
        env: toolEnv(conn),
        secrets: [conn.password],
        stdin: 'pipe',
        signal: options.signal,
      });
      const rewriter = new MysqlDumpRewriter({
        sourceDatabase: options.sourceDatabase ?? null,
        targetDatabase: conn.database,
        stripDefiners: !options.preserveOwnership,
        sequenceRounds: options.sequenceRounds,
      });
      // pipeline(), not pipe(): it also passes on an error the input had before this point.
      pipeline(input, rewriter, () => undefined);
      await feedTool(run, rewriter, tools.client.name, [conn.password]);
      if (options.preserveOwnership && options.grants?.length) {
        await withConnection(conn, conn.database, 'granting privileges on the restored database', (c) => applyGrants(c, conn.database, options.grants!));
      }
    } catch (err) {
      input.destroy();
      throw err;
    }
  },

  async createDatabase(conn: ConnectionInfo, name: string, properties?: DatabaseProperties | null): Promise<string[]> {
    requireSafeDatabaseName(name);
    await withConnection(conn, undefined, `creating database "${name}"`, async (c) => {
      const { sql, values } = createDatabaseSql(name, properties ?? null);
      try {
        await c.query(sql, values);
      } catch (err) {
        const code = (err as { code?: string }).code;
        // A collation or charset this server does not have: say which, not just "unknown".
        if (properties && (code === 'ER_UNKNOWN_COLLATION' || code === 'ER_UNKNOWN_CHARACTER_SET' || code === 'ER_COLLATION_CHARSET_MISMATCH')) {
          throw new EngineError(
            `cannot create database "${name}" like the backed-up one: this server has no character set ${properties.character_set} with collation ${properties.collation} (${(err as Error).message})`,
          );
        }
        throw err;
      }
    });
    return [];
  },

  async databaseProperties(conn: ConnectionInfo): Promise<DatabaseProperties> {
    return withConnection(conn, conn.database, 'reading database properties', async (c) => {
      // SELECT *: SCHEMA_COMMENT exists on MariaDB 10.5+ only.
      const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT * FROM information_schema.schemata WHERE schema_name = ?', [conn.database]);
      if (rows.length === 0) throw new EngineError(`database "${conn.database}" does not exist`);
      const row = Object.fromEntries(Object.entries(rows[0]).map(([k, v]) => [k.toLowerCase(), v])) as Record<string, unknown>;
      const comment = typeof row.schema_comment === 'string' && row.schema_comment !== '' ? row.schema_comment : null;
      return {
        name: conn.database,
        character_set: String(row.default_character_set_name),
        collation: String(row.default_collation_name),
        comment,
        sequence_rounds: await readSequenceRounds(c, conn.database),
      };
    });
  },

  async ownership(conn: ConnectionInfo): Promise<Ownership> {
    return withConnection(conn, conn.database, 'reading definers and grants', async (c) => {
      const grants = await readGrants(c, conn.database);
      const roles = await readOwnershipRoles(c, conn.database, grants);
      return { roles, grants };
    });
  },

  async missingRoles(conn: ConnectionInfo, roles: string[]): Promise<string[]> {
    if (roles.length === 0) return [];
    return withConnection(conn, undefined, 'looking up accounts', async (c) => {
      const missing: string[] = [];
      for (const role of roles) {
        const { user, host } = parseAccount(role);
        let rows: mysql2.RowDataPacket[];
        try {
          [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT 1 FROM mysql.user WHERE user = ? AND host = ?', [user, host]);
        } catch (err) {
          if ((err as { code?: string }).code === 'ER_TABLEACCESS_DENIED_ERROR' || (err as { code?: string }).code === 'ER_DBACCESS_DENIED_ERROR') {
            throw new EngineError(`cannot check which accounts exist: "${conn.user}" may not read mysql.user on ${conn.host}:${conn.port}`);
          }
          throw err;
        }
        if (rows.length === 0) missing.push(role);
      }
      return missing;
    });
  },

  async maxStatementBytes(conn: ConnectionInfo): Promise<number | null> {
    return withConnection(conn, undefined, 'reading max_allowed_packet', async (c) => {
      // The global value: each new session (the restore client's) starts with it.
      const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT @@global.max_allowed_packet AS n');
      return Number(rows[0].n);
    });
  },

  async dropDatabase(conn: ConnectionInfo, name: string): Promise<void> {
    requireSafeDatabaseName(name);
    await withConnection(conn, undefined, `dropping database "${name}"`, (c) =>
      c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`),
    );
  },

  async databaseExists(conn: ConnectionInfo, name: string): Promise<boolean> {
    requireSafeDatabaseName(name);
    return withConnection(conn, undefined, `looking up database "${name}"`, async (c) => {
      const [rows] = await c.query<mysql2.RowDataPacket[]>(
        'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?',
        [name],
      );
      return rows.length > 0;
    });
  },

  async databaseIsEmpty(conn: ConnectionInfo): Promise<boolean> {
    return withConnection(conn, conn.database, 'inspecting the database', async (c) => {
      const [rows] = await c.query<mysql2.RowDataPacket[]>(
        `SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?)
              + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = ?)
              + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = ?) AS n`,
        [conn.database, conn.database, conn.database],
      );
      return Number(rows[0].n) === 0;
    });
  },
} satisfies Engine;
