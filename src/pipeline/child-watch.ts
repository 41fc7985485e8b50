/**
 * Watching one child process of a pipeline of processes (pipeline/store.ts for backups,
 * pipeline/unpack.ts for restores): its stderr's tail, its exit, and whether a failure is a
 * cause or only the echo of another failure (a broken pipe, a process the pipeline stopped).
 */
import type { PipelineProcess } from './spawner.js';

/** How much of a process's stderr an error quotes (its end: where tools say what went wrong). */
export const STDERR_TAIL_BYTES = 4096;

/** What a failure of the watched process is taken for. */
export type FailureKind = 'cause' | 'echo';

/** A child process of a pipeline, as the pipeline tracks it. */
export interface PipelineChild {
  /** Node's ChildProcess, or one started on the spawner thread (spawner.ts). */
  child: PipelineProcess;
  exited: boolean;
  /** The signals the pipeline sent it: its death by one of them is no news. */
  sent?: NodeJS.Signals[];
}

/** Send `signal` to a child that has not exited, remembering it was ours. */
function signalChild(entry: PipelineChild, signal: NodeJS.Signals): void {
  if (entry.exited) return;
  (entry.sent ??= []).push(signal);
  entry.child.kill(signal);
}

/**
 * Stop every child that has not exited: SIGTERM now, SIGKILL to those still there after
 * `graceMs`. Returns that timer (unref'd), to clear once they are all gone.
 */
export function stopChildren(children: PipelineChild[], graceMs: number): NodeJS.Timeout {
  for (const c of children) signalChild(c, 'SIGTERM');
  return setTimeout(() => {
    for (const c of children) signalChild(c, 'SIGKILL');
  }, graceMs).unref();
}

/**
 * Whether a process killed by `signal` died of something else's failure: a broken pipe (its
 * reader went away) or a signal the pipeline sent it. Killed by a signal from elsewhere (the
 * OOM killer, an operator), it is a cause, even when it is noticed after the pipeline began
 * to stop for the echo of it (a process's exit can be heard after its neighbours').
 */
export function killedAsEcho(entry: PipelineChild, signal: NodeJS.Signals | null): boolean {
  return signal === 'SIGPIPE' || (signal !== null && (entry.sent ?? []).includes(signal));
}

/**
 * Settles when `entry.child` is gone (sets `entry.exited`); reports a non-zero exit, a signal,
 * or a failure to start through `fail`, quoting the tail of stderr. A process that failed to
 * start is always a cause; one that exited badly is what `kindOf` says, from how it ended.
 */
export function watchChild(
  stage: { name: string; notFound: string },
  entry: PipelineChild,
  fail: (e: Error, kind: FailureKind) => void,
  kindOf: (exit: { code: number | null; signal: NodeJS.Signals | null; stderr: string }) => FailureKind,
): Promise<void> {
  const child = entry.child;
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString('utf8')).slice(-STDERR_TAIL_BYTES);
  });
  child.stderr?.on('error', () => {});
  // EPIPE and the like land here when a process dies; its exit status says what happened.
  child.stdin?.on('error', () => {});
  child.stdout?.on('error', () => {});
  return new Promise<void>((resolve) => {
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      entry.exited = true;
      resolve();
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return;
      fail(err.code === 'ENOENT' ? new Error(stage.notFound) : new Error(`${stage.name}: ${err.message}`), 'cause');
      done();
    });
    child.once('close', (code, signal) => {
      if (code !== 0 && child.pid !== undefined) {
        const why = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
        const stderr = tail.trim();
        fail(new Error(`${stage.name} ${why}${stderr ? `: ${stderr}` : ''}`), kindOf({ code, signal, stderr }));
      }
      done();
    });
  });
}
