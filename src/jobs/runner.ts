/**
 * The job runner: claims pending backups from the catalog under a lease, runs them with a
 * concurrency limit, renews the lease while they run, and recovers work whose worker died.
 * Written so that several processes can share one PostgreSQL catalog.
 */
import os from 'node:os';
import type { AppContext } from '../context.js';
import type { Backup } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { JobStopped, runBackup } from './backup.js';

export class JobRunner {
  readonly workerId = `${os.hostname()}:${process.pid}:${newId(6)}`;
  readonly #ctx: AppContext;
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> | null = null;
  #again = false;
  #stopped = true;

  constructor(ctx: AppContext, readonly pollMs = 1000) {
    this.#ctx = ctx;
  }

  /** Recover abandoned work, then start claiming. */
  async start(): Promise<void> {
    await this.recoverInterrupted(this.#ctx.catalog.dialect === 'sqlite');
    this.#stopped = false;
    this.#ctx.nudge = () => this.nudge();
    this.#timer = setInterval(() => this.nudge(), this.pollMs);
    this.#timer.unref();
    this.nudge();
  }

  /** Stop claiming; running backups are stopped and recorded as interrupted. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    // A claim in flight must land (and be handed back) before we look at what is running.
    await this.#ticking;
    for (const { controller } of this.#running.values()) {
      controller.abort(new JobStopped('shutdown', 'interrupted: the Strongbox process was shut down while the backup ran'));
    }
    await Promise.allSettled([...this.#running.values()].map((r) => r.done));
  }

  /** Number of jobs this process is running now. */
  get active(): number {
    return this.#running.size;
  }

  /** Look for work now (a backup was just queued) instead of at the next poll. */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = this.#tick()
      .catch((e) => this.#ctx.log.error({ err: e }, 'job runner tick failed'))
      .finally(() => {
        this.#ticking = null;
        if (this.#again) {
          this.#again = false;
          this.nudge();
        }
      });
  }

  async #tick(): Promise<void> {
    await this.recoverInterrupted(false);
    while (!this.#stopped && this.#running.size < this.#ctx.config.maxConcurrentBackups) {
      const backup = await this.claim();
      if (!backup) return;
      if (this.#stopped) {
        // Stopped while claiming: hand it back untouched for the next start or another worker.
        await this.#ctx.db
          .updateTable('backups')
          .set({ state: 'pending', started_at: null, lease_owner: null, lease_expires_at: null })
          .where('id', '=', backup.id)
          .where('lease_owner', '=', this.workerId)
          .execute();
        return;
      }
      this.#launch(backup);
    }
  }

  /**
   * Claim the oldest pending backup, in one statement. On PostgreSQL the inner select
   * takes the row with FOR UPDATE SKIP LOCKED, so concurrent workers never claim the same
   * backup and never wait on each other; SQLite has one writer at a time, so the update
   * is atomic there without it.
   */
  async claim(): Promise<Backup | undefined> {
    const { db, catalog, clock, config } = this.#ctx;
    const now = clock();
    return db
      .updateTable('backups')
      .set((eb) => ({
        state: 'running',
        started_at: nowIso(now),
        updated_at: nowIso(now),
        lease_owner: this.workerId,
        lease_expires_at: nowIso(new Date(now.getTime() + config.leaseSeconds * 1000)),
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', (eb) => {
        let sub = eb.selectFrom('backups').select('id').where('state', '=', 'pending').where('deleted_at', 'is', null).orderBy('created_at').orderBy('id').limit(1);
        if (catalog.dialect === 'postgres') sub = sub.forUpdate().skipLocked();
        return sub;
      })
      .where('state', '=', 'pending')
      .returningAll()
      .executeTakeFirst();
  }

  #launch(backup: Backup): void {
    const { db, clock, config, log } = this.#ctx;
    const controller = new AbortController();
    // The heartbeat renews the lease and notices a cancel request made through the API,
    // possibly on another worker.
    const heartbeat = setInterval(
      () => {
        void (async () => {
          const now = clock();
          const res = await db
            .updateTable('backups')
            .set({ lease_expires_at: nowIso(new Date(now.getTime() + config.leaseSeconds * 1000)) })
            .where('id', '=', backup.id)
            .where('lease_owner', '=', this.workerId)
            .where('state', '=', 'running')
            .returning(['cancel_requested'])
            .executeTakeFirst();
          if (!res) controller.abort(new JobStopped('lease_lost', 'interrupted: this worker lost its lease on the backup'));
          else if (res.cancel_requested === 1) controller.abort(new JobStopped('canceled', 'canceled by request'));
        })().catch((e) => log.warn({ err: e, backup: backup.id }, 'lease renewal failed'));
      },
      Math.max(200, Math.min(2000, (config.leaseSeconds * 1000) / 3)),
    );
    const done = (async () => {
      log.info({ backup: backup.id }, 'backup started');
      try {
        const update = await runBackup(this.#ctx, backup, controller.signal);
        await db
          .updateTable('backups')
          .set({ ...update, updated_at: nowIso(clock()), lease_owner: null, lease_expires_at: null })
          .where('id', '=', backup.id)
          .where('lease_owner', '=', this.workerId)
          .execute();
        log.info({ backup: backup.id, state: update.state, error: update.error ?? undefined }, 'backup finished');
      } catch (e) {
        log.error({ err: e, backup: backup.id }, 'backup job crashed');
        await db
          .updateTable('backups')
          .set({ state: 'failed', error: 'internal error while running the backup (see the server log)', completed_at: nowIso(clock()), updated_at: nowIso(clock()), lease_owner: null, lease_expires_at: null })
          .where('id', '=', backup.id)
          .where('lease_owner', '=', this.workerId)
          .execute()
          .catch(() => {});
      } finally {
        clearInterval(heartbeat);
        this.#running.delete(backup.id);
        this.nudge();
      }
    })();
    this.#running.set(backup.id, { controller, done });
  }

  /**
   * Backups left `running` by a worker that died are failed ("interrupted") and their
   * partial artifacts removed. With `all`, every running backup is taken (SQLite: only
   * this process can have been running them); otherwise only those whose lease lapsed.
   */
  async recoverInterrupted(all: boolean): Promise<number> {
    const { db, clock, log } = this.#ctx;
    const now = nowIso(clock());
    let q = db.selectFrom('backups').selectAll().where('state', '=', 'running');
    if (!all) q = q.where('lease_expires_at', '<', now);
    const stale = (await q.execute()).filter((b) => !this.#running.has(b.id));
    for (const b of stale) {
      const res = await db
        .updateTable('backups')
        .set({ state: 'failed', error: 'interrupted: the worker running this backup stopped before it finished', completed_at: now, updated_at: now, lease_owner: null, lease_expires_at: null })
        .where('id', '=', b.id)
        .where('state', '=', 'running')
        .where('lease_owner', 'is', b.lease_owner)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) continue;
      const artifacts = await db.selectFrom('artifacts').selectAll().where('backup_id', '=', b.id).where('state', '=', 'pending').execute();
      for (const a of artifacts) {
        try {
          const { provider } = await openDestinationById(this.#ctx, a.destination_id);
          await provider.delete(a.path);
          await provider.removePartials(a.path);
        } catch (e) {
          log.warn({ err: e, artifact: a.id }, 'could not remove a partial artifact');
        }
        await db.updateTable('artifacts').set({ state: 'failed', error: 'interrupted', updated_at: now }).where('id', '=', a.id).execute();
      }
      log.warn({ backup: b.id }, 'marked an interrupted backup as failed');
    }
    return stale.length;
  }
}
