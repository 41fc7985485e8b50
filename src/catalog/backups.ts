/** Backups and their artifacts: creation, listing with the PlanetScale filters, state changes. */
import { sql } from 'kysely';
import type { CatalogDb } from './db.js';
import type { Artifact, Backup, BackupState, Branch, Database, NewBackup } from './schema.js';
import { newId, nowIso } from './ids.js';
import { addInterval, type IntervalUnit } from '../time.js';

export const DEFAULT_RETENTION = { value: 7, unit: 'day' as IntervalUnit };

export interface CreateBackupInput {
  database: Database;
  branch: Branch;
  name?: string;
  retentionValue: number;
  retentionUnit: IntervalUnit;
  emergency: boolean;
  actor: { id: string; name: string } | null;
  policyId?: string | null;
  required?: boolean;
  compression: string;
  now: Date;
  /** For a scheduled backup: its slot, and `ignored` (with the reason) when the branch was busy. */
  scheduleSlot?: string;
  ignoredBecause?: string;
  /** `jobs: N` of the request (parallel dump); absent = the branch's option when it runs. */
  jobs?: number;
}

function defaultName(branch: Branch, now: Date): string {
  // e.g. "main-2026-11-23-164500": readable, sortable, and unique enough per branch.
  return `${branch.name}-${now.toISOString().slice(0, 19).replace(/[T:]/g, '-').replace(/-(\d\d)-(\d\d)$/, '$1$2')}`;
}

/**
 * Record a new backup. With a schedule slot, a backup that already exists for the same
 * (policy, branch, slot) wins and this returns undefined: exactly one backup per slot.
 */
export async function createBackup(db: CatalogDb, input: CreateBackupInput & { scheduleSlot: string }): Promise<Backup | undefined>;
export async function createBackup(db: CatalogDb, input: CreateBackupInput): Promise<Backup>;
export async function createBackup(db: CatalogDb, input: CreateBackupInput): Promise<Backup | undefined> {
  const now = nowIso(input.now);
  const row: NewBackup = {
    id: newId(),
    organization_id: input.database.organization_id,
    database_id: input.database.id,
    branch_id: input.branch.id,
    name: input.name ?? defaultName(input.branch, input.now),
    state: input.ignoredBecause ? 'ignored' : 'pending',
    protected: 0,
    required: input.required ? 1 : 0,
    emergency: input.emergency ? 1 : 0,
    backup_policy_id: input.policyId ?? null,
    actor_id: input.actor?.id ?? null,
    actor_name: input.actor?.name ?? null,
    retention_value: input.retentionValue,
    retention_unit: input.retentionUnit,
    created_at: now,
    updated_at: now,
    started_at: null,
    completed_at: input.ignoredBecause ? now : null,
    // Until it completes, a backup expires relative to its creation (DESIGN.md).
    expires_at: nowIso(addInterval(input.now, input.retentionValue, input.retentionUnit)),
    deleted_at: null,
    error: input.ignoredBecause ?? null,
    engine: input.database.kind,
    server_version: null,
    client_version: null,
    compression: input.compression,
    sha256: null,
    table_row_counts: null,
    lease_owner: null,
    lease_expires_at: null,
    progress_at: null,
    schedule_slot: input.scheduleSlot ?? null,
    jobs: input.jobs ?? null,
  };
  const res = await db
    .insertInto('backups')
    .values(row)
    .onConflict((oc) => oc.columns(['backup_policy_id', 'branch_id', 'schedule_slot']).doNothing())
    .executeTakeFirst();
  if (Number(res.numInsertedOrUpdatedRows ?? 1) === 0) return undefined;
  return db.selectFrom('backups').selectAll().where('id', '=', row.id).executeTakeFirst();
}

export interface BackupFilter {
  branchId: string;
  includeDeleted: boolean;
  state?: BackupState;
  policyId?: string;
  /** Started at or after (pending backups count from their creation). */
  from?: string;
  /** Started at or before. */
  to?: string;
  /** Running at some moment of [start, end]. */
  runningAt?: { start: string; end: string };
}

function filtered(db: CatalogDb, f: BackupFilter) {
  let q = db.selectFrom('backups').where('branch_id', '=', f.branchId);
  if (!f.includeDeleted) q = q.where('deleted_at', 'is', null);
  if (f.state) q = q.where('state', '=', f.state);
  if (f.policyId) q = q.where('backup_policy_id', '=', f.policyId);
  const startedOrCreated = sql<string>`coalesce(started_at, created_at)`;
  if (f.from) q = q.where(startedOrCreated, '>=', f.from);
  if (f.to) q = q.where(startedOrCreated, '<=', f.to);
  if (f.runningAt) {
    const { start, end } = f.runningAt;
    // It ran during [start, end] if it started before the end and had not finished before the start.
    q = q.where('started_at', 'is not', null).where('started_at', '<=', end).where((eb) => eb.or([eb('completed_at', 'is', null), eb('completed_at', '>=', start)]));
  }
  return q;
}

export async function listBackups(db: CatalogDb, f: BackupFilter, page: number, perPage: number): Promise<{ rows: Backup[]; total: number }> {
  const { total } = await filtered(db, f)
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await filtered(db, f)
    .selectAll()
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(perPage)
    .offset((page - 1) * perPage)
    .execute();
  return { rows, total: Number(total) };
}

export async function getBackup(db: CatalogDb, id: string): Promise<Backup | undefined> {
  return db.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function artifactsOf(db: CatalogDb, backupIds: string[]): Promise<Artifact[]> {
  if (backupIds.length === 0) return [];
  return db.selectFrom('artifacts').selectAll().where('backup_id', 'in', backupIds).orderBy('created_at').orderBy('destination_name').execute();
}
