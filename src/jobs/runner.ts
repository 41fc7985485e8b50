/**
 * The job runner: claims pending work from the catalog under a lease, runs it with a
 * concurrency limit, renews the lease while it runs, and recovers work whose worker
 * died. Two queues share the machinery: backups (the `backups` table itself) and jobs
 * (restores and verifications, the `jobs` table). Written so that several processes can
 * share one PostgreSQL catalog.
 */
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { AppContext } from '../context.js';
import type { Artifact, Backup, Job } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { JobStopped, runBackup } from './backup.js';
import { runRestore, undoInterruptedRestore } from './restore.js';
import { runVerify } from './verify.js';
import { dropLeftoverScratch } from './scratch.js';
import { sweepLeftovers } from '../unnamed-file.js';
import { runRepair } from './repair.js';
import { manifestKey } from './artifacts.js';
import { copyKeys } from './parallel-parts.js';
import { cleanErrorText } from '../error-text.js';
import { jobFailures, leaseTakeovers, recordFinished, type FinishedWork } from '../metrics.js';
import { collectAfterJob } from '../gc.js';

type Queue = 'backups' | 'jobs';

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

export class JobRunner {
  readonly workerId = `${os.hostname()}:${process.pid}:${newId(6)}`;
  readonly #ctx: AppContext;
  readonly #running: Record<Queue, Map<string, Running>> = { backups: new Map(), jobs: new Map() };
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> | null = null;
  #again = false;
  #stopped = true;
  /** When #tick last looked for lapsed leases (Date.now()); 0: not yet. */
  #lastLeaseCheck = 0;

  constructor(ctx: AppContext, readonly pollMs = 1000) {
    this.#ctx = ctx;
  }

