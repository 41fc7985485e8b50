/**
 * The few Drive v3 calls the provider needs, over plain fetch: authenticated (a 401 drops
 * the cached token and the call is sent once more with a fresh one), bounded by the request
 * timeout, and failing with StorageErrors that say whether a retry can help.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

import { StorageError } from '../provider.js';
import { TokenSource } from './auth.js';
import { configSecrets, type ResolvedDriveConfig } from './config.js';
import { Scrubber } from './errors.js';
import { driveString } from './query.js';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';
/** What every listing and lookup asks for; Drive returns only the fields named. */
const FILE_FIELDS = 'id,name,mimeType,size,md5Checksum,createdTime,appProperties';
/** Shared drives work only when every call says it supports them. */
const ALL_DRIVES = { supportsAllDrives: 'true' };

/** A file or folder as Drive describes it (`size` is an int64 sent as a string). */
export interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  size?: string;
  md5Checksum?: string;
  createdTime?: string;
  appProperties?: Record<string, string>;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** An absolute URL, or a path under api_base. */
  url: string;
  query?: Record<string, string>;
  json?: unknown;
  body?: Buffer;
  headers?: Record<string, string>;
  /** Cancels the request (the writer was aborted). */
  signal?: AbortSignal;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

function isDriveFile(value: unknown): value is DriveFile {
  const v = value as DriveFile | null;
  return typeof v === 'object' && v !== null && typeof v.id === 'string' && typeof v.name === 'string';
}

export class DriveApi {
  readonly scrubber: Scrubber;
  readonly tokens: TokenSource;
  readonly #apiBase: string;
  readonly #timeoutMs: number;
  readonly #rootId: string;
  /** Called when a folder turned out to be gone, so cached folder ids can be dropped. */
  onFolderGone: () => void = () => {};

  constructor(readonly config: ResolvedDriveConfig) {
    this.scrubber = new Scrubber(configSecrets(config));
    this.tokens = new TokenSource(config.credentials, config.token_uri, config.request_timeout_ms, this.scrubber);
    this.#apiBase = config.api_base;
    this.#timeoutMs = config.request_timeout_ms;
    this.#rootId = config.folder_id;
  }

  #url(spec: RequestSpec): string {
    const url = new URL(/^https?:\/\//.test(spec.url) ? spec.url : `${this.#apiBase}${spec.url}`);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, v);
    return url.toString();
  }

  /**
   * Send one authenticated request. With `stream`, the body is left for the caller and the
   * returned `done()` must be called once it is consumed (it stops the header timer).
   */
  async #send(what: string, spec: RequestSpec): Promise<Answer>;
  async #send(what: string, spec: RequestSpec, stream: true): Promise<Answer | { res: Response; controller: AbortController; done: () => void }>;
  async #send(what: string, spec: RequestSpec, stream = false): Promise<Answer | { res: Response; controller: AbortController; done: () => void }> {
    const url = this.#url(spec);
    for (let attempt = 1; ; attempt++) {
      const token = await this.tokens.get();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${this.#timeoutMs} ms`, 'TimeoutError')), this.#timeoutMs);
      const signal = spec.signal ? AbortSignal.any([controller.signal, spec.signal]) : controller.signal;
      const headers: Record<string, string> = { ...spec.headers, authorization: `Bearer ${token}` };
      // A Buffer is a Uint8Array view; the DOM typings only want to see ArrayBuffer-backed ones.
      let body = spec.body as RequestInit['body'];
      if (spec.json !== undefined) {
        headers['content-type'] = 'application/json; charset=UTF-8';
        body = JSON.stringify(spec.json);
      }
      let res: Response;
      let text = '';
      try {
        // Never follow a redirect: it would carry the bearer token elsewhere, and Drive's
        // 308 "Resume Incomplete" is an answer, not a redirect.
        res = await fetch(url, { method: spec.method, headers, body, redirect: 'manual', signal });
        if (!stream || res.status === 401 || res.status >= 300) text = await res.text();
      } catch (err) {
        clearTimeout(timer);
        throw this.scrubber.networkError(what, signal.reason ?? err, this.#timeoutMs);
      }
      if (res.status === 401 && attempt === 1) {
        // Expired or revoked early: forget it and try once more with a fresh one.
        clearTimeout(timer);
        this.tokens.invalidate(token);
        continue;
      }
      if (!stream || res.status >= 300) {
        clearTimeout(timer);
        return { status: res.status, headers: res.headers, text };
      }
      return { res, controller, done: () => clearTimeout(timer) };
    }
  }

  #fail(what: string, answer: Answer, opts: { notFound?: boolean } = {}): StorageError {
    return this.scrubber.apiError(what, answer.status, answer.text, opts);
  }

