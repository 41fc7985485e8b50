/**
 * Backups of one or several branches, newest first ((created_at, id) descending), read from
 * the per-branch indexes of migration 0018 so that the cost of a page does not grow with the
 * branches' history (issue 14): the keyset pages of the Yandex view and backupman's full list.
 *
 * Written plainly, "backups of these branches in these states, newest first, after this
 * position" is one query with `branch_id in (...)`, `state in (...)` and an OR on the position:
 * the planners answer it by reading every matching row and sorting (0.7 s for a folder of
 * 100,000 backups on SQLite), or by walking the branch's index from its newest entry and
 * testing the position on each (a deep page reads everything before it). Here each (branch,
 * state) is its own index range, entered at the position with a row-value comparison
 * ((created_at, id) < (?, ?), which both SQLite and PostgreSQL seek on), the ranges are merged
 * (one statement, UNION ALL), and only then are the rows of the page read, by id.
 */
import type { CatalogDb } from './db.js';
import type { Backup } from './schema.js';

/** A place in the newest-first order: the page after it starts strictly below it. */
export interface Position {
  createdAt: string;
  id: string;
}

export interface BackupKey {
  id: string;
  created_at: string;
}

/** At most this many index ranges in one statement (SQLite allows 500 parts in a compound select). */
const PARTS_PER_STATEMENT = 120;

/** Newest first: (created_at, id) descending. */
export function newestFirst(a: BackupKey, b: BackupKey): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The keys of the newest `limit` backups of `branchIds` that are in one of `states` and not
 * deleted, strictly after `after` (from the newest when null). Reads only the index
 * (branch_id, state, deleted_at, created_at, id): at most `limit` entries of each (branch,
 * state), never a backup row.
 */
export async function newestKeys(db: CatalogDb, opts: { branchIds: readonly string[]; states: readonly Backup['state'][]; after: Position | null; limit: number }): Promise<BackupKey[]> {
  const { after, limit } = opts;
  if (limit <= 0 || opts.branchIds.length === 0 || opts.states.length === 0) return [];
  const ranges: Array<{ branchId: string; state: Backup['state'] }> = [];
  for (const branchId of new Set(opts.branchIds)) for (const state of new Set(opts.states)) ranges.push({ branchId, state });
  const range = ({ branchId, state }: { branchId: string; state: Backup['state'] }) => {
    let q = db.selectFrom('backups').select(['id', 'created_at']).where('branch_id', '=', branchId).where('state', '=', state).where('deleted_at', 'is', null);
    if (after) q = q.where(({ eb, refTuple, tuple }) => eb(refTuple('created_at', 'id'), '<', tuple(after.createdAt, after.id)));
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
  };
  const keys: BackupKey[] = [];
  for (let i = 0; i < ranges.length; i += PARTS_PER_STATEMENT) {
    const chunk = ranges.slice(i, i + PARTS_PER_STATEMENT);
    if (chunk.length === 1) {
      keys.push(...(await range(chunk[0]).execute()));
      continue;
    }
    // Each range is a subquery (SQLite takes ORDER BY/LIMIT only on the last part of a
    // compound select); the union is ordered and cut once more.
    let q = db.selectFrom(range(chunk[0]).as('r0')).select(['id', 'created_at']);
    for (const [k, r] of chunk.slice(1).entries()) q = q.unionAll(db.selectFrom(range(r).as(`r${k + 1}`)).select(['id', 'created_at']));
    keys.push(...(await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute()));
  }
  return keys.sort(newestFirst).slice(0, limit);
}

/** The rows of these ids (only `columns` of each), in the order of `ids`; ids without a row are left out. */
export async function backupsByIds<C extends keyof Backup>(db: CatalogDb, ids: readonly string[], columns: readonly C[]): Promise<Array<Pick<Backup, C | 'id'>>> {
  if (ids.length === 0) return [];
  const cols = [...new Set<keyof Backup>([...columns, 'id'])];
  const byId = new Map<string, Pick<Backup, C | 'id'>>();
  // Well under SQLite's 32,766 bound values and PostgreSQL's 65,535 a statement.
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = (await db.selectFrom('backups').select(cols).where('id', 'in', ids.slice(i, i + 1000)).execute()) as Array<Pick<Backup, C | 'id'>>;
    for (const r of rows) byId.set(r.id, r);
  }
  return ids.flatMap((id) => {
    const r = byId.get(id);
    return r ? [r] : [];
  });
}

/**
 * Every live (not deleted) backup of `branchIds` except skipped runs (`ignored`), newest first,
 * `batch` at a time (only `columns` of each): a merge of one keyset walk per branch over
 * (branch_id, deleted_at, created_at, id), so that listing everything reads each row once and
 * never sorts the whole set, and the caller can yield between batches.
 */
export async function* liveBackupsNewestFirst<C extends keyof Backup>(
  db: CatalogDb,
  opts: { branchIds: readonly string[]; columns: readonly C[]; batch?: number },
): AsyncGenerator<Array<Pick<Backup, C | 'id' | 'created_at'>>> {
  type Row = Pick<Backup, C | 'id' | 'created_at'>;
  const batch = opts.batch ?? 500;
  const cols = [...new Set<keyof Backup>([...opts.columns, 'id', 'created_at'])];
  const walks = [...new Set(opts.branchIds)].map((branchId) => ({ branchId, rows: [] as Row[], next: 0, done: false, after: null as Position | null }));
  const refill = async (w: (typeof walks)[number]) => {
    let q = db.selectFrom('backups').select(cols).where('branch_id', '=', w.branchId).where('deleted_at', 'is', null).where('state', '!=', 'ignored');
    const after = w.after;
    if (after) q = q.where(({ eb, refTuple, tuple }) => eb(refTuple('created_at', 'id'), '<', tuple(after.createdAt, after.id)));
    w.rows = (await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(batch).execute()) as Row[];
    w.next = 0;
    w.done = w.rows.length < batch;
    const last = w.rows[w.rows.length - 1];
    if (last) w.after = { createdAt: last.created_at, id: last.id };
  };
  for (const w of walks) await refill(w);
  let out: Row[] = [];
  for (;;) {
    let best: (typeof walks)[number] | null = null;
    for (const w of walks) {
      if (w.next >= w.rows.length) {
        if (w.done) continue;
        await refill(w);
        if (w.rows.length === 0) continue;
      }
      if (!best || newestFirst(w.rows[w.next], best.rows[best.next]) < 0) best = w;
    }
    if (!best) break;
    out.push(best.rows[best.next++]);
    if (out.length >= batch) {
      yield out;
      out = [];
    }
  }
  if (out.length) yield out;
}
