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
import type { AppContext } from '../context.js';
import type { Backup } from '../catalog/schema.js';
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

/**
 * Deleted backups that still have a stored copy (a removal failed). Every deleted backup is
 * looked at by a full pass, at a process's first sweep and then hourly, in slices of
 * LEFTOVER_SLICE so that it never holds the event loop for long (deleted backups are most of
 * a catalog that has run for years: 36 ms in one query at 10,000 of them on SQLite, every
 * minute). Between full passes, only the backups deleted since the previous pass (less a
 * margin for late commits and other processes' clocks) and the ones whose retry failed then:
 * a seek into (deleted_at, id) (0018) and a look-up of each one's copies.
 */
async function leftoverBackups(ctx: AppContext, state: LeftoverState, now: string): Promise<Backup[]> {
  const { db } = ctx;
  /** Which of these backups have a stored copy (a thousand bound values a statement at most). */
  const withCopies = async (ids: string[]) => {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += LEFTOVER_SLICE) {
      const rows = await db.selectFrom('artifacts').select('backup_id').distinct().where('backup_id', 'in', ids.slice(i, i + LEFTOVER_SLICE)).where('state', '=', 'success').execute();
      out.push(...rows.map((r) => r.backup_id));
    }
    return out;
  };
  const found = new Set<string>();
  // A clock moved back (tests do) cannot say what "since the previous pass" is.
  if (Date.now() - state.fullAt >= LEFTOVER_FULL_EVERY_MS || now < state.lastPass) {
    state.fullAt = Date.now();
    let after: { deletedAt: string; id: string } | null = null;
    for (;;) {
      let q = db.selectFrom('backups').select(['id', 'deleted_at']).where('deleted_at', 'is not', null);
      if (after) {
        const a = after;
        q = q.where(({ eb, refTuple, tuple }) => eb(refTuple('deleted_at', 'id'), '>', tuple(a.deletedAt, a.id)));
      }
      const slice = await q.orderBy('deleted_at').orderBy('id').limit(LEFTOVER_SLICE).execute();
      for (const id of await withCopies(slice.map((r) => r.id))) found.add(id);
      const last = slice[slice.length - 1];
      if (slice.length < LEFTOVER_SLICE || !last) break;
      after = { deletedAt: last.deleted_at!, id: last.id };
      await new Promise((r) => setImmediate(r));
    }
  } else {
    const since = nowIso(new Date(Date.parse(state.lastPass) - LEFTOVER_MARGIN_MS));
    const recent = await db.selectFrom('backups').select('id').where('deleted_at', '>=', since).execute();
    for (const id of await withCopies([...new Set([...recent.map((r) => r.id), ...state.retrying])])) found.add(id);
  }
  const ids = [...found];
  const rows: Backup[] = [];
  for (let i = 0; i < ids.length; i += LEFTOVER_SLICE) rows.push(...(await db.selectFrom('backups').selectAll().where('id', 'in', ids.slice(i, i + LEFTOVER_SLICE)).where('deleted_at', 'is not', null).execute()));
  return rows;
}

interface LeftoverState {
  /** Date.now() of the last full pass. */
  fullAt: number;
  /** The catalog clock at the previous pass. */
  lastPass: string;
  /** Deleted backups whose copies could not all be removed at the previous pass. */
  retrying: Set<string>;
}
const leftoverState = new WeakMap<AppContext, LeftoverState>();
const LEFTOVER_FULL_EVERY_MS = 3600_000;
/** Backups deleted this long before the previous pass are still looked at by the next one. */
const LEFTOVER_MARGIN_MS = 15 * 60_000;
const LEFTOVER_SLICE = 1000;

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
  const state = leftoverState.get(ctx) ?? { fullAt: -Infinity, lastPass: '', retrying: new Set<string>() };
  leftoverState.set(ctx, state);
  const retrying = new Set<string>();
  for (const b of await leftoverBackups(ctx, state, now)) {
    const { failed } = await deleteBackupArtifacts(ctx, b);
    if (failed.length) retrying.add(b.id);
  }
  state.retrying = retrying;
  state.lastPass = now;
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
