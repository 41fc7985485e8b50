/**
 * One raw stream → one compressed, encrypted, hashed object in every destination
 * (`storeStream`): the data path of dumps, base backups and the parts of parallel dumps.
 *
 * The child processes pipe into each other directly, as OS pipes, the way a shell
 * pipeline does. A dump read as one stream:
 *
 *   dump tool ──► FIFO ──► reader thread ──► FIFO ──► zstd -T0 ──► age ──► this process:
 *                          (passes every byte on,                    sha256, size, fan-out
 *                           then reads it: byte count, row counts, digests, …)
 *
 * The parts of a parallel backup, whose readers share a thread that must never block:
 *
 *   dump tool ──► tee ──► zstd -T0 ──► age ──► this process
 *                  └──► FIFO ──► reader thread
 *
 * Only the final (compressed, encrypted) bytes pass through the main thread's event loop,
 * once; the raw bytes that the readers need (inspect.ts) reach a reader thread
 * (inspect-worker.ts) in blocking reads of a FIFO. Before, every raw byte entered the event
 * loop in ~7 KiB chunks, was hashed for a digest nobody used, written to zstd, read back,
 * written to age and read back: most of the backup's CPU time in this process, and most of
 * its garbage. Then tee copied it for the reader thread: two more pipe crossings of every raw
 * byte, which on a 2-core machine cost a tenth of the backup's time.
 *
 * Guarantees: the result is good only when every process (the source included) exited 0,
 * the readers read the whole stream and every live destination finished writing; anything
 * else rejects with StoreError saying why (the first cause, not its echoes: a zstd that
 * died makes tee die of SIGPIPE, and that is not the story). Aborting, or any failure,
 * stops every process (SIGTERM, then SIGKILL) and settles only once all of them have
 * exited: nothing is left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Transform, type Duplex, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import type { Compression } from './compress.js';
import { killedAsEcho, stopChildren, watchChild, type PipelineChild } from './child-watch.js';
import { fanOut, type FanOutResult, type FanOutTarget } from './fanout.js';
import { HashCounter } from './hash.js';
import { RawInspector, type InspectSpec, type Inspection } from './inspect.js';
import { fifosAside, spawnAside, type AsideStdio, type FifoEnds, type PipelineProcess } from './spawner.js';
import { startModuleWorker } from './worker-module.js';
import type { InspectJob, InspectWorkerMessage } from './inspect-worker.js';

/** A child process that writes the raw stream (a dump tool): see RawSource. */
export interface SourceProcess {
  /** Its output, which this process reads; empty when it writes into the pipeline itself (RawSource.start). */
  stdout: Readable;
  /** Resolves when it exited 0; rejects (with a message fit for users) otherwise. */
  done: Promise<void>;
  /** Stop it (SIGTERM, then SIGKILL). Safe to call twice, and after it exited. */
  kill(): void;
}

/**
 * Where the raw bytes come from:
 * - `start`: a process started with `output` as its stdout, so that it writes straight into
 *   the next process and its bytes never pass through this one (engine.dump's `output`
 *   option does that); the fast path. Called once; when it throws, nothing was started.
 * - `process`: a process already running whose stdout this process reads and passes on
 *   (e.g. a base backup, whose tar is read as it passes); its exit is checked like the others'.
 * - `readable`: any stream, read and passed on.
 */
export type RawSource = { start(output: Writable | number): Promise<SourceProcess> } | { process: SourceProcess } | { readable: Readable };

/** Figures for a progress report. */
export interface StoreProgress {
  /** Raw bytes read so far (the dump's own size as it grows). */
  rawBytes: number;
  /** Bytes written to storage so far (compressed and encrypted). */
  storedBytes: number;
}

