/**
 * Delivery: every pass sweeps new events (events.ts), fans each one out to the enabled
 * webhooks and channels that asked for it (one delivery row per event and target), and
 * sends the deliveries that are due.
 *
 * Any number of processes may run this on one catalog: a delivery is claimed with a lease
 * in one statement (FOR UPDATE SKIP LOCKED on PostgreSQL), so only one process sends it at
 * a time; a process killed mid-send lets its lease lapse and another sends it again (at
 * least once; receivers drop duplicates by the event id). Attempts are counted when
 * claimed, so even a delivery that crashes its sender gives up in the end.
 *
 * A failed attempt is retried after 10 s, 1 min, 5 min, 30 min and 2 h; after the sixth
 * the delivery is given up. A target whose deliveries are given up several times in a row
 * is disabled, with `disabled_reason` saying why; enabling it again clears that.
 */
import os from 'node:os';
import type { AppContext } from '../context.js';
import type { NotificationDelivery } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { notificationDeliveries } from '../metrics.js';
import { payloadFor, sweepEvents } from './events.js';
import { eventsOf, loadTarget, notificationOf, recordAttempt, type Target } from './targets.js';
import type { Notification, SendResult } from './channels/channel.js';

export interface NotificationOptions {
  /** Pause between passes of start()'s timer. */
  intervalMs?: number;
  /** Deadline of one HTTP attempt. */
  timeoutMs?: number;
  /** Waits before the 2nd, 3rd... attempt; attempts = length + 1. */
  retryDelaysMs?: number[];
  /** Deliveries given up in a row that disable a target. */
  disableAfter?: number;
  /** How often the (heavier) overdue check runs. */
  overdueEveryMs?: number;
  /** How long a claimed delivery is ours before another process may take it. */
  leaseMs?: number;
}

const DEFAULTS: Required<NotificationOptions> = {
  intervalMs: 5000,
  timeoutMs: 2000,
  retryDelaysMs: [10_000, 60_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000],
  disableAfter: 3,
  overdueEveryMs: 60_000,
  leaseMs: 60_000,
};

/** Deliveries claimed (and sent concurrently) at a time. */
const BATCH = 20;
/** Events fanned out per pass. */
const FANOUT_BATCH = 200;

export interface Sent {
  delivery: string;
  event: string;
  target: string;
  result: SendResult;
  /** The delivery's state after this attempt. */
  state: 'pending' | 'success' | 'failed';
}

export interface TickResult {
  /** Events recorded by this pass's sweep. */
  events: string[];
  /** Deliveries written by the fan-out. */
  queued: number;
  sent: Sent[];
}

export class NotificationService {
  readonly owner = `${os.hostname()}:${process.pid}:${newId(6)}`;
  readonly opts: Required<NotificationOptions>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;
  #lastOverdue = -Infinity;

