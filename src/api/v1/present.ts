/** Catalog rows → native (PlanetScale) JSON. The only place that knows both shapes. */
import type { AppContext } from '../../context.js';
import type { Archiver, Artifact, Backup, BackupPolicy, Branch, Database, Job, Organization, ServiceToken } from '../../catalog/schema.js';
import { archiversOf } from '../../archive/archivers.js';
import { progressSnapshot } from '../../pipeline/progress.js';
import { organizationRecipients } from '../../encryption.js';
import type { BackupJson } from './schemas.js';
import type { CatalogDb } from '../../catalog/db.js';
import { memoized } from '../../catalog/memo.js';
import type { StoredBytes } from '../../catalog/backup-list.js';

export function presentOrganization(o: Organization) {
  return { id: o.id, name: o.name, encryption_recipients: organizationRecipients(o), created_at: o.created_at, updated_at: o.updated_at };
}

export function presentDatabase(d: Database, destinationNames: Map<string, string> = new Map()) {
  const chosen = d.storage_destinations === null ? null : (JSON.parse(d.storage_destinations) as string[]).map((id) => destinationNames.get(id) ?? id);
  return { id: d.id, name: d.name, kind: d.kind, storage_destinations: chosen, created_at: d.created_at, updated_at: d.updated_at };
}