/** Options of {@link storeStream}. */
export interface StoreOptions {
  compression: Compression;
  /** zstd 1..19 or gzip 1..9; the tool's own default (zstd 3, gzip 6) when absent. */
  level?: number;
  /** age recipients (`age1…`); none: not encrypted. */
  recipients: readonly string[];
  /** One writable per destination (an ObjectWriter's stream); see fanOut for how failures are handled. */
  targets: FanOutTarget[];
  /** What to read off the raw bytes (row counts, digests, …); the byte count is always read. */
  inspect?: InspectSpec;
  /**
   * Read the raw stream on a reader thread shared with other streams (a part of a parallel
   * backup), not on one of its own (inspect-worker.ts says what each costs).
   */
  sharedReader?: boolean;
  signal?: AbortSignal;
  /** Called every `progressIntervalMs` (default 250) while the stream flows, and once at the end. Must not throw. */
  onProgress?: (progress: StoreProgress) => void;
  progressIntervalMs?: number;
  /** Stamps Inspection.coordinates.consistent_at (defaults to the system clock). */
  clock?: () => Date;
}

/** A stored stream. */
export interface StoreResult {
  /** Bytes stored (after compression and encryption) and their sha256 (hex). */
  size: number;
  sha256: string;
  /** Bytes of the raw stream. */
  rawBytes: number;
  /** One per target, in order: some may have failed while others stored everything. */
  targets: FanOutResult[];
  inspection: Inspection;
}

