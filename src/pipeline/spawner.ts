/**
 * Child processes started off the event loop: `spawnAside` asks a thread of its own
 * (spawner-worker.ts) to start them, and gives back an object that behaves as Node's
 * ChildProcess does for a pipeline (pid, stdin/stdout/stderr, kill, 'error', 'exit' and
 * 'close'). A fork() stalls the thread that calls it for as long as copying the process's
 * page tables takes (~10 ms at ~200 MiB, more as the process grows), and a backup starts
 * several processes (a `jobs: 4` one ~18): on the main thread that is every request waiting.
 *
 * Also `fifosAside`: FIFOs made on that thread (mkfifo is a process too), opened here.
 *
 * The thread is started with the first request and then kept for the life of the process
 * (the children's exits are heard there, and a child started through `setpriv --pdeathsig`
 * is killed when the thread that started it ends). It keeps the process alive only while a
 * request waits for its answer or a child runs, as a child process's handle does.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import type { SpawnerMessage, SpawnerRequest } from './spawner-worker.js';
import { startModuleWorker } from './worker-module.js';

/** What a pipeline needs of a child process (Node's ChildProcess has all of it). */
export interface PipelineProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals): boolean;
}

/** Both ends of a FIFO, blocking, as descriptors of this process. */
export interface FifoEnds {
  readFd: number;
  writeFd: number;
}

/**
 * A stdio entry of {@link spawnAside}: nothing; a descriptor of ours the child gets (ours to
 * close after); or a FIFO whose one end the child gets (the reading end for stdin, the writing
 * end otherwise) and whose other end becomes the child's stream here, as 'pipe' does for
 * Node's spawn. spawnAside closes both ends of those.
 */
export type AsideStdio = 'ignore' | number | { fifo: FifoEnds };

type Pending = (m: SpawnerMessage) => void;

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 1;

function spawner(): Worker {
  if (worker) return worker;
  const w = startModuleWorker('spawner-worker', { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, stackSizeMb: 1 });
  w.on('message', (m: SpawnerMessage) => pending.get(m.id)?.(m));
  const gone = (why: string): void => {
    if (worker === w) worker = null;
    const all = [...pending.entries()];
    pending.clear();
    for (const [id, p] of all) p({ id, type: 'failed', error: { message: why } });
  };
  w.on('error', (e) => gone(`the process spawner failed: ${e.message}`));
  w.on('exit', () => gone('the process spawner stopped'));
  worker = w;
  return w;
}

function ask(req: SpawnerRequest, onMessage: Pending): void {
  pending.set(req.id, onMessage);
  spawner().postMessage(req);
  keepAlive();
}

/** Done with request `id` (answered, or its child exited). */
function settle(id: number): void {
  pending.delete(id);
  keepAlive();
}

/**
 * The thread keeps this process alive while a request waits for its answer or a child runs,
 * as a child process's handle does; not otherwise.
 */
function keepAlive(): void {
  if (pending.size > 0) worker?.ref();
  else worker?.unref();
}

/**
 * `count` FIFOs (one mkfifo, run on the spawner thread), each opened here at both ends, then
 * unlinked, so no name is left behind whatever happens next. No open() can block (a
 * non-blocking reading end first, so the writing end opens at once, so the blocking reading
 * end does). Both ends are blocking descriptors, ours to close (a child process given one
 * must never see EAGAIN; a stream made of one here makes its own end non-blocking).
 */
