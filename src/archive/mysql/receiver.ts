/**
 * The MariaDB/MySQL binlog receiver: `mariadb-binlog --read-from-remote-server --raw
 * --stop-never` copies the server's binlog files, byte for byte and named as the server
 * names them, into a spool folder of this process; every file the server has moved on from
 * (the next one exists) is complete and is shipped (ship.ts), then removed locally.
 *
 * Resuming needs nothing local: a run starts again at the first file after the newest one
 * the catalog holds, whole, from the server, which keeps its binlogs until they expire
 * (expire_logs_days / binlog_expire_logs_seconds): that, not Strongbox, bounds how long the
 * receiver may be down without a gap. A run left behind by a process killed with -9 (its
 * mariadb-binlog child survives it) is ended first, so two never write one spool.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql2 from 'mysql2/promise';
import type { AppContext } from '../../context.js';
import type { Archiver, RecoveryStart } from '../../catalog/schema.js';
import { nowIso, newId } from '../../catalog/ids.js';
import { EngineError, type ConnectionInfo } from '../../engines/engine.js';
import { withConnection } from '../../engines/mysql/index.js';
import { runTool } from '../../engines/process.js';
import { shipArchiveFile } from '../ship.js';
import type { ArchiveReceiver } from '../receiver.js';
import { binlogConnectionArgs, binlogEventTimes, binlogNameAfter, binlogReader, binlogSequence, binlogToolEnv, parseBinlogName } from './binlog.js';

/** How often the spool is looked at for completed files. */
const POLL_MS = 500;
/**
 * A binlog that has held unarchived events this long is closed (FLUSH BINARY LOGS, when the
 * account may: RELOAD), so a quiet server's last writes reach the archive within minutes
 * rather than when the file reaches max_binlog_size.
 */
export const ROTATE_AFTER_MS = 5 * 60_000;

/** A file of the server: name and size, as SHOW BINARY LOGS lists it. */
interface ServerFile {
  name: string;
  size: number;
}

async function serverBinlogs(c: mysql2.Connection): Promise<ServerFile[]> {
  const [rows] = await c.query<mysql2.RowDataPacket[]>('SHOW BINARY LOGS');
  return rows.map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
}

function isAccessDenied(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return /ACCESS_DENIED|ER_SPECIFIC_ACCESS_DENIED/.test(code) || /access denied/i.test((e as Error).message ?? '');
}

/**
 * The server id the receiver presents to the server, one per branch. A replica's id must be
 * unique on the server (a second connection with the same id ends the first), and several
 * branches may archive the same server; ids from 2^31 up are unlikely to be a real replica's.
 */
export function receiverServerId(branchId: string): number {
  const h = createHash('sha256').update(branchId).digest().readUInt32BE(0);
  return 2 ** 31 + (h % (2 ** 31 - 1)) + 1;
}