/** Why storeStream failed; `targets` tells how each destination fared (none is ok to commit). */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly targets: FanOutResult[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

const ZSTD_NOT_FOUND = 'zstd not found: install the zstd package';
const AGE_NOT_FOUND = 'age not found: install the age package (https://age-encryption.org)';
const TEE_NOT_FOUND = 'tee not found: install coreutils';
const KILL_GRACE_MS = 2000;

/** A failure, and how much it says about what went wrong (lower: closer to the cause). */
interface Failure {
  error: Error;
  /** 0 the caller's abort, 1 a cause, 2 an echo of another failure (SIGPIPE, EPIPE, killed by us). */
  rank: number;
  seq: number;
}

/** One child process stage: a filter from stdin to stdout. */
interface ProcessStage {
  kind: 'process';
  name: string;
  command: string;
  args: string[];
  notFound: string;
  /** A descriptor of this process the stage gets as its fd 3 (tee's side channel). */
  fd3?: number;
  child?: PipelineProcess;
}
type Stage = ProcessStage | { kind: 'node'; stream: Duplex };

/** The stages that turn raw bytes into the bytes at rest: compression, then encryption. */
function atRest(compression: Compression, level: number | undefined, recipients: readonly string[]): Stage[] {
  const stages: Stage[] = [];
  if (compression === 'zstd') {
    const lvl = level ?? 3;
    if (!Number.isInteger(lvl) || lvl < 1 || lvl > 19) throw new RangeError(`zstd compression level must be an integer from 1 to 19, got ${lvl}`);
    stages.push({ kind: 'process', name: 'zstd', command: 'zstd', args: ['-q', '-c', `-${lvl}`, '-T0'], notFound: ZSTD_NOT_FOUND });
  } else if (compression === 'gzip') {
    const lvl = level ?? 6;
    if (!Number.isInteger(lvl) || lvl < 1 || lvl > 9) throw new RangeError(`gzip compression level must be an integer from 1 to 9, got ${lvl}`);
    stages.push({ kind: 'node', stream: zlib.createGzip({ level: lvl }) });
  }
  if (recipients.length) stages.push({ kind: 'process', name: 'age', command: 'age', args: recipients.flatMap((r) => ['-r', r]), notFound: AGE_NOT_FOUND });
  return stages;
}

/** A reader thread (inspect-worker.ts). */
function startWorker(): Worker {
  // The readers keep little (counts, digests' states, a small inventory): a small young
  // generation keeps the thread's memory small too, at the cost of more frequent (cheap)
  // scavenges of the per-row garbage.
  return startModuleWorker('inspect-worker', { maxYoungGenerationSizeMb: 4, stackSizeMb: 4 });
}

/** What storeStream hears about its stream from the reader thread. */
interface ReadHandlers {
  message(m: InspectWorkerMessage): void;
  /** The thread died or failed: the stream was not read to its end. */
  gone(error: Error): void;
}

interface ReaderThread {
  worker: Worker;
  reads: Map<number, ReadHandlers>;
  /** Busy with one stream read in blocking reads (it can take no other until that ends). */
  blocking: boolean;
  idleTimer: NodeJS.Timeout | null;
}

/**
 * The reader threads (inspect-worker.ts). A dump read as one stream gets a thread of its own
 * (blocking reads: the least CPU per byte). The parts of a parallel backup share threads, as
 * many as half the cores, at least one: on a small machine a second thread could only take
 * CPU from the dumps, zstd and age, and each is a V8 isolate of ~10 MiB (a `jobs: 4` backup
 * carried four). A thread left without streams is kept a minute for the next backup
 * (starting one and loading the readers costs 50–300 ms), one at most.
 */
const readers: ReaderThread[] = [];
const MAX_SHARED_READERS = Math.max(1, Math.floor(os.availableParallelism() / 2));
const IDLE_READER_MS = 60_000;
let nextReadId = 1;

function startReader(): ReaderThread {
  const reader: ReaderThread = { worker: startWorker(), reads: new Map(), blocking: false, idleTimer: null };
  const gone = (error: Error): void => {
    const i = readers.indexOf(reader);
    if (i >= 0) readers.splice(i, 1);
    if (reader.idleTimer) clearTimeout(reader.idleTimer);
    const reads = [...reader.reads.values()];
    reader.reads.clear();
    for (const r of reads) r.gone(error);
  };
  reader.worker.on('message', (m: InspectWorkerMessage) => {
    const r = reader.reads.get(m.id);
    if (r === undefined) return;
    if (m.type === 'done' || m.type === 'failed') endRead(reader, m.id);
    r.message(m);
  });
  reader.worker.on('error', (e) => gone(new Error(`the dump reader failed: ${e.message}`)));
  reader.worker.on('exit', () => gone(new Error('the dump reader stopped before the end of the dump')));
  readers.push(reader);
  return reader;
}

/** Read `job` (its id is set here): alone on an idle or new thread when blocking, else on the least busy shared one. */
function startRead(job: Omit<InspectJob, 'id'>, handlers: ReadHandlers): void {
  let reader: ReaderThread;
  if (job.blocking) {
    reader = readers.find((r) => r.reads.size === 0) ?? startReader();
  } else {
    const shared = readers.filter((r) => !r.blocking);
    const least = shared.reduce<ReaderThread | null>((a, b) => (a === null || b.reads.size < a.reads.size ? b : a), null);
    reader = least === null || (least.reads.size > 0 && shared.length < MAX_SHARED_READERS) ? startReader() : least;
  }
  if (reader.idleTimer) {
    clearTimeout(reader.idleTimer);
    reader.idleTimer = null;
    reader.worker.ref();
  }
  reader.blocking = job.blocking;
  const id = nextReadId++;
  reader.reads.set(id, handlers);
  reader.worker.postMessage({ ...job, id } satisfies InspectJob);
}

function endRead(reader: ReaderThread, id: number): void {
  reader.reads.delete(id);
  if (reader.reads.size > 0) return;
  reader.blocking = false;
  // Without streams: kept a while (not keeping the process alive), unless another idle one is.
  if (readers.some((r) => r !== reader && r.reads.size === 0)) {
    readers.splice(readers.indexOf(reader), 1);
    reader.worker.removeAllListeners('exit');
    void reader.worker.terminate();
    return;
  }
  reader.worker.unref();
  reader.idleTimer = setTimeout(() => {
    readers.splice(readers.indexOf(reader), 1);
    reader.worker.removeAllListeners('exit');
    void reader.worker.terminate();
  }, IDLE_READER_MS).unref();
}

/**
 * `count` FIFOs, each opened at both ends, then unlinked, so no name is left behind whatever
 * happens next; both ends blocking descriptors of this process (spawner.ts makes them, off
 * the event loop: mkfifo is a process too).
 *
 * The raw dump reaches the reader thread through one: the thread reads `readFd`; the dump
 * tool (or tee) writes `writeFd`. Nobody waits for the thread: if this process dies (kill -9)
 * at any moment, the writer is left without a reader and dies of SIGPIPE at its next write,
 * and a short dump that ends before the thread is up is read all the same. When the thread
 * passes the dump on, it writes a second one's `writeFd`, which zstd reads: this process's
 * death ends zstd's input, and zstd, age and the dump tool end with it. The processes of the
 * pipeline talk through more of them, as a shell pipeline's do through pipes.
 */
async function openFifos(count: number): Promise<FifoEnds[]> {
  try {
    return count === 0 ? [] : await fifosAside(count);
  } catch (e) {
    throw new Error(`cannot make a FIFO for the dump pipeline: ${(e as Error).message}`);
  }
}

/**
 * How a dump tool says that the process it wrote into went away (killed by SIGPIPE, or an
 * error writing its output: a socket pair reports a reset, a pipe a broken pipe; pg_dump "could
 * not write to output file", mariadb-dump "Got errno 32 on write"): the echo of a failure
 * downstream, whichever exit is heard first.
 */
const SOURCE_WRITE_ECHO = /SIGPIPE|could not write to output file|broken pipe|Got errno (32|104) on write/i;

const isPipeEcho = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED';
};

