/**
 * Serving the Prometheus metrics (metrics.ts) two ways:
 *
 * - `GET /metrics` on the API, behind a service token like every route (Prometheus sends
 *   it as `authorization: {credentials: "<id>:<secret>"}`, i.e. `Bearer <id>:<secret>`).
 *   A superuser token sees every organization; another token sees its own organization's
 *   catalog metrics when it holds `read_backups` on the whole organization, and only this
 *   process's own instruments otherwise (so a token scoped to one branch cannot read the
 *   names of the others).
 * - a separate plain HTTP listener (STRONGBOX_METRICS_LISTEN=host:port), without
 *   authentication, in `serve` and `worker` processes alike: workers have no API, and a
 *   scrape on a private network or a sidecar needs no token. It shows every organization.
 */
import http from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import type { Principal } from './auth.js';
import { METRICS_CONTENT_TYPE, metricsText, type MetricsScope } from '../metrics.js';

/** The organizations a token's scrape shows (see the header comment). */
export function metricsScopeOf(p: Principal): MetricsScope {
  if (p.token.superuser === 1) return { organizationIds: null };
  const org = p.token.organization_id;
  const readsAll = p.accesses.some((a) => a.access === 'read_backups' && a.resource_type === 'organization' && a.resource_id === org);
  return { organizationIds: readsAll ? [org] : [] };
}

/** `GET /metrics` on the API (authenticated by app.ts's hook, as every non-public route). */
export function metricsRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    // Not JSON and not part of the PlanetScale-style API: left out of the OpenAPI document.
    app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
      const text = await metricsText(ctx, metricsScopeOf(req.principal));
      return reply.type(METRICS_CONTENT_TYPE).header('cache-control', 'no-store').send(text);
    });
  };
}

export interface MetricsListener {
  /** `http://host:port` as bound (the port is the real one when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

/** Start the unauthenticated metrics listener (STRONGBOX_METRICS_LISTEN). */
export async function startMetricsListener(ctx: AppContext, listen: { host: string; port: number }): Promise<MetricsListener> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const plain = (status: number, text: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    if (path !== '/metrics') return plain(404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(405, 'only GET /metrics is served here\n', { allow: 'GET, HEAD' });
    metricsText(ctx, { organizationIds: null }).then(
      (text) => plain(200, text, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' }),
      (e) => {
        ctx.log.error({ err: e }, 'metrics: could not serve a scrape');
        plain(500, 'could not collect the metrics (see the server log)\n');
      },
    );
  });
  // A scrape is small: no reason to keep idle connections (or slow clients) around for long.
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error) => reject(new Error(`could not serve the metrics on ${listen.host}:${listen.port} (STRONGBOX_METRICS_LISTEN): ${e.message}`));
    server.once('error', fail);
    server.listen(listen.port, listen.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
