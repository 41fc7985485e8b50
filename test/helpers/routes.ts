/**
 * The API's routes as the running server describes them (its own /openapi.json, plus the
 * compatible views by their prefixes), the error body each dialect must answer with, and
 * a raw keep-alive HTTP client that can send what fetch() refuses to (bad Host headers,
 * odd methods, broken percent-encoding, bodies with any Content-Type).
 */
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's src/ folder: its path in a response means a stack trace or a file name leaked. */
const SRC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export type Dialect = 'native' | 'yandex' | 'backupman';

export interface QueryParam {
  name: string;
  schema: any;
  required: boolean;
}

export interface RouteSpec {
  method: string;
  /** OpenAPI-style template: /v1/organizations/{organization}, /managed-mysql/v1/clusters/{clusterId}:backup */
  path: string;
  dialect: Dialect;
  pathParams: string[];
  query: QueryParam[];
  /** JSON schema of the request body, or null when the route takes none. */
  body: any | null;
  /** Found in /openapi.json (false: only known from COMPAT_ROUTES). */
  documented: boolean;
}

const YANDEX_PREFIXES = ['/managed-postgresql/v1', '/managed-mysql/v1'];

/** Body schema of Cluster.Restore, for when the OpenAPI document does not list the compat routes. */
const RESTORE_BODY = {
  type: 'object',
  required: ['backupId', 'name'],
  additionalProperties: true,
  properties: { backupId: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }, name: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
};

/**
 * The compatible views, by prefix (DESIGN.md): every mount of the Yandex view and the
 * backupman view. Merged with the OpenAPI document so a compat route that the document
 * leaves out is still driven.
 */
export const COMPAT_ROUTES: Array<Pick<RouteSpec, 'method' | 'path'> & { query?: QueryParam[]; body?: any }> = [
  ...YANDEX_PREFIXES.flatMap((p) => [
    { method: 'GET', path: `${p}/clusters/{clusterId}/backups`, query: [{ name: 'pageSize', schema: { type: 'integer' }, required: false }, { name: 'pageToken', schema: { type: 'string' }, required: false }] },
    { method: 'GET', path: `${p}/backups`, query: [{ name: 'folderId', schema: { type: 'string' }, required: true }, { name: 'pageSize', schema: { type: 'integer' }, required: false }, { name: 'pageToken', schema: { type: 'string' }, required: false }] },
    { method: 'GET', path: `${p}/backups/{backupId}` },
    { method: 'DELETE', path: `${p}/backups/{backupId}` },
    { method: 'POST', path: `${p}/clusters/{clusterId}:backup` },
    { method: 'POST', path: `${p}/clusters:restore`, body: RESTORE_BODY },
    { method: 'GET', path: `${p}/operations/{operationId}` },
  ]),
  { method: 'GET', path: '/api/backups' },
  { method: 'POST', path: '/api/backups' },
  { method: 'GET', path: '/api/backups/{driveFileId}/download' },
];

/** Which error body a path answers with: by prefix, as DESIGN.md maps the dialects. */
export function dialectOfPath(path: string): Dialect {
  if (path.startsWith('/managed-postgresql/') || path.startsWith('/managed-mysql/')) return 'yandex';
  if (path.startsWith('/api/')) return 'backupman';
  return 'native';
}

function paramsOf(template: string): string[] {
  return [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
}

/** Every route of the running server: its OpenAPI document plus the compat routes by prefix. */
export async function discoverRoutes(baseUrl: string): Promise<RouteSpec[]> {
  const res = await fetch(`${baseUrl}/openapi.json`);
  if (res.status !== 200) throw new Error(`GET /openapi.json: ${res.status}`);
  const doc = (await res.json()) as { paths: Record<string, Record<string, any>> };
  const routes: RouteSpec[] = [];
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    for (const [m, op] of Object.entries(ops)) {
      const method = m.toUpperCase();
      if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) continue;
      const parameters: any[] = op.parameters ?? [];
      routes.push({
        method,
        path,
        dialect: dialectOfPath(path),
        pathParams: paramsOf(path),
        query: parameters.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema ?? {}, required: p.required === true })),
        body: op.requestBody?.content?.['application/json']?.schema ?? null,
        documented: true,
      });
    }
  }
  for (const c of COMPAT_ROUTES) {
    if (routes.some((r) => r.method === c.method && r.path === c.path)) continue;
    routes.push({ method: c.method, path: c.path, dialect: dialectOfPath(c.path), pathParams: paramsOf(c.path), query: c.query ?? [], body: c.body ?? null, documented: false });
  }
  return routes;
}

/** `METHOD /path/template`: how routes are named in tables and reports. */
export function routeKey(r: Pick<RouteSpec, 'method' | 'path'>): string {
  return `${r.method} ${r.path}`;
}

