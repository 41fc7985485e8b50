/**
 * Reading an archived WAL segment or binlog file back: from the first of its stored copies
 * that is intact, checked against its sha256 as it streams, decrypted with the
 * organization's identities (as restores are) and decompressed, into a local file. What
 * lands at `to` is the server's own file, byte for byte; nothing half-written is ever
 * left under that name.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { ArchiveCopy, ArchiveFile } from '../catalog/schema.js';
import { openDestinationById } from '../destinations.js';
import { identityFilesFor } from '../encryption.js';
import { decompressor, type Compression } from '../pipeline/compress.js';
import { ageDecrypt } from '../pipeline/encrypt.js';
import { HashCounter } from '../pipeline/hash.js';
import { Sha256Verifier } from '../pipeline/verify.js';

/** How a stored copy is encoded, read off its key (layout.ts: `<name>.zst[.age]`). */
export function copyEncoding(key: string): { compression: Compression; encrypted: boolean } {
  const encrypted = key.endsWith('.age');
  const bare = encrypted ? key.slice(0, -'.age'.length) : key;
  const compression: Compression = bare.endsWith('.zst') ? 'zstd' : bare.endsWith('.gz') ? 'gzip' : 'none';
  return { compression, encrypted };
}

/** The stored copies of an archive file worth trying, local ones first (the fastest to read). */
export async function readableArchiveCopies(ctx: AppContext, file: Pick<ArchiveFile, 'id'>): Promise<ArchiveCopy[]> {
  const rows = await ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).where('state', '=', 'success').execute();
  return rows.sort((a, b) => Number(b.provider === 'local') - Number(a.provider === 'local') || a.created_at.localeCompare(b.created_at));
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** No copy of an archived file could be read back whole. */
export class ArchiveFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveFetchError';
  }
}

/**
 * Fetch archive file `file` into the local file `to` (created with mode 0600; an existing
 * file is replaced). Copies are tried in order until one reads back intact; the error
 * names the file and what was wrong with each copy when none does. `identityFiles`
 * defaults to the organization's (identityFilesFor); a restore given its own identity
 * passes that one.
 */
export async function fetchArchiveFile(ctx: AppContext, file: ArchiveFile, to: string, signal?: AbortSignal, identityFiles?: string[], onBytes?: (n: number) => void): Promise<void> {
  const what = `${file.kind === 'wal' ? 'WAL segment' : 'binlog file'} "${file.name}"`;
  const copies = await readableArchiveCopies(ctx, file);
  if (copies.length === 0) throw new ArchiveFetchError(`${what} has no stored copy left to read back`);
  const identities = identityFiles ?? identityFilesFor(ctx, file.organization_id);
  const problems: string[] = [];
  const part = `${to}.part`;
  for (const copy of copies) {
    signal?.throwIfAborted();
    const { compression, encrypted } = copyEncoding(copy.path);
    if (encrypted && identities.length === 0) {
      // Every copy is the same ciphertext: no other copy can help.
      problems.push('it is encrypted (age) and no identity is available to decrypt it: set STRONGBOX_AGE_IDENTITY_FILE, or give "age_identity" with the request');
      break;
    }
    try {
      if (!copy.sha256) throw new Error('its sha256 was never recorded');
      const { provider } = await openDestinationById(ctx, copy.destination_id);
      const raw = await provider.read(copy.path);
      const verifier = new Sha256Verifier(copy.sha256, copy.size);
      const counter = new HashCounter({ onProgress: onBytes, progressIntervalMs: 500 });
      const out = fs.createWriteStream(part, { mode: 0o600 });
      await pipeline([raw, verifier, counter, ...(encrypted ? [ageDecrypt(identities)] : []), decompressor(compression), out as Writable], signal ? { signal } : {});
      if (file.raw_size > 0 && fs.statSync(part).size !== file.raw_size) {
        throw new Error(`it decodes to ${fs.statSync(part).size} bytes, ${file.raw_size} were archived`);
      }
      fs.renameSync(part, to);
      return;
    } catch (e) {
      fs.rmSync(part, { force: true });
      if (signal?.aborted) throw e;
      problems.push(`the copy in "${copy.destination_name}": ${messageOf(e)}`);
      ctx.log.warn({ file: file.id, copy: copy.id, err: messageOf(e) }, 'an archived file could not be read back from a copy; trying the next one if any');
    }
  }
  throw new ArchiveFetchError(`${what} could not be read back from any copy: ${problems.join('; ')}`);
}
