/**
 * A fake Google Drive for tests: a real HTTP server on a random local port speaking exactly
 * the part of the Drive v3 API and Google's token endpoint that the google_drive provider
 * uses, strictly enough to catch a provider that strays from it:
 *
 * - `POST /token`: grant_type=refresh_token (client id, secret and refresh token must match)
 *   or the JWT bearer grant (RS256 signature checked against a key pair made here, and the
 *   iss, aud, scope, iat and exp claims). Issues access tokens that expire.
 * - Every API call needs a live bearer token (401 otherwise).
 * - `GET /drive/v3/files`: files.list with `q` made of `and`-joined clauses
 *   `name = '…'`, `'…' in parents`, `trashed = false|true`, `mimeType = '…'`, `mimeType != '…'`
 *   (string literals escape `\` and `'` with a backslash; anything else is a 400), `fields`
 *   honoured (`nextPageToken` only when asked for), small pages so that paging is exercised.
 * - `POST /drive/v3/files` (create, folders), `GET /drive/v3/files/:id` (metadata, or content
 *   with alt=media), `PATCH /drive/v3/files/:id` (name, trashed, appProperties; null removes one),
 *   `DELETE /drive/v3/files/:id` (a folder takes its contents with it).
 * - Resumable uploads: `POST /upload/drive/v3/files?uploadType=resumable` answers with a
 *   session URI; `PUT`s to it carry `Content-Range: bytes a-b/total|*` (every chunk but the
 *   last a multiple of 256 KiB, or 400) and get 308 with `Range: bytes=0-n` until the last,
 *   which makes the file (200 with the `fields` asked for at the start). `bytes *\/total|*`
 *   with no body asks how far the upload got. `DELETE` on the session cancels it (499).
 *
 * Faults: failNextChunks(n) answers the next n chunk PUTs with 500 (optionally after keeping
 * part of the chunk, as a server that died mid-write would); failNext() any other error on
 * any route; expireTokens() kills every issued token (the next call gets 401); goAway()
 * stops answering altogether (or resets connections) until comeBack().
 */
import { createHash, generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import type { OAuthCredentials, ServiceAccountCredentials } from '../../src/storage/gdrive/index.js';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const CHUNK_UNIT = 256 * 1024;

export interface FakeFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  appProperties: Record<string, string>;
  createdTime: string;
  trashed: boolean;
  /** Null for folders. */
  content: Buffer | null;
}

export interface FakeDriveOptions {
  /** Most files one files.list page holds, whatever pageSize asks (so paging is exercised). Default 3. */
  pageSize?: number;
  /** Lifetime of the access tokens issued, in seconds. Default 3600. */
  tokenLifetimeSeconds?: number;
}

/** An error to answer with instead of doing the call. */
export interface InjectedError {
  status: number;
  /** Google's errors[0].reason, e.g. "rateLimitExceeded", "storageQuotaExceeded". */
  reason?: string;
  /** "$AUTHORIZATION" in it is replaced by the request's Authorization header (a leaky server). */
  message?: string;
}

export interface FakeDriveStats {
  /** Token endpoint calls, successful or not. */
  tokenRequests: number;
  /** API calls refused for a missing, unknown or expired token. */
  unauthorized: number;
  /** Chunk PUTs carrying data (status queries excluded). */
  chunkPuts: number;
  /** Empty `bytes *\/…` PUTs asking how far an upload got. */
  statusQueries: number;
  /** Chunk PUTs answered with an injected failure. */
  failedChunks: number;
  /** Bytes kept by upload sessions so far. */
  bytesReceived: number;
  /** Upload sessions opened. */
  sessions: number;
  /** Every request as "METHOD /path?query", in order. */
  requests: string[];
  /** Every files.list `q`, in order. */
  queries: string[];
}

