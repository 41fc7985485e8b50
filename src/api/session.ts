/**
 * Dashboard sessions: the browser signs in once with a service token (POST /ui/session)
 * and from then on holds a random session secret in an HttpOnly, SameSite=Strict cookie.
 * A request with that cookie and no Authorization header is the session's token, with
 * exactly its accesses (the same Principal the API builds from a header), so the
 * dashboard can do nothing the token could not. Writes made with the cookie must also
 * carry the session's CSRF token in X-CSRF-Token: a cookie is sent by the browser on its
 * own, a header only by the dashboard's own script.
 *
 * The catalog keeps only the sha256 of the session secret. A session ends on sign-out,
 * after SESSION_IDLE_MS without a request, SESSION_MAX_MS after sign-in, and as soon as
 * its token is deleted or expires.
 */
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../context.js';
import { nowIso } from '../catalog/ids.js';
import { authenticateCredentials, principalOf, type Principal } from './auth.js';
import { recordAudit } from './audit.js';
import { parseCookies, serializeCookie, SESSION_COOKIE } from './cookies.js';
import { ApiError, badRequest, forbidden, unauthorized } from './errors.js';
import { RateLimiter } from './ratelimit.js';

/** A session unused for this long is over. */
export const SESSION_IDLE_MS = 12 * 3600_000;
/** However busy, a session is over this long after its sign-in: sign in again. */
export const SESSION_MAX_MS = 7 * 24 * 3600_000;
/** last_seen_at (and the idle deadline) is written at most this often: not a write per read. */
const TOUCH_MS = 60_000;

/** The session secret's shape (32 random bytes, base64url); anything else is no session at all. */
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

/** The session secret the request's cookie holds, or null (no cookie, or not one of ours). */
export function sessionSecretOf(req: FastifyRequest): string | null {
  const value = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
  return value !== undefined && SECRET_RE.test(value) ? value : null;
}

/** A key for the rate limiter: the session (not the secret), like a token id for header requests. */
export function sessionRateKey(secret: string): string {
  return `session:${sha256(secret).slice(0, 32)}`;
}

/** The request reached us over https (directly, or through a proxy that says so): the cookie gets Secure. */
function overHttps(req: FastifyRequest): boolean {
  const forwarded = req.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  return req.protocol === 'https' || proto === 'https';
}

function clearCookie(req: FastifyRequest, reply: FastifyReply): void {
  reply.header('set-cookie', serializeCookie(SESSION_COOKIE, '', { maxAge: 0, secure: overHttps(req) }));
}

/** Equal strings, compared in time that does not depend on where they differ. */
function sameSecret(a: string, b: string): boolean {
  return crypto.timingSafeEqual(crypto.createHash('sha256').update(a).digest(), crypto.createHash('sha256').update(b).digest());
}

const ended = () => unauthorized('Unauthorized: the dashboard session has ended (signed out, idle for 12 hours, or its token was deleted or expired); sign in again');

interface LiveSession {
  id: string;
  csrf_token: string;
  principal: Principal;
}

/**
 * The session a secret opens, with its token's principal; null when there is none or it
 * is over (an ended session's row is deleted on the way, and every session of a token that
 * is gone with it).
 */
async function openSession(ctx: AppContext, secret: string): Promise<LiveSession | null> {
  const id = sha256(secret);
  const s = await ctx.db.selectFrom('ui_sessions').selectAll().where('id', '=', id).executeTakeFirst();
  if (!s) return null;
  const now = ctx.clock();
  if (s.expires_at <= nowIso(now) || now.getTime() - Date.parse(s.created_at) >= SESSION_MAX_MS) {
    await ctx.db.deleteFrom('ui_sessions').where('id', '=', id).execute();
    return null;
  }
  const token = await ctx.db.selectFrom('service_tokens').selectAll().where('id', '=', s.token_id).executeTakeFirst();
  // The same test as for a header: a token deleted or expired (by the wall clock, as there) is no longer anyone.
  if (!token || token.deleted_at !== null || (token.expires_at !== null && token.expires_at <= nowIso())) {
    await ctx.db.deleteFrom('ui_sessions').where('token_id', '=', s.token_id).execute();
    return null;
  }
  if (now.getTime() - Date.parse(s.last_seen_at) > TOUCH_MS) {
    await ctx.db
      .updateTable('ui_sessions')
      .set({ last_seen_at: nowIso(now), expires_at: nowIso(new Date(now.getTime() + SESSION_IDLE_MS)) })
      .where('id', '=', id)
      .execute();
  }
  return { id, csrf_token: s.csrf_token, principal: await principalOf(ctx.db, token) };
}

