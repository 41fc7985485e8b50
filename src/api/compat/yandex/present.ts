/** Catalog rows → Yandex Cloud JSON (Backup, Operation, Cluster). The only place that knows both shapes. */
import type { Backup, Branch, Job } from '../../../catalog/schema.js';
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

export function presentBackup(engine: Engine, b: Backup): BackupJson {
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
    // A dump is always a full (base) backup; INCREMENTAL is for physical incremental ones.
    ...(engine === 'postgresql' ? { method: 'BASE' as const } : {}),
    journalSize: '0',
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
