/**
 * Point-in-time restore of a PostgreSQL branch: the base backup is unpacked into a scratch
 * data directory, every WAL segment of the plan is fetched beside it, and a temporary server
 * (server.ts) replays them up to the target (recovery_target_time, inclusive; or to the end
 * of the archive for "latest"; or to the base backup's own end) and is promoted. Then the
 * branch's database is copied out of it (pg_dump | pg_restore) into the restore's target
 * database, or, for disaster recovery, the recovered data directory itself is moved to
 * `target_data_dir`.
 *
 * Every segment is fetched before the server starts: restore_command is a plain `cp` from
 * the scratch folder, so no credential (storage keys, age identities) ever reaches the
 * server, its settings or a process argument. Whether the replay really reached the target
 * is checked in the server's log and with pg_last_xact_replay_timestamp(): a replay that
 * ended early fails the restore, never delivers an earlier state.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { AppContext } from '../../context.js';
import type { ArchiveFile, Backup, Job } from '../../catalog/schema.js';
import { nowIso } from '../../catalog/ids.js';
import { engineFor, EngineError, parseConnectionUrl, type ConnectionInfo } from '../../engines/index.js';
import { openClient } from '../../engines/postgres/index.js';
import { decompressor, type Compression } from '../../pipeline/compress.js';
import { ageDecrypt } from '../../pipeline/encrypt.js';
import { HashCounter } from '../../pipeline/hash.js';
import { openVerifiedArtifact, readableCopies } from '../../jobs/artifacts.js';
import { recordedProperties } from '../../jobs/fidelity.js';
import { DecryptionError, withIdentities, type RestoreParams } from '../../jobs/restore.js';
import { fetchArchiveFile } from '../fetch.js';
import { BACKUP_END, type PitrParams, type PitrPlan } from '../pitr.js';
import { lastEventOf } from '../sequence.js';
import { isSegmentName, parseLsn, parseSegmentName } from './wal.js';
import { copyRestoreCommand, ensureScratchRoot, giveToServer, pitrScratchDir, removeScratch, serverBinDir, serverOwner, socketPort, startRecoveryServer, type RecoveryServer } from './server.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The restore job's progress: bytes read back from storage, and the phase it is in. */
class Progress {
  #bytesBefore = 0;
  #current = 0;
  #last = 0;
  constructor(
    private readonly ctx: AppContext,
    private readonly jobId: string,
  ) {}

  async phase(phase: string, totalBytes?: number): Promise<void> {
    this.ctx.log.info({ job: this.jobId, phase }, 'point-in-time restore');
    const set: Record<string, unknown> = { result: JSON.stringify({ phase }), updated_at: nowIso(this.ctx.clock()) };
    if (totalBytes !== undefined) set.total_bytes = totalBytes;
    await this.ctx.db.updateTable('jobs').set(set).where('id', '=', this.jobId).execute();
  }