export async function fifosAside(count: number): Promise<FifoEnds[]> {
  const { dir, files } = await new Promise<{ dir: string; files: string[] }>((resolve, reject) => {
    const id = nextId++;
    ask({ op: 'mkfifo', id, count }, (m) => {
      settle(id);
      if (m.type === 'made') resolve(m);
      else if (m.type === 'failed') reject(new Error(m.error.message));
    });
  });
  const opened: number[] = [];
  try {
    return files.map((fifo) => {
      const probe = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      opened.push(probe);
      const writeFd = fs.openSync(fifo, fs.constants.O_WRONLY);
      opened.push(writeFd);
      const readFd = fs.openSync(fifo, fs.constants.O_RDONLY);
      opened.push(readFd);
      fs.closeSync(opened.splice(opened.indexOf(probe), 1)[0]);
      return { readFd, writeFd };
    });
  } catch (e) {
    for (const fd of opened) fs.closeSync(fd);
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

class AsideChild extends EventEmitter implements PipelineProcess {
  pid: number | undefined = undefined;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly #id: number;
  #exited = false;
  /** Streams of ours not closed yet; -1 once 'close' was emitted. */
  #open = 0;

  constructor(id: number) {
    super();
    this.#id = id;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.pid === undefined || this.#exited || worker === null) return false;
    worker.postMessage({ op: 'kill', id: this.#id, signal } satisfies SpawnerRequest);
    return true;
  }

  /** It started: `ends[i]`, our end of stdio entry i's FIFO, becomes a stream. */
  started(pid: number, ends: Array<number | null>): void {
    this.pid = pid;
    this.attach(ends);
    this.emit('spawn');
  }

  /**
   * Our ends of its FIFOs as its streams. For a child that never started too, as Node gives
   * one: its output streams end at once, writes to its stdin fail (EPIPE).
   */
  attach(ends: Array<number | null>): void {
    const streams = ends.map((fd, i) => (fd === null ? null : new net.Socket({ fd, readable: i !== 0, writable: i === 0 })));
    this.stdin = streams[0] ?? null;
    this.stdout = streams[1] ?? null;
    this.stderr = streams[2] ?? null;
    for (const s of streams) {
      if (s === null) continue;
      this.#open++;
      s.once('close', () => {
        this.#open--;
        this.#maybeClose();
      });
    }
  }

  /** It exited: as Node does, its stdin is destroyed, and what nobody reads of its output is drained so that 'close' comes. */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.#exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.stdin?.destroy();
    this.emit('exit', code, signal);
    // On the next tick: a listener of 'exit' may still start reading.
    process.nextTick(() => {
      for (const s of [this.stdout, this.stderr]) if (s?.readable) s.resume();
    });
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#exited && this.#open === 0) {
      this.#open = -1;
      this.emit('close', this.exitCode, this.signalCode);
    }
  }
}

/**
 * Start `command` on the spawner thread, its environment `env` (ours by default, as it is
 * now). Resolves once it started or failed to start; a failure to start is then emitted as
 * 'error' (with the errno `code`, e.g. ENOENT) and 'close', on a later turn of the event loop
 * (after the caller's listeners are on), as Node's spawn does, with `pid` undefined.
 */
export function spawnAside(command: string, args: string[], stdio: AsideStdio[], env: NodeJS.ProcessEnv = process.env): Promise<PipelineProcess> {
  const childEnds = stdio.map((s, i) => (typeof s === 'object' ? (i === 0 ? s.fifo.readFd : s.fifo.writeFd) : s));
  const ourEnds = stdio.map((s, i) => (typeof s === 'object' ? (i === 0 ? s.fifo.writeFd : s.fifo.readFd) : null));
  // The child has its own copies of its ends once it started (or never will).
  const closeChildEnds = (): void => stdio.forEach((s, i) => typeof s === 'object' && fs.closeSync(childEnds[i] as number));
  return new Promise((resolve) => {
    const id = nextId++;
    const child = new AsideChild(id);
    ask({ op: 'spawn', id, command, args, env: { ...env }, stdio: childEnds }, (m) => {
      if (m.type === 'started') {
        closeChildEnds();
        child.started(m.pid, ourEnds);
        resolve(child);
      } else if (m.type === 'exit') {
        settle(id);
        child.exited(m.code, m.signal);
      } else if (m.type === 'failed') {
        settle(id);
        if (child.pid !== undefined) {
          // The spawner thread died under a running child: nobody will hear its exit any more.
          // Not reaped, its pid is still its own: stop it, and say it was stopped.
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
          child.exited(null, 'SIGKILL');
          return;
        }
        closeChildEnds();
        child.attach(ourEnds);
        resolve(child);
        setImmediate(() => {
          child.emit('error', Object.assign(new Error(m.error.message), m.error));
          setImmediate(() => child.emit('close', m.error.errno ?? -1, null));
        });
      }
    });
  });
}
