/**
 * Restore drills: full verifications the scheduler enqueues by itself, as a backup
 * policy asks (our extension of the PlanetScale policy object):
 *
 * - `verify_every: N`: once N successful backups of the policy have been taken on a
 *   branch since its last drill (or ever), the newest of them is fully verified;
 * - `verification_frequency_value` + `_unit` (e.g. 1 week): at least one full
 *   verification of each branch's newest successful backup per period. Periods are a
 *   fixed grid counted from the Unix epoch (weeks from Sunday 1970-01-04, months from
 *   January 1970), so every worker computes the same periods; a full verification of the
 *   branch already made in the period (a drill or one asked for) counts.
 *
 * Each drill is a `verify` job with `restore: true`, its policy and a unique `drill_key`
 * (a unique index), so several workers ticking at once enqueue it once. A drill that
 * fails is recorded as an `events` row (kind `verification.failed`) for the notification
 * channels, exactly once per job (the event's id derives from the job's).
 *
 * A drill of an archived branch (continuous archiving on) carries `restore_point: 'latest'`:
 * it restores the branch to its latest archived time from the drilled backup on and compares
 * the copy with the source where the source did not change while the drill ran
 * (archive/drill.ts says why that is the honest comparison).
 */
import type { AppContext } from '../context.js';
import type { BackupPolicy, Branch } from '../catalog/schema.js';
import { newJob } from '../catalog/jobs.js';
import { nowIso } from '../catalog/ids.js';
import { policyBranches } from '../catalog/policies.js';
import { isArchived } from '../archive/archivers.js';

export type DrillUnit = 'hour' | 'day' | 'week' | 'month';
type DrillPolicy = Pick<BackupPolicy, 'id' | 'organization_id' | 'database_id' | 'target' | 'verify_every' | 'verification_frequency_value' | 'verification_frequency_unit'>;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** Sunday 1970-01-04, where week 0 starts (as the backup schedule counts weeks). */
const FIRST_SUNDAY = Date.UTC(1970, 0, 4);

/** The index of the period `at` falls in, on the grid of `value` `unit`s. */
export function periodIndex(at: Date, value: number, unit: DrillUnit): number {
  const t = at.getTime();
  switch (unit) {
    case 'hour':
      return Math.floor(t / HOUR / value);
    case 'day':
      return Math.floor(t / DAY / value);
    case 'week':
      return Math.floor((t - FIRST_SUNDAY) / WEEK / value);
    case 'month':
      return Math.floor(((at.getUTCFullYear() - 1970) * 12 + at.getUTCMonth()) / value);
  }
}

/** When period `index` of the grid of `value` `unit`s starts. */
export function periodStart(index: number, value: number, unit: DrillUnit): Date {
  switch (unit) {
    case 'hour':
      return new Date(index * value * HOUR);
    case 'day':
      return new Date(index * value * DAY);
    case 'week':
      return new Date(FIRST_SUNDAY + index * value * WEEK);
    case 'month': {
      const m = index * value;
      return new Date(Date.UTC(1970 + Math.floor(m / 12), m % 12, 1));
    }
  }
}

export interface DrillResult {
  /** Drill jobs queued by this pass. */
  drills: string[];
  /** Failed drills recorded as events by this pass. */
  alerts: string[];
}

/** One pass: enqueue the drills that are due, and record failed drills as events. */
export async function runDrills(ctx: AppContext): Promise<DrillResult> {
  const result: DrillResult = { drills: [], alerts: [] };
  const policies = await ctx.db
    .selectFrom('backup_policies')
    .select(['id', 'organization_id', 'database_id', 'target', 'verify_every', 'verification_frequency_value', 'verification_frequency_unit'])
    .where('deleted_at', 'is', null)
    .where((eb) => eb.or([eb('verify_every', 'is not', null), eb('verification_frequency_value', 'is not', null)]))
    .execute();
  for (const p of policies) {
    const covered = await policyBranches(ctx.db, p);
    if (!covered) continue;
    for (const branch of covered.branches) {
      const every = p.verify_every !== null ? await drillEvery(ctx, p, branch) : null;
      if (every) result.drills.push(every);
      const periodic = !every && p.verification_frequency_value !== null && p.verification_frequency_unit !== null ? await drillPeriod(ctx, p, branch) : null;
      if (periodic) result.drills.push(periodic);
    }
  }
  result.alerts = await recordFailedDrills(ctx);
  if (result.drills.length) ctx.nudge();
  return result;
}

