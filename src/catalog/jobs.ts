/** Restore and verification jobs: the one place that builds a job row. */
import type { CatalogDb } from './db.js';
import type { Job, JobKind } from './schema.js';
import { newId, nowIso } from './ids.js';

export function newJob(input: {
  organizationId: string;
  kind: JobKind;
  backupId: string;
  branchId?: string | null;
  params: object;
  actorId: string | null;
  now: Date;
  /** A sealed secret the job needs (see secrets.ts); cleared when the job ends. */
  secretEnc?: string | null;
}): Job {
  const now = nowIso(input.now);
  return {
    id: newId(),
    organization_id: input.organizationId,
    kind: input.kind,
    backup_id: input.backupId,
    branch_id: input.branchId ?? null,
    state: 'pending',
    params: JSON.stringify(input.params),
    result: null,
    error: null,
    bytes: 0,
    total_bytes: 0,
    actor_id: input.actorId,
    created_at: now,
    updated_at: now,
    started_at: null,
    completed_at: null,
    lease_owner: null,
    lease_expires_at: null,
    attempts: 0,
    cancel_requested: 0,
    secret_enc: input.secretEnc ?? null,
  };
}

export async function insertJob(db: CatalogDb, job: Job): Promise<Job> {
  await db.insertInto('jobs').values(job).execute();
  return job;
}
