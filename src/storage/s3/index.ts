/**
 * S3 storage (AWS and S3-compatible stores: MinIO, Ceph, R2...): objects live in one bucket
 * under an optional prefix. A write is a multipart upload whose parts go out while the
 * bytes arrive; the object appears only when commit() completes the upload, and abort()
 * (or removePartials() after a crash) aborts it. Objects smaller than one part are sent
 * in a single PutObject at commit.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, type Writable } from 'node:stream';

import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';

import { checkPrefix, keySegments } from '../keys.js';
import { StorageError, uploadStream, type ObjectInfo, type ObjectWriter, type PartialInfo, type StorageProvider } from '../provider.js';
import { parseS3Config, redactS3Config, secretsOf, type S3Config } from './config.js';
import { s3Error, type ErrorContext } from './errors.js';

export { parseS3Config, redactS3Config, type S3Config };

const MiB = 1024 * 1024;
/** S3's limit on the parts of one upload. */
const MAX_PARTS = 10_000;

type Sdk = typeof import('@aws-sdk/client-s3');
let sdkLoading: Promise<Sdk> | null = null;

/**
 * The AWS SDK, loaded by the first call of an S3 destination rather than when the server
 * starts: it is the largest module a server could load (~5 MiB resident, 3 MiB of heap,
 * 70 ms), and a server without S3 destinations never needs it. A failed load is tried
 * again at the next call.
 */
function loadSdk(): Promise<Sdk> {
  sdkLoading ??= import('@aws-sdk/client-s3').catch((err: unknown) => {
    sdkLoading = null;
    throw new StorageError(`s3 storage: cannot load the AWS SDK (@aws-sdk/client-s3): ${err instanceof Error ? err.message : String(err)}`, true);
  });
  return sdkLoading;
}

/** The SDK and the provider's two clients, made at its first call. */
interface Connection {
  sdk: Sdk;
  /** Tries each request once (storage/retry.ts retries from outside). */
  client: S3Client;
  /** Tries each request `max_attempts` times: for calls inside a write, which nothing outside can retry. */
  writeClient: S3Client;
}

function md5Base64(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

/**
 * An object's body that fails when the service sends nothing for `idleMs` while its reader
 * is waiting for bytes. The SDK's socket idle timeout is turned off for the body: it would
 * also fire while a slow reader (pg_restore busy building an index) is simply not asking
 * for more, and kill a healthy restore.
 */
function watchedBody(body: IncomingMessage, idleMs: number, failure: (err: unknown) => StorageError): Readable {
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  const disarm = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  const arm = () => {
    disarm();
    timer = setTimeout(() => out.destroy(failure(Object.assign(new Error(`no data for ${idleMs} ms`), { name: 'TimeoutError' }))), idleMs);
  };
  const out = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      arm();
      body.resume();
    },
    destroy(error, callback) {
      disarm();
      if (!ended) body.destroy();
      callback(error);
    },
  });
  body.socket?.setTimeout(0);
  body.on('data', (chunk: Buffer) => {
    if (out.push(chunk)) {
      arm();
    } else {
      disarm();
      body.pause();
    }
  });
  body.once('end', () => {
    ended = true;
    disarm();
    out.push(null);
  });
  body.once('error', (err) => out.destroy(failure(err)));
  body.once('close', () => {
    if (!ended) out.destroy(failure(Object.assign(new Error('the connection closed before the end of the object'), { code: 'ECONNRESET' })));
  });
  body.pause();
  return out;
}

/** Everything a writer needs from its provider. */
interface WriteTarget {
  connect(): Promise<Connection>;
  bucket: string;
  partSize: number;
  queueSize: number;
  errors: ErrorContext;
}

type WriterState = 'writing' | 'committing' | 'committed' | 'discarded';

interface Part {
  PartNumber: number;
  ETag: string;
}

/**
 * A write of one object. Bytes are cut into parts of exactly `partSize` (the last one
 * shorter); a part is only cut once more bytes follow it, so an object of at most one
 * part never starts a multipart upload. The stream's write callback waits while
 * `queueSize` parts are uploading: that is the backpressure bounding memory.
 */
class S3ObjectWriter implements ObjectWriter {
  readonly stream: Writable;
  readonly #b: WriteTarget;
  readonly #key: string;
  readonly #objectKey: string;
  #state: WriterState = 'writing';
  /** Chunks received and not yet cut into a part. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** What is left at the end when no part was cut: sent by PutObject at commit. */
  #tail: Buffer | null = null;
  #nextPart = 1;
  #parts: Part[] = [];
  #inflight = new Set<Promise<void>>();
  /** The first error of a part upload; every later write and the stream's end fail with it. */
  #failure: StorageError | null = null;
  #creating: Promise<string> | null = null;
  #uploadId: string | null = null;
  /** Cancels part uploads in flight when the write is thrown away. */
  readonly #cancel = new AbortController();
  #discarding: Promise<void> | null = null;
  #committing: Promise<void> | null = null;

