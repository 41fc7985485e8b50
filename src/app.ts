/**
 * Builds the HTTP app: plugins first (validation, OpenAPI, errors, auth), then the routes
 * of every dialect. Nothing here listens; main.ts and the tests do.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import type { AppContext } from './context.js';
import { authenticate, credentialsFrom, type Principal } from './api/auth.js';
import { RateLimiter } from './api/ratelimit.js';
import { recordAudit } from './api/audit.js';
import { pathOf } from './api/paging.js';
import { RequestLogController } from './log.js';
import { auditRoutes } from './api/v1/audit.js';
import { verificationRoutes } from './api/v1/verifications.js';
import { ApiError, badRequest, dialectOf, notFound, sendError } from './api/errors.js';
import { parseJsonBody } from './api/json-body.js';
import { organizationRoutes } from './api/v1/organizations.js';
import { databaseRoutes } from './api/v1/databases.js';
import { branchRoutes } from './api/v1/branches.js';
import { recoveryRoutes } from './api/v1/recovery.js';
import { backupRoutes } from './api/v1/backups.js';
import { tokenRoutes } from './api/v1/tokens.js';
import { policyRoutes } from './api/v1/policies.js';
import { destinationRoutes } from './api/v1/destinations.js';
import { snapshotRoutes } from './api/v1/snapshots.js';
import { webhookRoutes } from './api/v1/webhooks.js';
import { notificationChannelRoutes } from './api/v1/notification-channels.js';
import { overviewRoutes } from './api/v1/overview.js';
import { authenticateSession, sessionRateKey, sessionRoutes, sessionSecretOf } from './api/session.js';
import { uiRoutes } from './api/ui.js';
import { buildSerializer } from './api/serializer.js';
import { ErrorBody } from './api/v1/schemas.js';
import { completeDocument, ERROR_SCHEMAS, openapiInfo, refResolver, routeDocumenter } from './api/openapi.js';
import { yandexRoutes } from './api/compat/yandex/index.js';
import { backupmanRoutes } from './api/compat/backupman/index.js';
import { metricsRoutes } from './api/metrics-route.js';
import { ResponseCache, useResponseCache } from './api/response-cache.js';
import { takeTurn } from './api/turns.js';
import { requestScope } from './catalog/memo.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered (method, URL pattern, hidden from the OpenAPI document or not). */
    routeList: Array<{ method: string; url: string; hidden: boolean }>;
  }
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** Route answers without a service token (health, the OpenAPI document). */
    public?: boolean;
    /** A POST that changes nothing (a policy preview): not a write, so not in the audit log. */
    readOnly?: boolean;
  }
}

