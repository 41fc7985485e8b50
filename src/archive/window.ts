/**
 * The recovery window of an archived branch: from when to when a point-in-time restore can
 * land, and where a missing archive file makes a hole in it. PostgreSQL's is computed here;
 * MariaDB/MySQL's by mysql/window.ts.
 */
import type { AppContext } from '../context.js';
import type { Branch } from '../catalog/schema.js';
import { mysqlRecoveryWindow } from './mysql/window.js';
import { archiveLine, archivedFiles, contiguousFrom, lastEventOf, maxTime, missingAfter, replayStart, type ArchiveLine, type ReplayStart } from './sequence.js';

export interface RecoveryWindow {
  /** The earliest time a restore can reach (the oldest usable backup's consistent point), or null: none. */
  earliest: string | null;
  /** The latest time a restore can reach (the last commit in the archive that can be replayed to), or null. */
  latest: string | null;
  /**
   * Holes between earliest and latest: `missing` names the files that are not stored (the
   * first ones, when many), `after` the last time restorable before the hole, `before` the
   * first time restorable after it (null: nothing after it is, until a newer backup).
   */
  gaps: Array<{ after: string | null; before: string | null; missing: string[] }>;
}

/** The recovery window of `branch` (empty for a branch that was never archived). */
export async function recoveryWindow(ctx: AppContext, branch: Branch): Promise<RecoveryWindow> {
  const database = await ctx.db.selectFrom('databases').select('kind').where('id', '=', branch.database_id).executeTakeFirstOrThrow();
  if (database.kind === 'mysql') return mysqlRecoveryWindow(ctx, branch);
  const line = archiveLine('wal', await archivedFiles(ctx, branch, 'wal'));
  return windowOf(line, await replayStarts(ctx, branch, line));
}

/** Every backup of `branch` a replay along `line` can start from, oldest consistent point first. */
export async function replayStarts(ctx: AppContext, branch: Pick<Branch, 'id'>, line: ArchiveLine): Promise<ReplayStart[]> {
  const backups = await ctx.db.selectFrom('backups').selectAll().where('branch_id', '=', branch.id).where('deleted_at', 'is', null).where('recovery_start', 'is not', null).execute();
  return backups
    .map((b) => replayStart(line, b))
    .filter((s): s is ReplayStart => s !== null)
    .sort((a, b) => Date.parse(a.consistentAt) - Date.parse(b.consistentAt));
}

/** How far a replay from `start` gets: the files it can use, and the latest time it reaches (null: not even consistency). */
export function reachOf(line: ArchiveLine, start: ReplayStart): { files: ReturnType<typeof contiguousFrom>; reach: string | null } {
  const files = contiguousFrom(line, start.start);
  if (files.length === 0) return { files, reach: null };
  // The backup's own end must be in the archive, or it never becomes consistent.
  if (start.stop !== null && files[files.length - 1].pos < start.stop) return { files, reach: null };
  return { files, reach: maxTime(start.consistentAt, lastEventOf(files)) };
}

/** The window a line and its replay starts give (engine-neutral: also usable for binlogs). */
export function windowOf(line: ArchiveLine, starts: ReplayStart[]): RecoveryWindow {
  let earliest: string | null = null;
  let latest: string | null = null;
  for (const s of starts) {
    const { reach } = reachOf(line, s);
    if (reach === null) continue;
    if (earliest === null) earliest = s.consistentAt;
    latest = maxTime(latest, reach);
  }
  if (earliest === null || starts.length === 0) return { earliest: null, latest: null, gaps: [] };
  // Holes after the oldest start: each is bounded by what the replays reach before it and the
  // first backup that can start a replay after it.
  const first = starts.reduce((a, b) => (a.start <= b.start ? a : b)).start;
  const gaps: RecoveryWindow['gaps'] = [];
  for (const { file, pos } of line.files) {
    if (pos < first) continue;
    const hole = missingAfter(line, pos, file);
    if (hole.names.length === 0) continue;
    let after: string | null = null;
    for (const s of starts) {
      if (s.start > pos) continue;
      const r = reachOf(line, s);
      if (r.reach !== null && r.files[r.files.length - 1].pos === pos) after = maxTime(after, r.reach);
    }
    const resumed = starts.filter((s) => hole.next !== null && s.start >= hole.next.pos && reachOf(line, s).reach !== null);
    const before = resumed.length ? resumed.map((s) => s.consistentAt).sort((a, b) => Date.parse(a) - Date.parse(b))[0] : null;
    gaps.push({ after, before, missing: hole.total > BigInt(hole.names.length) ? [...hole.names, `… and ${hole.total - BigInt(hole.names.length)} more`] : hole.names });
  }
  return { earliest, latest, gaps };
}
