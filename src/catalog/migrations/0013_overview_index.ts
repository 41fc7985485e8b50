import type { Kysely } from 'kysely';

/**
 * The dashboard's overview and the overdue rule (jobs/overdue.ts branchFreshness, which the
 * notifications and the metrics ask too) read "the newest success of every branch of an
 * organization" on every call. With (organization_id, state, branch_id, completed_at) that is
 * a read of this index alone, never of the backup rows: on 10,000 backups it went from 8 ms
 * to under 2 ms on SQLite (bench/overview.ts).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('backups_org_state_branch_completed').on('backups').columns(['organization_id', 'state', 'branch_id', 'completed_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('backups_org_state_branch_completed').execute();
}
