/**
 * Restoring a parallel backup's copy (its parts, parallel-parts.ts) into a database:
 * pre-data first, then the data parts, `jobs` at a time, then post-data. Every part is
 * checked against its recorded sha256 as it streams, and unpacked as a single dump is
 * (pipeline/unpack.ts: age -d and zstd -d started off the event loop; for PostgreSQL zstd
 * writes straight into pg_restore's stdin).
 * - PostgreSQL: pre-data and each data part in one transaction (one pg_restore each), then
 *   post-data with `pg_restore -j jobs` so indexes and constraints are built side by side;
 *   only post-data, which holds no rows, is written to a temporary file (pg_restore -j needs
 *   to seek), private to this process and removed afterwards.
 * - MariaDB/MySQL: each part through its own mariadb client, rewritten as a single dump is
 *   (engines/mysql/rewrite.ts: the source database's name, definers, sequences); triggers
 *   (post-data) come last, so none fires on the loaded rows; grants after everything.
 *
 * Unlike a single dump, the restore is not one transaction: a failure part-way leaves the
 * parts restored so far, so the caller drops a database it created (and a restore over an
 * existing database is refused for parallel backups).
 */
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Artifact, Backup } from '../catalog/schema.js';
import type { ConnectionInfo } from '../engines/index.js';
import { MAX_JOBS, restorePostDataFile, restoreSectionStream } from '../engines/postgres/parallel.js';
import { mysql } from '../engines/mysql/index.js';
import { recordedRestoreOptions } from './fidelity.js';
import type { Compression } from '../pipeline/compress.js';
import { HashCounter } from '../pipeline/hash.js';
import { unpackStream, type Unpack } from '../pipeline/unpack.js';
import { ChecksumMismatchError } from '../pipeline/verify.js';
import { openDestinationById } from '../destinations.js';
import { markDamaged, verifiedStream } from './artifacts.js';
import { partKey, partsOf, type BackupPart } from './parallel-parts.js';
import { DamagedCopyError, DecryptionError } from './restore.js';
import { unnamedFile } from '../unnamed-file.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Whether `backup` was stored in parts (any of its copies lists them). */
export async function isParallelBackup(ctx: AppContext, backupId: string): Promise<boolean> {
  const row = await ctx.db.selectFrom('artifacts').select('id').where('backup_id', '=', backupId).where('parts', 'is not', null).limit(1).executeTakeFirst();
  return row !== undefined;
}

export interface PartsRestoreOptions {
  signal: AbortSignal;
  /** How many data parts load at a time, and pg_restore's -j for post-data. */
  jobs: number;
  preserveOwnership?: boolean;
  identityFiles: string[];
  /** Stored bytes read so far, over every part. */
  onBytes?: (n: number) => void;
}

/**
 * Read a part's stored bytes whole and compare them with its recorded size and sha256:
 * null when intact, else what differs.
 */
async function partDamage(ctx: AppContext, artifact: Artifact, part: BackupPart, signal: AbortSignal): Promise<string | null> {
  const { provider } = await openDestinationById(ctx, artifact.destination_id);
  const counter = new HashCounter();
  await pipeline(await provider.read(partKey(artifact.path, part)), counter, async function* (source) {
    for await (const _ of source) void _;
  }, { signal });
  if (counter.bytes !== part.size) return `part ${part.file} is ${counter.bytes} bytes, ${part.size} were stored`;
  if (counter.digest() !== part.sha256) return `part ${part.file} has sha256 ${counter.digest()}, ${part.sha256} was stored`;
  return null;
}

