/**
 * The binlog coordinates of a MariaDB/MySQL dump: where binlog replay starts after it.
 *
 * A dump made with `--single-transaction --master-data=2` writes them as comments: near the
 * top, the position of its snapshot (`-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003',
 * MASTER_LOG_POS=1234;`) and, MariaDB at the very end, the GTID position of the same moment
 * (`-- SET GLOBAL gtid_slave_pos='0-1-42';`). MariaDB takes them from its consistent
 * snapshot (Binlog_snapshot_file/position), so they describe exactly the rows in the dump,
 * without a global read lock. They are read off the dump stream on its way to storage: no
 * second connection, and nothing that could describe another moment.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { RecoveryStart } from '../../catalog/schema.js';

/** The header (where the position is) is well within this; later bytes are not searched for it. */
const HEAD_BYTES = 256 * 1024;
/** The GTID comment is among the dump's last lines. */
const TAIL_BYTES = 8 * 1024;

/** MySQL 8.0.26+ mysqldump (--source-data) says CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE. */
const POSITION = /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^'\n]+)', (?:MASTER|SOURCE)_LOG_POS=(\d+);/m;
const GTID = /^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';/m;

/**
 * A dump's RecoveryStart, plus `consistent_at`: when its snapshot was certainly taken (the
 * position comment is written after it), the earliest time a restore from it can reach.
 */
export type DumpCoordinates = Extract<RecoveryStart, { file: string }> & { consistent_at?: string };

/** The binlog file and position named in a dump's header, and the GTID position from its tail. */
export function parseDumpCoordinates(head: string, tail: string): DumpCoordinates | null {
  const m = POSITION.exec(head);
  if (!m) return null;
  const g = GTID.exec(tail) ?? GTID.exec(head);
  return { file: m[1], position: Number(m[2]), gtid: g && g[1] !== '' ? g[1] : null };
}

/** A pass-through stage that notes the coordinates a dump carries (see `coordinates()`). */
export class DumpCoordinatesReader extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  /** When the position comment went through. */
  private seenAt: Date | null = null;

  constructor(private readonly clock: () => Date = () => new Date()) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headBytes);
      this.head.push(Buffer.from(part));
      this.headBytes += part.length;
      if (this.seenAt === null && /_LOG_POS=\d/.test(Buffer.concat(this.head).toString('latin1'))) this.seenAt = this.clock();
    }
    // Only the last TAIL_BYTES are kept: a copy of at most that much per chunk.
    this.tail = chunk.length >= TAIL_BYTES ? Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES)) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
    done(null, chunk);
  }

  /** The coordinates, once the whole dump went through; null when the dump has none (log_bin off). */
  coordinates(): DumpCoordinates | null {
    const c = parseDumpCoordinates(Buffer.concat(this.head).toString('latin1'), this.tail.toString('latin1'));
    return c && this.seenAt ? { ...c, consistent_at: this.seenAt.toISOString() } : c;
  }
}
