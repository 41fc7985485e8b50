/**
 * Running dump and restore tools as child processes: argument arrays only (never a
 * shell), secrets only through the environment, a bounded stderr tail for error
 * messages, and a kill that always ends the process (SIGTERM, then SIGKILL).
 */
import { spawn, execFile } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { finished, Readable, type Writable } from 'node:stream';
import { fifosAside, spawnAside, type AsideStdio, type FifoEnds, type PipelineProcess } from '../pipeline/spawner.js';
import { EngineError, type RestoreOptions } from './engine.js';

/** How long a tool gets to exit after SIGTERM before it is sent SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/** How much of a tool's stderr is kept for the error message. */
const STDERR_TAIL_BYTES = 4_096;

/**
 * Replace every occurrence of each secret in `text` with `***`. Also catches the
 * percent-encoded form, since drivers sometimes echo a URL they were given.
 *
 * An occurrence is the secret as a whole token: where it begins (or ends) with a letter,
 * digit or underscore, the character before (after) it must not be one. A password
 * stands alone wherever a tool or driver echoes it (`user:x@host`, `password=x`, `'x'`),
 * while masking it inside other words mangled the message around it: the password `x`
 * turned "does not exist" into "does not e***ist".
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      out = out.replace(secretPattern(form), '***');
    }
  }
  return out;
}

const WORD_CHAR = /[\p{L}\p{N}_]/u;

/** `form` as a whole token (see scrubSecrets). */
function secretPattern(form: string): RegExp {
  const escaped = form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const before = WORD_CHAR.test(form[0]) ? '(?<![\\p{L}\\p{N}_])' : '';
  const after = WORD_CHAR.test(form[form.length - 1]) ? '(?![\\p{L}\\p{N}_])' : '';
  return new RegExp(`${before}${escaped}${after}`, 'gu');
}

/**
 * Whether a tool's or driver's error text describes a problem that retrying cannot fix
 * (bad credentials, missing database, missing privilege), as opposed to a network blip.
 */
export function looksPermanent(text: string): boolean {
  return /authentication failed|access denied|does not exist|unknown database|permission denied|no pg_hba\.conf entry|role .* is not permitted|syntax error|server version mismatch|aborting because of server version mismatch|is not allowed to connect/i.test(
    text,
  );
}

/** Keeps the last `limit` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) {
      this.size -= this.chunks[0].length;
      this.chunks.shift();
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    const tail = all.length > this.limit ? all.subarray(all.length - this.limit) : all;
    // A cut in the middle of a multi-byte character decodes as U+FFFD; drop it.
    return tail.toString('utf8').replace(/^\uFFFD+/, '').trim();
  }
}

export interface ToolSpec {
  /** Name used in messages, e.g. "pg_dump". */
  name: string;
  /** Absolute path of the executable. */
  path: string;
  args: string[];
  /** The complete child environment (see `toolEnvironment`). */
  env: NodeJS.ProcessEnv;
  /** Strings scrubbed from every message built from the tool's output. */
  secrets: string[];
  /**
   * Whether the child reads stdin from us as a stream (`child.stdin`), from a FIFO whose
   * writing end we get as a bare descriptor (`ToolRun.stdinFd`: for another process to write
   * into; startTool only), or gets none (dump).
   */
  stdin: 'pipe' | 'fifo' | 'ignore';
  /**
   * Where the tool's stdout goes: a pipe we read (`child.stdout`, the default) or the stdin
   * of another child process (a Socket from `spawn`), which the tool then writes into
   * directly, OS pipe to OS pipe, without passing through this process (`child.stdout` is
   * then null); or a descriptor of this process (a FIFO), which it writes the same way. The
   * caller closes its own copy of that stream or descriptor after the call.
   */
  stdout?: Writable | number;
  signal?: AbortSignal;
  /**
   * Killed (SIGKILL) by the kernel if this process dies first, even by kill -9 (Linux's parent
   * death signal, set by util-linux's `setpriv`, which then runs the tool in its place: same
   * pid). For a tool that could otherwise wait for us forever: stopped (SIGSTOP) or blocked on
   * a FIFO only we would open, holding a connection and a snapshot. Without `setpriv` on the
   * machine, the tool runs without it.
   */
  dieWithParent?: boolean;
}

