/**
 * The little of HTTP cookies the dashboard session needs: reading one cookie out of a
 * Cookie header and writing a Set-Cookie line. (No cookie plugin is installed; this is
 * RFC 6265's syntax, lenient in what it reads as browsers are.)
 */

/** The cookie that carries a dashboard session's secret. */
export const SESSION_COOKIE = 'strongbox_session';

/**
 * Every cookie of a Cookie header, by name. A name sent twice keeps its first value (the
 * most specific path comes first, RFC 6265 5.4); a value in double quotes loses them; a pair
 * without "=" or with an empty name is skipped, never an error: a bad cookie from another
 * app on the same host must not break the request.
 */
export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text) return out;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    if (name === '' || out.has(name)) continue;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.set(name, value);
  }
  return out;
}

export interface CookieOptions {
  /** Seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number;
  /** Only over https (the request came over https, or through a proxy that says so). */
  secure?: boolean;
}

/**
 * A Set-Cookie value for a cookie only this server's pages send back: HttpOnly (no script
 * reads it), SameSite=Strict (no other site's page makes the browser send it), Path=/.
 * The value must be a cookie-octet string: the callers give random base64url.
 */
export function serializeCookie(name: string, value: string, opts: CookieOptions = {}): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new Error(`not a cookie name: ${name}`);
  if (!/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/.test(value)) throw new Error('a cookie value holds a character cookies cannot carry');
  const parts = [`${name}=${value}`, 'HttpOnly', 'SameSite=Strict', 'Path=/'];
  if (opts.maxAge !== undefined) parts.push(`Max-Age=${Math.max(0, Math.floor(opts.maxAge))}`);
  if (opts.maxAge === 0) parts.push('Expires=Thu, 01 Jan 1970 00:00:00 GMT');
  if (opts.secure) parts.push('Secure');
  return parts.join('; ');
}
