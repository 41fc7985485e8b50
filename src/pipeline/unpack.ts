/**
 * A stored stream back to its raw bytes, for a restore tool (`unpackStream`): the reverse
 * of storeStream, with the child processes piping into each other directly through FIFOs,
 * the way a shell pipeline does through pipes (started on the spawner thread, spawner.ts,
 * so that their forks do not hold the event loop):
 *
 *   stored copy ──► this process: sha256 check, byte count ──► age -d ──► zstd -d ──► restore tool
 *
 * Only the stored (encrypted, compressed) bytes pass through this process, once, to be
 * checked and counted. Before, every byte came back into Node after age, was written to
 * zstd, came back again and was written to the tool: most of a restore's CPU time here.
 * A consumer that must see the raw bytes (a MariaDB dump rewritten on its way into the
 * client) reads `readable` instead: then only the last process's output passes through Node.
 *
 * Guarantees:
 * - The consumer never takes a cut stream for a whole one. The stored bytes are held back
 *   by their checksum (Sha256Verifier holds the last chunk until the digest matched), so on
 *   a mismatch age or zstd never see the end of their input; and on any failure the
 *   consumer is stopped (`pipeTo`'s `stopConsumer`, or `readable` destroyed with the error)
 *   before the processes are, so it never reads an end of file that is not the end.
 *   `readable` ends only once every process exited 0 and the checksum matched.
 * - The stored copy is read to its end whenever it can be, even after a process failed or
 *   the consumer stopped reading, so that `done` says whether the copy is intact
 *   (`inputVerified`) without reading it again.
 * - A process dying early never hangs the others: each one's death reaches the next as an
 *   end of file or a broken pipe, and writes into a broken pipe are dropped (EPIPE).
 * - `done` settles only once every process has exited: aborting (the signal) stops them all
 *   (SIGTERM, then SIGKILL) and stops reading the copy.
 * - Errors say which tool failed and why (its exit status and the tail of its stderr); the
 *   echoes of a failure (SIGPIPE, EPIPE, processes we stopped) never hide its cause.
 */
import fs from 'node:fs';
import net from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import zlib from 'node:zlib';
import type { Compression } from './compress.js';
import { killedAsEcho, stopChildren, watchChild, type PipelineChild } from './child-watch.js';
import { fifosAside, spawnAside, type AsideStdio, type FifoEnds } from './spawner.js';

/** Options of {@link unpackStream}. */
export interface UnpackOptions {
  /** How the stored bytes are compressed. */
  compression: Compression;
  /** age identity files to decrypt with (paths, never keys); none: the bytes are not encrypted. */
  identityFiles: readonly string[];
  /** Aborting stops every process and the reading of the copy; `done` rejects with the reason. */
  signal?: AbortSignal;
  /** Called with the stored bytes read so far, at most every `progressIntervalMs` (default 1000), and once at the end. Must not throw. */
  onBytes?: (bytes: number) => void;
  progressIntervalMs?: number;
}

/** A stored stream being unpacked; see {@link unpackStream}. */
export interface Unpack {
  /**
   * The raw bytes, read through this process (for a consumer that rewrites them). The
   * processes start on its first read. Ends only once everything upstream succeeded; errors
   * when anything upstream failed. Destroying it means the consumer stopped reading.
   */
  readable: Readable;
  /**
   * Start the processes, their output going into the consumer's `stdin`. A descriptor (the
   * writing end of the consumer's stdin FIFO: ToolRun.stdinFd) is written straight by the last
   * process, FIFO to FIFO, without passing through this process, and is then ours: closed once
   * `done` settles (the consumer reads an end of file only then). A stream is written through
   * this process. `stopConsumer` (e.g. ToolRun.kill) is called when the stream turns out bad,
   * before the processes are stopped. Call at most once, and not after reading `readable`.
   */
  pipeTo(stdin: Writable | number, stopConsumer: () => void): void;
  /** Whether the processes were started (by `pipeTo` or a read of `readable`); false after `abandon`. */
  readonly started: boolean;
  /**
   * Whether the whole stored copy was read and its checksum matched (the verifier the input
   * came through said nothing): known once `done` settled.
   */
  readonly inputVerified: boolean;
  /** For a consumer that never started: stop reading the copy and settle `done` (rejected). A no-op once started. */
  abandon(): void;
  /**
   * Resolves once the copy was read whole (its checksum matched) and every process exited 0
   * (or died of a broken pipe: the consumer stopped reading early, and said itself how it
   * fared). Rejects with the first cause otherwise: the abort reason, the input's error
   * (e.g. ChecksumMismatchError), or a process's failure.
   */
  done: Promise<void>;
}

