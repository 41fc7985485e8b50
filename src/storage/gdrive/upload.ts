/**
 * Writing one object to Drive: a resumable upload of a hidden partial file, sent in chunks
 * as the stream fills them, and renamed to its real name on commit.
 *
 * Unlike everything else in a provider, a chunk is retried here: a stream cannot be replayed
 * by the retry wrapper, and a resumable session is made for exactly this (ask Drive how much
 * it has, send the rest). The attempts are few and bounded, so a dead network still fails
 * the write within a bounded time.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { StorageError, uploadStream, type ObjectWriter } from '../provider.js';
import { FOLDER_MIME, type DriveApi, type DriveFile } from './api.js';

/** `.<name>.partial-<16 hex>`: hidden, and never confused with a committed object. */
export const PARTIAL_NAME = /^\..+\.partial-[0-9a-f]{16}$/;
/** App property on a partial file (removed on commit). */
export const PARTIAL_PROPERTY = 'strongbox_partial';
/** App property set on commit: when, in ms since the epoch, so the newest of two same-named objects wins. */
export const COMMITTED_PROPERTY = 'strongbox_committed';

const CHUNK_ATTEMPTS = 6;
const RETRY_BASE_MS = 250;
const RETRY_MAX_MS = 8000;
const EMPTY = Buffer.alloc(0);

export function partialName(name: string): string {
  return `.${name}.partial-${randomBytes(8).toString('hex')}`;
}

/** A committed object (not a folder, a Google Docs file or a write in progress). */
export function isObject(file: DriveFile): boolean {
  return (
    file.mimeType !== FOLDER_MIME &&
    !file.mimeType.startsWith('application/vnd.google-apps.') &&
    !PARTIAL_NAME.test(file.name) &&
    file.appProperties?.[PARTIAL_PROPERTY] === undefined
  );
}

