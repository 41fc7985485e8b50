/**
 * Row counts per table read from a pg_dump custom-format archive (`--format=custom
 * --compress=0`) as it streams past, so a backup records exact counts that describe the
 * dump's own snapshot without a second scan of every table.
 *
 * The archive layout (pg_backup_archiver.c ReadHead/ReadToc, pg_backup_custom.c):
 *
 *   "PGDMP" vmaj vmin vrev intSize offSize format
 *   compression: 1.15+ one byte (algorithm), 1.4–1.14 an int (zlib level)
 *   7 ints (creation time), dbname, server version, pg_dump version (strings)
 *   tocCount, then per entry: dumpId, hadDumper, tableoid, oid, tag, desc, section,
 *     defn, dropStmt, copyStmt, namespace, tablespace, tableam (1.14+), relkind (1.16+),
 *     owner, withOids, dependencies (strings up to a NULL one), data offset
 *   data blocks: type byte (BLK_DATA 1 / BLK_BLOBS 3), dumpId, then chunks, each an int
 *     length and that many bytes; a zero length ends a block (for BLK_BLOBS: each large
 *     object is an oid followed by chunks, and a zero oid ends the block)
 *
 * An int is a sign byte and `intSize` bytes little-endian; a string is an int length
 * (-1: NULL) and the bytes. Uncompressed TABLE DATA chunks hold COPY text: one row per
 * newline (newlines inside values are escaped), and pg_dump up to at least 17 appends
 * the terminator line `\.` and two empty lines, which are not rows.
 *
 * Beside the counts it records what the archive holds (`contents()`): a sha256 of each
 * table's COPY rows exactly as they appear in the archive (the bytes of the rows, without
 * the chunk framing and the `\.` terminator, so the digest does not depend on how
 * pg_dump happened to chunk them), a sha256 of every TOC entry's definition (columns,
 * indexes, constraints, functions, triggers, views, sequences with their `setval`...),
 * and a count and digest of the large objects. Both come from bytes that pass anyway:
 * no second scan of the database, no extra pass over the data. The TOC is exact (it is
 * what pg_restore will run) and costs one sha256 of a few KiB per object; ownership and
 * privileges (ACL entries, owners) and the database-level entries are left out, because a
 * restore into another database (`--no-owner --no-acl`, another name) changes them on
 * purpose.
 *
 * Anything this reader does not understand (not an archive, an unknown version, a
 * compressed archive, a truncated one) never disturbs the data: the bytes keep flowing
 * through unchanged and `counts()` returns null with `reason()` saying why. Memory is
 * bounded: nothing is kept but the current int, the prefix of the current string (at
 * most a few KiB; long strings such as function bodies are hashed as they pass, never
 * kept), one hash state per table and one small record per TOC entry.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { noDigest, type DumpContents, type InventoryEntry, type ReaderOptions, type TableContents } from './contents.js';

const MAGIC = Buffer.from('PGDMP', 'latin1');
const FORMAT_CUSTOM = 1;
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const OFFSET_FLAGS = new Set([1, 2, 3]); // K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA

const version = (major: number, minor: number, rev = 0): number => (major * 256 + minor) * 256 + rev;
const K_VERS_1_3 = version(1, 3);
const K_VERS_1_4 = version(1, 4);
const K_VERS_1_5 = version(1, 5);
const K_VERS_1_6 = version(1, 6);
const K_VERS_1_8 = version(1, 8);
const K_VERS_1_9 = version(1, 9);
const K_VERS_1_10 = version(1, 10);
const K_VERS_1_11 = version(1, 11);
const K_VERS_1_14 = version(1, 14);
const K_VERS_1_15 = version(1, 15);
const K_VERS_1_16 = version(1, 16);
/** Oldest archive read here: pg_dump 9.0 wrote 1.12; older ones never reach a current server. */
const MIN_VERSION = version(1, 12);
/** Newest archive read here: pg_dump 17/18 write 1.16. A later layout is refused, not guessed. */
const MAX_VERSION = version(1, 16, 255);

