/**
 * The event sweep: turns what finished in the catalog into `events` rows, the outbox the
 * notifications deliver from (dispatch.ts).
 *
 * - backup.succeeded / backup.failed from backups that ended (canceled and ignored ones
 *   are not news), destination.failed from their copies that failed for the
 *   destination's own sake (not "the dump failed, so nothing was stored");
 * - restore.succeeded / restore.failed from restore jobs; verification.failed from
 *   verifications asked for through the API (restore drills record their own, drills.ts);
 * - backup.overdue from branchFreshness (jobs/overdue.ts): one per silence, so it fires
 *   once when a branch becomes overdue, and again only after a success and a new silence.
 *
 * Robust across processes and kill -9 without any coordination: an event's id derives from
 * what it is about (`backup-failed-<backup id>`, `backup-overdue-<branch>-<since>`), and
 * inserts skip ids that exist, so two processes sweeping at once, or one sweeping again
 * after a crash, record each event once. Cheap with 100k jobs: a pass reads only rows that
 * finished since the newest one the last pass saw (kept in catalog_settings, so a process
 * that was down for a week starts where the catalog left off, not where it did), minus a
 * margin for commits that land late and clocks of other machines that run behind.
 */
import type { AppContext } from '../context.js';
import type { Artifact, Backup, BackupPolicy, Branch, Database, Job, Organization } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { getSetting } from '../catalog/settings.js';
import { cleanErrorText } from '../error-text.js';
import { branchFreshness, type BranchFreshness } from '../jobs/overdue.js';
import { parseConnectionUrl } from '../engines/index.js';
import { failureReason, presentArtifact, presentBackups, presentBranch, presentDatabase, presentPolicy, presentRestore, presentVerification } from '../api/v1/present.js';
import { SEVERITY, type EventKind } from './kinds.js';

/** The catalog setting that holds the newest completion time a sweep has seen. */
export const SWEPT_UNTIL = 'notify_events_swept_until';
/** How far before that point each pass looks again (late commits, clock skew between machines). */
const OVERLAP_MS = 10 * 60_000;
/** The very first pass on a catalog looks back this far, not at its whole history. */
const FIRST_LOOKBACK_MS = 60 * 60_000;
const CHUNK = 200;
/** Longest failure reason a notification carries. */
const MAX_REASON = 800;

interface NewEvent {
  id: string;
  organization_id: string;
  kind: EventKind;
  database_id: string | null;
  branch_id: string | null;
  backup_id: string | null;
  job_id: string | null;
  message: string;
  created_at: string;
  data: Record<string, unknown>;
}

/** One pass: record every event not recorded yet; returns the ids of those this pass recorded. */
export async function sweepEvents(ctx: AppContext, opts: { overdue?: boolean } = {}): Promise<string[]> {
  const mark = await getSetting(ctx.db, SWEPT_UNTIL);
  const start = mark !== null ? Date.parse(mark) : ctx.clock().getTime() - FIRST_LOOKBACK_MS;
  const from = new Date(start - OVERLAP_MS).toISOString();
  let newest = mark ?? new Date(start).toISOString();
  const look = new Lookup(ctx);
  const recorded: string[] = [];

  for await (const rows of finishedBackups(ctx, from)) {
    recorded.push(...(await record(ctx, await backupEvents(ctx, look, rows))));
    newest = maxIso(newest, rows[rows.length - 1].completed_at!);
  }
  for await (const rows of finishedJobs(ctx, from)) {
    recorded.push(...(await record(ctx, await jobEvents(ctx, look, rows))));
    newest = maxIso(newest, rows[rows.length - 1].completed_at!);
  }
  // Written only when it moves: most passes find nothing new, and a write is what costs on SQLite.
  if (newest !== mark) await advance(ctx, newest);
  if (opts.overdue !== false) recorded.push(...(await record(ctx, await overdueEvents(ctx, look))));
  return recorded;
}

type Cursor = { at: string; id: string };

/** Rows in pages of CHUNK, in (completed_at, id) order: keyset paging, so no page is read twice. */
async function* pages<T extends { id: string; completed_at: string | null }>(fetch: (after: Cursor | null) => Promise<T[]>): AsyncGenerator<T[]> {
  let after: Cursor | null = null;
  for (;;) {
    const rows = await fetch(after);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < CHUNK) return;
    const last = rows[rows.length - 1];
    after = { at: last.completed_at!, id: last.id };
  }
}

