import type { Kysely } from 'kysely';

/**
 * Proof that restores work (issue 11):
 * - backup_contents: what each dump holds (tables keyed by schema and table, with rows
 *   and data digests, and the inventory of the other objects), a table of its own because
 *   it can be large and only verification reads it;
 * - restore drills: a policy may ask for a full verification of every Nth backup
 *   (verify_every) and/or at least one per period (verification_frequency_value/unit);
 *   a drill job carries its policy and a unique drill_key, so that several workers
 *   enqueue it once;
 * - jobs.scratch_database: the scratch database a full verification restores into,
 *   recorded before it is created and cleared once dropped, so that a crash (kill -9)
 *   never leaves it behind: recovery drops what is still recorded;
 * - events: things worth an alert (a failed drill), kept for the notification channels.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('backup_contents')
    .addColumn('backup_id', 'text', (c) => c.primaryKey().references('backups.id'))
    .addColumn('contents', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema.alterTable('backup_policies').addColumn('verify_every', 'integer').execute();
  await db.schema.alterTable('backup_policies').addColumn('verification_frequency_value', 'integer').execute();
  await db.schema.alterTable('backup_policies').addColumn('verification_frequency_unit', 'text').execute();

  await db.schema.alterTable('jobs').addColumn('scratch_database', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('policy_id', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('drill_key', 'text').execute();
  // NULLs are distinct in a unique index on both SQLite and PostgreSQL: only drills have a key.
  await db.schema.createIndex('jobs_drill_key').on('jobs').column('drill_key').unique().execute();
  await db.schema.createIndex('jobs_scratch').on('jobs').column('scratch_database').execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('database_id', 'text')
    .addColumn('branch_id', 'text')
    .addColumn('backup_id', 'text')
    .addColumn('job_id', 'text')
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('delivered_at', 'text')
    .execute();
  await db.schema.createIndex('events_org_created').on('events').columns(['organization_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('events_undelivered').on('events').columns(['delivered_at', 'created_at']).execute();
}