/** id → name of an organization's destinations, to present databases' choices by name. */
export async function destinationNames(ctx: AppContext, organizationId: string): Promise<Map<string, string>> {
  const rows = await ctx.db.selectFrom('storage_destinations').select(['id', 'name']).where('organization_id', '=', organizationId).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

export function presentBranch(b: Branch, kind: Database['kind'], restore: Job | null = null, now = Date.now(), options: { dump_history: boolean; jobs?: number; archiver?: Archiver | null } = { dump_history: false }) {
  const a = options.archiver ?? null;
  return {
    id: b.id,
    name: b.name,
    production: b.production === 1,
    kind,
    connection: { host: b.conn_host, port: b.conn_port, database: b.conn_database, user: b.conn_user },
    server_version: b.server_version,
    created_at: b.created_at,
    updated_at: b.updated_at,
    restore: restore === null ? null : presentRestore(restore, now),
    dump_history: options.dump_history,
    jobs: options.jobs ?? 1,
    archiving: a?.enabled === 1,
    archive: a === null ? null : { enabled: a.enabled === 1, state: a.state, error: a.error, last_shipped_at: a.last_shipped_at, slot_name: a.slot_name },
  };
}

export function presentRestore(j: Job, now = Date.now()) {
  const running = j.state === 'running' && j.started_at !== null;
  const snap = running ? progressSnapshot({ bytes: j.bytes, startedAt: Date.parse(j.started_at!), now, totalEstimate: j.total_bytes }) : null;
  const params = JSON.parse(j.params) as { restore_point?: string };
  // A point-in-time restore says what it is doing in its result while it runs (archive/postgres/pitr.ts).
  let phase: string | null = null;
  if (running && j.result) {
    try {
      phase = (JSON.parse(j.result) as { phase?: string }).phase ?? null;
    } catch {
      phase = null;
    }
  }
  return {
    id: j.id,
    backup_id: j.backup_id,
    restore_point: params.restore_point ?? null,
    phase,
    state: j.state,
    bytes: j.bytes,
    total_bytes: j.total_bytes,
    rate_bytes_per_second: snap?.rate_bytes_per_second ?? 0,
    eta_seconds: snap?.eta_seconds ?? null,
    error: j.error,
    created_at: j.created_at,
    started_at: j.started_at,
    completed_at: j.completed_at,
  };
}

/** Present branches with their restore jobs, loaded in one query. */
export async function presentBranches(ctx: AppContext, rows: Branch[], kind: Database['kind']) {
  const ids = rows.map((b) => b.restore_job_id).filter((x): x is string => x !== null);
  const jobs = ids.length ? await ctx.db.selectFrom('jobs').selectAll().where('id', 'in', ids).execute() : [];
  const branchIds = rows.map((b) => b.id);
  const options = branchIds.length ? await ctx.db.selectFrom('branch_options').select(['branch_id', 'dump_history', 'jobs']).where('branch_id', 'in', branchIds).execute() : [];
  const archivers = await archiversOf(ctx, branchIds);
  const now = ctx.clock().getTime();
  return rows.map((b) =>
    presentBranch(b, kind, jobs.find((j) => j.id === b.restore_job_id) ?? null, now, { dump_history: options.find((o) => o.branch_id === b.id)?.dump_history === 1, jobs: options.find((o) => o.branch_id === b.id)?.jobs ?? 1, archiver: archivers.get(b.id) ?? null }),
  );
}

export function presentVerification(j: Job) {
  const params = JSON.parse(j.params) as { restore?: boolean };
  return {
    id: j.id,
    backup_id: j.backup_id,
    kind: params.restore ? ('full' as const) : ('quick' as const),
    drill_policy_id: j.policy_id,
    state: j.state,
    error: j.error,
    result: j.result === null ? null : JSON.parse(j.result),
    created_at: j.created_at,
    started_at: j.started_at,
    completed_at: j.completed_at,
  };
}

export function presentToken(t: ServiceToken, secret?: string) {
  return {
    id: t.id,
    name: t.name,
    ...(secret !== undefined ? { token: secret } : {}),
    created_at: t.created_at,
    last_used_at: t.last_used_at,
    expires_at: t.expires_at,
  };
}

/** A policy as the policy routes show it: presentPolicyRef's fields and the restore drill settings. */
export function presentPolicy(p: BackupPolicy) {
  return {
    ...presentPolicyRef(p),
    verify_every: p.verify_every,
    verification_frequency_value: p.verification_frequency_value,
    verification_frequency_unit: p.verification_frequency_unit,
  };
}

/** A policy as the PlanetScale reference shows it inside a Backup, field for field. */
export function presentPolicyRef(p: BackupPolicy) {
  return {
    id: p.id,
    display_name: p.display_name,
    name: p.name,
    target: p.target,
    retention_value: p.retention_value,
    retention_unit: p.retention_unit,
    frequency_value: p.frequency_value,
    frequency_unit: p.frequency_unit,
    schedule_time: p.schedule_time,
    schedule_day: p.schedule_day,
    schedule_week: p.schedule_week,
    created_at: p.created_at,
    updated_at: p.updated_at,
    last_ran_at: p.last_ran_at,
    next_run_at: p.next_run_at,
    required: p.required === 1,
  };
}

/**
 * Why a backup ended the way it did: failed, canceled or ignored (null while it is pending
 * or running, and once it succeeded). The PlanetScale Backup object has no field for it, so
 * our own objects carry it (progress, artifacts) and the CLI shows it.
 */
export function failureReason(b: Pick<Backup, 'state' | 'error'>): string | null {
  return b.state === 'failed' || b.state === 'canceled' || b.state === 'ignored' ? b.error : null;
}

/** How many parts a parallel backup's copy lists (parts JSON of migration 0019). */
function partCount(parts: string): number | null {
  try {
    const list = JSON.parse(parts) as unknown;
    return Array.isArray(list) ? list.length : null;
  } catch {
    return null;
  }
}

export function presentArtifact(a: Artifact) {
  return {
    id: a.id,
    destination: a.destination_name,
    provider: a.provider,
    path: a.path,
    size: a.size,
    sha256: a.sha256,
    state: a.state,
    error: a.error,
    created_at: a.created_at,
    updated_at: a.updated_at,
    verified_at: a.verified_at,
    verification: a.verification as 'passed' | 'failed' | null,
    parts: a.parts ? partCount(a.parts) : null,
  };
}

/**
 * The columns of a backup row a Backup object is made of: the list reads only these (a row's
 * row counts, properties and ownership are kilobytes the list never shows; reading them made
 * a page of 100 three times slower, bench/list-api.ts).
 */
export const PRESENTED_BACKUP_COLUMNS = [
  'id',
  'name',
  'state',
  'size',
  'created_at',
  'updated_at',
  'started_at',
  'expires_at',
  'completed_at',
  'deleted_at',
  'pvc_size',
  'protected',
  'required',
  'actor_id',
  'actor_name',
  'backup_policy_id',
  'schema_snapshot_id',
] as const satisfies ReadonlyArray<keyof Backup>;
export type PresentedBackup = Pick<Backup, (typeof PRESENTED_BACKUP_COLUMNS)[number]>;

/**
 * Present backups of one branch, with what they refer to loaded in one query each (stored
 * copies to price them, restored branches, policies, schema snapshots), never per backup.
 * `origin` ("http://host:port" of the request) makes the schema snapshot URL absolute, as
 * PlanetScale's is.
 */
type RestoredBranch = Pick<Branch, 'id' | 'name' | 'created_at' | 'updated_at' | 'deleted_at' | 'restored_from_backup_id'>;

/** Above this many restored branches in the catalog, they are looked up per page instead of kept whole. */
const RESTORED_KEPT_BELOW = 2000;

/**
 * The branches restored from these backups, oldest first. Few backups ever are restored: the
 * catalog's whole list (up to RESTORED_KEPT_BELOW) is kept until the next write (memo.ts) and
 * a page looks its backups up in it, instead of one query per page.
 */
async function restoredBranchesOf(db: CatalogDb, ids: string[]): Promise<readonly RestoredBranch[]> {
  const columns = ['id', 'name', 'created_at', 'updated_at', 'deleted_at', 'restored_from_backup_id'] as const;
  const byBackup = await memoized(db, 'restored-branches', async () => {
    const rows = await db.selectFrom('branches').select(columns).where('restored_from_backup_id', 'is not', null).orderBy('created_at').limit(RESTORED_KEPT_BELOW).execute();
    if (rows.length >= RESTORED_KEPT_BELOW) return null;
    const map = new Map<string, RestoredBranch[]>();
    for (const r of rows) {
      const list = map.get(r.restored_from_backup_id!);
      if (list) list.push(r);
      else map.set(r.restored_from_backup_id!, [r]);
    }
    return map;
  });
  if (byBackup === null) return db.selectFrom('branches').select(columns).where('restored_from_backup_id', 'in', ids).orderBy('created_at').execute();
  return ids.flatMap((id) => byBackup.get(id) ?? []);
}

export async function presentBackups(ctx: AppContext, rows: Array<PresentedBackup & Partial<StoredBytes>>, branch: Branch, origin = ''): Promise<BackupJson[]> {
  const ids = rows.map((r) => r.id);
  // Only what the price needs: the stored bytes of each good copy (the list reads them with its rows).
  const summed = rows.every((r) => r.stored_bytes !== undefined);
  const artifacts = ids.length && !summed ? await ctx.db.selectFrom('artifacts').select(['backup_id', 'state', 'size']).where('backup_id', 'in', ids).execute() : [];
  const restored = ids.length ? await restoredBranchesOf(ctx.db, ids) : [];
  const policyIds = [...new Set(rows.map((r) => r.backup_policy_id).filter((x): x is string => x !== null))];
  const policies: BackupPolicy[] = [];
  for (const id of policyIds) {
    const p = await memoized(ctx.db, `policy\u0000${id}`, () => ctx.db.selectFrom('backup_policies').selectAll().where('id', '=', id).executeTakeFirst());
    if (p !== undefined) policies.push(p);
  }
  const snapshotIds = [...new Set(rows.map((r) => r.schema_snapshot_id).filter((x): x is string => x !== null))];
  const snapshots = snapshotIds.length
    ? await ctx.db.selectFrom('schema_snapshots').select(['id', 'name', 'created_at', 'updated_at', 'linted_at', 'database_id']).where('id', 'in', snapshotIds).execute()
    : [];
  const db = snapshots.length ? await ctx.db.selectFrom('databases').select('name').where('id', '=', branch.database_id).executeTakeFirst() : undefined;
  const org = snapshots.length ? await ctx.db.selectFrom('organizations').select('name').where('id', '=', branch.organization_id).executeTakeFirst() : undefined;
  const storedBytes = new Map<string, number>();
  if (summed) for (const r of rows) storedBytes.set(r.id, r.stored_bytes!);
  for (const a of artifacts) {
    if (a.state === 'success') storedBytes.set(a.backup_id, (storedBytes.get(a.backup_id) ?? 0) + a.size);
  }
  return rows.map((b) => {
    const bytes = b.deleted_at === null ? (storedBytes.get(b.id) ?? 0) : 0;
    return {
      id: b.id,
      name: b.name,
      state: b.state,
      size: b.size,
      // Every stored copy costs; price per GB-month is configurable (S3 standard by default).
      estimated_storage_cost: Math.round((bytes / 1e9) * ctx.config.storagePricePerGbMonth * 1e6) / 1e6,
      created_at: b.created_at,
      updated_at: b.updated_at,
      started_at: b.started_at,
      expires_at: b.expires_at,
      completed_at: b.completed_at,
      deleted_at: b.deleted_at,
      pvc_size: b.pvc_size,
      protected: b.protected === 1,
      required: b.required === 1,
      restored_branches: restored
        .filter((r) => r.restored_from_backup_id === b.id)
        .map((r) => ({ id: r.id, name: r.name, created_at: r.created_at, updated_at: r.updated_at, deleted_at: r.deleted_at })),
      actor: b.actor_id === null ? null : { id: b.actor_id, display_name: b.actor_name ?? b.actor_id, avatar_url: '' },
      backup_policy: ((p) => (p ? presentPolicyRef(p) : null))(policies.find((p) => p.id === b.backup_policy_id)),
      schema_snapshot: ((sn) =>
        sn
          ? {
              id: sn.id,
              name: sn.name,
              created_at: sn.created_at,
              updated_at: sn.updated_at,
              linted_at: sn.linted_at,
              url: `${origin}/v1/organizations/${org?.name}/databases/${db?.name}/schema-snapshots/${sn.id}`,
            }
          : null)(snapshots.find((x) => x.id === b.schema_snapshot_id)),
      database_branch: { id: branch.id, name: branch.name, created_at: branch.created_at, updated_at: branch.updated_at, deleted_at: branch.deleted_at },
    };
  });
}
