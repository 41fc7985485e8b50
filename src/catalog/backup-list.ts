/**
 * One page of a branch's backups, newest first, with its exact total_count, in time that
 * does not grow with the branch's history (issue 14: 100,000 backups on one branch).
 *
 * The PlanetScale list is numbered pages (page, per_page, total_count). Done plainly that is
 * count(*) over the branch and OFFSET (page - 1) × per_page: both read every row before the
 * page. Here:
 *   - total_count is the sum of the branch's rows in backup_counts (per live/state/policy/
 *     month, kept exact by triggers: migration 0018) for the filters it covers (none, state,
 *     policy, all);
 *   - the same per-month sums say which month holds the page's first row and how many rows of
 *     that month come before it, so the page is an index seek to that month's end and a skip of
 *     at most one month's entries (index only: the keys first, then the rows of the page by id);
 *   - from / to / running_at (ranges of times the counters do not know) are counted and skipped
 *     over the indexes of 0018 instead, keys first as well.
 * The result is the same page OFFSET gives (test/api/list-paging.test.ts compares them).
 */
import { sql, type ExpressionBuilder } from 'kysely';
import type { CatalogDb } from './db.js';
import type { Backup, CatalogSchema } from './schema.js';
import type { BackupFilter } from './backups.js';
import { memoized } from './memo.js';

/** Rows of `backups` that pass the filter, as a query to add to (select, order, limit). */
function filtered(db: CatalogDb, f: BackupFilter) {
  let q = db.selectFrom('backups').where('branch_id', '=', f.branchId);
  if (!f.includeDeleted) q = q.where('deleted_at', 'is', null);
  if (f.state) q = q.where('state', '=', f.state);
  if (f.policyId) q = q.where('backup_policy_id', '=', f.policyId);
  // Spelled exactly as the expression index of migration 0018, so that SQLite uses it.
  const startedOrCreated = sql<string>`coalesce(started_at, created_at)`;
  if (f.from) q = q.where(startedOrCreated, '>=', f.from);
  if (f.to) q = q.where(startedOrCreated, '<=', f.to);
  if (f.runningAt) {
    const { start, end } = f.runningAt;
    // It ran during [start, end] if it started before the end and had not finished before the start.
    q = q.where('started_at', 'is not', null).where('started_at', '<=', end).where((eb) => eb.or([eb('completed_at', 'is', null), eb('completed_at', '>=', start)]));
  }
  return q;
}

/** Whether backup_counts can count this filter (it knows branch, live, state and policy, not times). */
function counted(f: BackupFilter): boolean {
  return f.from === undefined && f.to === undefined && f.runningAt === undefined;
}

/** Per month ('YYYY-MM' of created_at), newest first, how many backups pass the filter. */
async function monthCounts(db: CatalogDb, f: BackupFilter): Promise<ReadonlyArray<{ month: string; n: number }>> {
  const key = `months\u0000${f.branchId}\u0000${f.includeDeleted ? 1 : 0}\u0000${f.state ?? ''}\u0000${f.policyId ?? ''}`;
  return memoized(db, key, async () => {
    let q = db.selectFrom('backup_counts').where('branch_id', '=', f.branchId);
    if (!f.includeDeleted) q = q.where('live', '=', 1);
    if (f.state) q = q.where('state', '=', f.state);
    if (f.policyId) q = q.where('policy_key', '=', f.policyId);
    const rows = await q
      .select((eb) => ['month', eb.fn.sum<number | string>('n').as('n')])
      .groupBy('month')
      .orderBy('month', 'desc')
      .execute();
    return rows.map((r) => ({ month: r.month, n: Number(r.n) })).filter((r) => r.n > 0);
  });
}

/**
 * Page `page` (from 1) of `perPage` backups passing `f`, newest first, with only `columns` of
 * each (what the caller shows; the wide JSON columns cost more to read than the rest) and
 * `stored_bytes` (the bytes of its good stored copies, summed in the same query from the
 * artifacts index: a second query for a page's copies cost as much as the page), and the
 * number of backups passing `f`.
 */
