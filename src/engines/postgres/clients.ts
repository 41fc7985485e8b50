/**
 * Choosing the pg_dump / pg_restore pair for a server. pg_dump refuses to dump a server
 * newer than itself, and pg_restore must be at least as new as the pg_dump that wrote
 * the archive, so both always come from one directory: the newest client whose major
 * version is at least the server's.
 */
import { readdir, realpath } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { EngineError } from '../engine.js';
import { isExecutable, toolVersionLine } from '../process.js';

/** One installed PostgreSQL client: a directory holding both pg_dump and pg_restore. */
export interface PgClient {
  pgDump: string;
  pgRestore: string;
  /** First line of `pg_dump --version`, e.g. "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)". */
  versionLine: string;
  /** Comparable major version: 16 for 16.x, 9.6 for 9.6.x. */
  major: number;
}

/** Where Debian and Ubuntu install each major version's client side by side. */
const DEBIAN_ROOT = '/usr/lib/postgresql';

// `--version` runs once per executable per process: installed clients change rarely,
// and a probe per backup would add a fork for nothing.
const versionCache = new Map<string, Promise<string | null>>();

function cachedVersionLine(path: string): Promise<string | null> {
  let line = versionCache.get(path);
  if (!line) {
    line = toolVersionLine(path);
    versionCache.set(path, line);
  }
  return line;
}

/** "pg_dump (PostgreSQL) 15.20 (Debian ...)" → 15; "... 9.6.24" → 9.6; else null. */
export function parseClientMajor(versionLine: string): number | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(versionLine);
  if (!m) return null;
  const first = Number(m[1]);
  return first >= 10 ? first : first + Number(m[2] ?? 0) / 10;
}

/** server_version_num (150020, 90624) → comparable major (15, 9.6). */
export function serverMajorFromVersionNum(num: number): number {
  const first = Math.floor(num / 10_000);
  return first >= 10 ? first : first + Math.floor((num % 10_000) / 100) / 10;
}

/** Directories that may hold a client, most preferred first (ties go to the earlier one). */
async function candidateDirectories(): Promise<string[]> {
  const dirs: string[] = [];
  for (const dir of (process.env.STRONGBOX_PG_BIN_DIRS ?? '').split(':')) {
    if (dir) dirs.push(dir);
  }
  try {
    const majors = await readdir(DEBIAN_ROOT);
    for (const major of majors) dirs.push(join(DEBIAN_ROOT, major, 'bin'));
  } catch {
    // Not a Debian-style installation.
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir) dirs.push(dir);
  }
  return [...new Set(dirs)];
}

/** Every usable client on this machine, newest first. */
export async function installedPgClients(): Promise<PgClient[]> {
  const clients: PgClient[] = [];
  for (const dir of await candidateDirectories()) {
    const pgDump = join(dir, 'pg_dump');
    const pgRestore = join(dir, 'pg_restore');
    if (!(await isExecutable(pgDump)) || !(await isExecutable(pgRestore))) continue;
    // Debian's /usr/bin/pg_dump is pg_wrapper, which picks a version by its own rules
    // (local clusters, ~/.postgresqlrc) that may differ between `--version` and a real
    // run. The real binaries it would run are found under /usr/lib/postgresql already.
    try {
      if (basename(await realpath(pgDump)) === 'pg_wrapper') continue;
    } catch {
      continue;
    }
    const versionLine = await cachedVersionLine(pgDump);
    const major = versionLine ? parseClientMajor(versionLine) : null;
    if (versionLine && major !== null) clients.push({ pgDump, pgRestore, versionLine, major });
  }
  // Stable sort: among equal majors the preferred directory stays first.
  return clients.sort((a, b) => b.major - a.major);
}

/**
 * The client to use against a server of `serverMajor`: the newest installed one whose
 * major is at least the server's. With `serverMajor` null (the server could not be
 * asked), the newest client, so the tool itself reports the connection problem.
 *
 * @throws EngineError naming the versions found and the package to install.
 */
export async function pickPgClient(serverMajor: number | null): Promise<PgClient> {
  const clients = await installedPgClients();
  const newest = clients[0];
  if (newest && (serverMajor === null || newest.major >= serverMajor)) return newest;
  const have = clients.length ? [...new Set(clients.map((c) => c.major))].join(', ') : 'none';
  if (serverMajor === null) {
    throw new EngineError('no pg_dump found; install the PostgreSQL client (e.g. postgresql-client)');
  }
  throw new EngineError(`no pg_dump >= ${serverMajor} found (have: ${have}); install postgresql-client-${serverMajor}`);
}
