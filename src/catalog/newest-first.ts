/**
 * Backups of one or several branches, newest first ((created_at, id) descending), read from
 * the per-branch index (branch_id, deleted_at, created_at, id) of migration 0018 so that the
 * cost of a page does not grow with the branches' history (issue 14): the keyset pages of the
 * Yandex view and backupman's full list.
 *
 * Written plainly, "live backups of these branches in these states, newest first, after this
 * position" is one query with `branch_id in (...)`, `state in (...)` and an OR on the position:
 * the planners answer it by reading every matching row and sorting (0.7 s for a folder of
 * 100,000 backups on SQLite), or by walking a branch's index from its newest entry and testing
 * the position on each (a deep page reads everything before it). Here each branch is its own
 * walk of its index, entered at the position with a row-value comparison ((created_at, id) <
 * (?, ?), which both SQLite and PostgreSQL seek on), the walks are merged, and the states are
 * tested as the complement (`state not in`), which no index serves, so that the planner never
 * prefers the (branch, state) index and a sort of everything in those states.
 */
import type { CatalogDb } from './db.js';
import type { Backup, BackupState } from './schema.js';

/** A place in the newest-first order: the page after it starts strictly below it. */
export interface Position {
  createdAt: string;
  id: string;
}

export interface BackupKey {
  id: string;
  created_at: string;
}

/** Every state a backup can be in (the compiler checks that none is missing). */
const BACKUP_STATES = Object.keys({ pending: 1, running: 1, success: 1, failed: 1, canceled: 1, ignored: 1 } satisfies Record<BackupState, 1>) as BackupState[];

/** At most this many branch walks in one statement (SQLite allows 500 parts in a compound select). */
const WALKS_PER_STATEMENT = 100;

/** Newest first: (created_at, id) descending. */
export function newestFirst(a: BackupKey, b: BackupKey): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The live backups of one branch in `states`, newest first, after `after`: a walk of (branch_id, deleted_at, created_at, id). */
function walk<C extends keyof Backup>(db: CatalogDb, branchId: string, states: readonly BackupState[], after: Position | null, columns: readonly C[]) {
  const others = BACKUP_STATES.filter((s) => !states.includes(s));
  let q = db.selectFrom('backups').select([...new Set<keyof Backup>([...columns, 'id', 'created_at'])]).where('branch_id', '=', branchId).where('deleted_at', 'is', null);
  if (others.length) q = q.where('state', 'not in', others);
  if (after) q = q.where(({ eb, refTuple, tuple }) => eb(refTuple('created_at', 'id'), '<', tuple(after.createdAt, after.id)));
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc');
}

/**
 * Which of `branchIds` have a live backup in one of `states` created in or before the month
 * of `after`: from the counters of migration 0018 (a few rows a branch), so that a folder's
 * many branches without any (restored copies, idle ones) cost no walk at all.
 */
async function branchesWithAny(db: CatalogDb, branchIds: string[], states: readonly BackupState[], after: Position | null): Promise<string[]> {
  const out = new Set<string>();
  for (let i = 0; i < branchIds.length; i += 1000) {
    let q = db.selectFrom('backup_counts').select('branch_id').distinct().where('branch_id', 'in', branchIds.slice(i, i + 1000)).where('live', '=', 1).where('state', 'in', [...states]).where('n', '>', 0);
    if (after) q = q.where('month', '<=', after.createdAt.slice(0, 7));
    for (const r of await q.execute()) out.add(r.branch_id);
  }
  return branchIds.filter((id) => out.has(id));
}

/**
 * The newest `limit` live backups of `branchIds` in one of `states`, strictly after `after`
 * (from the newest when null), with `columns` of each: at most `limit` index entries and rows
 * of each branch.
 */
export async function newestBackups<C extends keyof Backup>(
  db: CatalogDb,
  opts: { branchIds: readonly string[]; states: readonly BackupState[]; after: Position | null; limit: number; columns: readonly C[] },
): Promise<Array<Pick<Backup, C | 'id' | 'created_at'>>> {
  type Row = Pick<Backup, C | 'id' | 'created_at'>;
  const { after, limit, states, columns } = opts;
  let branchIds = [...new Set(opts.branchIds)];
  if (limit <= 0 || branchIds.length === 0 || states.length === 0) return [];
  if (branchIds.length > 1) branchIds = await branchesWithAny(db, branchIds, states, after);
  const rows: Row[] = [];
  for (let i = 0; i < branchIds.length; i += WALKS_PER_STATEMENT) {
    const chunk = branchIds.slice(i, i + WALKS_PER_STATEMENT).map((id) => walk(db, id, states, after, columns).limit(limit));
    if (chunk.length === 1) {
      rows.push(...((await chunk[0].execute()) as Row[]));
      continue;
    }
    // Each walk is a subquery (SQLite takes ORDER BY/LIMIT only on the last part of a compound select).
    let q = db.selectFrom(chunk[0].as('w0')).selectAll();
    for (const [k, w] of chunk.slice(1).entries()) q = q.unionAll(db.selectFrom(w.as(`w${k + 1}`)).selectAll());
    rows.push(...((await q.execute()) as Row[]));
  }
  return rows.sort(newestFirst).slice(0, limit);
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
  const walks = [...new Set(opts.branchIds)].map((branchId) => ({ branchId, rows: [] as Row[], next: 0, done: false, after: null as Position | null }));
  const states = BACKUP_STATES.filter((s) => s !== 'ignored');
  const refill = async (w: (typeof walks)[number]) => {
    w.rows = (await walk(db, w.branchId, states, w.after, opts.columns).limit(batch).execute()) as Row[];
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
