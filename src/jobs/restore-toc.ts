/**
 * Restoring a single-stream PostgreSQL backup with `jobs: N` (issue 14): the rows stream in
 * as always, and the indexes, constraints and triggers are then built N at a time.
 *
 * `pg_restore -j` needs a seekable archive, and a stored backup is a stream (no temporary copy
 * of the data is made). But the post-data section holds no rows: everything pg_restore needs
 * to build it is in the archive's table of contents, at its start. So:
 *   1. the start of the stored copy is read and unpacked until the table of contents has
 *      passed, and just the header and table of contents are written to a small private file
 *      (a valid archive for the post-data section: pg_restore reads no data for it);
 *   2. pre-data and data stream from the copy into one pg_restore, one transaction, as a plain
 *      restore does (the copy's sha256 checked to its end);
 *   3. `pg_restore -j N --section=post-data` on the small file.
 * The bytes step 1 read are the first bytes step 2 reads and checks: their sha256 must agree
 * (TocPrefix.check), so the definitions built in step 3 are those of the verified copy even if
 * the stored object were replaced between the two reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { AppContext } from '../context.js';
import type { Artifact, Backup } from '../catalog/schema.js';
import type { Compression } from '../pipeline/compress.js';
import { unpackStream } from '../pipeline/unpack.js';
import { PgCustomRowCounter } from '../pipeline/rowcount/pgcustom.js';
import { openVerifiedArtifact } from './artifacts.js';
import { unnamedFile } from '../unnamed-file.js';

/** A table of contents larger than this is not captured (the restore builds post-data in its one stream). */
const MAX_TOC_BYTES = 64 * 1024 * 1024;

/** The captured header and table of contents of a stored archive, and how to check them against the full read. */
export interface TocPrefix {
  /** The archive file holding only the header and the table of contents (an unnamed file's /proc path). */
  file: string;
  /** A pass-through for the full read of the same copy: it checks that the copy starts with the bytes the capture read. */
  check(): Transform;
  /** Whether the full read's first bytes were those of the capture (known once it passed them). */
  readonly matched: boolean | null;
  /** Close (and so remove) the file. Never throws. */
  remove(): void;
}

/**
 * Read the start of `artifact` (a single-stream pg_dump custom archive) up to the end of its
 * table of contents. Null when it cannot be had (not a readable custom archive, larger than
 * MAX_TOC_BYTES, a tool failed): the caller then restores in one stream as before.
 */
export async function captureToc(
  ctx: AppContext,
  backup: Backup,
  artifact: Artifact,
  opts: { identityFiles: string[]; signal: AbortSignal },
): Promise<TocPrefix | null> {
  // A file with no name (unnamed-file.ts): nothing is left of it if this process is killed.
  const tmp = unnamedFile(path.join(ctx.config.dataDir, 'tmp'));
  const file = tmp.path;
  const remove = tmp.close;
  const stop = new AbortController();
  const signal = AbortSignal.any([opts.signal, stop.signal]);
  // What of the stored copy this read saw: the full read must start with the same bytes.
  const seen = createHash('sha256');
  let seenBytes = 0;
  let out: fs.WriteStream | null = null;
  try {
    const { stream } = await openVerifiedArtifact(ctx, artifact);
    const counted = stream.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen.update(chunk);
          seenBytes += chunk.length;
          cb(null, chunk);
        },
      }),
    );
    stream.on('error', (e) => counted.destroy(e));
    const encrypted = backup.encryption !== null;
    const unpack = unpackStream(counted, { compression: backup.compression as Compression, identityFiles: encrypted ? opts.identityFiles : [], signal });
    unpack.done.catch(() => undefined); // stopped on purpose below; the full read reports real damage
    // The reader passes each chunk on once it has scanned it: its headBytes() then covers it.
    const reader = new PgCustomRowCounter({ digests: false });
    unpack.readable.on('error', (e) => reader.destroy(e));
    unpack.readable.pipe(reader);
    out = fs.createWriteStream('', { fd: tmp.fd, autoClose: false });
    let written = 0;
    let head: number | null = null;
    try {
      for await (const chunk of reader as AsyncIterable<Buffer>) {
        head = reader.headBytes();
        // Not a readable custom-format archive: nothing to capture.
        if (head === null && !/not been read to its end/.test(reader.reason() ?? '')) break;
        const take = head === null ? chunk : chunk.subarray(0, Math.max(0, head - written));
        if (!out.write(take)) await new Promise<void>((res) => out!.once('drain', () => res()));
        written += take.length;
        if (head !== null) break;
        if (written > MAX_TOC_BYTES) break;
      }
    } finally {
      stop.abort(new Error('the table of contents has been read'));
      unpack.readable.destroy();
      reader.destroy();
      await unpack.done.catch(() => undefined);
      stream.destroy();
    }
    await new Promise<void>((res, rej) => out!.end((e?: Error | null) => (e ? rej(e) : res())));
    if (head === null || written !== head) {
      remove();
      return null;
    }
  } catch (e) {
    out?.destroy();
    remove();
    opts.signal.throwIfAborted();
    ctx.log.warn({ backup: backup.id, err: e instanceof Error ? e.message : String(e) }, 'could not read the table of contents; post-data is restored in the one stream');
    return null;
  }
  const prefixBytes = seenBytes;
  const prefixSha = seen.digest('hex');
  let matched: boolean | null = null;
  return {
    file,
    get matched() {
      return matched;
    },
    check() {
      const h = createHash('sha256');
      let n = 0;
      return new Transform({
        transform(chunk: Buffer, _enc, cb: TransformCallback) {
          if (n < prefixBytes) {
            const part = chunk.subarray(0, prefixBytes - n);
            h.update(part);
            n += part.length;
            if (n === prefixBytes) matched = h.digest('hex') === prefixSha;
          }
          cb(null, chunk);
        },
        flush(cb) {
          if (matched === null) matched = false; // the copy is shorter than what the capture read
          cb();
        },
      });
    },
    remove,
  };
}
