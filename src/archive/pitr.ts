/**
 * Point-in-time restore: which backup to start from and which archive files to replay
 * (planPointInTime), and running the restore job's replay by engine
 * (runPointInTimeRestore). A plan is all or nothing: when a file it needs is missing it is
 * refused, naming the file; it never settles for an earlier time than asked.
 *
 * "Restore to T" means: every transaction committed at or before T, none after (PostgreSQL
 * recovery_target_time with recovery_target_inclusive; the MariaDB/MySQL side follows the
 * same rule).
 */
import type { AppContext } from '../context.js';
import type { ArchiveFile, Backup, Branch, Job } from '../catalog/schema.js';
import { restorePostgresToPoint } from './postgres/pitr.js';
import { restoreMysqlToPoint } from './mysql/pitr.js';
import { archiveLine, archivedFiles, describeMissing, isoOrNull, missingAfter, replayStart, type ArchiveLine, type ReplayStart } from './sequence.js';
import { reachOf, replayStarts } from './window.js';

/**
 * `targetTime` value of a plan that replays a PostgreSQL base backup only to its own end
 * (restoring a base backup by id, without a restore point).
 */
export const BACKUP_END = 'backup-end';

export interface PitrPlan {
  /** The backup the replay starts from: a base backup (PostgreSQL), a dump with binlog coordinates (MariaDB/MySQL). */
  backup: Backup;
  /** ISO time (UTC, as Date.toISOString), 'latest' (everything archived), or BACKUP_END. */
  targetTime: string | 'latest';
  /**
   * The files to replay, in replay order, from the one holding the backup's start to the
   * first one holding an event after the target (or the last one archived). PostgreSQL
   * timeline history files come after the segments.
   */
  files: ArchiveFile[];
}

/** A restore point the archive cannot reach; the message says why (a missing file is named). */
export class PitrRefusal extends Error {
  constructor(
    message: string,
    /** 409: the archive cannot do it now; 422: the request itself is wrong. */
    readonly status: 409 | 422 = 409,
  ) {
    super(message);
    this.name = 'PitrRefusal';
  }
}

/**
 * A restore point as a request gives it: an ISO 8601 time with a time zone ("Z" or an
 * offset), or "latest". Returns the normalized value; throws PitrRefusal (422) otherwise.
 */
export function parseRestorePoint(value: string, field = 'restore_point'): string | 'latest' {
  if (value === 'latest') return 'latest';
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value.trim()) || Number.isNaN(Date.parse(value))) {
    throw new PitrRefusal(`${field} must be "latest" or a time with its time zone, e.g. 2024-05-01T13:45:00Z (got ${JSON.stringify(value.slice(0, 64))})`, 422);
  }
  return new Date(value).toISOString();
}

async function kindOf(ctx: AppContext, branch: Pick<Branch, 'database_id'>): Promise<'postgresql' | 'mysql'> {
  const db = await ctx.db.selectFrom('databases').select('kind').where('id', '=', branch.database_id).executeTakeFirstOrThrow();
  return db.kind;
}

const noun = (line: ArchiveLine) => (line.kind === 'wal' ? 'WAL segment' : 'binlog file');
const startNoun = (line: ArchiveLine) => (line.kind === 'wal' ? 'base backup' : 'backup with binlog coordinates');

/**
 * Plan a restore of `branch` to `targetTime` (ISO time, 'latest', or BACKUP_END with
 * `opts.backup`): the newest backup consistent at or before the time (or `opts.backup`),
 * and every archive file from its start to the time. Throws PitrRefusal naming what is
 * missing when the archive cannot reach the time.
 */
