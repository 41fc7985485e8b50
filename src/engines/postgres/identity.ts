/**
 * Which PostgreSQL server a connection reaches: its `system_identifier`, which initdb makes
 * at random for every cluster and which every address, name, port, proxy or tunnel of that
 * cluster answers alike. (A physical standby shares it with its primary; nothing can be
 * restored into a standby anyway.)
 */
import pg from 'pg';
import type { ConnectionInfo } from '../engine.js';
import { connectFailure, queryFailure, requireSafeDatabaseName } from '../errors.js';
import type { DatabaseIdentity } from '../identity.js';
import { openClient } from './index.js';

/**
 * The database itself first (the account may be allowed nowhere else), then the
 * maintenance databases, for a database that does not exist (yet, or any more).
 */
function candidates(conn: ConnectionInfo): string[] {
  return [...new Set([conn.database, 'postgres', 'template1'])];
}

export async function postgresIdentity(conn: ConnectionInfo): Promise<DatabaseIdentity> {
  requireSafeDatabaseName(conn.database);
  let lastError: unknown;
  for (const database of candidates(conn)) {
    let client: pg.Client;
    try {
      client = await openClient(conn, database);
    } catch (err) {
      lastError = err;
      // Only a missing database (invalid_catalog_name) is worth another try.
      if ((err as { code?: unknown }).code === '3D000') continue;
      throw connectFailure('postgresql', conn, err);
    }
    try {
      const res = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
      // Database names are compared exactly (case and all) by PostgreSQL.
      return { server: `postgresql:${res.rows[0].id}`, database: conn.database };
    } catch (err) {
      throw queryFailure('postgresql', conn, 'reading the server identity', err);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw connectFailure('postgresql', conn, lastError);
}
