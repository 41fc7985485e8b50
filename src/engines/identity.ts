/**
 * "Is this the same database?" answered by the servers, never by how URLs spell them:
 * `localhost`, `127.0.0.1`, `[::1]`, a DNS alias, another port through a proxy or a tunnel
 * all reach one database, and only the server can say so.
 */
import type { ConnectionInfo, EngineKind } from './engine.js';
import { mysqlIdentity, mysqlSameDatabase } from './mysql/identity.js';
import { postgresIdentity } from './postgres/identity.js';

/** Which database a connection reaches, whatever its URL calls the server. */
export interface DatabaseIdentity {
  /**
   * The server. PostgreSQL: its `system_identifier` (made at random by initdb, one per
   * cluster). MySQL: `@@server_uuid`. MariaDB has none: host name, port, data directory and
   * server id, with equal ones confirmed by a named lock (see mysql/identity.ts).
   */
  server: string;
  /** The database (schema) name, as the server compares names. */
  database: string;
}

/**
 * The identity of `conn.database` on its server (the database need not exist). Throws
 * EngineError when the server cannot be asked.
 */
export function databaseIdentity(kind: EngineKind, conn: ConnectionInfo): Promise<DatabaseIdentity> {
  return kind === 'postgresql' ? postgresIdentity(conn) : mysqlIdentity(conn);
}

/**
 * Whether `a` and `b` reach the same database on the same server. Throws EngineError when
 * either server cannot be asked.
 */
export async function sameDatabase(kind: EngineKind, a: ConnectionInfo, b: ConnectionInfo): Promise<boolean> {
  if (kind === 'mysql') return mysqlSameDatabase(a, b);
  const [ia, ib] = [await postgresIdentity(a), await postgresIdentity(b)];
  return ia.server === ib.server && ia.database === ib.database;
}
