import { sql, type Kysely } from 'kysely';

/**
 * A live backup policy's name is unique in its database. The API checked it before
 * inserting, but on a PostgreSQL catalog six concurrent creations of one name all got
 * through the check (SQLite's single writer had hidden the race). A partial unique index
 * (deleted policies keep their names) makes the catalog refuse the losers; the API maps
 * that to 409. Names duplicated before this index existed are renamed "<name>~dup~<id>".
 */
export async function up(db: Kysely<any>): Promise<void> {
  const live = await db.selectFrom('backup_policies').select(['id', 'database_id', 'name', 'created_at']).where('deleted_at', 'is', null).orderBy('created_at').orderBy('id').execute();
  const seen = new Set<string>();
  for (const p of live) {
    const key = `${p.database_id}\u0000${p.name}`;
    if (!seen.has(key)) {
      seen.add(key);
      continue;
    }
    await db.updateTable('backup_policies').set({ name: `${p.name}~dup~${p.id}` }).where('id', '=', p.id).execute();
  }
  await db.schema.createIndex('backup_policies_live_name').on('backup_policies').columns(['database_id', 'name']).unique().where(sql.ref('deleted_at'), 'is', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('backup_policies_live_name').execute();
}