/** util-linux's setpriv, when installed (it is on every Debian: util-linux is essential). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

export interface ToolRun {
  /** Node's ChildProcess (runTool), or one started on the spawner thread (startTool). */
  child: PipelineProcess;
  /**
   * Resolves when the tool exited 0; rejects with EngineError otherwise, or when it was
   * stopped by `kill()` or the abort signal before it exited. Never rejects unhandled.
   */
  done: Promise<void>;
  /** SIGTERM now, SIGKILL after KILL_GRACE_MS. A no-op once the tool exited or was told to stop. */
  kill(): void;
  /** With `stdin: 'fifo'`: the writing end of the tool's stdin, a blocking descriptor, the caller's to close. */
  stdinFd: number | null;
}

/** A tool's stdout as a stream: empty (already ended) when it writes into another process (`ToolSpec.stdout`). */
export function toolStdout(run: ToolRun): Readable {
  return run.child.stdout ?? Readable.from([]);
}

/**
 * Start a tool. The caller must consume (or destroy) `child.stdout`: a tool blocked on a
 * full pipe never exits by itself.
 */
export function runTool(spec: ToolSpec): ToolRun {
  if (spec.stdin === 'fifo') throw new TypeError('runTool: stdin "fifo" needs startTool');
  let child: PipelineProcess;
  try {
    const [command, args] = commandLine(spec);
    child = spawn(command, args, {
      env: spec.env,
      stdio: [spec.stdin, spec.stdout ?? 'pipe', 'pipe'],
      shell: false,
      windowsHide: true,
    });
  } catch (err) {
    throw cannotRun(spec, err);
  }
  return watchTool(child, spec);
}

/**
 * runTool on the spawner thread (pipeline/spawner.ts): the fork under the start does not hold
 * the event loop (~10 ms at a server's ~200 MiB). Its stdin and stdout pipes are FIFOs. A
 * stdout given as a stream of ours (a Socket) is started by runTool.
 */
export async function startTool(spec: ToolSpec): Promise<ToolRun> {
  if (typeof spec.stdout === 'object') return runTool(spec);
  // Node refuses NUL bytes as spawn would, before anything starts (see cannotRun).
  const bad = [spec.path, ...spec.args, ...Object.entries(spec.env).flat()].some((v) => typeof v === 'string' && v.includes('\0'));
  if (bad) throw cannotRun(spec, Object.assign(new TypeError('NUL'), { code: 'ERR_INVALID_ARG_VALUE' }));
  let child: PipelineProcess;
  let stdinFifo: FifoEnds | null = null;
  try {
    // stdin when we write it, stdout when we read it, and stderr always.
    const fifos = await fifosAside((spec.stdin === 'ignore' ? 0 : 1) + (spec.stdout === undefined ? 1 : 0) + 1);
    if (spec.stdin === 'fifo') stdinFifo = fifos.pop()!;
    const stdin: AsideStdio = stdinFifo?.readFd ?? (spec.stdin === 'pipe' ? { fifo: fifos.pop()! } : 'ignore');
    const stdio: AsideStdio[] = [stdin, spec.stdout ?? { fifo: fifos.pop()! }, { fifo: fifos.pop()! }];
    const [command, args] = commandLine(spec);
    child = await spawnAside(command, args, stdio, spec.env);
  } catch (err) {
    if (stdinFifo) closeSync(stdinFifo.writeFd);
    throw cannotRun(spec, err);
  } finally {
    // The child has its own copy (or never will).
    if (stdinFifo) closeSync(stdinFifo.readFd);
  }
  return { ...watchTool(child, spec), stdinFd: stdinFifo?.writeFd ?? null };
}

/** The command and arguments that start `spec`'s tool (through setpriv when it must die with us). */
function commandLine(spec: ToolSpec): [string, string[]] {
  return spec.dieWithParent && SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', spec.path, ...spec.args]] : [spec.path, spec.args];
}

