/**
 * Point-in-time restore of a MariaDB/MySQL branch: the plan's dump is restored into the
 * job's (new, empty) database as any restore is, then the archived binlogs from the dump's
 * coordinates on are replayed into it:
 *
 *   mariadb-binlog --database=<source> --rewrite-db='<source>-><target>'
 *       --start-position=<dump's position> [--stop-datetime=<T's second + 1 s>] <files…>
 *     | (replay.ts) | mariadb --database=<target>
 *
 * Only the source database's events are replayed (`--database`, which MariaDB applies to
 * the name before the rewrite): other databases of the server stay untouched.
 *
 * "Restore to T" means every transaction committed at or before T, as on PostgreSQL. The
 * binlog dates events to the whole second (the second their statement began), and
 * `--stop-datetime` stops at the first event dated at or after its argument, so the stop is
 * the second after T's: every transaction the binlog dates at or before T's second is
 * replayed, none dated later. Within T's own second the binlog cannot tell before from
 * after: a transaction logged in that second after T is replayed too. To leave one out,
 * restore to a time in an earlier second than the one its binlog event shows.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppContext } from '../../context.js';
import type { Backup, Job } from '../../catalog/schema.js';
import { EngineError, engineFor, parseConnectionUrl, type ConnectionInfo } from '../../engines/index.js';
import { feedTool, runTool } from '../../engines/process.js';
import { readableCopies } from '../../jobs/artifacts.js';
import { sourceDatabaseName } from '../../jobs/fidelity.js';
import { DamagedCopyError, DecryptionError, restoreArtifact, withIdentities } from '../../jobs/restore.js';
import { fetchArchiveFile } from '../fetch.js';
import type { PitrPlan } from '../pitr.js';
import { pitrScratchDir, removeScratch } from '../postgres/server.js';
import { binlogNameAfter, binlogReader, binlogToolEnv, sqlClient } from './binlog.js';
import { BinlogReplayFilter } from './replay.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `--stop-datetime` for a restore to `target` (UTC; the tool runs with TZ=UTC): the second after T's. */
export function stopDatetime(target: string): string {
  const next = new Date(Math.floor(Date.parse(target) / 1000) * 1000 + 1000);
  return next.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

/**
 * The binlog chain of a plan, checked: it starts at the dump's file and no number is
 * skipped. Throws naming the missing file (never replays across a hole).
 */
export function checkChain(startFile: string, names: string[]): void {
  if (names.length === 0) throw new EngineError(`binlog file ${startFile}, where the dump's position is, is not in the archive; nothing can be replayed after the dump`);
  let expected = startFile;
  for (const name of names) {
    if (name !== expected) throw new EngineError(`binlog file ${expected} is missing from the archive (the chain goes on at ${name}); a point-in-time restore cannot replay across it`);
    expected = binlogNameAfter(name);
  }
}

/** Restore `plan` into the (existing, empty) database of the job's branch, or `into` (a restore drill's scratch database). */
export async function restoreMysqlToPoint(ctx: AppContext, job: Job, plan: PitrPlan, signal: AbortSignal, into?: ConnectionInfo): Promise<void> {
  const backup = plan.backup;
  const start = backup.recovery_start ? (JSON.parse(backup.recovery_start) as { file?: string; position?: number }) : null;
  if (!start?.file || typeof start.position !== 'number') {
    throw new EngineError(`backup "${backup.id}" recorded no binlog coordinates (log_bin was off when it was taken), so no binlog can be replayed after it`);
  }
  const names = plan.files.map((f) => f.name);
  checkChain(start.file, names);
  let conn = into;
  if (!conn) {
    const target = await ctx.db.selectFrom('branches').selectAll().where('id', '=', job.branch_id!).executeTakeFirstOrThrow();
    if (target.connection_url_enc === null) throw new EngineError('the branch to restore into has no connection URL');
    conn = parseConnectionUrl(ctx.secrets.open(target.connection_url_enc)).info;
  }
  const source = await sourceDatabaseName(ctx, backup);
  if (!source) throw new EngineError(`the name of the database backup "${backup.id}" was taken from is not known; binlog events cannot be picked out without it`);
  if (plan.targetTime !== 'latest') refuseBeyondArchive(plan);

  const scratch = pitrScratchDir(ctx, job.id);
  await removeScratch(scratch);
  fs.mkdirSync(scratch, { recursive: true, mode: 0o700 });
  try {
    await withIdentities(ctx, job, async (identityFiles) => {
      await restoreDump(ctx, job, backup, conn, identityFiles, signal);
      const files: string[] = [];
      for (const file of plan.files) {
        signal.throwIfAborted();
        const to = path.join(scratch, file.name);
        await fetchArchiveFile(ctx, file, to, signal, identityFiles);
        files.push(to);
      }
      await replay(conn, source, start.position!, plan.targetTime === 'latest' ? null : plan.targetTime, files, signal);
    });
  } finally {
    await removeScratch(scratch).catch((e) => ctx.log.warn({ job: job.id, err: messageOf(e) }, 'could not remove the scratch folder of a point-in-time restore; the next sweep will'));
  }
}

/**
 * A target in the second of the archive's last event, when nothing after it is archived:
 * events of that same second may be in the binlog the server is still writing (or in one
 * that is missing), and the replay would silently lack them.
 */
function refuseBeyondArchive(plan: PitrPlan): void {
  const last = plan.files[plan.files.length - 1];
  if (!last?.last_event_at) return;
  const second = Math.floor(Date.parse(plan.targetTime) / 1000);
  const lastSecond = Math.floor(Date.parse(last.last_event_at) / 1000);
  if (second < lastSecond) return;
  const upTo = new Date(lastSecond * 1000 - 1).toISOString();
  throw new EngineError(
    `cannot restore to ${plan.targetTime}: the archive ends with ${last.name} at ${last.last_event_at}, and events of that second may be in ${binlogNameAfter(last.name)}, which is not archived yet; restore to ${upTo} or earlier, or wait until it is archived`,
  );
}

/** The dump, from the first stored copy that restores. */
async function restoreDump(ctx: AppContext, job: Job, backup: Backup, conn: ConnectionInfo, identityFiles: string[], signal: AbortSignal): Promise<void> {
  const preserveOwnership = (JSON.parse(job.params) as { preserve_ownership?: boolean }).preserve_ownership === true;
  const engine = engineFor('mysql');
  const { copies, refusal } = await readableCopies(ctx, backup);
  if (refusal !== null) throw new EngineError(refusal);
  const problems: string[] = [];
  for (const artifact of copies) {
    signal.throwIfAborted();
    try {
      await restoreArtifact(ctx, engine, backup, artifact, conn, { signal, identityFiles, preserveOwnership });
      return;
    } catch (e) {
      if (signal.aborted) throw e;
      problems.push(e instanceof DamagedCopyError || e instanceof DecryptionError ? e.message : `restore from the copy in "${artifact.destination_name}" failed: ${messageOf(e)}`);
      if (e instanceof DecryptionError) break;
      // A MariaDB dump drops every object before creating it: the next copy lands cleanly.
    }
  }
  throw new EngineError(`the dump could not be restored: ${problems.join('; ')}`);
}

/** mariadb-binlog over the fetched files, through the replay filter, into the target database. */
async function replay(conn: ConnectionInfo, sourceDatabase: string, position: number, targetTime: string | null, files: string[], signal: AbortSignal): Promise<void> {
  const reader = await binlogReader();
  const client = await sqlClient();
  const decode = runTool({
    name: reader.name,
    path: reader.path,
    args: [
      '--no-defaults',
      `--database=${sourceDatabase}`,
      `--rewrite-db=${sourceDatabase}->${conn.database}`,
      `--start-position=${position}`,
      ...(targetTime ? [`--stop-datetime=${stopDatetime(targetTime)}`] : []),
      ...files,
    ],
    env: binlogToolEnv(),
    secrets: [],
    stdin: 'ignore',
    signal,
  });
  const apply = runTool({
    name: client.name,
    path: client.path,
    args: [
      '--no-defaults',
      '--protocol=TCP',
      `--host=${conn.host}`,
      `--port=${conn.port}`,
      `--user=${conn.user}`,
      '--max-allowed-packet=1G',
      `--database=${conn.database}`,
      // mariadb-binlog output holds row images as they are: no interpretation of \ or NUL.
      '--binary-mode',
    ],
    env: binlogToolEnv(conn.password),
    secrets: [conn.password],
    stdin: 'pipe',
    signal,
  });
  const filter = new BinlogReplayFilter(sourceDatabase);
  decode.child.stdout!.on('error', () => undefined);
  decode.child.stdout!.pipe(filter);
  decode.child.stdout!.once('error', (e) => filter.destroy(e));
  // The reader's failure is the story when it fails first (a damaged file): stop the client then.
  decode.done.catch((e) => filter.destroy(e));
  const [decoded, applied] = await Promise.allSettled([decode.done, feedTool(apply, filter, client.name, [conn.password])]);
  if (decoded.status === 'rejected') {
    apply.kill();
    throw decoded.reason;
  }
  if (applied.status === 'rejected') {
    decode.kill();
    const cause = (applied.reason as { cause?: unknown }).cause;
    throw cause instanceof Error && cause.name === 'SourceDatabaseStatement' ? new EngineError(cause.message) : applied.reason;
  }
}