/** Restore every part of `artifact` (a parallel backup's copy) into `conn.database`. */
export async function restoreParts(ctx: AppContext, backup: Backup, artifact: Artifact, conn: ConnectionInfo, opts: PartsRestoreOptions): Promise<void> {
  const parts = partsOf(artifact);
  if (!parts) throw new Error(`copy ${artifact.id} is not a parallel backup`);
  if (parts.some((p) => p.sha256 === null || p.size === null)) throw new Error(`copy in "${artifact.destination_name}" lists a part that was never stored`);
  const encryption = backup.encryption ? (JSON.parse(backup.encryption) as { format: string; recipients: string[] }) : null;
  if (encryption && opts.identityFiles.length === 0) {
    throw new DecryptionError(`the backup is encrypted (age, to ${encryption.recipients.join(', ')}) and no identity is available to decrypt it: set STRONGBOX_AGE_IDENTITY_FILE, or give "age_identity" with the request`);
  }
  const jobs = Math.max(1, Math.min(MAX_JOBS, Math.floor(opts.jobs)));
  const seen = new Map<string, number>();
  const report = () => opts.onBytes?.([...seen.values()].reduce((a, b) => a + b, 0));

  /**
   * Stream one part, checked, decrypted and decompressed, into `consume`: a restore tool that
   * takes the last process's output as its own stdin (`pipeTo`, pipeline/unpack.ts), or a
   * reader of `input` (those bytes then pass through this process).
   */
  const withPart = async (part: BackupPart, consume: (input: Readable, pipeTo: Unpack['pipeTo']) => Promise<void>, signal: AbortSignal = opts.signal): Promise<void> => {
    const { provider } = await openDestinationById(ctx, artifact.destination_id);
    const verifier = verifiedStream(await provider.read(partKey(artifact.path, part)), part.sha256!, part.size);
    // Its error (a checksum mismatch at the end) reaches unpack.done while the copy is read; not after.
    verifier.on('error', () => {});
    const unpack = unpackStream(verifier, {
      compression: backup.compression as Compression,
      identityFiles: encryption ? opts.identityFiles : [],
      signal,
      onBytes: (n) => (seen.set(part.name, n), report()),
      progressIntervalMs: 1000,
    });
    const using = consume(unpack.readable, unpack.pipeTo).finally(() => unpack.abandon());
    const [flowR, useR] = await Promise.allSettled([unpack.done, using]);
    if (flowR.status === 'fulfilled') {
      if (useR.status === 'rejected') throw new Error(`part ${part.name}: ${messageOf(useR.reason)}`, { cause: useR.reason });
      return;
    }
    // The tool failed before it read anything (no client for this server, a server that is down).
    if (useR.status === 'rejected' && !unpack.started) throw new Error(`part ${part.name}: ${messageOf(useR.reason)}`, { cause: useR.reason });
    signal.throwIfAborted();
    // As for a single dump: the checksum speaks at the end, age and zstd usually first, so
    // unless it already spoke the part is read again whole to tell damage from the rest.
    let damage: string | null = flowR.reason instanceof ChecksumMismatchError ? `part ${part.file}: ${flowR.reason.message}` : null;
    if (damage === null && !unpack.inputVerified) {
      try {
        damage = await partDamage(ctx, artifact, part, signal);
      } catch (e) {
        signal.throwIfAborted();
        throw new Error(`part ${part.name}: ${messageOf(useR.status === 'rejected' ? useR.reason : flowR.reason)}; reading it again to check it failed too: ${messageOf(e)}`);
      }
    }
    if (damage !== null) {
      await markDamaged(ctx, artifact, damage);
      throw new DamagedCopyError(artifact, damage);
    }
    if (encryption && /no identity matched any of the recipients/i.test(messageOf(flowR.reason))) {
      throw new DecryptionError(`cannot decrypt the backup: no identity matches (it is encrypted to ${encryption.recipients.join(', ')}; the copy in "${artifact.destination_name}" is intact)`);
    }
    throw new Error(`part ${part.name}: ${messageOf(useR.status === 'rejected' ? useR.reason : flowR.reason)}`, { cause: flowR.reason });
  };

  const restoreOpts = { signal: opts.signal, preserveOwnership: opts.preserveOwnership };
  const isMysql = backup.engine === 'mysql';
  // MariaDB: every part through the single dump's restore (its rewriting); grants only once all is loaded.
  const fidelity = isMysql ? await recordedRestoreOptions(ctx, backup, opts.preserveOwnership === true) : null;
  const loadSection = (section: BackupPart['section'], input: Readable, pipeTo: Unpack['pipeTo'], signal: AbortSignal): Promise<void> =>
    isMysql
      ? mysql.restore(conn, input, { ...fidelity, signal, grants: section === 'post-data' ? fidelity!.grants : undefined })
      : restoreSectionStream(conn, section === 'pre-data' ? 'pre-data' : 'data', input, { ...restoreOpts, signal, pipeTo });
  for (const part of parts.filter((p) => p.section === 'pre-data')) {
    await withPart(part, (input, pipeTo) => loadSection('pre-data', input, pipeTo, opts.signal));
  }
  // The data parts side by side; the first failure stops the others (their transactions roll back).
  const data = parts.filter((p) => p.section === 'data');
  const stop = new AbortController();
  setMaxListeners(64, stop.signal);
  const onAbort = () => stop.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    let next = 0;
    let failure: unknown = undefined;
    const lane = async () => {
      while (failure === undefined && next < data.length) {
        const part = data[next++];
        try {
          await withPart(part, (input, pipeTo) => loadSection('data', input, pipeTo, stop.signal), stop.signal);
        } catch (e) {
          if (failure === undefined) {
            failure = e;
            stop.abort(new Error('another part failed'));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, data.length) }, lane));
    opts.signal.throwIfAborted();
    if (failure !== undefined) throw failure;
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
  if (isMysql) {
    for (const part of parts.filter((p) => p.section === 'post-data')) await withPart(part, (input, pipeTo) => loadSection('post-data', input, pipeTo, opts.signal));
    return;
  }
  // Post-data holds no rows (indexes, constraints, triggers): a small file pg_restore -j can seek in.
  for (const part of parts.filter((p) => p.section === 'post-data')) {
    // A file with no name (unnamed-file.ts): nothing is left of it if this process is killed.
    const file = unnamedFile(path.join(ctx.config.dataDir, 'tmp'));
    try {
      await withPart(part, (input) => pipeline(input, fs.createWriteStream('', { fd: file.fd, autoClose: false }), { signal: opts.signal }));
      await restorePostDataFile(conn, file.path, jobs, restoreOpts);
    } finally {
      file.close();
    }
  }
}
