/**
 * Runs the receivers of archived branches (receiver.ts), in `serve` and in every `worker`.
 *
 * A receiver runs for as long as its branch is archived, so it is claimed like a job but
 * never finishes: the process that runs it holds a lease on the branch's `archivers` row
 * and renews it on every pass. Claiming is one statement that only takes rows whose lease
 * is free or lapsed (FOR UPDATE SKIP LOCKED on PostgreSQL), so exactly one process runs a
 * branch's receiver at a time, cluster-wide; when that process dies (kill -9), its lease
 * lapses and the next pass of another process takes the branch over. A process that fails
 * to renew (the catalog was unreachable, or the branch was switched off) stops its receiver.
 *
 * A receiver that fails is recorded (state failed, the error cleaned) and started again
 * after a growing delay, by the same process, which keeps its lease meanwhile.
 *
 * Switching archiving off leaves the PostgreSQL replication slot behind until a pass here
 * drops it: a forgotten slot would keep WAL on the server for ever.
 */
import os from 'node:os';
import type { AppContext } from '../context.js';
import type { Archiver } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { parseConnectionUrl, type ConnectionInfo } from '../engines/index.js';
import { openClient } from '../engines/postgres/index.js';
import { cleanErrorText } from '../error-text.js';
import { receiverFor } from './receiver.js';

export interface ArchiveManagerOptions {
  /** Pause between passes (claim, renew, clean up). Default: a third of the lease, at most 2 s. */
  intervalMs?: number;
  /** How long a claim lasts without renewal. Default: STRONGBOX_LEASE_SECONDS. */
  leaseMs?: number;
  /** Waits before the 2nd, 3rd... start after failures; the last repeats. */
  retryDelaysMs?: number[];
  /** A receiver that has run this long without failing is `streaming` (and its failure count starts over). */
  healthyAfterMs?: number;
}

/** Branches claimed per pass: a process starting up does not take every branch of a large catalog at once. */
const CLAIM_BATCH = 10;

interface Run {
  controller: AbortController;
  done: Promise<void>;
}

