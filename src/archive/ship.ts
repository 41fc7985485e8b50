/**
 * Shipping one archived file (a completed WAL segment, a closed binlog): the same path as a
 * backup's dump (compress → encrypt → sha256 → every destination of the database at once),
 * a manifest beside each stored object (layout.ts), and one archive_files row with one
 * archive_copies row per destination.
 *
 * Idempotent per (branch, kind, name): a receiver that died after storing a file but before
 * removing its local copy ships it again on restart, and gets the stored row back. A file
 * some destination missed (it failed last time) is written to that destination only.
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { ArchiveFile, ArchiveKind, Archiver, StorageDestination } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { destinationsFor } from '../catalog/organizations.js';
import { compressionSuffix, type Compression } from '../pipeline/compress.js';
import { HashCounter } from '../pipeline/hash.js';
import { fanOut } from '../pipeline/fanout.js';
import { organizationRecipients, recipientFingerprint } from '../encryption.js';
import { openDestination } from '../destinations.js';
import type { ObjectWriter, StorageProvider } from '../storage/provider.js';
import { atRestStages, commitAndCheck } from '../jobs/backup.js';
import { cleanErrorText } from '../error-text.js';
import { VERSION } from '../version.js';
import { archiveKey, archiveManifestKey, type ArchiveManifest } from './layout.js';

/** What a receiver hands over: a complete local file and what it knows about it. */
export interface ShipFile {
  kind: ArchiveKind;
  /** The server's own file name (000000010000000000000003, mariadb-bin.000012). */
  name: string;
  /** A complete local file; it is read, never moved or removed here. */
  path: string;
  timeline?: number | null;
  start_lsn?: string | null;
  end_lsn?: string | null;
  first_event_at?: string | null;
  last_event_at?: string | null;
}

/** Archived files are always zstd: a WAL segment of mostly zeroes shrinks to a few KiB. */
const ARCHIVE_COMPRESSION: Compression = 'zstd';

/** Raised when a file could not be stored in every destination; the receiver keeps its local copy and retries. */
export class ShipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShipError';
  }
}

