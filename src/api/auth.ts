/**
 * Authentication (which token is calling) and authorization (does it hold access X on
 * this resource or a parent). Resources of another organization are reported as 404
 * so their existence never leaks.
 */
import crypto from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { CatalogDb } from '../catalog/db.js';
import type { ServiceToken } from '../catalog/schema.js';
import { hashSecret, tokenAccesses, verifySecret, type Access, type TokenAccess } from '../catalog/tokens.js';
import { nowIso } from '../catalog/ids.js';
import { forbidden, unauthorized, type Dialect } from './errors.js';

export interface Principal {
  token: ServiceToken;
  accesses: TokenAccess[];
}

/** The resource an access is checked against; parents are included so grants inherit downwards. */
export interface Scope {
  organizationId: string;
  databaseId?: string;
  branchId?: string;
}

/** Pull "<id>:<secret>" out of the request the way the dialect sends it. */
export function credentialsFrom(request: FastifyRequest, dialect: Dialect): { id: string; secret: string } | null {
  let raw: string | undefined;
  if (dialect === 'backupman') raw = headerValue(request.headers['x-api-key']);
  else {
    raw = headerValue(request.headers.authorization);
    if (raw && dialect === 'yandex') raw = /^Bearer\s+/i.test(raw) ? raw.replace(/^Bearer\s+/i, '') : undefined;
    // The native dialect takes no scheme word, but a Bearer prefix is a common slip: accept it.
    else if (raw) raw = raw.replace(/^Bearer\s+/i, '');
  }
  if (!raw) return null;
  const i = raw.indexOf(':');
  if (i <= 0 || i === raw.length - 1 || raw.length > 600) return null;
  return { id: raw.slice(0, i).trim(), secret: raw.slice(i + 1).trim() };
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** Verified (token id, secret digest) pairs: scrypt is deliberately slow, so don't pay it per request. */
const verified = new Map<string, { digest: Buffer; until: number }>();
const CACHE_MS = 60_000;

/**
 * How long a process keeps a token's row and accesses (its principal) without reading them
 * again: the two queries cost about a tenth of a listed page (bench/list-api.ts). The process
 * that deletes a token or changes its accesses forgets them at once (forgetVerifiedToken);
 * other processes on the same catalog (serve and workers on PostgreSQL) see the change within
 * this bound, which README states. Expiry (expires_at) is checked on every request.
 */
export const PRINCIPAL_CACHE_MS = 2_000;
/** Per catalog (a test process may run servers on several), by token id. */
const principalCaches = new WeakMap<CatalogDb, Map<string, { principal: Principal; until: number }>>();
const MAX_PRINCIPALS = 10_000;
/** Every cache, to forget a token in all of them (forgetVerifiedToken knows no catalog). */
const allPrincipalCaches = new Set<WeakRef<Map<string, unknown>>>();

function principalsOf(db: CatalogDb): Map<string, { principal: Principal; until: number }> {
  let m = principalCaches.get(db);
  if (!m) {
    m = new Map();
    principalCaches.set(db, m);
    allPrincipalCaches.add(new WeakRef(m));
  }
  return m;
}

/** Forget cached verifications and principals (after a token is deleted, or its secret or accesses change). */
export function forgetVerifiedToken(id?: string): void {
  if (id === undefined) verified.clear();
  else verified.delete(id);
  for (const ref of allPrincipalCaches) {
    const m = ref.deref();
    if (m === undefined) allPrincipalCaches.delete(ref);
    else if (id === undefined) m.clear();
    else m.delete(id);
  }
}

export async function authenticate(db: CatalogDb, request: FastifyRequest, dialect: Dialect): Promise<Principal> {
  const creds = credentialsFrom(request, dialect);
  if (!creds) throw unauthorized();
  return authenticateCredentials(db, creds);
}

/** A hash no secret matches, checked when a token id does not exist so that the answer takes as long as for a wrong secret. */
let decoyHash: Promise<string> | null = null;

/**
 * The principal of "<id>:<secret>" (a header, or the dashboard's sign-in form), or 401.
 * With `equalTiming`, an unknown id costs the same scrypt as a wrong secret, so that the
 * time of the answer does not tell whether the id exists (the sign-in form is the one
 * place where people type ids by hand and retry).
 */
export async function authenticateCredentials(db: CatalogDb, creds: { id: string; secret: string }, opts: { equalTiming?: boolean } = {}): Promise<Principal> {
  const principals = principalsOf(db);
  const hit = principals.get(creds.id);
  const known = hit !== undefined && hit.until > Date.now() ? hit.principal : null;
  const token = known?.token ?? (await db.selectFrom('service_tokens').selectAll().where('id', '=', creds.id).executeTakeFirst());
  if (!token || token.deleted_at !== null) {
    if (opts.equalTiming) await verifySecret(creds.secret, await (decoyHash ??= hashSecret(crypto.randomBytes(32).toString('hex'))));
    throw unauthorized();
  }
  if (token.expires_at !== null && token.expires_at <= nowIso()) throw unauthorized('Unauthorized: this service token has expired');

  const digest = crypto.createHash('sha256').update(creds.secret).digest();
  const check = verified.get(token.id);
  const cached = check !== undefined && check.until > Date.now() && crypto.timingSafeEqual(check.digest, digest);
  if (!cached) {
    if (!(await verifySecret(creds.secret, token.secret_hash))) throw unauthorized();
    verified.set(token.id, { digest, until: Date.now() + CACHE_MS });
  }
  if (known) {
    await recordUse(db, known.token);
    return known;
  }
  const principal = await principalOf(db, token);
  // Forget the oldest rather than grow without bound.
  if (principals.size >= MAX_PRINCIPALS) principals.delete(principals.keys().next().value!);
  principals.set(token.id, { principal, until: Date.now() + PRINCIPAL_CACHE_MS });
  return principal;
}

/** The principal of a token already authenticated (by its secret or a dashboard session): its accesses, read afresh. */
export async function principalOf(db: CatalogDb, token: ServiceToken): Promise<Principal> {
  await recordUse(db, token);
  return { token, accesses: await tokenAccesses(db, token.id) };
}

/** Recording every use would turn each read into a write; once a minute is enough to be useful. */
async function recordUse(db: CatalogDb, token: ServiceToken): Promise<void> {
  const now = nowIso();
  if (token.last_used_at === null || Date.parse(now) - Date.parse(token.last_used_at) > 60_000) {
    // Set on the row first: requests of the same token meanwhile need not write it again.
    token.last_used_at = now;
    await db.updateTable('service_tokens').set({ last_used_at: now }).where('id', '=', token.id).execute();
  }
}

/** Can this principal see anything in the organization at all? (Otherwise: 404.) */
export function canSeeOrganization(p: Principal, organizationId: string): boolean {
  return p.token.superuser === 1 || p.token.organization_id === organizationId;
}

export function hasAccess(p: Principal, access: Access, scope: Scope): boolean {
  if (!canSeeOrganization(p, scope.organizationId)) return false;
  if (p.token.superuser === 1) return true;
  return p.accesses.some(
    (a) =>
      a.access === access &&
      ((a.resource_type === 'organization' && a.resource_id === scope.organizationId) ||
        (a.resource_type === 'database' && a.resource_id === scope.databaseId) ||
        (a.resource_type === 'branch' && a.resource_id === scope.branchId)),
  );
}

export function requireAccess(p: Principal, access: Access, scope: Scope): void {
  if (!hasAccess(p, access, scope)) throw forbidden(`Forbidden: this service token lacks the "${access}" access here`);
}

/** Whether the principal holds `access` on at least one resource of the organization (for list routes). */
export function hasAnyAccess(p: Principal, access: Access, organizationId: string): boolean {
  if (!canSeeOrganization(p, organizationId)) return false;
  return p.token.superuser === 1 || p.accesses.some((a) => a.access === access);
}
