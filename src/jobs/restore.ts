/**
 * Restores a backup into a branch's database: read the artifact back, check its sha256
 * while it streams, decompress, and feed pg_restore / mariadb. A restore never touches
 * the source branch's database, and a failed one drops the database it created.
 */
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Artifact, Backup, Job, JobsTable } from '../catalog/schema.js';
import type { Updateable } from 'kysely';
import { nowIso } from '../catalog/ids.js';
import { engineFor, EngineError, parseConnectionUrl, type ConnectionInfo, type Engine } from '../engines/index.js';
import { decompressor, type Compression } from '../pipeline/compress.js';
import { HashCounter } from '../pipeline/hash.js';
import { ChecksumMismatchError } from '../pipeline/verify.js';
import { ageDecrypt } from '../pipeline/encrypt.js';
import { identityFilesFor, temporaryIdentityFile } from '../encryption.js';
import { recordedProperties, recordedRestoreOptions, restorePreflight } from './fidelity.js';
import { openVerifiedArtifact, readableArtifacts } from './artifacts.js';

export type JobUpdate = Updateable<JobsTable>;

/** What a restore job was asked to do; stored in `jobs.params` (no secrets). */
export interface RestoreParams {
  /** Create the database named in the branch's connection first (and drop it on failure). */
  create: boolean;
  /** Restore over existing objects (`overwrite: true` on the request). */
  overwrite: boolean;
  /** Set once the job created the database, so a crash recovery knows to drop it. */
  created?: boolean;
  /** Keep owners and privileges (`preserve_ownership: true` on the request). */
  preserve_ownership?: boolean;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Stream one artifact into `conn.database`. Errors with ChecksumMismatchError when the
 * bytes are not the ones recorded (the restore tool is stopped before the end).
 */
export async function restoreArtifact(
  ctx: AppContext,
  engine: Engine,
  backup: Backup,
  artifact: Artifact,
  conn: ConnectionInfo,
  opts: { signal: AbortSignal; clean?: boolean; preserveOwnership?: boolean; onBytes?: (n: number) => void; identityFiles: string[] },
): Promise<void> {
  const encryption = backup.encryption ? (JSON.parse(backup.encryption) as { format: string; recipients: string[] }) : null;
  if (encryption && opts.identityFiles.length === 0) throw new DecryptionError(noIdentityMessage(encryption.recipients));
  const fidelity = await recordedRestoreOptions(ctx, backup, opts.preserveOwnership === true);
  const { stream } = await openVerifiedArtifact(ctx, artifact);
  const counter = new HashCounter({ onProgress: opts.onBytes, progressIntervalMs: 1000 });
  const decrypt = encryption ? ageDecrypt(opts.identityFiles) : null;
  const unpack = decompressor(backup.compression as Compression);
  const flow = pipeline([stream, counter, ...(decrypt ? [decrypt] : []), unpack], { signal: opts.signal }).catch((e) => {
    unpack.destroy(e);
    throw e;
  });
  const [flowR, restoreR] = await Promise.allSettled([flow, engine.restore(conn, unpack, { signal: opts.signal, clean: opts.clean, ...fidelity })]);
  // A bad checksum explains whatever the restore tool then said about its cut-off input,
  // and so does an identity that cannot decrypt.
  if (flowR.status === 'rejected' && flowR.reason instanceof ChecksumMismatchError) throw flowR.reason;
  if (flowR.status === 'rejected' && encryption && /age\b.*(no identity matched|failed)/i.test(messageOf(flowR.reason))) {
    throw new DecryptionError(`cannot decrypt the backup: ${messageOf(flowR.reason)} (the backup is encrypted to ${encryption.recipients.join(', ')})`);
  }
  if (restoreR.status === 'rejected') throw restoreR.reason;
  if (flowR.status === 'rejected') throw flowR.reason;
}

/** The backup is encrypted and no identity that can decrypt it is at hand. */
export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptionError';
  }
}

function noIdentityMessage(fingerprints: string[]): string {
  return `the backup is encrypted (age, to ${fingerprints.join(', ')}) and no identity is available to decrypt it: set STRONGBOX_AGE_IDENTITY_FILE, or give "age_identity" with the request`;
}

/**
 * The identity files a job may use, for the time of `work`: the one given with its
 * request (sealed in the job, written to a private temporary file), else the server's.
 */
export async function withIdentities<T>(ctx: AppContext, job: Job, work: (files: string[]) => Promise<T>): Promise<T> {
  if (job.secret_enc === null) return work(identityFilesFor(ctx, job.organization_id));
  const tmp = temporaryIdentityFile(ctx, ctx.secrets.open(job.secret_enc));
  try {
    return await work([tmp.file]);
  } finally {
    tmp.remove();
  }
}

/** Connection info for the maintenance side of `conn`'s server (same host and user). */
function branchConnection(ctx: AppContext, sealed: string | null): ConnectionInfo {
  if (sealed === null) throw new EngineError('the branch has no connection URL');
  return parseConnectionUrl(ctx.secrets.open(sealed)).info;
}

