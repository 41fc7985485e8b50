/**
 * The OpenAPI document's conventions, applied to every route as it is registered (an
 * onRoute hook, see app.ts) so that routes need not repeat them and new ones get them too:
 *
 * - an operationId derived from the method and the path (`list_backups`, `get_branch`,
 *   `cancel_backup`, `postgresql_restore_cluster`), unless the route names its own;
 * - the security scheme of its dialect (native `Authorization: <id>:<secret>`, Yandex
 *   `Authorization: Bearer <id>:<secret>`, backupman `X-Api-Key`), or none for public routes;
 * - the 4xx answers it can give, in its dialect's error body (errors.ts errorBody): 400 for
 *   a bad path, query or JSON body; 401, 403 and 429 for authenticated routes; 404 when the
 *   path names a resource; 422 for body validation (native); 409 where the table below says.
 *
 * These schemas are real response schemas: Fastify serializes error bodies with them, so
 * they list every field errorBody() writes.
 */
import { Type } from '@sinclair/typebox';
import type { RouteOptions } from 'fastify';
import type { Dialect } from './errors.js';

/** The Yandex error body: `{code: <gRPC code>, message, details}` (errors.ts errorBody). */
export const YandexErrorBody = Type.Object(
  {
    code: Type.Integer({ description: 'gRPC status code: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 16 UNAUTHENTICATED' }),
    message: Type.String(),
    details: Type.Array(Type.Unknown()),
  },
  { $id: 'YandexError' },
);

/** The backupman error body: `{"error": "..."}` ("Unauthorized" for a 401). */
export const BackupmanErrorBody = Type.Object({ error: Type.String() }, { $id: 'BackupmanError' });

/** The shared error schemas every route's 4xx answers refer to, native `Error` aside (v1/schemas.ts). */
export const ERROR_SCHEMAS = [YandexErrorBody, BackupmanErrorBody];

const ERROR_REF: Record<Dialect, string> = { planetscale: 'Error', yandex: 'YandexError', backupman: 'BackupmanError' };

/** Security schemes, by the name routes refer to them with. */
const SECURITY_SCHEMES = {
  ServiceToken: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'A service token as `<token-id>:<secret>` (no scheme word), as PlanetScale takes it.' },
  BearerToken: { type: 'http', scheme: 'bearer', bearerFormat: '<token-id>:<secret>', description: 'A service token as `Bearer <token-id>:<secret>` (the Yandex Cloud view; Prometheus `authorization.credentials` for /metrics).' },
  ApiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key', description: 'A service token as `<token-id>:<secret>` in X-Api-Key (the backupman view).' },
  DashboardSession: {
    type: 'apiKey',
    in: 'cookie',
    name: 'strongbox_session',
    description: 'The dashboard session cookie that POST /ui/session sets; writes with it also need the `X-CSRF-Token` header of the session.',
  },
} as const;

/** What each tag groups, for the document's tag list. A tag a route uses must be described here (the lint test checks). */
const TAG_DESCRIPTIONS: Record<string, string> = {
  Health: 'Whether the server is up; no token needed.',
  Organizations: 'Tenants: everything else belongs to one. Also their encryption recipients and audit log.',
  Databases: 'Logical databases (PostgreSQL or MySQL/MariaDB) registered for backups.',
  Branches: 'The real databases that are dumped: a connection to a server and a database name. Restores create new branches.',
  Backups: 'Dumps of a branch: create, list, follow, verify, protect, download, repair, delete.',
  BackupPolicies: 'Schedules and retention of the backups of a database.',
  'Service tokens': 'API credentials and their accesses on an organization, a database or a branch.',
  'Storage destinations': 'Where artifacts are stored: local folders, S3-compatible buckets, Google Drive.',
  'Schema snapshots': 'The DDL recorded with each backup, and diffs between two of them.',
  Dashboard: 'What the web dashboard shows: its sign-in sessions (a cookie and a CSRF token), every branch at a glance, backup history for charts.',
  Webhooks: 'Signed HTTP deliveries of backup, restore, verification and destination events, with a delivery log.',
  'Notification channels': 'Slack, Discord, Telegram, ntfy and email notifications of the same events, with a delivery log.',
  'Yandex Managed PostgreSQL (compatible)': 'The Yandex Cloud Managed PostgreSQL backups API as a view of the same catalog: clusters are branches of PostgreSQL databases, folders are organizations.',
  'Yandex Managed MySQL (compatible)': 'The Yandex Cloud Managed MySQL backups API as a view of the same catalog: clusters are branches of MySQL/MariaDB databases, folders are organizations.',
  'backupman (compatible)': 'The backupman API as a view of the same catalog: backups as Label `<database>/<branch>`, stored copies as DriveFiles.',
};

