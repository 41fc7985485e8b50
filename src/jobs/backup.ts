/**
 * Takes one backup: dump → compress → encrypt → sha256 → every destination at once, the
 * raw dump read on its way for row counts and digests (pipeline/store.ts).
 * Nothing is reported good until every process exited 0, every byte is committed in
 * storage and its size checked, and the manifest is written beside it.
 */
import type { AppContext } from '../context.js';
import type { Backup, BackupUpdate, StorageDestination } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { destinationsFor } from '../catalog/organizations.js';
import { recordSnapshot } from '../catalog/snapshots.js';
import { saveContents } from '../catalog/contents.js';
import { engineFor, parseConnectionUrl, EngineError, type ConnectionInfo, type DatabaseProperties, type Engine, type Ownership } from '../engines/index.js';
import { compressor, compressionSuffix, type Compression } from '../pipeline/compress.js';
import { ageEncrypt } from '../pipeline/encrypt.js';
import { organizationRecipients, recipientFingerprint } from '../encryption.js';
import { StoreError, storeStream, type RawSource, type StoreProgress, type StoreResult } from '../pipeline/store.js';
import type { InspectSpec } from '../pipeline/inspect.js';
import { openDestination } from '../destinations.js';
import type { ObjectWriter, StorageProvider } from '../storage/provider.js';
import { addInterval, type IntervalUnit } from '../time.js';
import { VERSION } from '../version.js';
import { cleanErrorText } from '../error-text.js';
import { isArchived } from '../archive/archivers.js';
import { startBaseBackup, type BaseBackupRange } from '../archive/postgres/basebackup.js';
import { runParallelBackup } from './parallel-backup.js';

/** Why a job was stopped from outside; decides the final state. */
export type StopReason = 'canceled' | 'shutdown' | 'lease_lost' | 'idle_timeout';

export class JobStopped extends Error {
  constructor(readonly reason: StopReason, message: string) {
    super(message);
    this.name = 'JobStopped';
  }
}

