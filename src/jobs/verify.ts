/**
 * Verification: proves a backup can come back. Quick: re-read every artifact and check
 * its size and sha256 against the catalog and its manifest. Full (`restore: true`):
 * also restore into a scratch database, dump it again and compare its contents (data
 * digests per table, the inventory of the other objects) with those recorded at backup
 * time (comparison.ts; row counts for older backups), and drop the scratch database
 * whatever happens, even after a crash (scratch.ts). A drill of an archived branch restores
 * to its latest archived time instead, and compares with the source (archive/drill.ts).
 */
import type { AppContext } from '../context.js';
import type { Artifact, Backup, Job } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { engineFor, parseConnectionUrl, type ConnectionInfo } from '../engines/index.js';
import { HashCounter } from '../pipeline/hash.js';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { openDestinationById } from '../destinations.js';
import { manifestKey, readableCopies } from './artifacts.js';
import { restoreArtifact, withIdentities, type JobUpdate } from './restore.js';
import { compareRestored, type Comparison } from './comparison.js';
import { clearScratch, recordScratch, scratchDatabaseName } from './scratch.js';
import { recordedProperties, statementTooLarge, verificationWarnings } from './fidelity.js';
import { cleanErrorText } from '../error-text.js';
import { checkPartsCopy, dataPartCount } from './parallel-copies.js';
import { checkPointInTimeRestore } from '../archive/drill.js';
import { BACKUP_END } from '../archive/pitr.js';

export interface VerifyParams {
  restore: boolean;
  /** A restore drill of an archived branch: restore to this point ('latest') and compare with the source (archive/drill.ts). */
  restore_point?: 'latest';
}

export interface ArtifactCheck {
  artifact_id: string;
  destination: string;
  ok: boolean;
  /** The stored bytes are not the ones written (size or sha256 differ): the copy is damaged. */
  damaged: boolean;
  size: number | null;
  sha256: string | null;
  error: string | null;
}