export interface FakeDrive {
  /** Give as the provider's api_base. */
  apiBase: string;
  /** Give as the provider's token_uri. */
  tokenUri: string;
  /** A folder made at start: give as folder_id. */
  folderId: string;
  /** Credentials the token endpoint accepts. */
  oauthCredentials: OAuthCredentials;
  serviceAccountCredentials: ServiceAccountCredentials;
  stats: FakeDriveStats;
  /**
   * Every file and folder under the root folder (trashed ones excluded) by path, folders
   * with a trailing "/", sorted. Partial files show under their own names.
   */
  paths(): string[];
  /** Every file under the root at `path` (several when names repeat). */
  filesAt(path: string): FakeFile[];
  /** Make a file or folder directly, as a person or another program would. */
  addFile(parentPath: string, name: string, content: Buffer | null, opts?: { mimeType?: string; appProperties?: Record<string, string> }): FakeFile;
  /** Every access token issued so far (for leak checks). */
  accessTokens(): string[];
  /** Delete the file or folder at `path` (a folder with all it holds), as a person might. */
  remove(path: string): void;
  /** The next alt=media download sends half of the file, then nothing more. */
  stallNextDownload(): void;
  /** Make every issued access token invalid: the next API call gets 401. */
  expireTokens(): void;
  /** Lifetime of tokens issued from now on. */
  setTokenLifetime(seconds: number): void;
  /**
   * Answer the next `n` chunk PUTs with `status` (default 500). With `keep: 'half'` the
   * session first keeps the 256 KiB-aligned first half of the chunk, as a server that failed
   * part-way would, so the client must ask where to resume.
   */
  failNextChunks(n: number, opts?: { status?: number; keep?: 'none' | 'half' }): void;
  /** Answer the next `n` requests matching `method` and `path` (a prefix) with `error`. */
  failNext(n: number, match: { method?: string; path?: string }, error: InjectedError): void;
  /** Stop answering: 'hang' holds every request open, 'reset' drops every connection. */
  goAway(mode?: 'hang' | 'reset'): void;
  /** Answer again after goAway(). */
  comeBack(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// The `q` subset.

export type QueryClause =
  | { field: 'name'; op: '='; value: string }
  | { field: 'parents'; op: 'in'; value: string }
  | { field: 'trashed'; op: '='; value: boolean }
  | { field: 'mimeType'; op: '=' | '!='; value: string };

/**
 * Parse a Drive `q` of the subset above. Throws an Error for anything else, a bad escape
 * (only `\\` and `\'` exist) or an unterminated string.
 */
export function parseDriveQuery(q: string): QueryClause[] {
  type Token = { kind: 'string'; value: string } | { kind: 'word'; value: string } | { kind: 'op'; value: string };
  const tokens: Token[] = [];
  for (let i = 0; i < q.length; ) {
    const c = q[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= q.length) throw new Error('unterminated string');
        const d = q[i];
        if (d === '\\') {
          const e = q[i + 1];
          if (e !== '\\' && e !== "'") throw new Error(`invalid escape \\${e ?? ''}`);
          value += e;
          i += 2;
        } else if (d === "'") {
          i++;
          break;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push({ kind: 'string', value });
    } else if (c === '=') {
      tokens.push({ kind: 'op', value: '=' });
      i++;
    } else if (c === '!' && q[i + 1] === '=') {
      tokens.push({ kind: 'op', value: '!=' });
      i += 2;
    } else if (/[A-Za-z]/.test(c)) {
      let word = '';
      while (i < q.length && /[A-Za-z]/.test(q[i])) word += q[i++];
      tokens.push({ kind: 'word', value: word });
    } else {
      throw new Error(`unexpected ${JSON.stringify(c)}`);
    }
  }
  const clauses: QueryClause[] = [];
  let i = 0;
  const take = (): Token => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('unexpected end of query');
    return t;
  };
  const expectString = (): string => {
    const t = take();
    if (t.kind !== 'string') throw new Error(`expected a string, got ${t.value}`);
    return t.value;
  };
  for (;;) {
    const t = take();
    if (t.kind === 'string') {
      const inWord = take();
      const parents = take();
      if (inWord.value !== 'in' || parents.value !== 'parents') throw new Error('expected "in parents"');
      clauses.push({ field: 'parents', op: 'in', value: t.value });
    } else if (t.kind === 'word' && t.value === 'name') {
      if (take().value !== '=') throw new Error('name supports only =');
      clauses.push({ field: 'name', op: '=', value: expectString() });
    } else if (t.kind === 'word' && t.value === 'trashed') {
      if (take().value !== '=') throw new Error('trashed supports only =');
      const v = take();
      if (v.kind !== 'word' || (v.value !== 'true' && v.value !== 'false')) throw new Error('trashed = true|false');
      clauses.push({ field: 'trashed', op: '=', value: v.value === 'true' });
    } else if (t.kind === 'word' && t.value === 'mimeType') {
      const op = take().value;
      if (op !== '=' && op !== '!=') throw new Error('mimeType supports = and !=');
      clauses.push({ field: 'mimeType', op, value: expectString() });
    } else {
      throw new Error(`unsupported clause at ${JSON.stringify(t.value)}`);
    }
    if (i === tokens.length) return clauses;
    const and = take();
    if (and.kind !== 'word' || and.value !== 'and') throw new Error(`expected "and", got ${JSON.stringify(and.value)}`);
  }
}

/** `nextPageToken,files(id,name)` → { nextPageToken: [], files: ['id', 'name'] }. */
function parseFields(fields: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const re = /\s*([A-Za-z]+)(?:\(([^)]*)\))?\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < fields.length && (m = re.exec(fields)) !== null) {
    out.set(m[1], m[2] === undefined ? [] : m[2].split(',').map((s) => s.trim()));
  }
  return out;
}

