/**
 * Restores a backup into a branch's database: read the artifact back, check its sha256
 * while it streams, decompress, and feed pg_restore / mariadb. A restore never touches
 * the source branch's database, and a failed one drops the database it created.
 */
import dns from 'node:dns/promises';
import fs from 'node:fs';
import type { AppContext } from '../context.js';
import type { Artifact, Backup, Branch, Job, JobsTable } from '../catalog/schema.js';
import type { Updateable } from 'kysely';
import { nowIso } from '../catalog/ids.js';
import { engineFor, EngineError, parseConnectionUrl, sameDatabase, type ConnectionInfo, type Engine, type EngineKind } from '../engines/index.js';
import type { Compression } from '../pipeline/compress.js';
import { unpackStream } from '../pipeline/unpack.js';
import { ChecksumMismatchError } from '../pipeline/verify.js';
import { identityFilesFor, temporaryIdentityFile } from '../encryption.js';
import { recordedProperties, recordedRestoreOptions, restorePreflight } from './fidelity.js';
import { copyDamage, markDamaged, openVerifiedArtifact, readableCopies } from './artifacts.js';
import { runPointInTimeRestore } from '../archive/pitr.js';
import { restoreParts } from './parallel-restore.js';
import { captureToc, type TocPrefix } from './restore-toc.js';
import { restorePostDataFile } from '../engines/postgres/parallel.js';

export type JobUpdate = Updateable<JobsTable>;

