/**
 * The server-side PostgreSQL tools archiving runs (pg_receivewal, pg_basebackup,
 * pg_waldump), and WAL segment names. Unlike pg_dump (clients.ts: the newest client at least
 * as new as the server), these come from the server's own major version: pg_waldump reads
 * only its own major's WAL format, and a base backup restored with another major's
 * binaries would not start. Debian keeps each major under /usr/lib/postgresql/<major>/bin.
 */
import { realpath } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { EngineError, type ConnectionInfo } from '../../engines/engine.js';
import { isExecutable, toolEnvironment, toolVersionLine } from '../../engines/process.js';
import { parseClientMajor } from '../../engines/postgres/clients.js';

export interface PgServerTools {
  dir: string;
  pgReceivewal: string;
  pgBasebackup: string;
  pgWaldump: string;
  /** e.g. "pg_basebackup (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)". */
  versionLine: string;
  major: number;
}

const cache = new Map<number, Promise<PgServerTools>>();

/** Folders that may hold the tools of `major`, most preferred first. */
function candidates(major: number): string[] {
  const dirs: string[] = [];
  for (const dir of (process.env.STRONGBOX_PG_BIN_DIRS ?? '').split(':')) if (dir) dirs.push(dir);
  dirs.push(`/usr/lib/postgresql/${major}/bin`);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) dirs.push(dir);
  return [...new Set(dirs)];
}

async function find(major: number): Promise<PgServerTools> {
  const seen: string[] = [];
  for (const dir of candidates(major)) {
    const pgBasebackup = join(dir, 'pg_basebackup');
    const pgReceivewal = join(dir, 'pg_receivewal');
    const pgWaldump = join(dir, 'pg_waldump');
    if (!(await isExecutable(pgBasebackup)) || !(await isExecutable(pgReceivewal))) continue;
    try {
      // Debian's /usr/bin entries are pg_wrapper, which picks a version by rules of its own.
      if (basename(await realpath(pgBasebackup)) === 'pg_wrapper') continue;
    } catch {
      continue;
    }
    const versionLine = await toolVersionLine(pgBasebackup);
    const found = versionLine ? parseClientMajor(versionLine) : null;
    if (found === null) continue;
    seen.push(String(found));
    if (found === major) return { dir, pgReceivewal, pgBasebackup, pgWaldump, versionLine: versionLine!, major };
  }
  const have = seen.length ? `found PostgreSQL ${[...new Set(seen)].join(', ')}` : 'found none';
  throw new EngineError(`archiving needs pg_basebackup and pg_receivewal of the server's major version ${major} (${have}); install postgresql-client-${major} (or postgresql-${major})`, true);
}

/** The tools of PostgreSQL `major`; throws EngineError naming the package to install. */
export function serverTools(major: number): Promise<PgServerTools> {
  let p = cache.get(major);
  if (!p) {
    p = find(major);
    cache.set(major, p);
    // A failure is not remembered: the operator may install the package and try again.
    p.catch(() => cache.delete(major));
  }
  return p;
}

/** The environment of a replication tool: the password through PGPASSWORD, never argv. */
export function replicationEnv(conn: ConnectionInfo, appName: string): NodeJS.ProcessEnv {
  return toolEnvironment({ PGPASSWORD: conn.password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: appName, TZ: 'UTC' });
}

/** Connection options of pg_receivewal / pg_basebackup (`=` forms: no value reads as an option). */
export function replicationArgs(conn: ConnectionInfo): string[] {
  return ['--no-password', `--host=${conn.host}`, `--port=${conn.port}`, `--username=${conn.user}`];
}

/** The application_name of a branch's WAL stream: how a new owner finds (and ends) a dead owner's. */
export function receiverAppName(branchId: string): string {
  return `strongbox_wal_${branchId}`;
}

// ---- WAL names and positions ----

/** A WAL segment file name: timeline, then the segment number in two 8-digit halves. */
export const SEGMENT_RE = /^[0-9A-F]{24}$/;
/** A timeline history file pg_receivewal writes when the server changes timeline. */
export const HISTORY_RE = /^[0-9A-F]{8}\.history$/;

/** "0/3000028" → bytes. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(lsn)}`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** bytes → "0/3000028", as PostgreSQL prints an LSN. */
export function formatLsn(pos: bigint): string {
  return `${(pos >> 32n).toString(16).toUpperCase()}/${(pos & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The segment name holding `pos` on `timeline`, for segments of `segmentSize` bytes. */
export function segmentName(timeline: number, pos: bigint, segmentSize: number): string {
  const segno = pos / BigInt(segmentSize);
  const perId = 0x100000000n / BigInt(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(timeline) + hex(segno / perId) + hex(segno % perId);
}

/** What a segment name says: its timeline and the LSNs it starts and ends at. */
export function parseSegmentName(name: string, segmentSize: number): { timeline: number; start: bigint; end: bigint } {
  if (!SEGMENT_RE.test(name)) throw new Error(`not a WAL segment name: ${JSON.stringify(name)}`);
  const perId = 0x100000000n / BigInt(segmentSize);
  const segno = BigInt('0x' + name.slice(8, 16)) * perId + BigInt('0x' + name.slice(16, 24));
  const start = segno * BigInt(segmentSize);
  return { timeline: parseInt(name.slice(0, 8), 16), start, end: start + BigInt(segmentSize) };
}
