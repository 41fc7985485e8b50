/**
 * The PostgreSQL WAL receiver: pg_receivewal streams the server's WAL into a spool folder
 * under the data directory; each segment is complete once pg_receivewal has renamed it
 * from `<name>.partial` to `<name>`, and is then shipped (ship.ts) and removed locally.
 *
 * The replication slot is Strongbox's, not pg_receivewal's: pg_receivewal streams without
 * it (so its flush reports never move the slot), and the slot is advanced here only past
 * segments that every destination holds. Whatever happens to a receiver (kill -9 between
 * receiving and storing, a takeover by a worker on another machine whose spool is empty),
 * the server keeps every segment not yet stored, and the next receiver starts at the first
 * segment the catalog lacks: pg_receivewal resumes from the newest file in its folder, so
 * that segment is seeded as an empty `.partial` (what pg_receivewal itself preallocates).
 *
 * A receiver whose process died leaves its pg_receivewal running (an orphan): the next one
 * ends it through the server (pg_terminate_backend of the stream named after the branch);
 * with --no-loop it then exits instead of reconnecting.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { AppContext } from '../../context.js';
import type { Archiver } from '../../catalog/schema.js';
import { nowIso } from '../../catalog/ids.js';
import { EngineError, type ConnectionInfo } from '../../engines/engine.js';
import { connectFailure, queryFailure } from '../../engines/errors.js';
import { openClient } from '../../engines/postgres/index.js';
import { serverMajorFromVersionNum } from '../../engines/postgres/clients.js';
import { runTool } from '../../engines/process.js';
import type { ArchiveReceiver } from '../receiver.js';
import { shipArchiveFile } from '../ship.js';
import { postgresPreconditions, slotNameFor } from './preconditions.js';
import { formatLsn, HISTORY_RE, parseLsn, parseSegmentName, receiverAppName, replicationArgs, replicationEnv, SEGMENT_RE, segmentName, serverTools, type PgServerTools } from './tools.js';

/** How often the spool is looked at for completed segments. */
const POLL_MS = 500;

/** Where a branch's WAL is received before it is shipped. */
export function spoolDir(ctx: AppContext, branchId: string): string {
  return path.join(ctx.config.dataDir, 'archive-spool', branchId);
}

/** archivers.position for PostgreSQL: the end of the newest stored segment. */
export interface WalPosition {
  timeline: number;
  lsn: string;
  segment_size: number;
}

