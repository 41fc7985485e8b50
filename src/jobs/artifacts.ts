/**
 * Reading artifacts back and removing them: shared by restore, verification, download
 * and deletion, so that every reader checks the same things the same way.
 */
import path from 'node:path/posix';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Artifact, Backup } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { HashCounter } from '../pipeline/hash.js';
import { ChecksumMismatchError, Sha256Verifier } from '../pipeline/verify.js';
import type { StorageProvider } from '../storage/provider.js';
import { cleanErrorText } from '../error-text.js';
import { copyKeys, PartsNotSupportedError } from './parallel-parts.js';

/** The manifest written beside every dump. */
export function manifestKey(artifactPath: string): string {
  return `${path.dirname(artifactPath)}/manifest.json`;
}

/**
 * A backup's stored artifacts, best first: copies last found damaged at the end (they are
 * still tried, as the damage may have been a bad read), local ones first among the rest,
 * as they are the fastest to read back.
 */
export async function readableArtifacts(ctx: AppContext, backupId: string): Promise<Artifact[]> {
  const rows = await ctx.db.selectFrom('artifacts').selectAll().where('backup_id', '=', backupId).where('state', '=', 'success').execute();
  const damaged = (a: Artifact) => Number(a.verification === 'failed');
  return rows.sort((a, b) => damaged(a) - damaged(b) || Number(b.provider === 'local') - Number(a.provider === 'local') || a.created_at.localeCompare(b.created_at));
}

/** Longest part of a backup's own error quoted in a refusal. */
const QUOTED_ERROR_CHARS = 300;

/**
 * The copies `backup` can be read back from (restored, verified, downloaded), best first,
 * or why there is none. What counts is the dump, not the backup's state: a backup that is
 * `failed` only because some destination failed still has the copies its complete dump
 * stored, and they are as good as any (their sha256 is the dump's). One whose dump failed
 * or was interrupted never recorded a sha256, and nothing of it can be read back.
 */
export async function readableCopies(ctx: AppContext, backup: Backup): Promise<{ copies: Artifact[]; refusal: string | null }> {
  if (backup.deleted_at !== null) return { copies: [], refusal: 'that backup was deleted; its copies are gone' };
  if (backup.state === 'pending' || backup.state === 'running') return { copies: [], refusal: `that backup is ${backup.state}; it can be read back once it has finished` };
  if (backup.sha256 === null) {
    const why = backup.error ? `: ${backup.error.length > QUOTED_ERROR_CHARS ? `${backup.error.slice(0, QUOTED_ERROR_CHARS)}…` : backup.error}` : '';
    return { copies: [], refusal: `that backup is ${backup.state} and its dump never completed, so no copy of it was stored${why}` };
  }
  const copies = (await readableArtifacts(ctx, backup.id)).filter((a) => a.sha256 === backup.sha256);
  return { copies, refusal: copies.length ? null : 'that backup has no stored copy left to read back (every destination failed, or its copies were deleted)' };
}

/** Record that a copy's stored bytes are not the ones written, so readers try it last and people see it. */
export async function markDamaged(ctx: AppContext, artifact: Artifact, detail: string): Promise<void> {
  const now = nowIso(ctx.clock());
  await ctx.db
    .updateTable('artifacts')
    .set({ verification: 'failed', verified_at: now, error: cleanErrorText(`damaged: ${detail}`), updated_at: now })
    .where('id', '=', artifact.id)
    .where('state', '=', 'success')
    .execute()
    .catch((e) => ctx.log.warn({ err: e, artifact: artifact.id }, 'could not record a damaged copy'));
  ctx.log.warn({ artifact: artifact.id, backup: artifact.backup_id, destination: artifact.destination_name, detail }, 'a stored copy is damaged');
}

/**
 * Read a stored copy whole and compare it with its recorded size and sha256: null when
 * it is intact, else what differs. Storage errors are thrown (then nobody knows).
 */
