/**
 * Local folder storage: objects are files under a root directory. Writes go to a hidden
 * partial file beside the target and are renamed into place on commit, so a file under
 * its real name is always complete, even after a crash.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';

import { keySegments, checkPrefix } from '../keys.js';
import { StorageError, writeWhole, type ObjectInfo, type ObjectWriter, type PartialInfo, type StorageProvider } from '../provider.js';

/** Backups are sensitive: only the owner may read them, or even list them. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/** `.<name>.partial-<16 hex>`: hidden, and never confused with a committed object. */
const PARTIAL_NAME = /^\..+\.partial-[0-9a-f]{16}$/;

function partialName(name: string): string {
  return `.${name}.partial-${randomBytes(8).toString('hex')}`;
}

/** Errors that the same call cannot get past by being retried. */
const PERMANENT_CODES = new Set([
  'EACCES', 'EPERM', 'EROFS', 'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'ENOSPC', 'EDQUOT',
  'EEXIST', 'ELOOP', 'EINVAL', 'EFBIG', 'EXDEV',
]);

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function notFound(key: string, cause?: unknown): StorageError {
  return new StorageError(`local storage: object "${key}" not found`, true, true, { cause });
}

function fsError(op: string, key: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError(`local storage: cannot ${op} "${key}": ${message}`, code !== undefined && PERMANENT_CODES.has(code), false, {
    cause: err,
  });
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/**
 * The chunks that queued up while the last write was out, in one writev: each write is a
 * round trip to libuv's thread pool (a thread woken, then this one), which costs more than
 * the copy on a virtual machine. A short write finishes chunk by chunk.
 */
async function writeAllv(handle: FileHandle, chunks: Buffer[]): Promise<void> {
  let { bytesWritten: skip } = await handle.writev(chunks);
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    await writeAll(handle, chunk.subarray(skip));
    skip = 0;
  }
}

/**
 * Why nothing can be written under `dir`, in plain words, or null when that is not the
 * reason. Needed because a recursive mkdir on a read-only file system reports ENOENT for
 * the first folder it could not make, which reads as "a folder is missing". Looks at the
 * deepest folder of `dir` that exists.
 */
async function unwritableReason(dir: string): Promise<string | null> {
  let existing = dir;
  for (;;) {
    try {
      if (!(await fs.stat(existing)).isDirectory()) return null;
      break;
    } catch (err) {
      const up = path.dirname(existing);
      if (!isMissing(err) || up === existing) return null;
      existing = up;
    }
  }
  try {
    await fs.access(existing, fsConstants.W_OK);
    return null;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EROFS') return `the folder ${existing} is not writable (read-only file system)`;
    if (code === 'EACCES' || code === 'EPERM') return `the folder ${existing} is not writable (permission denied for the user Strongbox runs as)`;
    return null;
  }
}

/** Remove `dir` and its parents up to (not including) `base` while they are empty. */
async function removeEmptyDirs(dir: string, base: string): Promise<void> {
  for (let d = dir; d !== base && d.startsWith(base + path.sep); d = path.dirname(d)) {
    try {
      await fs.rmdir(d);
    } catch {
      break;
    }
  }
}