export class ArchiveManager {
  readonly owner = `${os.hostname()}:${process.pid}:${newId(6)}`;
  readonly opts: Required<ArchiveManagerOptions>;
  readonly #runs = new Map<string, Run>();
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly ctx: AppContext,
    opts: ArchiveManagerOptions = {},
  ) {
    const leaseMs = opts.leaseMs ?? ctx.config.leaseSeconds * 1000;
    this.opts = {
      leaseMs,
      intervalMs: opts.intervalMs ?? Math.max(200, Math.min(2000, leaseMs / 3)),
      retryDelaysMs: opts.retryDelaysMs ?? [2_000, 10_000, 30_000, 60_000, 300_000],
      healthyAfterMs: opts.healthyAfterMs ?? 3_000,
    };
  }

  /** The branches whose receivers this process runs now. */
  get running(): string[] {
    return [...this.#runs.keys()];
  }

  start(): void {
    this.#stopped = false;
    const pass = () => {
      if (this.#ticking) return;
      this.#ticking = this.tick()
        .catch((e) => this.ctx.log.error({ err: e }, 'archive manager pass failed'))
        .finally(() => (this.#ticking = null));
    };
    this.#timer = setInterval(pass, this.opts.intervalMs);
    this.#timer.unref();
    pass();
  }

  /** Stop every receiver (their tools end, a segment being received stays for next time) and free the leases for another process. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#ticking;
    const ids = [...this.#runs.keys()];
    for (const r of this.#runs.values()) r.controller.abort(new Error('the process is stopping'));
    await Promise.all([...this.#runs.values()].map((r) => r.done));
    if (ids.length) {
      await this.ctx.db
        .updateTable('archivers')
        .set({ worker_id: null, lease_expires_at: null, updated_at: nowIso(this.ctx.clock()) })
        .where('branch_id', 'in', ids)
        .where('worker_id', '=', this.owner)
        .execute()
        .catch((e) => this.ctx.log.warn({ err: e }, 'could not release the archive leases'));
    }
  }

  /** One pass: renew what this process runs (stopping what it lost), claim what nobody runs, drop the slots of switched-off branches. */
  async tick(): Promise<void> {
    await this.#renew();
    if (this.#stopped) return;
    for (const a of await this.#claim()) this.#launch(a);
    await this.#dropSlots();
  }

  #leaseUntil(): string {
    return nowIso(new Date(this.ctx.clock().getTime() + this.opts.leaseMs));
  }

  async #renew(): Promise<void> {
    const ids = [...this.#runs.keys()];
    if (ids.length === 0) return;
    const kept = await this.ctx.db
      .updateTable('archivers')
      .set({ lease_expires_at: this.#leaseUntil() })
      .where('branch_id', 'in', ids)
      .where('worker_id', '=', this.owner)
      .where('enabled', '=', 1)
      .returning('branch_id')
      .execute();
    const still = new Set(kept.map((r) => r.branch_id));
    for (const id of ids) {
      if (still.has(id)) continue;
      // Switched off, or another process holds it now (ours lapsed): stop at once.
      this.ctx.log.info({ branch: id }, 'archive receiver stopped: archiving was switched off or the lease was lost');
      this.#runs.get(id)?.controller.abort(new Error('archiving was switched off or the lease was lost'));
    }
  }

  /**
   * Claim archived branches whose lease is free or lapsed, in one statement: on PostgreSQL
   * the inner select skips rows another process is claiming right now (FOR UPDATE SKIP
   * LOCKED) instead of waiting for them, and the outer condition is checked again on the
   * row, so two processes never both get one; SQLite has a single writer.
   */
  async #claim(): Promise<Archiver[]> {
    const { db, catalog } = this.ctx;
    const now = nowIso(this.ctx.clock());
    const mine = [...this.#runs.keys()];
    const claimed = await db
      .updateTable('archivers')
      .set({ worker_id: this.owner, lease_expires_at: this.#leaseUntil(), state: 'starting', updated_at: now })
      .where('branch_id', 'in', (eb) => {
        let sub = eb
          .selectFrom('archivers')
          .select('branch_id')
          .where('enabled', '=', 1)
          .where((w) => w.or([w('lease_expires_at', 'is', null), w('lease_expires_at', '<', now)]))
          .orderBy('branch_id')
          .limit(CLAIM_BATCH);
        if (catalog.dialect === 'postgres') sub = sub.forUpdate().skipLocked();
        return sub;
      })
      .where('enabled', '=', 1)
      .where((w) => w.or([w('lease_expires_at', 'is', null), w('lease_expires_at', '<', now)]))
      .returningAll()
      .execute();
    // A run of ours still winding down after its lease lapsed is not started twice.
    return claimed.filter((a) => !mine.includes(a.branch_id));
  }

  #launch(archiver: Archiver): void {
    const controller = new AbortController();
    const done = this.#loop(archiver.branch_id, controller.signal)
      .catch((e) => this.ctx.log.error({ err: e, branch: archiver.branch_id }, 'archive receiver loop failed'))
      .finally(() => this.#runs.delete(archiver.branch_id));
    this.#runs.set(archiver.branch_id, { controller, done });
    this.ctx.log.info({ branch: archiver.branch_id, owner: this.owner }, 'archive receiver claimed');
  }

  /** Record the receiver's state, as long as this process still holds the branch. */
  async #record(branchId: string, set: { state: Archiver['state']; error: string | null }): Promise<void> {
    await this.ctx.db
      .updateTable('archivers')
      .set({ ...set, error: cleanErrorText(set.error), updated_at: nowIso(this.ctx.clock()) })
      .where('branch_id', '=', branchId)
      .where('worker_id', '=', this.owner)
      .execute()
      .catch((e) => this.ctx.log.warn({ err: e, branch: branchId }, 'could not record the archive state'));
  }

  async #loop(branchId: string, signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const startedAt = Date.now();
      let healthy: NodeJS.Timeout | null = null;
      try {
        const archiver = await this.ctx.db.selectFrom('archivers').selectAll().where('branch_id', '=', branchId).executeTakeFirstOrThrow();
        const { kind, conn } = await this.#connection(branchId);
        healthy = setTimeout(() => void this.#record(branchId, { state: 'streaming', error: null }), this.opts.healthyAfterMs);
        await receiverFor(kind).run(this.ctx, archiver, conn, signal);
        if (signal.aborted) break;
        throw new Error('the receiver stopped by itself');
      } catch (e) {
        if (signal.aborted) break;
        const message = e instanceof Error ? e.message : String(e);
        this.ctx.log.warn({ branch: branchId, err: message }, 'archive receiver failed; it will start again');
        await this.#record(branchId, { state: 'failed', error: message });
      } finally {
        if (healthy) clearTimeout(healthy);
      }
      if (Date.now() - startedAt >= Math.max(60_000, this.opts.healthyAfterMs)) failures = 0;
      const delay = this.opts.retryDelaysMs[Math.min(failures, this.opts.retryDelaysMs.length - 1)];
      failures++;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  async #connection(branchId: string): Promise<{ kind: 'postgresql' | 'mysql'; conn: ConnectionInfo }> {
    const branch = await this.ctx.db.selectFrom('branches').selectAll().where('id', '=', branchId).executeTakeFirst();
    if (!branch || branch.deleted_at !== null) throw new Error('the branch no longer exists; switch archiving off');
    if (branch.connection_url_enc === null) throw new Error('the branch has no connection URL; set it again (PATCH the branch)');
    const database = await this.ctx.db.selectFrom('databases').select('kind').where('id', '=', branch.database_id).executeTakeFirstOrThrow();
    return { kind: database.kind, conn: parseConnectionUrl(this.ctx.secrets.open(branch.connection_url_enc)).info };
  }

  /**
   * Switched-off PostgreSQL branches that still have a slot: drop it (under a short lease,
   * so one process does it). A slot a receiver is using is left for the next pass.
   */
  async #dropSlots(): Promise<void> {
    const now = nowIso(this.ctx.clock());
    const rows = await this.ctx.db
      .updateTable('archivers')
      .set({ worker_id: this.owner, lease_expires_at: this.#leaseUntil() })
      .where('enabled', '=', 0)
      .where('kind', '=', 'wal')
      .where('slot_name', 'is not', null)
      .where((w) => w.or([w('lease_expires_at', 'is', null), w('lease_expires_at', '<', now)]))
      .returningAll()
      .execute();
    for (const a of rows) {
      let error: string | null = null;
      try {
        const { conn } = await this.#connection(a.branch_id);
        const client = await openClient(conn, conn.database);
        try {
          await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [a.slot_name]);
          const left = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [a.slot_name]);
          if (left.rowCount) error = `replication slot ${a.slot_name} is still in use; it will be dropped later`;
        } finally {
          await client.end().catch(() => undefined);
        }
      } catch (e) {
        error = `could not drop replication slot ${a.slot_name}: ${e instanceof Error ? e.message : String(e)}`;
      }
      await this.ctx.db
        .updateTable('archivers')
        .set({ ...(error === null ? { slot_name: null, error: null } : { error: cleanErrorText(error) }), worker_id: null, lease_expires_at: error === null ? null : this.#leaseUntil(), state: 'stopped', updated_at: nowIso(this.ctx.clock()) })
        .where('branch_id', '=', a.branch_id)
        .where('worker_id', '=', this.owner)
        .where('enabled', '=', 0)
        .execute();
      if (error) this.ctx.log.warn({ branch: a.branch_id, err: error }, 'replication slot of a branch no longer archived not dropped yet');
    }
  }
}
