import type { Kysely } from 'kysely';

/**
 * Continuous archiving for point-in-time recovery (WAL for PostgreSQL, binlogs for MariaDB
 * and MySQL):
 * - archivers: one row per branch switched to archiving. The receiver that streams its WAL
 *   or binlogs is a long-running piece of work with a lease (worker_id, lease_expires_at),
 *   so exactly one process runs it at a time and another takes over when that one dies.
 *   `position` is where streaming resumes (an LSN and timeline, or a binlog file).
 * - archive_files: every WAL segment or binlog file shipped, with what it covers
 *   (LSNs / first and last event times), one row per (branch, kind, name);
 * - archive_copies: its stored copy in each destination (like artifacts for backups).
 * - backups.method: 'logical' (a dump), 'base' (pg_basebackup), 'incremental'; and
 *   backups.recovery_start: where replay starts after this backup (JSON: {timeline, lsn}
 *   for a base backup, {file, position, gtid} for a MariaDB/MySQL dump), null if unknown.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('archivers')
    .addColumn('branch_id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('database_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('starting'))
    .addColumn('error', 'text')
    .addColumn('slot_name', 'text')
    .addColumn('position', 'text')
    .addColumn('worker_id', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('last_shipped_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('archivers_lease').on('archivers').columns(['enabled', 'lease_expires_at']).execute();

  await db.schema
    .createTable('archive_files')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('database_id', 'text', (c) => c.notNull())
    .addColumn('branch_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('timeline', 'integer')
    .addColumn('start_lsn', 'text')
    .addColumn('end_lsn', 'text')
    .addColumn('first_event_at', 'text')
    .addColumn('last_event_at', 'text')
    .addColumn('raw_size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('success'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('deleted_at', 'text')
    .execute();
  await db.schema.createIndex('archive_files_name').on('archive_files').columns(['branch_id', 'kind', 'name']).unique().execute();
  await db.schema.createIndex('archive_files_branch_created').on('archive_files').columns(['branch_id', 'created_at']).execute();

  await db.schema
    .createTable('archive_copies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('archive_file_id', 'text', (c) => c.notNull())
    .addColumn('destination_id', 'text', (c) => c.notNull())
    .addColumn('destination_name', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('sha256', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('archive_copies_file').on('archive_copies').column('archive_file_id').execute();

  await db.schema.alterTable('backups').addColumn('method', 'text', (c) => c.notNull().defaultTo('logical')).execute();
  await db.schema.alterTable('backups').addColumn('recovery_start', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backups').dropColumn('recovery_start').execute();
  await db.schema.alterTable('backups').dropColumn('method').execute();
  await db.schema.dropTable('archive_copies').execute();
  await db.schema.dropTable('archive_files').execute();
  await db.schema.dropTable('archivers').execute();
}
