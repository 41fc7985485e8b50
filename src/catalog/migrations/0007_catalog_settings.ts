import type { Kysely } from 'kysely';

/**
 * Facts about the catalog itself that every process on it must agree on, one row each:
 * first of all the fingerprint of the secret key its secrets are sealed with, so that a
 * process started with another key refuses to start instead of failing every job.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('catalog_settings')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
