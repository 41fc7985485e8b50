import type { Kysely } from 'kysely';

/**
 * Restore fidelity: a backup records the largest statement of its dump (MySQL: compared
 * with the target's max_allowed_packet before a restore), the properties of the database
 * itself (encoding, locale, collation, settings, comment) to create the restored one
 * with, and the roles its objects need (and, on MySQL, the grants to re-create). A MariaDB
 * branch can ask for system-versioned history in its dumps (branch_options).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backups').addColumn('largest_statement', 'bigint').execute();
  await db.schema.alterTable('backups').addColumn('database_properties', 'text').execute();
  await db.schema.alterTable('backups').addColumn('ownership', 'text').execute();
  // A table of its own, so that branch rows (PlanetScale's fields) stay as they are.
  await db.schema
    .createTable('branch_options')
    .addColumn('branch_id', 'text', (c) => c.primaryKey().references('branches.id'))
    .addColumn('dump_history', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