/** Keys of the tables below: the method and the documented path, the Yandex engine written as `*`. */
function routeKey(method: string, path: string): string {
  return `${method} ${path.replace(/^\/managed-(postgresql|mysql)\//, '/managed-*/')}`;
}

/** operationIds where the derived one would say less than it should. */
const OPERATION_IDS: Record<string, string> = {
  'GET /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/download': 'download_backup',
  'GET /v1/organizations/{organization}/databases/{database}/branches/{branch}/verifications': 'list_branch_verifications',
  'POST /v1/organizations/{organization}/service-tokens/{id}/accesses': 'grant_service_token_accesses',
  'DELETE /v1/organizations/{organization}/service-tokens/{id}/accesses': 'revoke_service_token_accesses',
  'GET /v1/organizations/{organization}/databases/{database}/schema-snapshots/{id}/diff/{other}': 'diff_schema_snapshots',
  'POST /api/backups': 'start_backups',
  'GET /api/backups/{driveFileId}/download': 'download_drive_file',
  'GET /metrics': 'get_metrics',
};

/** The 409 answers, by route: what state of things refuses the request. */
const CONFLICTS: Record<string, string> = {
  'POST /v1/organizations': 'An organization of that name exists',
  'POST /v1/organizations/{organization}/databases': 'A database of that name exists',
  'POST /v1/organizations/{organization}/databases/{database}/branches':
    'A branch of that name exists; or, restoring: the backup was deleted or has no readable copy, the target database exists or is not empty, target_data_dir exists; or the archive cannot reach restore_point (a WAL segment or binlog is missing, named in the message; before the earliest or after the latest restorable time)',
  'DELETE /v1/organizations/{organization}/databases/{database}/branches/{branch}': 'A restore into the branch is running, or the branch still has backups',
  'POST /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups': 'The branch has no connection URL, or a restore into it is running',
  'PATCH /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}': 'The backup was deleted',
  'DELETE /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}': 'The backup is protected, pending or running, or being restored or verified',
  'GET /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/download': 'The backup was deleted, has no readable copy, or the stored copy is missing or corrupt',
  'POST /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/cancel': 'The backup has already finished',
  'POST /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/verify': 'The backup was deleted, has not finished, or has no readable copy',
  'POST /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/repair': 'The backup was deleted or has not finished, or no copy failed, or none is good',
  'POST /v1/organizations/{organization}/databases/{database}/backup-policies': 'A policy of that name exists',
  'PATCH /v1/organizations/{organization}/databases/{database}/backup-policies/{id}': 'A policy of that name exists',
  'DELETE /v1/organizations/{organization}/databases/{database}/backup-policies/{id}': 'The policy is a required one',
  'POST /v1/organizations/{organization}/storage-destinations': 'A destination of that name exists',
  'PATCH /v1/organizations/{organization}/storage-destinations/{name}': 'The new configuration points elsewhere while the destination holds live artifacts',
  'DELETE /v1/organizations/{organization}/storage-destinations/{name}': 'The destination holds live artifacts, or databases write to it',
  'POST /v1/organizations/{organization}/notification-channels': 'A channel of that name exists',
  'PATCH /v1/organizations/{organization}/notification-channels/{id}': 'A channel of that name exists',
  'DELETE /managed-*/v1/backups/{backupId}': 'FAILED_PRECONDITION: the backup is protected, still being created, or being restored or verified',
  'POST /managed-*/v1/clusters/{clusterId}:backup': 'FAILED_PRECONDITION: the cluster has no connection URL, or is being restored',
  'POST /managed-*/v1/clusters:restore':
    'ALREADY_EXISTS: a cluster or database of that name exists; FAILED_PRECONDITION: the backup is not DONE or has no stored copy, or the archive cannot reach `time` (a missing WAL segment or binlog is named)',
  'POST /api/backups': 'There is no branch the key may back up with a connection URL set',
  'GET /api/backups/{driveFileId}/download': 'The file is still being written, or failed',
};

