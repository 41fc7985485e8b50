/**
 * An archived branch as a line of files that replay one after the other (WAL segments by
 * segment number, binlogs by their number), and where each backup joins it: the shared
 * ground of the recovery window (window.ts) and of planning a point-in-time restore
 * (pitr.ts). A missing file breaks the line; nothing is ever replayed across a break.
 */
import type { AppContext } from '../context.js';
import type { ArchiveFile, ArchiveKind, Backup, Branch, RecoveryStart } from '../catalog/schema.js';
import { isHistoryName, isSegmentName, parseSegmentName, segmentName, segmentOfLsn, segmentSizeOf } from './postgres/wal.js';

/** Names listed at most in a message or a gap; the rest is counted. */
export const MAX_NAMED = 20;

/** An archive's files in replay order, at most one per position. */
export interface ArchiveLine {
  kind: ArchiveKind;
  /** Sorted by position. */
  files: Array<{ file: ArchiveFile; pos: bigint }>;
  /** PostgreSQL: the timeline history files (restore_command asks for them), else []. */
  extras: ArchiveFile[];
  /** Position of a file name on this line, or null when it is not one of its names. */
  positionOf(name: string): bigint | null;
  /** The name the file at `pos` has (or would have), given the file before it. */
  nameAt(pos: bigint, before: ArchiveFile | null): string;
}

/** A backup that replay can start from: where it joins the line, and from when it is consistent. */
export interface ReplayStart {
  backup: Backup;
  /** Position of the first file replay needs. */
  start: bigint;
  /** PostgreSQL: position of the segment holding the backup's end (replay must get that far), when recorded. */
  stop: bigint | null;
  /** The earliest time a restore from this backup can reach: when it was consistent. */
  consistentAt: string;
}

/** The archive files of a branch that are stored (not deleted by retention). */
export async function archivedFiles(ctx: AppContext, branch: Pick<Branch, 'id'>, kind: ArchiveKind): Promise<ArchiveFile[]> {
  return ctx.db.selectFrom('archive_files').selectAll().where('branch_id', '=', branch.id).where('kind', '=', kind).where('state', '=', 'success').where('deleted_at', 'is', null).execute();
}

/** Build the line of a branch's archived files. */
export function archiveLine(kind: ArchiveKind, all: ArchiveFile[]): ArchiveLine {
  return kind === 'wal' ? walLine(all) : binlogLine(all);
}

function walLine(all: ArchiveFile[]): ArchiveLine {
  const segments = all.filter((f) => isSegmentName(f.name));
  const size = segmentSizeOf(segments);
  // One segment per number: after a timeline switch the newer timeline's copy is the one
  // replay follows (recovery_target_timeline 'latest', with the history files).
  const byPos = new Map<bigint, { file: ArchiveFile; timeline: number }>();
  for (const f of segments) {
    const { timeline, segno } = parseSegmentName(f.name, size);
    const had = byPos.get(segno);
    if (!had || had.timeline < timeline) byPos.set(segno, { file: f, timeline });
  }
  return {
    kind: 'wal',
    files: [...byPos.entries()].map(([pos, v]) => ({ file: v.file, pos })).sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0)),
    extras: all.filter((f) => isHistoryName(f.name)),
    positionOf: (name) => (isSegmentName(name) ? parseSegmentName(name, size).segno : null),
    nameAt: (pos, before) => segmentName(before ? parseSegmentName(before.name, size).timeline : 1, pos, size),
  };
}

const BINLOG_RE = /^(.*)\.(\d+)$/;

function binlogLine(all: ArchiveFile[]): ArchiveLine {
  const parsed = all.map((f) => ({ f, m: BINLOG_RE.exec(f.name) })).filter((x) => x.m !== null);
  // A server writes one base name; files of another (log_bin renamed) start a line of their own
  // that a dump's coordinates never lead into, so the most recent base name is the line.
  const latest = parsed.sort((a, b) => b.f.created_at.localeCompare(a.f.created_at))[0];
  const base = latest?.m![1] ?? '';
  const width = latest?.m![2].length ?? 6;
  const files = parsed.filter((x) => x.m![1] === base).map((x) => ({ file: x.f, pos: BigInt(x.m![2]) }));
  return {
    kind: 'binlog',
    files: files.sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0)),
    extras: [],
    positionOf: (name) => {
      const m = BINLOG_RE.exec(name);
      return m && m[1] === base ? BigInt(m[2]) : null;
    },
    nameAt: (pos) => `${base}.${pos.toString().padStart(width, '0')}`,
  };
}