/** Backups that ended (success or failure) at or after `from`. */
function finishedBackups(ctx: AppContext, from: string): AsyncGenerator<Backup[]> {
  return pages((after) => {
    let q = ctx.db.selectFrom('backups').selectAll().where('state', 'in', ['success', 'failed']).where('completed_at', '>=', from);
    if (after) q = q.where((eb) => eb.or([eb('completed_at', '>', after.at), eb.and([eb('completed_at', '=', after.at), eb('id', '>', after.id)])]));
    return q.orderBy('completed_at').orderBy('id').limit(CHUNK).execute();
  });
}

/** Restores that ended, and verifications asked for through the API that failed, at or after `from`. */
function finishedJobs(ctx: AppContext, from: string): AsyncGenerator<Job[]> {
  return pages((after) => {
    let q = ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb.and([eb('kind', '=', 'restore'), eb('state', 'in', ['success', 'failed'])]),
          // Drills (they have a policy) record their own verification.failed (drills.ts).
          eb.and([eb('kind', '=', 'verify'), eb('state', '=', 'failed'), eb('policy_id', 'is', null)]),
        ]),
      )
      .where('completed_at', '>=', from);
    if (after) q = q.where((eb) => eb.or([eb('completed_at', '>', after.at), eb.and([eb('completed_at', '=', after.at), eb('id', '>', after.id)])]));
    return q.orderBy('completed_at').orderBy('id').limit(CHUNK).execute();
  });
}

function maxIso(a: string, b: string): string {
  return b > a ? b : a;
}

/** Move the swept point forward (never back: another process may have gone further). */
async function advance(ctx: AppContext, to: string): Promise<void> {
  const now = nowIso(ctx.clock());
  await ctx.db
    .insertInto('catalog_settings')
    .values({ name: SWEPT_UNTIL, value: to, updated_at: now })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value: to, updated_at: now }).where('catalog_settings.value', '<', to))
    .execute();
}

/** Insert the events whose ids are not taken yet; the ids this call inserted. */
async function record(ctx: AppContext, events: NewEvent[]): Promise<string[]> {
  const out: string[] = [];
  for (const e of events) {
    const inserted = await ctx.db
      .insertInto('events')
      .values({
        id: e.id,
        organization_id: e.organization_id,
        kind: e.kind,
        severity: SEVERITY[e.kind],
        database_id: e.database_id,
        branch_id: e.branch_id,
        backup_id: e.backup_id,
        job_id: e.job_id,
        message: e.message,
        created_at: e.created_at,
        delivered_at: null,
        payload: JSON.stringify(e.data),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted) out.push(e.id);
  }
  return out;
}

/** The ids among `ids` that have no event yet (one query, so a pass over old rows costs little). */
async function missing(ctx: AppContext, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const have = await ctx.db.selectFrom('events').select('id').where('id', 'in', ids).execute();
  const taken = new Set(have.map((r) => r.id));
  return new Set(ids.filter((id) => !taken.has(id)));
}

/** Rows an event's payload needs, loaded once per pass, and the secrets that must never show in one. */
class Lookup {
  readonly #branches = new Map<string, Branch | undefined>();
  readonly #databases = new Map<string, Database | undefined>();
  readonly #orgs = new Map<string, Organization | undefined>();
  readonly #policies = new Map<string, BackupPolicy | undefined>();

  constructor(private readonly ctx: AppContext) {}

  async branch(id: string | null): Promise<Branch | undefined> {
    if (id === null) return undefined;
    if (!this.#branches.has(id)) this.#branches.set(id, await this.ctx.db.selectFrom('branches').selectAll().where('id', '=', id).executeTakeFirst());
    return this.#branches.get(id);
  }

  async database(id: string): Promise<Database | undefined> {
    if (!this.#databases.has(id)) this.#databases.set(id, await this.ctx.db.selectFrom('databases').selectAll().where('id', '=', id).executeTakeFirst());
    return this.#databases.get(id);
  }

  async organization(id: string): Promise<Organization | undefined> {
    if (!this.#orgs.has(id)) this.#orgs.set(id, await this.ctx.db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst());
    return this.#orgs.get(id);
  }

  async policy(id: string): Promise<BackupPolicy | undefined> {
    if (!this.#policies.has(id)) this.#policies.set(id, await this.ctx.db.selectFrom('backup_policies').selectAll().where('id', '=', id).executeTakeFirst());
    return this.#policies.get(id);
  }

  /** The connection passwords of these branches: scrubbed from any text an event carries. */
  passwords(...branches: Array<Branch | undefined>): string[] {
    const out: string[] = [];
    for (const b of branches) {
      if (!b?.connection_url_enc) continue;
      try {
        const { password } = parseConnectionUrl(this.ctx.secrets.open(b.connection_url_enc)).info;
        // A one- or two-letter password would mangle ordinary words; error texts never hold one anyway.
        if (password && password.length >= 4) out.push(password);
      } catch {
        /* an unreadable URL holds no password we could leak */
      }
    }
    return out;
  }
}

/**
 * Belt and braces: no error text should ever hold a connection password (the engines keep
 * them out), but a notification leaves the building, so every string in it is checked.
 */
function scrub<T>(value: T, secrets: string[]): T {
  if (secrets.length === 0) return value;
  if (typeof value === 'string') return secrets.reduce((s, p) => s.split(p).join('[redacted]'), value as string) as T;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets)) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, secrets)])) as T;
  return value;
}

