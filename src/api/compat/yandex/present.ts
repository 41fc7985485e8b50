/** Catalog rows → Yandex Cloud JSON (Backup, Operation, Cluster). The only place that knows both shapes. */
import type { Backup, Branch, Job } from '../../../catalog/schema.js';
import type { CatalogDb } from '../../../catalog/db.js';
import { parseLsn, SEGMENT_RE, segmentName } from '../../../archive/postgres/tools.js';
import type { BackupJson, OperationJson } from './schemas.js';
import { GRPC } from './errors.js';

export type Engine = 'postgresql' | 'mysql';

/** The proto package of each engine's messages, for "@type" URLs. */
function typeUrl(engine: Engine, message: string): string {
  return `type.googleapis.com/yandex.cloud.mdb.${engine}.v1.${message}`;
}

const ENGINE_NAME: Record<Engine, string> = { postgresql: 'PostgreSQL', mysql: 'MySQL' };

/** Backups a Yandex client ever sees: the ones that exist or are being made. */
export const LISTED_STATES = ['pending', 'running', 'success'] as const;

export function isListed(b: Backup): boolean {
  return b.deleted_at === null && (LISTED_STATES as readonly string[]).includes(b.state);
}

/**
 * journalSize of backups that start a replay: the bytes (as stored) of the WAL segments
 * (binlog files) archived from a base backup's start (a dump's binlog coordinates) up to the
 * next such backup's start, or to the end of the archive for the newest. Others: absent.
 *
 * Computed for the asked backups only, over the branch's files sorted once with running
 * sums (a look-up of two positions each), not by filtering every file for every start of the
 * branch (which grew as starts × files: seconds for a branch with years of archive).
 */
export async function journalSizes(db: CatalogDb, backups: Array<Pick<Backup, 'id' | 'branch_id' | 'recovery_start'>>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const asked = new Set(backups.filter((b) => b.recovery_start !== null).map((b) => b.id));
  const branchIds = [...new Set(backups.filter((b) => b.recovery_start !== null).map((b) => b.branch_id))];
  for (const branchId of branchIds) {
    const files = await db.selectFrom('archive_files').select(['kind', 'name', 'size', 'start_lsn', 'end_lsn']).where('branch_id', '=', branchId).where('state', '=', 'success').execute();
    if (files.length === 0) continue;
    const starts = await db.selectFrom('backups').select(['id', 'method', 'recovery_start']).where('branch_id', '=', branchId).where('deleted_at', 'is', null).where('state', '=', 'success').where('recovery_start', 'is not', null).execute();
    const sized = files.find((f) => f.start_lsn && f.end_lsn);
    const segmentSize = sized ? Number(parseLsn(sized.end_lsn!) - parseLsn(sized.start_lsn!)) : 16 * 1024 * 1024;
    // Each file and each start as a comparable key: a segment's number (its name after the
    // timeline), or a binlog file's name.
    const keyed = files
      .map((f) => ({ key: f.kind === 'wal' ? (SEGMENT_RE.test(f.name) ? f.name.slice(8) : null) : f.name, size: Number(f.size) }))
      .filter((f): f is { key: string; size: number } => f.key !== null)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // below[i]: the bytes of the i files with the smallest keys.
    const below = [0];
    for (const f of keyed) below.push(below[below.length - 1] + f.size);
    /** How many files have a key below `key` (all of them for null: no upper end). */
    const countBelow = (key: string | null) => {
      if (key === null) return keyed.length;
      let lo = 0;
      let hi = keyed.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keyed[mid].key < key) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const points: Array<{ id: string; key: string }> = [];
    for (const b of starts) {
      try {
        const rs = JSON.parse(b.recovery_start!) as Record<string, unknown>;
        if (b.method === 'base' && typeof rs.lsn === 'string') points.push({ id: b.id, key: segmentName(1, parseLsn(rs.lsn), segmentSize).slice(8) });
        else if (typeof rs.file === 'string') points.push({ id: b.id, key: rs.file });
      } catch {
        /* unreadable: no journal of its own */
      }
    }
    points.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    points.forEach((p, i) => {
      if (!asked.has(p.id)) return;
      let next: string | null = null;
      for (let j = i + 1; j < points.length && next === null; j++) if (points[j].key > p.key) next = points[j].key;
      // The files with p.key <= key < next.
      out.set(p.id, below[countBelow(next)] - below[countBelow(p.key)]);
    });
  }
  return out;
}

