/** Catalog rows → backupman JSON. */
import type { Artifact, Backup } from '../../../catalog/schema.js';
import type { BackupItemJson } from './schemas.js';

type Status = 'pending' | 'finished' | 'failed';

const ARTIFACT_STATUS: Record<Exclude<Artifact['state'], 'deleted'>, Status> = { pending: 'pending', success: 'finished', failed: 'failed' };

/**
 * backupman's rule, over the stored copies: any pending → pending, else any failed →
 * failed, else finished. The backup's own state is never contradicted: one still being
 * made is pending even when its copies are written (they are not verified yet), and one
 * that failed or was canceled is failed (also when it has no copy at all).
 */
export function backupStatus(b: Pick<Backup, 'state'>, files: Array<Pick<Artifact, 'state'>>): Status {
  const states = files.map((a) => a.state);
  if (b.state === 'pending' || b.state === 'running' || states.includes('pending')) return 'pending';
  if (b.state === 'failed' || b.state === 'canceled' || states.includes('failed')) return 'failed';
  return 'finished';
}

/** What presentBackup (and the label) read of a backup. */
export const PRESENTED_COLUMNS = ['id', 'state', 'branch_id', 'database_id', 'created_at', 'updated_at'] as const;

/** What presentBackup reads of a stored copy. */
export const PRESENTED_ARTIFACT_COLUMNS = ['id', 'backup_id', 'provider', 'path', 'state', 'created_at', 'updated_at'] as const;

export function presentBackup(b: Pick<Backup, (typeof PRESENTED_COLUMNS)[number]>, label: string, files: Array<Pick<Artifact, (typeof PRESENTED_ARTIFACT_COLUMNS)[number]>>, dumpPath: string | null): BackupItemJson {
  const live = files.filter((a) => a.state !== 'deleted');
  return {
    Id: b.id,
    Status: backupStatus(b, live),
    Label: label,
    DumpPath: dumpPath,
    CreatedAt: b.created_at,
    UpdatedAt: b.updated_at,
    DriveFiles: live.map((a) => ({
      Id: a.id,
      BackupId: a.backup_id,
      Provider: a.provider,
      Label: a.path.split('/').pop() ?? a.path,
      Path: a.path,
      Status: ARTIFACT_STATUS[a.state as Exclude<Artifact['state'], 'deleted'>],
      CreatedAt: a.created_at,
      UpdatedAt: a.updated_at,
    })),
  };
}