/** Insert a drill job unless its key is taken; its id, or null when another pass had it. */
async function enqueue(ctx: AppContext, p: DrillPolicy, branch: Branch, backupId: string, rule: 'every' | 'period', key: string): Promise<string | null> {
  const pointInTime = await isArchived(ctx, branch.id);
  const job = newJob({
    organizationId: p.organization_id,
    kind: 'verify',
    backupId,
    params: { restore: true, ...(pointInTime ? { restore_point: 'latest' } : {}), drill: { policy_id: p.id, rule } },
    actorId: null,
    now: ctx.clock(),
    policyId: p.id,
    drillKey: key,
  });
  const inserted = await ctx.db
    .insertInto('jobs')
    .values(job)
    .onConflict((oc) => oc.column('drill_key').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) return null;
  ctx.log.info({ job: job.id, backup: backupId, policy: p.id, rule, point_in_time: pointInTime }, 'restore drill queued');
  return job.id;
}

/** verify_every: the newest backup, once N successful ones of the policy followed the last drill. */
async function drillEvery(ctx: AppContext, p: DrillPolicy, branch: Branch): Promise<string | null> {
  const last = await ctx.db
    .selectFrom('jobs')
    .innerJoin('backups', 'backups.id', 'jobs.backup_id')
    .select(['backups.created_at as backup_created_at'])
    .where('jobs.policy_id', '=', p.id)
    .where('jobs.kind', '=', 'verify')
    .where('backups.branch_id', '=', branch.id)
    .where('jobs.drill_key', 'like', 'every:%')
    .orderBy('backups.created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  let q = ctx.db
    .selectFrom('backups')
    .select(['id', 'created_at'])
    .where('branch_id', '=', branch.id)
    .where('backup_policy_id', '=', p.id)
    .where('state', '=', 'success')
    .where('deleted_at', 'is', null);
  if (last) q = q.where('created_at', '>', last.backup_created_at);
  const since = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(p.verify_every!).execute();
  if (since.length < p.verify_every!) return null;
  return enqueue(ctx, p, branch, since[0].id, 'every', `every:${p.id}:${since[0].id}`);
}

/** verification_frequency: the branch's newest backup, unless it had a full verification in this period. */
async function drillPeriod(ctx: AppContext, p: DrillPolicy, branch: Branch): Promise<string | null> {
  const value = p.verification_frequency_value!;
  const unit = p.verification_frequency_unit as DrillUnit;
  const now = ctx.clock();
  const index = periodIndex(now, value, unit);
  const since = nowIso(periodStart(index, value, unit));
  const newest = await ctx.db
    .selectFrom('backups')
    .select('id')
    .where('branch_id', '=', branch.id)
    .where('state', '=', 'success')
    .where('deleted_at', 'is', null)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!newest) return null;
  // A full verification of this branch already asked for in this period counts (a failed or
  // canceled one too: the drill's point is a regular proof, and a failure is already an alert).
  const recent = await ctx.db
    .selectFrom('jobs')
    .innerJoin('backups', 'backups.id', 'jobs.backup_id')
    .select(['jobs.id', 'jobs.params'])
    .where('jobs.kind', '=', 'verify')
    .where('backups.branch_id', '=', branch.id)
    .where('jobs.created_at', '>=', since)
    .execute();
  if (recent.some((j) => (JSON.parse(j.params) as { restore?: boolean }).restore === true)) return null;
  return enqueue(ctx, p, branch, newest.id, 'period', `period:${p.id}:${branch.id}:${unit}:${value}:${index}`);
}

/** Every drill that failed and has no event yet gets one (kind verification.failed). */
async function recordFailedDrills(ctx: AppContext): Promise<string[]> {
  const failed = await ctx.db
    .selectFrom('jobs')
    .innerJoin('backups', 'backups.id', 'jobs.backup_id')
    .leftJoin('events', 'events.job_id', 'jobs.id')
    .select(['jobs.id as job_id', 'jobs.organization_id', 'jobs.error', 'jobs.backup_id', 'backups.database_id', 'backups.branch_id', 'backups.name as backup_name'])
    .where('jobs.policy_id', 'is not', null)
    .where('jobs.kind', '=', 'verify')
    .where('jobs.state', '=', 'failed')
    .where('events.id', 'is', null)
    .execute();
  const recorded: string[] = [];
  for (const f of failed) {
    const id = `drill-failed-${f.job_id}`;
    const inserted = await ctx.db
      .insertInto('events')
      .values({
        id,
        organization_id: f.organization_id,
        kind: 'verification.failed',
        severity: 'error',
        database_id: f.database_id,
        branch_id: f.branch_id,
        backup_id: f.backup_id,
        job_id: f.job_id,
        message: `restore drill of backup "${f.backup_name}" failed: ${f.error ?? 'no reason recorded'}`,
        created_at: nowIso(ctx.clock()),
        delivered_at: null,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted) {
      recorded.push(id);
      ctx.log.error({ job: f.job_id, backup: f.backup_id }, 'a restore drill failed');
    }
  }
  return recorded;
}