function reasonText(text: string | null): string {
  return cleanErrorText(text ?? 'no reason recorded', MAX_REASON);
}

/** "12.3 MB" */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** "3 days 4 hours", "12 minutes", "40 seconds": the two largest units. */
export function formatDuration(seconds: number): string {
  const parts: string[] = [];
  let s = Math.max(0, Math.round(seconds));
  for (const [unit, size] of [['day', 86_400], ['hour', 3600], ['minute', 60], ['second', 1]] as const) {
    const n = Math.floor(s / size);
    if (n > 0 || (unit === 'second' && parts.length === 0)) parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`);
    s -= n * size;
  }
  return parts.slice(0, 2).join(' ');
}

async function backupEvents(ctx: AppContext, look: Lookup, rows: Backup[]): Promise<NewEvent[]> {
  const artifacts = await ctx.db
    .selectFrom('artifacts')
    .selectAll()
    .where(
      'backup_id',
      'in',
      rows.map((b) => b.id),
    )
    .where('state', '=', 'failed')
    .execute();
  // Copies that failed because the dump did (or the worker died) are that failure, already told.
  const destinationFailures = artifacts.filter((a) => a.error !== 'interrupted' && !(a.error ?? '').startsWith('not stored:'));
  const wanted = await missing(ctx, [
    ...rows.map((b) => backupEventId(b)),
    ...destinationFailures.map((a) => `destination-failed-${a.id}`),
  ]);
  const out: NewEvent[] = [];
  for (const b of rows) {
    const failedCopies = destinationFailures.filter((a) => a.backup_id === b.id && wanted.has(`destination-failed-${a.id}`));
    if (!wanted.has(backupEventId(b)) && failedCopies.length === 0) continue;
    const base = await backupBase(ctx, look, b);
    if (!base) continue;
    const where = `${base.database.name}/${base.branch.name}`;
    if (wanted.has(backupEventId(b))) {
      const ok = b.state === 'success';
      const seconds = b.started_at && b.completed_at ? (Date.parse(b.completed_at) - Date.parse(b.started_at)) / 1000 : null;
      const reason = ok ? null : reasonText(failureReason(b));
      const message = ok
        ? `backup "${b.name}" of ${where} succeeded: ${formatBytes(b.size)}${seconds !== null ? ` in ${formatDuration(seconds)}` : ''}`
        : `backup "${b.name}" of ${where} failed: ${reason}`;
      out.push(base.event(ok ? 'backup.succeeded' : 'backup.failed', backupEventId(b), b.completed_at!, message, { reason }));
    }
    for (const a of failedCopies) {
      const reason = reasonText(a.error);
      const message = `backup "${b.name}" of ${where} could not be stored in destination "${a.destination_name}": ${reason}`;
      out.push(base.event('destination.failed', `destination-failed-${a.id}`, b.completed_at!, message, { reason, artifact: presentArtifact(a as Artifact) }));
    }
  }
  return out;
}

function backupEventId(b: Backup): string {
  return `${b.state === 'success' ? 'backup-succeeded' : 'backup-failed'}-${b.id}`;
}

/** What every event about one backup carries, and a maker of its events. */
async function backupBase(ctx: AppContext, look: Lookup, b: Backup, extraBranch?: Branch) {
  const branch = await look.branch(b.branch_id);
  const database = await look.database(b.database_id);
  if (!branch || !database) return null;
  const [backup] = await presentBackups(ctx, [b], branch);
  const secrets = look.passwords(branch, extraBranch);
  const data = { database: presentDatabase(database), branch: presentBranch(branch, database.kind), backup };
  return {
    branch,
    database,
    event: (kind: EventKind, id: string, at: string, message: string, extra: Record<string, unknown>, jobId: string | null = null): NewEvent =>
      scrub(
        {
          id,
          organization_id: b.organization_id,
          kind,
          database_id: b.database_id,
          branch_id: b.branch_id,
          backup_id: b.id,
          job_id: jobId,
          message,
          created_at: at,
          data: { message, ...data, ...extra },
        },
        secrets,
      ),
  };
}

async function jobEvents(ctx: AppContext, look: Lookup, rows: Job[]): Promise<NewEvent[]> {
  const idOf = (j: Job) => (j.kind === 'restore' ? `restore-${j.state === 'success' ? 'succeeded' : 'failed'}-${j.id}` : `verification-failed-${j.id}`);
  const wanted = await missing(ctx, rows.map(idOf));
  const out: NewEvent[] = [];
  for (const j of rows) {
    if (!wanted.has(idOf(j))) continue;
    const b = await ctx.db.selectFrom('backups').selectAll().where('id', '=', j.backup_id).executeTakeFirst();
    if (!b) continue;
    const target = j.kind === 'restore' ? await look.branch(j.branch_id) : undefined;
    const base = await backupBase(ctx, look, b, target);
    if (!base) continue;
    const where = `${base.database.name}/${base.branch.name}`;
    const reason = j.state === 'success' ? null : reasonText(j.error);
    if (j.kind === 'restore') {
      const into = target ? ` into branch "${target.name}"` : '';
      const message = j.state === 'success' ? `restore of backup "${b.name}" of ${where}${into} succeeded` : `restore of backup "${b.name}" of ${where}${into} failed: ${reason}`;
      const restoredBranch = target ? presentBranch(target, base.database.kind) : null;
      out.push(base.event(j.state === 'success' ? 'restore.succeeded' : 'restore.failed', idOf(j), j.completed_at!, message, { reason, restore: presentRestore(j), restored_branch: restoredBranch }, j.id));
    } else {
      const message = `verification of backup "${b.name}" of ${where} failed: ${reason}`;
      out.push(base.event('verification.failed', idOf(j), j.completed_at!, message, { reason, verification: presentVerification(j) }, j.id));
    }
  }
  return out;
}

async function overdueEvents(ctx: AppContext, look: Lookup): Promise<NewEvent[]> {
  const overdue = (await branchFreshness(ctx)).filter((f) => f.overdue);
  const idOf = (f: BranchFreshness) => `backup-overdue-${f.branch_id}-${f.since}`;
  const wanted = await missing(ctx, overdue.map(idOf));
  const out: NewEvent[] = [];
  for (const f of overdue) {
    if (!wanted.has(idOf(f))) continue;
    const branch = await look.branch(f.branch_id);
    const database = await look.database(f.database_id);
    const policy = await look.policy(f.policy_id);
    if (!branch || !database || !policy) continue;
    const message =
      `${database.name}/${branch.name} has had no successful backup for ${formatDuration(f.silent_seconds)} ` +
      `(policy "${policy.name}" runs every ${formatDuration(f.frequency_seconds)}; overdue after twice that); ` +
      `last success: ${f.last_success_at ?? 'never'}`;
    const data = {
      message,
      database: presentDatabase(database),
      branch: presentBranch(branch, database.kind),
      overdue: {
        last_success_at: f.last_success_at,
        since: f.since,
        silent_seconds: f.silent_seconds,
        frequency_seconds: f.frequency_seconds,
        overdue_at: f.overdue_at,
        backup_policy: presentPolicy(policy),
      },
    };
    out.push({ id: idOf(f), organization_id: f.organization_id, kind: 'backup.overdue', database_id: f.database_id, branch_id: f.branch_id, backup_id: null, job_id: null, message, created_at: f.overdue_at, data });
  }
  return out;
}

/**
 * The payload of an event recorded without one (restore drills write theirs with a message
 * only): the backup and the verification as the API shows them.
 */
export async function payloadFor(ctx: AppContext, e: { organization_id: string; kind: string; backup_id: string | null; job_id: string | null; message: string }): Promise<Record<string, unknown>> {
  const look = new Lookup(ctx);
  const b = e.backup_id ? await ctx.db.selectFrom('backups').selectAll().where('id', '=', e.backup_id).executeTakeFirst() : undefined;
  if (!b) return { message: e.message };
  const base = await backupBase(ctx, look, b);
  if (!base) return { message: e.message };
  const job = e.job_id ? await ctx.db.selectFrom('jobs').selectAll().where('id', '=', e.job_id).executeTakeFirst() : undefined;
  const extra: Record<string, unknown> = job ? { reason: job.error === null ? null : reasonText(job.error), verification: job.kind === 'verify' ? presentVerification(job) : undefined } : {};
  return base.event(e.kind as EventKind, '', '', e.message, extra).data;
}
