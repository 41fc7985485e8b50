/**
 * Keyset pages for the Yandex list calls. A page token is the (created_at, id) of the last
 * backup of the previous page, base64url JSON: the next page starts strictly after it in
 * (created_at desc, id desc) order. `created_at` never changes and a new backup always
 * sorts first, so paging through a list while backups are being added or removed never
 * repeats or skips one (offsets would).
 */
import { badRequest } from '../../errors.js';

export interface Cursor {
  /** created_at of the last backup of the previous page. */
  createdAt: string;
  id: string;
}

export const DEFAULT_PAGE_SIZE = 100;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export function encodePageToken(c: Cursor): string {
  return Buffer.from(JSON.stringify({ c: c.createdAt, i: c.id })).toString('base64url');
}

/** The cursor of a page token; "" or absent is the first page. 400 INVALID_ARGUMENT for anything we did not issue. */
export function decodePageToken(token: string | undefined): Cursor | null {
  if (token === undefined || token === '') return null;
  const invalid = () => badRequest(`pageToken "${token.slice(0, 100)}" is not a page token this API issued: pass the nextPageToken of the previous page unchanged, or no pageToken for the first page`);
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const p = parsed as { c?: unknown; i?: unknown } | null;
  if (!p || typeof p !== 'object' || typeof p.c !== 'string' || typeof p.i !== 'string' || !ISO.test(p.c) || !ID.test(p.i)) throw invalid();
  return { createdAt: p.c, id: p.i };
}

/** pageSize 0 (or absent) means the default. */
export function pageSizeOf(pageSize: number | undefined): number {
  return pageSize === undefined || pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
}
