/**
 * A local S3-compatible server for tests, with a fault-injecting proxy in front of it.
 *
 * The server is real HTTP speaking the subset of the S3 REST API that the S3 provider uses,
 * path-style only: PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2,
 * CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
 * ListMultipartUploads (and CreateBucket). It checks AWS Signature V4 on every request,
 * Content-MD5 and x-amz-content-sha256 on every body, and S3's multipart rules (part
 * numbers, ETags, 5 MiB minimum for all parts but the last), and keeps objects and parts as
 * files in a temporary folder. (s3rver, the usual choice, has no AbortMultipartUpload nor
 * ListMultipartUploads, which the provider's contract depends on.)
 *
 * Usage:
 *   const s3 = await startS3Server();
 *   const provider = s3Provider({ endpoint: s3.endpoint, bucket: s3.bucket, force_path_style: true,
 *     access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey, ... });
 *   s3.failParts(2);   // the next two UploadPart requests get HTTP 500
 *   s3.failShare(0.2, seededRandom(seed));   // one UploadPart in every five fails, at a seeded place
 *   s3.goAway();       // every connection is dropped until s3.restore()
 *   await s3.close();
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface S3ServerOptions {
  /** The bucket made at start. Default "strongbox-test". */
  bucket?: string;
  /** Most entries ListObjectsV2 and ListMultipartUploads return per page, whatever is asked (to exercise paging). Default 1000. */
  pageSize?: number;
}

/** An in-progress multipart upload as the server sees it. */
export interface OpenUpload {
  bucket: string;
  key: string;
  uploadId: string;
  parts: number;
}

export interface S3TestServer {
  /** The fault-injecting proxy's URL (http://127.0.0.1:port): give this to providers. */
  readonly endpoint: string;
  /** The server's own URL, bypassing the proxy and its faults. */
  readonly directEndpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The temporary folder holding objects and parts (removed by close()). */
  readonly dir: string;
  /** Requests that reached the proxy, counted by S3 operation name, e.g. `requests.UploadPart`. */
  readonly requests: Readonly<Record<string, number>>;
  /** The most requests of each operation the proxy had in flight at once, e.g. `peaks.UploadPart`. */
  readonly peaks: Readonly<Record<string, number>>;
  /** Zero `requests` and `peaks`. */
  resetRequests(): void;
  /** Answer the next `n` UploadPart requests with HTTP 500 InternalError instead of passing them on. */
  failParts(n: number): void;
  /**
   * Answer the next `n` requests of operation `op` (as in `requests`) with `status` and
   * error `code` instead of passing them on. Default 500 InternalError.
   */
  fail(op: string, n: number, status?: number, code?: string): void;
  /**
   * Answer a `share` of the requests of operation `op` (default UploadPart) with HTTP 500
   * InternalError (0 stops it): in every run of round(1 / share) such requests, exactly one,
   * at a position drawn from `random` (a seeded generator makes a run replayable). So the
   * share is exact, not a probability a short test might never reach. Counted in `injected`.
   */
  failShare(share: number, random: () => number, op?: string): void;
  /** Requests answered with an injected fault instead of being passed on, by operation. */
  readonly injected: Readonly<Record<string, number>>;
  /** Drop every open connection and every new one at once (the client sees a reset) until restore(). */
  goAway(): void;
  /**
   * Accept connections and requests but never answer them, and stop passing on the bodies
   * of answers under way (the client sees a timeout), until restore().
   */
  stall(): void;
  /** Undo goAway() and stall(); stalled connections are dropped. */
  restore(): void;
  /** Multipart uploads begun and neither completed nor aborted. */
  openUploads(): OpenUpload[];
  createBucket(name: string): void;
  /** Stop both servers and remove the folder. */
  close(): Promise<void>;
}

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;
const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

class S3Fault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** More elements of the error document, as AWS adds (StringToSign, AWSAccessKeyId...). */
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface StoredObject {
  file: string;
  size: number;
  etag: string;
  modified: Date;
}

interface Upload {
  bucket: string;
  key: string;
  uploadId: string;
  initiated: Date;
  parts: Map<number, { file: string; size: number; etag: string }>;
}

