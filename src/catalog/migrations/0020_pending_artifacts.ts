import { sql, type Kysely } from 'kysely';

/**
 * The copies still being written (`artifacts.state = 'pending'`), few at any time: recovery
 * looks for those whose backup has already ended (a process killed between failing a backup
 * and clearing its copies left them pending for good), on every lease check, without reading
 * every artifact. A partial index, on SQLite and PostgreSQL alike.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('artifacts_pending').on('artifacts').column('backup_id').where(sql.ref('state'), '=', 'pending').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('artifacts_pending').execute();
}
