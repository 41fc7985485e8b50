/**
 * What a PostgreSQL server needs before Strongbox can archive its WAL, checked in one go so
 * that the operator fixes everything at once: a role allowed to replicate, wal_level at
 * least replica, a free WAL sender and replication slot, a pg_hba.conf line admitting
 * replication connections, and this machine's tools of the server's major version.
 */
import pg from 'pg';
import type { ConnectionInfo } from '../../engines/engine.js';
import { connectFailure, queryFailure, serverAddress } from '../../engines/errors.js';
import { openClient } from '../../engines/postgres/index.js';
import { serverMajorFromVersionNum } from '../../engines/postgres/clients.js';
import { scrubSecrets } from '../../engines/process.js';
import { serverTools } from './tools.js';

/** Slots Strongbox made are named strongbox_<branch id>: one of them being there is not a reason to refuse. */
export const SLOT_PREFIX = 'strongbox_';

/** The replication slot of a branch (branch ids are lower-case letters and digits). */
export function slotNameFor(branchId: string): string {
  return `${SLOT_PREFIX}${branchId}`;
}

interface ServerFacts {
  versionNum: number;
  user: string;
  canReplicate: boolean;
  walLevel: string;
  maxWalSenders: number;
  walSendersUsed: number;
  maxSlots: number;
  slotsUsed: number;
  inactiveStrongboxSlots: number;
  inRecovery: boolean;
}

async function readFacts(conn: ConnectionInfo): Promise<ServerFacts> {
  let client: pg.Client;
  try {
    client = await openClient(conn, conn.database);
  } catch (e) {
    throw connectFailure('postgresql', conn, e);
  }
  try {
    const r = await client.query(
      `SELECT current_setting('server_version_num')::int AS version_num,
              current_user AS usr,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
              current_setting('wal_level') AS wal_level,
              current_setting('max_wal_senders')::int AS max_wal_senders,
              (SELECT count(*) FROM pg_stat_replication)::int AS wal_senders_used,
              current_setting('max_replication_slots')::int AS max_slots,
              (SELECT count(*) FROM pg_replication_slots)::int AS slots_used,
              (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active)::int AS inactive_ours,
              pg_is_in_recovery() AS in_recovery`,
      [`${SLOT_PREFIX}%`],
    );
    const row = r.rows[0];
    return {
      versionNum: row.version_num,
      user: row.usr,
      canReplicate: row.can_replicate === true,
      walLevel: row.wal_level,
      maxWalSenders: row.max_wal_senders,
      walSendersUsed: row.wal_senders_used,
      maxSlots: row.max_slots,
      slotsUsed: row.slots_used,
      inactiveStrongboxSlots: row.inactive_ours,
      inRecovery: row.in_recovery === true,
    };
  } catch (e) {
    throw queryFailure('postgresql', conn, 'reading the replication settings', e);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Open a physical replication connection and identify the system: what pg_receivewal will do first. */
async function replicationProblem(conn: ConnectionInfo): Promise<string | null> {
  const client = new pg.Client({
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database: conn.database,
    password: () => conn.password,
    connectionTimeoutMillis: 5000,
    application_name: 'strongbox',
    replication: 'true',
  } as pg.ClientConfig);
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('IDENTIFY_SYSTEM');
    return null;
  } catch (e) {
    const text = scrubSecrets(e instanceof Error ? e.message : String(e), [conn.password]);
    if (/pg_hba\.conf/.test(text)) {
      return `pg_hba.conf of the server at ${serverAddress(conn)} admits no replication connection for user "${conn.user}" from Strongbox's address (${text}); add a line such as "host replication ${conn.user} <Strongbox's address>/32 scram-sha-256" and reload the server`;
    }
    return `a replication connection to ${serverAddress(conn)} as "${conn.user}" failed: ${text}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Every reason the server cannot be archived yet, as sentences naming the setting or the
 * privilege; [] when it can. Throws (EngineError) only when the server cannot be reached.
 */
export async function postgresPreconditions(conn: ConnectionInfo): Promise<string[]> {
  const f = await readFacts(conn);
  const problems: string[] = [];
  const major = serverMajorFromVersionNum(f.versionNum);
  if (major < 10) problems.push(`the server runs PostgreSQL ${major}; archiving needs PostgreSQL 10 or newer`);
  if (f.inRecovery) problems.push('the server is a standby (in recovery); archive its primary instead');
  if (!f.canReplicate) problems.push(`the user "${f.user}" may not replicate: give it the REPLICATION attribute (ALTER ROLE "${f.user}" REPLICATION) or connect as a superuser`);
  if (f.walLevel === 'minimal') problems.push('wal_level is minimal: set wal_level = replica (or logical) in postgresql.conf and restart the server');
  if (f.maxWalSenders < 1) problems.push('max_wal_senders is 0: set it to at least 2 (the WAL receiver and a base backup each use one) and restart the server');
  else if (f.walSendersUsed >= f.maxWalSenders) problems.push(`all ${f.maxWalSenders} WAL senders are in use (max_wal_senders = ${f.maxWalSenders}): raise max_wal_senders (restart) or stop another replication client`);
  if (f.maxSlots < 1) problems.push('max_replication_slots is 0: set it to at least 1 (Strongbox keeps one slot per archived branch) and restart the server');
  else if (f.slotsUsed >= f.maxSlots && f.inactiveStrongboxSlots === 0) problems.push(`no free replication slot: all ${f.maxSlots} are taken (max_replication_slots = ${f.maxSlots}); raise max_replication_slots (restart) or drop a slot no longer used`);
  // Only worth asking when the role may replicate at all: the server's answer would repeat that.
  if (f.canReplicate && f.maxWalSenders > 0) {
    const p = await replicationProblem(conn);
    if (p) problems.push(p);
  }
  if (major >= 10) {
    try {
      await serverTools(major);
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  return problems;
}
