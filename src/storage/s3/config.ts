/**
 * The S3 provider's configuration: validation with an error naming the bad field, and
 * redaction of the secrets for API responses and logs.
 */
import { keySegments } from '../keys.js';
import { StorageError } from '../provider.js';

/**
 * Where and how the S3 provider stores objects. Field names are those of the stored
 * destination configuration.
 *
 * Memory: each writer holds at most `queue_size` parts in flight plus the part being
 * filled (and briefly one more while a full part is cut), so about
 * `(queue_size + 2) × part_size_mb` MiB per concurrent write; the defaults (16 MiB × 4)
 * come to about 96 MiB. Smaller parts use less memory but allow smaller objects: S3
 * takes at most 10,000 parts, so the largest object is `part_size_mb × 10,000` MiB
 * (156 GiB with the default).
 */
export interface S3Config {
  /** An S3-compatible service's URL (MinIO, Ceph, R2...); absent for AWS itself. */
  endpoint?: string;
  /** The bucket's region. Default "us-east-1". */
  region: string;
  bucket: string;
  /** Objects live under `prefix/`; "" for the bucket's root. No leading slash, no "..". */
  prefix: string;
  /** Address the bucket as `endpoint/bucket` instead of `bucket.endpoint` (most S3-compatible stores need this). Default false. */
  force_path_style: boolean;
  /** Static credentials. Both or neither; with neither the AWS SDK's default chain (environment, shared config, instance role) is used. */
  access_key_id?: string;
  secret_access_key?: string;
  /** For temporary credentials; needs the two above. */
  session_token?: string;
  /** Size of each uploaded part in MiB, 5 to 512. Default 16. */
  part_size_mb: number;
  /** Parts of one object uploaded in parallel, 1 to 16. Default 4. */
  queue_size: number;
  /** How long connecting to the service may take, in ms. Default 10,000. */
  connect_timeout_ms: number;
  /**
   * How long a request may go without sending or receiving a byte before it fails, in
   * ms (an idle timeout, so that a large part on a slow link is not cut off). Default 120,000.
   */
  request_timeout_ms: number;
  /**
   * Tries of each request made while writing an object (create, every part, complete,
   * abort), the first included, with backoff, 1 to 10. Default 5. Those cannot be retried
   * from outside without sending the whole object again; every other call is tried once
   * and left to the retrying wrapper (storage/retry.ts), as the provider contract says.
   */
  max_attempts: number;
}

const DEFAULTS = {
  region: 'us-east-1',
  prefix: '',
  force_path_style: false,
  part_size_mb: 16,
  queue_size: 4,
  connect_timeout_ms: 10_000,
  request_timeout_ms: 120_000,
  max_attempts: 5,
} as const;

const FIELDS = new Set([
  'endpoint', 'region', 'bucket', 'prefix', 'force_path_style', 'access_key_id', 'secret_access_key', 'session_token',
  'part_size_mb', 'queue_size', 'connect_timeout_ms', 'request_timeout_ms', 'max_attempts',
]);

const SECRET_FIELDS = ['access_key_id', 'secret_access_key', 'session_token'] as const;

function invalid(field: string, why: string): StorageError {
  return new StorageError(`invalid s3 storage configuration: ${field} ${why}`, true);
}

function optionalString(raw: Record<string, unknown>, field: string): string | undefined {
  const value = raw[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  return value;
}

// eslint-disable-next-line no-control-regex
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;

/** A string without spaces or control characters; secrets are never echoed back. */
function token(raw: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const value = optionalString(raw, field);
  if (value === undefined || value === '') {
    if (required) throw invalid(field, 'is required');
    return undefined;
  }
  if (CONTROL_OR_SPACE.test(value)) throw invalid(field, 'must not contain spaces or control characters');
  return value;
}

/** Integers may come as numbers or, from a URL's query, as digit strings. */
function integer(raw: Record<string, unknown>, field: string, min: number, max: number, fallback: number): number {
  const value = raw[field];
  if (value === undefined || value === null) return fallback;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(field, `must be an integer from ${min} to ${max}`);
  }
  return n;
}

function boolean(raw: Record<string, unknown>, field: string, fallback: boolean): boolean {
  const value = raw[field];
  if (value === undefined || value === null) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw invalid(field, 'must be true or false');
}