  /** `n` bytes of the current file read so far. */
  bytes(n: number): void {
    this.#current = n;
    const now = Date.now();
    if (now - this.#last < 1000) return;
    this.#last = now;
    void this.ctx.db
      .updateTable('jobs')
      .set({ bytes: this.#bytesBefore + n, updated_at: nowIso(this.ctx.clock()) })
      .where('id', '=', this.jobId)
      .execute()
      .catch(() => {});
  }

  /** The current file is done; the next one counts from here. */
  next(): void {
    this.#bytesBefore += this.#current;
    this.#current = 0;
  }
}

/** How the replay ends. */
type Stop = { kind: 'time'; at: string } | { kind: 'end'; notAfter: string | null } | { kind: 'backup-end' };

function stopOf(plan: PitrPlan): Stop {
  if (plan.targetTime === BACKUP_END) return { kind: 'backup-end' };
  if (plan.targetTime === 'latest') return { kind: 'end', notAfter: null };
  const t = Date.parse(plan.targetTime);
  // No archived commit after the target: the whole archive is replayed (PostgreSQL stops at
  // a time only on a later commit), and the last commit replayed must not be after it.
  const later = plan.files.some((f) => f.last_event_at !== null && Date.parse(f.last_event_at) > t);
  return later ? { kind: 'time', at: plan.targetTime } : { kind: 'end', notAfter: plan.targetTime };
}

function recoverySettings(stop: Stop, walDir: string): Record<string, string> {
  const s: Record<string, string> = { restore_command: copyRestoreCommand(walDir), recovery_target_timeline: 'latest', recovery_target_action: 'promote' };
  // "2024-05-01 13:45:00.123+00": the setting's own check refuses ISO's "T…Z" form.
  if (stop.kind === 'time') Object.assign(s, { recovery_target_time: stop.at.replace('T', ' ').replace(/Z$/, '+00'), recovery_target_inclusive: 'on' });
  if (stop.kind === 'backup-end') s.recovery_target = 'immediate';
  return s;
}

/**
 * Restore `plan` for restore job `job`: into the (existing, empty) database of the job's
 * branch (or `into`, a restore drill's scratch database), or into `target_data_dir`. Throws with a clear message on any failure; the scratch
 * folder and the temporary server are gone when it returns or throws.
 */
export async function restorePostgresToPoint(ctx: AppContext, job: Job, plan: PitrPlan, signal: AbortSignal, into?: ConnectionInfo): Promise<void> {
  const params = JSON.parse(job.params) as RestoreParams & PitrParams;
  const scratch = pitrScratchDir(ctx, job.id);
  const owner = serverOwner();
  const progress = new Progress(ctx, job.id);
  const stop = stopOf(plan);
  let server: RecoveryServer | null = null;
  try {
    await removeScratch(scratch);
    ensureScratchRoot(ctx);
    const dataDir = path.join(scratch, 'data');
    const walDir = path.join(scratch, 'wal');
    for (const dir of [scratch, dataDir, walDir]) {
      fs.mkdirSync(dir, { mode: 0o700 });
      giveToServer(dir, owner);
    }
    const artifactSize = (await readableCopies(ctx, plan.backup)).copies[0]?.size ?? 0;
    const total = artifactSize + plan.files.reduce((n, f) => n + Number(f.size), 0);

    await withIdentities(ctx, job, async (identityFiles) => {
      await progress.phase('fetching the base backup', total);
      await unpackBaseBackup(ctx, plan.backup, dataDir, owner, identityFiles, signal, progress);
      await progress.phase(`fetching ${plan.files.length} WAL file${plan.files.length === 1 ? '' : 's'}`);
      for (const file of plan.files) {
        const to = path.join(walDir, file.name);
        await fetchArchiveFile(ctx, file, to, signal, identityFiles, (n) => progress.bytes(n));
        giveToServer(to, owner);
        progress.next();
      }
    });
    await ctx.db.updateTable('jobs').set({ bytes: total }).where('id', '=', job.id).execute();

    const major = Number(fs.readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim());
    const binDir = serverBinDir(major);
    // The base backup came from a running server: it replays as an archive recovery, never as a
    // standby of anything.
    fs.rmSync(path.join(dataDir, 'standby.signal'), { force: true });
    fs.writeFileSync(path.join(dataDir, 'recovery.signal'), '', { mode: 0o600 });
    giveToServer(path.join(dataDir, 'recovery.signal'), owner);
    fs.chmodSync(dataDir, 0o700);

    await progress.phase(stop.kind === 'time' ? `replaying WAL up to ${stop.at}` : stop.kind === 'backup-end' ? 'replaying WAL to the end of the base backup' : 'replaying all the archived WAL');
    server = startRecoveryServer({ binDir, dataDir, scratch, port: socketPort(), owner, settings: recoverySettings(stop, walDir) });
    const source = await ctx.db.selectFrom('branches').select(['conn_user', 'conn_database']).where('id', '=', plan.backup.branch_id).executeTakeFirstOrThrow();
    const dbName = recordedProperties(plan.backup)?.name ?? source.conn_database;
    const recovered = await waitForPromotion(server, [source.conn_user, 'postgres'], [dbName, 'postgres', 'template1'], signal);
    let superuser: string;
    try {
      superuser = await checkReplay(recovered, server, stop, plan);
      if (!params.target_data_dir) {
        const exists = await recovered.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
        if (exists.rowCount === 0) throw new EngineError(`database "${dbName}" does not exist in the recovered server at that time`);
      }
    } finally {
      await recovered.end().catch(() => {});
    }

    if (params.target_data_dir) {
      await progress.phase(`moving the recovered data directory to ${params.target_data_dir}`);
      await server.stop();
      server = null;
      await syncDataDir(binDir, dataDir, owner);
      await moveDataDir(ctx, job, dataDir, params.target_data_dir);
      return;
    }

    // A restore drill (jobs/verify.ts) gives its scratch database; a restore job restores into its branch's.
    let targetConn = into;
    if (!targetConn) {
      const target = await ctx.db.selectFrom('branches').select('connection_url_enc').where('id', '=', job.branch_id!).executeTakeFirstOrThrow();
      if (target.connection_url_enc === null) throw new EngineError('the branch has no connection URL');
      targetConn = parseConnectionUrl(ctx.secrets.open(target.connection_url_enc)).info;
    }
    await progress.phase(`copying database "${dbName}" into "${targetConn.database}"`);
    await copyDatabaseOut({ host: server.socketDir, port: server.port, database: dbName, user: superuser, password: '' }, targetConn, major, params, signal, progress);
  } finally {
    if (server) await server.stop().catch((e) => ctx.log.warn({ job: job.id, err: messageOf(e) }, 'could not stop the temporary server'));
    await removeScratch(scratch).catch((e) => ctx.log.warn({ job: job.id, err: messageOf(e) }, 'could not remove the scratch folder of a point-in-time restore; the next sweep will'));
  }
}

/** Read the base backup back (checked, decrypted, decompressed) into `dataDir` with tar, trying each stored copy. */
async function unpackBaseBackup(ctx: AppContext, backup: Backup, dataDir: string, owner: { uid: number; gid: number } | null, identityFiles: string[], signal: AbortSignal, progress: Progress): Promise<void> {
  const { copies, refusal } = await readableCopies(ctx, backup);
  if (refusal !== null) throw new EngineError(refusal);
  const encryption = backup.encryption ? (JSON.parse(backup.encryption) as { recipients: string[] }) : null;
  if (encryption && identityFiles.length === 0) {
    throw new DecryptionError(`the base backup is encrypted (age, to ${encryption.recipients.join(', ')}) and no identity is available to decrypt it: set STRONGBOX_AGE_IDENTITY_FILE, or give "age_identity" with the request`);
  }
  const problems: string[] = [];
  for (const artifact of copies) {
    signal.throwIfAborted();
    for (const entry of fs.readdirSync(dataDir)) fs.rmSync(path.join(dataDir, entry), { recursive: true, force: true });
    const tar = spawn('tar', ['-x', '-f', '-', '-C', dataDir], { stdio: ['pipe', 'ignore', 'pipe'], ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) });
    let stderr = '';
    tar.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-2000)));
    const exited = new Promise<number | null>((resolve) => {
      tar.once('exit', (code) => resolve(code));
      tar.once('error', () => resolve(-1));
    });
    try {
      const { stream } = await openVerifiedArtifact(ctx, artifact);
      const counter = new HashCounter({ onProgress: (n) => progress.bytes(n), progressIntervalMs: 1000 });
      const flow = pipeline([stream, counter, ...(encryption ? [ageDecrypt(identityFiles)] : []), decompressor(backup.compression as Compression), tar.stdin!], { signal });
      const [flowR, code] = await Promise.all([flow.then(() => null, (e: unknown) => e), exited]);
      if (code !== 0) throw new Error(`tar failed (${code}): ${stderr.trim() || 'no message'}${flowR ? ` (reading the copy: ${messageOf(flowR)})` : ''}`);
      if (flowR) throw flowR;
      if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) throw new Error('it holds no PostgreSQL data directory (no PG_VERSION)');
      progress.next();
      return;
    } catch (e) {
      tar.kill('SIGKILL');
      if (signal.aborted) throw e;
      if (encryption && /no identity matched/i.test(messageOf(e))) throw new DecryptionError(`cannot decrypt the base backup: no identity matches (it is encrypted to ${encryption.recipients.join(', ')})`);
      problems.push(`the copy in "${artifact.destination_name}": ${messageOf(e)}`);
      ctx.log.warn({ backup: backup.id, artifact: artifact.id, err: messageOf(e) }, 'could not unpack a copy of a base backup; trying the next one if any');
    }
  }
  throw new EngineError(`the base backup could not be read back: ${problems.join('; ')}`);
}