/**
 * Why a tool could not be started. Node refuses NUL bytes in arguments and environment
 * values with a message that quotes the value in escaped form, which scrubbing would not catch.
 */
function cannotRun(spec: ToolSpec, err: unknown): EngineError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE'
      ? 'an argument or environment value is invalid (e.g. contains a NUL byte)'
      : scrubSecrets(err instanceof Error ? err.message : String(err), spec.secrets);
  return new EngineError(`cannot run ${spec.name} (${spec.path}): ${why}`);
}

/** A started tool's stderr tail, exit, and stop (see ToolRun). */
function watchTool(child: PipelineProcess, spec: ToolSpec): ToolRun {
  const tail = new TailBuffer(STDERR_TAIL_BYTES);
  child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));

  let exited = false;
  let stopRequested = false;
  let killTimer: NodeJS.Timeout | undefined;

  const kill = (): void => {
    if (exited || stopRequested) return;
    stopRequested = true;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => {
      if (!exited) child.kill('SIGKILL');
    }, KILL_GRACE_MS);
    // The child handle itself keeps the process alive until it exits; the timer need not.
    killTimer.unref();
  };

  const onAbort = (): void => kill();
  spec.signal?.addEventListener('abort', onAbort, { once: true });

  const done = new Promise<void>((resolve, reject) => {
    const fail = (message: string, permanent: boolean, cause?: unknown): void => {
      reject(new EngineError(scrubSecrets(message, spec.secrets), permanent, cause));
    };

    child.once('error', (err: NodeJS.ErrnoException) => {
      // 'error' without a pid means the executable could not be started at all; no
      // 'exit' follows in that case, so settle here.
      if (child.pid === undefined) {
        exited = true;
        spec.signal?.removeEventListener('abort', onAbort);
        fail(`cannot run ${spec.name} (${spec.path}): ${err.message}`, true, err);
      }
    });

    child.once('exit', (code, signal) => {
      exited = true;
      if (killTimer) clearTimeout(killTimer);
      spec.signal?.removeEventListener('abort', onAbort);

      const settle = (): void => {
        const stderr = tail.text();
        if (stopRequested) {
          const why = spec.signal?.aborted ? 'canceled' : 'stopped';
          fail(`${spec.name} was ${why} before it finished`, true, spec.signal?.reason);
        } else if (code === 0) {
          resolve();
        } else if (code !== null) {
          fail(
            stderr ? `${spec.name} failed (exit ${code}): ${stderr}` : `${spec.name} failed (exit ${code}) without an error message`,
            looksPermanent(stderr),
          );
        } else {
          fail(`${spec.name} was killed by ${signal}${stderr ? `: ${stderr}` : ''}`, false);
        }
      };

      // 'exit' can come before the last stderr bytes are read; wait for stderr to close,
      // but not forever (a grandchild could hold the pipe open).
      const stderr = child.stderr!;
      if (stderr.destroyed || stderr.readableEnded) {
        settle();
      } else {
        const timer = setTimeout(settle, 1_000);
        stderr.once('close', () => {
          clearTimeout(timer);
          settle();
        });
      }
    });
  });
  // Callers may stop listening after an earlier error (e.g. from stdout); the outcome is
  // still available to whoever awaits `done`, but must not crash the process.
  done.catch(() => undefined);

  return { child, done, kill, stdinFd: null };
}

/**
 * The environment for a tool: ours minus every variable that could point the tool at
 * another server or give it other credentials, plus `extra`. The URL is the only source
 * of where to connect and as whom.
 */
export function toolEnvironment(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (INHERITED_CONNECTION_VARIABLES.has(key)) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value !== undefined && value !== '') env[key] = value;
  }
  return env;
}

const INHERITED_CONNECTION_VARIABLES = new Set([
  'PGHOST',
  'PGHOSTADDR',
  'PGPORT',
  'PGUSER',
  'PGDATABASE',
  'PGPASSWORD',
  'PGSERVICE',
  'PGSERVICEFILE',
  'PGOPTIONS',
  'MYSQL_PWD',
  'MYSQL_HOST',
  'MYSQL_TCP_PORT',
  'MYSQL_UNIX_PORT',
]);

