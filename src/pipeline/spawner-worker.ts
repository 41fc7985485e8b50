/**
 * The spawner thread behind spawner.ts: starts child processes, and makes the FIFOs they
 * talk through, so that the fork() under every spawn happens on this thread and not on the
 * main thread's event loop.
 *
 * A fork copies the page tables of the whole process: ~10 ms at a server's ~200 MiB, ~25 ms
 * at 350 MiB, during which the forking thread does nothing else. Done here, the main thread
 * goes on serving requests (measured: its longest stall while 50 processes were started went
 * from 27 ms to 4–6 ms at 350 MiB).
 *
 * Descriptors are the process's, not a thread's: the children get the main thread's, which
 * stay its own. The children stay this thread's (their exits are heard here), so this thread
 * lives as long as the process once started.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';

/** What the main thread asks. */
export type SpawnerRequest =
  /** Make `count` FIFOs in a new folder (the main thread opens them, and removes the folder). */
  | { op: 'mkfifo'; id: number; count: number }
  | {
      op: 'spawn';
      id: number;
      command: string;
      args: string[];
      env: NodeJS.ProcessEnv;
      /** Descriptors of the main thread's, which stay its own to close. */
      stdio: Array<'ignore' | number>;
    }
  | { op: 'kill'; id: number; signal: NodeJS.Signals };

/** What this thread answers, and tells of the children later. */
export type SpawnerMessage =
  | { id: number; type: 'made'; dir: string; files: string[] }
  | { id: number; type: 'started'; pid: number }
  | { id: number; type: 'failed'; error: { message: string; code?: string; errno?: number; syscall?: string; path?: string } }
  | { id: number; type: 'exit'; code: number | null; signal: NodeJS.Signals | null };

/**
 * `count` FIFOs in a new folder under the system's temporary one. Opening them is left to the
 * main thread: a descriptor opened on a worker thread is that thread's to Node (closed when
 * it ends, and warned about when its number comes back), and the main thread closes them.
 */
function makeFifos(count: number): { dir: string; files: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-fifo-'));
  const files = Array.from({ length: count }, (_, i) => path.join(dir, `f${i}`));
  const made = spawnSync('mkfifo', ['-m', '600', ...files], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (made.error || made.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(made.error?.message ?? (made.stderr.trim() || `mkfifo exited with code ${made.status}`));
  }
  return { dir, files };
}

const children = new Map<number, ChildProcess>();
const post = (m: SpawnerMessage): void => parentPort!.postMessage(m);

function errorOf(e: unknown): Extract<SpawnerMessage, { type: 'failed' }>['error'] {
  const err = e as NodeJS.ErrnoException;
  return { message: err?.message ?? String(e), code: err?.code, errno: err?.errno, syscall: err?.syscall, path: err?.path };
}

function startChild(req: Extract<SpawnerRequest, { op: 'spawn' }>): void {
  let child: ChildProcess;
  try {
    child = spawn(req.command, req.args, { stdio: req.stdio, env: req.env });
  } catch (e) {
    post({ id: req.id, type: 'failed', error: errorOf(e) });
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (e) => post({ id: req.id, type: 'failed', error: errorOf(e) }));
    return;
  }
  children.set(req.id, child);
  child.once('exit', (code, signal) => {
    children.delete(req.id);
    post({ id: req.id, type: 'exit', code, signal });
  });
  // After the exit: nothing else is said of a started child.
  child.on('error', () => {});
  post({ id: req.id, type: 'started', pid: child.pid });
}

parentPort!.on('message', (req: SpawnerRequest) => {
  switch (req.op) {
    case 'mkfifo':
      try {
        post({ id: req.id, type: 'made', ...makeFifos(req.count) });
      } catch (e) {
        post({ id: req.id, type: 'failed', error: errorOf(e) });
      }
      break;
    case 'spawn':
      startChild(req);
      break;
    case 'kill':
      // Only a child not yet heard to exit: its pid cannot have been reused.
      children.get(req.id)?.kill(req.signal);
      break;
  }
});