function committedAt(file: DriveFile): number {
  const n = Number(file.appProperties?.[COMMITTED_PROPERTY] ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** Whether `a` was committed after `b` (ties broken by id, so every reader agrees). */
export function isNewer(a: DriveFile, b: DriveFile): boolean {
  const ta = committedAt(a);
  const tb = committedAt(b);
  return ta !== tb ? ta > tb : a.id > b.id;
}

/**
 * The object a name stands for. Drive allows several files of one name; there is more than
 * one only between a commit's rename and its removal of the one it replaced (or when that
 * removal failed), and then the newest is the current object.
 */
export function newestObject(files: DriveFile[]): DriveFile | null {
  let best: DriveFile | null = null;
  for (const f of files) if (isObject(f) && (best === null || isNewer(f, best))) best = f;
  return best;
}

/** `Range: bytes=0-N` of a 308 answer → how many bytes Drive holds (none without the header). */
function rangeEnd(header: string | null): number {
  const m = header === null ? null : /^bytes=0-(\d+)$/.exec(header.trim());
  return m === null ? 0 : Number(m[1]) + 1;
}

export interface UploadTarget {
  api: DriveApi;
  key: string;
  folderId: string;
  finalName: string;
  session: string;
  chunkSize: number;
}

type WriterState = 'writing' | 'committing' | 'committed' | 'discarded';

/**
 * At most two chunks are in memory: one being filled and one being sent. A full chunk is
 * held until more bytes arrive, so that the last chunk is always known to be the last and is
 * sent with the total size (Drive completes the file on it).
 */
export class DriveObjectWriter implements ObjectWriter {
  readonly stream: Writable;
  readonly #t: UploadTarget;
  readonly #what: string;
  #state: WriterState = 'writing';
  #buffer: Buffer | null = null;
  #filled = 0;
  /** Bytes handed to uploads so far. */
  #sent = 0;
  /** The previous chunk's upload, not awaited yet. */
  #inFlight: Promise<unknown> | null = null;
  /** The latest upload started, for abort to wait on. */
  #lastUpload: Promise<unknown> | null = null;
  readonly #md5 = createHash('md5');
  /** The partial file, once the last chunk made it. */
  #fileId: string | null = null;
  /** Stops chunk uploads and retry waits when the write is thrown away. */
  readonly #cancel = new AbortController();
  #discarding: Promise<void> | null = null;
  #committing: Promise<void> | null = null;

  constructor(target: UploadTarget) {
    this.#t = target;
    this.#what = `upload "${target.key}"`;
    this.stream = uploadStream({ accept: (c) => this.#accept(c), finish: () => this.#finish(), discard: () => this.#discard() });
  }

  /** A method, not a field read, so that TypeScript does not narrow it across awaits. */
  #isDiscarded(): boolean {
    return this.#state === 'discarded';
  }

  #checkWriting(): void {
    if (this.#state !== 'writing') throw new StorageError(`google drive: the write of "${this.#t.key}" was aborted`, true);
  }

  async #accept(chunk: Buffer): Promise<void> {
    const size = this.#t.chunkSize;
    for (let pos = 0; pos < chunk.length; ) {
      this.#checkWriting();
      if (this.#filled === size) await this.#dispatch(false);
      this.#buffer ??= Buffer.allocUnsafe(size);
      const n = chunk.copy(this.#buffer, this.#filled, pos, Math.min(chunk.length, pos + size - this.#filled));
      this.#filled += n;
      pos += n;
    }
    this.#md5.update(chunk);
  }

  /** Send the filled chunk, once the one before it has arrived. */
  async #dispatch(final: boolean): Promise<DriveFile | null> {
    if (this.#inFlight !== null) {
      const previous = this.#inFlight;
      this.#inFlight = null;
      await previous;
    }
    this.#checkWriting();
    const data = this.#buffer === null ? EMPTY : this.#buffer.subarray(0, this.#filled);
    const start = this.#sent;
    this.#sent += data.length;
    this.#buffer = null;
    this.#filled = 0;
    const upload = this.#uploadChunk(data, start, final);
    this.#lastUpload = upload;
    if (final) return upload;
    upload.catch(() => {}); // Reported when the next chunk or final() awaits it.
    this.#inFlight = upload;
    return null;
  }

  async #finish(): Promise<void> {
    this.#checkWriting();
    const file = await this.#dispatch(true);
    if (file === null) throw new StorageError(`google drive: cannot ${this.#what}: Drive did not return the file`, false);
    // Drive's own count and checksum of what it stored must match what we sent.
    if (file.size !== undefined && Number(file.size) !== this.#sent) {
      throw new StorageError(`google drive: cannot ${this.#what}: Drive stored ${file.size} bytes of ${this.#sent}`, false);
    }
    if (file.md5Checksum !== undefined && file.md5Checksum !== this.#md5.digest('hex')) {
      throw new StorageError(`google drive: cannot ${this.#what}: the stored file does not match its MD5 checksum`, false);
    }
  }

  /**
   * Upload bytes [start, start + data.length) of the object, resuming from whatever Drive
   * says it already holds after a failure. Resolves the file after the last chunk.
   */
  async #uploadChunk(data: Buffer, start: number, final: boolean): Promise<DriveFile | null> {
    const { api, session } = this.#t;
    const end = start + data.length;
    const total = final ? String(end) : '*';
    // The last chunk is never cancelled mid-flight: it may create the file, and abort must
    // then learn its id to delete it.
    const signal = final ? undefined : this.#cancel.signal;
    /** What Drive holds, or null when unknown (after a failure). */
    let held: number | null = start;
    for (let failures = 0; ; ) {
      if (this.#state === 'discarded') throw new StorageError(`google drive: the write of "${this.#t.key}" was aborted`, true);
      try {
        let answer;
        let sentFrom: number | null = null;
        if (held === null) {
          answer = await api.uploadPut(session, EMPTY, `bytes */${total}`, this.#what, signal);
        } else {
          if (held < start || held > end) {
            throw new StorageError(`google drive: cannot ${this.#what}: the upload session holds ${held} bytes, expected ${start} to ${end}`, true);
          }
          if (held === end && !final) return null;
          const part = data.subarray(held - start);
          const range = part.length === 0 ? `bytes */${total}` : `bytes ${held}-${end - 1}/${total}`;
          sentFrom = held;
          answer = await api.uploadPut(session, part, range, this.#what, signal);
        }
        if (answer.status === 308) {
          const next = rangeEnd(answer.headers.get('range'));
          if (sentFrom !== null && next <= sentFrom && end > sentFrom) {
            held = null;
            throw new StorageError(`google drive: cannot ${this.#what}: Drive took none of the chunk`, false);
          }
          held = next;
          if (held === end && !final) return null;
          continue;
        }
        if (answer.status === 200 || answer.status === 201) {
          if (!final) throw new StorageError(`google drive: cannot ${this.#what}: Drive completed the file before its last chunk`, true);
          const file = JSON.parse(answer.text) as DriveFile;
          if (typeof file?.id !== 'string') throw new StorageError(`google drive: cannot ${this.#what}: Drive did not return the file id`, false);
          this.#fileId = file.id;
          return file;
        }
        if (answer.status === 404 || answer.status === 410) {
          throw new StorageError(`google drive: cannot ${this.#what}: the upload session expired or was cancelled (HTTP ${answer.status})`, true);
        }
        throw api.apiError(this.#what, answer);
      } catch (err) {
        const retryable = err instanceof StorageError && !err.permanent;
        if (!retryable || this.#isDiscarded() || ++failures >= CHUNK_ATTEMPTS) throw err;
        const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
        try {
          await sleep(delay, undefined, { signal: this.#cancel.signal });
        } catch {
          throw new StorageError(`google drive: the write of "${this.#t.key}" was aborted`, true);
        }
        held = null;
      }
    }
  }

  /** Stop the upload and remove whatever it made. Rejects when the partial file could not be deleted. */
  #discard(): Promise<void> {
    if (this.#state === 'committed') return Promise.resolve();
    this.#state = 'discarded';
    this.#cancel.abort();
    const what = `abort the write of "${this.#t.key}"`;
    this.#discarding ??= (async () => {
      await this.#lastUpload?.catch(() => {});
      if (this.#fileId !== null) await this.#t.api.delete(this.#fileId, what);
      else await this.#t.api.cancelUpload(this.#t.session, what);
    })().catch((err: unknown) => {
      this.#discarding = null; // The next abort() tries again.
      throw err;
    });
    return this.#discarding;
  }

  commit(): Promise<void> {
    const key = this.#t.key;
    if (this.#state === 'committed' || this.#state === 'committing') {
      return Promise.reject(new StorageError(`google drive: "${key}" was already committed`, true));
    }
    if (this.#state === 'discarded') {
      return Promise.reject(new StorageError(`google drive: the write of "${key}" was aborted or failed`, true));
    }
    if (!this.stream.writableFinished || this.#fileId === null) {
      return Promise.reject(new StorageError(`google drive: commit of "${key}" before its stream finished`, true));
    }
    const fileId = this.#fileId;
    const { api, folderId, finalName } = this.#t;
    const what = `commit "${key}"`;
    this.#state = 'committing';
    this.#committing = (async () => {
      const stamp = String(Date.now());
      try {
        await api.update(fileId, { name: finalName, appProperties: { [PARTIAL_PROPERTY]: null, [COMMITTED_PROPERTY]: stamp } }, what);
      } catch (err) {
        // The rename may have happened anyway; deleting the file leaves the key as it was.
        this.#state = 'discarded';
        await api.delete(fileId, what).catch(() => {});
        throw err;
      }
      this.#state = 'committed';
      // The new object is in place and, being the newest, is what the key reads as. Remove
      // the ones it replaces; if that fails they are only hidden garbage that the next
      // write or delete of the key removes.
      const ours: DriveFile = { id: fileId, name: finalName, mimeType: 'application/octet-stream', appProperties: { [COMMITTED_PROPERTY]: stamp } };
      try {
        for (const f of await api.listChildren(folderId, what, finalName)) {
          if (f.id !== fileId && isObject(f) && isNewer(ours, f)) await api.delete(f.id, what);
        }
      } catch {
        // See above.
      }
    })();
    return this.#committing;
  }

  async abort(): Promise<void> {
    if (this.#committing) await this.#committing.catch(() => {});
    if (this.#state === 'committed') return;
    if (!this.stream.destroyed) this.stream.destroy();
    await this.#discard();
  }
}