  constructor(b: WriteTarget, key: string, objectKey: string) {
    this.#b = b;
    this.#key = key;
    this.#objectKey = objectKey;
    this.stream = uploadStream({ accept: (c) => this.#accept(c), finish: () => this.#finish(), discard: () => this.#discard() });
  }

  #error(op: string, err: unknown): StorageError {
    return s3Error(op, this.#key, err, this.#b.errors);
  }

  /** Throws when the write is over: a part failed, or it was aborted meanwhile. */
  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#state !== 'writing') throw new StorageError(`s3 storage: the write of "${this.#key}" was aborted`, true);
  }

  /** Resolves once fewer than `queueSize` parts are uploading. */
  async #room(): Promise<void> {
    while (this.#inflight.size >= this.#b.queueSize) await Promise.race(this.#inflight);
    this.#check();
  }

  async #accept(chunk: Buffer): Promise<void> {
    this.#check();
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    while (this.#pendingBytes > this.#b.partSize) {
      await this.#room();
      this.#launch(this.#cut(this.#b.partSize));
    }
  }

  /** The first `size` pending bytes as one new buffer (a copy: callers may reuse theirs). */
  #cut(size: number): Buffer {
    const part = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const chunk = this.#pending[0];
      const take = Math.min(chunk.length, size - filled);
      chunk.copy(part, filled, 0, take);
      filled += take;
      if (take === chunk.length) this.#pending.shift();
      else this.#pending[0] = chunk.subarray(take);
    }
    this.#pendingBytes -= size;
    return part;
  }

  #launch(body: Buffer): void {
    const partNumber = this.#nextPart++;
    if (partNumber > MAX_PARTS) {
      this.#fail(
        new StorageError(
          `s3 storage: cannot write "${this.#key}": larger than ${MAX_PARTS} parts of ${this.#b.partSize / MiB} MiB; raise part_size_mb`,
          true,
        ),
      );
      return;
    }
    const task = this.#uploadPart(partNumber, body).catch((err: unknown) => this.#fail(this.#error('upload a part of', err)));
    this.#inflight.add(task);
    void task.finally(() => this.#inflight.delete(task));
  }

  async #uploadPart(partNumber: number, body: Buffer): Promise<void> {
    const uploadId = await this.#startUpload();
    const { sdk, writeClient } = await this.#b.connect();
    const out = await writeClient.send(
      new sdk.UploadPartCommand({
        Bucket: this.#b.bucket,
        Key: this.#objectKey,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.length,
        ContentMD5: md5Base64(body),
      }),
      { abortSignal: this.#cancel.signal },
    );
    if (!out.ETag) throw new Error(`the service returned no ETag for part ${partNumber}`);
    this.#parts.push({ PartNumber: partNumber, ETag: out.ETag });
  }

  /** The multipart upload, started with the first part. */
  #startUpload(): Promise<string> {
    // Not cancellable on purpose: an upload created on the service but never heard of
    // here could not be aborted. Its own timeouts bound it.
    this.#creating ??= this.#b
      .connect()
      .then(({ sdk, writeClient }) => writeClient.send(new sdk.CreateMultipartUploadCommand({ Bucket: this.#b.bucket, Key: this.#objectKey })))
      .then((out) => {
        if (!out.UploadId) throw new Error('the service returned no upload id');
        this.#uploadId = out.UploadId;
        return out.UploadId;
      });
    return this.#creating;
  }

  /** Record the first failure and fail the stream with it (at once, not at the next write). */
  #fail(error: StorageError): void {
    if (this.#state !== 'writing' || this.#failure) return;
    this.#failure = error;
    if (!this.stream.destroyed) this.stream.destroy(error);
  }

  /** At the stream's end: send the last part and wait for all of them, or keep a small object for commit. */
  async #finish(): Promise<void> {
    this.#check();
    if (this.#nextPart === 1) {
      this.#tail = this.#cut(this.#pendingBytes);
      return;
    }
    if (this.#pendingBytes > 0) {
      await this.#room();
      this.#launch(this.#cut(this.#pendingBytes));
    }
    while (this.#inflight.size > 0) await Promise.race(this.#inflight);
    this.#check();
  }

  /**
   * Stop the part uploads and abort the multipart upload. Rejects (and can be tried
   * again) when the service could not be told; an upload already gone is success.
   */
  #discard(): Promise<void> {
    if (this.#state === 'committed') return Promise.resolve();
    this.#state = 'discarded';
    this.#pending = [];
    this.#tail = null;
    this.#cancel.abort();
    this.#discarding ??= (async () => {
      // Parts still arriving after the abort could otherwise be kept by the service.
      while (this.#inflight.size > 0) await Promise.race(this.#inflight);
      if (this.#creating) await this.#creating.catch(() => {});
      if (this.#uploadId !== null) await this.#abortUpload(this.#uploadId);
    })().catch((err: unknown) => {
      this.#discarding = null;
      throw err;
    });
    return this.#discarding;
  }

  async #abortUpload(uploadId: string): Promise<void> {
    try {
      const { sdk, writeClient } = await this.#b.connect();
      await writeClient.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.#b.bucket, Key: this.#objectKey, UploadId: uploadId }));
    } catch (err) {
      if ((err as { name?: unknown }).name === 'NoSuchUpload') return;
      throw this.#error('abort the upload of', err);
    }
  }

  commit(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'committing') {
      return Promise.reject(new StorageError(`s3 storage: "${this.#key}" was already committed`, true));
    }
    if (this.#state === 'discarded') {
      return Promise.reject(new StorageError(`s3 storage: the write of "${this.#key}" was aborted or failed`, true));
    }
    if (!this.stream.writableFinished) {
      return Promise.reject(new StorageError(`s3 storage: commit of "${this.#key}" before its stream finished`, true));
    }
    this.#state = 'committing';
    this.#committing = (async () => {
      const { bucket } = this.#b;
      try {
        const { sdk, writeClient } = await this.#b.connect();
        if (this.#uploadId === null) {
          const body = this.#tail ?? Buffer.alloc(0);
          await writeClient.send(
            new sdk.PutObjectCommand({ Bucket: bucket, Key: this.#objectKey, Body: body, ContentLength: body.length, ContentMD5: md5Base64(body) }),
          );
        } else {
          const parts = [...this.#parts].sort((a, b) => a.PartNumber - b.PartNumber);
          await writeClient.send(
            new sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: this.#objectKey, UploadId: this.#uploadId, MultipartUpload: { Parts: parts } }),
          );
        }
      } catch (err) {
        // Not retried (the contract says commit is not safe to retry): the write is over.
        // Abort what is left; if the service had in fact completed the upload before the
        // answer was lost, the abort finds nothing and the object stays.
        this.#state = 'discarded';
        this.#tail = null;
        if (this.#uploadId !== null) await this.#abortUpload(this.#uploadId).catch(() => {});
        throw this.#error('commit', err);
      }
      this.#state = 'committed';
      this.#tail = null;
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
 * A provider storing objects in an S3 bucket, configured by {@link parseS3Config}'s result.
 * Creating it makes no request and loads nothing (the SDK comes with the first call): a
 * missing bucket or bad credentials show at the first call.
 */
export function s3Provider(config: S3Config): StorageProvider {
  const cfg = parseS3Config(config);
  const errors: ErrorContext = { bucket: cfg.bucket, region: cfg.region, secrets: secretsOf(cfg) };
  const clientConfig: S3ClientConfig = {
    region: cfg.region,
    forcePathStyle: cfg.force_path_style,
    // Integrity: every body carries its Content-MD5, which AWS and every S3-compatible store
    // check. The SDK's newer default checksums (CRC32, trailers) are refused by several
    // S3-compatible stores, so they are only sent where an operation requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: cfg.connect_timeout_ms, socketTimeout: cfg.request_timeout_ms },
  };
  if (cfg.endpoint !== undefined) clientConfig.endpoint = cfg.endpoint;
  if (cfg.access_key_id !== undefined && cfg.secret_access_key !== undefined) {
    clientConfig.credentials = {
      accessKeyId: cfg.access_key_id,
      secretAccessKey: cfg.secret_access_key,
      ...(cfg.session_token !== undefined ? { sessionToken: cfg.session_token } : {}),
    };
  }
  // Calls the provider contract says are safe to retry are tried once: retries wrap the
  // provider from outside (storage/retry.ts). Calls inside a write cannot be retried from
  // outside without sending every byte again, so the SDK retries those itself.
  let connecting: Promise<Connection> | null = null;
  const connect = (): Promise<Connection> =>
    (connecting ??= loadSdk().then(
      (sdk) => ({ sdk, client: new sdk.S3Client({ ...clientConfig, maxAttempts: 1 }), writeClient: new sdk.S3Client({ ...clientConfig, maxAttempts: cfg.max_attempts }) }),
      (err: unknown) => {
        connecting = null;
        throw err;
      },
    ));
  const bucket = cfg.bucket;
  const root = cfg.prefix === '' ? '' : `${cfg.prefix}/`;
  const b: WriteTarget = { connect, bucket, partSize: cfg.part_size_mb * MiB, queueSize: cfg.queue_size, errors };

  /** The bucket key of a storage key; refuses keys that could escape the prefix. */
  const objectKey = (key: string): string => root + keySegments(key).join('/');
  const fail = (op: string, key: string | null, err: unknown): StorageError => s3Error(op, key, err, errors);
  const isMissing = (err: unknown): boolean => {
    const e = err as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
    return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
  };

  const provider = {
    provider: 's3',
    capabilities: { localPath: false, listPartials: true },

    async create(key: string): Promise<ObjectWriter> {
      return new S3ObjectWriter(b, key, objectKey(key));
    },

    async put(key: string, data: Buffer): Promise<void> {
      const Key = objectKey(key);
      try {
        const { sdk, client } = await connect();
        await client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key, Body: data, ContentLength: data.length, ContentMD5: md5Base64(data) }));
      } catch (err) {
        throw fail('write', key, err);
      }
    },

    async read(key: string): Promise<Readable> {
      const Key = objectKey(key);
      try {
        const { sdk, client } = await connect();
        const out = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key }));
        if (!out.Body) throw new Error('the service returned no body');
        // In Node the SDK's body is the http.IncomingMessage itself.
        return watchedBody(out.Body as IncomingMessage, cfg.request_timeout_ms, (err) => fail('read', key, err));
      } catch (err) {
        throw fail('read', key, err);
      }
    },

    async stat(key: string): Promise<ObjectInfo | null> {
      const Key = objectKey(key);
      try {
        const { sdk, client } = await connect();
        const out = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key }));
        return { key, size: out.ContentLength ?? 0 };
      } catch (err) {
        // A HEAD answer has no body, so a missing bucket looks like a missing object here.
        if (isMissing(err)) return null;
        throw fail('stat', key, err);
      }
    },

    async delete(key: string): Promise<void> {
      const Key = objectKey(key);
      try {
        const { sdk, client } = await connect();
        await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key }));
      } catch (err) {
        // S3 answers 204 for a missing key; some compatible stores answer 404.
        if ((err as { name?: unknown }).name === 'NoSuchKey') return;
        throw fail('delete', key, err);
      }
    },

    async removePartials(key: string): Promise<void> {
      const Key = objectKey(key);
      try {
        const { sdk, client } = await connect();
        // Listed in full before aborting any, so that no store's paging can skip one
        // because the listing changed under it.
        const uploadIds: string[] = [];
        let keyMarker: string | undefined;
        let uploadIdMarker: string | undefined;
        for (;;) {
          const page = await client.send(
            new sdk.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: Key, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
          );
          for (const upload of page.Uploads ?? []) {
            // The prefix also matches longer keys ("dump" and "dump.bak"): only this key's.
            if (upload.Key === Key && upload.UploadId) uploadIds.push(upload.UploadId);
          }
          if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) break;
          keyMarker = page.NextKeyMarker;
          uploadIdMarker = page.NextUploadIdMarker;
        }
        for (const UploadId of uploadIds) {
          try {
            await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
          } catch (err) {
            if ((err as { name?: unknown }).name !== 'NoSuchUpload') throw err;
          }
        }
      } catch (err) {
        throw fail('remove the unfinished uploads of', key, err);
      }
    },

    async *listPartials(prefix: string): AsyncIterable<PartialInfo> {
      checkPrefix(prefix);
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        let page;
        try {
          const { sdk, client } = await connect();
          page = await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: root + prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        } catch (err) {
          throw fail('list the unfinished uploads of', prefix === '' ? null : prefix, err);
        }
        for (const upload of page.Uploads ?? []) {
          if (upload.Key === undefined || !upload.Key.startsWith(root)) continue;
          const key = upload.Key.slice(root.length);
          // Uploads of keys this interface could not name are not ours to remove.
          try {
            keySegments(key);
          } catch {
            continue;
          }
          // A store that does not say when an upload began never has it taken for stale.
          yield { key, startedAt: upload.Initiated ?? new Date() };
        }
        if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) return;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      checkPrefix(prefix);
      let token: string | undefined;
      do {
        let page;
        try {
          const { sdk, client } = await connect();
          page = await client.send(new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: root + prefix, ContinuationToken: token }));
        } catch (err) {
          throw fail('list', prefix === '' ? null : prefix, err);
        }
        for (const item of page.Contents ?? []) {
          if (item.Key === undefined || !item.Key.startsWith(root)) continue;
          const key = item.Key.slice(root.length);
          // Objects that are not valid keys (folder markers "x/", "a//b" written by other
          // tools) could not be read, stat'ed or deleted through this interface: skip them.
          try {
            keySegments(key);
          } catch {
            continue;
          }
          yield { key, size: item.Size ?? 0 };
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    },

    localPath(key: string): string | null {
      keySegments(key);
      return null;
    },

    describe(): Record<string, unknown> {
      return { provider: 's3', endpoint: cfg.endpoint ?? null, region: cfg.region, bucket, prefix: cfg.prefix };
    },
  } satisfies StorageProvider;
  return provider;
}
