/**
 * The retention sweeper: deletes backups whose `expires_at` has passed, through the same
 * path as DELETE in the API. It never touches a protected backup, a pending or running
 * one, one being restored or verified, or the newest successful backup of a branch (the
 * safety floor: a broken schedule, where every new backup fails, must not let expiry
 * erase the last good copy).
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { nowIso } from '../catalog/ids.js';
import { deleteBackupArtifacts } from './artifacts.js';

export interface SweepResult {
  deleted: string[];
  /** Expired backups kept as the last good copy of their branch. */
  keptAsLastGood: string[];
}

export async function sweepExpired(ctx: AppContext): Promise<SweepResult> {
  const { db, log } = ctx;
  const now = nowIso(ctx.clock());
  const result: SweepResult = { deleted: [], keptAsLastGood: [] };
  const expired = await db
    .selectFrom('backups as b')
    .selectAll('b')
    .where('b.deleted_at', 'is', null)
    .where('b.expires_at', '<', now)
    .where('b.protected', '=', 0)
    .where('b.state', 'not in', ['pending', 'running'])
    // Being restored or verified: keep it until that is done.
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('jobs as j').select('j.id').whereRef('j.backup_id', '=', 'b.id').where('j.state', 'in', ['pending', 'running']))),
    )
    .orderBy('b.created_at')
    .execute();
  for (const b of expired) {
    if (b.state === 'success') {
      const newer = await db
        .selectFrom('backups')
        .select('id')
        .where('branch_id', '=', b.branch_id)
        .where('state', '=', 'success')
        .where('deleted_at', 'is', null)
        .where((eb) => eb.or([eb('created_at', '>', b.created_at), eb.and([eb('created_at', '=', b.created_at), eb('id', '>', b.id)])]))
        .limit(1)
        .executeTakeFirst();
      if (!newer) {
        result.keptAsLastGood.push(b.id);
        continue;
      }
    }
    const { failed } = await deleteBackupArtifacts(ctx, b);
    if (failed.length) log.warn({ backup: b.id, failed }, 'expired backup deleted, but some artifacts could not be removed yet');
    result.deleted.push(b.id);
  }
  // Deleted backups whose artifacts could not all be removed last time: try again.
  const leftovers = await db
    .selectFrom('backups as b')
    .selectAll('b')
    .where('b.deleted_at', 'is not', null)
    .where(sql<boolean>`exists (select 1 from artifacts a where a.backup_id = b.id and a.state = 'success')`)
    .execute();
  for (const b of leftovers) await deleteBackupArtifacts(ctx, b);
  if (result.deleted.length) log.info({ count: result.deleted.length }, 'retention: deleted expired backups');
  return result;
}