/** 404s of routes whose path names no resource, but whose query or body does. */
const NAMED_NOT_FOUND: Record<string, string> = {
  'GET /managed-*/v1/backups': 'NOT_FOUND: no folder `folderId` that this token can see',
  'POST /managed-*/v1/clusters:restore': 'NOT_FOUND: no backup `backupId` that this token can see',
};

/** Authenticated routes that never answer 403: they list what the token can see. */
const NEVER_FORBIDDEN = new Set([
  'GET /v1/organizations',
  'GET /v1/organizations/{organization}/databases',
  'GET /v1/organizations/{organization}/databases/{database}/branches',
  'GET /v1/organizations/{organization}/overview',
]);

/** The success answer of routes whose body is not JSON (their handlers stream bytes or send text). */
const NON_JSON_SUCCESS: Record<string, { description: string; type: string; format?: string }> = {
  'GET /v1/organizations/{organization}/databases/{database}/branches/{branch}/backups/{id}/download': {
    description: 'The stored bytes of the first good artifact; their sha256 (hex) in X-Checksum-Sha256',
    type: 'application/octet-stream',
    format: 'binary',
  },
  'GET /api/backups/{driveFileId}/download': { description: 'The stored bytes of the file; their sha256 (hex) in X-Checksum-Sha256', type: 'application/octet-stream', format: 'binary' },
  'GET /v1/organizations/{organization}/databases/{database}/schema-snapshots/{id}': { description: 'The DDL; its sha256 in X-Schema-Sha256', type: 'text/plain' },
  'GET /v1/organizations/{organization}/databases/{database}/schema-snapshots/{id}/diff/{other}': { description: 'A unified diff (empty when the two are identical)', type: 'text/plain' },
  'GET /metrics': { description: 'The metrics in the Prometheus text format', type: 'text/plain' },
};

/** Routes that take more than their dialect's scheme. */
const EXTRA_SECURITY: Record<string, Array<keyof typeof SECURITY_SCHEMES>> = {
  // Prometheus sends `authorization.credentials` as a Bearer token; the native dialect takes both.
  'GET /metrics': ['ServiceToken', 'BearerToken'],
};

