/**
 * The full verification (restore drill) of an archived branch's backup: a point-in-time
 * restore into a scratch database on the source's server, then a comparison that stays
 * honest while the source keeps changing.
 *
 * What can be compared. A base backup records no contents (it is a tar of the data
 * directory), and the source has moved on by the time the copy exists, so neither "what the
 * backup recorded" nor "the source now" is the copy's state. What is sound is a bracket:
 *
 *   1. read the source's contents (the dump reader's table digests and object inventory)
 *      at S0, then its current position P (WAL LSN / binlog file): everything S0 saw was
 *      committed before P;
 *   2. close the current WAL segment / binlog (pg_switch_wal / FLUSH BINARY LOGS, when the
 *      account may) and wait until the archive holds P: the copy restored to "latest" then
 *      holds every commit S0 saw, and maybe later ones;
 *   3. restore to "latest" and read the copy;
 *   4. read the source again at S1, after the restore.
 *
 * The copy's state lies between S0 and S1. A table (or object) that reads the same at S0 and
 * at S1 did not change in between, so the copy must hold exactly that: any difference there
 * is a failure. One that changed between S0 and S1 is not compared (its name is in the
 * result's note) — the copy legitimately holds some state in between that nobody recorded.
 * (The one blind spot: a table changed and changed back to the very same bytes during the
 * drill would read as unchanged, and a copy that caught it half way would be reported as
 * different: a false alarm, never a missed one.) If the archive does not reach P in time,
 * the copy may be older than S0 and nothing is compared; the note says so and the drill
 * still proves that the archive replays to its end and that every row of the copy reads.
 *
 * Besides the comparison, a drill fails when the archive cannot be restored to "latest"
 * (a missing WAL segment or binlog is named) or the replay stops short of the archive's end
 * (the replay checks it, archive/postgres/pitr.ts).
 *
 * A full verification of a base backup that is not a drill (asked for by a user) replays
 * only to the backup's own end and reads the copy in full: there is nothing recorded to
 * compare it with.
 */
import type { AppContext } from '../context.js';
import type { Backup, Branch, Job } from '../catalog/schema.js';
import { engineFor, parseConnectionUrl, type ConnectionInfo, type Engine } from '../engines/index.js';
import { openClient } from '../engines/postgres/index.js';
import { withConnection } from '../engines/mysql/index.js';
import { compareContents, describeDifference, type ContentDifference, type DumpContents } from '../pipeline/rowcount/index.js';
import { dumpContents, MAX_DIFFERENCES } from '../jobs/comparison.js';
import { clearScratch, recordScratch, scratchDatabaseName } from '../jobs/scratch.js';
import { recordedProperties } from '../jobs/fidelity.js';
import type { RestoreCheck } from '../jobs/verify.js';
import { cleanErrorText } from '../error-text.js';
import { BACKUP_END, planPointInTime, PitrRefusal, type PitrPlan } from './pitr.js';
import { restorePostgresToPoint } from './postgres/pitr.js';
import { restoreMysqlToPoint } from './mysql/pitr.js';
import { lastEventOf } from './sequence.js';
import { parseLsn } from './postgres/wal.js';

/** How long a drill waits for the archive to reach the source's position before restoring. */
export const CATCH_UP_MS = 120_000;