/** Longest table or schema name kept (PostgreSQL names are at most 63 bytes). */
const KEEP_NAME = 4096;
/** Longest ENCODING definition kept ("SET client_encoding = 'UTF8';\n"). */
const KEEP_ENCODING = 256;
/** Prefix of the COPY statement kept: enough to see that it is one. */
const KEEP_COPY = 16;
/** Prefix of `desc` kept: "TABLE DATA" and "ENCODING" are short. */
const KEEP_DESC = 32;

const COMPRESSION_NAMES = ['none', 'gzip', 'lz4', 'zstd'];

/** The archive is not one this reader can count; the message says why. */
class Unreadable extends Error {}

/** One TABLE DATA entry of the table of contents, and the rows seen in its data block. */
interface TableSlot {
  /** "schema.table", the legacy key of counts(). */
  key: string;
  schema: string;
  table: string;
  rows: number;
  seen: boolean;
  /** sha256 of the rows' bytes as they appear in the archive. */
  hash: Hash;
}

/**
 * TOC entries that are not in the inventory: data (digested on its own), large objects
 * (counted and digested from their data), privileges and the database's own entries,
 * which a restore into another database with --no-owner --no-acl changes on purpose.
 */
const NOT_INVENTORIED = new Set([
  'TABLE DATA',
  'BLOBS',
  'BLOB',
  'BLOB METADATA',
  'LARGE OBJECTS',
  'ACL',
  'DEFAULT ACL',
  'DATABASE',
  'DATABASE PROPERTIES',
  'ENCODING',
  'STDSTRINGS',
  'SEARCHPATH',
]);

/** What the header/TOC reader asks the byte feeder for (`hash`: also the string's sha256). */
type Need = { kind: 'bytes'; n: number } | { kind: 'str'; keep: number; hash?: boolean };
/** `bytes`: the bytes asked for, or a string's first `keep` bytes (null for a NULL string). */
interface Got {
  bytes: Buffer | null;
  /** A string's declared length (-1 for NULL); for `bytes`, the count asked for. */
  length: number;
  /** Hex sha256 of the whole string, when asked for (null for a NULL string). */
  sha256?: string | null;
}

interface Layout {
  intSize: number;
  tables: Map<number, TableSlot>;
  objects: InventoryEntry[];
}

/** pg_dump's int at b[at]: a sign byte, then `intSize` bytes little-endian. */
function decodeInt(b: Buffer, intSize: number, at = 0): number {
  let value = 0;
  for (let i = at + intSize; i > at; i--) value = value * 256 + b[i];
  return b[at] !== 0 ? -value : value;
}

/** PostgreSQL encoding names → a decoder for names written in that encoding. */
const TEXT_DECODER_LABELS: Record<string, string> = {
  WIN866: 'ibm866',
  WIN874: 'windows-874',
  WIN1250: 'windows-1250',
  WIN1251: 'windows-1251',
  WIN1252: 'windows-1252',
  WIN1253: 'windows-1253',
  WIN1254: 'windows-1254',
  WIN1255: 'windows-1255',
  WIN1256: 'windows-1256',
  WIN1257: 'windows-1257',
  WIN1258: 'windows-1258',
  LATIN2: 'iso-8859-2',
  LATIN3: 'iso-8859-3',
  LATIN4: 'iso-8859-4',
  LATIN5: 'iso-8859-9',
  LATIN6: 'iso-8859-10',
  LATIN7: 'iso-8859-13',
  LATIN8: 'iso-8859-14',
  LATIN9: 'iso-8859-15',
  LATIN10: 'iso-8859-16',
  ISO_8859_5: 'iso-8859-5',
  ISO_8859_6: 'iso-8859-6',
  ISO_8859_7: 'iso-8859-7',
  ISO_8859_8: 'iso-8859-8',
  KOI8R: 'koi8-r',
  KOI8U: 'koi8-u',
  EUC_JP: 'euc-jp',
  EUC_KR: 'euc-kr',
  SJIS: 'shift_jis',
  GBK: 'gbk',
  GB18030: 'gb18030',
  BIG5: 'big5',
};