/** Fastify's `:param(regex)` → OpenAPI's `{param}`, and its `::` (a literal colon) → `:`. */
export function openApiPath(url: string): string {
  return url
    .replace(/::/g, '\u0000')
    .replace(/:([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?/g, '{$1}')
    .replace(/\u0000/g, ':');
}

/** The dialect of a route by its path, as errors.ts dialectOf() tells it of a request. */
function dialectOfPath(path: string): Dialect {
  if (path.startsWith('/managed-postgresql/') || path.startsWith('/managed-mysql/')) return 'yandex';
  if (path.startsWith('/api/')) return 'backupman';
  return 'planetscale';
}

const snake = (s: string) => s.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '').toLowerCase();
const isParam = (s: string) => s.startsWith('{');
/** "backups", "accesses", "policies" are collections; "progress", "status" are not. */
const isPlural = (s: string) => /s$/.test(s) && !/(ss|us)$/.test(s);
function singular(s: string): string {
  if (/ies$/.test(s)) return s.slice(0, -3) + 'y';
  if (/(ch|sh|ss|x)es$/.test(s)) return s.slice(0, -2);
  return isPlural(s) ? s.slice(0, -1) : s;
}
/** Resources that only scope what is under them: `/organizations/{o}/databases` lists databases, not "organization databases". */
const CONTAINERS = new Set(['organization', 'database', 'branch']);
const ITEM_VERB: Record<string, string> = { GET: 'get', PUT: 'replace', PATCH: 'update', DELETE: 'delete', POST: 'create' };
const COLLECTION_VERB: Record<string, string> = { GET: 'list', PUT: 'replace', PATCH: 'update', DELETE: 'delete' };

/**
 * The operationId a route gets when it names none: `<verb>_<noun>` from the path within its
 * dialect (`/v1`, `/managed-*\/v1` and `/api` left out). Items: get/update/delete_<resource>;
 * collections: list_<resources>, create_<resource>; an action on a resource (POST
 * `.../backups/{id}/cancel`, Google's `/clusters/{id}:backup`): cancel_backup, backup_cluster.
 * Nouns under a resource that is not a mere container take its name: list_backup_artifacts.
 */
export function derivedOperationId(method: string, relPath: string): string {
  const segs = relPath.split('/').filter(Boolean);
  const last = segs.at(-1) ?? 'root';
  const prev = segs.at(-2);
  const statics = segs.filter((s) => !isParam(s)).map(snake);
  // Google-style custom methods: "{clusterId}:backup", "clusters:restore".
  const custom = /^(.*):([A-Za-z]+)$/.exec(last);
  if (custom) {
    const base = custom[1]!;
    const noun = isParam(base) ? singular(snake(prev ?? 'resource')) : singular(snake(base));
    return `${snake(custom[2]!)}_${noun}`;
  }
  if (isParam(last)) return `${ITEM_VERB[method] ?? method.toLowerCase()}_${singular(statics.at(-1) ?? 'resource')}`;
  const noun = snake(last);
  // The resource this one hangs under, when it is one in its own right (a backup, a token, a webhook).
  const ownerName = prev !== undefined && isParam(prev) && statics.length >= 2 ? singular(statics.at(-2)!) : null;
  const owner = ownerName !== null && !CONTAINERS.has(ownerName) ? `${ownerName}_` : '';
  if (isPlural(noun)) {
    if (method === 'POST') return `create_${owner}${singular(noun)}`;
    return `${COLLECTION_VERB[method] ?? method.toLowerCase()}_${owner}${noun}`;
  }
  if (method === 'POST') {
    // An action: POST .../backups/{id}/cancel, POST .../backup-policies/preview.
    if (ownerName !== null) return `${noun}_${ownerName}`;
    if (prev !== undefined && isPlural(snake(prev))) return `${noun}_${singular(snake(prev))}`;
  }
  return `${ITEM_VERB[method] ?? method.toLowerCase()}_${owner}${noun}`;
}

type Schema = Record<string, unknown>;

/** A 4xx answer in the dialect's error body, with what it means here. */
function errorResponse(dialect: Dialect, description: string, headers?: Schema): Schema {
  return { description, content: { 'application/json': { schema: Type.Ref(ERROR_REF[dialect]) } }, ...(headers ? { headers } : {}) };
}

/** The 4xx answers a route can give (see the file comment), by status. */
function errorResponses(method: string, path: string, dialect: Dialect, schema: Schema, isPublic: boolean): Record<string, Schema> {
  const key = routeKey(method, path);
  const out: Record<string, Schema> = {};
  const has = (k: string) => schema[k] !== undefined;
  const yandex = dialect === 'yandex';
  // Every route: a NUL or a bad percent-escape in the URL (app.ts), besides what its schemas check.
  out[400] = errorResponse(
    dialect,
    yandex
      ? 'INVALID_ARGUMENT: a path, query or body value is invalid, or the JSON body is malformed'
      : has('body')
        ? 'A path or query value is invalid, or the JSON body is malformed'
        : has('params') || has('querystring')
          ? 'A path or query value is invalid'
          : 'The URL is malformed (a bad percent-escape or a NUL character)',
  );
  if (!isPublic) {
    out[401] = errorResponse(dialect, yandex ? 'UNAUTHENTICATED: no valid service token (missing, wrong, expired or deleted)' : 'No valid service token (missing, wrong, expired or deleted)');
    if (!NEVER_FORBIDDEN.has(key)) out[403] = errorResponse(dialect, yandex ? 'PERMISSION_DENIED: the token lacks the access this needs' : 'The token lacks the access this needs');
  }
  if (/\{[^}]+\}/.test(path)) {
    out[404] = errorResponse(dialect, `${yandex ? 'NOT_FOUND: ' : ''}No such resource, or it belongs to an organization this token cannot see`);
  } else if (NAMED_NOT_FOUND[key]) out[404] = errorResponse(dialect, NAMED_NOT_FOUND[key]);
  if (CONFLICTS[key]) out[409] = errorResponse(dialect, CONFLICTS[key]);
  // The native and backupman dialects answer body problems 422, as PlanetScale does; gRPC has no such code (errors.ts).
  if (has('body') && !yandex) out[422] = errorResponse(dialect, 'The body is invalid: an unknown or missing field, a wrong type, a value out of range or that does not fit the rest');
  if (!isPublic) {
    out[429] = errorResponse(dialect, yandex ? "RESOURCE_EXHAUSTED: the token's rate limit (STRONGBOX_RATE_LIMIT_PER_MINUTE) is exceeded" : "The token's rate limit (STRONGBOX_RATE_LIMIT_PER_MINUTE) is exceeded", {
      'Retry-After': { type: 'integer', description: 'Seconds until a request will be taken again' },
    });
  }
  return out;
}