/** What a restore job was asked to do; stored in `jobs.params` (no secrets). */
export interface RestoreParams {
  /** Create the database named in the branch's connection first (and drop it on failure). */
  create: boolean;
  /** Restore over existing objects (`overwrite: true` on the request). */
  overwrite: boolean;
  /** Set just before the job creates the database, so a crash recovery knows to drop it (if it exists). */
  created?: boolean;
  /** Keep owners and privileges (`preserve_ownership: true` on the request). */
  preserve_ownership?: boolean;
  /** Point-in-time restore (archive/pitr.ts): replay the archive up to this ISO time, or 'latest'. */
  restore_point?: string;
  /** Point-in-time restore of PostgreSQL: deliver the recovered data directory here instead of a database. */
  target_data_dir?: string;
  /** Set before a recovered data directory is copied to target_data_dir, so a crash recovery removes a partial copy. */
  created_dir?: boolean;
  /** A parallel backup (jobs/parallel-restore.ts): data parts loaded at a time, pg_restore -j for post-data (`jobs` on the request). */
  jobs?: number;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Stream one artifact into `conn.database`. Errors with DamagedCopyError when the stored
 * bytes are not the ones recorded (the restore tool is stopped before the end), with
 * DecryptionError when the copy is intact but no identity at hand decrypts it.
 */
export async function restoreArtifact(
  ctx: AppContext,
  engine: Engine,
  backup: Backup,
  artifact: Artifact,
  conn: ConnectionInfo,
  opts: { signal: AbortSignal; clean?: boolean; preserveOwnership?: boolean; onBytes?: (n: number) => void; identityFiles: string[]; jobs?: number },
): Promise<void> {
  // A parallel backup's copy is its parts, restored part by part (jobs/parallel-restore.ts).
  if (artifact.parts !== null) {
    if (opts.clean) throw new Error('a parallel backup cannot be restored over an existing database (overwrite) yet: restore it into a new or empty database');
    return restoreParts(ctx, backup, artifact, conn, { signal: opts.signal, jobs: opts.jobs ?? 1, preserveOwnership: opts.preserveOwnership, identityFiles: opts.identityFiles, onBytes: opts.onBytes });
  }
  const encryption = backup.encryption ? (JSON.parse(backup.encryption) as { format: string; recipients: string[] }) : null;
  if (encryption && opts.identityFiles.length === 0) throw new DecryptionError(noIdentityMessage(encryption.recipients));
  const fidelity = await recordedRestoreOptions(ctx, backup, opts.preserveOwnership === true);
  // PostgreSQL with jobs > 1: rows in one stream, then indexes and constraints built N at a
  // time from the archive's table of contents (restore-toc.ts). Not over an existing database:
  // the two steps are not one transaction.
  const jobs = Math.max(1, Math.floor(opts.jobs ?? 1));
  const toc = jobs > 1 && engine.kind === 'postgresql' && backup.method !== 'base' && !opts.clean ? await captureToc(ctx, backup, artifact, { identityFiles: opts.identityFiles, signal: opts.signal }) : null;
  try {
    await restoreStream(ctx, engine, backup, artifact, conn, opts, fidelity, encryption, toc);
    if (toc === null) return;
    if (toc.matched !== true) throw new Error(`the copy in "${artifact.destination_name}" changed between two reads of its start (its table of contents): restore again`);
    await restorePostDataFile(conn, toc.file, jobs, { signal: opts.signal, preserveOwnership: fidelity.preserveOwnership });
    ctx.log.info({ backup: backup.id, jobs }, 'indexes, constraints and triggers built in parallel (pg_restore -j) from the table of contents');
  } finally {
    toc?.remove();
  }
}

/** The copy's one stream into the restore tool (with `toc`: pre-data and data only). */
async function restoreStream(
  ctx: AppContext,
  engine: Engine,
  backup: Backup,
  artifact: Artifact,
  conn: ConnectionInfo,
  opts: { signal: AbortSignal; clean?: boolean; onBytes?: (n: number) => void; identityFiles: string[] },
  fidelity: Awaited<ReturnType<typeof recordedRestoreOptions>>,
  encryption: { format: string; recipients: string[] } | null,
  toc: TocPrefix | null,
): Promise<void> {
  const opened = await openVerifiedArtifact(ctx, artifact);
  const stream = toc === null ? opened.stream : opened.stream.pipe(toc.check());
  if (toc !== null) {
    opened.stream.on('error', (e) => stream.destroy(e));
    stream.on('close', () => opened.stream.destroy());
  }
  // The stored bytes are checked (openVerifiedArtifact's stream) and counted for progress
  // here; age, zstd and the restore tool pipe into each other (pipeline/unpack.ts).
  const unpack = unpackStream(stream, {
    compression: backup.compression as Compression,
    identityFiles: encryption ? opts.identityFiles : [],
    signal: opts.signal,
    onBytes: opts.onBytes,
    progressIntervalMs: 1000,
  });
  const restoring = engine
    .restore(conn, unpack.readable, { signal: opts.signal, clean: opts.clean, ...fidelity, pipeTo: unpack.pipeTo, ...(toc !== null ? { sections: ['pre-data', 'data'] as Array<'pre-data' | 'data'> } : {}) })
    .finally(() => unpack.abandon());
  const [flowR, restoreR] = await Promise.allSettled([unpack.done, restoring]);
  // A flow that completed let every byte through the sha256 check: the copy is intact and
  // the restore tool's error is the whole story.
  if (flowR.status === 'fulfilled') {
    if (restoreR.status === 'rejected') throw restoreR.reason;
    return;
  }
  opts.signal.throwIfAborted();
  // The tool failed before it read anything (no client for this server, a server that is down).
  if (restoreR.status === 'rejected' && !unpack.started) throw restoreR.reason;
  // The flow broke off. Damage explains whatever age, zstd or the restore tool said after
  // it. The stored copy is read to its end even when a process failed, so the sha256 check
  // has usually spoken (age reports a damaged recipient stanza even as "no identity
  // matched"); only when it could not (a read error) is the copy read again whole.
  if (flowR.reason instanceof ChecksumMismatchError) throw new DamagedCopyError(artifact, flowR.reason.message);
  let damage: string | null = null;
  if (!unpack.inputVerified) {
    try {
      damage = await copyDamage(ctx, artifact, opts.signal);
    } catch (e) {
      opts.signal.throwIfAborted();
      throw new Error(`${messageOf(restoreR.status === 'rejected' ? restoreR.reason : flowR.reason)}; reading the copy again to check it failed too: ${messageOf(e)}`);
    }
  }
  if (damage !== null) {
    await markDamaged(ctx, artifact, damage);
    throw new DamagedCopyError(artifact, damage);
  }
  if (encryption && /no identity matched any of the recipients/i.test(messageOf(flowR.reason))) {
    throw new DecryptionError(`cannot decrypt the backup: no identity matches (it is encrypted to ${encryption.recipients.join(', ')}; the copy in "${artifact.destination_name}" is intact)`);
  }
  if (restoreR.status === 'rejected') throw restoreR.reason;
  throw flowR.reason;
}

/** A stored copy whose bytes are not the ones written; another copy may still be good. */
export class DamagedCopyError extends Error {
  constructor(artifact: Artifact, detail: string) {
    super(`copy in "${artifact.destination_name}" is damaged: ${detail}`);
    this.name = 'DamagedCopyError';
  }
}

/**
 * The backup is encrypted and no identity that can decrypt it is at hand. Every copy is
 * the same ciphertext, so no other copy can help.
 */
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

/** "loopback" for every address of this machine's loopback, so 127.0.0.1, ::1 and ::ffff:127.0.0.1 compare equal. */
function addressKey(address: string): string {
  return /^(127\.|::1$|::ffff:127\.)/i.test(address) ? 'loopback' : address.toLowerCase();
}

async function addressesOf(host: string): Promise<Set<string>> {
  try {
    return new Set((await dns.lookup(host, { all: true })).map((a) => addressKey(a.address)));
  } catch {
    return new Set([addressKey(host)]);
  }
}

/**
 * Why `target` is the backup's own source database (branch `source`) and must not be
 * restored into, or null. The servers decide (engines/identity.ts), never the spelling of
 * the URLs. Only when they cannot be asked (the source server may be gone: what backups
 * are for) are the host names resolved and compared as addresses, with the port and name.
 */
export async function sourceConflict(ctx: AppContext, kind: EngineKind, source: Branch, target: ConnectionInfo): Promise<string | null> {
  const refusal = `that is the backup's own source database ("${source.conn_database}" of branch "${source.name}", reached by another name); a restore never writes into its source`;
  if (source.connection_url_enc !== null) {
    const from = parseConnectionUrl(ctx.secrets.open(source.connection_url_enc)).info;
    try {
      return (await sameDatabase(kind, from, target)) ? refusal : null;
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      ctx.log.info({ branch: source.id, err: e.message }, 'cannot ask the servers whether a restore target is the source; comparing addresses');
    }
  }
  if (!source.conn_host || source.conn_port !== target.port || source.conn_database !== target.database) return null;
  const [a, b] = [await addressesOf(source.conn_host), await addressesOf(target.host)];
  return [...a].some((x) => b.has(x)) ? refusal : null;
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
  // A restore point, or a base backup (which only a replay can restore): archive/pitr.ts
  // fetches and replays; the target database is checked and made here as for a dump.
  const pointInTime = params.restore_point !== undefined || params.target_data_dir !== undefined || backup.method === 'base';
  if (pointInTime && params.target_data_dir !== undefined) {
    // A recovered data directory: no database to make or check.
    try {
      await runPointInTimeRestore(ctx, job, signal);
      return { state: 'success', error: null, result: JSON.stringify({ restore_point: params.restore_point ?? null, target_data_dir: params.target_data_dir }), completed_at: nowIso(ctx.clock()) };
    } catch (e) {
      return { state: 'failed', error: signal.aborted ? messageOf(signal.reason) : messageOf(e), completed_at: nowIso(ctx.clock()) };
    }
  }
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
      // Recorded before the database exists: a process killed between CREATE DATABASE and
      // a record made after it would leave a database that recovery does not know to drop.
      // (The name was just checked to be free; it is the new branch's own.)
      await ctx.db.updateTable('jobs').set({ params: JSON.stringify({ ...params, created: true }) }).where('id', '=', job.id).execute();
      notes = await engine.createDatabase(conn, conn.database, recordedProperties(backup));
      created = true;
    } else {
      // Checked again here, before anything is written: the request was checked when it was
      // made, but URLs and servers may have changed since.
      const source = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirst();
      const clash = source ? await sourceConflict(ctx, backup.engine, source, conn) : null;
      if (clash) return fail(`refused: ${clash}`);
      if (!params.overwrite && !(await engine.databaseIsEmpty(conn))) {
        return fail(`database "${conn.database}" is not empty; restore with overwrite: true to restore over it`);
      }
    }
    if (pointInTime) {
      try {
        await runPointInTimeRestore(ctx, job, signal);
      } catch (e) {
        if (signal.aborted) throw e;
        return await undo(fail(messageOf(e)));
      }
      return { state: 'success', error: null, result: JSON.stringify({ restore_point: params.restore_point ?? null, ...(notes.length ? { notes } : {}) }), completed_at: nowIso(ctx.clock()) };
    }
    const { copies: artifacts, refusal } = await readableCopies(ctx, backup);
    if (refusal !== null) return await undo(fail(refusal));
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
          jobs: params.jobs,
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
        problems.push(e instanceof DamagedCopyError ? e.message : `restore from the copy in "${artifact.destination_name}" failed: ${messageOf(e)}`);
        ctx.log.warn({ job: job.id, artifact: artifact.id, problem: problems[problems.length - 1] }, 'a restore attempt failed; trying the next copy if there is one');
        if (artifacts.indexOf(artifact) === artifacts.length - 1) break;
        // The next copy lands on a clean slate: PostgreSQL restores in one transaction, so
        // nothing of this attempt stayed; a MariaDB dump drops every object (tables, views,
        // routines, events) before creating it, so it lands cleanly over a partial attempt;
        // a database Strongbox created is simply made anew.
        // A parallel backup's parts are not one transaction: what the failed attempt restored
        // stays, so only a database Strongbox created can be made anew for the next copy.
        if (artifact.parts !== null && !created) break;
        if (created && (backup.engine !== 'postgresql' || artifact.parts !== null)) {
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
  // A recovered data directory half copied to its target (the job made that folder).
  if (params.created_dir && params.target_data_dir) fs.rmSync(params.target_data_dir, { recursive: true, force: true });
  if (!params.created || job.branch_id === null) return;
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', job.branch_id).executeTakeFirst();
  const backup = await ctx.db.selectFrom('backups').select('engine').where('id', '=', job.backup_id).executeTakeFirst();
  if (!branch || !backup) return;
  const conn = branchConnection(ctx, branch.connection_url_enc);
  await engineFor(backup.engine).dropDatabase(conn, conn.database);
}