interface Target {
  dest: StorageDestination;
  provider: StorageProvider;
  writer: ObjectWriter | null;
  error: string | null;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Store `file` in every destination of the archiver's database and record it. Resolves
 * with the archive_files row once every destination holds it (and its manifest). Throws
 * ShipError naming the destinations that failed; those that succeeded are recorded, so a
 * retry writes only the missing ones. Never deletes `file.path`.
 */
export async function shipArchiveFile(ctx: AppContext, archiver: Archiver, file: ShipFile, signal?: AbortSignal): Promise<ArchiveFile> {
  const existing = await findFile(ctx, archiver.branch_id, file.kind, file.name);
  const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', archiver.branch_id).executeTakeFirstOrThrow();
  const database = await ctx.db.selectFrom('databases').selectAll().where('id', '=', branch.database_id).executeTakeFirstOrThrow();
  const org = await ctx.db.selectFrom('organizations').selectAll().where('id', '=', branch.organization_id).executeTakeFirstOrThrow();
  const dests = await destinationsFor(ctx.db, database);
  if (dests.length === 0) throw new ShipError(`no storage destination: database "${database.name}" chose none and the organization has no default one`);

  let missing = dests;
  if (existing) {
    // Already shipped: only destinations without a stored copy need it (a retry after a
    // partial failure, or a destination added since).
    const stored = new Set(
      (await ctx.db.selectFrom('archive_copies').select('destination_id').where('archive_file_id', '=', existing.id).where('state', '=', 'success').execute()).map((c) => c.destination_id),
    );
    missing = dests.filter((d) => !stored.has(d.id));
    if (missing.length === 0 || existing.state === 'deleted') return existing;
  }
  signal?.throwIfAborted();

  const recipients = organizationRecipients(org);
  const encryption = recipients.length ? { format: 'age' as const, recipients: recipients.map(recipientFingerprint) } : null;
  const timeline = file.kind === 'wal' ? (file.timeline ?? 1) : (file.timeline ?? null);
  const key = archiveKey(org.name, database.name, branch.name, { kind: file.kind, name: file.name, timeline }, { compressionSuffix: compressionSuffix(ARCHIVE_COMPRESSION), encrypted: encryption !== null });

  const targets: Target[] = [];
  for (const dest of missing) {
    const t: Target = { dest, provider: openDestination(ctx, dest), writer: null, error: null };
    targets.push(t);
    try {
      t.writer = await t.provider.create(key);
    } catch (e) {
      t.error = `cannot start writing: ${messageOf(e)}`;
    }
  }
  const live = targets.filter((t) => t.writer !== null);

  const raw = new HashCounter();
  const stored = new HashCounter();
  if (live.length > 0) {
    const flow = pipeline([fs.createReadStream(file.path), raw, ...atRestStages(ARCHIVE_COMPRESSION, ctx.config.zstdLevel, recipients), stored], { signal });
    const fan = fanOut(
      stored,
      live.map((t) => ({ id: t.dest.id, stream: t.writer!.stream })),
      { signal },
    );
    const [flowR, fanR] = await Promise.allSettled([flow, fan]);
    if (fanR.status === 'fulfilled') {
      for (const r of fanR.value) if (!r.ok) live.find((t) => t.dest.id === r.id)!.error = `write failed: ${messageOf(r.error)}`;
    }
    if (flowR.status === 'rejected' || fanR.status === 'rejected') {
      const why = flowR.status === 'rejected' ? flowR.reason : (fanR as PromiseRejectedResult).reason;
      for (const t of live) {
        t.error ??= `not stored: ${messageOf(why)}`;
        await t.writer!.abort().catch(() => {});
      }
      signal?.throwIfAborted();
      throw new ShipError(cleanErrorText(`archiving ${file.name} failed: ${messageOf(why)}`));
    }
  }

  const size = live.length > 0 ? stored.bytes : 0;
  const sha256 = live.length > 0 ? stored.digest() : null;
  const now = nowIso(ctx.clock());
  const manifest: ArchiveManifest = {
    format: 'strongbox-archive/1',
    kind: file.kind,
    name: file.name,
    organization: org.name,
    database: database.name,
    branch: branch.name,
    engine: database.kind,
    timeline,
    start_lsn: file.start_lsn ?? null,
    end_lsn: file.end_lsn ?? null,
    first_event_at: file.first_event_at ?? null,
    last_event_at: file.last_event_at ?? null,
    raw_size: raw.bytes,
    size,
    sha256: sha256 ?? '',
    compression: ARCHIVE_COMPRESSION,
    encryption,
    created_at: existing?.created_at ?? now,
    strongbox_version: VERSION,
  };
  for (const t of live) {
    if (t.error !== null) {
      await t.writer!.abort().catch(() => {});
      continue;
    }
    try {
      await commitAndCheck(t.provider, t.writer!, key, size);
      await t.provider.put(archiveManifestKey(key), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    } catch (e) {
      t.error = `commit failed: ${messageOf(e)}`;
    }
  }

  const ok = targets.filter((t) => t.error === null);
  let row = existing ?? null;
  if (row === null && ok.length > 0) row = await recordFile(ctx, archiver, file, timeline, { raw_size: raw.bytes, size, created_at: now });
  if (row !== null) {
    for (const t of targets) {
      await ctx.db
        .insertInto('archive_copies')
        .values({
          id: newId(),
          archive_file_id: row.id,
          destination_id: t.dest.id,
          destination_name: t.dest.name,
          provider: t.dest.provider,
          path: key,
          size: t.error === null ? size : 0,
          sha256: t.error === null ? sha256 : null,
          state: t.error === null ? 'success' : 'failed',
          error: t.error === null ? null : cleanErrorText(t.error),
          created_at: now,
          updated_at: now,
        })
        .execute();
    }
    // A failed copy recorded earlier for a destination that now holds the file says nothing anymore.
    const fixed = ok.map((t) => t.dest.id);
    if (existing && fixed.length) await ctx.db.deleteFrom('archive_copies').where('archive_file_id', '=', row.id).where('state', '=', 'failed').where('destination_id', 'in', fixed).execute();
    await ctx.db.updateTable('archivers').set({ last_shipped_at: now, updated_at: now }).where('branch_id', '=', archiver.branch_id).execute();
  }
  const failed = targets.filter((t) => t.error !== null);
  if (failed.length > 0) {
    throw new ShipError(cleanErrorText(`archiving ${file.name}: ${failed.map((t) => `${t.dest.name} (${t.error})`).join('; ')}`));
  }
  return row!;
}

function findFile(ctx: AppContext, branchId: string, kind: ArchiveKind, name: string): Promise<ArchiveFile | undefined> {
  return ctx.db.selectFrom('archive_files').selectAll().where('branch_id', '=', branchId).where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
}

/** Insert the file's row; if another process recorded the same file meanwhile, its row wins. */
async function recordFile(ctx: AppContext, archiver: Archiver, file: ShipFile, timeline: number | null, sizes: { raw_size: number; size: number; created_at: string }): Promise<ArchiveFile> {
  const row: ArchiveFile = {
    id: newId(),
    organization_id: archiver.organization_id,
    database_id: archiver.database_id,
    branch_id: archiver.branch_id,
    kind: file.kind,
    name: file.name,
    timeline,
    start_lsn: file.start_lsn ?? null,
    end_lsn: file.end_lsn ?? null,
    first_event_at: file.first_event_at ?? null,
    last_event_at: file.last_event_at ?? null,
    raw_size: sizes.raw_size,
    size: sizes.size,
    state: 'success',
    created_at: sizes.created_at,
    deleted_at: null,
  };
  try {
    await ctx.db.insertInto('archive_files').values(row).execute();
    return row;
  } catch (e) {
    const other = await findFile(ctx, archiver.branch_id, file.kind, file.name);
    if (other) return other;
    throw e;
  }
}