/** The server's own words on why it stopped: its FATAL and PANIC lines. */
function fatalLines(log: string): string {
  return log
    .split('\n')
    .filter((l) => /\b(FATAL|PANIC):/.test(l))
    .slice(-3)
    .map((l) => l.replace(/^.*?\b(FATAL|PANIC):\s*/, ''))
    .join('; ');
}

/** Why a recovery server exited, as the user should read it. */
function recoveryFailure(log: string): EngineError {
  if (/recovery ended before configured recovery target was reached/.test(log)) {
    return new EngineError('the archived WAL ends before the restore point: replay ran out of WAL before reaching it (a segment is missing or damaged); nothing was restored');
  }
  if (/WAL ends before (end of online backup|consistent recovery point)/.test(log)) {
    return new EngineError('the archived WAL ends before the base backup is consistent (its last WAL segment is not archived yet, or missing); nothing was restored');
  }
  if (/requested recovery stop point is before consistent recovery point/.test(log)) {
    return new EngineError('the restore point is before the base backup became consistent; choose a later time or an older base backup');
  }
  const why = fatalLines(log);
  return new EngineError(`the temporary PostgreSQL server stopped during recovery${why ? `: ${why}` : ''}`);
}

/**
 * Wait until the server accepts connections (with hot_standby off it does only once recovery
 * ended and it was promoted), connecting as the first of `users` that exists.
 */