  constructor(
    private readonly ctx: AppContext,
    opts: NotificationOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** One pass: sweep events, fan them out, send what is due. */
  async tick(): Promise<TickResult> {
    const now = this.ctx.clock().getTime();
    const overdue = now - this.#lastOverdue >= this.opts.overdueEveryMs || now < this.#lastOverdue;
    if (overdue) this.#lastOverdue = now;
    const events = await sweepEvents(this.ctx, { overdue });
    const queued = await this.fanOut();
    const sent: Sent[] = [];
    // A few batches per pass: a backlog drains without one pass holding on for ever.
    for (let i = 0; i < 5; i++) {
      const batch = await this.#claim();
      sent.push(...(await Promise.all(batch.map((d) => this.#deliver(d)))));
      if (batch.length < BATCH) break;
    }
    return { events, queued, sent };
  }

  start(): void {
    const run = () => {
      if (this.#running) return;
      this.#running = this.tick()
        .catch((e) => this.ctx.log.error({ err: e }, 'notification pass failed'))
        .finally(() => (this.#running = null));
    };
    this.#timer = setInterval(run, this.opts.intervalMs);
    this.#timer.unref();
    run();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /**
   * Write a delivery for every enabled target that wants each new event, then mark the
   * event taken (delivered_at). A crash in between only repeats inserts that the unique
   * (event, target) index turns into no-ops.
   */
  async fanOut(): Promise<number> {
    const { db } = this.ctx;
    const events = await db.selectFrom('events').selectAll().where('delivered_at', 'is', null).orderBy('created_at').orderBy('id').limit(FANOUT_BATCH).execute();
    if (events.length === 0) return 0;
    const orgs = [...new Set(events.map((e) => e.organization_id))];
    const webhooks = await db.selectFrom('webhooks').selectAll().where('organization_id', 'in', orgs).where('enabled', '=', 1).execute();
    const channels = await db.selectFrom('notification_channels').selectAll().where('organization_id', 'in', orgs).where('enabled', '=', 1).execute();
    const targets = [...webhooks.map((w) => ({ kind: 'webhook' as const, row: w })), ...channels.map((c) => ({ kind: 'channel' as const, row: c }))];
    let queued = 0;
    for (const e of events) {
      const now = nowIso(this.ctx.clock());
      const wanted = targets.filter((t) => t.row.organization_id === e.organization_id && eventsOf(t.row).includes(e.kind) && (t.row.database_id === null || t.row.database_id === e.database_id));
      if (wanted.length && e.payload === null) {
        // Recorded without a payload (a restore drill): the resource as it is now is the best there is.
        const payload = JSON.stringify(await payloadFor(this.ctx, e));
        await db.updateTable('events').set({ payload }).where('id', '=', e.id).where('payload', 'is', null).execute();
      }
      for (const t of wanted) {
        const res = await db
          .insertInto('notification_deliveries')
          .values({ id: newId(), organization_id: e.organization_id, event_id: e.id, target_type: t.kind, target_id: t.row.id, state: 'pending', attempts: 0, next_attempt_at: now, created_at: now, updated_at: now })
          .onConflict((oc) => oc.columns(['event_id', 'target_id']).doNothing())
          .executeTakeFirst();
        queued += Number(res.numInsertedOrUpdatedRows ?? 0);
      }
      await db.updateTable('events').set({ delivered_at: now }).where('id', '=', e.id).where('delivered_at', 'is', null).execute();
    }
    return queued;
  }

  /**
   * Claim due deliveries in one statement. On PostgreSQL the inner select skips rows
   * another process is claiming right now (FOR UPDATE SKIP LOCKED) instead of waiting
   * for them; SQLite has a single writer, so the update is atomic there as it is.
   */
  async #claim(): Promise<NotificationDelivery[]> {
    const { db, catalog } = this.ctx;
    const now = this.ctx.clock();
    const at = nowIso(now);
    return db
      .updateTable('notification_deliveries')
      .set((eb) => ({ lease_owner: this.owner, lease_expires_at: nowIso(new Date(now.getTime() + this.opts.leaseMs)), attempts: eb('attempts', '+', 1), updated_at: at }))
      .where('id', 'in', (eb) => {
        let sub = eb
          .selectFrom('notification_deliveries')
          .select('id')
          .where('state', '=', 'pending')
          .where('next_attempt_at', '<=', at)
          .where((w) => w.or([w('lease_expires_at', 'is', null), w('lease_expires_at', '<', at)]))
          .orderBy('next_attempt_at')
          .limit(BATCH);
        if (catalog.dialect === 'postgres') sub = sub.forUpdate().skipLocked();
        return sub;
      })
      .where('state', '=', 'pending')
      .where((w) => w.or([w('lease_expires_at', 'is', null), w('lease_expires_at', '<', at)]))
      .returningAll()
      .execute();
  }

  async #deliver(d: NotificationDelivery): Promise<Sent> {
    const { db, log } = this.ctx;
    const settle = async (state: Sent['state'], result: SendResult, next: Date | null): Promise<Sent> => {
      await db
        .updateTable('notification_deliveries')
        .set({ state, status_code: result.status_code, error: result.error, duration_ms: result.duration_ms, next_attempt_at: next && nowIso(next), lease_owner: null, lease_expires_at: null, updated_at: nowIso(this.ctx.clock()) })
        .where('id', '=', d.id)
        .where('lease_owner', '=', this.owner)
        .execute();
      return { delivery: d.id, event: d.event_id, target: d.target_id, result, state };
    };
    const notSent = (error: string): SendResult => ({ success: false, status_code: null, error, duration_ms: 0 });
    try {
      const event = await db.selectFrom('events').selectAll().where('id', '=', d.event_id).executeTakeFirst();
      const target = await loadTarget(this.ctx, d.target_type, d.target_id);
      if (!event || !target) return await settle('failed', notSent(`not sent: the ${d.target_type} or the event no longer exists`), null);
      if (target.row.enabled !== 1) return await settle('failed', notSent(`not sent: the ${target.type === 'webhook' ? 'webhook' : 'channel'} was disabled`), null);
      const org = await db.selectFrom('organizations').select('name').where('id', '=', event.organization_id).executeTakeFirst();
      const data = event.payload !== null ? (JSON.parse(event.payload) as Record<string, unknown>) : { message: event.message };
      const n = notificationOf(event, org?.name ?? event.organization_id, d.id, data);
      const now = this.ctx.clock();
      const result = await target.send(n, { timeoutMs: this.opts.timeoutMs, now });
      notificationDeliveries.inc({ type: target.type, outcome: result.success ? 'success' : 'failure' });
      await recordAttempt(this.ctx, target, result, this.ctx.clock());
      if (result.success) {
        await db.updateTable(target.table).set({ consecutive_failures: 0 }).where('id', '=', target.row.id).execute();
        return await settle('success', result, null);
      }
      const delay = this.opts.retryDelaysMs[d.attempts - 1];
      if (delay !== undefined) {
        log.warn({ delivery: d.id, target: target.row.id, attempt: d.attempts, error: result.error }, 'notification not delivered; will retry');
        return await settle('pending', result, new Date(this.ctx.clock().getTime() + delay));
      }
      log.error({ delivery: d.id, target: target.row.id, attempts: d.attempts, error: result.error }, 'notification not delivered; giving up');
      const sent = await settle('failed', result, null);
      await this.#countGiveUp(target, result, d.attempts);
      return sent;
    } catch (e) {
      // Our own fault (the catalog, a secret that no longer opens): retried like a failed send.
      log.error({ err: e, delivery: d.id }, 'notification delivery crashed');
      const result = notSent('internal error (see the server log)');
      const delay = this.opts.retryDelaysMs[d.attempts - 1];
      return settle(delay !== undefined ? 'pending' : 'failed', result, delay !== undefined ? new Date(this.ctx.clock().getTime() + delay) : null).catch(() => ({ delivery: d.id, event: d.event_id, target: d.target_id, result, state: 'pending' as const }));
    }
  }

  /** A delivery was given up: one more in a row for its target, which is disabled at the limit. */
  async #countGiveUp(target: Target, result: SendResult, attempts: number): Promise<void> {
    const { db } = this.ctx;
    const row = await db
      .updateTable(target.table)
      .set((eb) => ({ consecutive_failures: eb('consecutive_failures', '+', 1) }))
      .where('id', '=', target.row.id)
      .returning(['consecutive_failures', 'enabled'])
      .executeTakeFirst();
    if (!row || row.enabled !== 1 || row.consecutive_failures < this.opts.disableAfter) return;
    const now = nowIso(this.ctx.clock());
    const reason =
      `disabled at ${now}: ${row.consecutive_failures} deliveries in a row failed all ${attempts} attempts ` +
      `(last: ${result.error ?? 'failed'}). Fix the endpoint, send a test, then enable it again (PATCH "enabled": true)`;
    await db.updateTable(target.table).set({ enabled: 0, disabled_reason: reason, updated_at: now }).where('id', '=', target.row.id).where('enabled', '=', 1).execute();
    this.ctx.log.error({ target: target.row.id, type: target.type }, 'notification target disabled: it kept failing');
  }
}

/**
 * Send a test message to a webhook or channel now and say how it went (the "send test"
 * button). Not an event: it is not retried and counts toward no disabling, but it is the
 * target's last attempt as far as the API shows it.
 */
export async function sendTest(ctx: AppContext, target: Target, organization: string, timeoutMs = DEFAULTS.timeoutMs) {
  const now = ctx.clock();
  const at = nowIso(now);
  const id = `test-${newId()}`;
  const message = `This is a test notification from Strongbox for the ${target.type === 'webhook' ? 'webhook' : `${target.type} channel`} of organization "${organization}". If you can read this, it works.`;
  const n: Notification = { id, delivery_id: id, kind: 'test', severity: 'info', created_at: at, organization, message, title: 'Test notification', data: { message, test: true } };
  const result = await target.send(n, { timeoutMs, now });
  notificationDeliveries.inc({ type: target.type, outcome: result.success ? 'success' : 'failure' });
  await recordAttempt(ctx, target, result, ctx.clock());
  return {
    id,
    event: { id, kind: 'test', message, created_at: at },
    state: result.success ? ('success' as const) : ('failed' as const),
    attempt: 1,
    status_code: result.status_code,
    success: result.success,
    error: result.error,
    duration_ms: result.duration_ms,
    created_at: at,
    next_attempt_at: null,
  };
}