function securityOf(method: string, path: string, dialect: Dialect, isPublic: boolean): Array<Record<string, string[]>> {
  if (isPublic) return [];
  const names = EXTRA_SECURITY[routeKey(method, path)] ?? [dialect === 'yandex' ? 'BearerToken' : dialect === 'backupman' ? 'ApiKey' : 'ServiceToken'];
  return names.map((n) => ({ [n]: [] }));
}

/** The operationId prefix of a dialect whose routes exist under several prefixes or mirror native names. */
function idPrefix(path: string): string {
  const m = /^\/managed-(postgresql|mysql)\//.exec(path);
  if (m) return `${m[1]}_`;
  return dialectOfPath(path) === 'backupman' ? 'backupman_' : '';
}

/** The path within its dialect, for derived names: without `/v1`, `/managed-*\/v1` or `/api`. */
function relativePath(path: string): string {
  return path.replace(/^\/managed-(postgresql|mysql)\/v1(?=\/|:)/, '').replace(/^\/(v1|api)(?=\/)/, '');
}

/**
 * An onRoute hook that completes each route's schema with the document's conventions (file
 * comment). What a route states itself (its operationId, security, a response of a status)
 * is kept. Routes hidden from the document are left alone.
 */
export function routeDocumenter(): (route: RouteOptions) => void {
  const used = new Set<string>();
  return (route) => {
    const schema = (route.schema ?? {}) as Schema;
    if (schema.hide === true) return;
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      const path = openApiPath(route.url);
      const dialect = dialectOfPath(path);
      const isPublic = (route.config as { public?: boolean } | undefined)?.public === true;
      const key = routeKey(method, path);

      let operationId = schema.operationId as string | undefined;
      operationId = operationId !== undefined ? idPrefix(path) + operationId : idPrefix(path) + (OPERATION_IDS[key] ?? derivedOperationId(method, relativePath(path)));
      if (used.has(operationId)) {
        // Two routes would share a name: the later one says its whole path.
        const segs = relativePath(path).split('/').filter((s) => s && !isParam(s)).map(snake);
        operationId = `${idPrefix(path)}${snake(method)}_${segs.join('_')}`;
        for (let n = 2; used.has(operationId); n++) operationId = `${operationId.replace(/_\d+$/, '')}_${n}`;
      }
      used.add(operationId);

      const response = { ...((schema.response as Record<string, Schema> | undefined) ?? {}) };
      if (!Object.keys(response).some((s) => /^2/.test(s))) {
        const raw = NON_JSON_SUCCESS[key];
        if (raw) response[200] = { description: raw.description, content: { [raw.type]: { schema: { type: 'string', ...(raw.format ? { format: raw.format } : {}) } } } };
        else if (method === 'DELETE') response[204] = { type: 'null', description: 'Done; no body' };
      }
      for (const [status, r] of Object.entries(errorResponses(method, path, dialect, schema, isPublic))) response[status] ??= r;

      // A new object: schemas are shared between routes (the Yandex plugin is mounted twice).
      route.schema = {
        ...schema,
        operationId,
        security: (schema.security as unknown) ?? securityOf(method, path, dialect, isPublic),
        response,
      } as RouteOptions['schema'];
    }
  };
}