/** Fill a template's {params}; values are percent-encoded unless `raw` says which to leave alone. */
export function fillPath(template: string, values: Record<string, string>, raw: ReadonlySet<string> = new Set()): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`no value for {${name}} in ${template}`);
    return raw.has(name) ? v : encodeURIComponent(v);
  });
}

/** The credentials header of a dialect (DESIGN.md, Security). */
export function authHeaders(dialect: Dialect, token: string | null): Record<string, string> {
  if (token === null) return {};
  if (dialect === 'backupman') return { 'x-api-key': token };
  if (dialect === 'yandex') return { authorization: `Bearer ${token}` };
  return { authorization: token };
}

/**
 * What is wrong with an error body for its dialect, or null when it is right:
 * native `{code, message}` (strings, nothing else); Yandex `{code: int, message, details: []}`;
 * backupman `{error}`.
 */
export function errorShapeProblem(dialect: Dialect, body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return `not a JSON object: ${JSON.stringify(body)?.slice(0, 200)}`;
  const b = body as Record<string, unknown>;
  const keys = Object.keys(b).sort().join(',');
  switch (dialect) {
    case 'native':
      if (keys !== 'code,message') return `native errors are exactly {code, message}; got keys [${keys}]`;
      if (typeof b.code !== 'string' || typeof b.message !== 'string') return 'native code and message must be strings';
      return null;
    case 'yandex':
      if (keys !== 'code,details,message') return `Yandex errors are exactly {code, message, details}; got keys [${keys}]`;
      if (!Number.isInteger(b.code)) return `Yandex code must be an integer, got ${JSON.stringify(b.code)}`;
      if (typeof b.message !== 'string') return 'Yandex message must be a string';
      if (!Array.isArray(b.details)) return 'Yandex details must be an array';
      return null;
    case 'backupman':
      if (keys !== 'error') return `backupman errors are exactly {error}; got keys [${keys}]`;
      if (typeof b.error !== 'string') return 'backupman error must be a string';
      return null;
  }
}

/** Internals that must never reach a client: stack frames, source paths, dependency paths. */
const LEAK_PATTERNS: Array<[RegExp, string]> = [
  [/node_modules/, 'node_modules path'],
  [/\.ts:\d+/, 'TypeScript source position'],
  [/\.js:\d+:\d+/, 'JavaScript source position'],
  [/at async /, 'async stack frame'],
  [/\n\s+at [^\n]+\(/, 'stack frame'],
  [new RegExp(escapeRe(SRC_DIR)), 'server source path'],
  [/\/src\/(api|catalog|jobs|engines|storage|pipeline)\//, 'server source path'],
];

/** The first internal detail found in a response text, or null. */
export function leakIn(text: string): string | null {
  for (const [re, what] of LEAK_PATTERNS) {
    const m = re.exec(text);
    if (m) return `${what}: ...${text.slice(Math.max(0, m.index - 60), m.index + 60)}...`;
  }
  return null;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, cut at `maxBody` bytes. */
  body: Buffer;
  text: string;
  json: unknown;
}

export interface RawRequest {
  method: string;
  /** Path and query exactly as sent (nothing is encoded here). */
  path: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Send the body chunked instead of with a Content-Length. */
  chunked?: boolean;
  timeoutMs?: number;
}

/** A raw HTTP/1.1 client over a keep-alive agent. */
export class RawClient {
  readonly agent: http.Agent;
  readonly host: string;
  readonly port: number;

  constructor(
    baseUrl: string,
    opts: { maxSockets?: number } = {},
    readonly maxBody = 256 * 1024,
  ) {
    const u = new URL(baseUrl);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8 });
  }

  request(r: RawRequest): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | string[]> = { ...(r.headers ?? {}) };
      const hasHost = Object.keys(headers).some((h) => h.toLowerCase() === 'host');
      // Node sends a GET/DELETE/OPTIONS body neither chunked nor with a length unless told:
      // say which, or the body would be read as the next request on the connection.
      if (r.body !== undefined && r.chunked) headers['transfer-encoding'] = 'chunked';
      else if (r.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
        headers['content-length'] = String(Buffer.byteLength(r.body));
      }
      let req: http.ClientRequest;
      try {
        req = http.request({ host: this.host, port: this.port, method: r.method, path: r.path, headers, agent: this.agent, setHost: !hasHost });
      } catch (e) {
        reject(e);
        return;
      }
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${r.timeoutMs ?? 30_000} ms`)), r.timeoutMs ?? 30_000);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < this.maxBody) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks).subarray(0, this.maxBody);
          const text = body.toString('utf8');
          let json: unknown = undefined;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      if (r.body !== undefined) req.end(r.body);
      else req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