/** The first line of `<path> --version`, or null when it cannot be run. */
export function toolVersionLine(path: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(path, ['--version'], { timeout: 10_000, env: toolEnvironment({}) }, (err, stdout) => {
      if (err) return resolve(null);
      const line = stdout.split('\n')[0]?.replace(/\s+/g, ' ').trim();
      resolve(line ? line : null);
    });
  });
}

/** Whether `path` is an executable file. */
export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable called `name` in PATH, or null. */
export async function findInPath(name: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * A started restore tool's input, then the tool: from the chain of processes before it when
 * `pipeTo` is given (the tool was started with `stdin: 'fifo'`: the last process writes into
 * that FIFO, see RestoreOptions.pipeTo), else `input` fed through this process (feedTool).
 */
export async function restoreInput(run: ToolRun, input: Readable, pipeTo: RestoreOptions['pipeTo'], name: string, secrets: string[]): Promise<void> {
  if (!pipeTo) return feedTool(run, input, name, secrets);
  pipeTo(run.stdinFd!, run.kill);
  await run.done;
}

/**
 * Feed `input` into a started tool's stdin and wait for the tool.
 *
 * - The tool exiting early (an error, or simply not reading to the end) makes writes to
 *   its stdin fail with EPIPE; that is expected and its exit status says what happened.
 * - `input` failing kills the tool, and the restore rejects with the input's error as cause.
 * - When the tool succeeds before `input` ended, the rest of `input` is still read and
 *   discarded, so checks that run at the end of the stream (checksums) still happen.
 * - On failure `input` is destroyed, so that whatever feeds it stops too.
 */
export async function feedTool(run: ToolRun, input: Readable, name: string, secrets: string[]): Promise<void> {
  const stdin = run.child.stdin!;
  stdin.on('error', () => undefined);

  let inputError: unknown;
  let inputEnded = false;
  // finished() also reports a stream that ended or failed before we got here (the caller
  // may have spent a while probing the server while a short, corrupt input already
  // errored): a plain 'error' listener would miss that and the tool would wait for ever.
  finished(input, { writable: false }, (err) => {
    if (err) {
      inputError ??= input.errored ?? err;
      run.kill();
    } else inputEnded = true;
  });
  input.on('error', () => undefined);
  input.pipe(stdin);

  const inputFailure = (): EngineError =>
    new EngineError(
      scrubSecrets(`${name} input failed: ${inputError instanceof Error ? inputError.message : String(inputError)}`, secrets),
      true,
      inputError,
    );

  try {
    await run.done;
  } catch (err) {
    input.unpipe(stdin);
    input.destroy();
    throw inputError !== undefined ? inputFailure() : err;
  }
  if (inputError !== undefined) throw inputFailure();
  if (!inputEnded) {
    input.unpipe(stdin);
    await new Promise<void>((resolve, reject) => {
      finished(input, { writable: false }, (err) => {
        if (err) {
          inputError ??= input.errored ?? err;
          reject(inputFailure());
        } else resolve();
      });
      input.resume();
    });
  }
}

/**
 * Run a tool to completion and return its stdout as text, refusing more than `limit`
 * bytes (a schema dump is small; anything larger is a mistake, not something to buffer).
 */
export async function toolOutput(run: ToolRun, name: string, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  run.child.stdout!.on('data', (c: Buffer) => {
    size += c.length;
    if (size > limit) {
      if (!tooLarge) run.kill();
      tooLarge = true;
      return;
    }
    chunks.push(c);
  });
  try {
    await run.done;
  } catch (e) {
    if (tooLarge) throw new EngineError(`${name} output is larger than ${limit} bytes`);
    throw e;
  }
  if (tooLarge) throw new EngineError(`${name} output is larger than ${limit} bytes`);
  return Buffer.concat(chunks).toString('utf8');
}
