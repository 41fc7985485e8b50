/**
 * Reading artifacts back and removing them: shared by restore, verification, download
 * and deletion, so that every reader checks the same things the same way.
 */
import path from 'node:path/posix';
import type { Readable } from 'node:stream';
import type { AppContext } from '../context.js';
import type { Artifact, Backup } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { Sha256Verifier } from '../pipeline/verify.js';
import type { StorageProvider } from '../storage/provider.js';

/** The manifest written beside every dump. */
export function manifestKey(artifactPath: string): string {
  return `${path.dirname(artifactPath)}/manifest.json`;
}

/** A backup's good artifacts, local ones first: they are the fastest to read back. */
export async function readableArtifacts(ctx: AppContext, backupId: string): Promise<Artifact[]> {
  const rows = await ctx.db.selectFrom('artifacts').selectAll().where('backup_id', '=', backupId).where('state', '=', 'success').execute();
  return rows.sort((a, b) => Number(b.provider === 'local') - Number(a.provider === 'local') || a.created_at.localeCompare(b.created_at));
}

/**
 * The stored bytes of an artifact, checked against its recorded sha256 and size while
 * they stream: a corrupt artifact errors (ChecksumMismatchError) before its last bytes
 * are released, so no consumer ever sees a complete corrupt stream.
 */
export async function openVerifiedArtifact(ctx: AppContext, artifact: Artifact): Promise<{ stream: Readable; provider: StorageProvider }> {
  const { provider } = await openDestinationById(ctx, artifact.destination_id);
  if (!artifact.sha256) throw new Error(`artifact ${artifact.id} has no recorded sha256`);
  const raw = await provider.read(artifact.path);
  const verifier = new Sha256Verifier(artifact.sha256, artifact.size);
  raw.on('error', (e) => verifier.destroy(e));
  return { stream: raw.pipe(verifier), provider };
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
      await provider.delete(a.path);
      await provider.removePartials(a.path);
      await provider.delete(manifestKey(a.path));
      await ctx.db.updateTable('artifacts').set({ state: 'deleted', error: null, updated_at: nowIso(ctx.clock()) }).where('id', '=', a.id).execute();
    } catch (e) {
      const error = `delete failed, will be retried: ${(e as Error).message}`;
      failed.push({ destination: a.destination_name, error });
      await ctx.db.updateTable('artifacts').set({ error, updated_at: nowIso(ctx.clock()) }).where('id', '=', a.id).execute();
    }
  }
  const now = nowIso(ctx.clock());
  await ctx.db.updateTable('backups').set({ deleted_at: now, updated_at: now }).where('id', '=', backup.id).where('deleted_at', 'is', null).execute();
  return { failed };
}