/** Storage layout: one folder per backup, sortable by time, holding the dump and its manifest. */
export function backupFolder(orgName: string, dbName: string, branchName: string, backup: Pick<Backup, 'id' | 'created_at'>): string {
  const stamp = backup.created_at.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${orgName}/${dbName}/${branchName}/${stamp}-${backup.id}`;
}

/**
 * The stages that turn raw bytes into the bytes at rest: compression, then age encryption
 * when the organization has recipients. Encryption comes last so that the sha256 and every
 * stored copy cover exactly the bytes at rest. Shared by dumps, base backups and archived
 * WAL/binlog files (archive/ship.ts).
 */
export function atRestStages(compression: Compression, zstdLevel: number, recipients: readonly string[]): NodeJS.ReadWriteStream[] {
  const stages: NodeJS.ReadWriteStream[] = [compressor(compression, zstdLevel)];
  if (recipients.length) stages.push(ageEncrypt(recipients));
  return stages;
}

/**
 * Make what `writer` wrote under `key` visible, then check that storage holds exactly the
 * `size` bytes written: a short object is never reported stored.
 */
export async function commitAndCheck(provider: StorageProvider, writer: ObjectWriter, key: string, size: number): Promise<void> {
  await writer.commit();
  const st = await provider.stat(key);
  if (!st || st.size !== size) throw new Error(`stored size ${st?.size ?? 'none'} differs from the ${size} bytes written`);
}

interface Target {
  dest: StorageDestination;
  provider: StorageProvider;
  artifactId: string;
  writer: ObjectWriter | null;
  error: string | null;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Run the dump of `backup` (already claimed: state running). Resolves with the final
 * catalog update to apply; never throws for a failed dump (that is a `failed` result).
 */
export async function runBackup(ctx: AppContext, backup: Backup, signal: AbortSignal): Promise<BackupUpdate> {
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
  const database = await ctx.db.selectFrom('databases').selectAll().where('id', '=', backup.database_id).executeTakeFirstOrThrow();
  const org = await ctx.db.selectFrom('organizations').selectAll().where('id', '=', backup.organization_id).executeTakeFirstOrThrow();
  const engine = engineFor(database.kind);
  const compression = backup.compression as Compression;
  const targets: Target[] = [];

  const fail = (error: string): BackupUpdate => ({ state: 'failed', error, completed_at: nowIso(ctx.clock()) });
  // The schema dump that runs beside the data dump (below; it never rejects): every way out
  // waits for it, so that no connection to the database outlives the job.
  let schemaRead: Promise<string | Error> | null = null;
  try {
    if (branch.connection_url_enc === null) return fail('the branch has no connection URL; set it again (catalog rebuilt from storage?)');
    const conn = parseConnectionUrl(ctx.secrets.open(branch.connection_url_enc)).info;

    const t0 = performance.now();
    const mark = (phase: string) => ctx.log.debug({ backup: backup.id, phase, ms: Math.round(performance.now() - t0) }, 'backup phase');
    const server = await engine.probe(conn);
    mark('probed');
    signal.throwIfAborted();
    await ctx.db.updateTable('backups').set({ server_version: server.version, pvc_size: server.sizeBytes, updated_at: nowIso(ctx.clock()) }).where('id', '=', backup.id).execute();
    // What the dump does not carry (the database's own encoding, locale, settings; the roles
    // its objects need), so that a restore can make the database again as it was. Losing
    // them costs that fidelity, not the backup. One connection at a time, before the dump: a
    // role allowed a single connection still gets everything.
    const extras = await databaseExtras(ctx, engine, conn, backup.id);
    const options = await ctx.db.selectFrom('branch_options').select(['dump_history', 'jobs']).where('branch_id', '=', branch.id).executeTakeFirst();
    const dumpHistory = database.kind === 'mysql' && options?.dump_history === 1;
    // An archived PostgreSQL branch gets base backups (pg_basebackup, the whole cluster):
    // with the archived WAL they restore to any point in time, which a dump cannot.
    const base = database.kind === 'postgresql' && (await isArchived(ctx, branch.id));
    const dests = await destinationsFor(ctx.db, database);
    if (dests.length === 0) return fail(`no storage destination: database "${database.name}" chose none and the organization has no default one`);
    const folder = backupFolder(org.name, database.name, branch.name, backup);
    const recipients = organizationRecipients(org);
    const encryption = recipients.length ? { format: 'age', recipients: recipients.map(recipientFingerprint) } : null;
    const key = `${folder}/${base ? 'base.tar' : `dump${engine.dumpSuffix}`}${compressionSuffix(compression)}${encryption ? '.age' : ''}`;
    // `jobs: N` (the request's, else the branch's): a dump in parts of one snapshot
    // (jobs/parallel-backup.ts). A base backup is one pg_basebackup stream whatever it says.
    const jobs = backup.jobs ?? options?.jobs ?? 1;
    if (jobs > 1 && !base) {
      return await runParallelBackup(ctx, { backup, branch, database, org, conn, server, extras, dests, folder, recipients, encryption, jobs, dumpHistory, signal });
    }
    const now = nowIso(ctx.clock());
    for (const dest of dests) {
      const t: Target = { dest, provider: openDestination(ctx, dest), artifactId: newId(), writer: null, error: null };
      targets.push(t);
      await ctx.db
        .insertInto('artifacts')
        .values({ id: t.artifactId, backup_id: backup.id, destination_id: dest.id, destination_name: dest.name, provider: dest.provider, path: key, state: 'pending', sha256: null, error: null, created_at: now, updated_at: now })
        .execute();
    }
    for (const t of targets) {
      try {
        t.writer = await t.provider.create(key);
      } catch (e) {
        t.error = `cannot start writing: ${messageOf(e)}`;
      }
    }
    const live = targets.filter((t) => t.writer !== null);
    if (live.length === 0) return await finish(ctx, backup, targets, null, 'every destination failed: ' + describeFailures(targets));

    // The schema (DDL only) as a snapshot beside the backup: dumped while the data is, once the
    // dump tool has written its first bytes (it holds its connection by then; the schema dump
    // takes a second one). A failure here costs the snapshot, not the backup; a failed backup
    // stops it.
    const schemaStop = new AbortController();
    const dumpSchema = (): Promise<string | Error> =>
      engine.schemaDump(conn, { serverMajor: server.major, signal: AbortSignal.any([signal, schemaStop.signal]) }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    const startSchemaDump = (): void => {
      if (schemaRead !== null || schemaStop.signal.aborted) return;
      schemaRead = dumpSchema();
    };

    // Progress goes to the catalog at most once a second: enough for a progress bar,
    // cheap enough for a catalog shared by many workers.
    let lastWrite = 0;
    let rawBytes = 0;
    const onProgress = (p: StoreProgress): void => {
      rawBytes = p.rawBytes;
      if (rawBytes > 0) startSchemaDump();
      const t = Date.now();
      if (t - lastWrite < 900) return;
      lastWrite = t;
      void ctx.db
        .updateTable('backups')
        .set({ progress_raw_bytes: p.rawBytes, progress_bytes: p.storedBytes, progress_at: nowIso(ctx.clock()) })
        .where('id', '=', backup.id)
        .execute()
        .catch((e) => ctx.log.warn({ err: e, backup: backup.id }, 'progress update failed'));
    };

    // A dump that stops producing bytes (a lock it waits on forever, a hung server) is
    // killed after the idle timeout rather than holding a worker slot for ever.
    const idle = new AbortController();
    const jobSignal = AbortSignal.any([signal, idle.signal]);
    const idleMs = ctx.config.dumpIdleTimeoutSeconds * 1000;
    let seen = -1;
    let seenAt = Date.now();
    const idleTimer = setInterval(() => {
      if (rawBytes !== seen) {
        seen = rawBytes;
        seenAt = Date.now();
      } else if (Date.now() - seenAt >= idleMs) {
        idle.abort(new JobStopped('idle_timeout', `the dump produced no data for ${ctx.config.dumpIdleTimeoutSeconds} s (waiting on a lock, or the server hung) and was stopped`));
      }
    }, Math.min(1000, Math.max(50, idleMs / 4)));
    // Read off the raw dump as it passes (pipeline/inspect.ts), in a worker thread: row counts
    // per table and content digests (for verification later: no second scan of every table,
    // exactly the rows the dump's snapshot holds); for MySQL also the largest statement, which
    // a restore compares with the target's max_allowed_packet, and the binlog position of the
    // snapshot, where a point-in-time restore replays from.
    // A base backup is a tar of data files: nothing to count.
    const inspect: InspectSpec = base ? {} : { rows: database.kind, ...(database.kind === 'mysql' ? { statements: true, coordinates: true } : {}) };
    let clientVersion = '';
    let baseRange: (() => BaseBackupRange | null) | null = null;
    let stored: StoreResult;
    try {
      jobSignal.throwIfAborted();
      let source: RawSource;
      if (base) {
        // pg_basebackup's tar is read here on its way (its start and end are in it).
        const baseDump = await startBaseBackup(conn, { serverMajor: server.major, label: `strongbox ${backup.id}`, signal: jobSignal, clock: ctx.clock });
        baseRange = baseDump.range;
        clientVersion = baseDump.clientVersion;
        source = { process: baseDump };
      } else {
        // The dump tool writes straight into the compressor's pipe.
        source = {
          start: async (output) => {
            const dump = await engine.dump(conn, { signal: jobSignal, serverMajor: server.major, dumpHistory, output });
            clientVersion = dump.clientVersion;
            return dump;
          },
        };
      }
      mark('dump started');
      stored = await storeStream(source, {
        compression,
        level: ctx.config.zstdLevel,
        recipients,
        targets: live.map((t) => ({ id: t.artifactId, stream: t.writer!.stream })),
        inspect,
        signal: jobSignal,
        onProgress,
        clock: ctx.clock,
      });
      mark('dump finished');
    } catch (e) {
      schemaStop.abort();
      // When every destination failed, the dump was stopped because of it: say so. Otherwise
      // the first cause (a stop, the dump tool's own error, a compressor that died) says what
      // went wrong, on the backup and on every copy that it kept from being stored.
      const everyDestination = e instanceof StoreError && /^every destination failed/.test(e.message);
      if (e instanceof StoreError) {
        for (const r of e.targets) if (!r.ok) targets.find((x) => x.artifactId === r.id)!.error = `${everyDestination ? 'write failed' : 'not stored'}: ${messageOf(r.error)}`;
      }
      if (jobSignal.aborted) throw jobSignal.reason;
      if (everyDestination) return await finish(ctx, backup, targets, null, 'every destination failed: ' + describeFailures(targets));
      throw e instanceof StoreError && e.cause instanceof EngineError ? e.cause : e;
    } finally {
      clearInterval(idleTimer);
    }
    for (const r of stored.targets) if (!r.ok) targets.find((x) => x.artifactId === r.id)!.error = `write failed: ${messageOf(r.error)}`;
    const inspection = stored.inspection;

    // The schema snapshot, dumped beside the data (above); once more alone if that failed (a
    // role allowed one connection refuses the second), or now if the dump was too short to start it.
    let snapshotId: string | null = null;
    try {
      startSchemaDump();
      let ddl = await schemaRead!;
      signal.throwIfAborted();
      if (ddl instanceof Error) {
        ctx.log.debug({ backup: backup.id, err: messageOf(ddl) }, 'the schema dump beside the data failed; dumping it again alone');
        ddl = await dumpSchema();
        signal.throwIfAborted();
      }
      if (ddl instanceof Error) throw ddl;
      snapshotId = (await recordSnapshot(ctx.db, branch, ddl, ctx.clock())).id;
    } catch (e) {
      if (signal.aborted) throw e;
      ctx.log.warn({ backup: backup.id, err: messageOf(e) }, 'could not take the schema snapshot');
    }
    const rowCounts = base ? null : inspection.counts;
    // Null when the server does not write binlogs (log_bin off): the dump then has no position.
    const range = baseRange?.() ?? null;
    if (base && range === null) throw new Error('pg_basebackup did not say where the backup starts and ends (its --verbose lines); without that it cannot be replayed');
    // A base backup: the WAL from its start (timeline, lsn) to its end (stop_lsn, stop_time).
    const recoveryStart = base ? range : inspection.coordinates;
    // What the dump holds (tables by schema and table with data digests, the other objects),
    // for a full verification to compare a restored copy with.
    const parsed = base ? null : inspection.contents;
    const contents = parsed && dumpHistory ? { ...parsed, dump_options: { dump_history: true } } : parsed;
    if (contents) await saveContents(ctx.db, backup.id, contents, ctx.clock());
    if (!base && rowCounts === null) ctx.log.warn({ backup: backup.id, reason: inspection.reason }, 'no row counts from the dump stream; full verification will not compare them');
    const sha256 = stored.sha256;
    const size = stored.size;
    const completedAt = ctx.clock();
    const manifest = {
      format: 'strongbox-manifest/1',
      strongbox_version: VERSION,
      backup_id: backup.id,
      name: backup.name,
      organization: org.name,
      database: database.name,
      branch: branch.name,
      production: branch.production === 1,
      engine: database.kind,
      server_version: server.version,
      client_version: clientVersion,
      method: base ? 'base' : 'logical',
      dump_format: base ? 'pg_basebackup tar (-Ft -X none): the data directory, its WAL in the archive' : database.kind === 'postgresql' ? 'pg_dump custom (-Fc), no internal compression' : 'mariadb-dump SQL',
      compression,
      encryption,
      file: key.split('/').pop(),
      size,
      raw_size: stored.rawBytes,
      sha256,
      table_row_counts: rowCounts,
      contents,
      largest_statement: inspection.largestStatement,
      recovery_start: recoveryStart,
      dump_history: dumpHistory,
      database_properties: extras.properties,
      ownership: extras.ownership,
      database_size: server.sizeBytes,
      created_at: backup.created_at,
      started_at: backup.started_at,
      completed_at: completedAt.toISOString(),
      retention: { value: backup.retention_value, unit: backup.retention_unit },
      expires_at: addInterval(completedAt, backup.retention_value, backup.retention_unit as IntervalUnit).toISOString(),
    };
    for (const t of targets) {
      if (t.writer === null || t.error !== null) continue;
      try {
        await commitAndCheck(t.provider, t.writer, key, size);
        await t.provider.put(`${folder}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
        await ctx.db.updateTable('artifacts').set({ state: 'success', size, sha256, updated_at: nowIso(ctx.clock()) }).where('id', '=', t.artifactId).execute();
      } catch (e) {
        t.error = `commit failed: ${messageOf(e)}`;
      }
    }
    const failed = targets.filter((t) => t.error !== null);
    const update: BackupUpdate = {
      size,
      raw_size: stored.rawBytes,
      sha256,
      client_version: clientVersion,
      table_row_counts: rowCounts === null ? null : JSON.stringify(rowCounts),
      largest_statement: inspection.largestStatement,
      method: base ? 'base' : 'logical',
      recovery_start: recoveryStart === null ? null : JSON.stringify(recoveryStart),
      database_properties: extras.properties === null ? null : JSON.stringify(extras.properties),
      ownership: extras.ownership === null ? null : JSON.stringify(extras.ownership),
      encryption: encryption === null ? null : JSON.stringify(encryption),
      schema_snapshot_id: snapshotId,
      progress_raw_bytes: stored.rawBytes,
      progress_bytes: size,
      progress_at: completedAt.toISOString(),
      completed_at: completedAt.toISOString(),
      expires_at: addInterval(completedAt, backup.retention_value, backup.retention_unit as IntervalUnit).toISOString(),
    };
    mark('committed');
    if (failed.length === 0) return await finish(ctx, backup, targets, { ...update, state: 'success', error: null }, null);
    return await finish(ctx, backup, targets, { ...update, state: 'failed' }, `some destinations failed: ${describeFailures(targets)}`);
  } catch (e) {
    for (const t of targets) if (t.error === null) t.error = 'not stored: the backup did not complete';
    const stop = e instanceof JobStopped ? e : signal.aborted && signal.reason instanceof JobStopped ? signal.reason : null;
    if (stop?.reason === 'canceled') return await finish(ctx, backup, targets, { state: 'canceled', error: stop.message, completed_at: nowIso(ctx.clock()) }, null);
    const message = stop ? stop.message : e instanceof EngineError ? e.message : `backup failed: ${messageOf(e)}`;
    return await finish(ctx, backup, targets, null, message);
  } finally {
    await schemaRead;
  }
}

