/**
 * Connection URLs of source databases: `postgresql://user:password@host:port/database`
 * and `mysql://user:password@host:port/database`.
 *
 * The URL holds a password, so nothing here ever puts the URL (or any part of the
 * user-info section) into an error message: errors name the problem, not the input.
 */
import type { ConnectionInfo, EngineKind } from './engine.js';

/** A connection URL that cannot be used. Its message never contains the password. */
export class ConnectionUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionUrlError';
  }
}

const SCHEMES: Record<string, EngineKind> = {
  postgresql: 'postgresql',
  postgres: 'postgresql',
  mysql: 'mysql',
  mariadb: 'mysql',
};

const DEFAULT_PORTS: Record<EngineKind, number> = { postgresql: 5432, mysql: 3306 };

const SAFE_DATABASE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$/;

/**
 * Whether `name` is a database name Strongbox accepts: letters, digits, `_` and `-`,
 * not starting with `-`, at most 63 characters (PostgreSQL's identifier limit). Names are
 * still quoted as identifiers wherever they reach SQL; this check keeps them also safe as
 * command-line arguments and file names.
 */
export function isSafeDatabaseName(name: string): boolean {
  return SAFE_DATABASE_NAME.test(name);
}

/**
 * Parse a source database URL. Schemes `postgresql://` / `postgres://` give a PostgreSQL
 * connection, `mysql://` / `mariadb://` a MySQL/MariaDB one. User and password are
 * percent-decoded; the port defaults to 5432 / 3306; the database name is required.
 * Query strings and fragments are refused (no option is silently ignored).
 *
 * The split between credentials and host is made at the LAST `@`, so a password with an
 * unencoded `@`, `/` or `?` still parses the way its owner meant.
 *
 * @throws ConnectionUrlError with a message that never contains the password.
 */
export function parseConnectionUrl(url: string): { kind: EngineKind; info: ConnectionInfo } {
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!schemeMatch) {
    throw new ConnectionUrlError(
      'connection URL must start with postgresql://, postgres://, mysql:// or mariadb://',
    );
  }
  const scheme = schemeMatch[1].toLowerCase();
  const kind = SCHEMES[scheme];
  if (!kind) {
    throw new ConnectionUrlError(
      `unsupported connection URL scheme "${scheme}"; use postgresql://, postgres://, mysql:// or mariadb://`,
    );
  }
  const rest = url.slice(schemeMatch[0].length);

  const at = rest.lastIndexOf('@');
  if (at < 0) throw new ConnectionUrlError('connection URL has no user (expected scheme://user:password@host/database)');
  const userInfo = rest.slice(0, at);
  const location = rest.slice(at + 1);

  const colon = userInfo.indexOf(':');
  const rawUser = colon < 0 ? userInfo : userInfo.slice(0, colon);
  const rawPassword = colon < 0 ? '' : userInfo.slice(colon + 1);
  const user = percentDecode(rawUser, 'user name');
  const password = percentDecode(rawPassword, 'password');
  if (user === '') throw new ConnectionUrlError('connection URL has no user (expected scheme://user:password@host/database)');

  if (location.includes('?')) {
    throw new ConnectionUrlError('connection URL options (?...) are not supported; give only user, password, host, port and database');
  }
  if (location.includes('#')) {
    throw new ConnectionUrlError('connection URL must not contain "#" after the host; percent-encode it (%23) in a password');
  }

  const slash = location.indexOf('/');
  const authority = slash < 0 ? location : location.slice(0, slash);
  const path = slash < 0 ? '' : location.slice(slash + 1);

  const { host, portText } = splitHostPort(authority);
  if (host === '') throw new ConnectionUrlError('connection URL has no host');

  let port = DEFAULT_PORTS[kind];
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new ConnectionUrlError('connection URL has an invalid port (expected a number from 1 to 65535)');
    }
    port = Number(portText);
  }

  if (path === '') throw new ConnectionUrlError('connection URL has no database name (expected .../database at the end)');
  if (!isSafeDatabaseName(path)) {
    throw new ConnectionUrlError(
      `database name "${path}" is not allowed: use 1-63 letters, digits, "_" or "-", not starting with "-"`,
    );
  }

  return { kind, info: { host, port, database: path, user, password } };
}

/**
 * The URL with its password replaced by `***`, for logs and API responses. Input that
 * does not look like a URL at all is replaced entirely, since it may be a bare secret.
 */
export function redactConnectionUrl(url: string): string {
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!schemeMatch) return '***';
  const rest = url.slice(schemeMatch[0].length);
  const at = rest.lastIndexOf('@');
  if (at < 0) return url;
  const userInfo = rest.slice(0, at);
  const colon = userInfo.indexOf(':');
  if (colon < 0) return url;
  return `${schemeMatch[0]}${userInfo.slice(0, colon)}:***@${rest.slice(at + 1)}`;
}

function percentDecode(text: string, what: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    throw new ConnectionUrlError(`connection URL ${what} is not correctly percent-encoded`);
  }
  // No server accepts it, and it cannot be passed to a child process's environment.
  if (decoded.includes('\0')) throw new ConnectionUrlError(`connection URL ${what} must not contain a NUL character (%00)`);
  return decoded;
}

function splitHostPort(authority: string): { host: string; portText: string | undefined } {
  if (authority.startsWith('[')) {
    // IPv6 literal: the brackets only exist in URLs; drivers and tools want the bare address.
    const close = authority.indexOf(']');
    if (close < 0) throw new ConnectionUrlError('connection URL has an unterminated IPv6 address');
    const host = authority.slice(1, close);
    if (!/^[0-9A-Fa-f:.]+$/.test(host)) throw new ConnectionUrlError('connection URL has an invalid IPv6 address');
    const after = authority.slice(close + 1);
    if (after === '') return { host, portText: undefined };
    if (!after.startsWith(':')) throw new ConnectionUrlError('connection URL has an invalid host');
    return { host, portText: after.slice(1) };
  }
  const colon = authority.lastIndexOf(':');
  const host = colon < 0 ? authority : authority.slice(0, colon);
  const portText = colon < 0 ? undefined : authority.slice(colon + 1);
  // Host names reach child processes as arguments; refuse anything that is not a plain
  // name or address so that an option-looking value ("-h...") can never appear.
  if (host !== '' && !/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) {
    throw new ConnectionUrlError('connection URL has an invalid host name');
  }
  return { host, portText };
}