export async function runRestore(ctx: AppContext, job: Job, signal: AbortSignal): Promise<JobUpdate> {
  const params = JSON.parse(job.params) as RestoreParams;
  const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', job.backup_id).executeTakeFirstOrThrow();
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', job.branch_id!).executeTakeFirstOrThrow();
  const engine = engineFor(backup.engine);
  const conn = branchConnection(ctx, branch.connection_url_enc);
  let created = false;
  const fail = (error: string): JobUpdate => ({ state: 'failed', error, completed_at: nowIso(ctx.clock()) });
  const preserveOwnership = params.preserve_ownership === true;
  // Notes on database properties the new database could not keep (a setting this server refuses).
  let notes: string[] = [];
  try {
    // Before anything is created or written: a statement the server would refuse, roles it lacks.
    const preflight = await restorePreflight(engine, backup, conn, preserveOwnership);
    if (preflight.length) return fail(preflight.join('; '));
    if (params.create) {
      if (await engine.databaseExists(conn, conn.database)) {
        return fail(`database "${conn.database}" already exists on ${conn.host}:${conn.port}; Strongbox never overwrites a database it did not create`);
      }
      notes = await engine.createDatabase(conn, conn.database, recordedProperties(backup));
      created = true;
      await ctx.db.updateTable('jobs').set({ params: JSON.stringify({ ...params, created: true }) }).where('id', '=', job.id).execute();
    } else if (!params.overwrite && !(await engine.databaseIsEmpty(conn))) {
      return fail(`database "${conn.database}" is not empty; restore with overwrite: true to restore over it`);
    }
    const artifacts = await readableArtifacts(ctx, backup.id);
    if (artifacts.length === 0) return await undo(fail('the backup has no stored artifact to restore from'));
    const problems: string[] = [];
    for (const artifact of artifacts) {
      signal.throwIfAborted();
      try {
        await ctx.db.updateTable('jobs').set({ total_bytes: artifact.size, bytes: 0, updated_at: nowIso(ctx.clock()) }).where('id', '=', job.id).execute();
        await withIdentities(ctx, job, (identityFiles) => restoreArtifact(ctx, engine, backup, artifact, conn, {
          signal,
          identityFiles,
          clean: params.overwrite,
          preserveOwnership,
          onBytes: (n) => void ctx.db.updateTable('jobs').set({ bytes: n, updated_at: nowIso(ctx.clock()) }).where('id', '=', job.id).execute().catch(() => {}),
        }));
        return {
          state: 'success',
          error: null,
          bytes: artifact.size,
          result: JSON.stringify({ artifact: artifact.id, destination: artifact.destination_name, problems, ...(notes.length ? { notes } : {}) }),
          completed_at: nowIso(ctx.clock()),
        };
      } catch (e) {
        if (signal.aborted) throw e;
        if (e instanceof DecryptionError) {
          problems.push(e.message);
          break;
        }
        const what = e instanceof ChecksumMismatchError ? `artifact in "${artifact.destination_name}" is corrupt: ${e.message}` : `restore from "${artifact.destination_name}" failed: ${messageOf(e)}`;
        problems.push(what);
        // Another copy may be good, but only a clean slate can take a second attempt:
        // PostgreSQL restores in one transaction; a database we created can be made anew.
        const retryable = artifacts.indexOf(artifact) < artifacts.length - 1 && (backup.engine === 'postgresql' || created);
        if (!retryable) break;
        if (created && backup.engine !== 'postgresql') {
          await engine.dropDatabase(conn, conn.database);
          await engine.createDatabase(conn, conn.database, recordedProperties(backup));
        }
      }
    }
    return await undo(fail(problems.join('; ')));
  } catch (e) {
    const reason = signal.aborted ? messageOf(signal.reason) : e instanceof EngineError ? e.message : `restore failed: ${messageOf(e)}`;
    return await undo(fail(reason));
  }

  async function undo(update: JobUpdate): Promise<JobUpdate> {
    if (!created) return update;
    try {
      await engine.dropDatabase(conn, conn.database);
      return { ...update, error: `${update.error}; the database "${conn.database}" it created was dropped` };
    } catch (e) {
      return { ...update, error: `${update.error}; dropping the database it created failed too: ${messageOf(e)}` };
    }
  }
}

/** After a crash: drop the database a restore had created, so nothing half-restored stays. */
export async function undoInterruptedRestore(ctx: AppContext, job: Job): Promise<void> {
  const params = JSON.parse(job.params) as RestoreParams;
  if (!params.created || job.branch_id === null) return;
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', job.branch_id).executeTakeFirst();
  const backup = await ctx.db.selectFrom('backups').select('engine').where('id', '=', job.backup_id).executeTakeFirst();
  if (!branch || !backup) return;
  const conn = branchConnection(ctx, branch.connection_url_enc);
  await engineFor(backup.engine).dropDatabase(conn, conn.database);
}