const AGE_NOT_FOUND = 'age not found: install the age package (https://age-encryption.org)';
const ZSTD_NOT_FOUND = 'zstd not found: install the zstd package';
const KILL_GRACE_MS = 2000;

/** How much a failure says about what went wrong (lower: closer to the cause). */
const ABORT = 0;
/** The stored bytes themselves: a checksum mismatch or a read error. */
const INPUT = 1;
/** A process or a Node stage failed on its own. */
const CAUSE = 2;
/** The echo of another failure: a broken pipe, a process we stopped. */
const ECHO = 3;

interface Failure {
  error: Error;
  rank: number;
  /**
   * Where it happened, upstream first: a process that fails makes the next one fail too
   * (an input that ends too soon), so of two causes the upstream one is the cause.
   */
  order: number;
  seq: number;
}

interface ProcessStage {
  name: string;
  command: string;
  args: string[];
  notFound: string;
}

const isPipeEcho = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED';
};

/** Resolves when `w` can take more (drain), or is gone (close, error): never hangs on a dead reader. */
function writable(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      w.off('error', done);
      resolve();
    };
    if (w.destroyed || w.writableEnded) return resolve();
    w.on('drain', done);
    w.on('close', done);
    w.on('error', done);
  });
}

/** Close `fd` if it is still in `unowned` (a FIFO end nobody else closes). */
function closeFd(unowned: Set<number>, fd: number): void {
  if (unowned.delete(fd)) fs.closeSync(fd);
}

/** `readable`: a PassThrough that calls `onFirstRead` when its consumer first asks for bytes. */
class LazyOutput extends PassThrough {
  #first = true;
  constructor(private readonly onFirstRead: () => void) {
    super();
  }

  override _read(size: number): void {
    if (this.#first) {
      this.#first = false;
      this.onFirstRead();
    }
    super._read(size);
  }
}

/**
 * Decrypt (with `identityFiles`) and decompress `input`, a stored copy's bytes as they are
 * read (checked by a Sha256Verifier: see openVerifiedArtifact), for a restore tool that
 * either takes the last process's output as its own stdin (`pipeTo`) or reads `readable`.
 * See the module comment for what is guaranteed.
 */