const DEFAULT_FILE_FIELDS = ['kind', 'id', 'name', 'mimeType'];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface Session {
  id: string;
  name: string;
  parents: string[];
  mimeType: string;
  appProperties: Record<string, string>;
  fields: string[];
  chunks: Buffer[];
  received: number;
  file: FakeFile | null;
  cancelled: boolean;
}

let keyPair: { privateKey: KeyObject; publicKey: KeyObject } | null = null;

/** The service account's key pair, made once per test process (RSA key generation is slow). */
function testKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  keyPair ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
  return keyPair;
}

/** Start a fake Drive on 127.0.0.1 and a random port. Close it with close(). */
export async function startFakeDrive(options: FakeDriveOptions = {}): Promise<FakeDrive> {
  const maxPage = options.pageSize ?? 3;
  let tokenLifetime = options.tokenLifetimeSeconds ?? 3600;
  const files = new Map<string, FakeFile>();
  const sessions = new Map<string, Session>();
  const tokens = new Map<string, number>();
  const issued: string[] = [];
  const sockets = new Set<Socket>();
  const stats: FakeDriveStats = {
    tokenRequests: 0,
    unauthorized: 0,
    chunkPuts: 0,
    statusQueries: 0,
    failedChunks: 0,
    bytesReceived: 0,
    sessions: 0,
    requests: [],
    queries: [],
  };
  let away: 'hang' | 'reset' | null = null;
  let stallDownload = false;
  let chunkFailures: Array<{ status: number; keep: 'none' | 'half' }> = [];
  const injected: Array<{ method?: string; path?: string; error: InjectedError }> = [];

  const { privateKey, publicKey } = testKeyPair();
  const oauthCredentials: OAuthCredentials = {
    type: 'oauth',
    client_id: `client-${randomBytes(4).toString('hex')}.apps.example`,
    client_secret: `client-secret-${randomBytes(12).toString('hex')}`,
    refresh_token: `refresh-token-${randomBytes(16).toString('hex')}`,
  };
  const serviceAccountCredentials: ServiceAccountCredentials = {
    type: 'service_account',
    client_email: 'strongbox-test@fake-project.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };

  let clock = Date.now();
  const now = (): string => new Date(++clock).toISOString();
  const newId = (): string => randomBytes(12).toString('base64url');

  const makeFile = (f: Omit<FakeFile, 'id' | 'createdTime' | 'trashed'>): FakeFile => {
    const file: FakeFile = { id: newId(), createdTime: now(), trashed: false, ...f };
    files.set(file.id, file);
    return file;
  };
  const root = makeFile({ name: 'strongbox-root', mimeType: FOLDER_MIME, parents: [], appProperties: {}, content: null });

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, 'backendError', String(err));
      else res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tokenUri = `${origin}/token`;

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function sendError(res: http.ServerResponse, status: number, reason: string, message: string): void {
    sendJson(res, status, { error: { code: status, message, errors: [{ domain: 'global', reason, message }] } });
  }

  async function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  function jsonBody(body: Buffer): Record<string, unknown> {
    if (body.length === 0) return {};
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      return parsed as Record<string, unknown>;
    } catch {
      throw new HttpError(400, 'parseError', 'Parse Error');
    }
  }

  function describeFile(f: FakeFile, fields: string[]): Record<string, unknown> {
    const all: Record<string, unknown> = {
      kind: 'drive#file',
      id: f.id,
      name: f.name,
      mimeType: f.mimeType,
      parents: f.parents,
      createdTime: f.createdTime,
      trashed: f.trashed,
    };
    if (Object.keys(f.appProperties).length > 0) all.appProperties = { ...f.appProperties };
    if (f.content !== null) {
      // Drive sends int64 values as strings.
      all.size = String(f.content.length);
      all.md5Checksum = createHash('md5').update(f.content).digest('hex');
    }
    const out: Record<string, unknown> = {};
    for (const field of fields) if (field in all) out[field] = all[field];
    return out;
  }

  function fileFields(url: URL): string[] {
    const fields = url.searchParams.get('fields');
    return fields === null ? DEFAULT_FILE_FIELDS : [...parseFields(fields).keys()];
  }

  function getFile(id: string): FakeFile {
    const f = files.get(id);
    if (f === undefined) throw new HttpError(404, 'notFound', `File not found: ${id}.`);
    return f;
  }

  function checkParents(parents: unknown): string[] {
    if (parents === undefined) return [root.id];
    if (!Array.isArray(parents) || parents.length !== 1 || typeof parents[0] !== 'string') {
      throw new HttpError(400, 'invalid', 'parents must hold exactly one folder id');
    }
    const parent = getFile(parents[0]);
    if (parent.mimeType !== FOLDER_MIME) throw new HttpError(400, 'invalidParent', 'The parent is not a folder.');
    return [parent.id];
  }

  function checkAppProperties(value: unknown, allowNull: boolean): Record<string, string | null> {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null) throw new HttpError(400, 'invalid', 'appProperties must be an object');
    for (const [k, v] of Object.entries(value)) {
      if (!(typeof v === 'string' || (allowNull && v === null))) throw new HttpError(400, 'invalid', `appProperties.${k} must be a string`);
      // Drive's limit: key and value together at most 124 bytes.
      if (Buffer.byteLength(k) + Buffer.byteLength(v ?? '') > 124) throw new HttpError(400, 'invalid', 'appProperties entry too large');
    }
    return value as Record<string, string | null>;
  }

  function removeTree(id: string): void {
    for (const f of [...files.values()]) if (f.parents.includes(id)) removeTree(f.id);
    files.delete(id);
  }

  function bearer(req: http.IncomingMessage): boolean {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const expires = m === null ? undefined : tokens.get(m[1]);
    return expires !== undefined && expires > Date.now();
  }

  async function handleToken(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    stats.tokenRequests++;
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const grant = form.get('grant_type');
    const refuse = (status: number, error: string, description: string): void => sendJson(res, status, { error, error_description: description });
    if (grant === 'refresh_token') {
      if (form.get('client_id') !== oauthCredentials.client_id || form.get('client_secret') !== oauthCredentials.client_secret) {
        return refuse(401, 'invalid_client', 'The OAuth client was not found.');
      }
      if (form.get('refresh_token') !== oauthCredentials.refresh_token) return refuse(400, 'invalid_grant', 'Token has been expired or revoked.');
    } else if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      const why = checkAssertion(form.get('assertion') ?? '', publicKey);
      if (why !== null) return refuse(400, 'invalid_grant', why);
    } else {
      return refuse(400, 'unsupported_grant_type', `Invalid grant_type: ${grant ?? ''}`);
    }
    const token = `fake-access-${randomBytes(16).toString('hex')}`;
    tokens.set(token, Date.now() + tokenLifetime * 1000);
    issued.push(token);
    sendJson(res, 200, { access_token: token, expires_in: tokenLifetime, token_type: 'Bearer', scope: DRIVE_SCOPE });
  }

  function checkAssertion(assertion: string, key: KeyObject): string | null {
    const parts = assertion.split('.');
    if (parts.length !== 3) return 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.';
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'Invalid JWT: not JSON.';
    }
    if (header.alg !== 'RS256') return 'Invalid JWT: alg must be RS256.';
    if (!verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'))) return 'Invalid JWT Signature.';
    if (claims.iss !== serviceAccountCredentials.client_email) return 'Invalid JWT: unknown issuer.';
    if (claims.aud !== tokenUri) return 'Invalid JWT: wrong audience.';
    if (typeof claims.scope !== 'string' || !claims.scope.split(' ').includes(DRIVE_SCOPE)) return 'Invalid JWT: missing scope.';
    const nowSec = Date.now() / 1000;
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number') return 'Invalid JWT: iat and exp are required.';
    if (claims.iat > nowSec + 60 || claims.exp < nowSec || claims.exp - claims.iat > 3600) {
      return 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.';
    }
    return null;
  }

  function list(url: URL, res: http.ServerResponse): void {
    const q = url.searchParams.get('q') ?? '';
    stats.queries.push(q);
    let clauses: QueryClause[];
    try {
      clauses = parseDriveQuery(q);
    } catch (err) {
      throw new HttpError(400, 'invalid', `Invalid Value: q (${(err as Error).message})`);
    }
    for (const c of clauses) if (c.field === 'parents') getFile(c.value);
    const matches = [...files.values()].filter(
      (f) =>
        f.id !== root.id &&
        clauses.every((c) => {
          switch (c.field) {
            case 'name':
              return f.name === c.value;
            case 'parents':
              return f.parents.includes(c.value);
            case 'trashed':
              return f.trashed === c.value;
            case 'mimeType':
              return c.op === '=' ? f.mimeType === c.value : f.mimeType !== c.value;
          }
        }),
    );
    const fields = parseFields(url.searchParams.get('fields') ?? 'kind,nextPageToken,files');
    const wanted = fields.get('files');
    const fileFieldList = wanted === undefined || wanted.length === 0 ? DEFAULT_FILE_FIELDS : wanted;
    const asked = Number(url.searchParams.get('pageSize') ?? 100);
    const pageSize = Math.max(1, Math.min(asked, maxPage));
    const offset = Number(Buffer.from(url.searchParams.get('pageToken') ?? 'MA', 'base64url').toString() || 0);
    const page = matches.slice(offset, offset + pageSize);
    const body: Record<string, unknown> = {};
    if (fields.has('kind')) body.kind = 'drive#fileList';
    if (fields.has('files')) body.files = page.map((f) => describeFile(f, fileFieldList));
    if (fields.has('nextPageToken') && offset + pageSize < matches.length) {
      body.nextPageToken = Buffer.from(String(offset + pageSize)).toString('base64url');
    }
    sendJson(res, 200, body);
  }

  async function startUpload(req: http.IncomingMessage, url: URL, res: http.ServerResponse): Promise<void> {
    if (url.searchParams.get('uploadType') !== 'resumable') throw new HttpError(400, 'invalid', 'only uploadType=resumable is supported here');
    const meta = jsonBody(await readBody(req));
    const parents = checkParents(meta.parents);
    if (typeof meta.name !== 'string' || meta.name === '') throw new HttpError(400, 'invalid', 'name is required');
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      name: meta.name,
      parents,
      mimeType: typeof meta.mimeType === 'string' ? meta.mimeType : 'application/octet-stream',
      appProperties: checkAppProperties(meta.appProperties, false) as Record<string, string>,
      fields: fileFields(url),
      chunks: [],
      received: 0,
      file: null,
      cancelled: false,
    };
    sessions.set(session.id, session);
    stats.sessions++;
    res.writeHead(200, { location: `${origin}/upload/drive/v3/files?uploadType=resumable&upload_id=${session.id}`, 'content-length': 0 });
    res.end();
  }

  function finishUpload(session: Session): FakeFile {
    session.file = makeFile({
      name: session.name,
      mimeType: session.mimeType,
      parents: session.parents.filter((p) => files.has(p)),
      appProperties: session.appProperties,
      content: Buffer.concat(session.chunks),
    });
    if (session.file.parents.length === 0) {
      files.delete(session.file.id);
      throw new HttpError(404, 'notFound', `File not found: ${session.parents[0]}.`);
    }
    session.chunks = [];
    return session.file;
  }

  function resumeIncomplete(res: http.ServerResponse, session: Session): void {
    const headers: Record<string, string | number> = { 'content-length': 0 };
    if (session.received > 0) headers.range = `bytes=0-${session.received - 1}`;
    res.writeHead(308, headers);
    res.end();
  }

  async function putChunk(req: http.IncomingMessage, url: URL, res: http.ServerResponse): Promise<void> {
    const session = sessions.get(url.searchParams.get('upload_id') ?? '');
    const body = await readBody(req);
    if (session === undefined || session.cancelled) throw new HttpError(404, 'notFound', 'No such upload session.');
    const range = req.headers['content-range'] ?? '';
    const query = /^bytes \*\/(\*|\d+)$/.exec(range);
    if (query !== null) {
      if (body.length > 0) throw new HttpError(400, 'invalid', 'a status query has no body');
      stats.statusQueries++;
      if (session.file === null && query[1] !== '*' && Number(query[1]) === session.received) finishUpload(session);
      if (session.file !== null) return sendJson(res, 200, describeFile(session.file, session.fields));
      return resumeIncomplete(res, session);
    }
    const m = /^bytes (\d+)-(\d+)\/(\*|\d+)$/.exec(range);
    if (m === null) throw new HttpError(400, 'invalid', `bad Content-Range ${JSON.stringify(range)}`);
    stats.chunkPuts++;
    if (session.file !== null) return sendJson(res, 200, describeFile(session.file, session.fields));
    const first = Number(m[1]);
    const last = Number(m[2]);
    const total = m[3] === '*' ? null : Number(m[3]);
    if (last < first || body.length !== last - first + 1) throw new HttpError(400, 'invalid', 'the body does not match Content-Range');
    if (first > session.received) throw new HttpError(400, 'invalid', `the upload offset ${first} is past the ${session.received} bytes received`);
    const isLast = total !== null && last + 1 === total;
    if (total !== null && last + 1 > total) throw new HttpError(400, 'invalid', 'Content-Range runs past the total size');
    if (!isLast && body.length % CHUNK_UNIT !== 0) throw new HttpError(400, 'invalid', 'a chunk other than the last must be a multiple of 256 KiB');
    const fresh = body.subarray(session.received - first);
    const failure = chunkFailures.shift();
    if (failure !== undefined) {
      stats.failedChunks++;
      if (failure.keep === 'half') {
        const keep = Math.floor(fresh.length / 2 / CHUNK_UNIT) * CHUNK_UNIT;
        session.chunks.push(Buffer.from(fresh.subarray(0, keep)));
        session.received += keep;
        stats.bytesReceived += keep;
      }
      return sendError(res, failure.status, 'backendError', 'Backend Error');
    }
    session.chunks.push(Buffer.from(fresh));
    session.received += fresh.length;
    stats.bytesReceived += fresh.length;
    if (isLast) return sendJson(res, 200, describeFile(finishUpload(session), session.fields));
    resumeIncomplete(res, session);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (away === 'hang') return; // Never answered; close() drops the connection.
    if (away === 'reset') {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', origin);
    const method = req.method ?? 'GET';
    stats.requests.push(`${method} ${url.pathname}${url.search}`);
    const hit = injected.findIndex((e) => (e.method === undefined || e.method === method) && (e.path === undefined || url.pathname.startsWith(e.path)));
    if (hit >= 0) {
      const { error } = injected.splice(hit, 1)[0];
      await readBody(req);
      const message = (error.message ?? 'Injected failure').replace('$AUTHORIZATION', req.headers.authorization ?? '');
      return sendError(res, error.status, error.reason ?? 'injected', message);
    }
    try {
      if (url.pathname === '/token' && method === 'POST') return await handleToken(req, res);
      if (!bearer(req)) {
        stats.unauthorized++;
        await readBody(req);
        return sendJson(res, 401, {
          error: {
            code: 401,
            message: 'Request had invalid authentication credentials.',
            errors: [{ domain: 'global', reason: 'authError', message: 'Invalid Credentials' }],
            status: 'UNAUTHENTICATED',
          },
        });
      }
      if (url.pathname === '/upload/drive/v3/files') {
        if (method === 'POST') return await startUpload(req, url, res);
        if (method === 'PUT') return await putChunk(req, url, res);
        if (method === 'DELETE') {
          const session = sessions.get(url.searchParams.get('upload_id') ?? '');
          if (session === undefined) throw new HttpError(404, 'notFound', 'No such upload session.');
          session.cancelled = true;
          session.chunks = [];
          res.writeHead(499, { 'content-length': 0 });
          return void res.end();
        }
      }
      if (url.pathname === '/drive/v3/files') {
        if (method === 'GET') return list(url, res);
        if (method === 'POST') {
          const meta = jsonBody(await readBody(req));
          const parents = checkParents(meta.parents);
          const file = makeFile({
            name: typeof meta.name === 'string' ? meta.name : 'Untitled',
            mimeType: typeof meta.mimeType === 'string' ? meta.mimeType : 'application/octet-stream',
            parents,
            appProperties: checkAppProperties(meta.appProperties, false) as Record<string, string>,
            content: meta.mimeType === FOLDER_MIME ? null : Buffer.alloc(0),
          });
          return sendJson(res, 200, describeFile(file, fileFields(url)));
        }
      }
      const idMatch = /^\/drive\/v3\/files\/([^/]+)$/.exec(url.pathname);
      if (idMatch !== null) {
        const id = decodeURIComponent(idMatch[1]);
        if (method === 'GET') {
          const f = getFile(id);
          if (url.searchParams.get('alt') === 'media') {
            if (f.content === null) throw new HttpError(403, 'fileNotDownloadable', 'Only files with binary content can be downloaded.');
            res.writeHead(200, { 'content-type': f.mimeType, 'content-length': f.content.length });
            if (stallDownload) {
              stallDownload = false;
              return void res.write(f.content.subarray(0, f.content.length >> 1));
            }
            return void res.end(f.content);
          }
          return sendJson(res, 200, describeFile(f, fileFields(url)));
        }
        if (method === 'PATCH') {
          const meta = jsonBody(await readBody(req));
          const f = getFile(id);
          for (const field of Object.keys(meta)) {
            if (field !== 'name' && field !== 'appProperties' && field !== 'trashed') {
              throw new HttpError(400, 'fieldNotWritable', `The fake cannot update ${field}.`);
            }
          }
          if (meta.trashed !== undefined) {
            if (typeof meta.trashed !== 'boolean') throw new HttpError(400, 'invalid', 'trashed must be a boolean');
            f.trashed = meta.trashed;
          }
          if (meta.name !== undefined) {
            if (typeof meta.name !== 'string' || meta.name === '') throw new HttpError(400, 'invalid', 'name must be a non-empty string');
            f.name = meta.name;
          }
          for (const [k, v] of Object.entries(checkAppProperties(meta.appProperties, true))) {
            if (v === null) delete f.appProperties[k];
            else f.appProperties[k] = v;
          }
          return sendJson(res, 200, describeFile(f, fileFields(url)));
        }
        if (method === 'DELETE') {
          await readBody(req);
          getFile(id);
          if (id === root.id) throw new HttpError(403, 'insufficientFilePermissions', 'Tests may not delete the root.');
          removeTree(id);
          res.writeHead(204);
          return void res.end();
        }
      }
      throw new HttpError(404, 'notFound', `No route for ${method} ${url.pathname}`);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (!req.complete) await readBody(req).catch(() => {});
      sendError(res, err.status, err.reason, err.message);
    }
  }

  /** Path under the root, or null for the root itself, trashed files and orphans. */
  const pathOf = (f: FakeFile): string | null => {
    const names: string[] = [];
    let cur: FakeFile | undefined = f;
    while (cur !== undefined && cur.id !== root.id) {
      if (cur.trashed) return null;
      names.unshift(cur.name);
      cur = files.get(cur.parents[0] ?? '');
    }
    if (cur === undefined || names.length === 0) return null;
    return names.join('/') + (f.mimeType === FOLDER_MIME ? '/' : '');
  };

  const folderAt = (path: string): FakeFile => {
    let cur = root;
    for (const name of path.split('/').filter((s) => s !== '')) {
      const next = [...files.values()].find((f) => f.name === name && f.parents.includes(cur.id) && f.mimeType === FOLDER_MIME);
      if (next === undefined) throw new Error(`fake drive: no folder ${path}`);
      cur = next;
    }
    return cur;
  };

  return {
    apiBase: origin,
    tokenUri,
    folderId: root.id,
    oauthCredentials,
    serviceAccountCredentials,
    stats,
    paths() {
      return [...files.values()]
        .filter((f) => f.id !== root.id)
        .map(pathOf)
        .filter((p): p is string => p !== null)
        .sort();
    },
    filesAt(path) {
      return [...files.values()].filter((f) => f.id !== root.id && pathOf(f) === path);
    },
    addFile(parentPath, name, content, opts = {}) {
      return makeFile({
        name,
        mimeType: opts.mimeType ?? (content === null ? FOLDER_MIME : 'application/octet-stream'),
        parents: [folderAt(parentPath).id],
        appProperties: { ...opts.appProperties },
        content,
      });
    },
    remove(path) {
      const [file] = [...files.values()].filter((f) => f.id !== root.id && (pathOf(f) === path || pathOf(f) === `${path}/`));
      if (file === undefined) throw new Error(`fake drive: nothing at ${path}`);
      removeTree(file.id);
    },
    stallNextDownload() {
      stallDownload = true;
    },
    accessTokens() {
      return [...issued];
    },
    expireTokens() {
      tokens.clear();
    },
    setTokenLifetime(seconds) {
      tokenLifetime = seconds;
    },
    failNextChunks(n, opts = {}) {
      for (let i = 0; i < n; i++) chunkFailures.push({ status: opts.status ?? 500, keep: opts.keep ?? 'none' });
    },
    failNext(n, match, error) {
      for (let i = 0; i < n; i++) injected.push({ ...match, error });
    },
    goAway(mode = 'hang') {
      away = mode;
      if (mode === 'reset') for (const s of sockets) s.destroy();
    },
    comeBack() {
      away = null;
    },
    async close() {
      chunkFailures = [];
      away = 'reset';
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
