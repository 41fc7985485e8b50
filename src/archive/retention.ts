/**
 * Retention of archived files: a WAL segment (binlog file) is only worth keeping while a
 * kept backup can replay it. For each branch, everything before the start of its oldest
 * kept base backup (PostgreSQL) or dump with binlog coordinates (MariaDB/MySQL) is
 * removed from every destination, manifests included, and marked deleted. A branch with no
 * such backup keeps its whole archive: nothing says what may go. Timeline history files
 * are tiny and kept.
 */
import type { AppContext } from '../context.js';
import type { ArchiveFile } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { archiveManifestKey } from './layout.js';
import { parseLsn, SEGMENT_RE, segmentName } from './postgres/tools.js';

const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

/** What the oldest kept backup of a branch needs first: a WAL segment's number part (name from char 8), or a binlog file name. */
async function oldestNeeded(ctx: AppContext, branchId: string, kind: 'wal' | 'binlog', segmentSize: number): Promise<string | null> {
  const kept = await ctx.db
    .selectFrom('backups')
    .select(['recovery_start', 'method'])
    .where('branch_id', '=', branchId)
    .where('deleted_at', 'is', null)
    .where('state', '=', 'success')
    .where('recovery_start', 'is not', null)
    .execute();
  let oldest: string | null = null;
  for (const b of kept) {
    let rs: Record<string, unknown>;
    try {
      rs = JSON.parse(b.recovery_start!) as Record<string, unknown>;
    } catch {
      // A kept backup whose start cannot be read: nothing may be removed on its account.
      return null;
    }
    let key: string | null = null;
    if (kind === 'wal' && b.method === 'base' && typeof rs.lsn === 'string') key = segmentName(1, parseLsn(rs.lsn), segmentSize).slice(8);
    if (kind === 'binlog' && b.method !== 'base' && typeof rs.file === 'string') key = rs.file;
    if (key === null) continue;
    if (oldest === null || key < oldest) oldest = key;
  }
  return oldest;
}

/** The segment size of a branch's WAL archive (from any segment's LSN range). */
function segmentSizeOf(files: ArchiveFile[]): number {
  for (const f of files) {
    if (f.start_lsn && f.end_lsn) {
      const n = Number(parseLsn(f.end_lsn) - parseLsn(f.start_lsn));
      if (n > 0) return n;
    }
  }
  return DEFAULT_SEGMENT_SIZE;
}

/** Remove one archived file from every destination; true once no stored copy is left. */
async function removeFile(ctx: AppContext, file: ArchiveFile): Promise<boolean> {
  const copies = await ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).where('state', '!=', 'deleted').execute();
  let left = 0;
  for (const c of copies) {
    try {
      if (c.state === 'success') {
        const { provider } = await openDestinationById(ctx, c.destination_id);
        await provider.delete(c.path);
        await provider.delete(archiveManifestKey(c.path));
      }
      await ctx.db.updateTable('archive_copies').set({ state: 'deleted', updated_at: nowIso(ctx.clock()) }).where('id', '=', c.id).execute();
    } catch (e) {
      left++;
      ctx.log.warn({ err: e, file: file.name, destination: c.destination_name }, 'could not remove an archived file; retention tries again next time');
    }
  }
  if (left > 0) return false;
  const now = nowIso(ctx.clock());
  await ctx.db.updateTable('archive_files').set({ state: 'deleted', deleted_at: now }).where('id', '=', file.id).execute();
  return true;
}

/** One retention pass over every archived branch; returns the names of the files removed. */
export async function sweepArchive(ctx: AppContext): Promise<string[]> {
  const removed: string[] = [];
  const branches = await ctx.db.selectFrom('archive_files').select(['branch_id', 'kind']).where('state', '=', 'success').groupBy(['branch_id', 'kind']).execute();
  for (const { branch_id: branchId, kind } of branches) {
    const files = await ctx.db.selectFrom('archive_files').selectAll().where('branch_id', '=', branchId).where('kind', '=', kind).where('state', '=', 'success').orderBy('name').execute();
    const needed = await oldestNeeded(ctx, branchId, kind, kind === 'wal' ? segmentSizeOf(files) : DEFAULT_SEGMENT_SIZE);
    if (needed === null) continue;
    for (const f of files) {
      const key = kind === 'wal' ? (SEGMENT_RE.test(f.name) ? f.name.slice(8) : null) : f.name;
      if (key === null || key >= needed) continue;
      if (await removeFile(ctx, f)) removed.push(f.name);
    }
  }
  if (removed.length) ctx.log.info({ count: removed.length }, 'retention: removed archived WAL/binlog files no kept backup needs');
  return removed;
}
