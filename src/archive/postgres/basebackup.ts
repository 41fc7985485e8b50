/**
 * Base backups of archived PostgreSQL branches: pg_basebackup over the replication protocol,
 * the data directory as one tar on stdout with no WAL in it (`-Ft -X none -D -`): the WAL a
 * restore needs, from the backup's start to its end, is in the branch's archive. The tar
 * carries backup_label and backup_manifest (pg_verifybackup can check an unpacked copy).
 *
 * It is a DumpProcess like pg_dump's, so it goes through the backups' own pipeline
 * (jobs/backup.ts). Where the backup starts and ends (LSN, timeline) is read off the tar
 * as it passes: backup_label (START WAL LOCATION, START TIMELINE) and the WAL-Ranges of
 * backup_manifest (pg_basebackup prints neither with -X none).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { EngineError, type ConnectionInfo, type DumpProcess } from '../../engines/engine.js';
import { runTool } from '../../engines/process.js';
import { replicationArgs, replicationEnv, serverTools } from './tools.js';

/** Where a base backup starts and ends: backups.recovery_start of a base backup. */
export interface BaseBackupRange {
  timeline: number;
  /** The WAL position replay starts from (the backup's checkpoint redo point). */
  lsn: string;
  /** The end: a restore is consistent once WAL up to here is replayed. */
  stop_lsn: string;
  stop_timeline: number;
  /** When the end was reached (this machine's clock). */
  stop_time: string;
}

export interface BaseBackupProcess extends DumpProcess {
  /** Once `done` resolved: where the backup starts and ends; null if pg_basebackup did not say. */
  range(): BaseBackupRange | null;
}

/** Keep this much of the end of backup_manifest: its WAL-Ranges are last, after every file. */
const MANIFEST_TAIL_BYTES = 64 * 1024;

/**
 * A pass-through stage over a tar stream that keeps backup_label whole and the end of
 * backup_manifest. Plain ustar, as pg_basebackup writes it: 512-byte headers, each entry's
 * data padded to 512.
 */
export class BaseBackupTarReader extends Transform {
  #header = Buffer.alloc(0);
  #remaining = 0;
  #padding = 0;
  #capture: 'backup_label' | 'backup_manifest' | null = null;
  #ended = false;
  label = '';
  #manifestTail = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#scan(chunk);
    } catch {
      // Not a tar we understand: the range is then unknown, which the backup reports.
      this.#ended = true;
    }
    callback(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.#ended) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - off);
        const part = chunk.subarray(off, off + n);
        if (this.#capture === 'backup_label') this.label += part.toString('utf8');
        else if (this.#capture === 'backup_manifest') this.#manifestTail = Buffer.concat([this.#manifestTail, part]).subarray(-MANIFEST_TAIL_BYTES);
        this.#remaining -= n;
        off += n;
        continue;
      }
      if (this.#padding > 0) {
        const n = Math.min(this.#padding, chunk.length - off);
        this.#padding -= n;
        off += n;
        continue;
      }
      const n = Math.min(512 - this.#header.length, chunk.length - off);
      this.#header = Buffer.concat([this.#header, chunk.subarray(off, off + n)]);
      off += n;
      if (this.#header.length < 512) continue;
      const h = this.#header;
      this.#header = Buffer.alloc(0);
      if (h.every((b) => b === 0)) {
        this.#ended = true;
        break;
      }
      const cstr = (from: number, len: number) => h.subarray(from, from + len).toString('utf8').replace(/\0.*$/s, '');
      const prefix = cstr(345, 155);
      const name = prefix ? `${prefix}/${cstr(0, 100)}` : cstr(0, 100);
      const size = parseInt(cstr(124, 12).trim() || '0', 8);
      if (!Number.isFinite(size)) throw new Error('unreadable tar header');
      this.#remaining = size;
      this.#padding = (512 - (size % 512)) % 512;
      this.#capture = name === 'backup_label' || name === 'backup_manifest' ? name : null;
    }
  }

  /** The backup's start and end, once the stream has passed; null if either is missing. */
  range(stopTime: string): BaseBackupRange | null {
    const lsn = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(this.label)?.[1];
    const timeline = /^START TIMELINE: (\d+)/m.exec(this.label)?.[1];
    const ranges = [...this.#manifestTail.toString('utf8').matchAll(/"Timeline": (\d+), "Start-LSN": "([0-9A-F]+\/[0-9A-F]+)", "End-LSN": "([0-9A-F]+\/[0-9A-F]+)"/g)];
    const last = ranges.at(-1);
    if (!lsn || !timeline || !last) return null;
    return { timeline: Number(timeline), lsn, stop_lsn: last[3], stop_timeline: Number(last[1]), stop_time: stopTime };
  }
}

/** Start a base backup of the server of `conn` (the whole cluster: physical backups have no per-database form). */
export async function startBaseBackup(conn: ConnectionInfo, opts: { serverMajor: number; label: string; signal?: AbortSignal; clock?: () => Date }): Promise<BaseBackupProcess> {
  if (opts.signal?.aborted) throw new EngineError('pg_basebackup was canceled before it started');
  const tools = await serverTools(opts.serverMajor);
  const run = runTool({
    name: 'pg_basebackup',
    path: tools.pgBasebackup,
    // A fast checkpoint: the backup was asked for now (a spread one can take up to
    // checkpoint_timeout before the first byte).
    args: [...replicationArgs(conn), '--pgdata=-', '--format=tar', '--wal-method=none', '--checkpoint=fast', `--label=${opts.label}`],
    env: replicationEnv(conn, 'strongbox_basebackup'),
    secrets: [conn.password],
    stdin: 'ignore',
    signal: opts.signal,
  });
  const reader = new BaseBackupTarReader();
  // The stop time: the server reached the end position before pg_basebackup exited 0.
  let stopTime: string | null = null;
  const done = run.done.then(() => void (stopTime = (opts.clock?.() ?? new Date()).toISOString()));
  done.catch(() => undefined);
  run.child.stdout!.on('error', (e) => reader.destroy(e));
  run.child.stdout!.pipe(reader);
  return {
    stdout: reader,
    done,
    kill: run.kill,
    clientVersion: tools.versionLine,
    range: () => (stopTime === null ? null : reader.range(stopTime)),
  };
}