export function unpackStream(input: Readable, opts: UnpackOptions): Unpack {
  const stages: ProcessStage[] = [];
  if (opts.identityFiles.length) stages.push({ name: 'age', command: 'age', args: ['-d', ...opts.identityFiles.flatMap((f) => ['-i', f])], notFound: AGE_NOT_FOUND });
  if (opts.compression === 'zstd') stages.push({ name: 'zstd', command: 'zstd', args: ['-d', '-q', '-c'], notFound: ZSTD_NOT_FOUND });
  else if (opts.compression !== 'gzip' && opts.compression !== 'none') throw new RangeError(`unknown compression "${String(opts.compression)}"`);
  const gunzip = opts.compression === 'gzip';
  const interval = opts.progressIntervalMs ?? 1000;

  const failures: Failure[] = [];
  let seq = 0;
  let stopping = false;
  let started = false;
  let abandoned = false;
  let verified = false;
  let stopConsumer: (() => void) | null = null;
  let sink: Writable | null = null;
  let tailSource: Readable | null = null;
  /**
   * The consumer's stdin given as a descriptor (pipeTo): ours, closed only once `done`
   * settles, so that the consumer reads an end of file only once everything succeeded (the
   * last process writes into it too, but a process that dies closes only its own copy).
   */
  let heldFd: number | null = null;
  /** The consumer's stdin made a stream of ours (see start()): destroyed at the end if nothing ended it. */
  let ownTarget: net.Socket | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const children: PipelineChild[] = [];
  /** The feed and the processes; `tail` (the forwarding of the last output) waits for them. */
  const waits: Array<Promise<unknown>> = [];
  let tail: Promise<void> = Promise.resolve();
  let settle!: () => void;
  const startedOrAbandoned = new Promise<void>((resolve) => (settle = resolve));

  const fail = (error: unknown, rank: number, order = -1): void => {
    const err = error instanceof Error ? error : new Error(String(error));
    failures.push({ error: err, rank, order, seq: seq++ });
    if (rank === ECHO) return;
    if (rank === ABORT || rank === INPUT) {
      // Nothing more to learn from the copy.
      if (!input.destroyed) input.destroy();
    }
    if (stopping) return;
    stopping = true;
    // The consumer first: it must not read the end of file the processes' deaths make.
    try {
      stopConsumer?.();
    } catch {
      // Stopping is best effort; the processes are stopped below all the same.
    }
    if (!out.destroyed) out.destroy(err);
    killTimer = stopChildren(children, KILL_GRACE_MS);
    // Writes into the chain stop; the copy is still read to its end (unless aborted) for its checksum.
    sink?.destroy();
    tailSource?.destroy();
  };
  const onAbort = (): void => fail(opts.signal!.reason ?? new Error('the restore was aborted'), ABORT);

  const out = new LazyOutput(() => {
    if (!started && !abandoned) start(null);
  });
  // Its error is for a consumer that reads it; one that took pipeTo never listens.
  out.on('error', () => {});

  const start = (consumer: Writable | number | null): void => {
    if (started || abandoned) throw new Error(`the unpacked stream was already ${started ? 'started' : 'abandoned'}`);
    started = true;
    // A descriptor the last process writes into is held; one written by this process (there is
    // no process, or gunzip runs here) becomes a stream of ours, which forward() ends or destroys.
    const throughUs = gunzip || stages.length === 0;
    if (typeof consumer === 'number' && !throughUs) heldFd = consumer;
    if (typeof consumer === 'number' && throughUs) ownTarget = new net.Socket({ fd: consumer, readable: false, writable: true });
    const target = ownTarget ?? consumer;
    // `done` waits for what launch() registers (the feed, the processes, the tail).
    void launch(target).finally(settle);
  };

  /**
   * Start the processes on the spawner thread (a fork there does not hold the event loop),
   * each one's stdio a FIFO: the stored bytes into the first, a link of their own between
   * neighbours, and the last one's output into `target` when that is a descriptor (the
   * consumer's stdin), else into a FIFO this process reads and forwards.
   */
  const launch = async (target: Writable | number | null): Promise<void> => {
    try {
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const targetFd = typeof target === 'number' ? target : null;
      let lastStdout: Readable | null = null;
      if (stages.length) {
        // The first one's stdin, every stderr, the links, and the last one's stdout unless it writes into target.
        const fifos = await fifosAside(2 * stages.length + (targetFd === null ? 1 : 0));
        const links = fifos.splice(0, stages.length - 1);
        const unowned = new Set(links.flatMap((l) => [l.readFd, l.writeFd]));
        const take = (): { fifo: FifoEnds } => ({ fifo: fifos.pop()! });
        try {
          for (let i = 0; i < stages.length && !stopping; i++) {
            const stage = stages[i];
            const last = i === stages.length - 1;
            const output: AsideStdio = !last ? links[i].writeFd : (targetFd ?? take());
            const child = await spawnAside(stage.command, stage.args, [i === 0 ? take() : links[i - 1].readFd, output, take()]);
            if (i > 0) closeFd(unowned, links[i - 1].readFd);
            if (!last) closeFd(unowned, links[i].writeFd);
            const entry: PipelineChild = { child, exited: false };
            children.push(entry);
            waits.push(
              watchChild(
                stage,
                entry,
                (e, kind) => fail(e, kind === 'cause' ? CAUSE : ECHO, i),
                // Stopped by us, or of a broken pipe (its reader went away): the echo of something
                // else. An input that ended too soon is a cause, but one downstream of its writer's.
                ({ signal, stderr }) => (killedAsEcho(entry, signal) || /broken pipe|connection reset by peer/i.test(stderr) ? 'echo' : 'cause'),
              ),
            );
            // It did not start: its 'error' (a turn later) fails the stream; start no more.
            if (child.pid === undefined) break;
            // Stopped while it started: the others were stopped without it.
            if (stopping) stopChildren([entry], KILL_GRACE_MS);
            if (i === 0) sink = child.stdin!;
            if (last && targetFd === null) lastStdout = child.stdout!;
          }
        } finally {
          for (const fd of unowned) fs.closeSync(fd);
          // FIFOs not handed out (a start failed, or the stream was stopped meanwhile).
          for (const f of fifos) for (const fd of [f.readFd, f.writeFd]) fs.closeSync(fd);
        }
        if (!sink) {
          // The first one did not start: nothing is fed; the copy is still read for its checksum.
          const nowhere = new PassThrough();
          nowhere.resume();
          sink = nowhere;
        }
      } else {
        // No process: the feed writes into this process's own stages.
        const pass = new PassThrough();
        sink = pass;
        lastStdout = pass;
      }
      if (lastStdout) {
        let source: Readable = lastStdout;
        if (gunzip) {
          const gz = zlib.createGunzip();
          source.on('error', () => {});
          source.pipe(gz);
          source = gz;
        }
        tailSource = source;
        tail = forward(source, typeof target === 'number' || target === null ? out : target);
      }
      waits.push(feed(sink));
      if (stopping) sink.destroy();
    } catch (e) {
      fail(e, CAUSE);
    }
  };

  /** The stored bytes into the first process (or stage): counted, and read to their end. */
  const feed = async (into: Writable): Promise<void> => {
    into.on('error', () => {});
    let bytes = 0;
    let reported = Number.NEGATIVE_INFINITY;
    const report = (): void => {
      try {
        opts.onBytes?.(bytes);
      } catch {
        // A progress report must never break the data path.
      }
    };
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        const now = performance.now();
        if (opts.onBytes && now - reported >= interval) {
          reported = now;
          report();
        }
        // A reader gone (it failed, or needed no more): its exit says why; the rest is still read for the checksum.
        if (into.destroyed || into.writableEnded) continue;
        if (!into.write(chunk)) await writable(into);
      }
      verified = true;
      report();
      if (!into.destroyed) into.end();
    } catch (e) {
      fail(e, stopping && (input.destroyed || isPipeEcho(e)) ? ECHO : INPUT);
    }
  };

  /**
   * The last process's output (or a Node stage's) into `target`, ended only once every
   * process exited 0 and the copy's checksum matched.
   */
  const forward = async (source: Readable, target: Writable): Promise<void> => {
    target.on('error', () => {});
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (target.destroyed) {
          // The consumer stopped reading: the processes die of a broken pipe; not a cause.
          source.destroy();
          return;
        }
        if (!target.write(chunk)) await writable(target);
      }
    } catch (e) {
      // A Node stage's own error (gunzip on corrupt bytes) is a cause; a closed pipe is not.
      fail(e, stopping || target.destroyed || isPipeEcho(e) ? ECHO : CAUSE, stages.length);
      return;
    }
    // `waits` holds the feed and the processes (not this): the end is told only after them.
    await Promise.all(waits);
    if (failures.some((f) => f.rank < ECHO) || !verified) {
      if (!target.destroyed) target.destroy(failures.find((f) => f.rank < ECHO)?.error ?? new Error('the stored copy was not read to its end'));
      return;
    }
    if (!target.destroyed) target.end();
  };
  const done = (async (): Promise<void> => {
    await startedOrAbandoned;
    // Everything start() registered (the feed, the processes, the tail) is known by now.
    await Promise.all([...waits, tail]);
    // Closed, never shut down: shutting down a socket would end it for every holder.
    if (heldFd !== null) fs.closeSync(heldFd);
    // Never forwarded into (stopped before): closed, so that its descriptor is not left open.
    const own = ownTarget as net.Socket | null;
    if (own && !own.writableEnded) own.destroy();
    if (killTimer) clearTimeout(killTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    const causes = failures.filter((f) => f.rank < ECHO);
    const before = (a: Failure, b: Failure): boolean => a.rank < b.rank || (a.rank === b.rank && (a.order < b.order || (a.order === b.order && a.seq < b.seq)));
    if (causes.length) throw causes.reduce((a, b) => (before(b, a) ? b : a)).error;
    if (!verified) throw failures[0]?.error ?? new Error('the stored copy was not read to its end');
  })();
  done.catch(() => undefined);

  return {
    readable: out,
    pipeTo(stdin: Writable | number, stop: () => void): void {
      stopConsumer = stop;
      start(stdin);
    },
    get started() {
      return started;
    },
    get inputVerified() {
      return verified;
    },
    abandon(): void {
      if (started || abandoned) return;
      abandoned = true;
      failures.push({ error: new Error('the restore tool did not start, so nothing read the stored copy'), rank: CAUSE, order: -1, seq: seq++ });
      input.destroy();
      out.destroy();
      settle();
    },
    done,
  };
}

