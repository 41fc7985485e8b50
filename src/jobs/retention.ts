/**
 * The retention sweeper: deletes backups whose `expires_at` has passed, through the same
 * path as DELETE in the API. It never touches a protected backup, a pending or running
 * one, one being restored or verified, or the newest successful backup of a branch (the
 * safety floor: a broken schedule, where every new backup fails, must not let expiry
 * erase the last good copy).
 *
 * It also removes what unfinished writes left in storage (partial files, unfinished S3
 * multipart uploads, which the bucket keeps and bills for ever) when the writer died
 * without anyone recording it, or its clean-up failed: see sweepStalePartials().
 */
import path from 'node:path/posix';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { nowIso } from '../catalog/ids.js';
import { openDestination } from '../destinations.js';
import { deleteBackupArtifacts } from './artifacts.js';
import { sweepArchive } from '../archive/retention.js';

export interface SweepResult {
  deleted: string[];
  /** Expired backups kept as the last good copy of their branch. */
  keptAsLastGood: string[];
  /** Leftovers of unfinished writes removed from storage (empty between two partial sweeps). */
  partialsRemoved: RemovedPartial[];
  /** Archived WAL segments / binlog files no kept backup needs any more, removed. */
  archiveRemoved: string[];
}

export interface RemovedPartial {
  destination: string;
  key: string;
}

/**
 * An unfinished write that no ended backup accounts for is a leftover once this old: a live
 * writer sends a part (or writes to its partial file) far more often than that, and a
 * backup or repair still running keeps its own folder out of the sweep whatever its age.
 */
export const STALE_PARTIAL_MS = 24 * 3600_000;
/** Listing every unfinished upload of every destination costs requests: once an hour is enough. */
const PARTIAL_SWEEP_EVERY_MS = 3600_000;
const lastPartialSweep = new WeakMap<AppContext, number>();

/**
 * Remove unfinished writes from every destination that can list them
 * (capabilities.listPartials): those of backups that have ended at once, any other older
 * than `maxAgeMs`; never those in the folders of backups still pending or running, or that
 * a job is repairing. A destination that cannot be reached is logged and tried again at
 * the next sweep.
 */
export async function sweepStalePartials(ctx: AppContext, opts: { maxAgeMs?: number } = {}): Promise<RemovedPartial[]> {
  const { db, log } = ctx;
  // Storage stamps its own, real times on partials: compare with the real clock, not the
  // catalog's (which tests move around).
  const cutoff = Date.now() - (opts.maxAgeMs ?? STALE_PARTIAL_MS);
  const removed: RemovedPartial[] = [];
  for (const dest of await db.selectFrom('storage_destinations').selectAll().orderBy('id').execute()) {
    try {
      const provider = openDestination(ctx, dest);
      if (!provider.capabilities.listPartials) continue;
      const partials = [];
      for await (const p of provider.listPartials('')) partials.push(p);
      if (partials.length === 0) continue;
      // Read after the listing: every writer listed had its backup's (or repair's) row
      // before it began, so a writer still at work shows as busy here.
      const rows = await db
        .selectFrom('artifacts as a')
        .innerJoin('backups as b', 'b.id', 'a.backup_id')
        .select((eb) => [
          'a.path',
          eb
            .or([
              eb('b.state', 'in', ['pending', 'running']),
              eb.exists(eb.selectFrom('jobs as j').select('j.id').whereRef('j.backup_id', '=', 'b.id').where('j.state', 'in', ['pending', 'running'])),
            ])
            .as('busy'),
        ])
        .where('a.destination_id', '=', dest.id)
        .execute();
      // One folder per backup: its folder says whose a partial is.
      const busyFolders = new Set(rows.filter((r) => Boolean(r.busy)).map((r) => path.dirname(r.path)));
      const settledFolders = new Set(rows.filter((r) => !r.busy).map((r) => path.dirname(r.path)));
      const stale = new Set<string>();
      for (const p of partials) {
        const folder = path.dirname(p.key);
        if (busyFolders.has(folder)) continue;
        // A backup that has ended writes nothing more: its leftovers go at once. Anything
        // else (a probe, a writer Strongbox has no record of) only once it is old.
        if (settledFolders.has(folder) || p.startedAt.getTime() < cutoff) stale.add(p.key);
      }
      for (const key of stale) {
        await provider.removePartials(key);
        removed.push({ destination: dest.name, key });
      }
    } catch (e) {
      log.warn({ err: e, destination: dest.name }, 'could not sweep the unfinished writes of a destination');
    }
  }
  if (removed.length) log.info({ removed }, 'retention: removed what unfinished writes left in storage');
  return removed;
}

export async function sweepExpired(ctx: AppContext): Promise<SweepResult> {
  const { db, log } = ctx;
  const now = nowIso(ctx.clock());
  const result: SweepResult = { deleted: [], keptAsLastGood: [], partialsRemoved: [], archiveRemoved: [] };
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
  // After the backups: what they no longer need of the archive goes with them.
  try {
    result.archiveRemoved = await sweepArchive(ctx);
  } catch (e) {
    log.warn({ err: e }, 'could not sweep the archive');
  }
  // At the first pass of a process (its start), then hourly.
  const last = lastPartialSweep.get(ctx);
  if (last === undefined || Date.now() - last >= PARTIAL_SWEEP_EVERY_MS) {
    lastPartialSweep.set(ctx, Date.now());
    result.partialsRemoved = await sweepStalePartials(ctx);
  }
  return result;
}