interface Received {
  file: string;
  size: number;
  md5: Buffer;
}

function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function xmlUnescape(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos|#34|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#34': '"', '#39': "'" })[e]!);
}

/** `<tag>value</tag>` for each entry; arrays repeat the tag, nested objects nest. */
type XmlValue = string | number | boolean | XmlValue[] | { [tag: string]: XmlValue };
function xml(body: Record<string, XmlValue>): string {
  const render = (tag: string, value: XmlValue): string => {
    if (Array.isArray(value)) return value.map((v) => render(tag, v)).join('');
    if (typeof value === 'object') return `<${tag}>${Object.entries(value).map(([t, v]) => render(t, v)).join('')}</${tag}>`;
    return `<${tag}>${xmlEscape(String(value))}</${tag}>`;
  };
  const [[root, content]] = Object.entries(body);
  const inner = typeof content === 'object' && !Array.isArray(content) ? Object.entries(content).map(([t, v]) => render(t, v)).join('') : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${XMLNS}">${inner}</${root}>`;
}

/** RFC 3986 encoding, as Signature V4 wants it. */
function strictEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function parseQuery(raw: string): Array<[string, string]> {
  return raw
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      return i < 0 ? [decodeURIComponent(p), ''] : [decodeURIComponent(p.slice(0, i)), decodeURIComponent(p.slice(i + 1))];
    });
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** S3 lists keys in UTF-8 byte order. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Which S3 operation a request is (for the proxy's counters and faults). */
export function operationOf(method: string, url: string): string {
  const [rawPath, rawQuery = ''] = url.split('?', 2);
  const q = new Set(parseQuery(rawQuery).map(([k]) => k));
  const hasKey = rawPath.replace(/^\/+/, '').includes('/') && !rawPath.replace(/^\/+/, '').endsWith('/');
  if (rawPath === '/' || rawPath === '') return method === 'GET' ? 'ListBuckets' : `${method} /`;
  if (!hasKey) {
    if (method === 'GET' && q.has('uploads')) return 'ListMultipartUploads';
    if (method === 'GET' && q.has('list-type')) return 'ListObjectsV2';
    if (method === 'GET') return 'ListObjects';
    if (method === 'PUT') return 'CreateBucket';
    if (method === 'HEAD') return 'HeadBucket';
    return `${method} bucket`;
  }
  switch (method) {
    case 'PUT':
      return q.has('uploadId') ? 'UploadPart' : 'PutObject';
    case 'POST':
      return q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : 'PostObject';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'GET':
      return q.has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    default:
      return `${method} object`;
  }
}

class S3Backend {
  readonly buckets = new Map<string, Map<string, StoredObject>>();
  readonly uploads = new Map<string, Upload>();
  #seq = 0;

  constructor(
    readonly dir: string,
    readonly region: string,
    readonly accessKeyId: string,
    readonly secretAccessKey: string,
    readonly pageSize: number,
  ) {}

  #newFile(kind: string): string {
    return path.join(this.dir, kind, randomBytes(12).toString('hex'));
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    try {
      await this.#route(req, res);
    } catch (err) {
      const fault = err instanceof S3Fault ? err : new S3Fault(500, 'InternalError', err instanceof Error ? err.message : String(err));
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // Whatever of the body is still unread is drained so that the connection stays usable.
      req.resume();
      if (req.method === 'HEAD') {
        res.writeHead(fault.status).end();
        return;
      }
      const body = xml({ Error: { Code: fault.code, Message: fault.message, ...fault.extra, RequestId: requestId } });
      res.writeHead(fault.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) }).end(body);
    }
  }

  #verifySignature(req: http.IncomingMessage, rawPath: string, rawQuery: string): void {
    const auth = req.headers.authorization;
    if (!auth) throw new S3Fault(403, 'AccessDenied', 'Access Denied: anonymous requests are not allowed');
    const m = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/s3\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) throw new S3Fault(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed');
    const [, accessKeyId, date, region, signedHeaders, signature] = m;
    if (accessKeyId !== this.accessKeyId) {
      throw new S3Fault(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: accessKeyId });
    }
    if (region !== this.region) {
      throw new S3Fault(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; the region '${region}' is wrong; expecting '${this.region}'`);
    }
    const amzDate = req.headers['x-amz-date'];
    if (typeof amzDate !== 'string' || !amzDate.startsWith(date)) throw new S3Fault(403, 'AccessDenied', 'x-amz-date is missing or differs from the credential scope');
    const payloadHash = req.headers['x-amz-content-sha256'];
    if (typeof payloadHash !== 'string') throw new S3Fault(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    const headerNames = signedHeaders.split(';');
    if (!headerNames.includes('host')) throw new S3Fault(403, 'AccessDenied', 'the host header must be signed');
    const canonicalHeaders = headerNames
      .map((h) => {
        const value = req.headers[h];
        return `${h}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s+/g, ' ')}\n`;
      })
      .join('');
    const canonicalQuery = parseQuery(rawQuery)
      .map(([k, v]) => [strictEncode(k), strictEncode(v)])
      .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const canonicalRequest = [req.method, rawPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join('\n');
    const scope = `${date}/${region}/s3/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
    const key = hmac(hmac(hmac(hmac(`AWS4${this.secretAccessKey}`, date), region), 's3'), 'aws4_request');
    const expected = createHmac('sha256', key).update(stringToSign).digest();
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
      // As AWS does: the canonical request holds every signed header, a session token too.
      throw new S3Fault(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        AWSAccessKeyId: accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: signature,
        CanonicalRequest: canonicalRequest,
      });
    }
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    this.#verifySignature(req, rawPath, rawQuery);
    const query = new Map(parseQuery(rawQuery));
    const segments = rawPath.slice(1).split('/');
    const bucketName = decodeURIComponent(segments[0] ?? '');
    const key = segments.slice(1).map(decodeURIComponent).join('/');
    const method = req.method ?? 'GET';

    if (bucketName === '') throw new S3Fault(501, 'NotImplemented', 'ListBuckets is not implemented');
    if (segments.length === 1 || (segments.length === 2 && key === '')) {
      if (method === 'PUT' && query.size === 0) {
        this.createBucket(bucketName);
        return this.#empty(res, 200);
      }
      const bucket = this.#bucket(bucketName);
      if (method === 'HEAD') return this.#empty(res, 200);
      if (method === 'GET' && query.has('uploads')) return this.#listUploads(res, bucketName, query);
      if (method === 'GET' && query.get('list-type') === '2') return this.#listObjects(res, bucketName, bucket, query);
      throw new S3Fault(501, 'NotImplemented', `${method} on a bucket with this query is not implemented`);
    }
    const bucket = this.#bucket(bucketName);
    if (key.length > 1024) throw new S3Fault(400, 'KeyTooLongError', 'Your key is too long');
    const uploadId = query.get('uploadId');
    switch (method) {
      case 'PUT':
        if (req.headers['x-amz-copy-source'] !== undefined) throw new S3Fault(501, 'NotImplemented', 'CopyObject is not implemented');
        if (uploadId !== undefined) return this.#uploadPart(req, res, bucketName, key, uploadId, query.get('partNumber'));
        return this.#putObject(req, res, bucket, key);
      case 'POST':
        if (query.has('uploads')) return this.#createUpload(res, bucketName, key);
        if (uploadId !== undefined) return this.#completeUpload(req, res, bucketName, bucket, key, uploadId);
        throw new S3Fault(501, 'NotImplemented', 'POST object is not implemented');
      case 'DELETE':
        if (uploadId !== undefined) return this.#abortUpload(res, bucketName, key, uploadId);
        return this.#deleteObject(res, bucket, key);
      case 'GET':
      case 'HEAD':
        if (uploadId !== undefined) throw new S3Fault(501, 'NotImplemented', 'ListParts is not implemented');
        return this.#getObject(res, bucket, key, method === 'HEAD');
      default:
        throw new S3Fault(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.');
    }
  }

  createBucket(name: string): void {
    if (!this.buckets.has(name)) this.buckets.set(name, new Map());
  }

  #bucket(name: string): Map<string, StoredObject> {
    const bucket = this.buckets.get(name);
    if (!bucket) throw new S3Fault(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return bucket;
  }

  #empty(res: http.ServerResponse, status: number, headers: Record<string, string> = {}): void {
    res.writeHead(status, status === 204 ? headers : { ...headers, 'Content-Length': '0' }).end();
  }

  #xml(res: http.ServerResponse, body: Record<string, XmlValue>): void {
    const text = xml(body);
    res.writeHead(200, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(text) }).end(text);
  }

  /** Store a request body in a new file, checking its length and digests. */
  async #receive(req: http.IncomingMessage, kind: string): Promise<Received> {
    const claimed = req.headers['x-amz-content-sha256'];
    if (typeof claimed === 'string' && claimed.startsWith('STREAMING-')) {
      throw new S3Fault(501, 'NotImplemented', 'aws-chunked uploads are not implemented by this test server');
    }
    const file = this.#newFile(kind);
    const md5 = createHash('md5');
    const sha = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        sha.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(req, tap, createWriteStream(file));
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) !== size) throw new S3Fault(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header');
      const digest = md5.digest();
      const contentMd5 = req.headers['content-md5'];
      if (contentMd5 !== undefined && contentMd5 !== digest.toString('base64')) {
        throw new S3Fault(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
      }
      if (typeof claimed === 'string' && /^[0-9a-f]{64}$/.test(claimed) && claimed !== sha.digest('hex')) {
        throw new S3Fault(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
      return { file, size, md5: digest };
    } catch (err) {
      await fs.rm(file, { force: true });
      throw err;
    }
  }

  async #putObject(req: http.IncomingMessage, res: http.ServerResponse, bucket: Map<string, StoredObject>, key: string): Promise<void> {
    const body = await this.#receive(req, 'objects');
    const etag = `"${body.md5.toString('hex')}"`;
    this.#store(bucket, key, { file: body.file, size: body.size, etag, modified: new Date() });
    this.#empty(res, 200, { ETag: etag });
  }

  #store(bucket: Map<string, StoredObject>, key: string, object: StoredObject): void {
    const old = bucket.get(key);
    bucket.set(key, object);
    // An open read of the old version keeps its data (the file is only unlinked).
    if (old) void fs.rm(old.file, { force: true });
  }

  async #getObject(res: http.ServerResponse, bucket: Map<string, StoredObject>, key: string, head: boolean): Promise<void> {
    const object = bucket.get(key);
    if (!object) throw new S3Fault(404, head ? 'NotFound' : 'NoSuchKey', 'The specified key does not exist.');
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(object.size),
      ETag: object.etag,
      'Last-Modified': object.modified.toUTCString(),
      'Accept-Ranges': 'bytes',
    };
    if (head) {
      res.writeHead(200, headers).end();
      return;
    }
    // Opened before answering: the object may be replaced or deleted meanwhile.
    const handle = await fs.open(object.file, 'r').catch(() => {
      throw new S3Fault(404, 'NoSuchKey', 'The specified key does not exist.');
    });
    res.writeHead(200, headers);
    await pipeline(handle.createReadStream(), res).catch(() => res.destroy());
  }

  #deleteObject(res: http.ServerResponse, bucket: Map<string, StoredObject>, key: string): void {
    const object = bucket.get(key);
    if (object) {
      bucket.delete(key);
      void fs.rm(object.file, { force: true });
    }
    this.#empty(res, 204);
  }

  #listObjects(res: http.ServerResponse, name: string, bucket: Map<string, StoredObject>, query: Map<string, string>): void {
    if (query.has('delimiter')) throw new S3Fault(501, 'NotImplemented', 'delimiter is not implemented');
    const prefix = query.get('prefix') ?? '';
    const token = query.get('continuation-token');
    const after = token !== undefined ? Buffer.from(token, 'base64url').toString() : (query.get('start-after') ?? '');
    const maxKeys = Math.min(Number(query.get('max-keys') ?? 1000), this.pageSize);
    const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix) && byteOrder(k, after) > 0).sort(byteOrder);
    const page = keys.slice(0, maxKeys);
    const truncated = keys.length > page.length;
    this.#xml(res, {
      ListBucketResult: {
        Name: name,
        Prefix: prefix,
        KeyCount: page.length,
        MaxKeys: maxKeys,
        IsTruncated: truncated,
        ...(token !== undefined ? { ContinuationToken: token } : {}),
        ...(truncated ? { NextContinuationToken: Buffer.from(page[page.length - 1]).toString('base64url') } : {}),
        Contents: page.map((k) => {
          const o = bucket.get(k)!;
          return { Key: k, LastModified: o.modified.toISOString(), ETag: o.etag, Size: o.size, StorageClass: 'STANDARD' };
        }),
      },
    });
  }

  #upload(bucket: string, key: string, uploadId: string): Upload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.bucket !== bucket || upload.key !== key) {
      throw new S3Fault(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    }
    return upload;
  }

  #createUpload(res: http.ServerResponse, bucket: string, key: string): void {
    // Upload ids sort in the order the uploads began, so that a listing can go on after an
    // upload-id-marker even when that upload is gone meanwhile.
    const uploadId = `${String(this.#seq++).padStart(10, '0')}${randomBytes(18).toString('base64url')}`;
    this.uploads.set(uploadId, { bucket, key, uploadId, initiated: new Date(), parts: new Map() });
    this.#xml(res, { InitiateMultipartUploadResult: { Bucket: bucket, Key: key, UploadId: uploadId } });
  }

  async #uploadPart(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string, uploadId: string, partNumber: string | undefined): Promise<void> {
    const n = Number(partNumber);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new S3Fault(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    this.#upload(bucket, key, uploadId);
    const body = await this.#receive(req, 'parts');
    // Aborted while the body arrived: the part is dropped, as S3 may.
    const upload = this.uploads.get(uploadId);
    if (!upload) {
      await fs.rm(body.file, { force: true });
      throw new S3Fault(404, 'NoSuchUpload', 'The specified upload does not exist.');
    }
    const etag = `"${body.md5.toString('hex')}"`;
    const old = upload.parts.get(n);
    upload.parts.set(n, { file: body.file, size: body.size, etag });
    if (old) void fs.rm(old.file, { force: true });
    this.#empty(res, 200, { ETag: etag });
  }

  async #completeUpload(req: http.IncomingMessage, res: http.ServerResponse, bucketName: string, bucket: Map<string, StoredObject>, key: string, uploadId: string): Promise<void> {
    const upload = this.#upload(bucketName, key, uploadId);
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of req) {
      length += (chunk as Buffer).length;
      if (length > MiB) throw new S3Fault(400, 'MalformedXML', 'The XML you provided was too large');
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const listed = [...text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map(([, inner]) => ({
      number: Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(inner)?.[1]),
      etag: xmlUnescape(/<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1] ?? '').trim(),
    }));
    if (!/<CompleteMultipartUpload[\s>]/.test(text) || listed.length === 0) {
      throw new S3Fault(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
    }
    const parts = listed.map((p, i) => {
      if (!Number.isInteger(p.number) || (i > 0 && p.number <= listed[i - 1].number)) {
        throw new S3Fault(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
      }
      const part = upload.parts.get(p.number);
      const unquoted = (s: string) => s.replace(/^"|"$/g, '');
      if (!part || unquoted(part.etag) !== unquoted(p.etag)) {
        throw new S3Fault(400, 'InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.');
      }
      if (i < listed.length - 1 && part.size < MIN_PART) {
        throw new S3Fault(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
      }
      return part;
    });
    const file = this.#newFile('objects');
    const out = await fs.open(file, 'w');
    try {
      for (const part of parts) {
        for await (const chunk of (await fs.open(part.file, 'r')).createReadStream()) await out.write(chunk as Buffer);
      }
      await out.close();
    } catch (err) {
      await out.close().catch(() => {});
      await fs.rm(file, { force: true });
      throw err;
    }
    // Aborted while the parts were being joined: nothing is stored.
    if (this.uploads.get(uploadId) !== upload) {
      await fs.rm(file, { force: true });
      throw new S3Fault(404, 'NoSuchUpload', 'The specified upload does not exist.');
    }
    const md5s = Buffer.concat(parts.map((p) => Buffer.from(p.etag.replace(/"/g, ''), 'hex')));
    const etag = `"${createHash('md5').update(md5s).digest('hex')}-${parts.length}"`;
    this.#store(bucket, key, { file, size: parts.reduce((n, p) => n + p.size, 0), etag, modified: new Date() });
    this.#dropUpload(upload);
    this.#xml(res, { CompleteMultipartUploadResult: { Location: `/${bucketName}/${key}`, Bucket: bucketName, Key: key, ETag: etag } });
  }

  #dropUpload(upload: Upload): void {
    this.uploads.delete(upload.uploadId);
    for (const part of upload.parts.values()) void fs.rm(part.file, { force: true });
  }

  #abortUpload(res: http.ServerResponse, bucket: string, key: string, uploadId: string): void {
    this.#dropUpload(this.#upload(bucket, key, uploadId));
    this.#empty(res, 204);
  }

  #listUploads(res: http.ServerResponse, bucket: string, query: Map<string, string>): void {
    if (query.has('delimiter')) throw new S3Fault(501, 'NotImplemented', 'delimiter is not implemented');
    const prefix = query.get('prefix') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const uploadIdMarker = query.get('upload-id-marker') ?? '';
    const max = Math.min(Number(query.get('max-uploads') ?? 1000), this.pageSize);
    const all = [...this.uploads.values()]
      .filter((u) => u.bucket === bucket && u.key.startsWith(prefix))
      .sort((a, b) => byteOrder(a.key, b.key) || byteOrder(a.uploadId, b.uploadId));
    let start = 0;
    if (keyMarker !== '') {
      start = all.findIndex((u) => {
        const c = byteOrder(u.key, keyMarker);
        return c > 0 || (c === 0 && uploadIdMarker !== '' && byteOrder(u.uploadId, uploadIdMarker) > 0);
      });
      if (start < 0) start = all.length;
    }
    const page = all.slice(start, start + max);
    const truncated = start + page.length < all.length;
    const last = page[page.length - 1];
    this.#xml(res, {
      ListMultipartUploadsResult: {
        Bucket: bucket,
        KeyMarker: keyMarker,
        UploadIdMarker: uploadIdMarker,
        ...(truncated ? { NextKeyMarker: last.key, NextUploadIdMarker: last.uploadId } : {}),
        Prefix: prefix,
        MaxUploads: max,
        IsTruncated: truncated,
        Upload: page.map((u) => ({ Key: u.key, UploadId: u.uploadId, Initiated: u.initiated.toISOString(), StorageClass: 'STANDARD' })),
      },
    });
  }
}

