/**
 * Turning driver errors into EngineErrors whose messages say which server and user were
 * involved, never the password, and whether a retry could help.
 */
import { isSafeDatabaseName } from './connection.js';
import { EngineError, type ConnectionInfo, type EngineKind } from './engine.js';
import { looksPermanent, scrubSecrets } from './process.js';

/** "127.0.0.1:5432", "[::1]:5432". */
export function serverAddress(conn: ConnectionInfo): string {
  return conn.host.includes(':') ? `[${conn.host}]:${conn.port}` : `${conn.host}:${conn.port}`;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  // PostgreSQL: cannot_connect_now (starting up / shutting down), too_many_connections.
  '57P03',
  '53300',
  // MySQL: too many connections, lock wait timeout, deadlock.
  'ER_CON_COUNT_ERROR',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
]);

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('08'))) return true;
  const text = errorText(err);
  return /timeout|timed out|terminated unexpectedly/i.test(text) && !looksPermanent(text);
}

/** The error for a connection that could not be made. */
export function connectFailure(kind: EngineKind, conn: ConnectionInfo, err: unknown): EngineError {
  const message = `cannot connect to ${kind} at ${serverAddress(conn)} as "${conn.user}": ${errorText(err)}`;
  return new EngineError(scrubSecrets(message, [conn.password]), !isTransient(err));
}

/** The error for a statement that failed on a live connection. */
export function queryFailure(kind: EngineKind, conn: ConnectionInfo, what: string, err: unknown): EngineError {
  const message = `${what} on ${kind} at ${serverAddress(conn)} failed: ${errorText(err)}`;
  return new EngineError(scrubSecrets(message, [conn.password]), !isTransient(err));
}

/** Refuse a database name that could not have come from a valid connection URL. */
export function requireSafeDatabaseName(name: string): void {
  if (!isSafeDatabaseName(name)) {
    throw new EngineError(
      `database name "${name}" is not allowed: use 1-63 letters, digits, "_" or "-", not starting with "-"`,
    );
  }
}
