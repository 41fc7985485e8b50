/**
 * Google Drive storage configuration: validated once, with errors that name the bad field
 * and never echo a secret, and a redacted form for logs and the API.
 */
import { createPrivateKey } from 'node:crypto';

import { StorageError } from '../provider.js';

export const DEFAULT_API_BASE = 'https://www.googleapis.com';
export const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** Drive wants every chunk but the last to be a multiple of 256 KiB. */
export const CHUNK_UNIT = 256 * 1024;
const MB = 1024 * 1024;
const DEFAULT_CHUNK_MB = 8;
/** Two chunks are held in memory per upload (one filling, one in flight). */
const MAX_CHUNK_MB = 1024;
const DEFAULT_TIMEOUT_MS = 120_000;

/** An installed-app / web OAuth client and a refresh token granted for the drive scope. */
export interface OAuthCredentials {
  type: 'oauth';
  client_id: string;
  client_secret: string;
  refresh_token: string;
}

/** A service account key (the JSON file Google hands out; other fields in it are ignored). */
export interface ServiceAccountCredentials {
  type: 'service_account';
  client_email: string;
  /** PEM private key ("-----BEGIN PRIVATE KEY-----..."). */
  private_key: string;
  token_uri?: string;
}

export type DriveCredentials = OAuthCredentials | ServiceAccountCredentials;

export interface DriveConfig {
  /** Id of the Drive folder that is the root of every key. */
  folder_id: string;
  credentials: DriveCredentials;
  /** Drive API origin. Default https://www.googleapis.com. */
  api_base?: string;
  /** Token endpoint; overrides credentials.token_uri. Default https://oauth2.googleapis.com/token. */
  token_uri?: string;
  /** Resumable upload chunk size in MiB, a multiple of 0.25 (256 KiB). Default 8. */
  chunk_size_mb?: number;
  /** Longest wait for one HTTP request (a whole chunk upload included). Default 120000. */
  request_timeout_ms?: number;
}

/** A configuration with every default filled in, as parseDriveConfig returns it. */
export type ResolvedDriveConfig = DriveConfig & Required<Omit<DriveConfig, 'credentials'>>;