function nameDecoder(encoding: string | null): (b: Buffer) => string {
  const name = (encoding ?? 'UTF8').toUpperCase();
  if (name === 'UTF8' || name === 'SQL_ASCII') return (b) => b.toString('utf8');
  if (name === 'LATIN1') return (b) => b.toString('latin1');
  const label = TEXT_DECODER_LABELS[name];
  if (label) {
    try {
      const decoder = new TextDecoder(label);
      return (b) => decoder.decode(b);
    } catch {
      // This Node has no such decoder (small-icu build); UTF-8 is the best guess.
    }
  }
  return (b) => b.toString('utf8');
}

/**
 * Reads the header and the table of contents, pulling bytes from the feeder through
 * `yield`. Returns the TABLE DATA entries by dumpId; throws Unreadable when it cannot.
 */
function* readHeadAndToc(setIntSize: (n: number) => void, newHash: () => Hash): Generator<Need, Layout, Got> {
  const bytes = function* (n: number): Generator<Need, Buffer, Got> {
    return (yield { kind: 'bytes', n }).bytes!;
  };
  const str = function* (keep: number, hash = false): Generator<Need, Got, Got> {
    return yield { kind: 'str', keep, hash };
  };
  let intSize = 0;
  const int = function* (): Generator<Need, number, Got> {
    return decodeInt(yield* bytes(1 + intSize), intSize);
  };

  const magic = yield* bytes(5);
  if (!magic.equals(MAGIC)) throw new Unreadable('not a pg_dump custom-format archive (no PGDMP signature)');
  const [vmaj, vmin, vrev] = yield* bytes(3);
  const ver = version(vmaj, vmin, vrev);
  if (ver < MIN_VERSION || ver > MAX_VERSION) {
    throw new Unreadable(`archive version ${vmaj}.${vmin}.${vrev} is not supported (this reader knows 1.12 to 1.16)`);
  }
  const [size, offSize, format] = yield* bytes(3);
  if (size < 1 || size > 8) throw new Unreadable(`unsupported integer size ${size} in the archive header`);
  if (offSize < 1 || offSize > 16) throw new Unreadable(`unsupported offset size ${offSize} in the archive header`);
  if (format !== FORMAT_CUSTOM) throw new Unreadable(`archive format ${format} is not the custom format`);
  intSize = size;
  setIntSize(size);

  if (ver >= K_VERS_1_15) {
    const [algorithm] = yield* bytes(1);
    if (algorithm !== 0) {
      const name = COMPRESSION_NAMES[algorithm] ?? `algorithm ${algorithm}`;
      throw new Unreadable(`archive data is compressed (${name}); only --compress=0 archives can be counted`);
    }
  } else {
    const level = yield* int();
    if (level !== 0) {
      throw new Unreadable(`archive data is compressed (zlib level ${level}); only --compress=0 archives can be counted`);
    }
  }
  if (ver >= K_VERS_1_4) {
    for (let i = 0; i < 7; i++) yield* int(); // creation time
    yield* str(0); // database name
  }
  if (ver >= K_VERS_1_10) {
    yield* str(0); // server version
    yield* str(0); // pg_dump version
  }

  const tocCount = yield* int();
  if (tocCount < 0) throw new Unreadable(`corrupt table of contents (${tocCount} entries)`);
  const tables = new Map<number, TableSlot>();
  const objects: InventoryEntry[] = [];
  let decode = nameDecoder(null);
  const text = (got: Got): string | null => (got.bytes === null ? null : decode(got.bytes));
  const truncated = (got: Got): boolean => got.bytes !== null && got.bytes.length < got.length;

  for (let i = 0; i < tocCount; i++) {
    const dumpId = yield* int();
    if (dumpId <= 0) throw new Unreadable(`corrupt table of contents (entry ID ${dumpId})`);
    const hadDumper = (yield* int()) !== 0;
    if (ver >= K_VERS_1_8) yield* str(0); // tableoid
    yield* str(0); // oid
    const tag = yield* str(KEEP_NAME);
    const descGot = yield* str(KEEP_DESC);
    const desc = descGot.bytes && !truncated(descGot) ? descGot.bytes.toString('latin1') : null;
    if (ver >= K_VERS_1_11) yield* int(); // section
    const defn = yield* str(desc === 'ENCODING' ? KEEP_ENCODING : 0, true);
    yield* str(0); // dropStmt
    const copyStmt = ver >= K_VERS_1_3 ? yield* str(KEEP_COPY) : null;
    const namespace = ver >= K_VERS_1_6 ? yield* str(KEEP_NAME) : null;
    if (ver >= K_VERS_1_10) yield* str(0); // tablespace
    if (ver >= K_VERS_1_14) yield* str(0); // tableam
    const relkind = ver >= K_VERS_1_16 ? yield* int() : 0;
    yield* str(0); // owner
    if (ver >= K_VERS_1_9) yield* str(0); // withOids ("false")
    if (ver >= K_VERS_1_5) {
      for (;;) {
        const dep = yield* str(0);
        if (dep.length < 0) break;
      }
    }
    const [flag] = yield* bytes(1);
    if (!OFFSET_FLAGS.has(flag)) throw new Unreadable(`corrupt table of contents (data offset flag ${flag})`);
    yield* bytes(offSize);

    if (desc === 'ENCODING' && defn.bytes && !truncated(defn)) {
      const m = /'([^']*)'/.exec(defn.bytes.toString('latin1'));
      if (m) decode = nameDecoder(m[1]);
    }
    const kind = desc ?? (descGot.bytes ? `${descGot.bytes.toString('latin1')}…` : '?');
    const name = (text(tag) ?? '') + (truncated(tag) ? '…' : '');
    const inventoried = !NOT_INVENTORIED.has(kind) && !((kind === 'COMMENT' || kind === 'SECURITY LABEL') && name.startsWith('DATABASE '));
    if (inventoried) {
      const schema = namespace === null || namespace.bytes === null ? null : (text(namespace) ?? '') + (truncated(namespace) ? '…' : '');
      objects.push({ kind, schema: schema === '' ? null : schema, name, sha256: defn.sha256 ?? '' });
    }
    // relkind (1.16+) tells a plain table ('r') from a foreign table ('f', with
    // --include-foreign-data) whose rows live elsewhere; 0 means not recorded.
    if (desc !== 'TABLE DATA' || !hadDumper || (relkind !== 0 && relkind !== 'r'.charCodeAt(0))) continue;
    if (tag.bytes === null || truncated(tag) || (namespace !== null && (namespace.bytes === null || truncated(namespace)))) {
      throw new Unreadable(`TABLE DATA entry ${dumpId} has a missing or overlong name`);
    }
    const copy = copyStmt?.bytes?.toString('latin1') ?? '';
    if (!/^COPY\s/i.test(copy)) {
      throw new Unreadable(`TABLE DATA entry ${dumpId} is not COPY data (dumped with --inserts?)`);
    }
    const schema = text(namespace ?? { bytes: Buffer.alloc(0), length: 0 }) ?? '';
    const table = text(tag) ?? '';
    tables.set(dumpId, { key: `${schema}.${table}`, schema, table, rows: 0, seen: false, hash: newHash() });
  }
  return { intSize, tables, objects };
}