/** The database's properties and the roles its objects need; null for what could not be read. */
async function databaseExtras(ctx: AppContext, engine: Engine, conn: ConnectionInfo, backupId: string): Promise<{ properties: DatabaseProperties | null; ownership: Ownership | null }> {
  const read = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (e) {
      ctx.log.warn({ backup: backupId, err: messageOf(e) }, `could not read the ${what}; a restore will not keep them`);
      return null;
    }
  };
  return {
    properties: await read('database properties', () => engine.databaseProperties(conn)),
    ownership: await read('owners and grants', () => engine.ownership(conn)),
  };
}

function describeFailures(targets: Target[]): string {
  return targets
    .filter((t) => t.error !== null)
    .map((t) => `${t.dest.name} (${t.error})`)
    .join('; ');
}

/**
 * Settle every artifact: abort the writers of failed ones (their partial data is removed)
 * and record why. With a `failure` message and no update, the backup fails as a whole.
 */
async function finish(ctx: AppContext, backup: Backup, targets: Target[], update: BackupUpdate | null, failure: string | null): Promise<BackupUpdate> {
  for (const t of targets) {
    if (t.error === null) continue;
    if (t.writer) await t.writer.abort().catch(() => {});
    await ctx.db.updateTable('artifacts').set({ state: 'failed', error: cleanErrorText(t.error), updated_at: nowIso(ctx.clock()) }).where('id', '=', t.artifactId).execute();
  }
  if (update === null) return { state: 'failed', error: failure, completed_at: nowIso(ctx.clock()) };
  return failure === null ? update : { ...update, error: failure };
}