/** The parts of the generated document that completeDocument() reads and completes. */
interface OpenApiDocument {
  paths: Record<string, Record<string, { tags?: string[]; security?: Array<Record<string, string[]>> }>>;
  components: { securitySchemes?: Record<string, unknown> };
  tags?: Array<{ name: string; description: string }>;
}

/**
 * Completes the generated document: the tags its operations use, described; the security
 * schemes they use; and, when the dashboard's session routes exist, the session cookie as
 * another way into the native routes.
 */
export function completeDocument({ openapiObject }: { openapiObject: Partial<OpenApiDocument> }): Partial<OpenApiDocument> {
  const doc = openapiObject as OpenApiDocument;
  const dashboard = doc.paths['/ui/session'] !== undefined;
  const tags: string[] = [];
  const schemes = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const op of Object.values(item)) {
      for (const t of op.tags ?? []) if (!tags.includes(t)) tags.push(t);
      // With a dashboard session, the native routes act as the session's token (session.ts).
      if (dashboard && dialectOfPath(path) === 'planetscale' && path.startsWith('/v1/') && op.security?.some((s) => 'ServiceToken' in s)) {
        op.security = [...op.security, { DashboardSession: [] }];
      }
      for (const s of op.security ?? []) for (const name of Object.keys(s)) schemes.add(name);
    }
  }
  doc.tags = tags.map((name) => ({ name, description: TAG_DESCRIPTIONS[name] ?? '' })).filter((t) => t.description !== '');
  doc.components.securitySchemes = Object.fromEntries(Object.entries(SECURITY_SCHEMES).filter(([name]) => schemes.has(name)));
  return doc;
}

/** Names the document's shared schemas after their `$id` (`Error`, `Backup`) instead of `def-N`. */
export const refResolver = {
  buildLocalReference(json: { $id?: unknown; title?: unknown }, _baseUri: unknown, _fragment: unknown, i: number): string {
    if (typeof json.$id === 'string' && /^[A-Za-z0-9._-]+$/.test(json.$id)) return json.$id;
    return `def-${i}`;
  },
};

/** The document's fixed parts (@fastify/swagger's `openapi` option). */
export function openapiInfo(version: string) {
  return {
    openapi: '3.0.3',
    info: {
      title: 'Strongbox API',
      version,
      description:
        'Backups of PostgreSQL and MySQL/MariaDB. The native dialect (`/v1`) is the PlanetScale v1 backups API; `/managed-postgresql/v1` and `/managed-mysql/v1` ' +
        'are the Yandex Cloud managed-database backups API, and `/api/backups` the backupman API, as views of the same catalog. Each dialect takes the service ' +
        'token the way its original does and answers errors in its own body.',
      license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
    },
    servers: [{ url: '/', description: 'The Strongbox server that serves this document' }],
    components: { securitySchemes: { ...SECURITY_SCHEMES } },
  };
}