export { VERSION } from './version.js';
import { VERSION } from './version.js';

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.log as unknown as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    requestTimeout: 120_000,
    return503OnClosing: true,
    // One line per request, when its response is done (log.ts), instead of Fastify's two.
    logController: new RequestLogController(),
    // Errors Fastify raises before any route runs (a malformed percent-escape in the path)
    // go through the same error handler, in the caller's dialect.
    frameworkErrors: (error, req, reply) => {
      sendError(req, reply, Object.assign(error, { statusCode: 400 }));
    },
    // Requests so broken that HTTP itself refuses them (oversized headers, bad framing):
    // no dialect can be told yet, so the native error shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({ code: 'bad_request', message: status === 431 ? 'request headers or URL too large' : 'malformed HTTP request' });
      socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
    // Long ids and names are refused by the route schemas with a clear 400, not by the router.
    routerOptions: { maxParamLength: 2048 },
    // Response schemas are compiled with their nullable fields and word unions in a form
    // the serializer writes without running Ajv per field (api/serializer.ts).
    schemaController: { compilersFactory: { buildSerializer } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Bodies are validated strictly: "5" is not a number and unknown fields are errors, not
  // silently dropped. Query strings and paths are text, so there types are coerced.
  const bodyAjv = new Ajv({ strict: false, removeAdditional: false, useDefaults: true, coerceTypes: false, allErrors: false });
  const textAjv = new Ajv({ strict: false, removeAdditional: false, useDefaults: true, coerceTypes: true, allErrors: false });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));

  // An empty JSON body means "no options" (curl -X POST with a Content-Type and no data);
  // a deeply nested one is refused before anything can recurse into it (json-body.ts).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(String(body)));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  // A POST/PATCH without a body is the same as an empty object for our optional-field bodies.
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && (req.method === 'POST' || req.method === 'PATCH')) req.body = {};
  });

  // The document's conventions (operationIds, each dialect's security scheme and 4xx error
  // bodies) are added to every route as it is registered: api/openapi.ts.
  await app.register(swagger, { openapi: openapiInfo(VERSION), refResolver, transformObject: completeDocument as never });
  app.addSchema(ErrorBody);
  for (const s of ERROR_SCHEMAS) app.addSchema(s);
  app.addHook('onRoute', routeDocumenter());
  // Every route, as registered: the contract test checks the OpenAPI document covers them all.
  const routes: Array<{ method: string; url: string; hidden: boolean }> = [];
  app.decorate('routeList', routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) {
      if (method !== 'HEAD') routes.push({ method, url: r.url, hidden: (r.schema as { hide?: boolean } | undefined)?.hide === true });
    }
  });

  app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
  app.setNotFoundHandler((req, reply) => sendError(req, reply, notFound(`no route ${req.method} ${pathOf(req).slice(0, 200)}`)));

  app.decorateRequest('principal', null as unknown as Principal);
  // A GET is served in a scope of its own: on PostgreSQL its catalog lookups share one change
  // stamp, read once (catalog/memo.ts). Entered first, so that every later hook and the
  // handler run inside it.
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.method === 'GET' || req.method === 'HEAD') requestScope.run({}, done);
    else done();
  });
  // A NUL character (%00) in a path segment or the query can be stored in no text column
  // of PostgreSQL: refuse it up front instead of failing as a 500 deep in a query.
  app.addHook('onRequest', async (req) => {
    if (hasNul(req.params) || hasNul(req.query)) throw badRequest('the request path or query contains a NUL character (%00)');
  });
  const limiter = new RateLimiter(ctx.config.rateLimitPerMinute);
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.public) return;
    // The loop is shared fairly: a burst of requests does not hold it for long (api/turns.ts).
    const turn = takeTurn();
    if (turn !== null) await turn;
    const dialect = dialectOf(req);
    const creds = credentialsFrom(req, dialect);
    // The dashboard's session cookie stands in for the token when no header names one (api/session.ts).
    const session = creds === null && dialect === 'planetscale' && req.headers.authorization === undefined ? sessionSecretOf(req) : null;
    // Counted before the (deliberately slow) secret check, so that guessing is limited too.
    const wait = limiter.take(creds?.id ?? (session !== null ? sessionRateKey(session) : `ip:${req.ip}`));
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      throw new ApiError(429, 'rate_limited', `rate limit of ${ctx.config.rateLimitPerMinute} requests a minute exceeded; retry in ${wait} s`);
    }
    req.principal = session !== null ? await authenticateSession(ctx, req, reply, session) : await authenticate(ctx.db, req, dialect);
  });
  // Repeated reads of an unchanged catalog are answered from memory (api/response-cache.ts).
  useResponseCache(app, new ResponseCache(ctx.config.responseCacheEntries), () => ctx.catalog.changeStamp());
  // Every write is audited (who, what, when, from where, result), refused ones included.
  app.addHook('onResponse', async (req, reply) => {
    if (['GET', 'HEAD', 'OPTIONS'].includes(req.method) || req.routeOptions.config?.public || req.routeOptions.config?.readOnly) return;
    await recordAudit(ctx, req, reply.statusCode).catch((e) => req.log.error({ err: e }, 'could not write the audit log'));
  });

  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        tags: ['Health'],
        summary: 'Whether the server is up, and its version',
        operationId: 'get_health',
        response: { 200: Type.Object({ status: Type.Literal('ok'), version: Type.String() }) },
      },
    },
    async () => ({ status: 'ok' as const, version: VERSION }),
  );
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  // The web dashboard: its sign-in (sessions) and its built files.
  await app.register(sessionRoutes(ctx));
  await app.register(uiRoutes(ctx));

  await app.register(
    async (v1) => {
      await v1.register(organizationRoutes(ctx));
      await v1.register(databaseRoutes(ctx));
      await v1.register(branchRoutes(ctx));
      await v1.register(recoveryRoutes(ctx));
      await v1.register(backupRoutes(ctx));
      await v1.register(tokenRoutes(ctx));
      await v1.register(policyRoutes(ctx));
      await v1.register(destinationRoutes(ctx));
      await v1.register(snapshotRoutes(ctx));
      await v1.register(auditRoutes(ctx));
      await v1.register(verificationRoutes(ctx));
      await v1.register(webhookRoutes(ctx));
      await v1.register(notificationChannelRoutes(ctx));
      await v1.register(overviewRoutes(ctx));
    },
    { prefix: '/v1' },
  );
  // Compatible views of the same data (DESIGN.md): Yandex Cloud managed databases, backupman.
  await app.register(yandexRoutes(ctx), { prefix: '/managed-postgresql/v1' });
  await app.register(yandexRoutes(ctx), { prefix: '/managed-mysql/v1' });
  await app.register(backupmanRoutes(ctx), { prefix: '/api' });
  // Prometheus text format, behind a service token (or on STRONGBOX_METRICS_LISTEN without one).
  await app.register(metricsRoutes(ctx));
  return app;
}

/** Whether any value of a params or query object (strings, or arrays of them) holds a NUL. */
function hasNul(values: unknown): boolean {
  if (values === null || typeof values !== 'object') return false;
  return Object.values(values).some((v) => (Array.isArray(v) ? v : [v]).some((x) => typeof x === 'string' && x.includes('\u0000')));
}