async function waitForPromotion(server: RecoveryServer, users: string[], databases: string[], signal: AbortSignal): Promise<pg.Client> {
  let gone = false;
  void server.exited.then(() => (gone = true));
  for (;;) {
    signal.throwIfAborted();
    if (gone) throw recoveryFailure(server.log());
    for (const user of [...new Set(users)]) {
      for (const database of [...new Set(databases)]) {
        try {
          return await openClient({ host: server.socketDir, port: server.port, user, password: '', database }, database);
        } catch (e) {
          const code = (e as { code?: string }).code;
          // 28000: no such role; 3D000: no such database: the next pair may do.
          if (code !== '28000' && code !== '3D000') break;
        }
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Check in the promoted server that the replay stopped where the plan says, not earlier;
 * returns the bootstrap superuser's name (for copying the database out).
 */
async function checkReplay(client: pg.Client, server: RecoveryServer, stop: Stop, plan: PitrPlan): Promise<string> {
  // Times are compared by the server, to the microsecond: the catalog's event times are
  // whole milliseconds (a last commit rounded up), JavaScript's Dates too.
  const limit = stop.kind === 'time' ? stop.at : stop.kind === 'end' ? stop.notAfter : null;
  const expected = stop.kind === 'end' ? lastEventOf(plan.files.map((file: ArchiveFile) => ({ file }))) : null;
  const row = (
    await client.query<{ su: string; replayed: Date | null; recovery: boolean; seg: string; past: boolean | null; short: boolean | null }>(
      `SELECT (SELECT rolname FROM pg_roles WHERE oid = 10) AS su, pg_last_xact_replay_timestamp() AS replayed, pg_is_in_recovery() AS recovery,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
              pg_last_xact_replay_timestamp() > $1::timestamptz AS past,
              coalesce(pg_last_xact_replay_timestamp() < $2::timestamptz - interval '1 millisecond', $2::timestamptz IS NOT NULL) AS short`,
      [limit, expected],
    )
  ).rows[0];
  if (row.recovery) throw new EngineError('the temporary server is still in recovery after it accepted connections');
  const log = server.log();
  const replayed = row.replayed ? row.replayed.toISOString() : null;
  if (stop.kind === 'time') {
    if (!/recovery stopping before (commit|abort) of transaction/.test(log)) {
      throw new EngineError(`the replay did not stop at ${stop.at}: the archived WAL ended first; nothing was restored`);
    }
    if (row.past) throw new EngineError(`the replay went past the restore point (last commit replayed at ${replayed}, after ${stop.at})`);
  } else if (stop.kind === 'end') {
    // Replay treats damaged WAL as its end: the end it found must be in the last segment fetched.
    const m = /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(log);
    const segments = plan.files.filter((f) => isSegmentName(f.name));
    const last = segments[segments.length - 1];
    const size = Number(row.seg);
    if (m && last && Number.isSafeInteger(size) && size > 0) {
      const doneIn = parseLsn(m[1]) / BigInt(size);
      const lastSeg = parseSegmentName(last.name, size).segno;
      if (doneIn < lastSeg) throw new EngineError(`the replay ended in the middle of the archive (at ${m[1]}, before segment ${last.name}): a WAL segment is damaged; nothing was restored`);
    }
    if (row.short) throw new EngineError(`the replay ended before the last archived commit (${expected}; replayed up to ${replayed ?? 'none'}); nothing was restored`);
    if (row.past) throw new EngineError(`the archive's last commit (${replayed}) is after the restore point ${stop.notAfter}, by less than a millisecond; restore to a time a millisecond earlier or later`);
  } else if (!/consistent recovery state reached|recovery stopping after reaching consistency/.test(log)) {
    throw new EngineError('the replay did not reach the end of the base backup; nothing was restored');
  }
  return row.su;
}

/** pg_dump from the recovered server | pg_restore into the target database. */
async function copyDatabaseOut(from: ConnectionInfo, to: ConnectionInfo, major: number, params: RestoreParams, signal: AbortSignal, progress: Progress): Promise<void> {
  const engine = engineFor('postgresql');
  const dump = await engine.dump(from, { signal, serverMajor: major });
  const counter = new HashCounter({ onProgress: (n) => progress.bytes(n), progressIntervalMs: 1000 });
  dump.stdout.on('error', (e) => counter.destroy(e));
  const restoring = engine.restore(to, dump.stdout.pipe(counter), { signal, clean: params.overwrite, preserveOwnership: params.preserve_ownership === true, sourceDatabase: from.database });
  const [d, r] = await Promise.allSettled([dump.done, restoring]);
  if (d.status === 'rejected') throw d.reason;
  if (r.status === 'rejected') throw r.reason;
}

/** Make the data directory durable (the replay ran with fsync off): initdb --sync-only. */
async function syncDataDir(binDir: string, dataDir: string, owner: { uid: number; gid: number } | null): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(binDir, 'initdb'), ['--sync-only', '-D', dataDir], { stdio: ['ignore', 'ignore', 'pipe'], ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new EngineError(`initdb --sync-only failed: ${err.trim().slice(-500)}`))));
  });
}

/**
 * Move the recovered data directory to `target` (checked when the restore was asked for,
 * again here): a rename when on the same file system, else a copy, recorded in the job's
 * params first so that an interrupted copy is removed (undoInterruptedRestore).
 */
async function moveDataDir(ctx: AppContext, job: Job, dataDir: string, target: string): Promise<void> {
  if (fs.existsSync(target)) throw new EngineError(`${target} already exists; the recovered data directory goes to a folder that does not exist yet`);
  if (!fs.existsSync(path.dirname(target))) throw new EngineError(`${path.dirname(target)} does not exist`);
  try {
    fs.renameSync(dataDir, target);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
  }
  const params = JSON.parse(job.params) as Record<string, unknown>;
  await ctx.db.updateTable('jobs').set({ params: JSON.stringify({ ...params, created_dir: true }) }).where('id', '=', job.id).execute();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('cp', ['-a', '--', dataDir, target], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new EngineError(`copying the data directory to ${target} failed: ${err.trim().slice(-500)}`))));
  }).catch((e) => {
    fs.rmSync(target, { recursive: true, force: true });
    throw e;
  });
}


