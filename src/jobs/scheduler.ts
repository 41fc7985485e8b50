/**
 * The scheduler: turns backup policies into backups, exactly one per (policy, branch,
 * slot), enqueues the restore drills policies ask for (drills.ts), and runs the retention
 * sweeper. Safe with several workers on one catalog: a
 * worker claims a slot by moving the policy's `last_ran_at` forward in the same
 * transaction that records the slot's backups, and a unique index on (policy, branch,
 * slot) refuses a second backup for a slot whatever the timing.
 */
import type { AppContext } from '../context.js';
import { nowIso } from '../catalog/ids.js';
import { createBackup } from '../catalog/backups.js';
import { restoreInProgress } from '../catalog/jobs.js';
import { policyBranches, scheduleOf } from '../catalog/policies.js';
import { dueSlot, nextSlotAfter } from './schedule.js';
import { sweepExpired, type SweepResult } from './retention.js';
import { runDrills, type DrillResult } from './drills.js';
import { schedulerLag, schedulerLastPass } from '../metrics.js';

export interface ScheduleResult {
  /** Backups queued, and those recorded `ignored` because their branch was busy. */
  queued: string[];
  ignored: string[];
}

export async function runDuePolicies(ctx: AppContext): Promise<ScheduleResult> {
  const now = ctx.clock();
  const result: ScheduleResult = { queued: [], ignored: [] };
  // The latest this pass enqueued a slot (0 when none was due): how far behind the scheduler runs.
  let lag = 0;
  const policies = await ctx.db.selectFrom('backup_policies').selectAll().where('deleted_at', 'is', null).execute();
  for (const p of policies) {
    const schedule = scheduleOf(p);
    const slot = dueSlot(schedule, new Date(p.last_ran_at ?? p.created_at), now);
    if (!slot) continue;
    const slotIso = slot.toISOString();
    await ctx.db.transaction().execute(async (trx) => {
      const claimed = await trx
        .updateTable('backup_policies')
        .set({ last_ran_at: slotIso, next_run_at: nextSlotAfter(schedule, slot).toISOString(), updated_at: nowIso(now) })
        .where('id', '=', p.id)
        .where((eb) => eb.or([eb('last_ran_at', 'is', null), eb('last_ran_at', '<', slotIso)]))
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 0) return; // another worker took this slot
      lag = Math.max(lag, (ctx.clock().getTime() - slot.getTime()) / 1000);
      const covered = await policyBranches(trx, p);
      if (!covered) return;
      const { database, branches } = covered;
      for (const branch of branches) {
        const busy = await trx.selectFrom('backups').select('id').where('branch_id', '=', branch.id).where('state', 'in', ['pending', 'running']).limit(1).executeTakeFirst();
        const restoring = await restoreInProgress(trx, branch);
        const stamp = slotIso.slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
        const b = await createBackup(trx, {
          database,
          branch,
          name: `${p.name}-${stamp}`,
          retentionValue: p.retention_value,
          retentionUnit: p.retention_unit,
          emergency: false,
          actor: null,
          policyId: p.id,
          required: p.required === 1,
          compression: 'zstd',
          now,
          scheduleSlot: slotIso,
          ignoredBecause: busy
            ? `ignored: branch "${branch.name}" already had a backup in progress (${busy.id}) when the ${slotIso} slot came`
            : restoring
              ? `ignored: branch "${branch.name}" was still being restored when the ${slotIso} slot came`
              : undefined,
        });
        if (b) (b.state === 'ignored' ? result.ignored : result.queued).push(b.id);
      }
    });
  }
  if (result.queued.length) ctx.nudge();
  schedulerLag.set(lag);
  return result;
}

export class Scheduler {
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;

  constructor(
    private readonly ctx: AppContext,
    readonly intervalMs = 30_000,
  ) {}

  /** One pass: queue due backups and restore drills, then sweep expired backups. */
  async tick(): Promise<ScheduleResult & SweepResult & DrillResult> {
    const scheduled = await runDuePolicies(this.ctx);
    const drilled = await runDrills(this.ctx);
    const swept = await sweepExpired(this.ctx);
    schedulerLastPass.set(Date.now() / 1000);
    return { ...scheduled, ...drilled, ...swept };
  }

  start(): void {
    const run = () => {
      if (this.#running) return;
      this.#running = this.tick()
        .catch((e) => this.ctx.log.error({ err: e }, 'scheduler pass failed'))
        .finally(() => (this.#running = null));
    };
    this.#timer = setInterval(run, this.intervalMs);
    this.#timer.unref();
    run();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}

