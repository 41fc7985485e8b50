/**
 * Repair: copy a good artifact of a backup to the destinations where its copy failed, so
 * a backup that failed only because some destination was down becomes whole again.
 */
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Job } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { manifestKey, openVerifiedArtifact, readableArtifacts } from './artifacts.js';
import type { JobUpdate } from './restore.js';
import type { ObjectWriter } from '../storage/provider.js';
import { cleanErrorText } from '../error-text.js';
import { copyParts } from './parallel-copies.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function runRepair(ctx: AppContext, job: Job, signal: AbortSignal): Promise<JobUpdate> {
  const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', job.backup_id).executeTakeFirstOrThrow();
  const fail = (error: string): JobUpdate => ({ state: 'failed', error, completed_at: nowIso(ctx.clock()) });
  const good = await readableArtifacts(ctx, backup.id);
  if (good.length === 0) return fail('the backup has no good artifact to copy from');
  const broken = await ctx.db.selectFrom('artifacts').selectAll().where('backup_id', '=', backup.id).where('state', '=', 'failed').execute();
  const results: Array<{ destination: string; ok: boolean; error: string | null }> = [];
  let bytes = 0;
  for (const target of broken) {
    signal.throwIfAborted();
    let repaired = false;
    let lastError = '';
    // Any good copy will do; a corrupt one fails its checksum and the next is tried.
    for (const source of good) {
      let writer: ObjectWriter | null = null;
      try {
        // A parallel backup's copy: every part, then SHA256SUMS and the manifest (parallel-copies.ts).
        if (source.parts !== null) {
          await copyParts(ctx, source, target, signal);
          await ctx.db
            .updateTable('artifacts')
            .set({ state: 'success', size: source.size, sha256: source.sha256, parts: source.parts, error: null, verified_at: null, verification: null, updated_at: nowIso(ctx.clock()) })
            .where('id', '=', target.id)
            .execute();
          bytes += source.size;
          repaired = true;
          break;
        }
        const { provider: into } = await openDestinationById(ctx, target.destination_id);
        // The failed copy's own write could not always be aborted (the destination was down
        // then: an S3 multipart upload stays open, holding its parts). Nothing writes that
        // key any more, so what it left goes first; a store that cannot list it is no reason
        // not to repair.
        await into.removePartials(target.path).catch((e) => ctx.log.warn({ err: e, artifact: target.id }, 'repair: could not remove what the failed write left'));
        writer = await into.create(target.path);
        const { stream } = await openVerifiedArtifact(ctx, source);
        await pipeline(stream, writer.stream, { signal });
        await writer.commit();
        const st = await into.stat(target.path);
        if (!st || st.size !== source.size) throw new Error(`stored size ${st?.size ?? 'none'} differs from ${source.size}`);
        const { provider: from } = await openDestinationById(ctx, source.destination_id);
        const chunks: Buffer[] = [];
        for await (const c of await from.read(manifestKey(source.path))) chunks.push(c as Buffer);
        await into.put(manifestKey(target.path), Buffer.concat(chunks));
        await ctx.db
          .updateTable('artifacts')
          .set({ state: 'success', size: source.size, sha256: source.sha256, error: null, verified_at: null, verification: null, updated_at: nowIso(ctx.clock()) })
          .where('id', '=', target.id)
          .execute();
        bytes += source.size;
        repaired = true;
        break;
      } catch (e) {
        await writer?.abort().catch(() => {});
        if (signal.aborted) throw e;
        lastError = messageOf(e);
      }
    }
    results.push({ destination: target.destination_name, ok: repaired, error: repaired ? null : lastError });
    if (!repaired) await ctx.db.updateTable('artifacts').set({ error: cleanErrorText(`repair failed: ${lastError}`), updated_at: nowIso(ctx.clock()) }).where('id', '=', target.id).execute();
  }
  const failed = results.filter((r) => !r.ok);
  const now = nowIso(ctx.clock());
  // A backup that failed only because some copies were missing is whole again.
  if (failed.length === 0 && backup.state === 'failed' && backup.sha256 !== null) {
    await ctx.db.updateTable('backups').set({ state: 'success', error: null, updated_at: now }).where('id', '=', backup.id).execute();
  }
  return {
    state: failed.length === 0 ? 'success' : 'failed',
    error: failed.length === 0 ? null : `could not repair: ${failed.map((f) => `${f.destination} (${f.error})`).join('; ')}`,
    result: JSON.stringify({ repaired: results }),
    bytes,
    completed_at: now,
  };
}
