/** Backup policies: schedule + retention for the branches of one target of a database. */
import type { CatalogDb } from './db.js';
import type { BackupPolicy, Branch, Database } from './schema.js';
import { newId, nowIso } from './ids.js';
import { DEFAULT_RETENTION, DEFAULT_SCHEDULE, nextRunAt, type Schedule } from '../jobs/schedule.js';

export function scheduleOf(p: Pick<BackupPolicy, 'frequency_value' | 'frequency_unit' | 'schedule_time' | 'schedule_day' | 'schedule_week'>): Schedule {
  return { frequency: { value: p.frequency_value, unit: p.frequency_unit }, time: p.schedule_time, day: p.schedule_day, week: p.schedule_week };
}

/**
 * When a policy runs next. A policy that never ran counts from its creation, so that its
 * first backup is at its first slot after it was created.
 */
export function computeNextRun(p: Pick<BackupPolicy, 'frequency_value' | 'frequency_unit' | 'schedule_time' | 'schedule_day' | 'schedule_week' | 'last_ran_at' | 'created_at'>, now: Date): string {
  return nextRunAt(scheduleOf(p), new Date(p.last_ran_at ?? p.created_at), now).toISOString();
}

/**
 * The policies every new database gets, as PlanetScale's defaults: every 12 hours, kept 2
 * days, for its production and its development branches. A policy has one target, so
 * "both" is two required policies.
 */
export async function createDefaultPolicies(db: CatalogDb, database: Database, now: Date): Promise<void> {
  for (const target of ['production', 'development'] as const) {
    const row: BackupPolicy = {
      id: newId(),
      organization_id: database.organization_id,
      database_id: database.id,
      name: `default-${target}`,
      display_name: `Default ${target} backups`,
      target,
      retention_value: DEFAULT_RETENTION.value,
      retention_unit: DEFAULT_RETENTION.unit,
      frequency_value: DEFAULT_SCHEDULE.frequency.value,
      frequency_unit: DEFAULT_SCHEDULE.frequency.unit,
      schedule_time: DEFAULT_SCHEDULE.time,
      schedule_day: DEFAULT_SCHEDULE.day,
      schedule_week: DEFAULT_SCHEDULE.week,
      required: 1,
      created_at: nowIso(now),
      updated_at: nowIso(now),
      last_ran_at: null,
      next_run_at: null,
      deleted_at: null,
      verify_every: null,
      verification_frequency_value: null,
      verification_frequency_unit: null,
    };
    row.next_run_at = computeNextRun(row, now);
    await db.insertInto('backup_policies').values(row).execute();
  }
}

/**
 * The branches a policy covers: those of its database (unless the database is deleted)
 * whose production flag matches its target and that can be dumped (they have a connection
 * URL). The scheduler's backups and the restore drills both run on exactly these.
 */
export async function policyBranches(db: CatalogDb, p: Pick<BackupPolicy, 'database_id' | 'target'>): Promise<{ database: Database; branches: Branch[] } | null> {
  const database = await db.selectFrom('databases').selectAll().where('id', '=', p.database_id).executeTakeFirst();
  if (!database || database.deleted_at !== null) return null;
  const branches = await db
    .selectFrom('branches')
    .selectAll()
    .where('database_id', '=', p.database_id)
    .where('deleted_at', 'is', null)
    .where('production', '=', p.target === 'production' ? 1 : 0)
    .where('connection_url_enc', 'is not', null)
    .execute();
  return { database, branches };
}
