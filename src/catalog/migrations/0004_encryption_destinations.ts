import type { Kysely } from 'kysely';

/**
 * Encryption and destination choice: a backup records how it was encrypted (and to whom,
 * as fingerprints), a database may choose its destinations, and a job may carry a sealed
 * secret (an age identity given with a restore request) until it finishes.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backups').addColumn('encryption', 'text').execute();
  await db.schema.alterTable('databases').addColumn('storage_destinations', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('secret_enc', 'text').execute();
}
