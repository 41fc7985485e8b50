/**
 * Turning Drive API answers and network failures into StorageErrors that say whether a
 * retry can help, with every secret scrubbed from their messages.
 */
import { StorageError } from '../provider.js';

/** 403 reasons that are throttling, not a refusal: waiting fixes them. */
const RATE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);

/** Keeps the secrets in play (configured ones, access tokens, assertions) and removes them from text. */
export class Scrubber {
  readonly #fixed: string[];
  #recent: string[] = [];

  constructor(secrets: string[]) {
    this.#fixed = secrets.filter((s) => s.length >= 4);
  }

  /** Remember a secret minted at run time (a token); only the latest few are kept. */
  add(secret: string): void {
    if (secret.length < 4 || this.#recent.includes(secret)) return;
    this.#recent.push(secret);
    if (this.#recent.length > 16) this.#recent.shift();
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of [...this.#fixed, ...this.#recent]) out = out.split(secret).join('[redacted]');
    // Whatever slipped through that still looks like a Google token or a key.
    return out
      .replace(/ya29\.[A-Za-z0-9._-]+/g, '[redacted]')
      .replace(/\b1\/\/[A-Za-z0-9._-]{10,}/g, '[redacted]')
      .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[redacted]')
      .replace(/(Bearer\s+)\S+/gi, '$1[redacted]');
  }

  /** A failure to get any answer: always worth retrying. */
  networkError(what: string, err: unknown, timeoutMs: number): StorageError {
    if (err instanceof StorageError) return err;
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } } | null;
    let why: string;
    // Our own timers say what ran out ("no data for …"); AbortSignal.timeout's does not.
    if (e?.name === 'TimeoutError') why = e.message?.startsWith('no ') ? e.message : `no answer within ${timeoutMs} ms`;
    else if (e?.name === 'AbortError') why = 'the request was cancelled';
    else {
      // fetch says only "fetch failed"; the cause names the real trouble.
      const cause = e?.cause;
      why = [cause?.code, cause?.message].filter((s) => typeof s === 'string' && s !== '').join(' ') || (e?.message ?? String(err));
    }
    // Never transient-but-named AbortError: retry wrappers take that name for "stop".
    return new StorageError(this.scrub(`google drive: cannot ${what}: ${why}`), false, false, { cause: err });
  }

  /** A Drive API answer that is not a success. */
  apiError(what: string, status: number, body: string, opts: { notFound?: boolean } = {}): StorageError {
    const { reason, message } = parseGoogleError(body);
    const transient = status === 408 || status === 429 || status >= 500 || (status === 403 && RATE_LIMIT_REASONS.has(reason));
    const detail = [reason, message].filter((s) => s !== '').join(': ');
    return new StorageError(
      this.scrub(`google drive: cannot ${what}: HTTP ${status}${detail ? ` ${detail}` : ''}`),
      !transient,
      opts.notFound === true && status === 404,
    );
  }
}

/** `{"error": {"message", "errors": [{"reason"}], "status"}}`, Google's error body. */
export function parseGoogleError(body: string): { reason: string; message: string } {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    const error = parsed.error;
    if (typeof error === 'object' && error !== null) {
      const e = error as { message?: unknown; status?: unknown; errors?: Array<{ reason?: unknown }> };
      const first = Array.isArray(e.errors) ? e.errors[0] : undefined;
      const reason = typeof first?.reason === 'string' ? first.reason : typeof e.status === 'string' ? e.status : '';
      // Cut long messages: they end up in logs and job errors.
      const message = typeof e.message === 'string' ? e.message.slice(0, 300) : '';
      return { reason, message };
    }
    if (typeof error === 'string') return { reason: error, message: '' };
  } catch {
    // An HTML error page from a proxy: the status says enough.
  }
  return { reason: '', message: '' };
}
