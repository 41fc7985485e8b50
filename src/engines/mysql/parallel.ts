/**
 * Parallel dumps and restores of MariaDB/MySQL (`jobs: N`, issue 14), mydumper-style.
 *
 * Dump: a coordinator connection lists the tables with their sizes, and every part's
 * mariadb-dump (`--single-transaction`) is started, held at a start gate before it connects
 * (StartGate): pre-data (definitions, no rows, no triggers), N data parts over disjoint
 * tables, post-data (triggers). Then the coordinator blocks commits server-wide for a moment
 * (MariaDB 10.4+: `BACKUP STAGE START` + `BACKUP STAGE BLOCK_COMMIT`, which unlike FLUSH
 * TABLES WITH READ LOCK does not wait for long-running SELECTs; MySQL: FLUSH TABLES WITH READ
 * LOCK), reads the binlog position (nothing can commit, so it is exact), checks that the
 * tables are the planned ones, and opens the gates. The commits stay blocked until each
 * dump has provably opened its snapshot: its server session (found by the TCP port its process connects from, read from /proc,
 * against the server's processlist) has a REPEATABLE READ transaction in
 * information_schema.INNODB_TRX (looked at every TRX_LOOK_INTERVAL_MS, see there), or the process has already finished (all its reads then
 * happened under the block). Only then are commits let through again: every part reads
 * the same committed state, the one at the recorded binlog position. Dumps are mariadb-dump
 * itself, so every type, charset, generated column and history row is written as a
 * single-stream dump writes it.
 *
 * The block lasts while N+2 clients connect and START TRANSACTION (about 0.3 s here; on a
 * machine at load 15, 1-2 s); it is bounded by HOLD_LIMIT_MS, after which it is released
 * and the backup fails rather than stall the server's writers. Taking it waits at most
 * LOCK_WAIT_SECONDS for running commits and DDL (others queue meanwhile), LOCK_ATTEMPTS
 * times. A dump that has its snapshot is paused (SIGSTOP, jobs/parallel-backup.ts) until the
 * last one has too. Needs RELOAD (to block commits) and PROCESS (to see the dump sessions'
 * transactions); the server must see the client's own TCP port (no proxy or NAT between). Consistency is that of InnoDB, as for --single-transaction:
 * non-transactional tables (MyISAM, Aria) are read at whatever moment their part reaches them.
 *
 * Restore: pre-data, then the data parts side by side (each its own client, through the
 * same rewriting as a single dump), then post-data, so that no trigger fires on loaded rows.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import mysql2 from 'mysql2/promise';
import { EngineError, type ConnectionInfo, type DumpProcess } from '../engine.js';
import { connectFailure, requireSafeDatabaseName } from '../errors.js';
import { startTool, toolStdout } from '../process.js';
import { connectionArgs, mysqlTools, toolEnv } from './index.js';

/** The most parts (and dump processes) a request may ask for (as for PostgreSQL). */
export const MAX_JOBS = 16;

/** How long commits may stay blocked while the dumps open their snapshots. */
export const HOLD_LIMIT_MS = 30_000;

/**
 * How long the coordinator waits for running commits (or DDL) to take the block: while it
 * waits, others queue behind it, so it waits briefly and tries again a few times instead.
 */
const LOCK_WAIT_SECONDS = 2;
const LOCK_ATTEMPTS = 30;

/** The sections of a parallel MariaDB dump, in restore order. */
export type MysqlSection = 'pre-data' | 'data' | 'post-data';

/** One table whose rows a data part holds. */
export interface MysqlDataTable {
  /** The database's name (the dump is of one database, restored under any name). */
  schema: string;
  table: string;
  /** data_length + index_length when planned: what the dump has to read. */
  bytes: number;
}

/** What one data part dumps. */
export interface MysqlDataPart {
  tables: MysqlDataTable[];
  bytes: number;
}

/** Binlog coordinates of the consistent point (as RecoveryStart), with when it held. */
export interface PointCoordinates {
  file: string;
  position: number;
  gtid: string | null;
  consistent_at: string;
}

