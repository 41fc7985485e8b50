/**
 * Scratch databases: where a full verification (and a restore drill) restores a backup to
 * prove it, on the source branch's server. The name says what it is (`sbx_scratch_<job
 * id>`), the job records it before the database is created and clears it once dropped,
 * so a worker that dies (kill -9) cannot leave one behind: recovery, on start and on
 * lease take-over, drops every scratch database still recorded by a job that no longer
 * runs. The scratch folders and temporary servers of point-in-time restores are swept at
 * the same moments.
 */
import type { AppContext } from '../context.js';
import { nowIso } from '../catalog/ids.js';
import { engineFor, parseConnectionUrl } from '../engines/index.js';
import { sweepPitrScratch } from '../archive/postgres/server.js';

/** The scratch database of job `jobId`: recognisable, and a safe name on both engines. */
export function scratchDatabaseName(jobId: string): string {
  return `sbx_scratch_${jobId}`;
}

/** Record, before creating it, that job `jobId` is about to create `name`. */
export async function recordScratch(ctx: AppContext, jobId: string, name: string): Promise<void> {
  await ctx.db.updateTable('jobs').set({ scratch_database: name, updated_at: nowIso(ctx.clock()) }).where('id', '=', jobId).execute();
}

/** The scratch database of job `jobId` is gone. */
export async function clearScratch(ctx: AppContext, jobId: string): Promise<void> {
  await ctx.db.updateTable('jobs').set({ scratch_database: null }).where('id', '=', jobId).execute();
}

/** A scratch database that could not be dropped is tried again after this long, not on every tick. */
const RETRY_MS = 60_000;
const lastTry = new WeakMap<AppContext, Map<string, number>>();

/**
 * Drop the scratch databases recorded by jobs that are no longer pending or running (a
 * worker died while it verified). Returns how many were dropped. Never throws: a server
 * that cannot be reached now is tried again later.
 */
export async function dropLeftoverScratch(ctx: AppContext): Promise<number> {
  // Point-in-time restores leave a scratch folder and a temporary server instead (archive/postgres/server.ts).
  await sweepPitrScratch(ctx).catch((e) => ctx.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not look for leftover point-in-time restore folders'));
  const rows = await ctx.db
    .selectFrom('jobs')
    .innerJoin('backups', 'backups.id', 'jobs.backup_id')
    .innerJoin('branches', 'branches.id', 'backups.branch_id')
    .select(['jobs.id as job_id', 'jobs.scratch_database as scratch', 'backups.engine as engine', 'branches.connection_url_enc as url'])
    .where('jobs.scratch_database', 'is not', null)
    .where('jobs.state', 'not in', ['pending', 'running'])
    .execute();
  if (rows.length === 0) return 0;
  let tries = lastTry.get(ctx);
  if (!tries) lastTry.set(ctx, (tries = new Map()));
  let dropped = 0;
  for (const r of rows) {
    const at = tries.get(r.job_id);
    if (at !== undefined && Date.now() - at < RETRY_MS) continue;
    tries.set(r.job_id, Date.now());
    if (r.url === null) {
      ctx.log.error({ job: r.job_id, database: r.scratch }, 'a scratch database is left on a server whose branch has no connection URL any more; drop it by hand');
      continue;
    }
    try {
      await engineFor(r.engine).dropDatabase(parseConnectionUrl(ctx.secrets.open(r.url)).info, r.scratch!);
      await clearScratch(ctx, r.job_id);
      tries.delete(r.job_id);
      dropped++;
      ctx.log.warn({ job: r.job_id, database: r.scratch }, 'dropped the scratch database of an interrupted verification');
    } catch (e) {
      ctx.log.warn({ job: r.job_id, database: r.scratch, err: e instanceof Error ? e.message : String(e) }, 'could not drop a leftover scratch database; will try again');
    }
  }
  return dropped;
}