/** What presentBackup reads of a backup. */
export const PRESENTED_COLUMNS = ['id', 'organization_id', 'branch_id', 'state', 'created_at', 'started_at', 'completed_at', 'size', 'backup_policy_id', 'method'] as const;
export type PresentedBackup = Pick<Backup, (typeof PRESENTED_COLUMNS)[number]>;

export function presentBackup(engine: Engine, b: PresentedBackup, journalSize = 0): BackupJson {
  const done = b.state === 'success';
  return {
    id: b.id,
    folderId: b.organization_id,
    // Yandex's createdAt is when the backup COMPLETED; until then, when it was asked for.
    createdAt: done ? (b.completed_at ?? b.created_at) : b.created_at,
    sourceClusterId: b.branch_id,
    startedAt: b.started_at ?? b.created_at,
    size: String(b.size),
    type: b.backup_policy_id !== null ? 'AUTOMATED' : 'MANUAL',
    // A dump or a pg_basebackup is a full (BASE) backup; INCREMENTAL is for physical incremental ones.
    ...(engine === 'postgresql' ? { method: b.method === 'incremental' ? ('INCREMENTAL' as const) : ('BASE' as const) } : {}),
    journalSize: String(journalSize),
    status: done ? 'DONE' : 'CREATING',
  };
}

/** Operation ids say what they are about: the id of the backup, or of the restore job. */
export const OPERATION_PREFIX = { backup: 'bk-', restore: 'rs-', delete: 'dl-' } as const;

/** Cluster.Backup: done once the backup left pending/running. */
export function backupOperation(engine: Engine, b: Backup): OperationJson {
  const done = b.state !== 'pending' && b.state !== 'running';
  const op: OperationJson = {
    id: OPERATION_PREFIX.backup + b.id,
    description: `Create a backup for ${ENGINE_NAME[engine]} cluster`,
    createdAt: b.created_at,
    createdBy: b.actor_id ?? '',
    modifiedAt: b.updated_at,
    done,
    metadata: { '@type': typeUrl(engine, 'BackupClusterMetadata'), clusterId: b.branch_id, backupId: b.id },
  };
  if (!done) return op;
  if (b.state === 'success') op.response = { '@type': typeUrl(engine, 'Backup'), ...presentBackup(engine, b) };
  else op.error = { code: backupErrorCode(b.state), message: b.error ?? `the backup ${b.state === 'ignored' ? 'was skipped' : b.state}`, details: [] };
  return op;
}

/** gRPC codes of the ways a backup can end badly: CANCELLED, ABORTED (skipped: the cluster was busy), INTERNAL. */
function backupErrorCode(state: Backup['state']): number {
  if (state === 'canceled') return GRPC.CANCELLED;
  if (state === 'ignored') return GRPC.ABORTED;
  return GRPC.INTERNAL;
}

/** Cluster.Restore: done once the restore job ended; its response is the new cluster. */
export function restoreOperation(engine: Engine, job: Job, branch: Branch): OperationJson {
  const done = job.state !== 'pending' && job.state !== 'running';
  const op: OperationJson = {
    id: OPERATION_PREFIX.restore + job.id,
    description: `Create new ${ENGINE_NAME[engine]} cluster from the backup`,
    createdAt: job.created_at,
    createdBy: job.actor_id ?? '',
    modifiedAt: job.updated_at,
    done,
    metadata: { '@type': typeUrl(engine, 'RestoreClusterMetadata'), clusterId: branch.id, backupId: job.backup_id },
  };
  if (!done) return op;
  if (job.state === 'success') {
    op.response = { '@type': typeUrl(engine, 'Cluster'), id: branch.id, folderId: branch.organization_id, name: branch.name, status: 'RUNNING' };
  } else {
    op.error = { code: job.state === 'canceled' ? GRPC.CANCELLED : GRPC.INTERNAL, message: job.error ?? `the restore ${job.state}`, details: [] };
  }
  return op;
}

/** Backup.Delete: the backup is gone (its artifacts removed) by the time the call answers. */
export function deleteOperation(engine: Engine, b: Backup, createdBy: string): OperationJson {
  const at = b.deleted_at ?? b.updated_at;
  return {
    id: OPERATION_PREFIX.delete + b.id,
    description: `Delete ${ENGINE_NAME[engine]} backup`,
    createdAt: at,
    createdBy,
    modifiedAt: at,
    done: true,
    metadata: { '@type': typeUrl(engine, 'DeleteBackupMetadata'), backupId: b.id, folderId: b.organization_id },
    response: { '@type': 'type.googleapis.com/google.protobuf.Empty' },
  };
}
