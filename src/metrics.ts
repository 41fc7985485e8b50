/**
 * The Prometheus registry (prom-client). Modules record into the instruments below as
 * things happen in this process; what must agree across every process of a scale-out
 * (last success per branch, bytes stored, queued jobs...) is read from the catalog when
 * /metrics is scraped (see collectCatalogMetrics).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AppContext } from './context.js';
import type { JobKind } from './catalog/schema.js';
import { branchFreshness } from './jobs/overdue.js';
import { VERSION } from './version.js';

export const registry = new Registry();

// The Node.js process itself (CPU, memory, event loop lag, open handles): process_* and nodejs_*.
collectDefaultMetrics({ register: registry });

/** Always 1; its label says which version this process runs (a mixed-version scale-out shows). */
export const buildInfo = new Gauge({
  name: 'strongbox_build_info',
  help: 'Always 1: the Strongbox version this process runs',
  labelNames: ['version'] as const,
  registers: [registry],
});
buildInfo.set({ version: VERSION }, 1);

/** Seconds a backup took from start to commit, by engine and outcome. */
export const backupDuration = new Histogram({
  name: 'strongbox_backup_duration_seconds',
  help: 'Time from the start of a backup job to its end, by engine and outcome',
  labelNames: ['engine', 'outcome'] as const,
  buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400],
  registers: [registry],
});

/** Bytes of one stored copy (after compression and encryption) of a successful backup. */
export const backupSize = new Histogram({
  name: 'strongbox_backup_size_bytes',
  help: 'Stored size of successful backups (compressed and encrypted), by engine',
  labelNames: ['engine'] as const,
  buckets: [1 << 10, 1 << 16, 1 << 20, 16 << 20, 128 << 20, 1 << 30, 8 * 2 ** 30, 64 * 2 ** 30, 512 * 2 ** 30],
  registers: [registry],
});

/** Failed jobs, by job kind and reason class (see failureClass). */
export const jobFailures = new Counter({
  name: 'strongbox_job_failures_total',
  help: 'Jobs that failed in this process, by kind (backup, restore, verify, ...) and reason class',
  labelNames: ['kind', 'reason'] as const,
  registers: [registry],
});

/** Jobs this process took over from a worker whose lease lapsed. */
export const leaseTakeovers = new Counter({
  name: 'strongbox_lease_takeovers_total',
  help: 'Jobs whose lease lapsed (their worker died or stalled) and that this process recovered',
  registers: [registry],
});

/** How late the scheduler's last pass ran a due slot. */
export const schedulerLag = new Gauge({
  name: 'strongbox_scheduler_lag_seconds',
  help: 'Delay between a policy slot coming due and the scheduler enqueuing it (last pass)',
  registers: [registry],
});

/** When this process's scheduler last finished a pass: a stuck scheduler stops moving it. */
export const schedulerLastPass = new Gauge({
  name: 'strongbox_scheduler_last_pass_timestamp_seconds',
  help: 'Unix time at which the scheduler of this process last finished a pass',
  registers: [registry],
});

/** Verifications (on demand and drills) finished in this process. */
export const verificationResults = new Counter({
  name: 'strongbox_verifications_total',
  help: 'Verifications finished in this process, by kind (quick, full, drill) and outcome',
  labelNames: ['kind', 'outcome'] as const,
  registers: [registry],
});

/** Notification deliveries attempted by this process. */
export const notificationDeliveries = new Counter({
  name: 'strongbox_notification_deliveries_total',
  help: 'Notification delivery attempts, by channel type (webhook, slack, ...) and outcome (success, failure)',
  labelNames: ['type', 'outcome'] as const,
  registers: [registry],
});

/** API answers served again from memory because the catalog had not changed (api/response-cache.ts). */
export const responseCacheLookups = new Counter({
  name: 'strongbox_api_response_cache_total',
  help: 'Cacheable API reads (backups lists and gets), by result: hit (answered from memory, the catalog unchanged) or miss',
  labelNames: ['result'] as const,
  registers: [registry],
});

/** Webhooks and the channel types (notify/): the `type` label of the notification metrics. */
const NOTIFICATION_TYPES = ['webhook', 'slack', 'discord', 'telegram', 'ntfy', 'email'] as const;

/** Every class failureClass() answers. */
export const FAILURE_CLASSES = ['connection', 'auth', 'permission', 'disk_full', 'timeout', 'storage', 'dump', 'restore', 'interrupted', 'canceled', 'other'] as const;

