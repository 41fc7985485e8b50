/**
 * The Prometheus registry (prom-client). Modules record into the instruments below as
 * things happen in this process; what must agree across every process of a scale-out
 * (last success per branch, bytes stored, queued jobs...) is read from the catalog when
 * /metrics is scraped (see collectCatalogMetrics).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

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

/**
 * The class of a failure reason, a small fixed set fit for a label (the reason text itself
 * is unbounded): connection, auth, permission, disk_full, timeout, storage, dump, restore,
 * interrupted, canceled, other.
 */
export function failureClass(reason: string | null | undefined): string {
  const r = (reason ?? '').toLowerCase();
  if (/interrupted|lease|worker (died|stopped)/.test(r)) return 'interrupted';
  if (/cancel/.test(r)) return 'canceled';
  if (/password authentication|access denied|authenticat/.test(r)) return 'auth';
  if (/permission denied|not permitted|eacces|forbidden|403/.test(r)) return 'permission';
  if (/no space|enospc|disk full|quota/.test(r)) return 'disk_full';
  if (/timed? ?out|etimedout/.test(r)) return 'timeout';
  if (/econnrefused|connection refused|could not connect|can't connect|enotfound|host/.test(r)) return 'connection';
  if (/destination|s3|bucket|drive|upload|storage|copy in/.test(r)) return 'storage';
  if (/pg_dump|mysqldump|mariadb-dump|dump/.test(r)) return 'dump';
  if (/restore|pg_restore/.test(r)) return 'restore';
  return 'other';
}
