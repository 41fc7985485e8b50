/**
 * A parallel backup (`jobs: N`): dumps of the pre-data section, of N disjoint sets of
 * tables' data, and of the post-data section, all of one consistent snapshot, each its own
 * part object through the shared data path (pipeline/store.ts: compress, encrypt, sha256,
 * every destination at once; rows counted and digested off the raw bytes). The engine
 * decides how the parts share a snapshot (a ParallelSource below):
 * - PostgreSQL (engines/postgres/parallel.ts): one exported snapshot that every pg_dump
 *   reads; at most N dumps run at a time.
 * - MariaDB/MySQL (engines/mysql/parallel.ts): every part's mariadb-dump opens its own
 *   snapshot while commits are blocked for a moment, so all N+2 start together (pre-data and
 *   post-data hold no rows and end quickly).
 *
 * Nothing is reported good until every part is stored and checked in a destination, its
 * SHA256SUMS and manifest written beside them. A part that fails fails the backup with the
 * part's reason, stops the other parts, and removes every part already stored, so no
 * destination keeps half a backup.
 */
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import type { AppContext } from '../context.js';
import type { Backup, BackupUpdate, Branch, Database, Organization, StorageDestination } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { recordSnapshot } from '../catalog/snapshots.js';
import { saveContents } from '../catalog/contents.js';
import type { Writable } from 'node:stream';
import { EngineError, engineFor, type ConnectionInfo, type DatabaseProperties, type DumpProcess, type Ownership, type ServerInfo } from '../engines/index.js';
import { dataPartArgs, dumpSection, holdSnapshot, planDataParts } from '../engines/postgres/parallel.js';
import { dumpPart, holdConsistentPoint, makeStartGate, planDataParts as planMysqlParts, type PointCoordinates, type StartGate } from '../engines/mysql/parallel.js';
import type { InspectSpec } from '../pipeline/inspect.js';
import { compressionSuffix, type Compression } from '../pipeline/compress.js';
import type { DumpContents } from '../pipeline/rowcount/index.js';
import type { Inspection } from '../pipeline/inspect.js';
import { StoreError, storeStream, type StoreResult } from '../pipeline/store.js';
import { openDestination } from '../destinations.js';
import type { ObjectWriter, StorageProvider } from '../storage/provider.js';
import { addInterval, type IntervalUnit } from '../time.js';
import { VERSION } from '../version.js';
import { cleanErrorText } from '../error-text.js';
import { commitAndCheck, JobStopped } from './backup.js';
import { manifestKey } from './artifacts.js';
import { SHA256SUMS, sha256Of, sha256Sums, type BackupPart } from './parallel-parts.js';

export interface ParallelBackupInput {
  backup: Backup;
  branch: Branch;
  database: Database;
  org: Organization;
  conn: ConnectionInfo;
  server: ServerInfo;
  extras: { properties: DatabaseProperties | null; ownership: Ownership | null };
  dests: StorageDestination[];
  /** The backup's folder in every destination (backupFolder). */
  folder: string;
  recipients: string[];
  encryption: { format: string; recipients: string[] } | null;
  jobs: number;
  /** MariaDB: dump system-versioned tables with their history (the branch's dump_history). */
  dumpHistory?: boolean;
  signal: AbortSignal;
}

/** A planned data part, whatever the engine. */
interface PlannedDataPart {
  tables: Array<{ schema: string; table: string; bytes: number }>;
  /** PostgreSQL: the part that also holds sequence values and large objects. */
  rest?: boolean;
  bytes: number;
}

/**
 * How one engine dumps a parallel backup's parts out of one consistent snapshot, planned
 * and held by `openSource` before any part starts.
 */
