/**
 * The dashboard's only way to the server: the public API with the session cookie the
 * server set at sign-in (HttpOnly, so never seen here), the CSRF token on every write, and
 * error bodies turned into their message so pages can show what the server said.
 */

/** An answer other than 2xx; `message` is the server's own words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Session {
  csrf_token: string;
  token: { id: string; name: string; superuser: boolean };
  organization: { id: string; name: string };
  accesses: Array<{ access: string; resource_type: string; resource_id: string }>;
}

let csrfToken: string | null = null;
let onSignedOut: (() => void) | null = null;

/** Remember the CSRF token of the current session (null: signed out). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when the server says the session is gone (expired, token deleted, signed out elsewhere). */
export function onUnauthorized(fn: () => void): void {
  onSignedOut = fn;
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (WRITES.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
  try {
    return await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network', `Could not reach the Strongbox server (${e instanceof Error ? e.message : String(e)}). Is it running?`);
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as { code?: string; message?: string };
    if (parsed && typeof parsed.message === 'string') return new ApiError(res.status, parsed.code ?? String(res.status), parsed.message);
  } catch {
    /* not JSON: fall through to the text */
  }
  return new ApiError(res.status, String(res.status), text.trim().slice(0, 500) || `HTTP ${res.status} ${res.statusText}`);
}

/**
 * One API call. Resolves with the parsed JSON body (or the text, for text/plain answers,
 * or null for 204); rejects with an ApiError carrying the server's message.
 */
export async function request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body);
  if (!res.ok) {
    const err = await errorOf(res);
    // A /v1 call answered 401: the session died under us. Sign-in's own 401 is just a wrong token.
    if (res.status === 401 && path.startsWith('/v1/')) onSignedOut?.();
    throw err;
  }
  if (res.status === 204) return null as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T = unknown>(path: string) => request<T>('GET', path);
export const post = <T = unknown>(path: string, body: unknown = {}) => request<T>('POST', path, body);
export const patch = <T = unknown>(path: string, body: unknown) => request<T>('PATCH', path, body);
export const del = <T = unknown>(path: string) => request<T>('DELETE', path);

/** Build a path from parts, each percent-encoded: `apiPath('/v1/organizations', org, 'databases')`. */
export function apiPath(base: string, ...parts: string[]): string {
  return [base, ...parts.map(encodeURIComponent)].join('/');
}

/** A query string from the defined, non-empty values ("" when none). */
export function queryString(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Sessions (served by the dashboard's server side, see README "Dashboard").
export const getSession = () => get<Session>('/ui/session');
export const signIn = (token: string) => post<Session>('/ui/session', { token });
export const signOut = () => request<null>('DELETE', '/ui/session');

/** The PlanetScale-style list envelope. */
export interface List<T> {
  type: 'list';
  current_page: number;
  next_page: number | null;
  prev_page: number | null;
  data: T[];
  total_count: number;
  total_pages: number;
}

export type BackupState = 'pending' | 'running' | 'success' | 'failed' | 'canceled' | 'ignored';

export interface Backup {
  id: string;
  name: string;
  state: BackupState;
  size: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  expires_at: string | null;
  completed_at: string | null;
  deleted_at: string | null;
  pvc_size: number;
  protected: boolean;
  required: boolean;
  restored_branches: Array<{ id: string; name: string; created_at: string; deleted_at: string | null }>;
  actor: { id: string; display_name: string } | null;
  backup_policy: { id: string; name: string; display_name: string } | null;
  schema_snapshot: { id: string; name: string; created_at: string; url: string } | null;
}

export interface Artifact {
  id: string;
  destination: string;
  provider: string;
  path: string;
  size: number;
  sha256: string | null;
  state: 'pending' | 'success' | 'failed' | 'deleted';
  error: string | null;
  created_at: string;
  verified_at: string | null;
  verification: 'passed' | 'failed' | null;
}

export interface Artifacts {
  data: Artifact[];
  backup_state: BackupState;
  backup_error: string | null;
}

export interface Progress {
  state: BackupState;
  bytes_read: number;
  bytes_written: number;
  rate_bytes_per_second: number;
  estimated_total_bytes: number | null;
  percent: number | null;
  eta_seconds: number | null;
  started_at: string | null;
  updated_at: string | null;
  error: string | null;
}

export interface Verification {
  id: string;
  backup_id: string;
  kind: 'quick' | 'full';
  drill_policy_id: string | null;
  state: 'pending' | 'running' | 'success' | 'failed' | 'canceled';
  error: string | null;
  result: unknown;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface Database {
  id: string;
  name: string;
  kind: 'postgresql' | 'mysql';
}

export interface RestoreState {
  id: string;
  backup_id: string;
  /** A point-in-time restore: the time (ISO) or "latest" it replays to; null for a backup restored as it is. */
  restore_point: string | null;
  /** While a point-in-time restore runs: what it is doing (fetching WAL, replaying, copying out). */
  phase: string | null;
  state: 'pending' | 'running' | 'success' | 'failed' | 'canceled';
  bytes: number;
  total_bytes: number;
  rate_bytes_per_second: number;
  eta_seconds: number | null;
  error: string | null;
  started_at: string | null;
  completed_at: string | null;
}

export interface Branch {
  id: string;
  name: string;
  production: boolean;
  kind: 'postgresql' | 'mysql';
  connection: { host: string; port: number; database: string; user: string };
  restore: RestoreState | null;
  /** Continuous archiving (point-in-time recovery) is on. */
  archiving: boolean;
  archive: ArchiveStatus | null;
}

export type ArchiveState = 'starting' | 'streaming' | 'stopped' | 'failed';

/** The state of a branch's continuous archiving (null on a branch where it was never switched on). */
export interface ArchiveStatus {
  enabled: boolean;
  state: ArchiveState;
  error: string | null;
  last_shipped_at: string | null;
  slot_name?: string | null;
}

/** GET .../recovery-window: the times a point-in-time restore can reach, and the holes in the archive. */
export interface RecoveryWindow {
  earliest: string | null;
  latest: string | null;
  gaps: Array<{ after: string | null; before: string | null; missing: string[] }>;
}

export interface OverviewEntry {
  database: { id: string; name: string; kind: string };
  branch: { id: string; name: string; production: boolean };
  last_backup: { id: string; name: string; state: BackupState; created_at: string; completed_at: string | null; size: number; duration_seconds: number | null; error: string | null } | null;
  last_success: { id: string; name: string; completed_at: string; size: number } | null;
  last_success_age_seconds: number | null;
  next_run_at: string | null;
  stored_bytes: number;
  backup_count: number;
  overdue: boolean;
  overdue_at: string | null;
  last_drill: { state: string; completed_at: string | null; error: string | null } | null;
  archive: ArchiveStatus | null;
  attention: boolean;
}

export interface HistoryPoint {
  id: string;
  name: string;
  state: BackupState;
  created_at: string;
  completed_at: string | null;
  duration_seconds: number | null;
  size: number;
}