  /** Recover abandoned work, then start claiming. */
  async start(): Promise<void> {
    await this.recoverInterrupted(this.#ctx.catalog.dialect === 'sqlite');
    const swept = sweepLeftovers(path.join(this.#ctx.config.dataDir, 'tmp'));
    if (swept.length) this.#ctx.log.warn({ files: swept }, 'removed temporary files left by a process that was killed');
    this.#stopped = false;
    this.#ctx.nudge = () => this.nudge();
    this.#ctx.cancelLocal = (id) => this.cancelLocal(id);
    this.#timer = setInterval(() => this.nudge(), this.pollMs);
    this.#timer.unref();
    this.nudge();
  }

  /** Stop claiming; running work is stopped and recorded as interrupted. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    // A claim in flight must land (and be handed back) before we look at what is running.
    await this.#ticking;
    const all = [...this.#running.backups.values(), ...this.#running.jobs.values()];
    for (const { controller } of all) {
      controller.abort(new JobStopped('shutdown', 'interrupted: the Strongbox process was shut down while this ran'));
    }
    await Promise.allSettled(all.map((r) => r.done));
  }

  /** Number of backups and jobs this process is running now. */
  get active(): number {
    return this.#running.backups.size + this.#running.jobs.size;
  }

  /** Stop a backup this process runs, now, instead of at the next heartbeat. */
  cancelLocal(id: string): boolean {
    const r = this.#running.backups.get(id) ?? this.#running.jobs.get(id);
    if (!r) return false;
    r.controller.abort(new JobStopped('canceled', 'canceled by request'));
    return true;
  }

  /** Look for work now (something was just queued) instead of at the next poll. */
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
    // A lease lapses leaseSeconds after its last renewal: looking for lapsed ones every quarter
    // of that finds each within 1.25 leases (and a tick), and spares every other poll and nudge
    // (each API write nudges) the queries over running backups and jobs and the scratch look-up.
    const now = Date.now();
    if (now - this.#lastLeaseCheck >= (this.#ctx.config.leaseSeconds * 1000) / 4 || now < this.#lastLeaseCheck) {
      this.#lastLeaseCheck = now;
      await this.recoverInterrupted(false);
    }
    for (const queue of ['backups', 'jobs'] as const) {
      const limit = queue === 'backups' ? this.#ctx.config.maxConcurrentBackups : this.#ctx.config.maxConcurrentJobs;
      while (!this.#stopped && this.#running[queue].size < limit) {
        const item = queue === 'backups' ? await this.claim() : await this.claimJob();
        if (!item) break;
        if (this.#stopped) {
          // Stopped while claiming: hand it back untouched for the next start or another worker.
          await this.#db()
            .updateTable(queue)
            .set({ state: 'pending', started_at: null, lease_owner: null, lease_expires_at: null })
            .where('id', '=', item.id)
            .where('lease_owner', '=', this.workerId)
            .execute();
          return;
        }
        const work: FinishedWork = queue === 'backups' ? { kind: 'backup', engine: (item as Backup).engine } : { kind: (item as Job).kind, params: (item as Job).params };
        this.#launch(queue, item.id, work, (signal) => (queue === 'backups' ? runBackup(this.#ctx, item as Backup, signal) : this.#runJob(item as Job, signal)));
      }
    }
  }

  #runJob(job: Job, signal: AbortSignal) {
    switch (job.kind) {
      case 'restore':
        return runRestore(this.#ctx, job, signal);
      case 'verify':
        return runVerify(this.#ctx, job, signal);
      case 'repair':
        return runRepair(this.#ctx, job, signal);
    }
  }

  /** The catalog without table types, for the code both queues share. */
  #db(): Kysely<any> {
    return this.#ctx.db as unknown as Kysely<any>;
  }

  /**
   * Claim the oldest pending item of a queue, in one statement. On PostgreSQL the inner
   * select takes the row with FOR UPDATE SKIP LOCKED, so concurrent workers never claim
   * the same item and never wait on each other; SQLite has one writer at a time, so the
   * update is atomic there without it.
   */
  async #claimFrom(queue: Queue): Promise<any> {
    const { catalog, clock, config } = this.#ctx;
    const now = clock();
    return this.#db()
      .updateTable(queue)
      .set((eb: any) => ({
        state: 'running',
        started_at: nowIso(now),
        updated_at: nowIso(now),
        lease_owner: this.workerId,
        lease_expires_at: nowIso(new Date(now.getTime() + config.leaseSeconds * 1000)),
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', (eb: any) => {
        let sub = eb.selectFrom(queue).select('id').where('state', '=', 'pending');
        if (queue === 'backups') sub = sub.where('deleted_at', 'is', null);
        sub = sub.orderBy('created_at').orderBy('id').limit(1);
        if (catalog.dialect === 'postgres') sub = sub.forUpdate().skipLocked();
        return sub;
      })
      .where('state', '=', 'pending')
      .returningAll()
      .executeTakeFirst();
  }

  /** Claim the oldest pending backup. */
  claim(): Promise<Backup | undefined> {
    return this.#claimFrom('backups');
  }

  /** Claim the oldest pending restore or verification. */
  claimJob(): Promise<Job | undefined> {
    return this.#claimFrom('jobs');
  }

  #launch(queue: Queue, id: string, work: FinishedWork, run: (signal: AbortSignal) => Promise<Record<string, unknown>>): void {
    const { clock, config, log } = this.#ctx;
    const db = this.#db();
    const controller = new AbortController();
    const startedAt = performance.now();
    const elapsed = () => (performance.now() - startedAt) / 1000;
    // The heartbeat renews the lease and notices a cancel request made through the API,
    // possibly on another worker.
    const heartbeat = setInterval(
      () => {
        void (async () => {
          const now = clock();
          const res = await db
            .updateTable(queue)
            .set({ lease_expires_at: nowIso(new Date(now.getTime() + config.leaseSeconds * 1000)) })
            .where('id', '=', id)
            .where('lease_owner', '=', this.workerId)
            .where('state', '=', 'running')
            .returning(['cancel_requested'])
            .executeTakeFirst();
          if (!res) controller.abort(new JobStopped('lease_lost', 'interrupted: this worker lost its lease'));
          else if (res.cancel_requested === 1) controller.abort(new JobStopped('canceled', 'canceled by request'));
        })().catch((e) => log.warn({ err: e, id }, 'lease renewal failed'));
      },
      Math.max(200, Math.min(2000, (config.leaseSeconds * 1000) / 3)),
    );
    const done = (async () => {
      log.info({ queue, id }, 'started');
      try {
        const update = await run(controller.signal);
        // Every reason a backup or job ends with is stored through here: capped and cleaned once.
        if (typeof update.error === 'string') update.error = cleanErrorText(update.error);
        // A secret given for a job (an age identity) is kept only while the job runs.
        const cleared = queue === 'jobs' ? { secret_enc: null } : {};
        await db
          .updateTable(queue)
          .set({ ...update, ...cleared, updated_at: nowIso(clock()), lease_owner: null, lease_expires_at: null })
          .where('id', '=', id)
          .where('lease_owner', '=', this.workerId)
          .execute();
        log.info({ queue, id, state: update.state, error: update.error ?? undefined }, 'finished');
        recordFinished(work, update, elapsed());
      } catch (e) {
        log.error({ err: e, queue, id }, 'job crashed');
        recordFinished(work, { state: 'failed', error: 'internal error' }, elapsed());
        await db
          .updateTable(queue)
          .set({ state: 'failed', error: 'internal error (see the server log)', completed_at: nowIso(clock()), updated_at: nowIso(clock()), lease_owner: null, lease_expires_at: null, ...(queue === 'jobs' ? { secret_enc: null } : {}) })
          .where('id', '=', id)
          .where('lease_owner', '=', this.workerId)
          .execute()
          .catch(() => {});
      } finally {
        clearInterval(heartbeat);
        this.#running[queue].delete(id);
        this.nudge();
        collectAfterJob();
      }
    })();
    this.#running[queue].set(id, { controller, done });
  }

  /**
   * Work left `running` by a worker that died is failed ("interrupted") and cleaned up:
   * partial artifacts removed, a database a restore had created dropped. With `all`,
   * everything running is taken (SQLite: only this process can have been running it);
   * otherwise only what has an expired lease.
   */
  async recoverInterrupted(all: boolean): Promise<number> {
    const { db, clock, log } = this.#ctx;
    const now = nowIso(clock());
    const message = 'interrupted: the worker running this stopped before it finished';
    let recovered = 0;

    let bq = db.selectFrom('backups').selectAll().where('state', '=', 'running');
    if (!all) bq = bq.where('lease_expires_at', '<', now);
    for (const b of (await bq.execute()).filter((x) => !this.#running.backups.has(x.id))) {
      if (!(await this.#takeOver('backups', b.id, b.lease_owner, now, message))) continue;
      recovered++;
      leaseTakeovers.inc();
      jobFailures.inc({ kind: 'backup', reason: 'interrupted' });
      await this.#abandonCopies(await db.selectFrom('artifacts').selectAll().where('backup_id', '=', b.id).where('state', '=', 'pending').execute(), now);
      log.warn({ backup: b.id, owner: b.lease_owner }, 'marked an interrupted backup as failed');
    }
    // Copies left pending by a backup that has ended: the process that failed it (its own, or
    // the one that took it over above) was killed before it cleared them. Once the backup has
    // been over for a lease, nobody is still clearing them.
    const ended = nowIso(new Date(clock().getTime() - this.#ctx.config.leaseSeconds * 1000));
    // The pending copies first (a literal, not a parameter: only then can the planner use the
    // partial index artifacts_pending of migration 0020), then which of their backups ended.
    const pending = await db.selectFrom('artifacts').selectAll().where('state', '=', sql.lit('pending')).execute();
    if (pending.length > 0) {
      const over = await db
        .selectFrom('backups')
        .select('id')
        .where('id', 'in', [...new Set(pending.map((a) => a.backup_id))])
        .where('state', 'in', ['failed', 'canceled'])
        .where('updated_at', '<', ended)
        .execute();
      const ids = new Set(over.map((b) => b.id));
      const leftover = pending.filter((a) => ids.has(a.backup_id));
      if (leftover.length > 0) {
        await this.#abandonCopies(leftover, now);
        log.warn({ artifacts: leftover.map((a) => a.id) }, 'cleared the unfinished copies of backups that had ended');
      }
    }

    let jq = db.selectFrom('jobs').selectAll().where('state', '=', 'running');
    if (!all) jq = jq.where('lease_expires_at', '<', now);
    for (const j of (await jq.execute()).filter((x) => !this.#running.jobs.has(x.id))) {
      if (!(await this.#takeOver('jobs', j.id, j.lease_owner, now, message))) continue;
      recovered++;
      leaseTakeovers.inc();
      jobFailures.inc({ kind: j.kind, reason: 'interrupted' });
      if (j.kind === 'restore') {
        await undoInterruptedRestore(this.#ctx, j).catch((e) => log.error({ err: e, job: j.id }, 'could not drop the database of an interrupted restore'));
      }
      log.warn({ job: j.id, kind: j.kind, owner: j.lease_owner }, 'marked an interrupted job as failed');
    }
    // Scratch databases of verifications that no longer run (taken over just now, or whose
    // drop failed before) are dropped: a restore drill never leaves one behind.
    await dropLeftoverScratch(this.#ctx).catch((e) => log.error({ err: e }, 'could not look for leftover scratch databases'));
    return recovered;
  }

  /**
   * Remove what an unfinished copy may have left in storage (its parts or dump, partial
   * uploads, its manifest) and mark it failed ("interrupted"). Removal is best effort and
   * idempotent: two processes doing it at once do no harm.
   */
  async #abandonCopies(artifacts: Artifact[], now: string): Promise<void> {
    for (const a of artifacts) {
      try {
        const { provider } = await openDestinationById(this.#ctx, a.destination_id);
        // A parallel backup's copy: every planned part and its SHA256SUMS; else the one dump.
        for (const key of copyKeys(a)) {
          await provider.delete(key);
          await provider.removePartials(key);
        }
        // Killed while or after writing the manifest, before the copy was recorded: a
        // manifest without its dump would describe a backup that is not there.
        await provider.delete(manifestKey(a.path));
        await provider.removePartials(manifestKey(a.path));
      } catch (e) {
        this.#ctx.log.warn({ err: e, artifact: a.id }, 'could not remove a partial artifact');
      }
      await this.#ctx.db.updateTable('artifacts').set({ state: 'failed', error: 'interrupted', updated_at: now }).where('id', '=', a.id).where('state', '=', 'pending').execute();
    }
  }

  /** Fail an abandoned item, only if nobody else took it over in the meantime. */
  async #takeOver(queue: Queue, id: string, owner: string | null, now: string, error: string): Promise<boolean> {
    // `lease_owner IS $1` is SQLite only; PostgreSQL needs `=` for a value and IS NULL for null.
    const res = await this.#db()
      .updateTable(queue)
      .set({ state: 'failed', error, completed_at: now, updated_at: now, lease_owner: null, lease_expires_at: null, ...(queue === 'jobs' ? { secret_enc: null } : {}) })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', owner === null ? 'is' : '=', owner)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
}