interface ParallelSource {
  dataParts: PlannedDataPart[];
  /** How many tables the snapshot has (for the log). */
  tableCount: number;
  /** How many parts may dump at a time. */
  concurrency: number;
  /** Start the dump of `part` (`dataIndex`: its index among the data parts) writing into `output`. */
  start(part: BackupPart, dataIndex: number, output: Writable | number, signal: AbortSignal): Promise<DumpProcess>;
  /** The key of a table in the part's row counts. */
  rowKey(t: { schema: string; table: string }): string;
  inspect: InspectSpec;
  dumpFormat: string;
  /** Where binlog replay starts after this backup (MariaDB with log_bin on); else null. */
  recoveryStart: PointCoordinates | null;
  /** MariaDB: how the parts' snapshots were made one, and how long commits were blocked for it. */
  consistency?: () => { method: string; attempts: number; commits_blocked_at: string | null; commits_blocked_ms: number | null };
  /** Let go of the snapshot (or the block) once every part has what it needs. Safe to call twice. */
  release(): Promise<void>;
  merge(list: Array<DumpContents | null>): DumpContents | null;
}

/** Hold a consistent snapshot of `input.conn` and plan the parts (see ParallelSource). */
async function openSource(ctx: AppContext, input: ParallelBackupInput): Promise<ParallelSource> {
  const { conn, server } = input;
  if (input.database.kind === 'postgresql') {
    const snapshot = await holdSnapshot(conn, { lockTimeoutMs: ctx.config.dumpIdleTimeoutSeconds * 1000 });
    const dataParts = planDataParts(snapshot, input.jobs);
    return {
      dataParts,
      tableCount: snapshot.tables.length,
      concurrency: Math.max(1, input.jobs),
      start: async (part, index, output, signal) =>
        dumpSection(conn, {
          snapshot: snapshot.id,
          section: part.section,
          selection: part.section === 'data' ? dataPartArgs(dataParts, index) : [],
          serverMajor: server.major,
          signal,
          output,
        }),
      rowKey: (t) => `${t.schema}.${t.table}`,
      inspect: { rows: 'postgresql' },
      dumpFormat: 'pg_dump custom (-Fc), no internal compression, in parts: pre-data, data (disjoint tables), post-data, all of one exported snapshot',
      recoveryStart: null,
      release: () => snapshot.release(),
      merge: mergeContents,
    };
  }
  const point = await holdConsistentPoint(conn, { now: ctx.clock });
  let blockedMs: number | null = null;
  const paused: number[] = [];
  /** Let commits through, then the paused dumps go on (also on failure: a stopped process cannot end). */
  const gates: StartGate[] = [];
  const resume = async (): Promise<void> => {
    await point.release();
    for (const g of gates.splice(0)) await g.remove().catch(() => undefined);
    for (const pid of paused.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone (killed meanwhile).
      }
    }
  };
  try {
    const dataParts = planMysqlParts(point.tables, input.jobs);
    const total = dataParts.length + 2;
    let arrived = 0;
    let confirmed = 0;
    // Commits are blocked only once every part's pipeline (compressor, encryptor, reader) is
    // up and waiting here, so that the block lasts only while the dumps connect and open
    // their snapshots.
    let openBlock: () => void = () => undefined;
    let failBlock: (e: unknown) => void = () => undefined;
    const allArrived = new Promise<void>((resolve, reject) => {
      openBlock = resolve;
      failBlock = reject;
    });
    allArrived.catch(() => undefined);
    return {
      dataParts,
      tableCount: point.tables.length,
      // Every part must open its snapshot while commits are blocked: all start at once.
      concurrency: total,
      start: async (part, index, output, signal) => {
        // Started now, held at its gate until commits are blocked (StartGate).
        const gate = await makeStartGate(path.join(ctx.config.dataDir, 'tmp'));
        gates.push(gate);
        let exited = false;
        const dump = await dumpPart(conn, {
          section: part.section,
          tables: part.section === 'data' ? dataParts[index].tables.map((t) => t.table) : undefined,
          dumpHistory: input.dumpHistory,
          gate: gate.path,
          signal,
          output,
        });
        dump.done.then(
          () => (exited = true),
          () => (exited = true),
        );
        try {
          if (++arrived === total) point.block().then(openBlock, failBlock);
          await new Promise<void>((resolve, reject) => {
            const onAbort = () => reject(signal.reason);
            if (signal.aborted) return onAbort();
            signal.addEventListener('abort', onAbort, { once: true });
            allArrived.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
          });
          if (!(await gate.open(() => exited || signal.aborted))) {
            signal.throwIfAborted();
            await dump.done;
          }
          await gate.remove();
          await point.confirm(dump.pid, dump.done, signal);
        } catch (e) {
          dump.kill();
          throw e;
        }
        // The last part to open its snapshot lets commits through again. Until then, a dump
        // that has its snapshot waits (SIGSTOP): on a busy machine the parts already streaming
        // would otherwise take the CPU the others need to connect, and the block would last.
        if (++confirmed === total) {
          await resume();
          blockedMs = (point.heldUntil ?? Date.now()) - point.heldFrom;
          ctx.log.info({ backup: input.backup.id, method: point.method, ms: (point.heldUntil ?? Date.now()) - point.heldFrom }, 'commits blocked while the parallel dumps opened their snapshots');
        }
        else if (dump.pid > 0) {
          try {
            process.kill(dump.pid, 'SIGSTOP');
            paused.push(dump.pid);
          } catch {
            // Already gone: it finished under the block.
          }
        }
        return dump;
      },
      rowKey: (t) => t.table,
      inspect: { rows: 'mysql', statements: true },
      dumpFormat: `mariadb-dump SQL, in parts: pre-data (no rows, no triggers), data (disjoint tables, --no-create-info), post-data (triggers); each part's snapshot opened while commits were blocked (${point.method})`,
      get recoveryStart() {
        return point.coordinates;
      },
      consistency: () => ({ method: point.method, attempts: point.attempts, commits_blocked_at: point.heldFrom ? new Date(point.heldFrom).toISOString() : null, commits_blocked_ms: blockedMs }),
      release: resume,
      merge: mergeMysqlContents,
    };
  } catch (e) {
    await point.release();
    throw e;
  }
}

