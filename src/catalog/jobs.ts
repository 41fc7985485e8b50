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
  /** A restore drill: the policy that scheduled it and its unique key. */
  policyId?: string | null;
  drillKey?: string | null;
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
    scratch_database: null,
    policy_id: input.policyId ?? null,
    drill_key: input.drillKey ?? null,
  };
}

export async function insertJob(db: CatalogDb, job: Job): Promise<Job> {
  await db.insertInto('jobs').values(job).execute();
  return job;
}

/** Whether a restore into this branch is still pending or running (its database is not whole yet). */
export async function restoreInProgress(db: CatalogDb, branch: { restore_job_id: string | null }): Promise<boolean> {
  if (branch.restore_job_id === null) return false;
  const job = await db.selectFrom('jobs').select('state').where('id', '=', branch.restore_job_id).executeTakeFirst();
  return job !== undefined && (job.state === 'pending' || job.state === 'running');
}