/**
 * The class of a failure reason, a small fixed set fit for a label (the reason text itself
 * is unbounded): connection, auth, permission, disk_full, timeout, storage, dump, restore,
 * interrupted, canceled, other.
 */
export function failureClass(reason: string | null | undefined): string {
  const r = (reason ?? '').toLowerCase();
  if (/interrupted|lease|worker (died|stopped)/.test(r)) return 'interrupted';
  if (/cancel/.test(r)) return 'canceled';
  if (/password authentication|access denied for|authenticat/.test(r)) return 'auth';
  if (/permission denied|not permitted|eacces|accessdenied|forbidden|\b403\b|not writable|read-only file system|erofs/.test(r)) return 'permission';
  if (/no space|enospc|disk full|quota/.test(r)) return 'disk_full';
  if (/timed? ?out|etimedout|produced no data for/.test(r)) return 'timeout';
  // A server that cannot be reached, or a database that is not there (libpq says both as "connection to server ... failed").
  if (/econnrefused|connection refused|could not connect|can't connect|enotfound|getaddrinfo|no route to host|ehostunreach|could not translate host name|connection to server .* failed|database "[^"]*" does not exist|unknown database/.test(r)) return 'connection';
  if (/destination|s3|bucket|drive|upload|storage|copy in/.test(r)) return 'storage';
  if (/pg_dump|mysqldump|mariadb-dump|dump/.test(r)) return 'dump';
  if (/restore|pg_restore/.test(r)) return 'restore';
  return 'other';
}

// Counters start at 0 for every label set they can have: Prometheus' increase() sees no
// increase in a series' first sample, so a first failure would otherwise never alert.
for (const kind of ['backup', 'restore', 'verify', 'repair']) for (const reason of FAILURE_CLASSES) jobFailures.inc({ kind, reason }, 0);
for (const kind of ['quick', 'full', 'drill']) for (const outcome of ['passed', 'failed']) verificationResults.inc({ kind, outcome }, 0);
for (const type of NOTIFICATION_TYPES) for (const outcome of ['success', 'failure']) notificationDeliveries.inc({ type, outcome }, 0);

/** What the job runner knows of a backup or job that ended in this process. */
export interface FinishedWork {
  kind: 'backup' | JobKind;
  /** A backup's engine. */
  engine?: string;
  /** A verify job's params (JSON): `restore` makes it full, `drill` a restore drill. */
  params?: string;
}

/** The verification kind a verify job's params describe. */
function verifyKind(params: string | undefined): 'quick' | 'full' | 'drill' {
  try {
    const p = JSON.parse(params ?? '{}') as { restore?: boolean; drill?: unknown };
    return p.drill ? 'drill' : p.restore ? 'full' : 'quick';
  } catch {
    return 'quick';
  }
}

/**
 * Record a backup or job that ended (the runner calls this at the one place every one of
 * them ends): duration and size of backups, failures by class, verification outcomes.
 */
export function recordFinished(work: FinishedWork, end: { state?: unknown; error?: unknown; size?: unknown }, seconds: number): void {
  const state = typeof end.state === 'string' ? end.state : 'failed';
  if (work.kind === 'backup') {
    const engine = work.engine ?? 'unknown';
    backupDuration.observe({ engine, outcome: state }, seconds);
    if (state === 'success' && typeof end.size === 'number') backupSize.observe({ engine }, end.size);
  }
  if (state === 'failed') jobFailures.inc({ kind: work.kind, reason: failureClass(typeof end.error === 'string' ? end.error : null) });
  if (work.kind === 'verify' && (state === 'success' || state === 'failed')) {
    verificationResults.inc({ kind: verifyKind(work.params), outcome: state === 'success' ? 'passed' : 'failed' });
  }
}

/** Which organizations a scrape may show: null for all of them (the separate listener, a superuser token). */
export interface MetricsScope {
  organizationIds: string[] | null;
}

const seconds = (iso: string | null | undefined): number | null => (iso ? Date.parse(iso) / 1000 : null);

/**
 * The metrics every process of a scale-out must agree on, read from the catalog at scrape
 * time into a registry of their own (so that a scrape shows only its scope's
 * organizations). Each family is one aggregate query, whatever the number of backups.
 */
export async function collectCatalogMetrics(ctx: AppContext, scope: MetricsScope): Promise<Registry> {
  const reg = new Registry();
  const all: Gauge<string>[] = [];
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => {
    const g = new Gauge<L>({ name, help, labelNames, registers: [reg] });
    all.push(g as unknown as Gauge<string>);
    return g;
  };
  const branchLabels = ['organization', 'database', 'branch'] as const;
  const lastSuccess = gauge('strongbox_last_successful_backup_timestamp_seconds', 'Completion time of the newest successful backup of each branch (branches without one have no series)', branchLabels);
  const lastFailure = gauge('strongbox_last_failed_backup_timestamp_seconds', 'Completion time of the newest failed backup of each branch (branches without one have no series)', branchLabels);
  const lastFailed = gauge('strongbox_last_backup_failed', '1 when the newest finished backup of the branch failed, else 0', branchLabels);
  const overdue = gauge('strongbox_branch_overdue', '1 when a branch covered by a backup policy has had no successful backup for more than twice the policy frequency, else 0', branchLabels);
  const frequency = gauge('strongbox_branch_backup_frequency_seconds', 'Frequency of the (most frequent) backup policy covering the branch', branchLabels);
  const lastVerification = gauge('strongbox_last_verification_timestamp_seconds', 'When a backup of the branch was last verified (quick, full or drill), whatever the outcome', branchLabels);
  const lastVerificationFailed = gauge('strongbox_last_verification_failed', '1 when the newest verification of a backup of the branch failed, else 0', branchLabels);
  const stored = gauge('strongbox_stored_bytes', 'Bytes of the stored copies (artifacts) of live backups, per storage destination', ['organization', 'destination'] as const);
  const storedArtifacts = gauge('strongbox_stored_artifacts', 'Stored copies (artifacts) of live backups, per storage destination', ['organization', 'destination'] as const);
  const destinationFailing = gauge(
    'strongbox_destination_last_write_failed',
    '1 when the newest write of a backup copy to the destination failed because of the destination (dump failures and interruptions do not count), else 0',
    ['organization', 'destination'] as const,
  );
  const jobs = gauge('strongbox_jobs', 'Backups and jobs queued (worker "") and running (per worker id), by kind', ['state', 'kind', 'worker'] as const);
  const backups = gauge('strongbox_backups', 'Backups not deleted, by organization and state', ['organization', 'state'] as const);
  const targetsFailing = gauge('strongbox_notification_targets_failing', 'Enabled webhooks and notification channels whose last delivery attempt failed, by type', ['organization', 'type'] as const);
  const targetsDisabled = gauge('strongbox_notification_targets_disabled', 'Webhooks and notification channels Strongbox turned off because they kept failing, by type', ['organization', 'type'] as const);
  const deliveriesPending = gauge('strongbox_notification_deliveries_pending', 'Notification deliveries waiting to be sent or retried', ['organization'] as const);
  const catalogUp = gauge('strongbox_catalog_up', '1 when the catalog answered the queries of this scrape, 0 when it failed (the other strongbox_* catalog metrics are then missing)', []);

  const orgs = scope.organizationIds;
  if (orgs !== null && orgs.length === 0) {
    catalogUp.set(1);
    return reg;
  }
  try {
    const db = ctx.db;
    // The newest success and failure of each branch: one index seek each per branch on
    // (organization_id, state, branch_id, completed_at), never a read of every backup.
    let branchQuery = db
      .selectFrom('branches as b')
      .innerJoin('databases as d', 'd.id', 'b.database_id')
      .innerJoin('organizations as o', 'o.id', 'b.organization_id')
      .select((eb) => {
        const newest = (state: 'success' | 'failed') =>
          eb
            .selectFrom('backups as k')
            .select((k) => k.fn.max('k.completed_at').as('at'))
            .whereRef('k.organization_id', '=', 'b.organization_id')
            .where('k.state', '=', state)
            .whereRef('k.branch_id', '=', 'b.id');
        return ['b.id as branch_id', 'b.name as branch', 'd.name as database', 'o.name as organization', newest('success').as('last_success'), newest('failed').as('last_failure')];
      })
      .where('b.deleted_at', 'is', null)
      .where('d.deleted_at', 'is', null);
    if (orgs) branchQuery = branchQuery.where('b.organization_id', 'in', orgs);
    const names = new Map<string, { organization: string; database: string; branch: string }>();
    for (const r of await branchQuery.execute()) {
      const labels = { organization: r.organization, database: r.database, branch: r.branch };
      names.set(r.branch_id, labels);
      const ok = seconds(r.last_success);
      const bad = seconds(r.last_failure);
      if (ok !== null) lastSuccess.set(labels, ok);
      if (bad !== null) lastFailure.set(labels, bad);
      if (ok !== null || bad !== null) lastFailed.set(labels, bad !== null && (ok === null || bad > ok) ? 1 : 0);
    }

    let verifications = db
      .selectFrom('backups')
      .select((eb) => ['branch_id', 'verification', eb.fn.max('verified_at').as('at')])
      .where('verification', 'is not', null)
      .groupBy(['branch_id', 'verification']);
    if (orgs) verifications = verifications.where('organization_id', 'in', orgs);
    const verified = new Map<string, { passed: number | null; failed: number | null }>();
    for (const r of await verifications.execute()) {
      const v = verified.get(r.branch_id) ?? { passed: null, failed: null };
      if (r.verification === 'passed') v.passed = seconds(r.at);
      if (r.verification === 'failed') v.failed = seconds(r.at);
      verified.set(r.branch_id, v);
    }
    for (const [branchId, { passed, failed }] of verified) {
      const labels = names.get(branchId);
      if (!labels) continue;
      lastVerification.set(labels, Math.max(passed ?? 0, failed ?? 0));
      lastVerificationFailed.set(labels, failed !== null && (passed === null || failed > passed) ? 1 : 0);
    }

    // THE overdue rule (jobs/overdue.ts), so the metric, the overview and the notifications agree.
    for (const f of await branchFreshness(ctx)) {
      const labels = names.get(f.branch_id);
      if (!labels) continue; // another organization's, or a branch being deleted
      overdue.set(labels, f.overdue ? 1 : 0);
      frequency.set(labels, f.frequency_seconds);
    }

    // Copies of deleted backups are all marked deleted, so only live backups' copies count:
    // read from the live backups (an index) rather than every copy ever written.
    let destinations = db.selectFrom('storage_destinations as s').innerJoin('organizations as o', 'o.id', 's.organization_id').select(['s.id', 's.name as destination', 'o.name as organization']);
    if (orgs) destinations = destinations.where('s.organization_id', 'in', orgs);
    let copies = db
      .selectFrom('backups as k')
      .innerJoin('artifacts as a', 'a.backup_id', 'k.id')
      .select((eb) => {
        const isStored = eb('a.state', '=', 'success');
        // A copy that failed because the dump failed or the process died says nothing about the destination.
        const destinationFailure = eb.and([eb('a.state', '=', 'failed'), eb.or([eb('a.error', 'is', null), eb.and([eb('a.error', '!=', 'interrupted'), eb('a.error', 'not like', 'not stored:%')])])]);
        return [
          'a.destination_id',
          eb.fn.sum<number | string | null>(eb.case().when(isStored).then(eb.ref('a.size')).else(eb.lit(0)).end()).as('bytes'),
          eb.fn.count<number | string>(eb.case().when(isStored).then(eb.lit(1)).end()).as('artifacts'),
          eb.fn.max(eb.case().when(isStored).then(eb.ref('a.created_at')).end()).as('last_ok'),
          eb.fn.max(eb.case().when(destinationFailure).then(eb.ref('a.created_at')).end()).as('last_failed'),
        ];
      })
      .where('k.deleted_at', 'is', null)
      .groupBy('a.destination_id');
    if (orgs) copies = copies.where('k.organization_id', 'in', orgs);
    const byDestination = new Map((await copies.execute()).map((r) => [r.destination_id, r]));
    for (const d of await destinations.execute()) {
      const labels = { organization: d.organization, destination: d.destination };
      const r = byDestination.get(d.id);
      stored.set(labels, Number(r?.bytes ?? 0));
      storedArtifacts.set(labels, Number(r?.artifacts ?? 0));
      destinationFailing.set(labels, r?.last_failed != null && (r.last_ok == null || r.last_failed > r.last_ok) ? 1 : 0);
    }

    // Queued and running work: the backups queue, then restores, verifications and repairs.
    for (const kind of ['backup', 'restore', 'verify', 'repair']) jobs.set({ state: 'queued', kind, worker: '' }, 0);
    let backupWork = db
      .selectFrom('backups')
      .select((eb) => ['state', 'lease_owner', eb.fn.countAll<number | string>().as('n')])
      .where('state', 'in', ['pending', 'running'])
      .where('deleted_at', 'is', null)
      .groupBy(['state', 'lease_owner']);
    if (orgs) backupWork = backupWork.where('organization_id', 'in', orgs);
    let jobWork = db
      .selectFrom('jobs')
      .select((eb) => ['kind', 'state', 'lease_owner', eb.fn.countAll<number | string>().as('n')])
      .where('state', 'in', ['pending', 'running'])
      .groupBy(['kind', 'state', 'lease_owner']);
    if (orgs) jobWork = jobWork.where('organization_id', 'in', orgs);
    const work = [...(await backupWork.execute()).map((r) => ({ ...r, kind: 'backup' })), ...(await jobWork.execute())];
    for (const r of work) {
      const running = r.state === 'running';
      jobs.inc({ state: running ? 'running' : 'queued', kind: r.kind, worker: running ? (r.lease_owner ?? '') : '' }, Number(r.n));
    }

    let backupStates = db
      .selectFrom('backups as k')
      .innerJoin('organizations as o', 'o.id', 'k.organization_id')
      .select((eb) => ['o.name as organization', 'k.state', eb.fn.countAll<number | string>().as('n')])
      .where('k.deleted_at', 'is', null)
      .groupBy(['o.name', 'k.state']);
    if (orgs) backupStates = backupStates.where('k.organization_id', 'in', orgs);
    for (const r of await backupStates.execute()) backups.set({ organization: r.organization, state: r.state }, Number(r.n));

    // Notifications: every type shows for every organization (0 when it has none), so an alert on them needs no absent().
    let orgNames = db.selectFrom('organizations').select(['id', 'name']);
    if (orgs) orgNames = orgNames.where('id', 'in', orgs);
    for (const o of await orgNames.execute()) {
      for (const type of NOTIFICATION_TYPES) {
        targetsFailing.set({ organization: o.name, type }, 0);
        targetsDisabled.set({ organization: o.name, type }, 0);
      }
      deliveriesPending.set({ organization: o.name }, 0);
    }
    // A failing target: enabled, and its last attempt failed. A disabled one: turned off by Strongbox (it says why).
    let webhooks = db
      .selectFrom('webhooks as t')
      .innerJoin('organizations as o', 'o.id', 't.organization_id')
      .select((eb) => [
        'o.name as organization',
        eb.fn.count<number | string>(eb.case().when(eb.and([eb('t.enabled', '=', 1), eb('t.last_sent_success', '=', 0)])).then(eb.lit(1)).end()).as('failing'),
        eb.fn.count<number | string>(eb.case().when(eb.and([eb('t.enabled', '=', 0), eb('t.disabled_reason', 'is not', null)])).then(eb.lit(1)).end()).as('disabled'),
      ])
      .groupBy('o.name');
    if (orgs) webhooks = webhooks.where('t.organization_id', 'in', orgs);
    let channels = db
      .selectFrom('notification_channels as t')
      .innerJoin('organizations as o', 'o.id', 't.organization_id')
      .select((eb) => [
        'o.name as organization',
        't.type',
        eb.fn.count<number | string>(eb.case().when(eb.and([eb('t.enabled', '=', 1), eb('t.last_sent_success', '=', 0)])).then(eb.lit(1)).end()).as('failing'),
        eb.fn.count<number | string>(eb.case().when(eb.and([eb('t.enabled', '=', 0), eb('t.disabled_reason', 'is not', null)])).then(eb.lit(1)).end()).as('disabled'),
      ])
      .groupBy(['o.name', 't.type']);
    if (orgs) channels = channels.where('t.organization_id', 'in', orgs);
    for (const r of [...(await webhooks.execute()).map((w) => ({ ...w, type: 'webhook' })), ...(await channels.execute())]) {
      targetsFailing.set({ organization: r.organization, type: r.type }, Number(r.failing));
      targetsDisabled.set({ organization: r.organization, type: r.type }, Number(r.disabled));
    }
    let pending = db
      .selectFrom('notification_deliveries as n')
      .innerJoin('organizations as o', 'o.id', 'n.organization_id')
      .select((eb) => ['o.name as organization', eb.fn.countAll<number | string>().as('n')])
      .where('n.state', '=', 'pending')
      .groupBy('o.name');
    if (orgs) pending = pending.where('n.organization_id', 'in', orgs);
    for (const r of await pending.execute()) deliveriesPending.set({ organization: r.organization }, Number(r.n));
    catalogUp.set(1);
  } catch (e) {
    ctx.log.error({ err: e }, 'metrics: could not read the catalog');
    for (const g of all) g.reset();
    catalogUp.set(0);
  }
  return reg;
}

/** The whole scrape in the Prometheus text format: this process's instruments, then the catalog's metrics. */
export async function metricsText(ctx: AppContext, scope: MetricsScope): Promise<string> {
  return Registry.merge([registry, await collectCatalogMetrics(ctx, scope)]).metrics();
}

/** The Content-Type of metricsText (Prometheus text format 0.0.4). */
export const METRICS_CONTENT_TYPE = registry.contentType;
