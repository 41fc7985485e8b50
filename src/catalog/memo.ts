/**
 * Small catalog lookups reused while nothing in the catalog changed (issue 14: the backups
 * list at 100,000 backups). An API request names an organization, a database and a branch,
 * and a list page needs the branch's per-month counts, the page's policies and the branches
 * restored from its backups: on SQLite that was six of the request's eight queries, all on the
 * one event loop. Here each is kept under the catalog's change stamp (Catalog.changeStamp:
 * `PRAGMA data_version` and `total_changes()`, read synchronously for a few microseconds) and
 * recomputed after any write by any process. The stamp is read before the value is computed,
 * so a value is only ever reused under a stamp no write has moved since.
 *
 * SQLite only: on PostgreSQL the stamp costs the same round trip as the lookup. Reads inside a
 * transaction (a Kysely Transaction, not the catalog's own instance) are never memoized: they
 * must see the transaction's own writes. Values are frozen: they are shared by every request
 * until the next write, so a caller that tried to change one would fail loudly.
 */
import type { CatalogDb } from './db.js';

/** Entries kept per stamp at most; more are computed but not kept. */
const MAX_ENTRIES = 20_000;

class Memo {
  #stamp = '';
  #values = new Map<string, unknown>();
  constructor(readonly stamp: () => string) {}

  async get<T>(key: string, compute: () => Promise<T>): Promise<T> {
    const stamp = this.stamp();
    if (stamp !== this.#stamp) {
      this.#stamp = stamp;
      this.#values.clear();
    } else if (this.#values.has(key)) return this.#values.get(key) as T;
    const value = deepFreeze(await compute());
    if (this.#stamp === stamp && this.#values.size < MAX_ENTRIES) this.#values.set(key, value);
    return value;
  }
}

const memos = new WeakMap<object, Memo>();

/** Memoize lookups on `db` (the catalog's own Kysely instance) under `stamp`. */
export function enableMemo(db: CatalogDb, stamp: () => string): void {
  memos.set(db, new Memo(stamp));
}

/** `compute()`, or its value from earlier under the same change stamp. `key` must name everything the value depends on. */
export function memoized<T>(db: CatalogDb, key: string, compute: () => Promise<T>): Promise<T> {
  const memo = memos.get(db);
  return memo === undefined ? compute().then(deepFreeze) : memo.get(key, compute);
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  Object.freeze(value);
  if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
  else for (const v of Object.values(value)) deepFreeze(v);
  return value;
}