  /** The error for a parent folder Drive says does not exist. */
  #folderMissing(parentId: string, what: string): StorageError {
    if (parentId === this.#rootId) {
      return new StorageError(
        this.scrubber.scrub(
          `google drive: cannot ${what}: folder_id ${parentId} does not exist or is not shared with the ${this.tokens.kind} (HTTP 404)`,
        ),
        true,
      );
    }
    // A folder under the root vanished (deleted by hand?): forget cached ids; a retry looks again.
    this.onFolderGone();
    return new StorageError(`google drive: cannot ${what}: a folder on the way was deleted meanwhile (HTTP 404)`, false);
  }

  #json(what: string, answer: Answer): unknown {
    try {
      return JSON.parse(answer.text);
    } catch {
      throw new StorageError(`google drive: cannot ${what}: the answer is not JSON`, false);
    }
  }

  /** Children of `parentId` (all pages), only those named exactly `name` when given. */
  async listChildren(parentId: string, what: string, name?: string): Promise<DriveFile[]> {
    const clauses = [`${driveString(parentId)} in parents`, 'trashed = false'];
    if (name !== undefined) clauses.unshift(`name = ${driveString(name)}`);
    const out: DriveFile[] = [];
    let pageToken: string | undefined;
    do {
      const query: Record<string, string> = {
        q: clauses.join(' and '),
        fields: `nextPageToken,files(${FILE_FIELDS})`,
        pageSize: '1000',
        includeItemsFromAllDrives: 'true',
        ...ALL_DRIVES,
      };
      if (pageToken !== undefined) query.pageToken = pageToken;
      const answer = await this.#send(what, { method: 'GET', url: '/drive/v3/files', query });
      if (answer.status === 404) throw this.#folderMissing(parentId, what);
      if (answer.status !== 200) throw this.#fail(what, answer);
      const body = this.#json(what, answer);
      const page = body as { files?: unknown; nextPageToken?: unknown };
      if (!Array.isArray(page.files)) throw new StorageError(`google drive: cannot ${what}: the listing has no files`, false);
      for (const f of page.files) {
        // Drive's name match is not guaranteed to be exact (case, Unicode forms): check again.
        if (isDriveFile(f) && (name === undefined || f.name === name)) out.push(f);
      }
      pageToken = typeof page.nextPageToken === 'string' && page.nextPageToken !== '' ? page.nextPageToken : undefined;
    } while (pageToken !== undefined);
    return out;
  }

  /** Make folder `name` in `parentId` (whether one of that name exists is the caller's business). */
  async createFolder(parentId: string, name: string, what: string): Promise<DriveFile> {
    const answer = await this.#send(what, {
      method: 'POST',
      url: '/drive/v3/files',
      query: { fields: FILE_FIELDS, ...ALL_DRIVES },
      json: { name, mimeType: FOLDER_MIME, parents: [parentId] },
    });
    if (answer.status === 404) throw this.#folderMissing(parentId, what);
    if (answer.status !== 200) throw this.#fail(what, answer);
    const body = this.#json(what, answer);
    if (!isDriveFile(body)) throw new StorageError(`google drive: cannot ${what}: the answer has no file id`, false);
    return body;
  }

  /** Change a file's name and app properties (a null value removes a property). */
  async update(id: string, patch: { name?: string; appProperties?: Record<string, string | null> }, what: string): Promise<void> {
    const answer = await this.#send(what, {
      method: 'PATCH',
      url: `/drive/v3/files/${encodeURIComponent(id)}`,
      query: { fields: 'id', ...ALL_DRIVES },
      json: patch,
    });
    if (answer.status !== 200) throw this.#fail(what, answer, { notFound: true });
  }

  /**
   * Delete for good, or move to the trash where only that is allowed (a content manager of a
   * shared drive; Drive empties its trash after 30 days). A file already gone is not an error.
   */
  async delete(id: string, what: string): Promise<void> {
    const url = `/drive/v3/files/${encodeURIComponent(id)}`;
    const answer = await this.#send(what, { method: 'DELETE', url, query: ALL_DRIVES });
    if (answer.status === 404 || answer.status === 204 || answer.status === 200) return;
    if (answer.status === 403) {
      const trashed = await this.#send(what, { method: 'PATCH', url, query: { fields: 'id', ...ALL_DRIVES }, json: { trashed: true } });
      if (trashed.status === 200 || trashed.status === 404) return;
    }
    throw this.#fail(what, answer);
  }

  /**
   * Stream a file's content, checking at the end that it has `size` bytes and, when Drive
   * knows it, the MD5 `md5`. A stall longer than the request timeout fails the stream.
   */
  async download(file: DriveFile, what: string): Promise<Readable> {
    const opened = await this.#send(
      what,
      { method: 'GET', url: `/drive/v3/files/${encodeURIComponent(file.id)}`, query: { alt: 'media', ...ALL_DRIVES } },
      true,
    );
    if ('text' in opened) throw this.#fail(what, opened, { notFound: true });
    const { res, controller, done } = opened;
    done();
    if (res.status !== 200 || res.body === null) {
      await res.body?.cancel().catch(() => {});
      throw this.#fail(what, { status: res.status, headers: res.headers, text: '' }, { notFound: true });
    }
    const reader = res.body.getReader();
    const expectedSize = file.size === undefined ? null : Number(file.size);
    const md5 = createHash('md5');
    let received = 0;
    let idle: NodeJS.Timeout | undefined;
    const timeoutMs = this.#timeoutMs;
    const scrubber = this.scrubber;
    return new Readable({
      highWaterMark: 256 * 1024,
      read() {
        idle = setTimeout(() => controller.abort(new DOMException(`no data for ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
        reader.read().then(
          ({ done: end, value }) => {
            clearTimeout(idle);
            if (end) {
              if (expectedSize !== null && received !== expectedSize) {
                this.destroy(new StorageError(`google drive: cannot ${what}: got ${received} of ${expectedSize} bytes`, false));
              } else if (file.md5Checksum !== undefined && md5.digest('hex') !== file.md5Checksum) {
                this.destroy(new StorageError(`google drive: cannot ${what}: the content does not match its MD5 checksum`, false));
              } else {
                this.push(null);
              }
              return;
            }
            received += value.byteLength;
            md5.update(value);
            this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
          },
          (err: unknown) => {
            clearTimeout(idle);
            this.destroy(scrubber.networkError(what, controller.signal.reason ?? err, timeoutMs));
          },
        );
      },
      destroy(error, callback) {
        clearTimeout(idle);
        if (!controller.signal.aborted) controller.abort();
        reader.cancel().catch(() => {});
        callback(error);
      },
    });
  }

  /** Open a resumable upload session for a new file; returns the session URI. */
  async startUpload(parentId: string, name: string, appProperties: Record<string, string>, what: string): Promise<string> {
    const answer = await this.#send(what, {
      method: 'POST',
      url: '/upload/drive/v3/files',
      query: { uploadType: 'resumable', fields: 'id,size,md5Checksum', ...ALL_DRIVES },
      headers: { 'x-upload-content-type': 'application/octet-stream' },
      json: { name, parents: [parentId], mimeType: 'application/octet-stream', appProperties },
    });
    if (answer.status === 404) throw this.#folderMissing(parentId, what);
    if (answer.status !== 200 && answer.status !== 201) throw this.#fail(what, answer);
    const location = answer.headers.get('location');
    if (location === null) throw new StorageError(`google drive: cannot ${what}: no upload session was returned`, false);
    // Chunks are sent with the bearer token: only ever to the API's own origin.
    if (new URL(location, this.#apiBase).origin !== new URL(this.#apiBase).origin) {
      throw new StorageError(`google drive: cannot ${what}: the upload session is on an unexpected host`, true);
    }
    return new URL(location, this.#apiBase).toString();
  }

  /** One PUT to an upload session (a chunk, or an empty status query). */
  async uploadPut(session: string, body: Buffer, contentRange: string, what: string, signal?: AbortSignal): Promise<Answer> {
    return this.#send(what, {
      method: 'PUT',
      url: session,
      body,
      headers: { 'content-range': contentRange, 'content-type': 'application/octet-stream' },
      signal,
    });
  }

  /** Cancel an upload session; whatever happens, the session expires on its own within a week. */
  async cancelUpload(session: string, what: string): Promise<void> {
    await this.#send(what, { method: 'DELETE', url: session }).catch(() => {});
  }

  /** The StorageError for an unsuccessful answer (for callers reading statuses themselves). */
  apiError(what: string, answer: Answer, opts: { notFound?: boolean } = {}): StorageError {
    return this.#fail(what, answer, opts);
  }
}