/** Row bytes gathered before one update() of a table's digest (see PgCustomRowCounter.#stage). */
const STAGE_BYTES = 64 * 1024;

/** A line of COPY text that started with these bytes is held back until it is known not to be the `\.` terminator. */
const HELD_BACKSLASH = Buffer.from('\\');
const HELD_BACKSLASH_DOT = Buffer.from('\\.');

const enum Phase {
  Head,
  BlockType,
  BlockId,
  ChunkLength,
  ChunkData,
  BlobOid,
  Failed,
}

/** Where a line of COPY text stands, enough to recognize the `\.` terminator line. */
const enum Line {
  Start,
  Backslash,
  BackslashDot,
  Other,
}

/**
 * A pass-through stage that counts the rows of every table in a pg_dump custom-format
 * archive (uncompressed) as the archive flows through it, bytes unchanged.
 */
export class PgCustomRowCounter extends Transform {
  #phase = Phase.Head;
  #reason: string | null = null;
  #finished = false;

  // Header and TOC: a generator that pulls what it needs.
  #head: Generator<Need, Layout, Got> | null;
  #need: Need | null = null;
  #tables = new Map<number, TableSlot>();
  #objects: InventoryEntry[] = [];
  #intSize = 4;
  /** Fixed-size fields (ints, single bytes, the offset) collect here across chunks. */
  #scratch = Buffer.alloc(64);
  #scratchLen = 0;
  /** The string being read: its declared length (null until the length int is in), bytes consumed, kept prefix. */
  #strLength: number | null = null;
  #strDone = 0;
  #strKeep: Buffer | null = null;
  #strHash: Hash | null = null;

