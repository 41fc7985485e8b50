/**
 * Answers for catalog reads that are asked again before anything changed (issue 14).
 *
 * A dashboard, a CLI in a loop and monitoring scripts ask for the same backups page over and
 * over; each answer costs about ten catalog queries and a serialization (~1 ms of the one
 * event loop at 100,000 backups). Between two writes the answer cannot differ, so the body
 * sent last time is sent again, checked against the catalog's change stamp
 * (Catalog.changeStamp: one tiny query) on every request:
 *
 * - The stamp is taken before the answer is computed and stored with it. Any commit to the
 *   catalog after that point, by this process or another, makes the current stamp differ, so
 *   an answer is only ever reused while nothing it could depend on has changed.
 * - Only 200 answers of routes whose answer is a function of the catalog, the URL, the host
 *   the request named (absolute links) and who asks, are kept: the key is all four. Nothing
 *   in them depends on the clock. Authentication runs on every request as before (expired or
 *   deleted tokens are refused first), and what a token may see is in the catalog, so a
 *   change of accesses is a change of stamp.
 * - Bounded: at most STRONGBOX_RESPONSE_CACHE_ENTRIES answers (512; 0 keeps none) and
 *   MAX_BYTES bytes, least recently used dropped.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { originOf } from './paging.js';
import { responseCacheLookups } from '../metrics.js';

/** The operations (operationId) whose answers are kept: see the rules above before adding one. */
export const CACHED_OPERATIONS: ReadonlySet<string> = new Set([
  'list_backups',
  'get_backup',
  // The Yandex Cloud views of the same backups (page tokens are in the URL; no links).
  'postgresql_list_cluster_backups',
  'postgresql_list_backups',
  'postgresql_get_backup',
  'mysql_list_cluster_backups',
  'mysql_list_backups',
  'mysql_get_backup',
]);

/** Bytes of bodies kept at most, whatever the number of entries. */
const MAX_BYTES = 8 * 1024 * 1024;

interface Entry {
  stamp: string;
  body: string;
  contentType: string;
}

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    readonly maxEntries: number,
    private readonly maxBytes = MAX_BYTES,
  ) {}

  /** The body stored under `key` if it was stored under `stamp`. */
  get(key: string, stamp: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.stamp !== stamp) {
      this.drop(key, e);
      return undefined;
    }
    // Most recently used last (a Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  set(key: string, entry: Entry): void {
    const size = entry.body.length + key.length;
    if (size > this.maxBytes / 8) return; // one huge page must not push out everything else
    const old = this.entries.get(key);
    if (old !== undefined) this.drop(key, old);
    this.entries.set(key, entry);
    this.bytes += size;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [k, e] = this.entries.entries().next().value as [string, Entry];
      this.drop(k, e);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.body.length + key.length;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on a cacheable request that missed: where and under which stamp to keep its answer. */
    responseCacheSlot: { key: string; stamp: string } | null;
  }
}

/**
 * Keep the answers of CACHED_OPERATIONS (registered after this call) in `cache`, checked
 * against `stamp`. Call before the routes are registered.
 */
export function useResponseCache(app: FastifyInstance, cache: ResponseCache, stamp: () => Promise<string>): void {
  app.decorateRequest('responseCacheSlot', null);
  if (cache.maxEntries === 0) return;
  const preHandler = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.method !== 'GET' || req.principal == null) return;
    const key = `${req.principal.token.id}\u0000${originOf(req)}\u0000${req.url}`;
    const now = await stamp();
    const hit = cache.get(key, now);
    if (hit !== undefined) {
      responseCacheLookups.inc({ result: 'hit' });
      // A string is sent as it is (the route's serializer is for objects).
      await reply.header('content-type', hit.contentType).send(hit.body);
      return;
    }
    responseCacheLookups.inc({ result: 'miss' });
    req.responseCacheSlot = { key, stamp: now };
  };
  const onSend = async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const slot = req.responseCacheSlot;
    if (slot !== null && reply.statusCode === 200 && typeof payload === 'string') {
      const contentType = reply.getHeader('content-type');
      cache.set(slot.key, { stamp: slot.stamp, body: payload, contentType: typeof contentType === 'string' ? contentType : 'application/json; charset=utf-8' });
    }
    return payload;
  };
  app.addHook('onRoute', (route: RouteOptions) => {
    const id = (route.schema as { operationId?: string } | undefined)?.operationId;
    if (id === undefined || !CACHED_OPERATIONS.has(id)) return;
    route.preHandler = [...[route.preHandler ?? []].flat(), preHandler];
    route.onSend = [...[route.onSend ?? []].flat(), onSend];
  });
}