export async function listBackups<C extends keyof Backup>(
  db: CatalogDb,
  f: BackupFilter,
  page: number,
  perPage: number,
  columns: readonly C[],
): Promise<{ rows: Array<Pick<Backup, C> & StoredBytes>; total: number }> {
  const cols = columns as unknown as Array<keyof Backup>;
  const skip = (page - 1) * perPage;
  let total: number;
  let before: string | null = null; // the page starts below this created_at (exclusive)
  let offset = skip; // rows to skip from there
  if (counted(f)) {
    const months = await monthCounts(db, f);
    total = months.reduce((a, m) => a + m.n, 0);
    if (skip >= total) return { rows: [], total };
    // Whole months before the page's first row are stepped over by their counts.
    for (const m of months) {
      if (offset < m.n) break;
      offset -= m.n;
      // 'YYYY-MM': every created_at of that month and later sorts at or after it.
      before = m.month;
    }
  } else {
    const { n } = await filtered(db, f)
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .executeTakeFirstOrThrow();
    total = Number(n);
    if (skip >= total) return { rows: [], total };
  }
  if (!counted(f) && total <= SORT_KEYS_BELOW) {
    // A range of times: the planner would rather walk the list's order and test every row
    // than sort, which is right for wide ranges and slow for narrow ones far in the past. A
    // range of a few thousand backups is read from the expression index alone and sorted here.
    const all = await filtered(db, f).select(['id', 'created_at']).execute();
    all.sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return { rows: await rowsByIds<Pick<Backup, C> & StoredBytes>(db, all.slice(skip, skip + perPage).map((r) => r.id), cols), total };
  }
  let keys = filtered(db, f);
  if (before !== null) keys = keys.where('created_at', '<', before);
  const ordered = keys.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(perPage);
  // No row to skip: the page itself. Else the keys of the page first (an index-only skip; the
  // skipped rows are never read), then its rows.
  if (offset === 0) return { rows: storedAsNumber(await ordered.select(cols).select(storedBytes).execute()) as Array<Pick<Backup, C> & StoredBytes>, total };
  const ids = (await ordered.select('id').offset(offset).execute()).map((r) => r.id);
  return { rows: await rowsByIds<Pick<Backup, C> & StoredBytes>(db, ids, cols), total };
}

/** Below this many backups in a range of times, its keys are sorted in memory (see listBackups). */
const SORT_KEYS_BELOW = 5000;

/** The rows of these ids, in this order. */
async function rowsByIds<R>(db: CatalogDb, ids: string[], cols: Array<keyof Backup>): Promise<R[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('backups').select([...new Set([...cols, 'id' as const])]).select(storedBytes).where('id', 'in', ids).execute();
  const byId = new Map(storedAsNumber(rows).map((b) => [b.id, b]));
  return ids.flatMap((id) => (byId.has(id) ? [byId.get(id) as R] : []));
}

export interface StoredBytes {
  /** The bytes of the backup's stored copies in state success (what storage costs for it). */
  stored_bytes: number;
}

/** `stored_bytes` of a row of `backups`: a correlated sum over the artifacts index (backup_id, state). */
const storedBytes = (eb: ExpressionBuilder<CatalogSchema, 'backups'>) =>
  eb
    .selectFrom('artifacts')
    .select((a) => a.fn.coalesce(a.fn.sum<number | string>('artifacts.size'), a.lit(0)).as('n'))
    .whereRef('artifacts.backup_id', '=', 'backups.id')
    .where('artifacts.state', '=', 'success')
    .as('stored_bytes');

/** PostgreSQL sums bigints as numeric, which arrives as a string. */
function storedAsNumber<R extends { stored_bytes: number | string | null }>(rows: R[]): Array<R & StoredBytes> {
  for (const r of rows) (r as { stored_bytes: number }).stored_bytes = Number(r.stored_bytes ?? 0);
  return rows as Array<R & StoredBytes>;
}