/** backups.recovery_start, parsed; null when absent or unreadable. */
export function recoveryStartOf(backup: Pick<Backup, 'recovery_start'>): (RecoveryStart & Record<string, unknown>) | null {
  if (!backup.recovery_start) return null;
  try {
    return JSON.parse(backup.recovery_start) as RecoveryStart & Record<string, unknown>;
  } catch {
    return null;
  }
}

function validTime(v: unknown): string | null {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : null;
}

/**
 * Where `backup` joins `line`, or null when it cannot start a replay (no recorded
 * coordinates, no stored copy).
 */
export function replayStart(line: ArchiveLine, backup: Backup): ReplayStart | null {
  if (backup.deleted_at !== null || backup.sha256 === null || backup.state === 'pending' || backup.state === 'running') return null;
  const rs = recoveryStartOf(backup);
  if (!rs) return null;
  let startName: string;
  let stop: bigint | null = null;
  if (line.kind === 'wal') {
    if (backup.method !== 'base' || !('lsn' in rs) || typeof rs.lsn !== 'string') return null;
    const timeline = typeof rs.timeline === 'number' ? rs.timeline : 1;
    const size = line.files.length ? sizeFromLine(line) : undefined;
    try {
      startName = segmentOfLsn(timeline, rs.lsn, size);
      const stopLsn = [rs.stop_lsn, rs.end_lsn].find((v): v is string => typeof v === 'string');
      if (stopLsn) stop = line.positionOf(segmentOfLsn(typeof rs.stop_timeline === 'number' ? rs.stop_timeline : timeline, stopLsn, size));
    } catch {
      return null;
    }
  } else {
    if (!('file' in rs) || typeof rs.file !== 'string') return null;
    startName = rs.file;
  }
  const start = line.positionOf(startName);
  if (start === null) return null;
  // A base backup is consistent once its end is replayed, a dump at its snapshot: both before
  // the backup completed. The completion time is the safe bound when nothing closer was recorded.
  const consistentAt = validTime(rs.stop_time) ?? validTime(rs.consistent_at) ?? backup.completed_at ?? backup.updated_at;
  return { backup, start, stop, consistentAt };
}

function sizeFromLine(line: ArchiveLine): number {
  return segmentSizeOf(line.files.map((f) => f.file));
}

/** The files of `line` from position `start` on, up to the first missing one. */
export function contiguousFrom(line: ArchiveLine, start: bigint): Array<{ file: ArchiveFile; pos: bigint }> {
  const out: Array<{ file: ArchiveFile; pos: bigint }> = [];
  let i = line.files.findIndex((f) => f.pos === start);
  if (i < 0) return out;
  for (let expect = start; i < line.files.length && line.files[i].pos === expect; i++, expect++) out.push(line.files[i]);
  return out;
}

/**
 * The names missing right after position `after` (exclusive) up to the next stored file,
 * or [] when nothing is stored after it (the line simply ends there).
 */
export function missingAfter(line: ArchiveLine, after: bigint, before: ArchiveFile | null): { names: string[]; total: bigint; next: { file: ArchiveFile; pos: bigint } | null } {
  const next = line.files.find((f) => f.pos > after) ?? null;
  if (!next || next.pos === after + 1n) return { names: [], total: 0n, next };
  const total = next.pos - after - 1n;
  const names: string[] = [];
  for (let p = after + 1n; p < next.pos && names.length < MAX_NAMED; p++) names.push(line.nameAt(p, before));
  return { names, total, next };
}

/** "A, B and 3 more" for a list of missing names. */
export function describeMissing(names: string[], total: bigint): string {
  const more = total - BigInt(names.length);
  return `${names.join(', ')}${more > 0n ? ` and ${more} more` : ''}`;
}

/** The latest commit/event time recorded for any of `files`, or null. */
export function lastEventOf(files: ReadonlyArray<{ file: ArchiveFile }>): string | null {
  let last: string | null = null;
  for (const { file } of files) last = maxTime(last, isoOrNull(file.last_event_at));
  return last;
}

/** An ISO time as Date.toISOString() writes it (so times compare as text), or null. */
export function isoOrNull(v: string | null | undefined): string | null {
  if (!v) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

/** The later of two ISO times (null = none). */
export function maxTime(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}
