/**
 * Typed API errors and the ONE place that turns any thrown error into an HTTP response
 * in the caller's dialect. A 5xx never shows its internals to the client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ChecksumMismatchError } from '../pipeline/verify.js';
import { StorageError } from '../storage/provider.js';

export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'invalid_params'
  | 'unprocessable'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'internal';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** The gRPC code the Yandex dialect answers with, when the status alone does not say it (409: 6 ALREADY_EXISTS or 9 FAILED_PRECONDITION). */
    readonly grpcCode?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (m: string) => new ApiError(400, 'bad_request', m);
export const unauthorized = (m = 'Unauthorized: a valid service token is required') => new ApiError(401, 'unauthorized', m);
export const forbidden = (m: string) => new ApiError(403, 'forbidden', m);
export const notFound = (m = 'Not Found') => new ApiError(404, 'not_found', m);
export const conflict = (m: string) => new ApiError(409, 'conflict', m);
export const invalidParams = (m: string) => new ApiError(422, 'invalid_params', m);
export const unprocessable = (m: string) => new ApiError(422, 'unprocessable', m);

/** Which error body a route speaks. Set per route prefix in app.ts. */
export type Dialect = 'planetscale' | 'yandex' | 'backupman';

const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 3, 415: 3, 422: 3, 429: 8, 500: 13 };

/** The response body for an error in a dialect. */
export function errorBody(dialect: Dialect, status: number, code: ErrorCode, message: string, grpcCode?: number): unknown {
  switch (dialect) {
    case 'yandex':
      return { code: grpcCode ?? GRPC_CODE[status] ?? (status >= 500 ? 13 : 3), message, details: [] };
    case 'backupman':
      return { error: status === 401 ? 'Unauthorized' : message };
    default:
      return { code, message };
  }
}

export function dialectOf(request: FastifyRequest): Dialect {
  // The path, also for absolute-form targets ("GET http://host/api/backups").
  const url = request.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  if (url.startsWith('/managed-postgresql/') || url.startsWith('/managed-mysql/')) return 'yandex';
  if (url.startsWith('/api/')) return 'backupman';
  return 'planetscale';
}

/** A UNIQUE constraint refused an insert (SQLite or PostgreSQL): two requests raced for one name. */
function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return !!e && (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === '23505' || /UNIQUE constraint failed/.test(e.message ?? ''));
}

/** Describe an AJV validation error in one readable sentence. */
function describeValidation(err: FastifyError): string {
  const v = err.validation?.[0];
  if (!v) return err.message;
  const where = err.validationContext ?? 'request';
  const field = (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.');
  const params = v.params as Record<string, unknown>;
  if (v.keyword === 'additionalProperties') return `${where}: unknown field "${String(params.additionalProperty)}"`;
  if (v.keyword === 'required') return `${where}: missing required field "${String(params.missingProperty)}"`;
  if (v.keyword === 'enum') {
    return `${where}${field ? `.${field}` : ''} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
  }
  // A union of literals (TypeBox's Union([Literal...])) fails as one `const` error per
  // branch, the first saying only "must be equal to constant": name every allowed value.
  const here = (err.validation ?? []).filter((e) => e.instancePath === v.instancePath);
  const allowed = here.filter((e) => e.keyword === 'const').map((e) => (e.params as { allowedValue: unknown }).allowedValue);
  const orNull = here.some((e) => e.keyword === 'type' && (e.params as { type?: unknown }).type === 'null');
  if (allowed.length && here.every((e) => e.keyword === 'const' || e.keyword === 'anyOf' || (e.keyword === 'type' && (e.params as { type?: unknown }).type === 'null'))) {
    return `${where}${field ? `.${field}` : ''} must be one of: ${allowed.join(', ')}${orNull ? ', or null' : ''}`;
  }
  return `${where}${field ? `.${field}` : ''} ${v.message ?? 'is invalid'}`;
}

/** Map anything thrown by a route (or by Fastify itself) to status + code + safe message. */
export function classifyError(err: unknown): { status: number; code: ErrorCode; message: string; internal: boolean; grpcCode?: number } {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message, internal: false, grpcCode: err.grpcCode };
  // A stored artifact that fails its checksum while being served: the client can do
  // nothing about it, but it must know the copy is bad rather than see a bare 500.
  if (err instanceof ChecksumMismatchError) return { status: 409, code: 'conflict', message: `the stored artifact is corrupt (${err.message}); verify the backup and restore from another copy`, internal: false };
  if (isUniqueViolation(err)) {
    return { status: 409, code: 'conflict', message: 'that name is already taken (it was created at the same moment by another request)', internal: false, grpcCode: 6 };
  }
  if (err instanceof StorageError && err.notFound) {
    return { status: 409, code: 'conflict', message: 'the stored copy is missing from its destination; verify the backup, restore from another copy, or repair it', internal: false, grpcCode: 9 };
  }
  const fe = err as FastifyError;
  if (fe && fe.validation) {
    // Body problems are semantic (422, as PlanetScale answers); query/path problems are a bad request.
    const status = fe.validationContext === 'body' ? 422 : 400;
    return { status, code: status === 422 ? 'invalid_params' : 'bad_request', message: describeValidation(fe), internal: false };
  }
  const sc = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (sc === 413) return { status: 413, code: 'payload_too_large', message: 'request body is too large', internal: false };
  if (sc === 415) return { status: 415, code: 'unsupported_media_type', message: 'Content-Type must be application/json', internal: false };
  if (sc === 429) return { status: 429, code: 'rate_limited', message: 'too many requests', internal: false };
  if (sc >= 400 && sc < 500) {
    // Fastify's own client errors (malformed JSON, empty JSON body, bad URL encoding): their messages are safe.
    const message = /JSON/.test(fe.message ?? '') && !fe.message.startsWith('malformed JSON body') ? `malformed JSON body: ${fe.message}` : fe.message;
    const code: ErrorCode = sc === 404 ? 'not_found' : sc === 401 ? 'unauthorized' : sc === 403 ? 'forbidden' : 'bad_request';
    return { status: sc, code, message, internal: false };
  }
  return { status: 500, code: 'internal', message: 'Internal Server Error', internal: true };
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const c = classifyError(err);
  if (c.internal) request.log.error({ err }, 'unhandled error');
  const dialect = dialectOf(request);
  // gRPC has no "unprocessable": Yandex answers every invalid argument, body ones included, 400 INVALID_ARGUMENT.
  const status = dialect === 'yandex' && c.status === 422 ? 400 : c.status;
  return reply.status(status).type('application/json').send(errorBody(dialect, status, c.code, c.message, c.grpcCode));
}