/** fsync a directory so that a rename in it survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

type WriterState = 'writing' | 'committing' | 'committed' | 'discarded';

class LocalObjectWriter implements ObjectWriter {
  readonly stream: Writable;
  readonly #key: string;
  readonly #handle: FileHandle;
  readonly #partial: string;
  readonly #final: string;
  readonly #base: string;
  #state: WriterState = 'writing';
  #closing: Promise<void> | null = null;
  #discarding: Promise<void> | null = null;
  #committing: Promise<void> | null = null;

  constructor(key: string, handle: FileHandle, partial: string, final: string, base: string) {
    this.#key = key;
    this.#handle = handle;
    this.#partial = partial;
    this.#final = final;
    this.#base = base;
    const writer = this;
    this.stream = new Writable({
      highWaterMark: 256 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        writeAll(handle, chunk).then(
          () => callback(),
          (err: unknown) => callback(fsError('write', key, err)),
        );
      },
      writev(chunks, callback) {
        writeAllv(
          handle,
          chunks.map((c) => c.chunk as Buffer),
        ).then(
          () => callback(),
          (err: unknown) => callback(fsError('write', key, err)),
        );
      },
      // The file stays open after 'finish': commit() still has to fsync it.
      destroy(error, callback) {
        // autoDestroy runs this after a clean 'finish' too; only an unfinished stream
        // (an error, or destroyed by its user) throws its partial file away.
        if (this.writableFinished) return callback(error);
        writer.#discard().then(() => callback(error));
      },
    });
  }

  #close(): Promise<void> {
    this.#closing ??= this.#handle.close();
    return this.#closing;
  }

  /** Close the file and remove the partial. Never throws. */
  #discard(): Promise<void> {
    if (this.#state === 'committed') return Promise.resolve();
    this.#state = 'discarded';
    this.#discarding ??= (async () => {
      await this.#close().catch(() => {});
      await fs.unlink(this.#partial).catch(() => {});
      // A failed dump must not leave its backup's folder behind, empty.
      await removeEmptyDirs(path.dirname(this.#final), this.#base);
    })();
    return this.#discarding;
  }

  commit(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'committing') {
      return Promise.reject(new StorageError(`local storage: "${this.#key}" was already committed`, true));
    }
    if (this.#state === 'discarded') {
      return Promise.reject(new StorageError(`local storage: the write of "${this.#key}" was aborted or failed`, true));
    }
    if (!this.stream.writableFinished) {
      return Promise.reject(new StorageError(`local storage: commit of "${this.#key}" before its stream finished`, true));
    }
    this.#state = 'committing';
    this.#committing = (async () => {
      try {
        await this.#handle.sync();
        await this.#close();
        await fs.rename(this.#partial, this.#final);
      } catch (err) {
        this.#state = 'discarded';
        await fs.unlink(this.#partial).catch(() => {});
        await removeEmptyDirs(path.dirname(this.#final), this.#base);
        throw fsError('commit', this.#key, err);
      }
      // The object is in place; the directory fsync makes the rename itself durable. If it
      // fails the file is complete but may not survive a crash, so report the commit as
      // failed and let the caller decide (the file is left alone: it may replace another).
      this.#state = 'committed';
      try {
        await syncDirectory(path.dirname(this.#final));
      } catch (err) {
        throw fsError('sync the directory of', this.#key, err);
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

/**
 * A provider storing objects as files under `root` (an absolute path; created with mode
 * 0700 on first write). Files are created 0600, directories 0700.
 */
export function localProvider(root: string): StorageProvider {
  if (typeof root !== 'string' || !path.isAbsolute(root)) {
    throw new StorageError(`local storage: path must be absolute, got ${JSON.stringify(root)}`, true);
  }
  const base = path.resolve(root);

  /** Absolute path of `key`, refusing anything that would land outside `base`. */
  const resolveKey = (key: string): string => {
    const segments = keySegments(key);
    if (PARTIAL_NAME.test(segments[segments.length - 1])) {
      throw new StorageError(`invalid storage key ${JSON.stringify(key)}: reserved for partial writes`, true);
    }
    const full = path.join(base, ...segments);
    // Belt and braces over keySegments: the joined path must stay strictly inside base.
    const rel = path.relative(base, full);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new StorageError(`invalid storage key ${JSON.stringify(key)}: escapes the storage root`, true);
    }
    return full;
  };

  const create = async (key: string): Promise<ObjectWriter> => {
    const final = resolveKey(key);
    const dir = path.dirname(final);
    // A concurrent delete() may remove the freshly made (empty) directory before the
    // partial file exists in it; making it again once is enough.
    for (let attempt = 1; ; attempt++) {
      const partial = path.join(dir, partialName(path.basename(final)));
      try {
        await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
        const handle = await fs.open(partial, 'wx', FILE_MODE);
        return new LocalObjectWriter(key, handle, partial, final, base);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
          const reason = await unwritableReason(dir);
          if (reason !== null) {
            await removeEmptyDirs(dir, base);
            throw new StorageError(`local storage: cannot create "${key}": ${reason}`, true, false, { cause: err });
          }
        }
        if (code === 'ENOENT' && attempt < 3) continue;
        await removeEmptyDirs(dir, base);
        throw fsError('create', key, err);
      }
    }
  };

  const provider = {
    provider: 'local',
    capabilities: { localPath: true, listPartials: true },

    create,

    async put(key: string, data: Buffer): Promise<void> {
      const writer = await create(key);
      try {
        await writeWhole(writer, data);
      } catch (err) {
        throw fsError('write', key, err);
      }
    },

    async read(key: string) {
      const file = resolveKey(key);
      let handle: FileHandle;
      try {
        handle = await fs.open(file, 'r');
      } catch (err) {
        throw isMissing(err) ? notFound(key, err) : fsError('read', key, err);
      }
      try {
        if (!(await handle.stat()).isFile()) throw notFound(key);
      } catch (err) {
        await handle.close().catch(() => {});
        throw fsError('read', key, err);
      }
      return handle.createReadStream({ highWaterMark: 256 * 1024 });
    },

    async stat(key: string): Promise<ObjectInfo | null> {
      const file = resolveKey(key);
      try {
        const st = await fs.stat(file);
        return st.isFile() ? { key, size: st.size } : null;
      } catch (err) {
        if (isMissing(err)) return null;
        throw fsError('stat', key, err);
      }
    },

    async delete(key: string): Promise<void> {
      const file = resolveKey(key);
      try {
        await fs.unlink(file);
      } catch (err) {
        const code = errnoCode(err);
        // A directory is not an object (stat() says null), so there is nothing to delete.
        if (isMissing(err) || code === 'EISDIR' || (code === 'EPERM' && (await isDirectory(file)))) return;
        throw fsError('delete', key, err);
      }
      // Leave no empty per-backup directories behind; stop at the first one still in use.
      await removeEmptyDirs(path.dirname(file), base);
    },

    async removePartials(key: string): Promise<void> {
      const final = resolveKey(key);
      const dir = path.dirname(final);
      const mine = `.${path.basename(final)}.partial-`;
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch (err) {
        if (isMissing(err)) return;
        throw fsError('delete', key, err);
      }
      for (const name of names) {
        if (!name.startsWith(mine) || !PARTIAL_NAME.test(name)) continue;
        await fs.unlink(path.join(dir, name)).catch((err) => {
          if (!isMissing(err)) throw fsError('delete', key, err);
        });
      }
      await removeEmptyDirs(dir, base);
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      checkPrefix(prefix);
      // Start from the deepest directory the prefix names fully; it cannot climb out of
      // base because checkPrefix refused "." and ".." segments.
      const dirKey = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
      yield* walk(dirKey === '' ? base : path.join(base, ...dirKey.split('/')), dirKey, prefix);
    },

    async *listPartials(prefix: string): AsyncIterable<PartialInfo> {
      checkPrefix(prefix);
      const dirKey = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
      yield* walkPartials(dirKey === '' ? base : path.join(base, ...dirKey.split('/')), dirKey, prefix);
    },

    localPath(key: string): string | null {
      return resolveKey(key);
    },

    describe(): Record<string, unknown> {
      return { provider: 'local', path: base };
    },
  } satisfies StorageProvider;
  return provider;
}

async function isDirectory(file: string): Promise<boolean> {
  return fs.stat(file).then((st) => st.isDirectory(), () => false);
}

/** Every partial file under `dir` (whose key is `dirKey`), as the key it was to become, starting with `prefix`. */
async function* walkPartials(dir: string, dirKey: string, prefix: string): AsyncGenerator<PartialInfo> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw fsError('list', dirKey === '' ? prefix : dirKey, err);
  }
  for (const entry of entries) {
    const entryKey = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
    if (entry.isDirectory()) {
      if (`${entryKey}/`.startsWith(prefix) || prefix.startsWith(`${entryKey}/`)) yield* walkPartials(path.join(dir, entry.name), entryKey, prefix);
      continue;
    }
    if (!entry.isFile() || !PARTIAL_NAME.test(entry.name)) continue;
    // ".<name>.partial-<16 hex>" → "<name>"
    const name = entry.name.slice(1, -'.partial-0123456789abcdef'.length);
    const key = dirKey === '' ? name : `${dirKey}/${name}`;
    if (!key.startsWith(prefix)) continue;
    try {
      const st = await fs.stat(path.join(dir, entry.name));
      yield { key, startedAt: st.mtime };
    } catch (err) {
      // Committed or discarded while we were listing: not a leftover.
      if (!isMissing(err)) throw fsError('list', key, err);
    }
  }
}

/** Every committed file under `dir` (whose key is `dirKey`) with a key starting with `prefix`. */
async function* walk(dir: string, dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw fsError('list', dirKey === '' ? prefix : dirKey, err);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
    if (entry.isDirectory()) {
      // Only descend where keys can still match the prefix.
      if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* walk(path.join(dir, entry.name), key, prefix);
    } else if (entry.isFile() && !PARTIAL_NAME.test(entry.name) && key.startsWith(prefix)) {
      try {
        const st = await fs.stat(path.join(dir, entry.name));
        yield { key, size: st.size };
      } catch (err) {
        // Deleted while we were listing: it is simply not there any more.
        if (!isMissing(err)) throw fsError('list', key, err);
      }
    }
  }
}
