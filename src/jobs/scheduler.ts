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

/**
 * How long a pass may hold the event loop before it lets other work run. On SQLite every
 * query of a pass is synchronous (better-sqlite3), so a pass that enqueues 1,000 slots ran as
 * one block and froze every request for 90–150 ms (issue 14); yielding between policies once
 * this much time has passed keeps each request's wait about this long (bench/scheduler.ts).
 */
export const PASS_SLICE_MS = 5;

/** A function to await between units of work: it yields to the event loop once `sliceMs` have passed since it last did. */
export function timeSlicer(sliceMs = PASS_SLICE_MS): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < sliceMs) return;
    // setImmediate runs after the poll phase: requests that arrived meanwhile are read first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

export async function runDuePolicies(ctx: AppContext): Promise<ScheduleResult> {
  const now = ctx.clock();
  const result: ScheduleResult = { queued: [], ignored: [] };
  // The latest this pass enqueued a slot (0 when none was due): how far behind the scheduler runs.
  let lag = 0;
  const policies = await ctx.db.selectFrom('backup_policies').selectAll().where('deleted_at', 'is', null).execute();
  const slice = timeSlicer();
  for (const p of policies) {
    // Between policies, never inside one's transaction: a transaction holds the catalog's one
    // SQLite connection, and requests would only queue behind it.
    await slice();
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

