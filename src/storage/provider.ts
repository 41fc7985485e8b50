/**
 * The one interface every storage provider (local folder, S3, Google Drive) implements.
 * Keys are relative, slash-separated paths ("org/db/branch/<backup-id>/backup.pgdump.zst");
 * a provider maps them under its own root/prefix and must refuse keys that would escape it
 * ("..", absolute paths, empty segments).
 *
 * Retry, rate limiting and logging wrap this interface; providers do not retry themselves.
 * Errors a retry cannot fix are thrown as StorageError with `permanent = true`.
 */
import { Writable, type Readable } from 'node:stream';

export type ProviderName = 'local' | 's3' | 'google_drive';

export interface ProviderCapabilities {
  /** Objects can be read by path on this machine (enables pg_restore --jobs, backupman DumpPath). */
  localPath: boolean;
  /**
   * listPartials() finds what unfinished writes left, without being told their keys (partial
   * files, unfinished multipart uploads), so that a sweeper can remove those of writers whose
   * process died before anyone recorded them. False where the store discards them by itself.
   */
  listPartials: boolean;
}

/** A write in progress. Nothing is visible under the key until `commit()` resolves. */
export interface ObjectWriter {
  /** Write the object's bytes here, then end() it. Backpressure is honoured. */
  readonly stream: Writable;
  /**
   * Make the object durable and visible under its key (e.g. fsync + atomic rename,
   * complete a multipart upload). Call after `stream` has finished. Not safe to retry.
   */
  commit(): Promise<void>;
  /** Throw away whatever was written. Idempotent; never throws for an already-gone object. */
  abort(): Promise<void>;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

/** What an unfinished write of `key` left behind (removePartials(key) removes it). */
export interface PartialInfo {
  key: string;
  /** When that write started, or last wrote (a local partial file's modification time). */
  startedAt: Date;
}

export interface StorageProvider {
  readonly provider: ProviderName;
  readonly capabilities: ProviderCapabilities;
  /** Start writing `key`, replacing nothing until commit. Safe to retry (a new writer). */
  create(key: string): Promise<ObjectWriter>;
  /** Write a small object in one call (manifests, probes). Atomic. Safe to retry. */
  put(key: string, data: Buffer): Promise<void>;
  /** Stream an object's bytes. Throws StorageError(notFound) when missing. Safe to retry. */
  read(key: string): Promise<Readable>;
  /** Size of an object, or null when it does not exist. Safe to retry. */
  stat(key: string): Promise<ObjectInfo | null>;
  /** Remove an object; removing a missing object succeeds. Safe to retry. */
  delete(key: string): Promise<void>;
  /**
   * Remove whatever a writer of `key` that never reached commit() or abort() left behind
   * (the process died mid-write): partial files, unfinished multipart uploads. Committed
   * objects are untouched. Idempotent; safe to retry.
   */
  removePartials(key: string): Promise<void>;
  /** Every object whose key starts with `prefix`. Safe to retry. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Every unfinished write under `prefix` (one entry per write; a key may appear more than
   * once): what removePartials() would remove. Committed objects are never listed. Yields
   * nothing when `capabilities.listPartials` is false. Safe to retry.
   */
  listPartials(prefix: string): AsyncIterable<PartialInfo>;
  /** Absolute local path of the object when `capabilities.localPath`, else null. */
  localPath(key: string): string | null;
  /** A description of where this provider writes, with every secret removed, for logs and the API. */
  describe(): Record<string, unknown>;
}

/**
 * An error from a storage provider. `permanent`: retrying the same call cannot succeed
 * (bad key, access denied, missing object). `notFound`: the object does not exist.
 * `options.cause` keeps the underlying error for logs.
 */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
    readonly notFound = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/**
 * Write `data` whole through `writer` and commit it; on any failure the writer is
 * aborted (nothing stays visible) and the error rethrown. The `put` of providers whose
 * small objects go through the same path as streamed ones.
 */
export async function writeWhole(writer: ObjectWriter, data: Buffer): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      writer.stream.once('error', reject);
      writer.stream.once('finish', resolve);
      writer.stream.end(data);
    });
    await writer.commit();
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  }
}

/**
 * The writable side of a remote writer (S3 parts, Drive chunks): each chunk and the end are
 * handed to async hooks, whose completion is the backpressure. Destroying the stream before
 * it finished discards the upload; after a clean finish it waits for commit() or abort().
 */
export function uploadStream(hooks: { accept(chunk: Buffer): Promise<void>; finish(): Promise<void>; discard(): Promise<void> }): Writable {
  return new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      hooks.accept(chunk).then(() => callback(), callback);
    },
    final(callback) {
      hooks.finish().then(() => callback(), callback);
    },
    destroy(error, callback) {
      // autoDestroy runs this after a clean 'finish' too: only an unfinished stream (an
      // error, or destroyed by its user) throws its upload away.
      if (this.writableFinished) return callback(error);
      hooks.discard().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}
