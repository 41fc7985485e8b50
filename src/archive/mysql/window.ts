/**
 * The recovery window of an archived MariaDB/MySQL branch: the binlog files in the archive
 * as one line by their number (sequence.ts), joined by every kept dump that recorded its
 * binlog coordinates. Earliest: the oldest such dump's snapshot; latest: as far as the
 * binlogs from a dump run without a missing file; gaps: the missing file names.
 *
 * Binlog events are dated to the whole second, and a restore to T replays every event the
 * binlog dates at or before T's second (pitr.ts). An archived file's last event (its Rotate)
 * shares its second with the first events of the next file, so where the next file is not
 * archived (the one the server is writing, or a missing one) the window ends just before
 * that second: a restore to it would need events that are not in the archive.
 */
import type { AppContext } from '../../context.js';
import type { Branch } from '../../catalog/schema.js';
import { archiveLine, archivedFiles } from '../sequence.js';
import { replayStarts, windowOf, type RecoveryWindow } from '../window.js';

/** The second before the second of `iso` (its last millisecond), never before `floor`. */
function beforeSecondOf(iso: string | null, floor: string | null): string | null {
  if (iso === null) return null;
  const t = Math.floor(Date.parse(iso) / 1000) * 1000 - 1;
  const min = floor === null ? -Infinity : Date.parse(floor);
  return new Date(Math.max(t, min)).toISOString();
}

export async function mysqlRecoveryWindow(ctx: AppContext, branch: Branch): Promise<RecoveryWindow> {
  const line = archiveLine('binlog', await archivedFiles(ctx, branch, 'binlog'));
  const w = windowOf(line, await replayStarts(ctx, branch, line));
  return {
    earliest: w.earliest,
    latest: beforeSecondOf(w.latest, w.earliest),
    gaps: w.gaps.map((g) => ({ ...g, after: beforeSecondOf(g.after, w.earliest) })),
  };
}
