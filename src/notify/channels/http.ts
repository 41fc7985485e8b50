/**
 * The HTTP part every web channel shares: one POST with a deadline, the answer turned into
 * a SendResult, and secrets (tokens in URLs) scrubbed from whatever the error says.
 */
import { cleanErrorText } from '../../error-text.js';
import { ChannelConfigError, type SendResult } from './channel.js';

/** Longest part of a failed answer's body kept in the error. */
const BODY_SNIPPET = 300;

/** An http(s) URL from user input, checked: the field is named in the error. */
export function httpUrl(value: unknown, field: string): string {
  if (value === undefined || value === null || value === '') throw new ChannelConfigError(`${field} is required: an http:// or https:// URL`);
  if (typeof value !== 'string' || value.trim() === '') throw new ChannelConfigError(`${field} must be an http:// or https:// URL (a string)`);
  if (value.length > 2048) throw new ChannelConfigError(`${field} is longer than 2048 characters`);
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    throw new ChannelConfigError(`${field} is not a valid URL: expected http://... or https://...`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ChannelConfigError(`${field} must be an http:// or https:// URL, not ${u.protocol.replace(/:$/, '')}://`);
  if (u.username || u.password) throw new ChannelConfigError(`${field} must not carry a user name or password (user:password@host): it would be shown back in the API`);
  return u.toString();
}

/** Replace every secret in `text` (when long enough to be one) with "[redacted]". */
export function redact(text: string, secrets: readonly string[]): string {
  return secrets.filter((s) => s.length >= 4).reduce((t, s) => t.split(s).join('[redacted]'), text);
}

/** Why a fetch threw, in words: timeout, refused, unknown host... */
function describeFetchError(e: unknown, timeoutMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return `no answer within ${timeoutMs / 1000} s`;
  const code = err?.cause?.code;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset by the server',
    ENOTFOUND: 'unknown host',
    EAI_AGAIN: 'the host name could not be resolved (DNS)',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    CERT_HAS_EXPIRED: 'the server certificate has expired',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed',
    UND_ERR_SOCKET: 'the connection closed before an answer',
  };
  if (code && known[code]) return `${known[code]} (${code})`;
  // fetch refuses the ports browsers block (1, 25, 6000...) with just "bad port".
  if (err?.cause?.message === 'bad port') return 'the port is one the HTTP client refuses to use (like browsers, it blocks ports such as 25 and 6000): use another port';
  return err?.cause?.message ?? err?.message ?? String(e);
}

export interface PostRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Strings that must not show in the error (tokens inside the URL, passwords). */
  secrets?: readonly string[];
  /** Read a failed answer's body for a better reason (Telegram's `description`). */
  describeFailure?: (status: number, body: string) => string | null;
}

/** POST once; success is a 2xx answer within the deadline. Redirects are not followed (a 3xx is a failure). */
export async function post(req: PostRequest): Promise<SendResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const secrets = req.secrets ?? [];
  try {
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body, redirect: 'manual', signal: AbortSignal.timeout(req.timeoutMs) });
    const text = await res.text();
    if (res.status >= 200 && res.status < 300) return { success: true, status_code: res.status, error: null, duration_ms: ms() };
    const detail = req.describeFailure?.(res.status, text) ?? text.slice(0, BODY_SNIPPET).trim();
    const where = res.status >= 300 && res.status < 400 ? ` (a redirect to ${res.headers.get('location') ?? 'nowhere'}: use the final URL)` : '';
    const error = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${where}${detail ? `: ${detail}` : ''}`;
    return { success: false, status_code: res.status, error: cleanErrorText(redact(error, secrets), 500), duration_ms: ms() };
  } catch (e) {
    return { success: false, status_code: null, error: cleanErrorText(redact(describeFetchError(e, req.timeoutMs), secrets), 500), duration_ms: ms() };
  }
}

/** A string setting, trimmed; required unless `optional`. */
export function text(input: Record<string, unknown>, field: string, opts: { optional?: boolean; max?: number } = {}): string | undefined {
  const v = input[field];
  if (v === undefined || v === null || v === '') {
    if (opts.optional) return undefined;
    throw new ChannelConfigError(`config.${field} is required`);
  }
  if (typeof v !== 'string') throw new ChannelConfigError(`config.${field} must be a string`);
  if (v.length > (opts.max ?? 1000)) throw new ChannelConfigError(`config.${field} is longer than ${opts.max ?? 1000} characters`);
  return v.trim();
}

/** Refuse settings a channel does not know, naming them and the ones it does. */
export function onlyFields(input: Record<string, unknown>, known: readonly string[], type: string): void {
  const unknown = Object.keys(input).filter((k) => !known.includes(k));
  if (unknown.length) throw new ChannelConfigError(`config: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} for a ${type} channel (known: ${known.join(', ')})`);
}
