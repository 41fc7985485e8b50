/**
 * WAL segment names and LSNs: enough arithmetic to tell which archived segments a replay
 * needs, whether they follow each other, and which are missing.
 *
 * A segment is named TTTTTTTTXXXXXXXXYYYYYYYY (24 hex digits): timeline, then the segment
 * number split in two, the "log id" (XXXXXXXX) and the segment within it (YYYYYYYY); a log
 * id holds 4 GiB of WAL, i.e. 256 segments of the default 16 MiB.
 */

/** The default WAL segment size (initdb --wal-segsize changes it; see segmentSizeOf). */
export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

const SEGMENT_RE = /^[0-9A-F]{24}$/;
const HISTORY_RE = /^[0-9A-F]{8}\.history$/;
const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Whether `name` is a WAL segment's name (not a timeline history file or a partial one). */
export function isSegmentName(name: string): boolean {
  return SEGMENT_RE.test(name);
}

/** Whether `name` is a timeline history file's name (00000002.history). */
export function isHistoryName(name: string): boolean {
  return HISTORY_RE.test(name);
}

/** "16/B374D848" → its byte position; throws on anything else. */
export function parseLsn(lsn: string): bigint {
  const m = LSN_RE.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(lsn)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** A byte position → "16/B374D848", as PostgreSQL writes it. */
export function formatLsn(pos: bigint): string {
  return `${(pos >> 32n).toString(16).toUpperCase()}/${(pos & 0xffffffffn).toString(16).toUpperCase()}`;
}

function segmentsPerLogId(segmentSize: number): bigint {
  return 0x100000000n / BigInt(segmentSize);
}

/** The timeline and segment number of a segment name. */
export function parseSegmentName(name: string, segmentSize = DEFAULT_SEGMENT_SIZE): { timeline: number; segno: bigint } {
  if (!isSegmentName(name)) throw new Error(`not a WAL segment name: ${JSON.stringify(name)}`);
  const timeline = parseInt(name.slice(0, 8), 16);
  const logId = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  return { timeline, segno: logId * segmentsPerLogId(segmentSize) + seg };
}

/** The name of segment `segno` of `timeline`. */
export function segmentName(timeline: number, segno: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  const per = segmentsPerLogId(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segno / per)}${hex(segno % per)}`;
}

/** The name of the segment that holds byte `lsn` of `timeline` (what pg_walfile_name says). */
export function segmentOfLsn(timeline: number, lsn: string, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  return segmentName(timeline, parseLsn(lsn) / BigInt(segmentSize), segmentSize);
}

/**
 * The segment size of an archive, from a file whose start and end LSNs were recorded
 * (end - start); the default when none says.
 */
export function segmentSizeOf(files: ReadonlyArray<{ start_lsn: string | null; end_lsn: string | null }>): number {
  for (const f of files) {
    if (!f.start_lsn || !f.end_lsn) continue;
    try {
      const size = Number(parseLsn(f.end_lsn) - parseLsn(f.start_lsn));
      // A power of two from 1 MiB to 1 GiB, as initdb allows.
      if (size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0) return size;
    } catch {
      /* an unreadable LSN says nothing */
    }
  }
  return DEFAULT_SEGMENT_SIZE;
}
