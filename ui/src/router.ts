/**
 * Hash routing (`#/path?query`): the server serves one index.html at `/`, so it needs no
 * history fallback, and a link to a page is just a URL with a hash.
 */
import { useEffect, useState } from 'preact/hooks';
import { queryString } from './api.js';

export interface Location {
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const at = hash.indexOf('?');
  const path = at < 0 ? hash : hash.slice(0, at);
  return { path: path.startsWith('/') ? path : `/${path}`, query: new URLSearchParams(at < 0 ? '' : hash.slice(at + 1)) };
}

let navigations = 0;

/** How many times the hash changed since the page loaded (0: the first page shown). */
export function navigationCount(): number {
  return navigations;
}

/** The current location, re-rendering on every hash change. */
export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const changed = () => {
      navigations++;
      setLoc(current());
    };
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return loc;
}

type QueryValues = Record<string, string | number | boolean | undefined | null>;

/** A link target: `href('/restore', {backup: id})` → `#/restore?backup=...`. */
export function href(path: string, query: QueryValues = {}): string {
  return `#${path}${queryString(query)}`;
}

/** Go to a page (a new history entry, so Back works). */
export function navigate(path: string, query: QueryValues = {}): void {
  window.location.hash = href(path, query).slice(1);
}

/** A path from parts, each percent-encoded: `pagePath('databases', db, 'branches', branch)`. */
export function pagePath(...parts: string[]): string {
  return '/' + parts.map(encodeURIComponent).join('/');
}

/** Match `/databases/:database/...` against a path: the decoded parameters, or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':')) {
      try {
        params[want[i].slice(1)] = decodeURIComponent(got[i]);
      } catch {
        return null;
      }
    } else if (want[i] !== got[i]) return null;
  }
  return params;
}