export async function copyDamage(ctx: AppContext, artifact: Artifact, signal: AbortSignal): Promise<string | null> {
  const { provider } = await openDestinationById(ctx, artifact.destination_id);
  const counter = new HashCounter();
  await pipeline(await provider.read(artifact.path), counter, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
  if (counter.bytes !== artifact.size) return `its size is ${counter.bytes} bytes, ${artifact.size} were stored`;
  if (counter.digest() !== artifact.sha256) return `its sha256 is ${counter.digest()}, ${artifact.sha256} was stored`;
  return null;
}

/**
 * The stored bytes of an artifact, checked against its recorded sha256 and size while
 * they stream: a corrupt artifact errors (ChecksumMismatchError) before its last bytes
 * are released, so no consumer ever sees a complete corrupt stream.
 */
export async function openVerifiedArtifact(ctx: AppContext, artifact: Artifact): Promise<{ stream: Readable; provider: StorageProvider }> {
  // A parallel backup's copy is several objects (parallel-parts.ts); its readers take them one by one.
  if (artifact.parts !== null) throw new PartsNotSupportedError('reading this backup as one stream');
  const { provider } = await openDestinationById(ctx, artifact.destination_id);
  if (!artifact.sha256) throw new Error(`artifact ${artifact.id} has no recorded sha256`);
  const verifier = verifiedStream(await provider.read(artifact.path), artifact.sha256, artifact.size);
  verifier.on('error', (e) => {
    if (e instanceof ChecksumMismatchError) void markDamaged(ctx, artifact, e.message);
  });
  return { stream: verifier, provider };
}

/**
 * `raw` (a stored object's bytes) through a Sha256Verifier checking them against `sha256` and
 * `size`. A reader that stops early (a failed or canceled restore) destroys only the
 * verifier: the stored object's stream (an open file, a connection) goes with it.
 */
export function verifiedStream(raw: Readable, sha256: string, size: number | null): Sha256Verifier {
  const verifier = new Sha256Verifier(sha256, size);
  raw.on('error', (e) => verifier.destroy(e));
  verifier.on('close', () => raw.destroy());
  return raw.pipe(verifier);
}

/**
 * Open the first of `artifacts` whose stored object can be opened (a copy that vanished
 * from its destination is skipped); throws the last error when none can.
 */
export async function openFirstReadable(ctx: AppContext, artifacts: Artifact[]): Promise<{ artifact: Artifact; stream: Readable }> {
  let last: unknown = new Error('no artifact');
  for (const artifact of artifacts) {
    try {
      return { artifact, ...(await openVerifiedArtifact(ctx, artifact)) };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/**
 * Remove a backup's artifacts (dump and manifest) from every destination and mark the
 * backup deleted. Idempotent: artifacts already gone are skipped, and a destination that
 * fails keeps its artifact listed with the error so a later call (or the sweeper) retries.
 */
export async function deleteBackupArtifacts(ctx: AppContext, backup: Backup): Promise<{ failed: Array<{ destination: string; error: string }> }> {
  const failed: Array<{ destination: string; error: string }> = [];
  const artifacts = await ctx.db.selectFrom('artifacts').selectAll().where('backup_id', '=', backup.id).where('state', '!=', 'deleted').execute();
  for (const a of artifacts) {
    try {
      const { provider } = await openDestinationById(ctx, a.destination_id);
      // A parallel backup's copy: every part and its SHA256SUMS; else the one dump.
      for (const key of copyKeys(a)) {
        await provider.delete(key);
        await provider.removePartials(key);
      }
      await provider.delete(manifestKey(a.path));
      await ctx.db.updateTable('artifacts').set({ state: 'deleted', error: null, updated_at: nowIso(ctx.clock()) }).where('id', '=', a.id).execute();
    } catch (e) {
      const error = cleanErrorText(`delete failed, will be retried: ${(e as Error).message}`);
      failed.push({ destination: a.destination_name, error });
      await ctx.db.updateTable('artifacts').set({ error, updated_at: nowIso(ctx.clock()) }).where('id', '=', a.id).execute();
    }
  }
  const now = nowIso(ctx.clock());
  await ctx.db.updateTable('backups').set({ deleted_at: now, updated_at: now }).where('id', '=', backup.id).where('deleted_at', 'is', null).execute();
  return { failed };
}
