import type { Kysely } from 'kysely';

/**
 * Restores and verifications are jobs with their own state and lease, claimed like
 * backups. Branches remember the backup they were restored from; backups and artifacts
 * remember their last verification.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('backup_id', 'text', (c) => c.notNull().references('backups.id'))
    .addColumn('branch_id', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('error', 'text')
    .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('total_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('actor_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('completed_at', 'text')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('jobs_state_created').on('jobs').columns(['state', 'created_at']).execute();
  await db.schema.createIndex('jobs_backup').on('jobs').columns(['backup_id', 'created_at']).execute();

  await db.schema.alterTable('branches').addColumn('restored_from_backup_id', 'text').execute();
  await db.schema.alterTable('branches').addColumn('restore_job_id', 'text').execute();
  await db.schema.alterTable('backups').addColumn('verified_at', 'text').execute();
  await db.schema.alterTable('backups').addColumn('verification', 'text').execute();
  await db.schema.alterTable('artifacts').addColumn('verified_at', 'text').execute();
  await db.schema.alterTable('artifacts').addColumn('verification', 'text').execute();
}
