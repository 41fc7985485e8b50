/**
 * Which MySQL/MariaDB server a connection reaches. MySQL has `@@server_uuid`; MariaDB (10.11
 * included) has no such variable, so its fingerprint is what only one running server can
 * say of itself at once: host name, port, data directory and server id. Two servers can
 * still share all four (the same container image or StatefulSet pod name in two clusters,
 * a cloned data directory with its auto.cnf), so equal fingerprints are confirmed by a
 * named lock: one taken through the first connection is visible through the second only
 * when both reach the same server. Named locks need no privilege at all.
 */
import { randomBytes } from 'node:crypto';
import mysql2 from 'mysql2/promise';
import type { ConnectionInfo } from '../engine.js';
import { requireSafeDatabaseName } from '../errors.js';
import type { DatabaseIdentity } from '../identity.js';
import { withConnection } from './index.js';

/** A connection to the server, no database selected: it need not exist to know which server this is. */
function withServer<T>(conn: ConnectionInfo, what: string, work: (c: mysql2.Connection) => Promise<T>): Promise<T> {
  return withConnection(conn, undefined, what, work);
}

async function optionalUuid(c: mysql2.Connection): Promise<string | null> {
  try {
    const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT @@server_uuid AS uuid');
    return rows[0].uuid ? String(rows[0].uuid) : null;
  } catch {
    return null; // MariaDB: "Unknown system variable 'server_uuid'"
  }
}

export async function mysqlIdentity(conn: ConnectionInfo): Promise<DatabaseIdentity> {
  requireSafeDatabaseName(conn.database);
  return withServer(conn, 'reading the server identity', async (c) => {
    const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT @@hostname AS host, @@port AS port, @@datadir AS datadir, @@server_id AS sid, @@lower_case_table_names AS lc');
    const r = rows[0];
    const uuid = await optionalUuid(c);
    const server = uuid ? `mysql:uuid:${uuid}` : `mysql:${String(r.host)}:${String(r.port)}:${String(r.datadir)}:${String(r.sid)}`;
    // With lower_case_table_names 1 or 2, "Shop" and "shop" are one schema.
    return { server, database: Number(r.lc) === 0 ? conn.database : conn.database.toLowerCase() };
  });
}

export async function mysqlSameDatabase(a: ConnectionInfo, b: ConnectionInfo): Promise<boolean> {
  const [ia, ib] = [await mysqlIdentity(a), await mysqlIdentity(b)];
  if (ia.server !== ib.server || ia.database !== ib.database) return false;
  const lock = `strongbox-identity-${randomBytes(12).toString('hex')}`;
  return withServer(a, 'taking an identity lock', async (ca) => {
    const [got] = await ca.query<mysql2.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS ok', [lock]);
    if (Number(got[0].ok) !== 1) throw new Error('could not take a fresh named lock');
    try {
      return await withServer(b, 'looking for the identity lock', async (cb) => {
        const [seen] = await cb.query<mysql2.RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS holder', [lock]);
        return seen[0].holder !== null;
      });
    } finally {
      await ca.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => undefined);
    }
  });
}
