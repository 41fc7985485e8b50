/**
 * Turning AWS SDK and network errors into StorageErrors that say whether a retry can help,
 * in words an operator can act on, and with no credential in them.
 */
import { StorageError } from '../provider.js';

/** What an error message needs to know about the provider. */
export interface ErrorContext {
  bucket: string;
  region: string;
  /** Strings that must never appear in a message (the configured credentials). */
  secrets: readonly string[];
}

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

const ACCESS_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired',
  'AllAccessDisabled', 'AccountProblem', 'InvalidSecurity', 'InvalidClientTokenId', 'UnrecognizedClientException',
]);

const REGION_CODES = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException']);

/** Errors the service itself says are worth another try. */
const TRANSIENT_CODES = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestTimeout',
  'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable', 'BadDigest', 'IncompleteBody', 'XAmzContentSHA256Mismatch',
  'OperationAborted', 'TimeoutError', 'RequestTimeoutException',
]);

/** Replace every credential in `text` (in case a service or proxy echoed one back). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('[redacted]');
  return out;
}

function reasonOf(e: SdkErrorShape, status: number | undefined, ctx: ErrorContext): { reason: string; permanent: boolean; notFound: boolean } {
  const name = typeof e.name === 'string' ? e.name : '';
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' && e.message !== '' && e.message !== name ? e.message : '';
  const detail = (label: string) => (message !== '' ? `${label}: ${message}` : label);

  if (name === 'NoSuchKey' || (status === 404 && name === 'NotFound')) return { reason: 'no such object', permanent: true, notFound: true };
  if (name === 'NoSuchBucket') {
    return { reason: `bucket "${ctx.bucket}" does not exist`, permanent: true, notFound: false };
  }
  if (name === 'NoSuchUpload') {
    return { reason: 'the multipart upload is gone (aborted elsewhere, or expired by a lifecycle rule)', permanent: true, notFound: false };
  }
  if (ACCESS_CODES.has(name) || status === 403) {
    return {
      reason: `access denied (${name || 'HTTP 403'}): check access_key_id, secret_access_key and the bucket's policy`,
      permanent: true,
      notFound: false,
    };
  }
  if (REGION_CODES.has(name) || status === 301) {
    return { reason: `bucket "${ctx.bucket}" is not in region "${ctx.region}" or not at this endpoint (${name || 'HTTP 301'})`, permanent: true, notFound: false };
  }
  if (name === 'CredentialsProviderError') {
    return { reason: 'no credentials: set access_key_id and secret_access_key, or give the process AWS credentials', permanent: true, notFound: false };
  }
  if (name === 'AbortError') return { reason: 'the request was aborted', permanent: false, notFound: false };
  if (status !== undefined) {
    const label = name !== '' && name !== 'Unknown' ? `${name}, HTTP ${status}` : `HTTP ${status}`;
    const transient = TRANSIENT_CODES.has(name) || status >= 500 || status === 429 || status === 408;
    return { reason: detail(transient ? `the service failed (${label})` : `refused (${label})`), permanent: !transient, notFound: false };
  }
  if (TRANSIENT_CODES.has(name)) return { reason: detail(`timed out (${name})`), permanent: false, notFound: false };
  if (code !== '') return { reason: `cannot reach the service (${code})`, permanent: false, notFound: false };
  // Anything else (a dropped connection without an errno, an SDK surprise) may well pass
  // on a second try; a retry wrapper gives up after a few anyway.
  return { reason: detail(name || 'unexpected error'), permanent: false, notFound: false };
}

/**
 * The StorageError for a failed S3 call: `op` is the verb ("read", "upload a part of"),
 * `key` the storage key (not the bucket key, so messages match the other providers).
 * The underlying error is kept as `cause` only in a scrubbed summary: the SDK's own error
 * objects can carry the signed request (session token included) from the response.
 */
export function s3Error(op: string, key: string | null, err: unknown, ctx: ErrorContext): StorageError {
  if (err instanceof StorageError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkErrorShape;
  const rawStatus = e.$metadata?.httpStatusCode;
  const status = typeof rawStatus === 'number' ? rawStatus : undefined;
  const { reason, permanent, notFound } = reasonOf(e, status, ctx);
  const what = key === null ? `bucket "${ctx.bucket}"` : `"${key}"`;
  const message = scrub(`s3 storage: cannot ${op} ${what}: ${reason}`, ctx.secrets);
  const cause = Object.assign(new Error(scrub(typeof e.message === 'string' ? e.message : '', ctx.secrets)), {
    name: typeof e.name === 'string' ? e.name : 'Error',
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(status !== undefined ? { httpStatusCode: status } : {}),
    ...(typeof e.$metadata?.requestId === 'string' ? { requestId: e.$metadata.requestId } : {}),
  });
  return new StorageError(message, permanent, notFound, { cause });
}
