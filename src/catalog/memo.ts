/**
 * Small catalog lookups reused while nothing in the catalog changed (issue 14: the backups
 * list at 100,000 backups). An API request names an organization, a database and a branch,
 * and a list page needs the branch's per-month counts, the page's policies and the branches
 * restored from its backups: that was six of the request's eight queries. Here each is kept
 * under the catalog's change stamp (Catalog.changeStamp) and computed again after any write
 * by any process. The stamp is read before the value is computed, so a value is only ever
 * reused under a stamp no write has moved since, and is at least as new as that stamp.
 *
 * - SQLite: `PRAGMA data_version` and `total_changes()`, read synchronously (microseconds)
 *   before each lookup, wherever it is made.
 * - PostgreSQL: the stamp is a round trip (`txid_current_snapshot()`), so it is read once per
 *   API request (the first lookup, or the response cache, asks for it; `requestScope`) and
 *   every lookup of that request uses it: the request sees the catalog as of that moment or
 *   later, as if it had made all its reads then. A request that writes (any statement but a
 *   SELECT: writesEndRequestMemo) keeps and reuses nothing from then on. Outside a request
 *   (jobs, the scheduler) nothing is kept on PostgreSQL.
 *
 * Reads inside a transaction (a Kysely Transaction, not the catalog's own instance) are never
 * kept: they must see the transaction's own writes. Values are frozen: they are shared by
 * every request until the next write, so a caller that tried to change one would fail loudly.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type { CatalogDb } from './db.js';

/** Entries kept per stamp at most; more are computed but not kept. */
const MAX_ENTRIES = 20_000;

/** What one API request shares: its PostgreSQL change stamp, read once, when first asked for. */
export interface RequestScope {
  stamp?: Promise<string>;
  /** The request wrote to the catalog: from then on it keeps and reuses nothing (its stamp is from before). */
  wrote?: boolean;
}

/**
 * A Kysely plugin for the PostgreSQL catalog: any statement but a SELECT (raw SQL included)
 * marks the request that runs it as having written.
 */
export const writesEndRequestMemo: KyselyPlugin = {
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (args.node.kind !== 'SelectQueryNode') {
      const scope = requestScope.getStore();
      if (scope !== undefined) scope.wrote = true;
    }
    return args.node;
  },
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  },
};

/** The scope of the API request being served (app.ts enters it first thing). */
export const requestScope = new AsyncLocalStorage<RequestScope>();

/** A stamp now (SQLite), a promise of one (PostgreSQL, in a request), or null: keep nothing. */
export type StampSource = () => string | Promise<string> | null;

class Memo {
  #stamp = '';
  #values = new Map<string, unknown>();
  constructor(readonly stamp: StampSource) {}

  async get<T>(key: string, compute: () => Promise<T>): Promise<T> {
    const read = this.stamp();
    if (read === null) return deepFreeze(await compute());
    const stamp = typeof read === 'string' ? read : await read;
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
export function enableMemo(db: CatalogDb, stamp: StampSource): void {
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