/** What a point-in-time drill adds to a verification's restore check. */
export interface PointInTimeCheck extends RestoreCheck {
  /** 'latest' (a drill) or 'backup-end' (a base backup verified alone). */
  restore_point: string;
  /** The last commit the copy holds, as the archive recorded it. */
  restored_to: string | null;
  /** Tables and objects compared with the source (unchanged while the drill ran). */
  compared: number;
  /** Tables and objects that changed on the source while the drill ran: not compared. */
  changed_on_source: string[];
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A key for a table or object that keeps kind, schema and name apart. */
function keyOf(d: Pick<ContentDifference, 'kind' | 'schema' | 'name'>): string {
  return JSON.stringify([d.kind, d.schema, d.name]);
}

/** Where the source's log is now: a WAL LSN, or the current binlog file. */
type Position = { kind: 'wal'; lsn: bigint } | { kind: 'binlog'; file: string };

async function currentPosition(engine: Engine, conn: ConnectionInfo): Promise<Position> {
  if (engine.kind === 'postgresql') {
    const c = await openClient(conn, conn.database);
    try {
      const r = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      return { kind: 'wal', lsn: parseLsn(r.rows[0].lsn) };
    } finally {
      await c.end().catch(() => {});
    }
  }
  return withConnection(conn, undefined, 'reading the current binary log', async (c) => {
    const [rows] = await c.query('SHOW BINARY LOGS');
    const list = rows as Array<{ Log_name: string }>;
    if (!list.length) throw new Error('the server lists no binary log (log_bin is off)');
    return { kind: 'binlog' as const, file: list[list.length - 1].Log_name };
  });
}

/** Complete the current WAL segment / binlog so the receiver can store it; false when the account may not. */
async function closeCurrentFile(engine: Engine, conn: ConnectionInfo): Promise<boolean> {
  try {
    if (engine.kind === 'postgresql') {
      const c = await openClient(conn, conn.database);
      try {
        await c.query('SELECT pg_switch_wal()');
      } finally {
        await c.end().catch(() => {});
      }
    } else {
      await withConnection(conn, undefined, 'closing the current binary log', (c) => c.query('FLUSH BINARY LOGS'));
    }
    return true;
  } catch {
    return false;
  }
}

/** Whether the archive holds everything written before `pos`. */
async function archiveHolds(ctx: AppContext, branch: Pick<Branch, 'id'>, pos: Position): Promise<boolean> {
  const rows = await ctx.db
    .selectFrom('archive_files')
    .select(['name', 'end_lsn'])
    .where('branch_id', '=', branch.id)
    .where('kind', '=', pos.kind)
    .where('state', '=', 'success')
    .orderBy('name', 'desc')
    .limit(5)
    .execute();
  if (pos.kind === 'wal') return rows.some((r) => r.end_lsn !== null && parseLsn(r.end_lsn) >= pos.lsn);
  // Binlogs are stored once closed: the file P was in, or a later one, stored means P is.
  return rows.some((r) => r.name >= pos.file);
}

async function waitForArchive(ctx: AppContext, branch: Pick<Branch, 'id'>, pos: Position, ms: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await archiveHolds(ctx, branch, pos)) return true;
    if (Date.now() >= deadline) return false;
    signal.throwIfAborted();
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function readContents(engine: Engine, conn: ConnectionInfo, what: string, signal: AbortSignal, dumpHistory: boolean): Promise<DumpContents> {
  const read = await dumpContents(engine, conn, { signal, dumpHistory });
  if (read.contents === null) throw new Error(`${what} could not be read: ${read.reason}`);
  return read.contents;
}

const nameOf = (d: ContentDifference) => describeDifference({ ...d, problem: 'missing' }).replace(/ is missing$/, '');

/**
 * Restore `backup`'s branch to `target` ('latest' for a drill, BACKUP_END for a base backup
 * alone) into a scratch database next to the source, and compare as the header says. Never
 * throws for what it finds (that is `error`); throws only when aborted.
 */
export async function checkPointInTimeRestore(
  ctx: AppContext,
  backup: Backup,
  job: Job,
  target: 'latest' | typeof BACKUP_END,
  signal: AbortSignal,
  opts: { catchUpMs?: number } = {},
): Promise<PointInTimeCheck> {
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
  const scratchName = scratchDatabaseName(job.id);
  const check: PointInTimeCheck = { ok: false, database: scratchName, tables: 0, mismatches: [], note: null, error: null, restore_point: target, restored_to: null, compared: 0, changed_on_source: [] };
  if (branch.connection_url_enc === null) return { ...check, error: 'the source branch has no connection URL to restore a scratch copy next to' };
  const engine = engineFor(backup.engine);
  const source = parseConnectionUrl(ctx.secrets.open(branch.connection_url_enc)).info;
  const scratch = { ...source, database: scratchName };
  const options = await ctx.db.selectFrom('branch_options').select('dump_history').where('branch_id', '=', branch.id).executeTakeFirst();
  const dumpHistory = engine.kind === 'mysql' && options?.dump_history === 1;
  const notes: string[] = [];

  let before: DumpContents | null = null;
  let caughtUp = false;
  let plan: PitrPlan;
  try {
    if (target === 'latest') {
      before = await readContents(engine, source, 'the source', signal, dumpHistory);
      const pos = await currentPosition(engine, source);
      const closed = await closeCurrentFile(engine, source);
      caughtUp = await waitForArchive(ctx, branch, pos, opts.catchUpMs ?? CATCH_UP_MS, signal);
      if (!caughtUp) {
        notes.push(
          `the archive had not reached the source's position within ${Math.round((opts.catchUpMs ?? CATCH_UP_MS) / 1000)} s${closed ? '' : ` (the account may not close the current ${engine.kind === 'postgresql' ? 'WAL segment: pg_switch_wal' : 'binlog: FLUSH BINARY LOGS needs RELOAD'})`}, so the copy may be older than the source's first read: it was restored and read in full, not compared`,
        );
      }
    }
    plan = await planPointInTime(ctx, branch, target, { backup });
  } catch (e) {
    if (signal.aborted) throw e;
    const why = e instanceof PitrRefusal ? `the archive cannot be restored to ${target === 'latest' ? 'its latest time' : "the backup's end"}: ${e.message}` : `restore not attempted: ${messageOf(e)}`;
    return { ...check, error: cleanErrorText(why) };
  }
  check.restored_to = target === 'latest' ? lastEventOf(plan.files.map((file) => ({ file }))) : null;

  await recordScratch(ctx, job.id, scratch.database);
  try {
    await engine.createDatabase(source, scratch.database, recordedProperties(backup));
    if (engine.kind === 'postgresql') await restorePostgresToPoint(ctx, job, plan, signal, scratch);
    else await restoreMysqlToPoint(ctx, job, plan, signal, scratch);
    const copy = await readContents(engine, scratch, 'the restored copy', signal, dumpHistory);
    check.tables = copy.tables.length;
    if (before && caughtUp) {
      const after = await readContents(engine, source, 'the source (second read)', signal, dumpHistory);
      const changed = new Map(compareContents(before, after).map((d) => [keyOf(d), d]));
      const differences = compareContents(before, copy).filter((d) => !changed.has(keyOf(d)));
      check.changed_on_source = [...changed.values()].map(nameOf);
      check.compared = before.tables.length + before.objects.length - [...changed.values()].filter((d) => d.problem !== 'unexpected').length;
      check.method = 'contents';
      check.differences_total = differences.length;
      check.differences = differences.slice(0, MAX_DIFFERENCES);
      for (const d of differences) {
        if (d.kind === 'table data' && (d.problem === 'rows' || d.problem === 'missing' || d.problem === 'unexpected')) {
          check.mismatches.push({ table: d.schema === null ? d.name : `${d.schema}.${d.name}`, expected: typeof d.expected === 'number' ? d.expected : null, actual: typeof d.actual === 'number' ? d.actual : null });
        }
      }
      if (changed.size) notes.push(`${changed.size} table(s)/object(s) changed on the source while the drill ran and were not compared: ${check.changed_on_source.slice(0, 10).join(', ')}${changed.size > 10 ? ', …' : ''}`);
      if (differences.length) {
        const shown = differences.slice(0, 5).map(describeDifference).join('; ');
        check.error = `the copy restored to the latest archived time differs from the source where the source did not change during the drill, in ${differences.length} place(s): ${shown}${differences.length > 5 ? '; …' : ''}`;
      }
    } else if (target === BACKUP_END) {
      notes.push('a base backup records no contents: it was restored by replaying the archive to its own end and the copy was read in full (every row); a restore drill of the branch compares with the source');
    }
    check.ok = check.error === null;
  } catch (e) {
    if (signal.aborted) throw e;
    check.error = cleanErrorText(`point-in-time restore failed: ${messageOf(e)}`);
  } finally {
    await engine
      .dropDatabase(source, scratch.database)
      .then(() => clearScratch(ctx, job.id))
      .catch((e) => ctx.log.error({ err: messageOf(e), database: scratch.database }, 'could not drop a verification scratch database; recovery will try again'));
  }
  check.note = notes.length ? notes.join('; ') : null;
  return check;
}