async function withClient<T>(conn: ConnectionInfo, what: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  let client: pg.Client;
  try {
    client = await openClient(conn, conn.database);
  } catch (e) {
    throw connectFailure('postgresql', conn, e);
  }
  try {
    return await work(client);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw queryFailure('postgresql', conn, what, e);
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface ServerState {
  major: number;
  segmentSize: number;
  timeline: number;
  currentLsn: string;
  slotRestartLsn: string | null;
  slotExists: boolean;
}

/**
 * The server's WAL facts, with the slot made if it is missing. The slot reserves WAL at
 * once (pg_receivewal --create-slot would reserve nothing until the first stream).
 */
async function prepareServer(conn: ConnectionInfo, slot: string, appName: string): Promise<ServerState> {
  return withClient(conn, 'preparing WAL streaming', async (c) => {
    const r = await c.query(
      `SELECT current_setting('server_version_num')::int AS num,
              pg_size_bytes(current_setting('wal_segment_size'))::text AS seg,
              pg_walfile_name(pg_current_wal_lsn()) AS walfile,
              pg_current_wal_lsn()::text AS lsn`,
    );
    const row = r.rows[0];
    let slotRow = (await c.query('SELECT restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
    if (!slotRow) {
      await c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]).catch((e) => {
        // Made by another receiver at the same moment: that one is as good.
        if ((e as { code?: string }).code !== '42710') throw e;
      });
      slotRow = (await c.query('SELECT restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
    }
    // A stream left by a receiver whose process died (its pg_receivewal outlives it): end it,
    // and wait until it is gone, so that it writes nothing more in its spool.
    for (let i = 0; i < 50; i++) {
      const left = await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = $1', [appName]);
      if (left.rowCount === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      major: serverMajorFromVersionNum(row.num),
      segmentSize: Number(row.seg),
      timeline: parseInt(String(row.walfile).slice(0, 8), 16),
      currentLsn: row.lsn,
      slotRestartLsn: slotRow?.restart_lsn ?? null,
      slotExists: slotRow !== undefined,
    };
  });
}

/** Move the slot to `lsn` (never back): the server may now recycle the WAL before it. */
async function advanceSlot(conn: ConnectionInfo, slot: string, lsn: string): Promise<void> {
  await withClient(conn, `advancing replication slot ${slot}`, (c) =>
    c.query('SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots WHERE slot_name = $1 AND restart_lsn < $2::pg_lsn AND NOT active', [slot, lsn]),
  );
}

/** Round to the millisecond outward, so that [first, last] still covers the events. */
function isoMs(text: string, up: boolean): string {
  // "2024-05-01 10:00:00.123456" (UTC) → ms since epoch, with the sub-millisecond part kept aside.
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))?$/.exec(text)!;
  const frac = (m[3] ?? '').padEnd(6, '0');
  let ms = Date.parse(`${m[1]}T${m[2]}Z`) + Number(frac.slice(0, 3));
  if (up && Number(frac.slice(3)) > 0) ms += 1;
  return new Date(ms).toISOString();
}

const COMMIT_RE = /desc: (?:COMMIT|ABORT)(?:_PREPARED \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC/;

/**
 * The times of the first and the last transaction end (commit or abort) recorded in a
 * segment, read with pg_waldump; null when it holds none, or pg_waldump could not read it.
 * pg_waldump complains at the segment's end (the last record continues in the next
 * segment, which it does not have): its exit status is not looked at, only what it printed.
 */
export async function transactionTimes(tools: PgServerTools, file: string, signal?: AbortSignal): Promise<{ first: string | null; last: string | null }> {
  let first: string | null = null;
  let last: string | null = null;
  const child = spawn(tools.pgWaldump, ['--rmgr=Transaction', file], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TZ: 'UTC' }, signal });
  child.on('error', () => undefined);
  const lines = readline.createInterface({ input: child.stdout });
  try {
    for await (const line of lines) {
      const m = COMMIT_RE.exec(line);
      if (!m) continue;
      first ??= m[1];
      last = m[1];
    }
  } catch {
    return { first: null, last: null };
  }
  return { first: first && isoMs(first, false), last: last && isoMs(last, true) };
}

/**
 * Ship every complete file in the spool, oldest first (history files before the segments of
 * their timeline), then remove it and move the slot past it. A file already stored is
 * recognised by ship.ts and only removed.
 */
async function shipSpool(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo, slot: string, spool: string, segmentSize: number, tools: PgServerTools, signal: AbortSignal): Promise<number> {
  const ready = fs
    .readdirSync(spool)
    .filter((n) => SEGMENT_RE.test(n) || HISTORY_RE.test(n))
    .sort();
  for (const name of ready) {
    signal.throwIfAborted();
    const file = path.join(spool, name);
    if (HISTORY_RE.test(name)) {
      await shipArchiveFile(ctx, archiver, { kind: 'wal', name, path: file, timeline: parseInt(name.slice(0, 8), 16) }, signal);
      fs.rmSync(file, { force: true });
      continue;
    }
    const seg = parseSegmentName(name, segmentSize);
    const times = await transactionTimes(tools, file, signal);
    const end = formatLsn(seg.end);
    await shipArchiveFile(ctx, archiver, { kind: 'wal', name, path: file, timeline: seg.timeline, start_lsn: formatLsn(seg.start), end_lsn: end, first_event_at: times.first, last_event_at: times.last }, signal);
    await advanceSlot(conn, slot, end);
    const position: WalPosition = { timeline: seg.timeline, lsn: end, segment_size: segmentSize };
    await ctx.db.updateTable('archivers').set({ position: JSON.stringify(position), updated_at: nowIso(ctx.clock()) }).where('branch_id', '=', archiver.branch_id).execute();
    fs.rmSync(file, { force: true });
  }
  return ready.length;
}

/** The newest stored segment of the branch, if any. */
async function newestStored(ctx: AppContext, branchId: string): Promise<string | null> {
  const rows = await ctx.db.selectFrom('archive_files').select('name').where('branch_id', '=', branchId).where('kind', '=', 'wal').where('name', 'not like', '%.history').orderBy('name', 'desc').limit(1).execute();
  return rows[0]?.name ?? null;
}

/**
 * Where streaming resumes: the segment after the newest stored one, or (nothing stored
 * yet) the segment where the slot's reservation starts. If the server no longer has the
 * WAL the catalog wants (the slot was dropped and made again, say), it resumes at the slot,
 * and the archive has a gap there that the recovery window shows.
 */
async function resumeSegment(ctx: AppContext, archiver: Archiver, server: ServerState): Promise<string> {
  const newest = await newestStored(ctx, archiver.branch_id);
  const slotPos = parseLsn(server.slotRestartLsn ?? server.currentLsn);
  const slotSegStart = slotPos - (slotPos % BigInt(server.segmentSize));
  if (newest) {
    const seg = parseSegmentName(newest, server.segmentSize);
    if (seg.end >= slotSegStart) return segmentName(seg.timeline, seg.end, server.segmentSize);
    ctx.log.warn({ branch: archiver.branch_id, newest, slot: server.slotRestartLsn }, 'the server no longer has the WAL after the newest archived segment; the archive has a gap');
  }
  return segmentName(server.timeline, slotSegStart, server.segmentSize);
}

async function runPostgresReceiver(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo, signal: AbortSignal): Promise<void> {
  const spool = spoolDir(ctx, archiver.branch_id);
  fs.mkdirSync(spool, { recursive: true, mode: 0o700 });
  const slot = archiver.slot_name ?? slotNameFor(archiver.branch_id);
  if (archiver.slot_name === null) await ctx.db.updateTable('archivers').set({ slot_name: slot }).where('branch_id', '=', archiver.branch_id).execute();
  const appName = receiverAppName(archiver.branch_id);

  let server = await prepareServer(conn, slot, appName);
  const tools = await serverTools(server.major);
  // What a receiver of this process left: ship it first (idempotent), so nothing it got is lost.
  await shipSpool(ctx, archiver, conn, slot, spool, server.segmentSize, tools, signal);
  server = await prepareServer(conn, slot, appName);
  const start = await resumeSegment(ctx, archiver, server);
  for (const n of fs.readdirSync(spool)) if (n.endsWith('.partial')) fs.rmSync(path.join(spool, n), { force: true });
  const seed = path.join(spool, `${start}.partial`);
  fs.writeFileSync(seed, '');
  fs.truncateSync(seed, server.segmentSize);
  signal.throwIfAborted();

  const stop = new AbortController();
  const both = AbortSignal.any([signal, stop.signal]);
  const run = runTool({
    name: 'pg_receivewal',
    path: tools.pgReceivewal,
    // --no-loop: on a lost connection exit (the manager retries with backoff) rather than
    // reconnect by itself, and so an orphan ended through the server stays ended.
    args: [...replicationArgs(conn), `--directory=${spool}`, '--no-loop', '--status-interval=10'],
    env: replicationEnv(conn, appName),
    secrets: [conn.password],
    stdin: 'ignore',
    signal: both,
  });
  run.child.stdout?.resume();
  ctx.log.info({ branch: archiver.branch_id, from: start, slot }, 'WAL receiver started');
  let exited = false;
  const done = run.done.finally(() => (exited = true));
  try {
    while (!signal.aborted && !exited) {
      await shipSpool(ctx, archiver, conn, slot, spool, server.segmentSize, tools, both);
      await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, POLL_MS))]);
    }
    if (signal.aborted) return;
    // pg_receivewal ended by itself: keep what it completed, then say why it stopped.
    await shipSpool(ctx, archiver, conn, slot, spool, server.segmentSize, tools, signal);
    await done;
    throw new EngineError('pg_receivewal stopped streaming (the server closed the connection)');
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  } finally {
    stop.abort();
    await done.catch(() => undefined);
  }
}

export const postgresReceiver: ArchiveReceiver = {
  preconditions: (_ctx, conn) => postgresPreconditions(conn),
  run: runPostgresReceiver,
};
