/**
 * The Yandex list calls' pages (Cluster.ListBackups, Backup.List): listed backups (CREATING or
 * DONE, not deleted) of some branches, newest first, after a page token's position.
 *
 * `listedPage` reads the page as one walk of each branch's index from the token's position
 * (catalog/newest-first.ts), so page 1 and page 1,000 cost the same at 100,000 backups.
 * `listedPagePlain` is the same page as one plain query (what every page did before); it
 * answers should a row's engine or organization not be its branch's, and the tests compare
 * the two.
 */
import type { CatalogDb } from '../../../catalog/db.js';
import { newestBackups } from '../../../catalog/newest-first.js';
import type { Backup } from '../../../catalog/schema.js';
import type { Cursor } from './paging.js';
import { LISTED_STATES, PRESENTED_COLUMNS, type Engine } from './present.js';

/** The columns a listed backup is presented from (presentBackup and journalSizes). */
const LIST_COLUMNS = [...PRESENTED_COLUMNS, 'recovery_start', 'engine', 'deleted_at'] as const;
export type ListedBackup = Pick<Backup, (typeof LIST_COLUMNS)[number]>;

export interface ListWhere {
  organizationId: string;
  engine: Engine;
  /** The branches (clusters) whose backups are listed: every branch of the organization whose database is of `engine`, or fewer. */
  branchIds: string[];
}

/** Up to `limit` listed backups after `cursor`, newest first. */
export async function listedPage(db: CatalogDb, where: ListWhere, cursor: Cursor | null, limit: number): Promise<ListedBackup[]> {
  const rows = await newestBackups(db, { branchIds: where.branchIds, states: LISTED_STATES, after: cursor, limit, columns: LIST_COLUMNS });
  // A backup's engine and organization are its branch's; should one not be, the plain query decides.
  const consistent = rows.every((r) => r.engine === where.engine && r.organization_id === where.organizationId);
  return consistent ? rows : listedPagePlain(db, where, cursor, limit);
}

/** The same page as one query over the organization's backups (what every page did before issue 14). */
export async function listedPagePlain(db: CatalogDb, where: ListWhere, cursor: Cursor | null, limit: number): Promise<ListedBackup[]> {
  if (where.branchIds.length === 0) return [];
  let q = db
    .selectFrom('backups')
    .select([...LIST_COLUMNS])
    .where('organization_id', '=', where.organizationId)
    .where('engine', '=', where.engine)
    .where('deleted_at', 'is', null)
    .where('state', 'in', [...LISTED_STATES])
    .where('branch_id', 'in', where.branchIds);
  if (cursor) q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
}