async function preconditions(_ctx: AppContext, conn: ConnectionInfo): Promise<string[]> {
  const where = `${conn.host}:${conn.port}`;
  const problems: string[] = [];
  try {
    await binlogReader();
  } catch (e) {
    problems.push((e as Error).message);
  }
  await withConnection(conn, undefined, 'checking the binlog settings', async (c) => {
    const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT @@global.log_bin AS log_bin, @@global.binlog_format AS format');
    if (Number(rows[0].log_bin) !== 1) {
      problems.push(
        `log_bin is off on ${where}: the server writes no binary log to archive; set log_bin (e.g. log_bin = mariadb-bin) and a server_id in the server's configuration and restart it`,
      );
      return;
    }
    const format = String(rows[0].format).toUpperCase();
    if (format !== 'ROW') {
      problems.push(
        `binlog_format is ${format} on ${where}: a point-in-time restore replays the binlog into a database of another name, which only row events do exactly; set binlog_format = ROW (SET GLOBAL binlog_format = 'ROW', and in the server's configuration)`,
      );
    }
    try {
      await serverBinlogs(c);
    } catch (e) {
      if (!isAccessDenied(e)) throw e;
      problems.push(`"${conn.user}" may not list the binary logs on ${where}: grant BINLOG MONITOR (MariaDB 10.5+; REPLICATION CLIENT on MySQL) ON *.*`);
    }
    const [privs] = await c.query<mysql2.RowDataPacket[]>(
      `SELECT privilege_type AS p FROM information_schema.user_privileges
        WHERE grantee = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
    );
    if (!privs.some((r) => String(r.p).toUpperCase() === 'REPLICATION SLAVE')) {
      problems.push(`"${conn.user}" may not stream the binary logs from ${where}: grant REPLICATION SLAVE ON *.*`);
    }
  });
  return problems;
}

/** Where a run starts: the first file after the newest archived one; for a first run, the newest dump's file, or the current one. */
async function startFile(ctx: AppContext, archiver: Archiver, files: ServerFile[]): Promise<string> {
  if (files.length === 0) throw new EngineError('the server lists no binary logs (is log_bin on?)');
  const onServer = new Set(files.map((f) => f.name));
  const archived = await ctx.db.selectFrom('archive_files').select('name').where('branch_id', '=', archiver.branch_id).where('kind', '=', 'binlog').execute();
  const newest = archived.map((f) => f.name).sort((a, b) => binlogSequence(b) - binlogSequence(a))[0];
  if (newest !== undefined) {
    const want = binlogNameAfter(newest);
    if (onServer.has(want)) return want;
    const later = files.filter((f) => binlogSequence(f.name) > binlogSequence(newest));
    // Gone from the server while nobody streamed (expired): the archive has a gap there,
    // which the recovery window shows; archiving goes on from what the server still has.
    if (later.length > 0) {
      ctx.log.warn({ branch: archiver.branch_id, missing: want, resumes_at: later[0].name }, 'binlogs expired on the server before they were archived; the archive has a gap');
      return later[0].name;
    }
    // The server's numbering went back (RESET MASTER): start over with its current file.
    return files[files.length - 1].name;
  }
  // First run: from the newest dump's binlog when the server still has it, so that the
  // dump can be rolled forward at once; else from now on.
  const dumps = await ctx.db
    .selectFrom('backups')
    .select(['recovery_start'])
    .where('branch_id', '=', archiver.branch_id)
    .where('state', '=', 'success')
    .where('deleted_at', 'is', null)
    .where('recovery_start', 'is not', null)
    .orderBy('created_at', 'desc')
    .limit(1)
    .execute();
  const start = dumps[0] ? (JSON.parse(dumps[0].recovery_start!) as RecoveryStart) : null;
  if (start && 'file' in start && onServer.has(start.file)) return start.file;
  return files[files.length - 1].name;
}

/** End what a run of an earlier process left: its mariadb-binlog child (by the pid it recorded) and its spool. */
function clearOldRuns(spoolRoot: string): void {
  if (!fs.existsSync(spoolRoot)) return;
  for (const dir of fs.readdirSync(spoolRoot)) {
    const full = path.join(spoolRoot, dir);
    try {
      const pid = Number(fs.readFileSync(path.join(full, 'receiver.pid'), 'utf8'));
      // Only if that pid is still a binlog reader: pids are reused.
      if (pid > 0 && /binlog/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))) process.kill(pid, 'SIGKILL');
    } catch {
      /* no pid file, or the process is gone */
    }
    fs.rmSync(full, { recursive: true, force: true });
  }
}

async function run(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo, signal: AbortSignal): Promise<void> {
  const tool = await binlogReader();
  const spoolRoot = path.join(ctx.config.dataDir, 'archive-spool', archiver.branch_id);
  clearOldRuns(spoolRoot);
  const spool = path.join(spoolRoot, newId());
  fs.mkdirSync(spool, { recursive: true, mode: 0o700 });

  const first = await withConnection(conn, undefined, 'listing the binary logs', async (c) => startFile(ctx, archiver, await serverBinlogs(c)));
  await setPosition(ctx, archiver, first);
  signal.throwIfAborted();
  const child = runTool({
    name: tool.name,
    path: tool.path,
    args: [
      ...binlogConnectionArgs(conn),
      '--read-from-remote-server',
      '--raw',
      '--stop-never',
      `--stop-never-slave-server-id=${receiverServerId(archiver.branch_id)}`,
      // With --raw, a prefix: each file lands as <spool>/<server's name>.
      `--result-file=${spool}${path.sep}`,
      first,
    ],
    env: binlogToolEnv(conn.password),
    secrets: [conn.password],
    stdin: 'ignore',
    signal,
  });
  child.child.stdout!.resume();
  fs.writeFileSync(path.join(spool, 'receiver.pid'), String(child.child.pid ?? ''));
  let exit: { error: unknown } | null = null;
  child.done.then(
    () => (exit = { error: null }),
    (e) => (exit = { error: e }),
  );

  let expected = first;
  // The file being received: since when, and its size then (its header alone).
  const current = { name: '', since: 0, size: 0 };
  let mayRotate = true;
  try {
    for (;;) {
      const names = fs
        .readdirSync(spool)
        .filter((n) => parseBinlogName(n) !== null)
        .sort((a, b) => binlogSequence(a) - binlogSequence(b));
      // Every file but the newest is complete: the reader opens the next only after the
      // server rotated (the Rotate event is the last of a file).
      for (const name of names.slice(0, -1)) {
        signal.throwIfAborted();
        if (name !== expected) throw new EngineError(`${tool.name} wrote ${name} where ${expected} was expected next; restarting from the catalog`, false);
        await shipOne(ctx, archiver, conn, path.join(spool, name), name, signal);
        expected = binlogNameAfter(name);
        await setPosition(ctx, archiver, expected);
      }
      if (exit !== null || signal.aborted) break;
      const newest = names[names.length - 1];
      if (newest !== undefined) {
        const size = fs.statSync(path.join(spool, newest)).size;
        if (current.name !== newest) Object.assign(current, { name: newest, since: Date.now(), size });
        else if (mayRotate && size > current.size && Date.now() - current.since >= ROTATE_AFTER_MS) {
          mayRotate = await rotate(ctx, archiver, conn);
          current.since = Date.now();
        }
      }
      await sleep(POLL_MS, undefined, { signal }).catch(() => undefined);
    }
  } catch (e) {
    child.kill();
    await child.done.catch(() => undefined);
    if (signal.aborted) return;
    throw e;
  }
  if (signal.aborted) {
    child.kill();
    await child.done.catch(() => undefined);
    return;
  }
  // The reader stopped by itself: the server went away or refused; the manager retries.
  const err = (exit as { error: unknown } | null)?.error;
  throw err ?? new EngineError(`${tool.name} stopped streaming from ${conn.host}:${conn.port} without an error`, false);
}

/** Check a completed file against the server's size for it, then ship it with the times it covers, then drop the local copy. */
async function shipOne(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo, file: string, name: string, signal: AbortSignal): Promise<void> {
  const size = fs.statSync(file).size;
  const listed = await withConnection(conn, undefined, 'listing the binary logs', (c) => serverBinlogs(c));
  const onServer = listed.find((f) => f.name === name);
  if (onServer && onServer.size !== size) {
    throw new EngineError(`the received ${name} has ${size} bytes where the server's has ${onServer.size}; not archived, receiving it again`, false);
  }
  const times = await binlogEventTimes(file, signal);
  await shipArchiveFile(ctx, archiver, { kind: 'binlog', name, path: file, first_event_at: times.first, last_event_at: times.last }, signal);
  fs.rmSync(file, { force: true });
}

async function setPosition(ctx: AppContext, archiver: Archiver, file: string): Promise<void> {
  await ctx.db
    .updateTable('archivers')
    .set({ position: JSON.stringify({ file, position: 4 }), updated_at: nowIso(ctx.clock()) })
    .where('branch_id', '=', archiver.branch_id)
    .execute();
}

/** Close the server's current binlog so its events can be archived. False when the account may not (then files close when the server closes them). */
async function rotate(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo): Promise<boolean> {
  try {
    await withConnection(conn, undefined, 'closing the current binary log', (c) => c.query('FLUSH BINARY LOGS'));
    return true;
  } catch (e) {
    ctx.log.warn({ branch: archiver.branch_id, err: (e as Error).message }, 'cannot close the current binlog (FLUSH BINARY LOGS needs RELOAD); its events are archived when the server closes it');
    return false;
  }
}

export const mysqlReceiver: ArchiveReceiver = { preconditions, run };