type ProxyMode = 'pass' | 'gone' | 'stall';

/** Start a server and its proxy on 127.0.0.1, each on a free port, with one empty bucket. */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3TestServer> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'strongbox-s3-'));
  for (const sub of ['objects', 'parts']) await fs.mkdir(path.join(dir, sub));
  const bucket = options.bucket ?? 'strongbox-test';
  const region = 'us-east-1';
  const accessKeyId = `AKIATEST${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(30).toString('base64');
  const backend = new S3Backend(dir, region, accessKeyId, secretAccessKey, options.pageSize ?? 1000);
  backend.createBucket(bucket);

  const server = http.createServer((req, res) => void backend.handle(req, res));
  const upstream = new http.Agent({ keepAlive: true });

  const requests: Record<string, number> = {};
  const peaks: Record<string, number> = {};
  const inFlight: Record<string, number> = {};
  const faults = new Map<string, { n: number; status: number; code: string }>();
  /** Per operation: the run length, the position in the current run, and which one fails. */
  const shares = new Map<string, { run: number; seen: number; victim: number; random: () => number }>();
  const injected: Record<string, number> = {};
  let mode: ProxyMode = 'pass';
  const sockets = new Set<Socket>();
  const answers = new Set<{ answer: http.IncomingMessage; res: http.ServerResponse }>();
  const proxy = http.createServer((req, res) => {
    if (mode === 'gone') return req.socket.destroy();
    if (mode === 'stall') return; // held until restore() or close() drops the socket
    const op = operationOf(req.method ?? 'GET', req.url ?? '/');
    requests[op] = (requests[op] ?? 0) + 1;
    inFlight[op] = (inFlight[op] ?? 0) + 1;
    peaks[op] = Math.max(peaks[op] ?? 0, inFlight[op]);
    res.once('close', () => inFlight[op]--);
    const fault = faults.get(op);
    const byShare = shares.get(op);
    let injectedFault: { status: number; code: string } | null = null;
    if (fault && fault.n > 0) {
      fault.n--;
      injectedFault = fault;
    } else if (byShare) {
      if (byShare.seen === 0) byShare.victim = Math.floor(byShare.random() * byShare.run);
      if (byShare.seen === byShare.victim) injectedFault = { status: 500, code: 'InternalError' };
      byShare.seen = (byShare.seen + 1) % byShare.run;
    }
    if (injectedFault) {
      const { status, code } = injectedFault;
      injected[op] = (injected[op] ?? 0) + 1;
      req.resume();
      req.once('end', () => {
        if (req.method === 'HEAD') return res.writeHead(status).end();
        const body = xml({ Error: { Code: code, Message: `injected ${code}` } });
        res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) }).end(body);
      });
      return;
    }
    // The Host header is passed on untouched: it is part of the signature.
    const headers = { ...req.headers };
    delete headers.expect; // this proxy already answered "100 Continue"
    const forward = http.request(
      { host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: req.method, path: req.url, headers, agent: upstream },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.once('error', () => res.destroy());
        const entry = { answer, res };
        answers.add(entry);
        res.once('close', () => answers.delete(entry));
      },
    );
    forward.once('error', () => res.destroy());
    req.once('error', () => forward.destroy());
    res.once('close', () => {
      if (!res.writableFinished) forward.destroy();
    });
    req.pipe(forward);
  });
  proxy.on('connection', (socket: Socket) => {
    if (mode === 'gone') return socket.destroy();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };

  const listen = (s: http.Server) =>
    new Promise<number>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port));
    });
  const serverPort = await listen(server);
  const proxyPort = await listen(proxy);

  return {
    endpoint: `http://127.0.0.1:${proxyPort}`,
    directEndpoint: `http://127.0.0.1:${serverPort}`,
    region,
    bucket,
    accessKeyId,
    secretAccessKey,
    dir,
    requests,
    peaks,
    resetRequests() {
      for (const op of Object.keys(requests)) delete requests[op];
      for (const op of Object.keys(peaks)) delete peaks[op];
      for (const op of Object.keys(injected)) delete injected[op];
    },
    failParts(n: number) {
      faults.set('UploadPart', { n, status: 500, code: 'InternalError' });
    },
    fail(op: string, n: number, status = 500, code = 'InternalError') {
      faults.set(op, { n, status, code });
    },
    failShare(share: number, random: () => number, op = 'UploadPart') {
      if (share > 0) shares.set(op, { run: Math.max(1, Math.round(1 / share)), seen: 0, victim: 0, random });
      else shares.delete(op);
    },
    injected,
    goAway() {
      mode = 'gone';
      dropAll();
    },
    stall() {
      mode = 'stall';
      for (const { answer, res } of answers) {
        answer.unpipe(res);
        answer.pause();
      }
    },
    restore() {
      if (mode === 'stall') dropAll();
      mode = 'pass';
    },
    openUploads() {
      return [...backend.uploads.values()].map((u) => ({ bucket: u.bucket, key: u.key, uploadId: u.uploadId, parts: u.parts.size }));
    },
    createBucket(name: string) {
      backend.createBucket(name);
    },
    async close() {
      mode = 'gone';
      dropAll();
      upstream.destroy();
      server.closeAllConnections();
      await Promise.all([new Promise((r) => proxy.close(r)), new Promise((r) => server.close(r))]);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** The config of an S3 destination on the test server, under `prefix`, with small parts and quick retries. */
export function s3DestinationConfig(s3: S3TestServer, prefix: string, extra: Record<string, unknown> = {}) {
  return {
    endpoint: s3.endpoint,
    region: s3.region,
    bucket: s3.bucket,
    prefix,
    force_path_style: true,
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    part_size_mb: 5,
    queue_size: 2,
    connect_timeout_ms: 2000,
    request_timeout_ms: 10_000,
    max_attempts: 5,
    ...extra,
  };
}