/**
 * A consistent point: prepared (tables listed, privileges checked) without blocking anyone;
 * `block()` then blocks commits until `release()` (or HOLD_LIMIT_MS). Dumps started with
 * `dumpPart` after `block()` read exactly the committed state at this point once `confirm`
 * has resolved for each of them.
 */
export interface HeldPoint {
  /** Tables with rows (base and system-versioned tables; not views or sequences), largest first. */
  tables: MysqlDataTable[];
  /**
   * Block commits, read the binlog position, and check that the tables are still the planned
   * ones (no DDL can run from here on). Throws, released, when the block cannot be taken.
   */
  block(): Promise<void>;
  /** The binlog position of the point (set by `block()`); null when log_bin is off or it may not be read. */
  coordinates: PointCoordinates | null;
  /** 'backup stage' (MariaDB 10.4+) or 'read lock' (FLUSH TABLES WITH READ LOCK). */
  method: 'backup stage' | 'read lock';
  /** How many tries taking the block took (each waits at most LOCK_WAIT_SECONDS). */
  attempts: number;
  /**
   * Resolves once the dump process `pid` has its consistent snapshot open on the server (or
   * has finished, reading only under the block); rejects when it cannot be seen in time or
   * the process failed. `done` is that dump's DumpProcess.done.
   */
  confirm(pid: number, done: Promise<void>, signal?: AbortSignal): Promise<void>;
  /** Let commits through again. Safe to call twice; never throws. */
  release(): Promise<void>;
  /** When the block was taken and released (ms since epoch), for the log and tests. */
  heldFrom: number;
  heldUntil: number | null;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The local TCP ports of process `pid`'s sockets (Linux /proc): its socket inodes from
 * /proc/<pid>/fd, looked up in the process's own /proc/<pid>/net/tcp and tcp6.
 */
export async function processTcpPorts(pid: number): Promise<number[]> {
  let fds: string[];
  try {
    fds = await fs.readdir(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const inodes = new Set<string>();
  for (const fd of fds) {
    const target = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  if (inodes.size === 0) return [];
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const text = await fs.readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (cols.length < 10 || !inodes.has(cols[9])) continue;
      const port = Number.parseInt(cols[1].split(':')[1], 16);
      if (Number.isFinite(port)) ports.push(port);
    }
  }
  return ports;
}

/** Whether the server has BACKUP STAGE (MariaDB 10.4+). */
function hasBackupStage(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.\d+-MariaDB/i.exec(version);
  return m !== null && (Number(m[1]) > 10 || (Number(m[1]) === 10 && Number(m[2]) >= 4));
}

async function listTables(c: mysql2.Connection, database: string): Promise<MysqlDataTable[]> {
  const [tables] = await c.query<mysql2.RowDataPacket[]>(
    `SELECT table_name AS name, COALESCE(data_length, 0) + COALESCE(index_length, 0) AS bytes
       FROM information_schema.tables
      WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED')
      ORDER BY bytes DESC, table_name`,
    [database],
  );
  return tables.map((t) => ({ schema: database, table: String(t.name), bytes: Number(t.bytes) }));
}

/**
 * Prepare a consistent point of `conn.database` (see the file comment): list its tables and
 * check the privileges, blocking nothing yet. The caller must `release()` (the block also
 * ends by itself after HOLD_LIMIT_MS, and with the coordinator's session).
 */
export async function holdConsistentPoint(conn: ConnectionInfo, options: { holdLimitMs?: number; now?: () => Date } = {}): Promise<HeldPoint> {
  requireSafeDatabaseName(conn.database);
  const now = options.now ?? (() => new Date());
  let c: mysql2.Connection;
  try {
    c = await mysql2.createConnection({ host: conn.host, port: conn.port, user: conn.user, password: conn.password, connectTimeout: 5000, supportBigNumbers: true, bigNumberStrings: true });
  } catch (err) {
    throw connectFailure('mysql', conn, err);
  }
  c.on('error', () => undefined);
  let released = false;
  let limitTimer: NodeJS.Timeout | undefined;
  let method: HeldPoint['method'] = 'read lock';
  const point: HeldPoint = {
    tables: [],
    block: async () => undefined,
    coordinates: null,
    method,
    attempts: 0,
    heldFrom: 0,
    heldUntil: null,
    confirm: async () => undefined,
    release: async () => {
      if (released) return;
      released = true;
      if (limitTimer) clearTimeout(limitTimer);
      // Ending the session ends the block too; the statement first, so it ends at once.
      await c.query(method === 'backup stage' ? 'BACKUP STAGE END' : 'UNLOCK TABLES').catch(() => undefined);
      if (point.heldFrom && point.heldUntil === null) point.heldUntil = Date.now();
      await c.end().catch(() => c.destroy());
    },
  };
  try {
    const [v] = await c.query<mysql2.RowDataPacket[]>('SELECT VERSION() AS v, @@global.log_bin AS log_bin, SUBSTRING_INDEX(USER(), \'@\', 1) AS login');
    const version = String(v[0].v);
    const login = String(v[0].login);
    method = hasBackupStage(version) ? 'backup stage' : 'read lock';
    point.method = method;
    point.tables = await listTables(c, conn.database);
    // The dumps' sessions are found by their client ports: the server must see ours as they are.
    const localPort = (c as unknown as { connection?: { stream?: { localPort?: number } } }).connection?.stream?.localPort;
    const [seen] = await c.query<mysql2.RowDataPacket[]>(`SELECT SUBSTRING_INDEX(host, ':', -1) AS port FROM information_schema.processlist WHERE id = CONNECTION_ID()`);
    if (localPort !== undefined && String(seen[0]?.port) !== String(localPort)) {
      throw new EngineError(
        `a parallel dump needs a direct connection to ${conn.host}:${conn.port}: the server sees this client from port ${String(seen[0]?.port)}, not ${localPort} (a proxy or NAT between), so it could not tell that every dump has opened its snapshot; back up with jobs: 1`,
      );
    }
    try {
      await c.query('SELECT trx_mysql_thread_id FROM information_schema.innodb_trx LIMIT 0');
    } catch (err) {
      throw new EngineError(`a parallel dump needs the PROCESS privilege (to see that every dump has opened its snapshot before commits resume): "${conn.user}" lacks it on ${conn.host}:${conn.port} (${messageOf(err)}); grant it, or back up with jobs: 1`);
    }
    point.block = async () => {
      try {
        // Not for ever behind a running commit, DDL or (FTWRL) long query: the block waits for
        // those while it holds every other writer out.
        await c.query(`SET SESSION lock_wait_timeout = ${LOCK_WAIT_SECONDS}`);
        for (let attempt = 1; ; attempt++) {
          point.attempts = attempt;
          try {
            if (method === 'backup stage') {
              await c.query('BACKUP STAGE START');
              point.heldFrom = Date.now();
              await c.query('BACKUP STAGE BLOCK_COMMIT');
            } else {
              point.heldFrom = Date.now();
              await c.query('FLUSH TABLES WITH READ LOCK');
            }
            break;
          } catch (err) {
            const code = (err as { code?: string }).code;
            if (code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' || code === 'ER_ACCESS_DENIED_ERROR') {
              throw new EngineError(`a parallel dump needs the RELOAD privilege (to block commits for a moment while the dumps open one snapshot): "${conn.user}" lacks it on ${conn.host}:${conn.port}; grant it, or back up with jobs: 1`);
            }
            if (code !== 'ER_LOCK_WAIT_TIMEOUT') throw err;
            await c.query(method === 'backup stage' ? 'BACKUP STAGE END' : 'UNLOCK TABLES').catch(() => undefined);
            point.heldFrom = 0;
            if (attempt === LOCK_ATTEMPTS) {
              throw new EngineError(
                `could not block commits for a parallel dump: ${LOCK_ATTEMPTS} tries of ${LOCK_WAIT_SECONDS} s each waited on a long commit, DDL statement${method === 'read lock' ? ' or query' : ''} running on ${conn.host}:${conn.port}; try again later, or back up with jobs: 1`,
              );
            }
            await delay(Math.min(5000, 1000 * 2 ** (attempt - 1)));
          }
        }
        limitTimer = setTimeout(() => void point.release(), options.holdLimitMs ?? HOLD_LIMIT_MS);
        limitTimer.unref?.();
        const consistentAt = now().toISOString();
        if (Number(v[0].log_bin) === 1) {
          try {
            const [status] = await c.query<mysql2.RowDataPacket[]>('SHOW MASTER STATUS');
            if (status.length > 0) {
              let gtid: string | null = null;
              if (method === 'backup stage') {
                const [g] = await c.query<mysql2.RowDataPacket[]>('SELECT @@global.gtid_binlog_pos AS g');
                gtid = g[0].g ? String(g[0].g) : null;
              }
              point.coordinates = { file: String(status[0].File), position: Number(status[0].Position), gtid, consistent_at: consistentAt };
            }
          } catch {
            // Without BINLOG MONITOR / REPLICATION CLIENT: no position, as a single dump without one.
          }
        }
        // Under the block no DDL can run (BACKUP STAGE BLOCK_DDL, implied by BLOCK_COMMIT, or
        // the read lock): the tables the dumps will see are these, and must be the planned ones.
        const current = (await listTables(c, conn.database)).map((t) => t.table).sort();
        const planned = point.tables.map((t) => t.table).sort();
        if (current.length !== planned.length || current.some((t, i) => t !== planned[i])) {
          throw new EngineError('tables of the database were created or dropped while the parallel backup was being planned; back it up again');
        }
      } catch (err) {
        await point.release();
        if (err instanceof EngineError) throw err;
        throw new EngineError(`could not block commits for a parallel dump on ${conn.host}:${conn.port}: ${messageOf(err)}`);
      }
    };
    const look = sessionLooker(c, login);
    point.confirm = (pid, done, signal) => confirmSnapshot(look, pid, done, () => released, signal);
    return point;
  } catch (err) {
    await point.release();
    if (err instanceof EngineError) throw err;
    throw new EngineError(`could not take a consistent point for a parallel dump on ${conn.host}:${conn.port}: ${messageOf(err)}`);
  }
}

/**
 * InnoDB answers INNODB_TRX from a cache that it refreshes only when nobody has read it for
 * 100 ms (trx0i_s.cc, so that joins of its tables agree): looked at more often than that, it
 * never changes, and a transaction begun after the first look is never seen. The dump
 * sessions are looked at no more often than this, by one query for all the parts.
 */
export const TRX_LOOK_INTERVAL_MS = 150;

/** A client session of `login` as the server shows it: its client port and its transaction. */
interface SessionSeen {
  port: string;
  id: string;
  iso: string | null;
}

/** The sessions of `login`, read at most once per TRX_LOOK_INTERVAL_MS however many ask at once. */
function sessionLooker(c: mysql2.Connection, login: string): () => Promise<SessionSeen[]> {
  let lastLook = 0;
  let looking: Promise<SessionSeen[]> | null = null;
  return () =>
    (looking ??= (async () => {
      try {
        const wait = lastLook + TRX_LOOK_INTERVAL_MS - Date.now();
        if (wait > 0) await delay(wait);
        const [rows] = await c.query<mysql2.RowDataPacket[]>(
          `SELECT SUBSTRING_INDEX(p.host, ':', -1) AS port, p.id, t.trx_isolation_level AS iso
             FROM information_schema.processlist p
             LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id
            WHERE p.user = ?`,
          [login],
        );
        return rows.map((r) => ({ port: String(r.port), id: String(r.id), iso: r.iso === null ? null : String(r.iso) }));
      } finally {
        // From the end of the read: that is when InnoDB marks its cache as read.
        lastLook = Date.now();
        looking = null;
      }
    })());
}

/** Poll until the session of dump process `pid` shows its snapshot (see HeldPoint.confirm). */
async function confirmSnapshot(look: () => Promise<SessionSeen[]>, pid: number, done: Promise<void>, isReleased: () => boolean, signal?: AbortSignal): Promise<void> {
  let exited: 'ok' | Error | null = null;
  done.then(
    () => (exited = 'ok'),
    (e) => (exited = e instanceof Error ? e : new Error(String(e))),
  );
  // What was seen last, for the error if the block ends first (so that a slow machine can be
  // told from a dump that was stuck).
  let lastSeen = 'its process had not connected to the server yet';
  const started = Date.now();
  for (let wait = 2; ; wait = Math.min(20, wait * 2)) {
    signal?.throwIfAborted();
    if (isReleased()) {
      throw new EngineError(`commits were let through before this dump had opened its snapshot (the block lasted too long; after ${((Date.now() - started) / 1000).toFixed(1)} s ${lastSeen}); the parallel backup is stopped`);
    }
    // Finished under the block: every row it read was the point's.
    if (exited === 'ok') return;
    if (exited) throw exited;
    // Read again on every look, not kept from the first: a socket the process held before it
    // connected (or a connection it opened again) would otherwise be looked for until the block
    // ran out, and the backup failed for nothing.
    const ports = (await processTcpPorts(pid)).map(String);
    if (ports.length > 0) {
      let seen: SessionSeen[];
      try {
        seen = await look();
      } catch (err) {
        // The block ran out while the look waited its turn (its session is closed then): say so above.
        if (isReleased()) continue;
        throw err;
      }
      const rows = seen.filter((r) => ports.includes(r.port));
      // A dump starts no transaction before `START TRANSACTION WITH CONSISTENT SNAPSHOT`
      // (it reads only information_schema and SHOW output in autocommit before it), so a
      // REPEATABLE READ transaction of its session is that snapshot.
      if (rows.length === 1 && rows[0].iso === 'REPEATABLE READ') return;
      lastSeen =
        rows.length === 0
          ? `the server showed no session from its port ${ports.join(', ')}`
          : rows.length > 1
            ? `the server showed ${rows.length} sessions from its port ${ports.join(', ')}`
            : rows[0].iso
              ? `its session ${rows[0].id} had a ${rows[0].iso} transaction`
              : `its session ${rows[0].id} had no transaction yet in information_schema.INNODB_TRX (which InnoDB refreshes only when nobody read it for 100 ms: is another client reading it that often?)`;
      // The look itself waited its turn.
      continue;
    }
    await delay(wait);
  }
}

/**
 * Spread the tables over at most `jobs` data parts: largest first, each to the part with
 * the fewest bytes so far. Parts that got nothing are dropped, but one always remains.
 */
export function planDataParts(tables: MysqlDataTable[], jobs: number): MysqlDataPart[] {
  const n = Math.max(1, Math.min(MAX_JOBS, Math.floor(jobs)));
  const parts: MysqlDataPart[] = Array.from({ length: n }, () => ({ tables: [], bytes: 0 }));
  const sorted = [...tables].sort((a, b) => b.bytes - a.bytes || (a.table < b.table ? -1 : a.table > b.table ? 1 : 0));
  for (const t of sorted) {
    let best = parts[0];
    for (const p of parts) if (p.bytes < best.bytes) best = p;
    best.tables.push(t);
    best.bytes += t.bytes;
  }
  const used = parts.filter((p) => p.tables.length > 0);
  return used.length > 0 ? used : [parts[0]];
}

/** mariadb-dump's arguments (after the connection's) for one section of a parallel dump. */
export function sectionArgs(database: string, section: MysqlSection, tables: string[], options: { dumpHistory?: boolean } = {}): string[] {
  const common = ['--single-transaction', '--quick', '--default-character-set=utf8mb4'];
  switch (section) {
    case 'pre-data':
      // Tables, views, sequences (with their values), routines, events; no rows, no triggers.
      return [...common, '--no-data', '--skip-triggers', '--routines', '--events', '--', database];
    case 'data':
      // Rows only, of exactly these tables. After `--`, no name (a table called "--x") is read as an option.
      return [...common, '--no-create-info', '--skip-triggers', ...(options.dumpHistory ? ['--dump-history'] : []), '--', database, ...tables];
    case 'post-data':
      return [...common, '--no-data', '--no-create-info', '--triggers', '--', database];
  }
}

/**
 * A start gate for a dump process: a FIFO that mariadb-dump reads as its only option file
 * (`--defaults-file`, which like `--no-defaults` keeps every other option file out). Reading
 * it blocks the tool before it connects, until `open()` writes it. So the processes are
 * started (a fork of a large process can take a long time on a busy machine) before commits
 * are blocked, and only connect and open their snapshots while they are.
 */
export interface StartGate {
  path: string;
  /** Let the tool run: write its (empty) options. Gives up, false, once `gone()` says the process is gone. */
  open(gone: () => boolean): Promise<boolean>;
  /** Remove the FIFO and its private folder. Safe to call twice. */
  remove(): Promise<void>;
}

/**
 * Make a gate in a private folder under `parent` (the data dir's `tmp/`), named after this
 * process (`gate-<pid>-…`): one left behind by a process that was killed is removed by the
 * next start's sweep (unnamed-file.ts sweepLeftovers), never one of a live process.
 */
export async function makeStartGate(parent: string): Promise<StartGate> {
  await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  const dir = await fs.mkdtemp(path.join(parent, `gate-${process.pid}-`));
  const file = path.join(dir, 'options.cnf');
  await new Promise<void>((resolve, reject) =>
    execFile('mkfifo', ['-m', '600', file], (err, _o, stderr) => (err ? reject(new Error(`cannot make a FIFO for a parallel dump: ${stderr.trim() || err.message}`)) : resolve())),
  ).catch(async (e) => {
    await fs.rm(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    path: file,
    open: async (gone) => {
      for (let wait = 1; ; wait = Math.min(20, wait * 2)) {
        // Non-blocking: a process that never opens its end must not hang a thread of the pool.
        const fd = await fs.open(file, fsc.O_WRONLY | fsc.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENXIO') return null; // not opened by the tool yet
          throw e;
        });
        if (fd) {
          try {
            await fd.write('[client]\n');
          } finally {
            await fd.close();
          }
          return true;
        }
        if (gone()) return false;
        await delay(wait);
      }
    },
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

export interface PartDumpOptions {
  section: MysqlSection;
  /** Wait at this gate (StartGate.path) before connecting. */
  gate?: string;
  /** The data part's tables (bare names). */
  tables?: string[];
  dumpHistory?: boolean;
  signal?: AbortSignal;
  /** Write the dump straight into this stream's pipe or descriptor (see DumpOptions.output). */
  output?: Writable | number;
}

/** Start mariadb-dump of one part; `pid` is for HeldPoint.confirm. */
export async function dumpPart(conn: ConnectionInfo, options: PartDumpOptions): Promise<DumpProcess & { pid: number }> {
  requireSafeDatabaseName(conn.database);
  const tools = await mysqlTools();
  if (options.signal?.aborted) throw new EngineError(`${tools.dump.name} was canceled before it started`);
  if (options.section === 'data' && (options.tables ?? []).length === 0) {
    // No tables: mariadb-dump would dump the whole database. A part without rows is a dump of nothing.
    throw new EngineError('a data part must name at least one table');
  }
  const run = await startTool({
    name: `${tools.dump.name} (${options.section})`,
    path: tools.dump.path,
    // `--defaults-file` replaces `--no-defaults` (both must come first): the gate is the only option file read.
    args: [...(options.gate ? [`--defaults-file=${options.gate}`, ...connectionArgs(conn).slice(1)] : connectionArgs(conn)), ...sectionArgs(conn.database, options.section, options.tables ?? [], { dumpHistory: options.dumpHistory })],
    env: toolEnv(conn),
    secrets: [conn.password],
    stdin: 'ignore',
    stdout: options.output,
    signal: options.signal,
    // It waits at its gate, then may be paused (SIGSTOP) with its snapshot open: if this process
    // dies meanwhile, nothing else would ever release it.
    dieWithParent: true,
  });
  return { stdout: toolStdout(run), done: run.done, kill: run.kill, clientVersion: tools.dump.versionLine, pid: run.child.pid ?? -1 };
}
