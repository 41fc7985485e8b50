import type { Kysely } from 'kysely';

/**
 * Schema snapshots: the DDL of a branch captured with each backup. Identical schemas of
 * one branch share one snapshot row (deduplicated by sha256).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('schema_snapshots')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('database_id', 'text', (c) => c.notNull().references('databases.id'))
    .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('ddl', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('linted_at', 'text')
    .execute();
  await db.schema.createIndex('schema_snapshots_branch_sha').on('schema_snapshots').columns(['branch_id', 'sha256']).execute();
  await db.schema.alterTable('backups').addColumn('schema_snapshot_id', 'text').execute();
}