/**
 * Compress (`compression`, `level`), encrypt (to `recipients`) and hash `source`, and
 * write it to every target at once, reading `opts.inspect` off the raw bytes on the way.
 * Resolves once every process exited 0, the readers are done and every live target has
 * finished (not yet committed: the caller commits and checks sizes); rejects with
 * StoreError otherwise (see the module comment). Memory stays bounded by the pipes' and
 * targets' buffers whatever the stream's size.
 */
export async function storeStream(source: RawSource, opts: StoreOptions): Promise<StoreResult> {
  const stages = atRest(opts.compression, opts.level, opts.recipients);
  const interval = opts.progressIntervalMs ?? 250;
  const clock = opts.clock ?? (() => new Date());

  const failures: Failure[] = [];
  let seq = 0;
  const stop = new AbortController();
  const children: Array<PipelineChild & { name: string }> = [];
  let sourceProcess: SourceProcess | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const fail = (error: unknown, rank: number): void => {
    const err = error instanceof Error ? error : new Error(String(error));
    failures.push({ error: err, rank: stop.signal.aborted && rank === 1 && isPipeEcho(err) ? 2 : rank, seq: seq++ });
    if (stop.signal.aborted) return;
    // No target may finish on a failed stream; they fail with this reason (before aborting the
    // links below, which would destroy them with a bare AbortError).
    if (!stored.destroyed) stored.destroy(err);
    stop.abort(err);
    // Stop everything: nothing may outlive a failure.
    sourceProcess?.kill();
    killTimer = stopChildren(children, KILL_GRACE_MS);
    // The writer of the raw channel never started: the worker sees the end (a source being
    // started has it; its start's end closes it). zstd never started: the worker's writes fail.
    if (!sourceStarting) closeChannelWriter();
    closeFirstInput();
  };
  const onAbort = (): void => fail(opts.signal!.reason ?? new Error('the operation was aborted'), 0);

  // The sink: sha256 and size of the bytes at rest, copied to every target.
  const stored = new HashCounter();
  const fan = fanOut(stored, opts.targets);
  const waits: Array<Promise<unknown>> = [fan];

  // The readers: in a worker behind tee for a process source; here for a stream we read anyway.
  const found: { inspection: Inspection | null } = { inspection: null };
  let rawBytes = 0;
  /** The reader worker's live count of raw bytes (see InspectJob.counter), when a worker reads. */
  let rawCounter: BigInt64Array | null = null;
  let seenAt: Date | null = null;
  /**
   * The writing end of the raw channel (openFifos) until its writer has it: the dump tool's
   * stdout (the reader thread passes the dump on), or tee's fd 3. Closed once that started,
   * or when nothing will start, so that the worker sees the end.
   */
  let channelWriteFd: number | null = null;
  let sourceStarting = false;
  const closeChannelWriter = (): void => {
    if (channelWriteFd === null) return;
    fs.closeSync(channelWriteFd);
    channelWriteFd = null;
  };
  /** The reading end of the channel the reader thread passes the dump on to, until zstd has it as its stdin. */
  let firstInputFd: number | null = null;
  const closeFirstInput = (): void => {
    if (firstInputFd === null) return;
    fs.closeSync(firstInputFd);
    firstInputFd = null;
  };

  const progress = (): void => {
    if (rawCounter) rawBytes = Math.max(rawBytes, Number(Atomics.load(rawCounter, 0)));
    try {
      opts.onProgress?.({ rawBytes, storedBytes: stored.bytes });
    } catch {
      // A progress report must never break the data path.
    }
  };
  const ticker = opts.onProgress ? setInterval(progress, interval) : null;

  try {
    if (opts.signal?.aborted) {
      onAbort();
    } else {
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const isProcessSource = 'start' in source;
      const blocking = opts.sharedReader !== true;
      // The reader thread passes the dump on to zstd itself when it reads it alone and the first
      // stage is a process; else tee copies the dump for it (module comment).
      const passOn = isProcessSource && blocking && stages[0]?.kind === 'process';
      if (isProcessSource) {
        const [channel, onward] = await openFifos(passOn ? 2 : 1);
        channelWriteFd = channel.writeFd;
        if (onward) firstInputFd = onward.readFd;
        // Stopped meanwhile: start nothing that fail() could no longer reach.
        if (stop.signal.aborted) {
          fs.closeSync(channel.readFd);
          if (onward) fs.closeSync(onward.writeFd);
          closeChannelWriter();
          closeFirstInput();
          throw stop.signal.reason;
        }
        const shared = new SharedArrayBuffer(8);
        rawCounter = new BigInt64Array(shared);
        waits.push(
          new Promise<void>((resolve) => {
            let closed = false;
            // A blocking read uses this thread's descriptors, closed here once the worker is
            // through with them (a shared read's pipe handle closes it in the worker). Closing
            // the onward end is what ends zstd's input.
            const release = (): void => {
              if (blocking && !closed) fs.closeSync(channel.readFd);
              if (onward && !closed) fs.closeSync(onward.writeFd);
              closed = true;
              resolve();
            };
            startRead(
              { fd: channel.readFd, blocking, ...(onward ? { outFd: onward.writeFd } : {}), spec: opts.inspect ?? {}, progressIntervalMs: Math.min(interval, 250), counter: shared },
              {
                message: (m) => {
                  if (m.type === 'progress') rawBytes = m.bytes;
                  else if (m.type === 'seen') seenAt ??= clock();
                  else if (m.type === 'done') {
                    found.inspection = m.inspection;
                    rawBytes = m.inspection.rawBytes;
                    release();
                  } else if (m.type === 'failed') {
                    fail(new Error(`the dump reader failed: ${m.message}`), m.echo ? 2 : 1);
                    release();
                  }
                },
                gone: (e) => {
                  fail(e, stop.signal.aborted ? 2 : 1);
                  release();
                },
              },
            );
          }),
        );
        if (!passOn) stages.unshift({ kind: 'process', name: 'tee', command: 'tee', args: ['/proc/self/fd/3'], notFound: TEE_NOT_FOUND, fd3: channel.writeFd });
      } else {
        const inspector = new RawInspector(opts.inspect ?? {}, () => (seenAt ??= clock()));
        stages.unshift({
          kind: 'node',
          stream: new Transform({
            transform(chunk: Buffer, _enc, cb) {
              inspector.update(chunk);
              rawBytes = inspector.bytes;
              cb(null, chunk);
            },
            flush(cb) {
              found.inspection = inspector.end();
              cb();
            },
          }),
        });
      }

      // Every process's stdio is a FIFO (spawner.ts starts them off the event loop): processes
      // next to each other talk through one of their own, as in a shell pipeline (so does the
      // source with tee), and the stdio this process reads or writes is one each. Started from
      // the last to the first; this process closes its copies of a link's ends once both sides
      // have them.
      const linkAfter = stages.flatMap((stage, i) => (stage.kind === 'process' && stages[i + 1]?.kind === 'process' ? [i] : []));
      const sourceLinked = isProcessSource && !passOn;
      const fedByUs = (i: number): boolean => (i === 0 ? firstInputFd === null && !sourceLinked : stages[i - 1].kind === 'node');
      const ownPipes = stages.reduce((n, stage, i) => (stage.kind === 'process' ? n + 1 + (fedByUs(i) ? 1 : 0) + (linkAfter.includes(i) ? 0 : 1) : n), 0);
      const fifos = await openFifos(linkAfter.length + (sourceLinked ? 1 : 0) + ownPipes);
      const unowned = new Set(fifos.flatMap((f) => [f.readFd, f.writeFd]));
      const closeLink = (fd: number | undefined): void => {
        if (fd !== undefined && unowned.delete(fd)) fs.closeSync(fd);
      };
      const take = (): { fifo: FifoEnds } => {
        const fifo = fifos.pop()!;
        unowned.delete(fifo.readFd);
        unowned.delete(fifo.writeFd);
        return { fifo };
      };
      const links = new Map(linkAfter.map((i) => [i, fifos.shift()!]));
      const sourceLink = sourceLinked ? fifos.shift()! : null;
      try {
        let startFailed = false;
        for (let i = stages.length - 1; i >= 0 && !startFailed && !stop.signal.aborted; i--) {
          const stage = stages[i];
          if (stage.kind === 'node') continue;
          const input = i === 0 ? (firstInputFd ?? sourceLink?.readFd) : links.get(i - 1)?.readFd;
          const output = links.get(i)?.writeFd;
          const stdio: AsideStdio[] = [input ?? take(), output ?? take(), take(), ...(stage.fd3 === undefined ? [] : [stage.fd3])];
          const child = await spawnAside(stage.command, stage.args, stdio);
          // The child holds its own copies now: ours of tee's side channel would keep the worker
          // from ever seeing the end, ours of zstd's input its writes from ever failing.
          if (stage.fd3 !== undefined) closeChannelWriter();
          if (i === 0 && firstInputFd !== null) closeFirstInput();
          closeLink(input);
          closeLink(output);
          stage.child = child;
          const entry = { name: stage.name, child, exited: false };
          children.push(entry);
          // Killed by us, or of a broken pipe: the echo of a failure reported elsewhere; so is an
          // error exit once the stream is stopped. Killed by anyone else: a cause, whenever heard.
          waits.push(watchChild(stage, entry, (e, kind) => fail(e, kind === 'cause' ? 1 : 2), ({ signal }) => (killedAsEcho(entry, signal) || (signal === null && stop.signal.aborted) ? 'echo' : 'cause')));
          // It did not start: its 'error' says why (watchChild), and fails the stream.
          if (child.pid === undefined) startFailed = true;
          // Stopped while it started: the others were stopped without it.
          else if (stop.signal.aborted) stopChildren([entry], KILL_GRACE_MS);
        }
        // Stopped while the stages started: their failure closed the raw channel; start no source.
        if (stop.signal.aborted) throw stop.signal.reason;
        // A process could not start: its 'error' fails the stream; start no source, link nothing.
        if (!startFailed) {
          // The source writes into the first stage (or into this process when that is a stream of ours).
          let head: Readable;
          if (isProcessSource) {
            // Straight into the raw channel when the reader thread passes the dump on; else into tee.
            const output = passOn ? channelWriteFd! : sourceLink!.writeFd;
            sourceStarting = true;
            try {
              sourceProcess = await source.start(output);
            } finally {
              sourceStarting = false;
              if (passOn) closeChannelWriter();
              else closeLink(output);
            }
            if (stop.signal.aborted) sourceProcess.kill();
            head = sourceProcess.stdout;
          } else if ('process' in source) {
            sourceProcess = source.process;
            if (stop.signal.aborted) sourceProcess.kill();
            head = sourceProcess.stdout;
          } else {
            head = source.readable;
          }
          if (sourceProcess) waits.push(sourceProcess.done.catch((e) => fail(e, stop.signal.aborted || SOURCE_WRITE_ECHO.test(String((e as Error)?.message)) ? 2 : 1)));

          // The links that pass through this process: each run of streams between processes.
          let run: Array<Readable | Duplex | Writable> | null = [head];
          if (isProcessSource && stages[0]?.kind === 'process') run = null;
          for (let i = 0; i < stages.length; i++) {
            const stage = stages[i];
            if (stage.kind === 'node') {
              run!.push(stage.stream);
              continue;
            }
            if (run !== null) {
              run.push(stage.child!.stdin!);
              waits.push(runLink(run, stop.signal, fail));
            }
            const following = stages[i + 1];
            run = following?.kind === 'process' ? null : [stage.child!.stdout!];
          }
          run!.push(stored);
          waits.push(runLink(run!, stop.signal, fail));
        }
      } finally {
        for (const fd of unowned) fs.closeSync(fd);
        unowned.clear();
      }
    }
  } catch (e) {
    fail(e, 1);
  }

  const results = await fan.then(async (r) => {
    await Promise.all(waits);
    return r;
  });
  if (ticker) clearInterval(ticker);
  if (killTimer) clearTimeout(killTimer);
  opts.signal?.removeEventListener('abort', onAbort);
  closeChannelWriter();
  closeFirstInput();

  if (failures.length === 0 && results.every((r) => !r.ok)) {
    fail(new Error(`every destination failed: ${results.map((r) => `${r.id}: ${r.error?.message}`).join('; ')}`), 1);
  }
  if (failures.length === 0 && found.inspection === null) fail(new Error('the dump reader did not finish'), 1);
  if (failures.length > 0) {
    const first = failures.reduce((a, b) => (b.rank < a.rank || (b.rank === a.rank && b.seq < a.seq) ? b : a));
    // Nothing is good on a failed stream, not even a target that took every byte it was given.
    const none = results.map((r) => (r.ok ? { id: r.id, ok: false, error: first.error } : r));
    throw new StoreError(first.error.message, none, { cause: first.error });
  }
  progress();
  const inspection = found.inspection!;
  const seen = seenAt as Date | null;
  if (inspection.coordinates && seen) inspection.coordinates.consistent_at = seen.toISOString();
  return { size: stored.bytes, sha256: stored.digest(), rawBytes: inspection.rawBytes, targets: results, inspection };
}

/** Pipe one run of streams; a failure there fails the whole store (an EPIPE is only an echo). */
async function runLink(streams: Array<Readable | Duplex | Writable>, signal: AbortSignal, fail: (e: unknown, rank: number) => void): Promise<void> {
  try {
    await pipeline(streams as unknown as NodeJS.ReadWriteStream[], { signal });
  } catch (e) {
    fail(e, signal.aborted || isPipeEcho(e) ? 2 : 1);
  }
}