/** One destination's copy: its artifact row, and the writer of each part while it is written. */
interface Target {
  dest: StorageDestination;
  provider: StorageProvider;
  artifactId: string;
  /** Parts written and committed here, to remove if the backup does not complete. */
  stored: string[];
  writer: ObjectWriter | null;
  error: string | null;
}

/** A part that failed: its name says which tables were lost, the cause why. */
class PartFailed extends Error {
  constructor(readonly part: BackupPart, cause: unknown) {
    super(`part ${part.name}${describeTables(part)} failed: ${messageOf(cause)}`, { cause });
    this.name = 'PartFailed';
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function describeTables(part: BackupPart): string {
  if (!part.tables || part.tables.length === 0) return part.rest ? ' (sequence values, large objects)' : '';
  const names = part.tables.slice(0, 3).map((t) => `${t.schema}.${t.table}`);
  return ` (${names.join(', ')}${part.tables.length > 3 ? `, and ${part.tables.length - 3} more tables` : ''})`;
}

/** The parts to write, in restore order: pre-data, the data parts, post-data. */
function plannedParts(dataParts: PlannedDataPart[], suffix: string): BackupPart[] {
  const width = 2;
  const name = (i: number, what: string) => `${String(i).padStart(width, '0')}-${what}`;
  const parts: BackupPart[] = [{ name: name(0, 'pre-data'), section: 'pre-data', file: '', size: null, sha256: null, raw_size: null }];
  dataParts.forEach((p, i) => {
    parts.push({
      name: name(i + 1, 'data'),
      section: 'data',
      file: '',
      size: null,
      sha256: null,
      raw_size: null,
      tables: p.tables.map((t) => ({ schema: t.schema, table: t.table, rows: null })),
      ...(p.rest ? { rest: true } : {}),
    });
  });
  parts.push({ name: name(dataParts.length + 1, 'post-data'), section: 'post-data', file: '', size: null, sha256: null, raw_size: null });
  for (const p of parts) p.file = `${p.name}${suffix}`;
  return parts;
}

/**
 * The contents of the whole dump from its parts' (rowcount/contents.ts): the tables of the
 * data parts, the objects of all, the large objects of the rest part. Null when a part
 * could not be read.
 */
export function mergeContents(list: Array<DumpContents | null>): DumpContents | null {
  if (list.some((c) => c === null)) return null;
  const all = list as DumpContents[];
  const withLargeObjects = all.filter((c) => (c.large_objects?.count ?? 0) > 0);
  return {
    format: 'strongbox-contents/1',
    engine: 'postgresql',
    tables: all.flatMap((c) => c.tables),
    objects: all.flatMap((c) => c.objects),
    // Only the rest part dumps large objects; a part without any reports the digest of nothing.
    large_objects: withLargeObjects.length === 1 ? withLargeObjects[0].large_objects : all.find((c) => c.large_objects)?.large_objects ?? null,
  };
}

/**
 * The contents of a MariaDB dump from its parts': every table of pre-data (with no rows)
 * unless a data part holds its rows, and the objects of pre-data and post-data, which
 * together are what a single dump would record.
 */
export function mergeMysqlContents(list: Array<DumpContents | null>): DumpContents | null {
  if (list.some((c) => c === null)) return null;
  const all = list as DumpContents[];
  const tables = new Map<string, DumpContents['tables'][number]>();
  for (const c of all) for (const t of c.tables) if (!tables.has(t.table) || t.rows > 0) tables.set(t.table, t);
  return {
    format: 'strongbox-contents/1',
    engine: 'mysql',
    tables: [...tables.values()],
    objects: all.flatMap((c) => c.objects),
    large_objects: null,
  };
}

/** Run a parallel backup of `input.backup` (claimed, running). Never throws for a failed dump. */
export async function runParallelBackup(ctx: AppContext, input: ParallelBackupInput): Promise<BackupUpdate> {
  const { backup, branch, database, org, conn, server, extras, folder, recipients, encryption, signal } = input;
  const compression = backup.compression as Compression;
  const engine = engineFor(database.kind);
  const suffix = `${engine.dumpSuffix}${compressionSuffix(compression)}${encryption ? '.age' : ''}`;
  const sumsKey = `${folder}/${SHA256SUMS}`;
  const targets: Target[] = [];
  let source: ParallelSource | null = null;
  // One stop for every part: the job's signal, the idle timeout, the first part that fails.
  const stop = new AbortController();
  const onJobAbort = () => stop.abort(signal.reason);
  signal.addEventListener('abort', onJobAbort, { once: true });
  const partSignal = stop.signal;
  // Every part's pipeline, fan-out and dump tool listen to it.
  setMaxListeners(64, partSignal);
  let idleTimer: NodeJS.Timeout | undefined;
  let parts: BackupPart[] = [];

  try {
    source = await openSource(ctx, input);
    const held = source;
    const dataParts = held.dataParts;
    parts = plannedParts(dataParts, suffix);
    const now = nowIso(ctx.clock());
    for (const dest of input.dests) {
      const t: Target = { dest, provider: openDestination(ctx, dest), artifactId: newId(), stored: [], writer: null, error: null };
      targets.push(t);
      await ctx.db
        .insertInto('artifacts')
        .values({ id: t.artifactId, backup_id: backup.id, destination_id: dest.id, destination_name: dest.name, provider: dest.provider, path: sumsKey, parts: JSON.stringify(parts), state: 'pending', sha256: null, error: null, created_at: now, updated_at: now })
        .execute();
    }
    ctx.log.info({ backup: backup.id, jobs: input.jobs, parts: parts.length, tables: held.tableCount }, 'parallel backup planned');

    // Progress over every part, to the catalog at most once a second.
    const rawSeen = new Map<string, number>();
    const storedSeen = new Map<string, number>();
    const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    let lastWrite = 0;
    const progress = () => {
      const t = Date.now();
      if (t - lastWrite < 900) return;
      lastWrite = t;
      void ctx.db
        .updateTable('backups')
        .set({ progress_raw_bytes: total(rawSeen), progress_bytes: total(storedSeen), progress_at: nowIso(ctx.clock()) })
        .where('id', '=', backup.id)
        .execute()
        .catch((e) => ctx.log.warn({ err: e, backup: backup.id }, 'progress update failed'));
    };
    // No part producing bytes for the idle timeout (a lock, a hung server) stops them all.
    const idleMs = ctx.config.dumpIdleTimeoutSeconds * 1000;
    let seen = -1;
    let seenAt = Date.now();
    idleTimer = setInterval(() => {
      const now = total(rawSeen);
      if (now !== seen) {
        seen = now;
        seenAt = Date.now();
      } else if (Date.now() - seenAt >= idleMs) {
        stop.abort(new JobStopped('idle_timeout', `the dump produced no data for ${ctx.config.dumpIdleTimeoutSeconds} s (waiting on a lock, or the server hung) and was stopped`));
      }
    }, Math.min(1000, Math.max(50, idleMs / 4)));

    const inspections = new Map<string, Inspection>();
    let clientVersion = '';

    /** Dump one part into every live destination; resolves once each holds it committed (or failed). */
    const writePart = async (part: BackupPart): Promise<void> => {
      partSignal.throwIfAborted();
      const key = `${folder}/${part.file}`;
      const live: Array<{ t: Target; writer: ObjectWriter }> = [];
      for (const t of targets) {
        if (t.error !== null) continue;
        try {
          live.push({ t, writer: await t.provider.create(key) });
        } catch (e) {
          t.error = `cannot start writing part ${part.name}: ${messageOf(e)}`;
        }
      }
      if (live.length === 0) throw new AllDestinationsFailed();
      const index = parts.filter((p) => p.section === 'data').indexOf(part);
      const abortAll = async () => {
        for (const l of live) await l.writer.abort().catch(() => {});
      };
      // The shared data path (pipeline/store.ts): pg_dump writes into zstd and age directly,
      // the row counter and digests read the raw bytes in a reader thread.
      let stored: StoreResult;
      try {
        stored = await storeStream(
          {
            start: async (output) => {
              const dump = await held.start(part, index, output, partSignal);
              clientVersion = dump.clientVersion;
              return dump;
            },
          },
          {
            compression,
            ...(compression === 'zstd' ? { level: ctx.config.zstdLevel } : {}),
            recipients,
            targets: live.map((l) => ({ id: l.t.artifactId, stream: l.writer.stream })),
            inspect: held.inspect,
            // The parts share reader threads (one per two cores) instead of a thread each.
            sharedReader: true,
            signal: partSignal,
            clock: ctx.clock,
            onProgress: (p) => {
              rawSeen.set(part.name, p.rawBytes);
              storedSeen.set(part.name, p.storedBytes);
              progress();
            },
          },
        );
      } catch (e) {
        await abortAll();
        if (partSignal.aborted) throw partSignal.reason;
        if (e instanceof StoreError && /^every destination failed/.test(e.message)) {
          for (const r of e.targets) if (!r.ok) live.find((l) => l.t.artifactId === r.id)!.t.error = `writing part ${part.name} failed: ${messageOf(r.error)}`;
          throw new AllDestinationsFailed();
        }
        throw new PartFailed(part, e);
      }
      for (const r of stored.targets) if (!r.ok) live.find((l) => l.t.artifactId === r.id)!.t.error = `writing part ${part.name} failed: ${messageOf(r.error)}`;
      inspections.set(part.name, stored.inspection);
      part.size = stored.size;
      part.sha256 = stored.sha256;
      part.raw_size = stored.rawBytes;
      const counts = stored.inspection.counts;
      if (part.tables && counts) for (const t of part.tables) t.rows = counts[held.rowKey(t)] ?? 0;
      for (const l of live) {
        if (l.t.error !== null) {
          await l.writer.abort().catch(() => {});
          continue;
        }
        try {
          await commitAndCheck(l.t.provider, l.writer, key, stored.size);
          l.t.stored.push(key);
        } catch (e) {
          l.t.error = `committing part ${part.name} failed: ${messageOf(e)}`;
        }
      }
      if (targets.every((t) => t.error !== null)) throw new AllDestinationsFailed();
    };

    // The largest data parts first (they decide when the backup ends), the sections
    // without rows after them; at most `jobs` dumps at a time.
    const order = [...parts].sort((a, b) => rank(a, dataParts, parts) - rank(b, dataParts, parts));
    await runPool(order, held.concurrency, writePart, () => stop.abort(new Error('another part failed')));
    clearInterval(idleTimer);
    idleTimer = undefined;
    await held.release();

    // Every part is in every live destination: SHA256SUMS pins them, the manifest describes them.
    const sums = sha256Sums(parts);
    const sha256 = sha256Of(sums);
    const size = parts.reduce((n, p) => n + (p.size ?? 0), 0);
    const rawSize = parts.reduce((n, p) => n + (p.raw_size ?? 0), 0);

    let snapshotId: string | null = null;
    try {
      const ddl = await engine.schemaDump(conn, { serverMajor: server.major, signal });
      snapshotId = (await recordSnapshot(ctx.db, branch, ddl, ctx.clock())).id;
    } catch (e) {
      if (signal.aborted) throw e;
      ctx.log.warn({ backup: backup.id, err: messageOf(e) }, 'could not take the schema snapshot');
    }
    const contents = held.merge(parts.map((p) => inspections.get(p.name)?.contents ?? null));
    if (contents && input.dumpHistory) contents.dump_options = { dump_history: true };
    const rowCounts = contents ? Object.fromEntries(contents.tables.map((t) => [held.rowKey({ schema: t.schema ?? '', table: t.table }), t.rows])) : null;
    // The largest statement of any part: what a restore's max_allowed_packet must hold.
    const statements = [...inspections.values()].map((i) => i.largestStatement).filter((n): n is number => n !== null);
    const largestStatement = statements.length ? Math.max(...statements) : null;
    const recoveryStart = held.recoveryStart;
    if (contents) await saveContents(ctx.db, backup.id, contents, ctx.clock());
    else ctx.log.warn({ backup: backup.id, reasons: [...inspections.values()].map((c) => c.reason).filter(Boolean) }, 'no row counts from the parts; full verification will not compare them');
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
      method: 'logical',
      dump_format: held.dumpFormat,
      compression,
      encryption,
      // The parts' list; its sha256 is the backup's (see parts).
      file: SHA256SUMS,
      size,
      raw_size: rawSize,
      sha256,
      jobs: input.jobs,
      ...(held.consistency ? { consistency: held.consistency() } : {}),
      parts,
      table_row_counts: rowCounts,
      contents,
      largest_statement: largestStatement,
      recovery_start: recoveryStart,
      dump_history: input.dumpHistory === true,
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
      if (t.error !== null) continue;
      try {
        await t.provider.put(sumsKey, Buffer.from(sums));
        t.stored.push(sumsKey);
        await t.provider.put(`${folder}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
        await ctx.db.updateTable('artifacts').set({ state: 'success', size, sha256, parts: JSON.stringify(parts), updated_at: nowIso(ctx.clock()) }).where('id', '=', t.artifactId).execute();
      } catch (e) {
        t.error = `commit failed: ${messageOf(e)}`;
      }
    }
    const update: BackupUpdate = {
      size,
      raw_size: rawSize,
      sha256,
      client_version: clientVersion,
      table_row_counts: rowCounts === null ? null : JSON.stringify(rowCounts),
      largest_statement: largestStatement,
      method: 'logical',
      recovery_start: recoveryStart === null ? null : JSON.stringify(recoveryStart),
      database_properties: extras.properties === null ? null : JSON.stringify(extras.properties),
      ownership: extras.ownership === null ? null : JSON.stringify(extras.ownership),
      encryption: encryption === null ? null : JSON.stringify(encryption),
      schema_snapshot_id: snapshotId,
      progress_raw_bytes: rawSize,
      progress_bytes: size,
      progress_at: completedAt.toISOString(),
      completed_at: completedAt.toISOString(),
      expires_at: addInterval(completedAt, backup.retention_value, backup.retention_unit as IntervalUnit).toISOString(),
    };
    const failed = targets.filter((t) => t.error !== null);
    if (failed.length === targets.length) return await settle(ctx, targets, null, `every destination failed: ${describeFailures(targets)}`);
    if (failed.length === 0) return await settle(ctx, targets, { ...update, state: 'success', error: null }, null);
    return await settle(ctx, targets, { ...update, state: 'failed' }, `some destinations failed: ${describeFailures(targets)}`);
  } catch (e) {
    for (const t of targets) if (t.error === null) t.error = 'not stored: the backup did not complete';
    const stopped = e instanceof JobStopped ? e : partSignal.aborted && partSignal.reason instanceof JobStopped ? partSignal.reason : signal.aborted && signal.reason instanceof JobStopped ? signal.reason : null;
    if (stopped?.reason === 'canceled') return await settle(ctx, targets, { state: 'canceled', error: stopped.message, completed_at: nowIso(ctx.clock()) }, null);
    const message = stopped
      ? stopped.message
      : e instanceof AllDestinationsFailed
        ? `every destination failed: ${describeFailures(targets)}`
        : e instanceof PartFailed || e instanceof EngineError
          ? `parallel backup failed: ${e.message}`
          : `backup failed: ${messageOf(e)}`;
    return await settle(ctx, targets, null, message);
  } finally {
    if (idleTimer) clearInterval(idleTimer);
    signal.removeEventListener('abort', onJobAbort);
    await source?.release();
  }
}

class AllDestinationsFailed extends Error {
  constructor() {
    super('every destination failed');
    this.name = 'AllDestinationsFailed';
  }
}

/** Order of the pool: data parts by planned size (largest first), then pre-data and post-data. */
function rank(part: BackupPart, dataParts: PlannedDataPart[], parts: BackupPart[]): number {
  if (part.section !== 'data') return Number.MAX_SAFE_INTEGER - (part.section === 'pre-data' ? 1 : 0);
  const i = parts.filter((p) => p.section === 'data').indexOf(part);
  return -dataParts[i].bytes;
}

/**
 * Run `work` over `items`, at most `limit` at a time. The first failure calls `onFailure`
 * (which stops the others), lets those running settle, and is thrown; later items do not start.
 */
async function runPool<T>(items: T[], limit: number, work: (item: T) => Promise<void>, onFailure: () => void): Promise<void> {
  let next = 0;
  let first: unknown = undefined;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        if (!failed) {
          failed = true;
          first = e;
          onFailure();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed) throw first;
}

function describeFailures(targets: Target[]): string {
  return targets
    .filter((t) => t.error !== null)
    .map((t) => `${t.dest.name} (${t.error})`)
    .join('; ');
}

/**
 * Settle every copy: a failed one loses the parts it had stored (no destination keeps half a
 * backup) and records why. With a `failure` and no update, the backup fails as a whole.
 */
async function settle(ctx: AppContext, targets: Target[], update: BackupUpdate | null, failure: string | null): Promise<BackupUpdate> {
  for (const t of targets) {
    if (t.error === null) continue;
    for (const key of t.stored) await t.provider.delete(key).catch((e) => ctx.log.warn({ err: e, key }, 'could not remove a part of a failed parallel backup'));
    if (t.stored.length) await t.provider.delete(manifestKey(t.stored[0])).catch(() => {});
    await ctx.db.updateTable('artifacts').set({ state: 'failed', error: cleanErrorText(t.error), updated_at: nowIso(ctx.clock()) }).where('id', '=', t.artifactId).execute();
  }
  if (update === null) return { state: 'failed', error: cleanErrorText(failure ?? 'the parallel backup failed'), completed_at: nowIso(ctx.clock()) };
  return failure === null ? update : { ...update, error: cleanErrorText(failure) };
}
