import type { Kysely } from 'kysely';

/**
 * Backup policies (schedule + retention per database and target), and the slot each
 * scheduled backup was taken for. The unique index on (policy, branch, slot) is what makes
 * "exactly one backup per slot" hold even when several workers run the scheduler at once.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('backup_policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('database_id', 'text', (c) => c.notNull().references('databases.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('retention_value', 'integer', (c) => c.notNull())
    .addColumn('retention_unit', 'text', (c) => c.notNull())
    .addColumn('frequency_value', 'integer', (c) => c.notNull())
    .addColumn('frequency_unit', 'text', (c) => c.notNull())
    .addColumn('schedule_time', 'text', (c) => c.notNull())
    .addColumn('schedule_day', 'integer')
    .addColumn('schedule_week', 'integer')
    .addColumn('required', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_ran_at', 'text')
    .addColumn('next_run_at', 'text')
    .addColumn('deleted_at', 'text')
    .execute();
  await db.schema.createIndex('backup_policies_database').on('backup_policies').columns(['database_id', 'name']).execute();

  await db.schema.alterTable('backups').addColumn('schedule_slot', 'text').execute();
  await db.schema.createIndex('backups_policy_slot').on('backups').columns(['backup_policy_id', 'branch_id', 'schedule_slot']).unique().execute();
  await db.schema.createIndex('backups_expiry').on('backups').columns(['deleted_at', 'expires_at']).execute();
}