function endpoint(raw: Record<string, unknown>): string | undefined {
  const value = optionalString(raw, 'endpoint');
  if (value === undefined || value === '') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Not echoed back: a malformed URL may still hold credentials.
    throw invalid('endpoint', 'must be an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('endpoint', 'must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw invalid('endpoint', 'must not contain credentials (use access_key_id and secret_access_key)');
  if (url.search !== '' || url.hash !== '') throw invalid('endpoint', 'must not have a query or fragment');
  // "https://minio:9000/" and "https://minio:9000" are the same service.
  return url.href.replace(/\/+$/, '');
}

function prefix(raw: Record<string, unknown>): string {
  const value = optionalString(raw, 'prefix');
  if (value === undefined || value === '') return DEFAULTS.prefix;
  if (value.startsWith('/')) throw invalid('prefix', 'must not start with a slash');
  // "backups/" and "backups" are the same folder.
  const trimmed = value.replace(/\/+$/, '');
  try {
    keySegments(trimmed);
  } catch (err) {
    throw invalid('prefix', `is not a valid key prefix (${(err as Error).message})`);
  }
  return trimmed;
}

// Lenient on purpose: S3-compatible stores (and legacy us-east-1 buckets) allow names AWS
// no longer does; what matters here is that it is one path segment.
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const REGION = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/**
 * Validate a stored S3 destination configuration and fill in the defaults. Throws
 * StorageError(permanent) naming the first bad field; secret values are never quoted.
 */
export function parseS3Config(raw: unknown): S3Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new StorageError('invalid s3 storage configuration: must be an object', true);
  }
  const obj = raw as Record<string, unknown>;
  // A misspelt field would otherwise be ignored silently (and "secret_key" would mean
  // falling back to whatever credentials the machine has).
  for (const field of Object.keys(obj)) {
    if (!FIELDS.has(field)) throw invalid(JSON.stringify(field).slice(0, 80), 'is not a known field');
  }

  const bucket = optionalString(obj, 'bucket');
  if (bucket === undefined || bucket === '') throw invalid('bucket', 'is required');
  if (!BUCKET.test(bucket)) throw invalid('bucket', 'must be a bucket name (letters, digits, ".", "-", "_")');
  const region = optionalString(obj, 'region') || DEFAULTS.region;
  if (!REGION.test(region)) throw invalid('region', 'must be a region name such as "us-east-1"');

  const accessKeyId = token(obj, 'access_key_id', false);
  const secretAccessKey = token(obj, 'secret_access_key', false);
  const sessionToken = token(obj, 'session_token', false);
  if (accessKeyId !== undefined && secretAccessKey === undefined) throw invalid('secret_access_key', 'is required with access_key_id');
  if (secretAccessKey !== undefined && accessKeyId === undefined) throw invalid('access_key_id', 'is required with secret_access_key');
  if (sessionToken !== undefined && accessKeyId === undefined) throw invalid('session_token', 'needs access_key_id and secret_access_key');

  const config: S3Config = {
    region,
    bucket,
    prefix: prefix(obj),
    force_path_style: boolean(obj, 'force_path_style', DEFAULTS.force_path_style),
    part_size_mb: integer(obj, 'part_size_mb', 5, 512, DEFAULTS.part_size_mb),
    queue_size: integer(obj, 'queue_size', 1, 16, DEFAULTS.queue_size),
    connect_timeout_ms: integer(obj, 'connect_timeout_ms', 1, 600_000, DEFAULTS.connect_timeout_ms),
    request_timeout_ms: integer(obj, 'request_timeout_ms', 1, 3_600_000, DEFAULTS.request_timeout_ms),
    max_attempts: integer(obj, 'max_attempts', 1, 10, DEFAULTS.max_attempts),
  };
  const url = endpoint(obj);
  if (url !== undefined) config.endpoint = url;
  if (accessKeyId !== undefined) config.access_key_id = accessKeyId;
  if (secretAccessKey !== undefined) config.secret_access_key = secretAccessKey;
  if (sessionToken !== undefined) config.session_token = sessionToken;
  return config;
}

/**
 * A copy of `config` with every credential (the access key id too) replaced by
 * "[redacted]", for API responses and logs. Absent credentials stay absent. Takes a
 * parsed S3Config or a raw stored configuration alike.
 */
export function redactS3Config<T extends object>(config: T): T {
  const copy = { ...config } as Record<string, unknown>;
  for (const field of SECRET_FIELDS) {
    if (copy[field] !== undefined && copy[field] !== null) copy[field] = '[redacted]';
  }
  return copy as T;
}

/** Every credential in `config`, so that error messages can be scrubbed of them. */
export function secretsOf(config: S3Config): string[] {
  return SECRET_FIELDS.map((f) => config[f]).filter((s): s is string => typeof s === 'string' && s !== '');
}