export interface RestoreCheck {
  ok: boolean;
  database: string;
  tables: number;
  /** How the copy was compared, and every difference found (comparison.ts). */
  method?: Comparison['method'];
  differences?: Comparison['differences'];
  differences_total?: number;
  mismatches: Array<{ table: string; expected: number | null; actual: number | null }>;
  /** Something worth knowing that is not a failure. */
  note: string | null;
  error: string | null;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function checkArtifact(ctx: AppContext, backup: Backup, a: Artifact, signal: AbortSignal): Promise<ArtifactCheck> {
  const check: ArtifactCheck = { artifact_id: a.id, destination: a.destination_name, ok: false, damaged: false, size: null, sha256: null, error: null };
  try {
    const { provider } = await openDestinationById(ctx, a.destination_id);
    const st = await provider.stat(a.path);
    if (!st) throw new Error('the dump object is missing from storage');
    check.size = st.size;
    const counter = new HashCounter();
    await pipeline(await provider.read(a.path), counter, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
    check.sha256 = counter.digest();
    const problems: string[] = [];
    if (st.size !== a.size) problems.push(`size ${st.size} differs from the ${a.size} bytes recorded`);
    if (check.sha256 !== a.sha256) problems.push(`sha256 ${check.sha256} differs from the recorded ${a.sha256}`);
    check.damaged = problems.length > 0;
    try {
      const chunks: Buffer[] = [];
      for await (const c of await provider.read(manifestKey(a.path))) chunks.push(c as Buffer);
      const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (manifest.backup_id !== backup.id) problems.push(`the manifest names backup ${manifest.backup_id}`);
      if (manifest.sha256 !== check.sha256) problems.push(`the manifest's sha256 ${manifest.sha256} differs from the stored bytes`);
      if (manifest.size !== st.size) problems.push(`the manifest's size ${manifest.size} differs from the stored ${st.size}`);
    } catch (e) {
      problems.push(`manifest.json unreadable: ${messageOf(e)}`);
    }
    check.ok = problems.length === 0;
    check.error = problems.length ? problems.join('; ') : null;
  } catch (e) {
    if (signal.aborted) throw e;
    check.error = cleanErrorText(messageOf(e));
  }
  const now = nowIso(ctx.clock());
  // The copy's error says what its last check found, so GET .../artifacts shows why.
  const error = check.ok ? null : check.damaged ? `damaged: ${check.error}` : check.error;
  await ctx.db.updateTable('artifacts').set({ verified_at: now, verification: check.ok ? 'passed' : 'failed', error, updated_at: now }).where('id', '=', a.id).execute();
  return check;
}

async function checkRestore(ctx: AppContext, backup: Backup, artifact: Artifact, job: Job, signal: AbortSignal): Promise<RestoreCheck> {
  const jobId = job.id;
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
  if (branch.connection_url_enc === null) throw new Error('the source branch has no connection URL to restore a scratch copy next to');
  const engine = engineFor(backup.engine);
  const source = parseConnectionUrl(ctx.secrets.open(branch.connection_url_enc)).info;
  // Scratch copies live on the source's server, under a name no user picks.
  const scratch = { ...source, database: scratchDatabaseName(jobId) };
  const check: RestoreCheck = { ok: false, database: scratch.database, tables: 0, mismatches: [], note: null, error: null };
  // A statement the server would refuse fails the restore at once, named, with what to raise.
  const tooLarge = await statementTooLarge(engine, backup, source);
  if (tooLarge) return { ...check, error: `restore not attempted: ${tooLarge}` };
  // Created like the backed-up database (encoding, locale, collation), or text would
  // compare and sort differently in the copy than in the source.
  // Recorded before it exists: if this process dies, recovery knows what to drop.
  await recordScratch(ctx, jobId, scratch.database);
  await engine.createDatabase(source, scratch.database, recordedProperties(backup));
  try {
    // A parallel backup restores with as many processes as it was dumped with.
    await withIdentities(ctx, job, (identityFiles) => restoreArtifact(ctx, engine, backup, artifact, scratch, { signal, identityFiles, jobs: artifact.parts !== null ? dataPartCount(artifact) : undefined }));
    const compared = await compareRestored(ctx, engine, backup, scratch, signal);
    Object.assign(check, compared);
    check.ok = compared.error === null;
  } catch (e) {
    if (signal.aborted) throw e;
    check.error = cleanErrorText(`restore failed: ${messageOf(e)}`);
  } finally {
    await engine
      .dropDatabase(source, scratch.database)
      .then(() => clearScratch(ctx, jobId))
      .catch((e) => ctx.log.error({ err: messageOf(e), database: scratch.database }, 'could not drop a verification scratch database; recovery will try again'));
  }
  return check;
}

/** The connection of the backup's branch, or null when it has none (catalog rebuilt from storage). */
async function sourceConnection(ctx: AppContext, backup: Backup): Promise<ConnectionInfo | null> {
  const branch = await ctx.db.selectFrom('branches').select('connection_url_enc').where('id', '=', backup.branch_id).executeTakeFirst();
  return branch?.connection_url_enc ? parseConnectionUrl(ctx.secrets.open(branch.connection_url_enc)).info : null;
}

export async function runVerify(ctx: AppContext, job: Job, signal: AbortSignal): Promise<JobUpdate> {
  const params = JSON.parse(job.params) as VerifyParams;
  const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', job.backup_id).executeTakeFirstOrThrow();
  // A backup that failed only because some destination did is verified from the copies it has.
  const { copies: artifacts, refusal } = await readableCopies(ctx, backup);
  const checks: ArtifactCheck[] = [];
  // A parallel backup's copy is checked part by part (parallel-copies.ts).
  for (const a of artifacts) checks.push(a.parts !== null ? await checkPartsCopy(ctx, backup, a, signal) : await checkArtifact(ctx, backup, a, signal));
  let restore: RestoreCheck | null = null;
  const good = artifacts.find((a) => checks.find((c) => c.artifact_id === a.id)?.ok);
  // An archived branch's drill, or a base backup (only a replay restores one): archive/drill.ts.
  if (params.restore && good) {
    restore =
      params.restore_point === 'latest' || backup.method === 'base'
        ? await checkPointInTimeRestore(ctx, backup, job, params.restore_point === 'latest' ? 'latest' : BACKUP_END, signal)
        : await checkRestore(ctx, backup, good, job, signal);
  }

  const warnings = await verificationWarnings(ctx, engineFor(backup.engine), backup, await sourceConnection(ctx, backup));
  const problems: string[] = [];
  if (refusal !== null) problems.push(refusal);
  for (const c of checks) if (!c.ok) problems.push(`copy in "${c.destination}" ${c.damaged ? 'is damaged' : 'failed its check'}: ${c.error}`);
  if (params.restore && !good && artifacts.length) problems.push('no intact copy to restore from');
  if (restore && !restore.ok) problems.push(restore.error ?? 'the restore check failed');
  const passed = problems.length === 0;
  const now = nowIso(ctx.clock());
  await ctx.db.updateTable('backups').set({ verified_at: now, verification: passed ? 'passed' : 'failed', updated_at: now }).where('id', '=', backup.id).execute();
  return {
    state: passed ? 'success' : 'failed',
    error: passed ? null : problems.join('; '),
    result: JSON.stringify({ artifacts: checks, restore, ...(warnings.length ? { warnings } : {}) }),
    bytes: checks.reduce((n, c) => n + (c.size ?? 0), 0),
    completed_at: now,
  };
}