/**
 * Authenticate a request by its session cookie (app.ts calls this when a request has the
 * cookie and no Authorization header). 401 (and the cookie cleared) when the session is
 * over; 403 for a write without the session's CSRF token.
 */
export async function authenticateSession(ctx: AppContext, req: FastifyRequest, reply: FastifyReply, secret: string): Promise<Principal> {
  const session = await openSession(ctx, secret);
  if (!session) {
    clearCookie(req, reply);
    throw ended();
  }
  if (WRITE_METHODS.has(req.method)) {
    const sent = req.headers['x-csrf-token'];
    const value = Array.isArray(sent) ? sent[0] : sent;
    if (typeof value !== 'string' || !sameSecret(value, session.csrf_token)) {
      throw forbidden('missing or wrong CSRF token: a write made with the dashboard session cookie needs the X-CSRF-Token header that POST or GET /ui/session returns');
    }
  }
  return session.principal;
}

const UiSession = Type.Object(
  {
    csrf_token: Type.String({ description: 'send it back in the X-CSRF-Token header with every write made with the session cookie' }),
    token: Type.Object({ id: Type.String(), name: Type.String(), superuser: Type.Boolean() }, { additionalProperties: false }),
    organization: Type.Object({ id: Type.String(), name: Type.String() }, { additionalProperties: false }),
    accesses: Type.Array(
      Type.Object(
        {
          access: Type.String(),
          resource_type: Type.Union([Type.Literal('organization'), Type.Literal('database'), Type.Literal('branch')]),
          resource_id: Type.String(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
const ErrorRef = Type.Ref('Error');

async function sessionBody(ctx: AppContext, p: Principal, csrfToken: string) {
  const org = await ctx.db.selectFrom('organizations').select(['id', 'name']).where('id', '=', p.token.organization_id).executeTakeFirstOrThrow();
  return {
    csrf_token: csrfToken,
    token: { id: p.token.id, name: p.token.name, superuser: p.token.superuser === 1 },
    organization: { id: org.id, name: org.name },
    accesses: p.accesses.map((a) => ({ access: a.access, resource_type: a.resource_type, resource_id: a.resource_id })),
  };
}

/**
 * POST/GET/DELETE /ui/session. The routes are public (the global hook does not
 * authenticate them): they read the body or the cookie themselves. Sign-in and sign-out
 * are audited like API writes; the token's secret is never logged or stored.
 */
export function sessionRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  // Sign-in tries are limited like requests with a token: per claimed token id, counted
  // before the (deliberately slow) secret check.
  const limiter = new RateLimiter(ctx.config.rateLimitPerMinute);
  const audit = async (req: FastifyRequest, reply: FastifyReply) => {
    await recordAudit(ctx, req, reply.statusCode).catch((e) => req.log.error({ err: e }, 'could not write the audit log'));
  };

  return async (app) => {
    app.post(
      '/ui/session',
      {
        config: { public: true },
        onResponse: audit,
        schema: {
          tags: ['Dashboard'],
          summary: 'Sign in to the dashboard with a service token: sets the session cookie',
          description:
            'Answers with the session (its CSRF token, the token and its accesses) and sets the `strongbox_session` cookie (HttpOnly, SameSite=Strict). ' +
            'Requests with the cookie and no Authorization header act as the token; writes among them need the `X-CSRF-Token` header.',
          operationId: 'create_ui_session',
          security: [],
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 600, description: '"<token-id>:<secret>"' }) }, { additionalProperties: false }),
          response: { 200: UiSession, 400: ErrorRef, 401: ErrorRef, 429: ErrorRef },
        },
      },
      async (req, reply) => {
        const raw = req.body.token.trim().replace(/^Bearer\s+/i, '');
        const i = raw.indexOf(':');
        if (i <= 0 || i === raw.length - 1) throw badRequest('token must be "<token-id>:<secret>", as printed when the token was created');
        const creds = { id: raw.slice(0, i).trim(), secret: raw.slice(i + 1).trim() };
        const wait = limiter.take(creds.id.slice(0, 64));
        if (wait > 0) {
          reply.header('retry-after', String(wait));
          throw new ApiError(429, 'rate_limited', `too many sign-in attempts for this token; retry in ${wait} s`);
        }
        const principal = await authenticateCredentials(ctx.db, creds, { equalTiming: true });
        req.principal = principal;

        const now = ctx.clock();
        // A browser signing in again (maybe as another token) leaves its old session behind: end it.
        const previous = sessionSecretOf(req);
        if (previous) await ctx.db.deleteFrom('ui_sessions').where('id', '=', sha256(previous)).execute();
        // Ended sessions are deleted when next seen; those never seen again go here.
        await ctx.db.deleteFrom('ui_sessions').where('expires_at', '<=', nowIso(now)).execute();

        const secret = crypto.randomBytes(32).toString('base64url');
        const csrf = crypto.randomBytes(32).toString('base64url');
        const ua = req.headers['user-agent'];
        await ctx.db
          .insertInto('ui_sessions')
          .values({
            id: sha256(secret),
            token_id: principal.token.id,
            csrf_token: csrf,
            user_agent: typeof ua === 'string' ? ua.slice(0, 300) : null,
            created_at: nowIso(now),
            last_seen_at: nowIso(now),
            expires_at: nowIso(new Date(now.getTime() + SESSION_IDLE_MS)),
          })
          .execute();
        reply.header('set-cookie', serializeCookie(SESSION_COOKIE, secret, { secure: overHttps(req) }));
        reply.header('cache-control', 'no-store');
        return sessionBody(ctx, principal, csrf);
      },
    );

    app.get(
      '/ui/session',
      {
        config: { public: true },
        schema: {
          tags: ['Dashboard'],
          summary: 'The dashboard session of the cookie: its CSRF token, token and accesses',
          operationId: 'get_ui_session',
          security: [{ DashboardSession: [] }],
          response: { 200: UiSession, 401: ErrorRef },
        },
      },
      async (req, reply) => {
        const secret = sessionSecretOf(req);
        const session = secret ? await openSession(ctx, secret) : null;
        if (!session) {
          if (secret) clearCookie(req, reply);
          throw secret ? ended() : unauthorized('Unauthorized: not signed in to the dashboard');
        }
        reply.header('cache-control', 'no-store');
        return sessionBody(ctx, session.principal, session.csrf_token);
      },
    );

    app.delete(
      '/ui/session',
      {
        config: { public: true },
        onResponse: audit,
        schema: {
          tags: ['Dashboard'],
          summary: 'Sign out of the dashboard: ends the session and clears its cookie',
          description: 'Needs the `X-CSRF-Token` header of the session. Without a live session it answers 204 all the same.',
          operationId: 'delete_ui_session',
          security: [{ DashboardSession: [] }],
          response: { 204: Type.Null({ description: 'signed out' }), 403: ErrorRef },
        },
      },
      async (req, reply) => {
        const secret = sessionSecretOf(req);
        const session = secret ? await openSession(ctx, secret) : null;
        if (session) {
          const sent = req.headers['x-csrf-token'];
          const value = Array.isArray(sent) ? sent[0] : sent;
          if (typeof value !== 'string' || !sameSecret(value, session.csrf_token)) {
            throw forbidden('missing or wrong CSRF token: send the X-CSRF-Token header that POST or GET /ui/session returns');
          }
          req.principal = session.principal;
          await ctx.db.deleteFrom('ui_sessions').where('id', '=', session.id).execute();
        }
        clearCookie(req, reply);
        return reply.status(204).send(null);
      },
    );
  };
}
