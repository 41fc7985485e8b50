/**
 * Access tokens for the Drive API: from an OAuth refresh token, or from a service account's
 * RS256-signed JWT. A token is cached until shortly before it expires and shared by
 * concurrent callers; a 401 from the API drops it (see DriveHttp).
 */
import { createSign } from 'node:crypto';

import { StorageError } from '../provider.js';
import type { DriveCredentials } from './config.js';
import type { Scrubber } from './errors.js';

export const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** Google caps a service account assertion's lifetime at one hour. */
const ASSERTION_SECONDS = 3600;

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** A service account assertion: `header.claims.signature`, signed RS256. */
export function signServiceAccountJwt(clientEmail: string, privateKey: string, audience: string, nowMs = Date.now()): string {
  const iat = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ iss: clientEmail, scope: DRIVE_SCOPE, aud: audience, iat, exp: iat + ASSERTION_SECONDS }));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${claims}`);
  return `${header}.${claims}.${signer.sign(privateKey).toString('base64url')}`;
}

interface CachedToken {
  value: string;
  /** When to stop using it: shortly before Google says it expires. */
  refreshAt: number;
}

export class TokenSource {
  #token: CachedToken | null = null;
  #pending: Promise<string> | null = null;

  constructor(
    private readonly credentials: DriveCredentials,
    private readonly tokenUri: string,
    private readonly timeoutMs: number,
    private readonly scrubber: Scrubber,
  ) {}

  /** A valid access token, fetching a new one when none is cached or it is about to expire. */
  get(): Promise<string> {
    if (this.#token && Date.now() < this.#token.refreshAt) return Promise.resolve(this.#token.value);
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = null;
    });
    return this.#pending;
  }

  /** Forget `token` (the API refused it), unless a newer one has replaced it already. */
  invalidate(token: string): void {
    if (this.#token?.value === token) this.#token = null;
  }

  get kind(): string {
    return this.credentials.type === 'oauth' ? 'OAuth refresh token' : `service account ${this.credentials.client_email}`;
  }

  async #fetch(): Promise<string> {
    const c = this.credentials;
    const form = new URLSearchParams();
    if (c.type === 'oauth') {
      form.set('grant_type', 'refresh_token');
      form.set('client_id', c.client_id);
      form.set('client_secret', c.client_secret);
      form.set('refresh_token', c.refresh_token);
    } else {
      const assertion = signServiceAccountJwt(c.client_email, c.private_key, this.tokenUri);
      this.scrubber.add(assertion);
      form.set('grant_type', JWT_BEARER);
      form.set('assertion', assertion);
    }
    const what = `get an access token (${this.kind})`;
    const started = Date.now();
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw this.scrubber.networkError(what, err, this.timeoutMs);
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON: reported by status below.
    }
    if (!res.ok) {
      const code = typeof body.error === 'string' ? body.error : '';
      const description = typeof body.error_description === 'string' ? body.error_description : '';
      const detail = [code, description].filter((s) => s !== '').join(': ') || res.statusText;
      // 400 invalid_grant / 401 invalid_client: revoked token, wrong client or key. Only
      // throttling and server trouble can pass by waiting.
      const transient = res.status === 429 || res.status >= 500;
      throw new StorageError(this.scrubber.scrub(`google drive: cannot ${what}: HTTP ${res.status} ${detail}`), !transient);
    }
    const token = body.access_token;
    const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in ?? 3600);
    if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new StorageError(`google drive: cannot ${what}: the token endpoint answered without an access token`, false);
    }
    this.scrubber.add(token);
    const lifetimeMs = expiresIn * 1000;
    // Stop using a token a minute before it expires (a quarter of its life if shorter), so
    // that a request started with it does not arrive with an expired one.
    this.#token = { value: token, refreshAt: started + lifetimeMs - Math.min(60_000, lifetimeMs / 4) };
    return token;
  }
}
