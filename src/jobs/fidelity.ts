/**
 * What a restore needs besides the dump, recorded with each backup (migration 0008): the
 * properties to create the database with, the roles its objects need, the size of the
 * dump's largest statement. And the checks a restore makes with them before it writes
 * anything: a statement the target server would refuse, roles it lacks.
 */
import type { AppContext } from '../context.js';
import type { Backup } from '../catalog/schema.js';
import type { ConnectionInfo, DatabaseProperties, Engine, Ownership, RestoreOptions } from '../engines/index.js';
import { serverAddress } from '../engines/errors.js';

/** The recorded properties of the backed-up database, or null (older backups, or not readable then). */
export function recordedProperties(backup: Pick<Backup, 'database_properties'>): DatabaseProperties | null {
  return backup.database_properties ? (JSON.parse(backup.database_properties) as DatabaseProperties) : null;
}

/** The recorded roles (and MySQL grants) of the backed-up database, or null. */
export function recordedOwnership(backup: Pick<Backup, 'ownership'>): Ownership | null {
  return backup.ownership ? (JSON.parse(backup.ownership) as Ownership) : null;
}

/** The name of the database the backup was dumped from (older backups: its branch's, as it is now). */
export async function sourceDatabaseName(ctx: AppContext, backup: Backup): Promise<string | null> {
  const recorded = recordedProperties(backup)?.name;
  if (recorded) return recorded;
  const branch = await ctx.db.selectFrom('branches').select('conn_database').where('id', '=', backup.branch_id).executeTakeFirst();
  return branch?.conn_database ?? null;
}

/** The options of Engine.restore that come from the backup's records. */
export async function recordedRestoreOptions(ctx: AppContext, backup: Backup, preserveOwnership: boolean): Promise<Pick<RestoreOptions, 'sourceDatabase' | 'preserveOwnership' | 'grants' | 'sequenceRounds'>> {
  return {
    sourceDatabase: (await sourceDatabaseName(ctx, backup)) ?? undefined,
    sequenceRounds: recordedProperties(backup)?.sequence_rounds,
    preserveOwnership,
    grants: preserveOwnership ? recordedOwnership(backup)?.grants : undefined,
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** MySQL accepts max_allowed_packet in multiples of 1024 up to 1 GiB. */
const PACKET_CEILING = 1 << 30;

/**
 * Why the target server would refuse the backup's largest statement, with what to raise;
 * null when it fits (or nothing was measured, or the engine has no such limit).
 */
export async function statementTooLarge(engine: Engine, backup: Pick<Backup, 'largest_statement'>, target: ConnectionInfo): Promise<string | null> {
  const largest = backup.largest_statement;
  if (largest === null || largest === undefined) return null;
  const limit = await engine.maxStatementBytes(target);
  if (limit === null || largest <= limit) return null;
  const where = serverAddress(target);
  if (largest > PACKET_CEILING) {
    return `the backup holds a statement of ${largest} bytes (${mib(largest)}), more than the 1 GiB a MySQL/MariaDB server can ever accept (max_allowed_packet); it cannot be restored with the mysql client`;
  }
  const needed = Math.ceil(largest / 1024) * 1024;
  return (
    `the backup holds a statement of ${largest} bytes (${mib(largest)}), larger than max_allowed_packet of the server at ${where} (${limit} bytes, ${mib(limit)}): ` +
    `the server would drop the connection ("server has gone away"). Raise max_allowed_packet on that server to at least ${needed} ` +
    `(SET GLOBAL max_allowed_packet = ${needed}; and max_allowed_packet in its configuration file to keep it after a restart), then restore again`
  );
}

/**
 * Why preserving ownership cannot work on the target: the roles it lacks, named. Null when
 * all are there, or when nothing was recorded (pg_restore then names a missing role itself).
 */
export async function missingRolesProblem(engine: Engine, backup: Pick<Backup, 'ownership'>, target: ConnectionInfo): Promise<string | null> {
  const roles = recordedOwnership(backup)?.roles ?? [];
  const missing = await engine.missingRoles(target, roles);
  if (missing.length === 0) return null;
  const names = missing.map((r) => (r.startsWith("'") ? r : JSON.stringify(r))).join(', ');
  const hint = engine.kind === 'postgresql' ? ' (pg_dumpall --roles-only --no-role-passwords on the source server gives their definitions)' : '';
  return (
    `preserve_ownership: the backup's objects belong to or are granted to ${missing.length === 1 ? 'a role' : 'roles'} that ${missing.length === 1 ? 'does' : 'do'} not exist on the server at ${serverAddress(target)}: ${names}; ` +
    `create ${missing.length === 1 ? 'it' : 'them'} there first${hint}, or restore without preserve_ownership (objects then belong to the restoring user)`
  );
}

/** Every reason the restore into `target` would fail before it writes anything; empty when none is known. */
export async function restorePreflight(engine: Engine, backup: Backup, target: ConnectionInfo, preserveOwnership: boolean): Promise<string[]> {
  const problems: string[] = [];
  const tooLarge = await statementTooLarge(engine, backup, target);
  if (tooLarge) problems.push(tooLarge);
  if (preserveOwnership) {
    const missing = await missingRolesProblem(engine, backup, target);
    if (missing) problems.push(missing);
  }
  return problems;
}

/** MariaDB's and MySQL 8's default max_allowed_packet. */
const DEFAULT_PACKET = 16 * 1048576;

/**
 * What a verification should warn about before anyone needs the restore: a statement
 * larger than the source server's max_allowed_packet (the scratch restore of a full
 * verification runs there), or than the default one of a fresh server.
 */
export async function verificationWarnings(ctx: AppContext, engine: Engine, backup: Backup, source: ConnectionInfo | null): Promise<string[]> {
  const largest = backup.largest_statement;
  if (largest === null || largest === undefined) return [];
  if (source) {
    try {
      const tooLarge = await statementTooLarge(engine, backup, source);
      if (tooLarge) return [tooLarge];
    } catch (e) {
      ctx.log.info({ backup: backup.id, err: e instanceof Error ? e.message : String(e) }, 'cannot read max_allowed_packet of the source server');
    }
  }
  if (largest > DEFAULT_PACKET) {
    return [`the backup holds a statement of ${largest} bytes (${mib(largest)}), larger than the default max_allowed_packet (16 MiB): a restore into a server with default settings needs it raised to at least ${Math.ceil(largest / 1024) * 1024}`];
  }
  return [];
}