function configError(field: string, why: string): StorageError {
  return new StorageError(`invalid google_drive storage configuration: ${field} ${why}`, true);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requiredString(obj: Record<string, unknown>, field: string, prefix = ''): string {
  const value = obj[field];
  if (typeof value !== 'string' || value.trim() === '') throw configError(prefix + field, 'must be a non-empty string');
  return value.trim();
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** An http(s) URL without query or fragment; plain http only to this machine (tokens travel on it). */
function checkUrl(field: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw configError(field, 'must be a URL string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(field, 'is not a valid URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw configError(field, 'must be an https:// URL (http:// only for localhost)');
  }
  if (url.search || url.hash || url.username || url.password) throw configError(field, 'must not carry credentials, a query or a fragment');
  return value.replace(/\/+$/, '');
}

function parseCredentials(raw: unknown): DriveCredentials {
  if (!isRecord(raw)) throw configError('credentials', 'must be an object with a "type" of "oauth" or "service_account"');
  switch (raw.type) {
    case 'oauth':
      return {
        type: 'oauth',
        client_id: requiredString(raw, 'client_id', 'credentials.'),
        client_secret: requiredString(raw, 'client_secret', 'credentials.'),
        refresh_token: requiredString(raw, 'refresh_token', 'credentials.'),
      };
    case 'service_account': {
      const clientEmail = requiredString(raw, 'client_email', 'credentials.');
      // Keys pasted through environment variables often arrive with literal "\n".
      let privateKey = requiredString(raw, 'private_key', 'credentials.');
      if (!privateKey.includes('\n')) privateKey = privateKey.replace(/\\n/g, '\n');
      try {
        const key = createPrivateKey(privateKey);
        if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
      } catch {
        // The parser's message is not passed on: it could quote part of the key.
        throw configError('credentials.private_key', 'must be an RSA private key in PEM form');
      }
      const creds: ServiceAccountCredentials = { type: 'service_account', client_email: clientEmail, private_key: privateKey };
      if (raw.token_uri !== undefined) creds.token_uri = checkUrl('credentials.token_uri', raw.token_uri);
      return creds;
    }
    default:
      throw configError('credentials.type', 'must be "oauth" or "service_account"');
  }
}

const FIELDS = new Set(['folder_id', 'credentials', 'api_base', 'token_uri', 'chunk_size_mb', 'request_timeout_ms']);

/**
 * Check a google_drive destination's configuration and fill in the defaults. Throws
 * StorageError(permanent) naming the first bad field; no message contains a secret.
 */
export function parseDriveConfig(raw: unknown): ResolvedDriveConfig {
  if (!isRecord(raw)) throw configError('configuration', 'must be an object');
  for (const field of Object.keys(raw)) {
    // A misspelt optional field would otherwise be silently ignored.
    if (!FIELDS.has(field)) throw configError(field, 'is not a known field');
  }
  const folderId = requiredString(raw, 'folder_id');
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(folderId)) throw configError('folder_id', 'must be a Drive folder id (letters, digits, "-" and "_")');
  const credentials = parseCredentials(raw.credentials);

  const apiBase = raw.api_base === undefined ? DEFAULT_API_BASE : checkUrl('api_base', raw.api_base);
  const tokenUri =
    raw.token_uri !== undefined
      ? checkUrl('token_uri', raw.token_uri)
      : (credentials.type === 'service_account' ? credentials.token_uri : undefined) ?? DEFAULT_TOKEN_URI;

  const chunk = raw.chunk_size_mb ?? DEFAULT_CHUNK_MB;
  if (typeof chunk !== 'number' || !Number.isFinite(chunk) || chunk <= 0 || chunk > MAX_CHUNK_MB || !Number.isInteger((chunk * MB) / CHUNK_UNIT)) {
    throw configError('chunk_size_mb', `must be a multiple of 0.25 (256 KiB) between 0.25 and ${MAX_CHUNK_MB}`);
  }
  const timeout = raw.request_timeout_ms ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 3_600_000) {
    throw configError('request_timeout_ms', 'must be an integer number of milliseconds between 1 and 3600000');
  }
  return {
    folder_id: folderId,
    credentials,
    api_base: apiBase,
    token_uri: tokenUri,
    chunk_size_mb: chunk,
    request_timeout_ms: timeout,
  };
}

const REDACTED = '[redacted]';
/** Fields shown as they are; every other one is replaced, so an unexpected field never leaks. */
const PLAIN_FIELDS = new Set(['folder_id', 'api_base', 'token_uri', 'chunk_size_mb', 'request_timeout_ms']);
const PLAIN_CREDENTIAL_FIELDS = new Set(['type', 'client_id', 'client_email', 'token_uri', 'project_id']);

function redactFields(obj: Record<string, unknown>, plain: Set<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, plain.has(k) ? v : REDACTED]));
}

/**
 * The configuration for logs and the API: client_secret, refresh_token, private_key, and any
 * field not known to be harmless, become "[redacted]". Takes a parsed configuration or the
 * raw stored one.
 */
export function redactDriveConfig(config: DriveConfig | Record<string, unknown>): Record<string, unknown> {
  const { credentials, ...rest } = config as Record<string, unknown>;
  const out = redactFields(rest, PLAIN_FIELDS);
  if (credentials !== undefined) out.credentials = isRecord(credentials) ? redactFields(credentials, PLAIN_CREDENTIAL_FIELDS) : REDACTED;
  return out;
}

/** Every secret string in `config`, for scrubbing text that came back from a server. */
export function configSecrets(config: DriveConfig): string[] {
  const c = config.credentials;
  return c.type === 'oauth' ? [c.client_secret, c.refresh_token] : [c.private_key];
}

export const chunkBytes = (config: ResolvedDriveConfig): number => config.chunk_size_mb * MB;
