/**
 * Cluster.Restore: restore a backup into a NEW branch, whose database is created on the
 * same server as the backup's branch and named after the new branch. The same rules as
 * the native restore (POST .../branches with backup_id and no connection_url, see
 * ../../v1/branches.ts): never over an existing database, never into the source, and a
 * backup being restored is kept at least a day longer.
 */
import type { AppContext } from '../../../context.js';
import type { Backup, Branch, Database, Job } from '../../../catalog/schema.js';
import { newId, nowIso } from '../../../catalog/ids.js';
import { newJob } from '../../../catalog/jobs.js';
import { engineFor, EngineError, parseConnectionUrl } from '../../../engines/index.js';
import { readableArtifacts } from '../../../jobs/artifacts.js';
import { addInterval } from '../../../time.js';
import { requireAccess, type Principal } from '../../auth.js';
import { alreadyExists, failedPrecondition } from './errors.js';
import { invalidParams as invalidArgument } from '../../errors.js';
import { BACKUP_END, parseRestorePoint, PitrRefusal, planPointInTime } from '../../../archive/pitr.js';

/**
 * The restore point of a Cluster.Restore: `time` for a cluster with continuous archiving
 * (checked now against the archive: what it cannot reach is FAILED_PRECONDITION), null
 * otherwise (Yandex's `time` on a cluster without an archive is ignored, as before). A base
 * backup without a time is replayed to its own end, checked the same way.
 */
async function pointInTime(ctx: AppContext, backup: Backup, source: Branch, time: string | undefined): Promise<string | null> {
  const archived =
    (await ctx.db.selectFrom('archivers').select('branch_id').where('branch_id', '=', source.id).executeTakeFirst()) !== undefined ||
    (await ctx.db.selectFrom('archive_files').select('id').where('branch_id', '=', source.id).limit(1).executeTakeFirst()) !== undefined;
  const restorePoint = time !== undefined && archived ? time : null;
  if (restorePoint === null && backup.method !== 'base') return null;
  try {
    const point = restorePoint === null ? BACKUP_END : parseRestorePoint(restorePoint, 'time');
    await planPointInTime(ctx, source, point, { backup });
    return point === BACKUP_END ? null : point;
  } catch (e) {
    if (e instanceof PitrRefusal) throw e.status === 422 ? invalidArgument(e.message) : failedPrecondition(e.message);
    throw e;
  }
}

export async function restoreToNewBranch(
  ctx: AppContext,
  principal: Principal,
  input: { backup: Backup; source: Branch; database: Database; name: string; time?: string },
): Promise<{ branch: Branch; job: Job }> {
  const { backup, source, database, name } = input;
  requireAccess(principal, source.production === 1 ? 'restore_production_branch_backup' : 'restore_backup', {
    organizationId: database.organization_id,
    databaseId: database.id,
    branchId: source.id,
  });
  if (backup.state !== 'success') throw failedPrecondition(`backup "${backup.id}" is still being created; restore it once it is DONE`);
  if ((await readableArtifacts(ctx, backup.id)).length === 0) throw failedPrecondition(`backup "${backup.id}" has no stored copy left to restore from`);
  const restorePoint = await pointInTime(ctx, backup, source, input.time);
  const exists = await ctx.db.selectFrom('branches').select('id').where('database_id', '=', database.id).where('name', '=', name).where('deleted_at', 'is', null).executeTakeFirst();
  if (exists) throw alreadyExists(`a cluster named "${name}" already exists (database "${database.name}")`);
  if (source.connection_url_enc === null) throw failedPrecondition(`the backup's cluster "${source.id}" has no connection URL, so there is no server to restore to`);

  const url = new URL(ctx.secrets.open(source.connection_url_enc));
  url.pathname = `/${name}`;
  const targetUrl = url.toString();
  const target = parseConnectionUrl(targetUrl).info;
  let taken: boolean;
  try {
    taken = await engineFor(database.kind).databaseExists(target, target.database);
  } catch (e) {
    if (e instanceof EngineError) throw failedPrecondition(`cannot reach the backup's server to create the new database: ${e.message}`);
    throw e;
  }
  if (taken) throw alreadyExists(`a database named "${target.database}" already exists on ${target.host}:${target.port}; choose another name`);

  const now = ctx.clock();
  const branch: Branch = {
    id: newId(),
    organization_id: database.organization_id,
    database_id: database.id,
    name,
    production: 0,
    connection_url_enc: ctx.secrets.seal(targetUrl),
    conn_host: target.host,
    conn_port: target.port,
    conn_database: target.database,
    conn_user: target.user,
    server_version: source.server_version,
    created_at: nowIso(now),
    updated_at: nowIso(now),
    deleted_at: null,
    restored_from_backup_id: backup.id,
    restore_job_id: null,
  };
  const job = newJob({
    organizationId: database.organization_id,
    kind: 'restore',
    backupId: backup.id,
    branchId: branch.id,
    params: { create: true, overwrite: false, ...(restorePoint !== null ? { restore_point: restorePoint } : {}) },
    actorId: principal.token.id,
    now,
  });
  branch.restore_job_id = job.id;
  await ctx.db.transaction().execute(async (trx) => {
    await trx.insertInto('branches').values(branch).execute();
    await trx.insertInto('jobs').values(job).execute();
    const floor = nowIso(addInterval(now, 1, 'day'));
    if (backup.expires_at === null || backup.expires_at < floor) {
      await trx.updateTable('backups').set({ expires_at: floor, updated_at: nowIso(now) }).where('id', '=', backup.id).execute();
    }
  });
  ctx.nudge();
  return { branch, job };
}
