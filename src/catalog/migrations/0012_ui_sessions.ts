import type { Kysely } from 'kysely';

/**
 * Dashboard sessions (issue 12): a browser signs in once with a service token and then
 * holds a random session secret in an HttpOnly cookie. Only the secret's sha256 is stored
 * (the row's id), so a copy of the catalog cannot be replayed as a session. The CSRF token
 * is not a credential on its own (it is useless without the cookie), so it is kept as is.
 * expires_at is the idle deadline, moved forward as the session is used.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('ui_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('token_id', 'text', (c) => c.notNull().references('service_tokens.id'))
    .addColumn('csrf_token', 'text', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ui_sessions_token').on('ui_sessions').column('token_id').execute();
  await db.schema.createIndex('ui_sessions_expires').on('ui_sessions').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('ui_sessions').execute();
}