  // Data blocks.
  #blockType = 0;
  #slot: TableSlot | null = null;
  #chunkLeft = 0;
  #line: Line = Line.Start;
  #copyEnded = false;
  /**
   * Row bytes on their way into the current table's digest. pg_dump writes every COPY row as
   * a chunk of its own (an int length and the row), so the rows are short runs between
   * framing bytes; hashing each one with its own update() call cost more than the hashing
   * itself (a view and a call into C++ per row). They are gathered here and hashed in large
   * updates instead: the digest is of the same bytes in the same order.
   */
  #stage = Buffer.allocUnsafe(STAGE_BYTES);
  #stageLen = 0;
  #stageHash: Hash | null = null;
  /** Cache of the next newline in the current input chunk, so no byte is searched twice. */
  #nlFrom = -1;
  #nlAt = -1;

  // Large objects: one digest over all of them (oid, bytes, size), in archive order.
  #loHash: Hash = createHash('sha256');
  #loCount = 0;
  #loBytes = 0;
  #contents: DumpContents | null = null;

  #peakRetained = 0;
  /** Bytes scanned in chunks before the current one. */
  #offset = 0;
  /** Bytes of the header and the table of contents, once they have been read. */
  #headBytes: number | null = null;

  constructor(options: ReaderOptions = {}) {
    super();
    const digests = options.digests !== false;
    if (!digests) this.#loHash = noDigest();
    this.#head = readHeadAndToc(
      (n) => {
        this.#intSize = n;
      },
      digests ? () => createHash('sha256') : noDigest,
    );
    this.#advanceHead({ bytes: null, length: 0 });
  }

  /**
   * How many bytes the header and the table of contents take at the start of the archive,
   * once they have passed (null before, or when the archive is unreadable): a copy of just
   * those bytes is an archive pg_restore can restore the post-data section from.
   */
  headBytes(): number | null {
    return this.#phase === Phase.Failed ? null : this.#headBytes;
  }

  /** Rows per table ("schema.table"), once the whole archive has passed; else null (see reason()). */
  counts(): Record<string, number> | null {
    if (!this.#finished || this.#reason !== null) return null;
    const counts: Record<string, number> = {};
    for (const slot of this.#tables.values()) counts[slot.key] = slot.rows;
    return counts;
  }

  /** Why counts() is null; null when counts are available. */
  reason(): string | null {
    if (this.#reason !== null) return this.#reason;
    return this.#finished ? null : 'the archive has not been read to its end yet';
  }

  /**
   * What the archive holds, once it has passed whole: every table keyed by (schema,
   * table) with its rows and the sha256 of its COPY rows, the inventory of the other
   * TOC entries, the large objects. Null when counts() is.
   */
  contents(): DumpContents | null {
    if (!this.#finished || this.#reason !== null) return null;
    if (this.#contents === null) {
      const tables: TableContents[] = [...this.#tables.values()].map((s) => ({ schema: s.schema, table: s.table, rows: s.rows, sha256: s.hash.digest('hex') }));
      this.#contents = {
        format: 'strongbox-contents/1',
        engine: 'postgresql',
        tables,
        objects: this.#objects,
        large_objects: { count: this.#loCount, sha256: this.#loHash.digest('hex') },
      };
    }
    return this.#contents;
  }

  /** Bytes the parser holds right now (partial ints and string prefixes), for tests and diagnostics. */
  get retainedBytes(): number {
    return this.#scratch.length + (this.#strKeep?.length ?? 0);
  }

  /** The most `retainedBytes` has been at any point. */
  get peakRetainedBytes(): number {
    return this.#peakRetained;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#phase !== Phase.Failed) {
      try {
        this.#scan(chunk);
        this.#offset += chunk.length;
      } catch (err) {
        this.#fail(err instanceof Unreadable ? err.message : `archive reader failed: ${(err as Error).message}`);
      }
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#finished = true;
    if (this.#phase !== Phase.Failed) {
      if (this.#phase === Phase.Head) {
        this.#fail('the archive ended before its table of contents was complete');
      } else if (this.#phase !== Phase.BlockType) {
        this.#fail('the archive ended in the middle of a data block');
      } else {
        const missing = [...this.#tables.values()].filter((s) => !s.seen);
        if (missing.length > 0) {
          this.#fail(`the archive ended without data for ${missing.length} table(s), e.g. ${missing[0].key}`);
        }
      }
    }
    callback();
  }

  #fail(reason: string): void {
    this.#phase = Phase.Failed;
    this.#reason = reason;
    this.#head = null;
    this.#strKeep = null;
    this.#strHash = null;
    this.#tables = new Map();
    this.#objects = [];
  }

  #notePeak(): void {
    const retained = this.retainedBytes;
    if (retained > this.#peakRetained) this.#peakRetained = retained;
  }

  /** Resume the header/TOC reader with `got`; on its return, switch to the data blocks. */
  #advanceHead(got: Got): void {
    const step = this.#head!.next(got);
    if (step.done) {
      this.#tables = step.value.tables;
      this.#objects = step.value.objects;
      this.#intSize = step.value.intSize;
      this.#head = null;
      this.#need = null;
      this.#phase = Phase.BlockType;
    } else {
      this.#need = step.value;
    }
    this.#scratchLen = 0;
    this.#strLength = null;
    this.#strDone = 0;
    this.#strKeep = null;
    this.#strHash = null;
  }

  #scan(buf: Buffer): void {
    const end = buf.length;
    let pos = 0;
    this.#nlFrom = -1;
    this.#nlAt = -1;
    while (pos < end) {
      switch (this.#phase) {
        case Phase.Head:
          pos = this.#scanHead(buf, pos, end);
          if (this.#phase !== Phase.Head && this.#headBytes === null) this.#headBytes = this.#offset + pos;
          break;
        case Phase.BlockType: {
          const type = buf[pos++];
          if (type !== BLK_DATA && type !== BLK_BLOBS) throw new Unreadable(`unknown data block type ${type}`);
          this.#blockType = type;
          this.#scratchLen = 0;
          this.#phase = Phase.BlockId;
          break;
        }
        case Phase.BlockId: {
          pos = this.#collect(buf, pos, end, 1 + this.#intSize);
          if (this.#scratchLen < 1 + this.#intSize) break;
          const id = decodeInt(this.#scratch, this.#intSize);
          this.#scratchLen = 0;
          if (this.#blockType === BLK_DATA) {
            this.#slot = this.#tables.get(id) ?? null;
            if (this.#slot) {
              if (this.#slot.seen) throw new Unreadable(`a second data block for ${this.#slot.key}`);
              this.#slot.seen = true;
            }
            this.#line = Line.Start;
            this.#copyEnded = false;
            this.#phase = Phase.ChunkLength;
          } else {
            this.#slot = null;
            this.#phase = Phase.BlobOid;
          }
          break;
        }
        case Phase.BlobOid: {
          pos = this.#collect(buf, pos, end, 1 + this.#intSize);
          if (this.#scratchLen < 1 + this.#intSize) break;
          const oid = decodeInt(this.#scratch, this.#intSize);
          this.#scratchLen = 0;
          if (oid !== 0) {
            this.#loCount++;
            this.#loBytes = 0;
            this.#loHash.update(`oid ${oid}\n`);
          }
          this.#phase = oid === 0 ? Phase.BlockType : Phase.ChunkLength;
          break;
        }
        case Phase.ChunkLength: {
          if (this.#slot !== null && this.#scratchLen === 0 && this.#line === Line.Start && !this.#copyEnded) {
            pos = this.#rows(buf, pos, end);
            if (pos >= end) break;
          }
          let length: number;
          if (this.#scratchLen === 0 && end - pos > this.#intSize) {
            // The usual case: the whole int is in this input chunk.
            length = decodeInt(buf, this.#intSize, pos);
            pos += 1 + this.#intSize;
          } else {
            pos = this.#collect(buf, pos, end, 1 + this.#intSize);
            if (this.#scratchLen < 1 + this.#intSize) break;
            length = decodeInt(this.#scratch, this.#intSize);
            this.#scratchLen = 0;
          }
          if (length < 0) throw new Unreadable(`corrupt data block (chunk length ${length})`);
          if (length > 0) {
            this.#chunkLeft = length;
            this.#phase = Phase.ChunkData;
          } else if (this.#blockType === BLK_BLOBS) {
            // The size closes each object, so no two sets of objects hash alike.
            this.#loHash.update(`\nsize ${this.#loBytes}\n`);
            this.#phase = Phase.BlobOid;
          } else {
            this.#endCopyBlock();
            this.#phase = Phase.BlockType;
          }
          break;
        }
        case Phase.ChunkData: {
          const take = Math.min(this.#chunkLeft, end - pos);
          if (this.#slot && !this.#copyEnded) this.#countLines(buf, pos, pos + take, this.#slot);
          else if (this.#blockType === BLK_BLOBS && take > 0) {
            this.#loHash.update(buf.subarray(pos, pos + take));
            this.#loBytes += take;
          }
          pos += take;
          this.#chunkLeft -= take;
          if (this.#chunkLeft === 0) this.#phase = Phase.ChunkLength;
          break;
        }
        case Phase.Failed:
          return;
      }
    }
  }

  /** Copy bytes into the scratch buffer until it holds `want`. */
  #collect(buf: Buffer, pos: number, end: number, want: number): number {
    const n = Math.min(want - this.#scratchLen, end - pos);
    buf.copy(this.#scratch, this.#scratchLen, pos, pos + n);
    this.#scratchLen += n;
    return pos + n;
  }

  #scanHead(buf: Buffer, pos: number, end: number): number {
    const need = this.#need!;
    if (need.kind === 'bytes') {
      pos = this.#collect(buf, pos, end, need.n);
      if (this.#scratchLen === need.n) this.#advanceHead({ bytes: this.#scratch.subarray(0, need.n), length: need.n });
      return pos;
    }
    if (this.#strLength === null) {
      const want = 1 + this.#intSize;
      pos = this.#collect(buf, pos, end, want);
      if (this.#scratchLen < want) return pos;
      const length = decodeInt(this.#scratch, this.#intSize);
      this.#scratchLen = 0;
      if (length < 0) {
        this.#advanceHead({ bytes: null, length: -1, sha256: null });
        return pos;
      }
      this.#strLength = length;
      this.#strDone = 0;
      this.#strKeep = Buffer.alloc(Math.min(length, need.keep));
      this.#strHash = need.hash ? createHash('sha256') : null;
      this.#notePeak();
    }
    const length = this.#strLength;
    const keep = this.#strKeep!;
    const take = Math.min(length - this.#strDone, end - pos);
    if (this.#strDone < keep.length) {
      buf.copy(keep, this.#strDone, pos, pos + Math.min(take, keep.length - this.#strDone));
    }
    if (this.#strHash && take > 0) this.#strHash.update(buf.subarray(pos, pos + take));
    this.#strDone += take;
    pos += take;
    if (this.#strDone === length) this.#advanceHead({ bytes: keep, length, sha256: this.#strHash?.digest('hex') ?? null });
    return pos;
  }

  /**
   * The usual run of a TABLE DATA block: chunks that each hold one whole row (pg_dump writes
   * every row it gets from COPY as a chunk of its own), counted and digested without going
   * through the phases byte range by byte range. Stops, leaving `pos` at the start of a
   * chunk, at anything else (the block's end, a chunk cut by the input's end, a line that
   * starts with a backslash, an empty line, a chunk with no newline or more than one),
   * which the general path then reads exactly as it always did.
   */
  #rows(buf: Buffer, pos: number, end: number): number {
    const slot = this.#slot!;
    const intSize = this.#intSize;
    this.#stageHash = slot.hash;
    let rows = 0;
    while (end - pos > intSize) {
      const length = decodeInt(buf, intSize, pos);
      const start = pos + 1 + intSize;
      const stop = start + length;
      if (length <= 0 || stop > end) break;
      const first = buf[start];
      if (first === 0x5c || first === 0x0a || this.#nextNewline(buf, start) !== stop - 1) break;
      rows++;
      this.#digest(buf, start, stop);
      pos = stop;
    }
    slot.rows += rows;
    return pos;
  }

  /**
   * Count the COPY rows that end in buf[pos, end), and hash their bytes into the table's
   * digest. A line that starts with a backslash is held back (not yet hashed) until it is
   * known not to be the `\.` terminator, which is no row and is not hashed.
   */
  #countLines(buf: Buffer, pos: number, end: number, slot: TableSlot): void {
    this.#stageHash = slot.hash;
    // buf[from, pos) are row bytes not hashed yet.
    let from = pos;
    while (pos < end) {
      const line = this.#line;
      if (line !== Line.Other) {
        // The first bytes of a line: is it the `\.` terminator?
        const b = buf[pos++];
        if (b === 0x0a) {
          if (line === Line.BackslashDot) {
            this.#copyEnded = true;
            return;
          }
          if (line === Line.Backslash) this.#digest(HELD_BACKSLASH, 0, 1);
          slot.rows++;
          this.#line = Line.Start;
        } else if (line === Line.Start && b === 0x5c) {
          if (pos - 1 > from) this.#digest(buf, from, pos - 1);
          from = pos;
          this.#line = Line.Backslash;
        } else if (line === Line.Backslash && b === 0x2e) {
          from = pos;
          this.#line = Line.BackslashDot;
        } else {
          if (line === Line.Backslash) this.#digest(HELD_BACKSLASH, 0, 1);
          else if (line === Line.BackslashDot) this.#digest(HELD_BACKSLASH_DOT, 0, 2);
          this.#line = Line.Other;
        }
        continue;
      }
      const nl = this.#nextNewline(buf, pos);
      if (nl === -1 || nl >= end) break;
      slot.rows++;
      this.#line = Line.Start;
      pos = nl + 1;
    }
    if (end > from) this.#digest(buf, from, end);
  }

  /** buf[from, end) into the current table's digest (#stageHash), through the staging buffer. */
  #digest(buf: Buffer, from: number, end: number): void {
    const n = end - from;
    const stage = this.#stage;
    let at = this.#stageLen;
    if (at + n > STAGE_BYTES) {
      this.#flushStage();
      at = 0;
      if (n > STAGE_BYTES / 2) {
        this.#stageHash!.update(buf.subarray(from, end));
        return;
      }
    }
    // One native copy per run (a byte loop in JS measured slower, even for 64-byte rows).
    if (n === 1) {
      stage[at++] = buf[from];
    } else {
      buf.copy(stage, at, from, end);
      at += n;
    }
    this.#stageLen = at;
  }

  /** Hash what the staging buffer holds. */
  #flushStage(): void {
    if (this.#stageLen > 0) this.#stageHash!.update(this.#stage.subarray(0, this.#stageLen));
    this.#stageLen = 0;
  }

  /** The next 0x0A at or after `pos` in `buf` (the current input chunk), or -1. */
  #nextNewline(buf: Buffer, pos: number): number {
    if (this.#nlFrom !== -1 && this.#nlFrom <= pos && (this.#nlAt === -1 || this.#nlAt >= pos)) return this.#nlAt;
    this.#nlFrom = pos;
    this.#nlAt = buf.indexOf(0x0a, pos);
    return this.#nlAt;
  }

  /** A TABLE DATA block ended: a last line without a newline is still a row, unless it is `\.`. */
  #endCopyBlock(): void {
    if (this.#slot && !this.#copyEnded && this.#line !== Line.Start && this.#line !== Line.BackslashDot) {
      this.#stageHash = this.#slot.hash;
      if (this.#line === Line.Backslash) this.#digest(HELD_BACKSLASH, 0, 1);
      this.#slot.rows++;
    }
    this.#flushStage();
    this.#stageHash = null;
    this.#slot = null;
  }
}