export async function planPointInTime(ctx: AppContext, branch: Branch, targetTime: string | 'latest', opts: { backup?: Backup } = {}): Promise<PitrPlan> {
  const kind = await kindOf(ctx, branch);
  const line = archiveLine(kind === 'postgresql' ? 'wal' : 'binlog', await archivedFiles(ctx, branch, kind === 'postgresql' ? 'wal' : 'binlog'));
  const target = targetTime === 'latest' || targetTime === BACKUP_END ? targetTime : isoOrNull(targetTime);
  if (target === null) throw new PitrRefusal(`not a time: ${JSON.stringify(targetTime)}`, 422);
  if (target === BACKUP_END && !opts.backup) throw new PitrRefusal('restoring to the end of a backup needs the backup', 422);

  let start: ReplayStart;
  if (opts.backup) {
    const s = replayStart(line, opts.backup);
    if (s === null) throw new PitrRefusal(whyNotAStart(line, opts.backup));
    if (target !== 'latest' && target !== BACKUP_END && Date.parse(target) < Date.parse(s.consistentAt)) {
      throw new PitrRefusal(`backup "${opts.backup.id}" is consistent from ${s.consistentAt} on; ${target} is earlier (restore an older backup, or give no backup_id to let Strongbox choose)`);
    }
    start = s;
  } else {
    const starts = await replayStarts(ctx, branch, line);
    if (starts.length === 0) throw new PitrRefusal(`branch "${branch.name}" has no ${startNoun(line)} to replay from${line.files.length ? '' : ' and nothing archived'}: switch archiving on and take a backup first`);
    const eligible = target === 'latest' ? starts : starts.filter((s) => Date.parse(s.consistentAt) <= Date.parse(target));
    if (eligible.length === 0) throw new PitrRefusal(`${target} is before the earliest restorable time, ${starts[0].consistentAt} (the oldest ${startNoun(line)} kept)`);
    // The newest start that can get anywhere; an older one would only replay more of the same files.
    start = [...eligible].reverse().find((s) => reachOf(line, s).reach !== null) ?? eligible[eligible.length - 1];
  }

  const { files: chain, reach } = reachOf(line, start);
  const lastPos = chain.length ? chain[chain.length - 1].pos : start.start - 1n;
  const hole = missingAfter(line, lastPos, chain.length ? chain[chain.length - 1].file : null);
  const holeText = () => `${noun(line)} ${describeMissing(hole.names, hole.total)} ${hole.total === 1n ? 'is' : 'are'} missing from the archive`;
  if (chain.length === 0) {
    const first = line.nameAt(start.start, null);
    throw new PitrRefusal(`${noun(line)} ${first}, where ${startNoun(line)} "${start.backup.id}" starts, is missing from the archive; it cannot be replayed`);
  }
  if (reach === null) {
    throw new PitrRefusal(`the archive ends before ${startNoun(line)} "${start.backup.id}" is consistent${hole.names.length ? `: ${holeText()}` : ' (its last WAL segment is not archived yet; try again in a moment)'}`);
  }
  const extras = line.extras;
  if (target === BACKUP_END) {
    const upTo = start.stop === null ? chain : chain.filter((f) => f.pos <= start.stop!);
    return { backup: start.backup, targetTime: BACKUP_END, files: [...upTo.map((f) => f.file), ...extras] };
  }
  if (target === 'latest') {
    if (hole.names.length) throw new PitrRefusal(`cannot restore to the latest archived time: ${holeText()}; the latest restorable time is ${reach}`);
    return { backup: start.backup, targetTime: 'latest', files: [...chain.map((f) => f.file), ...extras] };
  }
  // Up to the first file holding an event after the target: replay stops inside it. When no
  // archived event is after the target, everything is replayed, and only if the archive
  // reaches the target (an event at it, with nothing missing after it).
  const t = Date.parse(target);
  const cut = chain.findIndex((f) => f.file.last_event_at !== null && Date.parse(f.file.last_event_at) > t);
  if (cut >= 0) return { backup: start.backup, targetTime: target, files: [...chain.slice(0, cut + 1).map((f) => f.file), ...extras] };
  if (t > Date.parse(reach)) {
    if (hole.names.length) throw new PitrRefusal(`cannot restore to ${target}: ${holeText()}; the latest time restorable before the gap is ${reach}`);
    throw new PitrRefusal(`cannot restore to ${target}: the archive reaches ${reach} (what the server wrote since is archived when its current ${noun(line)} is complete); restore to that time or earlier, or to "latest"`);
  }
  return { backup: start.backup, targetTime: target, files: [...chain.map((f) => f.file), ...extras] };
}

function whyNotAStart(line: ArchiveLine, backup: Backup): string {
  if (backup.deleted_at !== null) return `backup "${backup.id}" was deleted`;
  if (backup.sha256 === null || backup.state === 'pending' || backup.state === 'running') return `backup "${backup.id}" is ${backup.state} and has no complete stored copy`;
  if (line.kind === 'wal' && backup.method !== 'base') return `backup "${backup.id}" is a logical dump; a point in time is reached from a base backup of an archived branch (method BASE)`;
  if (backup.recovery_start === null) return `backup "${backup.id}" recorded no ${line.kind === 'wal' ? 'WAL start' : 'binlog coordinates'}, so nothing can be replayed after it`;
  return `backup "${backup.id}" starts at ${noun(line)} that is not in the archive`;
}

/** What a restore job's params say about its point in time. */
export interface PitrParams {
  /** ISO time or 'latest'; absent for a base backup restored to its own end. */
  restore_point?: string;
  /** Deliver the recovered PostgreSQL data directory here instead of a database. */
  target_data_dir?: string;
}

/**
 * Run the replay part of restore job `job` (kind restore, params PitrParams): plan again
 * from the job's backup (files may have arrived since the request), then hand over to the
 * engine. The job's target database exists and is empty (the restore job made or checked
 * it), except with target_data_dir. Throws PitrRefusal or the engine's error.
 */
export async function runPointInTimeRestore(ctx: AppContext, job: Job, signal: AbortSignal): Promise<void> {
  const params = JSON.parse(job.params) as PitrParams;
  const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', job.backup_id).executeTakeFirstOrThrow();
  const source = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
  const plan = await planPointInTime(ctx, source, params.restore_point ?? BACKUP_END, { backup });
  signal.throwIfAborted();
  if (backup.engine === 'postgresql') await restorePostgresToPoint(ctx, job, plan, signal);
  else await restoreMysqlToPoint(ctx, job, plan, signal);
}
