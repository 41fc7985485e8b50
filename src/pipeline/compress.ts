/**
 * Compression stages: zstd through the real `zstd` CLI (multithreaded, and the artifact
 * stays readable with stock tools), gzip through node:zlib, or none.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import zlib from 'node:zlib';

/** How an artifact's bytes are compressed. */
export type Compression = 'zstd' | 'gzip' | 'none';

/** The file name suffix conventionally used for `kind` ('.zst', '.gz' or ''). */
export function compressionSuffix(kind: Compression): string {
  switch (kind) {
    case 'zstd':
      return '.zst';
    case 'gzip':
      return '.gz';
    case 'none':
      return '';
  }
}

/** Options for {@link processDuplex}. */
export interface ProcessDuplexOptions {
  /** Short name used in error messages; defaults to the command. */
  name?: string;
  /** Message of the error raised when the command does not exist (ENOENT). */
  notFoundMessage?: string;
  /** Environment of the child; defaults to this process's. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait after SIGTERM before SIGKILL when destroyed early. */
  killGraceMs?: number;
}

/** Keep this much of the child's stderr: enough for its error message, bounded for memory. */
const STDERR_TAIL_BYTES = 4096;

/**
 * A Duplex over a filter process: bytes written go to the child's stdin, the child's
 * stdout is read from it.
 *
 * The readable side only ends after the child has exited with status 0, so a consumer
 * never mistakes the output of a failed child for a complete stream. Destroying the
 * Duplex kills the child and 'close' is emitted only once the child has exited.
 */
class ProcessDuplex extends Duplex {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #name: string;
  readonly #notFoundMessage: string;
  readonly #killGraceMs: number;
  #stderrTail = '';
  /** Write callback held back until the child's stdin drains (backpressure). */
  #pendingWrite: ((error?: Error | null) => void) | null = null;
  #stdinError: Error | null = null;
  #inputEnded = false;
  #spawnFailed = false;

  constructor(command: string, args: readonly string[], opts: ProcessDuplexOptions = {}) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.#name = opts.name ?? command;
    this.#notFoundMessage = opts.notFoundMessage ?? `${this.#name} not found: is it installed and on PATH?`;
    this.#killGraceMs = opts.killGraceMs ?? 2000;

    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env });
    this.#child = child;

    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) this.#spawnFailed = true;
      if (this.destroyed) return;
      this.destroy(err.code === 'ENOENT' ? new Error(this.#notFoundMessage) : new Error(`${this.#name}: ${err.message}`));
    });
    // EPIPE lands here when the child dies or stops reading early. It must not become an
    // uncaught exception; the exit status (checked on 'close') says what really happened.
    child.stdin.on('error', (err) => {
      this.#stdinError ??= err;
    });
    child.stdin.on('drain', () => {
      const cb = this.#pendingWrite;
      this.#pendingWrite = null;
      cb?.();
    });
    child.stdin.on('finish', () => {
      this.#inputEnded = true;
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout.pause();
    });
    child.stdout.on('error', () => {
      // Only happens when we destroy it ourselves; 'close' reports the real outcome.
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    child.stderr.on('error', () => {});
    // 'close' comes after the process exited AND its stdout was fully read, so every
    // output byte has been pushed by now.
    child.on('close', (code, signal) => this.#onClose(code, signal));
  }

  /** Process id of the child (undefined when it could not be spawned). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  #onClose(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.destroyed || this.#spawnFailed) return;
    if (code !== 0) {
      const why = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
      const stderr = this.#stderrTail.trim();
      this.destroy(new Error(`${this.#name} ${why}${stderr ? `: ${stderr}` : ''}`));
      return;
    }
    if (!this.#inputEnded || this.#stdinError) {
      this.destroy(new Error(`${this.#name} exited before reading all of its input`));
      return;
    }
    this.push(null);
  }

  override _read(): void {
    this.#child.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#child.stdin.destroyed) {
      // The child is gone or going; hold the callback and let #onClose report why.
      this.#pendingWrite = callback;
      return;
    }
    if (this.#child.stdin.write(chunk)) callback();
    else this.#pendingWrite = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Writable side is finished once the child has all our bytes; if stdin breaks
    // instead, the callback is never called and #onClose destroys us with the reason.
    this.#child.stdin.once('finish', () => callback());
    this.#child.stdin.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const child = this.#child;
    child.stdin.destroy();
    child.stdout.destroy();
    child.stderr.destroy();
    const exited = child.exitCode !== null || child.signalCode !== null;
    if (exited || this.#spawnFailed || child.pid === undefined) {
      callback(error);
      return;
    }
    // Wait for the exit so that 'close' (and a pipeline's rejection after it) means
    // there is no child left behind.
    const killer = setTimeout(() => child.kill('SIGKILL'), this.#killGraceMs);
    child.once('exit', () => {
      clearTimeout(killer);
      callback(error);
    });
    child.kill('SIGTERM');
  }
}

/**
 * Run `command args...` (no shell) as a stream filter: a Duplex whose writable side feeds
 * the child's stdin and whose readable side is its stdout. Backpressure flows both ways.
 * The Duplex errors when the child cannot be spawned, exits non-zero or dies, and its
 * readable side ends only after a clean exit. Destroying it kills the child.
 */
export function processDuplex(command: string, args: readonly string[], opts?: ProcessDuplexOptions): Duplex & { readonly pid: number | undefined } {
  return new ProcessDuplex(command, args, opts);
}

const ZSTD_NOT_FOUND = 'zstd not found: install the zstd package';

function checkLevel(kind: string, level: number, min: number, max: number): void {
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new RangeError(`${kind} compression level must be an integer from ${min} to ${max}, got ${level}`);
  }
}

/**
 * A zstd compressor (`zstd -q -c -<level> -T<threads>`). `level` is 1..19; `threads` 0
 * lets zstd use one thread per core. Throws RangeError for a bad level or thread count.
 */
export function zstdCompress(level: number, threads = 0): Duplex {
  checkLevel('zstd', level, 1, 19);
  if (!Number.isInteger(threads) || threads < 0) {
    throw new RangeError(`zstd thread count must be a non-negative integer, got ${threads}`);
  }
  return processDuplex('zstd', ['-q', '-c', `-${level}`, `-T${threads}`], {
    name: 'zstd',
    notFoundMessage: ZSTD_NOT_FOUND,
  });
}

/** A zstd decompressor (`zstd -d -q -c`); errors on corrupt or truncated input. */
export function zstdDecompress(): Duplex {
  return processDuplex('zstd', ['-d', '-q', '-c'], { name: 'zstd', notFoundMessage: ZSTD_NOT_FOUND });
}

/** Default level per kind: zstd 3 and gzip 6 are each tool's own default. */
const DEFAULT_LEVEL: Record<Compression, number> = { zstd: 3, gzip: 6, none: 0 };

/**
 * A compressing stage for `kind`. `level` defaults to the tool's default
 * (zstd 1..19, gzip 1..9; ignored for 'none').
 */
export function compressor(kind: Compression, level?: number): Duplex {
  const lvl = level ?? DEFAULT_LEVEL[kind];
  switch (kind) {
    case 'zstd':
      return zstdCompress(lvl);
    case 'gzip':
      checkLevel('gzip', lvl, 1, 9);
      return zlib.createGzip({ level: lvl });
    case 'none':
      return new PassThrough();
  }
}

/** The decompressing stage matching {@link compressor}(kind). */
export function decompressor(kind: Compression): Duplex {
  switch (kind) {
    case 'zstd':
      return zstdDecompress();
    case 'gzip':
      return zlib.createGunzip();
    case 'none':
      return new PassThrough();
  }
}
