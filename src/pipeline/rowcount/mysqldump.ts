/**
 * Row counts per table read from mysqldump / mariadb-dump SQL output as it streams past,
 * so a backup records exact counts of the dump's own snapshot without a second scan.
 *
 * A byte-level lexer follows the mysql client's view of the text: '…' and "…" strings
 * (backslash escapes, doubled quotes), `…` identifiers, `-- `, `#` and `/* … *\/`
 * comments, and `/*!NNNNN … *\/` / `/*M!NNNNNN … *\/` conditional comments, whose content
 * is code. On top of it, a statement-level state machine splits statements at the
 * current delimiter (`DELIMITER ;;` blocks hold triggers, routines and events, whose
 * bodies may contain INSERT … VALUES of their own) and looks only at how statements
 * begin:
 *
 *   CREATE TABLE `t`          → table t exists (0 rows so far)
 *   CREATE … VIEW `v`         → v is a view, not a table (mysqldump first creates a
 *                               placeholder for each view, then replaces it)
 *   DROP TABLE `t`[, …]       → t is gone (DROP VIEW / DROP TEMPORARY TABLE are not)
 *   INSERT [IGNORE] INTO `t` [(cols)] VALUES (…),(…)  → one row per top-level group
 *   REPLACE INTO …            → the same
 *
 * INSERTs are counted only as statements of their own under the default `;`
 * delimiter; an INSERT inside a trigger or routine body is never at a statement start.
 * Client commands outside strings are followed too: `\g` ends a statement, `\d` sets
 * the delimiter, others (mariadb-dump's `\-` sandbox line) are ignored.
 * The stream must carry mysqldump's header ("-- MySQL dump" / "-- MariaDB dump") and
 * its "-- Dump completed" trailer; otherwise (not a dump, a truncated dump, one made
 * with --skip-comments) counts() is null and reason() says why. The bytes always flow
 * through unchanged, and memory stays bounded: a keyword, a name (capped), a
 * DELIMITER line, the first 4 KiB (header check) and the last 128 bytes (trailer check),
 * the first 4 KiB of the CREATE statement being digested, and one hash state per table.
 *
 * Beside the counts it records what the dump holds (`contents()`):
 * - per table, a sha256 of its rows exactly as the dump writes them: the bytes of each
 *   row's parentheses, rows joined by ",", so neither how the rows are split into INSERT
 *   statements nor the whitespace between them changes the digest;
 * - an inventory: the sha256 of every CREATE statement (tables with their columns,
 *   indexes and constraints, views, triggers, functions, procedures, events, sequences)
 *   and of every SETVAL (a sequence's value), each by kind and name. A reference to the
 *   dumped database's own name (`db`.`seq`, as in NEXTVAL defaults) is left out of the
 *   digest, because a restore under another name rewrites it on purpose, and so is the
 *   DEFINER clause: like owners on PostgreSQL, a restore that does not preserve ownership
 *   changes it on purpose (to the restoring account). Only the first 4 KiB of a statement
 *   are kept (to read its kind and name); the rest is hashed as it passes.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { noDigest, type DumpContents, type InventoryEntry, type ReaderOptions } from './contents.js';

const enum Lex {
  Code,
  Single,
  SingleEscape,
  SingleQuote,
  Double,
  DoubleEscape,
  DoubleQuote,
  Backtick,
  BacktickQuote,
  LineComment,
  BlockComment,
  BlockStar,
  Slash,
  SlashStar,
  SlashStarM,
  CondVersion,
  Dash,
  DashDash,
  CondStar,
  Backslash,
  RawLine,
}

const enum Stmt {
  Start,
  Skip,
  InsertHead,
  InsertAfterName,
  InsertQualified,
  InsertColumns,
  Values,
  CreateHead,
  CreateName,
  CreateAfterName,
  CreateQualified,
  DropHead,
  DropNames,
  DropAfterName,
  DropQualified,
}

/** Byte classes in code (0: punctuation and anything else). */
const C_WORD = 1;
const C_SPACE = 2;

const CLASS = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const ch = String.fromCharCode(b);
  if (/[A-Za-z0-9_$]/.test(ch) || b >= 0x80) CLASS[b] = C_WORD;
  else if (b === 0x20 || (b >= 0x09 && b <= 0x0d)) CLASS[b] = C_SPACE;
}

/** Bytes that matter where words do not (rest of a statement, inside a row's parentheses). */
const SPECIAL_BASE = new Uint8Array(256);
for (const ch of `'"\`/-#*()\\`) SPECIAL_BASE[ch.charCodeAt(0)] = 1;

/** The first quote `quote` or backslash in buf[pos, end), or `end`. */
function stringStop(buf: Buffer, pos: number, end: number, quote: number): number {
  while (pos < end) {
    const c = buf[pos];
    if (c === quote || c === 0x5c) return pos;
    pos++;
  }
  return end;
}

function specialFor(delimiter: Buffer): Uint8Array {
  const special = SPECIAL_BASE.slice();
  special[delimiter[0]] = 1;
  return special;
}

const INSERT_MODIFIERS = new Set(['INTO', 'IGNORE', 'LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY']);
/** CREATE … <one of these>: not a table or view; nothing to learn from the statement. */
const CREATE_OTHER = new Set([
  'TRIGGER',
  'FUNCTION',
  'PROCEDURE',
  'EVENT',
  'DATABASE',
  'SCHEMA',
  'INDEX',
  'UNIQUE',
  'FULLTEXT',
  'SPATIAL',
  'SEQUENCE',
  'USER',
  'ROLE',
  'SERVER',
  'TABLESPACE',
  'PACKAGE',
  'AGGREGATE',
  'LOGFILE',
  'RESOURCE',
  'SPATIAL_REFERENCE_SYSTEM',
  'SYNONYM',
]);
/** Words after CREATE worth looking past before giving up on finding TABLE or VIEW. */
const CREATE_MAX_WORDS = 40;

/** Longest name kept (MySQL names are at most 64 characters, 256 bytes in utf8mb4). */
const NAME_CAP = 1024;
/** Longest word compared with keywords. */
const WORD_CAP = 32;
/** Longest DELIMITER line kept. */
const DELIMITER_LINE_CAP = 64;
/** Bytes at the start searched for the dump header. */
const HEADER_SNIFF = 4096;
/** Bytes at the end kept to find the "Dump completed" trailer. */
const TAIL_KEEP = 128;

const HEADER_RE = /(?:^|\n)-- (?:MySQL|MariaDB) dump /;
const TRAILER_RE = /(?:^|\n)-- Dump completed[^\n]*\n?\s*$/;

interface TableSlot {
  rows: number;
  /** sha256 of the rows' bytes as the dump writes them, joined by ",". */
  hash: Hash;
}

/** The start of a CREATE / SETVAL statement kept to read its kind, name and DEFINER; the rest is hashed as it passes. */
const CAPTURE_HEAD = 4096;
const EMPTY = Buffer.alloc(0);
const COMMA = Buffer.from(',');
/** Row bytes gathered before one update() of a table's digest (see MysqlDumpRowCounter.#stage). */
const STAGE_BYTES = 64 * 1024;
/** "-- Host: 127.0.0.1    Database: shop": the dumped database's name. */
const DATABASE_RE = /(?:^|\n)-- Host: [^\n]*?Database: ([^\n]*)\n/;

/** Kinds of CREATE statements that share one namespace: a view's placeholder table is replaced by the view. */
const RELATIONS = new Set(['TABLE', 'VIEW', 'SEQUENCE']);
const CREATE_KINDS = new Set(['TABLE', 'VIEW', 'SEQUENCE', 'TRIGGER', 'FUNCTION', 'PROCEDURE', 'EVENT', 'PACKAGE', 'INDEX', 'SERVER']);

/**
 * The kind and name of a CREATE statement's text ("CREATE*\/ /*!50017 DEFINER=`u`@`h`*\/
 * /*!50003 TRIGGER `t` …"), or null when it names nothing this knows.
 */
export function createdObject(text: string): { kind: string; name: string } | null {
  const token = /\/\*M?!\d*|\*\/|`((?:[^`]|``)*)`|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|([A-Za-z0-9_$\x80-\uffff]+)|(\.)|(\S)/gy;
  let kind: string | null = null;
  let afterKind = 0;
  let name: string | null = null;
  let expectPart = false;
  for (let m = token.exec(text); m !== null; m = token.exec(text)) {
    // The regex is sticky (each token where the last ended): step over the whitespace between tokens.
    while (/\s/.test(text[token.lastIndex] ?? '')) token.lastIndex++;
    const [, quoted, word, dot] = m;
    if (kind === null) {
      if (word !== undefined && CREATE_KINDS.has(word.toUpperCase())) kind = word.toUpperCase();
      continue;
    }
    afterKind++;
    if (name === null && word !== undefined && ['IF', 'NOT', 'EXISTS'].includes(word.toUpperCase()) && afterKind <= 3) continue;
    if (m[0].startsWith('/*') || m[0] === '*/') continue;
    if (name === null || expectPart) {
      if (quoted !== undefined) name = quoted.replace(/``/g, '`');
      else if (word !== undefined) name = word;
      else break;
      expectPart = false;
      continue;
    }
    if (dot !== undefined) {
      expectPart = true;
      continue;
    }
    break;
  }
  return kind !== null && name !== null ? { kind, name } : null;
}

/**
 * A pass-through stage that counts the rows of every table in a mysqldump /
 * mariadb-dump SQL stream as it flows through it, bytes unchanged.
 */
export class MysqlDumpRowCounter extends Transform {
  readonly #newHash: () => Hash;
  #tables = new Map<string, TableSlot>();
  #reason: string | null = null;
  #failed = false;
  #finished = false;

  #lex: Lex = Lex.Code;
  #stmt: Stmt = Stmt.Start;
  /** Inside a /*! … *\/ conditional comment (its content is code). */
  #inCond = false;

  #delimiter: Buffer = Buffer.from(';');
  /** How many bytes of the delimiter the last bytes of code matched. */
  #delimMatched = 0;
  /** SPECIAL_BASE plus the delimiter's first byte. */
  #special = specialFor(this.#delimiter);

  #word = Buffer.alloc(WORD_CAP);
  #wordLen = 0;
  #inWord = false;
  /** The current word again, kept up to NAME_CAP bytes: it may be an unquoted name. */
  #bareName = Buffer.alloc(NAME_CAP);
  #bareLen = 0;

  #ident = Buffer.alloc(NAME_CAP);
  #identLen = 0;
  #identOverflow = false;

  #rawLine = Buffer.alloc(DELIMITER_LINE_CAP);
  #rawLen = 0;

  /** Name read by the current INSERT / CREATE / DROP (null: too long to keep). */
  #name: string | null = null;
  #createKind: 'table' | 'view' = 'table';
  #createWords = 0;
  #slot: TableSlot | null = null;
  #depth = 0;
  /** In VALUES at depth 0: true while a "(" may start the next row (start, or after a comma). */
  #expectRow = true;

  #head: Buffer[] = [];
  #headLen = 0;
  #headChecked = false;
  /** The dumped database's name (from the header), as a qualifier `name`. to leave out of digests. */
  #dbQualifier: Buffer | null = null;

  /** The chunk being scanned, and the index of the byte #code is looking at. */
  #buf: Buffer = Buffer.alloc(0);
  #at = 0;

  // The open run of row bytes not hashed yet: from #regionFrom in #buf, into #regionSlot.
  #regionSlot: TableSlot | null = null;
  #regionFrom = 0;
  /** Index in #buf just after the last row's ")" (-1: no row ended in this chunk). */
  #rowEnd = -1;

  // The CREATE / SETVAL statement being digested: its bytes from #captureFrom in #buf go
  // through a hold-back of the delimiter's length (the last bytes may be the delimiter),
  // then a filter that drops the dumped database's qualifier (#capturePending: bytes that
  // may be its start), then into the head (first CAPTURE_HEAD bytes), then the hash.
  #capturing = false;
  #captureFrom = 0;
  #captureHold: Buffer = EMPTY;
  #captureHoldLen = 1;
  #capturePending: Buffer = EMPTY;
  #captureHead: Buffer | null = null;
  #captureHeadLen = 0;
  #captureHash: Hash | null = null;
  /** Inventory by kind class and name: the last definition of a name wins. */
  #objects = new Map<string, InventoryEntry>();
  #contents: DumpContents | null = null;
  /**
   * Row bytes on their way into a table's digest (#stageSlot's). mariadb-dump writes one row
   * per line ("),\n("), so the runs of row bytes are single rows; hashing each with its own
   * update() calls (and a Buffer view each) cost more than the hashing itself. They are
   * gathered here and hashed in large updates: the same bytes in the same order.
   */
  #stage = Buffer.allocUnsafe(STAGE_BYTES);
  #stageLen = 0;
  #stageSlot: TableSlot | null = null;
  #tail: Buffer = Buffer.alloc(0);
  #peakRetained = 0;

  constructor(options: ReaderOptions = {}) {
    super();
    this.#newHash = options.digests === false ? noDigest : () => createHash('sha256');
  }

  /** Rows per table (bare names), once the whole dump has passed; else null (see reason()). */
  counts(): Record<string, number> | null {
    if (!this.#finished || this.#failed) return null;
    const counts: Record<string, number> = {};
    for (const [name, slot] of this.#tables) counts[name] = slot.rows;
    return counts;
  }

  /** Why counts() is null; null when counts are available. */
  reason(): string | null {
    if (this.#failed) return this.#reason;
    return this.#finished ? null : 'the dump has not been read to its end yet';
  }

  /**
   * What the dump holds, once it has passed whole: every table with its rows and the
   * sha256 of its row data, and the inventory of the other objects. Null when counts() is.
   */
  contents(): DumpContents | null {
    if (!this.#finished || this.#failed) return null;
    if (this.#contents === null) {
      this.#flushStage();
      this.#contents = {
        format: 'strongbox-contents/1',
        engine: 'mysql',
        tables: [...this.#tables].map(([table, slot]) => ({ schema: null, table, rows: slot.rows, sha256: slot.hash.digest('hex') })),
        objects: [...this.#objects.values()],
        large_objects: null,
      };
    }
    return this.#contents;
  }

  /** Bytes the parser holds (fixed buffers, the header/trailer windows, the DDL statement being kept), for tests and diagnostics. */
  get retainedBytes(): number {
    return (
      this.#word.length + this.#bareName.length + this.#ident.length + this.#rawLine.length + this.#headLen + this.#tail.length +
      (this.#capturing ? this.#captureHeadLen + this.#captureHold.length + this.#capturePending.length : 0)
    );
  }

  /** The most `retainedBytes` has been at the end of any input chunk. */
  get peakRetainedBytes(): number {
    return this.#peakRetained;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#failed) {
      try {
        this.#sniff(chunk);
        if (!this.#failed) this.#scan(chunk);
      } catch (err) {
        this.#fail(`dump reader failed: ${(err as Error).message}`);
      }
      this.#peakRetained = Math.max(this.#peakRetained, this.retainedBytes);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#finished = true;
    if (!this.#failed) {
      try {
        this.#finish();
      } catch (err) {
        this.#fail(`dump reader failed: ${(err as Error).message}`);
      }
    }
    callback();
  }

  #fail(reason: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#reason = reason;
    this.#head = [];
    this.#headLen = 0;
    this.#tables.clear();
    this.#objects.clear();
    this.#capturing = false;
    this.#captureHash = null;
    this.#regionSlot = null;
    this.#stageLen = 0;
    this.#stageSlot = null;
  }

  // ---- header and trailer ----------------------------------------------------------

  #sniff(chunk: Buffer): void {
    if (!this.#headChecked) {
      const take = Math.min(chunk.length, HEADER_SNIFF - this.#headLen);
      this.#head.push(Buffer.from(chunk.subarray(0, take)));
      this.#headLen += take;
      // The name is needed before the first CREATE statement ends, which may be within the sniffed bytes.
      if (this.#dbQualifier === null && take > 0) {
        const m = DATABASE_RE.exec(Buffer.concat(this.#head).toString('utf8'));
        if (m) this.#dbQualifier = Buffer.from('`' + m[1].replace(/`/g, '``') + '`.', 'utf8');
      }
      if (this.#headLen >= HEADER_SNIFF) this.#checkHeader();
    }
    if (chunk.length >= TAIL_KEEP) {
      this.#tail = Buffer.from(chunk.subarray(chunk.length - TAIL_KEEP));
    } else {
      const joined = Buffer.concat([this.#tail, chunk]);
      this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - TAIL_KEEP)));
    }
  }

  #checkHeader(): void {
    this.#headChecked = true;
    const head = Buffer.concat(this.#head).toString('latin1');
    this.#head = [];
    this.#headLen = 0;
    if (!HEADER_RE.test(head)) this.#fail('not a mysqldump / mariadb-dump stream (no "-- MySQL dump" or "-- MariaDB dump" header)');
  }

  #finish(): void {
    if (!this.#headChecked) this.#checkHeader();
    if (this.#failed) return;
    // Tokens the end of input completes.
    switch (this.#lex) {
      case Lex.SingleQuote:
      case Lex.DoubleQuote:
      case Lex.CondVersion:
        this.#lex = Lex.Code;
        break;
      case Lex.BacktickQuote:
        this.#lex = Lex.Code;
        this.#onIdent();
        break;
      case Lex.Slash:
      case Lex.Dash:
      case Lex.CondStar:
      case Lex.Backslash:
        this.#lex = Lex.Code;
        this.#onPunct(0);
        break;
      case Lex.DashDash:
        this.#lex = Lex.LineComment;
        break;
      case Lex.RawLine:
        this.#endRawLine();
        break;
      default:
        break;
    }
    if (this.#inWord) this.#endWord();
    if (this.#lex !== Lex.Code && this.#lex !== Lex.LineComment) {
      return this.#fail('the dump ended inside a string, identifier or comment (truncated?)');
    }
    if (this.#inCond) return this.#fail('the dump ended inside a /*! … */ comment (truncated?)');
    if (this.#stmt !== Stmt.Start || this.#delimMatched > 0) {
      return this.#fail('the dump ended in the middle of a statement (truncated?)');
    }
    if (!TRAILER_RE.test(this.#tail.toString('latin1'))) {
      this.#fail('the dump has no "-- Dump completed" trailer (truncated, or made with --skip-comments)');
    }
  }

  // ---- lexer -----------------------------------------------------------------------

  #scan(buf: Buffer): void {
    this.#buf = buf;
    this.#rowEnd = -1;
    // A row or statement still open from the last chunk goes on from this chunk's start.
    this.#regionFrom = 0;
    this.#captureFrom = 0;
    this.#scanChunk(buf);
    this.#endChunk(buf);
  }

  /** The end of an input chunk: hash the open row bytes, keep the open statement's bytes. */
  #endChunk(buf: Buffer): void {
    if (this.#regionSlot !== null) {
      if (this.#stmt === Stmt.Values && this.#depth > 0) {
        if (buf.length > this.#regionFrom) this.#digest(this.#regionSlot, buf, this.#regionFrom, buf.length);
      } else {
        this.#closeRegion();
      }
    }
    if (this.#capturing && buf.length > this.#captureFrom) this.#captureAppend(buf.subarray(this.#captureFrom, buf.length));
  }

  #scanChunk(buf: Buffer): void {
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      switch (this.#lex) {
        case Lex.Code: {
          const stmt = this.#stmt;
          if (
            this.#delimMatched === 0 &&
            !this.#inWord &&
            (stmt === Stmt.Skip || stmt === Stmt.InsertColumns || (stmt === Stmt.Values && this.#depth > 0))
          ) {
            pos = this.#scanBulk(buf, pos, end);
            if (pos >= end || this.#lex !== Lex.Code) break;
          }
          this.#at = pos;
          this.#code(buf[pos++]);
          break;
        }
        case Lex.Single:
        case Lex.Double: {
          const quote = this.#lex === Lex.Single ? 0x27 : 0x22;
          let b = 0;
          while (pos < end) {
            b = buf[pos];
            if (b === quote || b === 0x5c) break;
            pos++;
          }
          if (pos >= end) return;
          pos++;
          if (b === 0x5c) this.#lex = quote === 0x27 ? Lex.SingleEscape : Lex.DoubleEscape;
          else this.#lex = quote === 0x27 ? Lex.SingleQuote : Lex.DoubleQuote;
          break;
        }
        case Lex.SingleEscape:
          pos++;
          this.#lex = Lex.Single;
          break;
        case Lex.DoubleEscape:
          pos++;
          this.#lex = Lex.Double;
          break;
        case Lex.SingleQuote:
          // '' inside '…' is a quote; anything else ends the string (and is code).
          if (buf[pos] === 0x27) {
            pos++;
            this.#lex = Lex.Single;
          } else {
            this.#lex = Lex.Code;
          }
          break;
        case Lex.DoubleQuote:
          if (buf[pos] === 0x22) {
            pos++;
            this.#lex = Lex.Double;
          } else {
            this.#lex = Lex.Code;
          }
          break;
        case Lex.Backtick: {
          const start = pos;
          while (pos < end && buf[pos] !== 0x60) pos++;
          this.#identAppend(buf, start, pos);
          if (pos >= end) return;
          pos++;
          this.#lex = Lex.BacktickQuote;
          break;
        }
        case Lex.BacktickQuote:
          if (buf[pos] === 0x60) {
            this.#identAppend(buf, pos, pos + 1);
            pos++;
            this.#lex = Lex.Backtick;
          } else {
            this.#lex = Lex.Code;
            this.#onIdent();
          }
          break;
        case Lex.LineComment: {
          const nl = buf.indexOf(0x0a, pos);
          if (nl === -1) return;
          pos = nl + 1;
          this.#lex = Lex.Code;
          break;
        }
        case Lex.BlockComment: {
          const star = buf.indexOf(0x2a, pos);
          if (star === -1) return;
          pos = star + 1;
          this.#lex = Lex.BlockStar;
          break;
        }
        case Lex.BlockStar: {
          const b = buf[pos++];
          if (b === 0x2f) this.#lex = Lex.Code;
          else if (b !== 0x2a) this.#lex = Lex.BlockComment;
          break;
        }
        case Lex.Slash:
          if (buf[pos] === 0x2a) {
            pos++;
            this.#lex = Lex.SlashStar;
          } else {
            this.#lex = Lex.Code;
            this.#onPunct(0x2f);
          }
          break;
        case Lex.SlashStar: {
          const b = buf[pos];
          if (b === 0x21 && !this.#inCond) {
            pos++;
            this.#inCond = true;
            this.#lex = Lex.CondVersion;
          } else if (b === 0x4d && !this.#inCond) {
            pos++;
            this.#lex = Lex.SlashStarM;
          } else {
            this.#lex = Lex.BlockComment;
          }
          break;
        }
        case Lex.SlashStarM:
          if (buf[pos] === 0x21) {
            pos++;
            this.#inCond = true;
            this.#lex = Lex.CondVersion;
          } else {
            this.#lex = Lex.BlockComment;
          }
          break;
        case Lex.CondVersion: {
          const b = buf[pos];
          if (b >= 0x30 && b <= 0x39) pos++;
          else this.#lex = Lex.Code;
          break;
        }
        case Lex.Dash:
          if (buf[pos] === 0x2d) {
            pos++;
            this.#lex = Lex.DashDash;
          } else {
            this.#lex = Lex.Code;
            this.#onPunct(0x2d);
          }
          break;
        case Lex.DashDash: {
          // "--" starts a comment only when whitespace or a control character follows.
          const b = buf[pos];
          if (b <= 0x20) {
            pos++;
            this.#lex = b === 0x0a ? Lex.Code : Lex.LineComment;
          } else {
            this.#lex = Lex.Code;
            this.#onPunct(0x2d);
            this.#onPunct(0x2d);
          }
          break;
        }
        case Lex.CondStar:
          if (buf[pos] === 0x2f) {
            pos++;
            this.#inCond = false;
            this.#lex = Lex.Code;
          } else {
            this.#lex = Lex.Code;
            this.#onPunct(0x2a);
          }
          break;
        case Lex.Backslash: {
          // A mysql client command outside strings: \g and \G end a statement, \d sets
          // the delimiter; the rest (mariadb-dump writes \- for its sandbox mode) are
          // nothing to a statement.
          this.#at = pos;
          const b = buf[pos++];
          this.#lex = Lex.Code;
          if (b === 0x67 || b === 0x47) this.#endStatement();
          else if (b === 0x64) this.#startRawLine();
          break;
        }
        case Lex.RawLine: {
          const b = buf[pos++];
          if (b === 0x0a) this.#endRawLine();
          else if (this.#rawLen < DELIMITER_LINE_CAP) this.#rawLine[this.#rawLen++] = b;
          else this.#rawLen = DELIMITER_LINE_CAP + 1;
          break;
        }
      }
    }
  }

  /**
   * The fast path where words do not matter (the rest of a statement, the inside of a
   * row's parentheses): skips ordinary bytes and whole strings, tracks the depth of
   * parentheses in VALUES, and stops at the first byte the general path must see (or
   * leaves the lexer inside a string when the chunk ends in one).
   */
  #scanBulk(buf: Buffer, pos: number, end: number): number {
    const special = this.#special;
    const inValues = this.#stmt === Stmt.Values;
    let depth = this.#depth;
    while (pos < end) {
      while (pos < end && special[buf[pos]] === 0) pos++;
      if (pos >= end) break;
      const b = buf[pos];
      if (b === 0x27 || b === 0x22) {
        pos++;
        for (;;) {
          pos = stringStop(buf, pos, end, b);
          if (pos >= end) {
            this.#lex = b === 0x27 ? Lex.Single : Lex.Double;
            this.#depth = depth;
            return end;
          }
          if (buf[pos] === 0x5c) {
            if (pos + 1 >= end) {
              this.#lex = b === 0x27 ? Lex.SingleEscape : Lex.DoubleEscape;
              this.#depth = depth;
              return end;
            }
            pos += 2;
            continue;
          }
          // A quote: doubled, it is part of the string; else the string ends.
          if (pos + 1 >= end) {
            this.#lex = b === 0x27 ? Lex.SingleQuote : Lex.DoubleQuote;
            this.#depth = depth;
            return end;
          }
          if (buf[pos + 1] === b) {
            pos += 2;
            continue;
          }
          pos++;
          break;
        }
        continue;
      }
      if (inValues) {
        if (b === 0x28) {
          depth++;
          pos++;
          continue;
        }
        if (b === 0x29) {
          depth--;
          pos++;
          if (depth === 0) {
            this.#rowEnd = pos;
            // The next row right after this one ("),(" or "),\n(", as mariadb-dump writes
            // them): started here, as the general path would start it, without the three
            // trips through it that the comma, the newline and the parenthesis would take.
            const next = buf[pos + 1] === 0x28 ? pos + 1 : buf[pos + 1] === 0x0a && buf[pos + 2] === 0x28 ? pos + 2 : -1;
            if (buf[pos] !== 0x2c || next === -1 || next >= end) break;
            this.#at = next;
            this.#rowStart(this.#slot!);
            this.#slot!.rows++;
            depth = 1;
            pos = next + 1;
          }
          continue;
        }
      }
      break;
    }
    this.#depth = depth;
    return pos;
  }

  /** One byte of code (outside strings and comments). */
  #code(b: number): void {
    // The delimiter comes first, as in the mysql client.
    const delimiter = this.#delimiter;
    if (b === delimiter[this.#delimMatched]) {
      if (this.#inWord) this.#endWord();
      if (++this.#delimMatched === delimiter.length) {
        this.#delimMatched = 0;
        this.#endStatement();
      }
      return;
    }
    if (this.#delimMatched > 0) {
      // What looked like the start of the delimiter was ordinary code.
      for (let i = 0; i < this.#delimMatched; i++) this.#onPunct(delimiter[i]);
      this.#delimMatched = 0;
      if (b === delimiter[0]) {
        this.#delimMatched = 1;
        return;
      }
    }
    const cls = CLASS[b];
    if (cls === C_WORD) {
      this.#wordAppend(b);
      return;
    }
    if (this.#inWord) {
      this.#endWord();
      if (this.#lex === Lex.RawLine) {
        // DELIMITER: the rest of the line is its argument.
        if (b === 0x0a) this.#endRawLine();
        return;
      }
    }
    if (cls === C_SPACE) return;
    switch (b) {
      case 0x27: // '
        this.#lex = Lex.Single;
        this.#onLiteral();
        return;
      case 0x22: // "
        this.#lex = Lex.Double;
        this.#onLiteral();
        return;
      case 0x60: // `
        this.#lex = Lex.Backtick;
        this.#identLen = 0;
        this.#identOverflow = false;
        return;
      case 0x2f: // /
        this.#lex = Lex.Slash;
        return;
      case 0x2d: // -
        this.#lex = Lex.Dash;
        return;
      case 0x23: // #
        this.#lex = Lex.LineComment;
        return;
      case 0x5c: // \
        this.#lex = Lex.Backslash;
        return;
      case 0x2a: // *
        if (this.#inCond) {
          this.#lex = Lex.CondStar;
          return;
        }
        break;
      default:
        break;
    }
    this.#onPunct(b);
  }

  #wordAppend(b: number): void {
    if (!this.#inWord) {
      // Words matter only where a statement's shape is still being read.
      const stmt = this.#stmt;
      if (stmt === Stmt.Skip || stmt === Stmt.InsertColumns || (stmt === Stmt.Values && this.#depth > 0)) return;
      this.#inWord = true;
      this.#wordLen = 0;
      this.#bareLen = 0;
    }
    if (this.#wordLen < WORD_CAP) this.#word[this.#wordLen++] = b;
    else this.#wordLen = WORD_CAP + 1;
    if (this.#bareLen < NAME_CAP) this.#bareName[this.#bareLen++] = b;
    else this.#bareLen = NAME_CAP + 1;
  }

  #endWord(): void {
    this.#inWord = false;
    const keyword = this.#wordLen <= WORD_CAP ? this.#word.toString('latin1', 0, this.#wordLen).toUpperCase() : '';
    const name = this.#bareLen <= NAME_CAP ? this.#bareName.toString('utf8', 0, this.#bareLen) : null;
    this.#onWord(keyword, name);
  }

  #identAppend(buf: Buffer, start: number, stop: number): void {
    const n = Math.min(stop - start, NAME_CAP - this.#identLen);
    if (n > 0) {
      buf.copy(this.#ident, this.#identLen, start, start + n);
      this.#identLen += n;
    }
    if (n < stop - start) this.#identOverflow = true;
  }

  #startRawLine(): void {
    this.#lex = Lex.RawLine;
    this.#rawLen = 0;
  }

  #endRawLine(): void {
    this.#lex = Lex.Code;
    if (this.#rawLen <= DELIMITER_LINE_CAP) {
      const arg = this.#rawLine.toString('latin1', 0, this.#rawLen).trim().split(/\s+/)[0];
      if (arg) {
        this.#delimiter = Buffer.from(arg, 'latin1');
        this.#special = specialFor(this.#delimiter);
      }
    } else {
      this.#fail('DELIMITER line too long');
    }
    this.#delimMatched = 0;
    this.#stmt = Stmt.Start;
  }

  // ---- statements ------------------------------------------------------------------

  #slotFor(name: string): TableSlot {
    let slot = this.#tables.get(name);
    if (!slot) {
      slot = { rows: 0, hash: this.#newHash() };
      this.#tables.set(name, slot);
    }
    return slot;
  }

  // ---- row digests -----------------------------------------------------------------

  /** A row's "(" at #at: hash it with the rows before it, joined by ",". */
  #rowStart(slot: TableSlot): void {
    const at = this.#at;
    const buf = this.#buf;
    // "),(" in one chunk: the run goes on, its "," included.
    if (this.#regionSlot === slot && this.#rowEnd !== -1 && at === this.#rowEnd + 1 && buf[this.#rowEnd] === 0x2c) return;
    this.#closeRegion();
    if (slot.rows > 0) this.#digest(slot, COMMA, 0, 1);
    this.#regionSlot = slot;
    this.#regionFrom = at;
  }

  /** Hash the run of rows up to the last ")" seen, and close it. */
  #closeRegion(): void {
    const slot = this.#regionSlot;
    if (slot === null) return;
    if (this.#rowEnd > this.#regionFrom) this.#digest(slot, this.#buf, this.#regionFrom, this.#rowEnd);
    this.#regionSlot = null;
  }

  /** buf[from, end) into `slot`'s digest, through the staging buffer. */
  #digest(slot: TableSlot, buf: Buffer, from: number, end: number): void {
    if (slot !== this.#stageSlot) {
      this.#flushStage();
      this.#stageSlot = slot;
    }
    const n = end - from;
    if (this.#stageLen + n > STAGE_BYTES) {
      this.#flushStage();
      if (n > STAGE_BYTES / 2) {
        slot.hash.update(buf.subarray(from, end));
        return;
      }
    }
    if (n === 1) this.#stage[this.#stageLen] = buf[from];
    else buf.copy(this.#stage, this.#stageLen, from, end);
    this.#stageLen += n;
  }

  /** Hash what the staging buffer holds. */
  #flushStage(): void {
    if (this.#stageLen > 0) this.#stageSlot!.hash.update(this.#stage.subarray(0, this.#stageLen));
    this.#stageLen = 0;
  }

  // ---- inventory -------------------------------------------------------------------

  /** Digest the statement that starts with `keyword` (just read; #at is the byte after it). */
  #startCapture(keyword: string): void {
    this.#capturing = true;
    this.#captureFrom = this.#at;
    this.#captureHold = EMPTY;
    this.#captureHoldLen = this.#delimiter.length;
    this.#capturePending = EMPTY;
    this.#captureHead ??= Buffer.alloc(CAPTURE_HEAD);
    this.#captureHeadLen = 0;
    this.#captureHash = null;
    this.#captureAppend(Buffer.from(keyword, 'latin1'));
  }

  /** More bytes of the statement; the last ones are held back, as they may be its delimiter. */
  #captureAppend(part: Buffer): void {
    const data = this.#captureHold.length ? Buffer.concat([this.#captureHold, part]) : part;
    const hold = Math.min(this.#captureHoldLen, data.length);
    this.#captureHold = Buffer.from(data.subarray(data.length - hold));
    if (data.length > hold) this.#captureFilter(data.subarray(0, data.length - hold));
  }

  /** Drop every occurrence of the dumped database's qualifier, even one cut across chunks. */
  #captureFilter(part: Buffer): void {
    const q = this.#dbQualifier;
    if (q === null) return this.#captureOut(part);
    const data = this.#capturePending.length ? Buffer.concat([this.#capturePending, part]) : part;
    let from = 0;
    for (let at = data.indexOf(q); at !== -1; at = data.indexOf(q, from)) {
      if (at > from) this.#captureOut(data.subarray(from, at));
      from = at + q.length;
    }
    // The longest end of the data that could begin the qualifier waits for more bytes.
    let keep = 0;
    for (let k = Math.min(q.length - 1, data.length - from); k > 0; k--) {
      if (data.subarray(data.length - k).equals(q.subarray(0, k))) {
        keep = k;
        break;
      }
    }
    if (data.length - keep > from) this.#captureOut(data.subarray(from, data.length - keep));
    this.#capturePending = Buffer.from(data.subarray(data.length - keep));
  }

  /** Filtered bytes: into the head while it has room, then into the hash. */
  #captureOut(data: Buffer): void {
    if (this.#captureHash === null) {
      const n = Math.min(data.length, CAPTURE_HEAD - this.#captureHeadLen);
      data.copy(this.#captureHead!, this.#captureHeadLen, 0, n);
      this.#captureHeadLen += n;
      if (n === data.length) return;
      this.#captureHeadDone();
      data = data.subarray(n);
    }
    this.#captureHash!.update(data);
  }

  /** The head is complete: it starts the digest, without its DEFINER clause. */
  #captureHeadDone(): void {
    this.#captureHash = createHash('sha256').update(withoutDefiner(this.#captureHead!.subarray(0, this.#captureHeadLen)));
  }

  /** The statement ended at #at (its delimiter's last byte): record it. */
  #endCapture(): void {
    if (!this.#capturing) return;
    if (this.#at + 1 > this.#captureFrom) this.#captureAppend(this.#buf.subarray(this.#captureFrom, this.#at + 1));
    // What is held back now is the delimiter; what may have begun the qualifier was not it.
    if (this.#capturePending.length) this.#captureOut(this.#capturePending);
    if (this.#captureHash === null) this.#captureHeadDone();
    const sha256 = this.#captureHash!.digest('hex');
    const head = this.#captureHead!.toString('utf8', 0, this.#captureHeadLen);
    this.#capturing = false;
    this.#captureHash = null;
    this.#captureHold = EMPTY;
    this.#capturePending = EMPTY;
    const setval = /^(?:DO|SELECT)\s+SETVAL\s*\(\s*(?:`((?:[^`]|``)*)`|([A-Za-z0-9_$]+))/i.exec(head);
    if (setval) {
      const name = setval[1] !== undefined ? setval[1].replace(/``/g, '`') : setval[2];
      this.#objects.set(`SEQUENCE SET\0${name}`, { kind: 'SEQUENCE SET', schema: null, name, sha256 });
      return;
    }
    if (!/^CREATE\b/i.test(head)) return;
    const object = createdObject(head);
    if (object === null) return;
    const space = RELATIONS.has(object.kind) ? 'relation' : object.kind;
    this.#objects.set(`${space}\0${object.name}`, { kind: object.kind, schema: null, name: object.name, sha256 });
  }

  /** A statement that named a table ended (or moved past the name). */
  #finishName(): void {
    const name = this.#name;
    this.#name = null;
    switch (this.#stmt) {
      case Stmt.CreateAfterName:
        if (name === null) return this.#fail('CREATE statement with an overlong name');
        if (this.#createKind === 'table') this.#slotFor(name);
        else this.#tables.delete(name);
        break;
      case Stmt.DropAfterName:
        if (name === null) return this.#fail('DROP TABLE statement with an overlong name');
        this.#tables.delete(name);
        break;
      default:
        break;
    }
  }

  #endStatement(): void {
    if (this.#inWord) this.#endWord();
    this.#finishName();
    this.#closeRegion();
    this.#endCapture();
    this.#stmt = Stmt.Start;
    this.#slot = null;
    this.#depth = 0;
  }

  #onWord(keyword: string, name: string | null): void {
    switch (this.#stmt) {
      case Stmt.Start:
        if ((keyword === 'INSERT' || keyword === 'REPLACE') && this.#delimiter.length === 1 && this.#delimiter[0] === 0x3b) {
          this.#stmt = Stmt.InsertHead;
        } else if (keyword === 'CREATE') {
          this.#stmt = Stmt.CreateHead;
          this.#createWords = 0;
          this.#startCapture('CREATE');
        } else if (keyword === 'DROP') {
          this.#stmt = Stmt.DropHead;
        } else if (keyword === 'DELIMITER') {
          this.#stmt = Stmt.Skip;
          this.#startRawLine();
        } else {
          // DO SETVAL(`s`, 5, 0): a sequence's value (SELECT SETVAL in older dumps).
          if (keyword === 'DO' || keyword === 'SELECT') this.#startCapture(keyword);
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.InsertHead:
        if (!INSERT_MODIFIERS.has(keyword)) {
          this.#name = name;
          this.#stmt = Stmt.InsertAfterName;
        }
        break;
      case Stmt.InsertQualified:
        this.#name = name;
        this.#stmt = Stmt.InsertAfterName;
        break;
      case Stmt.InsertAfterName:
        if (keyword === 'VALUES' || keyword === 'VALUE') {
          if (this.#name === null) return this.#fail('INSERT with an overlong table name');
          this.#slot = this.#slotFor(this.#name);
          this.#stmt = Stmt.Values;
          this.#depth = 0;
          this.#expectRow = true;
        } else if (keyword === 'SET') {
          // INSERT … SET col = value: one row.
          if (this.#name === null) return this.#fail('INSERT with an overlong table name');
          this.#slotFor(this.#name).rows++;
          this.#stmt = Stmt.Skip;
        } else {
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.Values:
        // A word after the rows (ON DUPLICATE KEY UPDATE …): the rows are done.
        this.#stmt = Stmt.Skip;
        break;
      case Stmt.CreateHead:
        if (keyword === 'TABLE' || keyword === 'VIEW') {
          this.#createKind = keyword === 'TABLE' ? 'table' : 'view';
          this.#stmt = Stmt.CreateName;
        } else if (CREATE_OTHER.has(keyword) || ++this.#createWords > CREATE_MAX_WORDS) {
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.CreateName:
        if (keyword !== 'IF' && keyword !== 'NOT' && keyword !== 'EXISTS') {
          this.#name = name;
          this.#stmt = Stmt.CreateAfterName;
        }
        break;
      case Stmt.CreateQualified:
        this.#name = name;
        this.#stmt = Stmt.CreateAfterName;
        break;
      case Stmt.CreateAfterName:
        this.#finishName();
        this.#stmt = Stmt.Skip;
        break;
      case Stmt.DropHead:
        // DROP TEMPORARY TABLE drops no base table: it falls into Skip like DROP VIEW.
        this.#stmt = keyword === 'TABLE' || keyword === 'TABLES' ? Stmt.DropNames : Stmt.Skip;
        break;
      case Stmt.DropNames:
        if (keyword !== 'IF' && keyword !== 'EXISTS') {
          this.#name = name;
          this.#stmt = Stmt.DropAfterName;
        }
        break;
      case Stmt.DropQualified:
        this.#name = name;
        this.#stmt = Stmt.DropAfterName;
        break;
      case Stmt.DropAfterName:
        this.#finishName();
        this.#stmt = Stmt.Skip;
        break;
      default:
        break;
    }
  }

  #onIdent(): void {
    const name = this.#identOverflow ? null : this.#ident.toString('utf8', 0, this.#identLen);
    switch (this.#stmt) {
      case Stmt.InsertHead:
      case Stmt.InsertQualified:
        this.#name = name;
        this.#stmt = Stmt.InsertAfterName;
        break;
      case Stmt.CreateName:
      case Stmt.CreateQualified:
        this.#name = name;
        this.#stmt = Stmt.CreateAfterName;
        break;
      case Stmt.DropNames:
      case Stmt.DropQualified:
        this.#name = name;
        this.#stmt = Stmt.DropAfterName;
        break;
      case Stmt.CreateAfterName:
      case Stmt.DropAfterName:
        this.#finishName();
        this.#stmt = Stmt.Skip;
        break;
      case Stmt.Start:
      case Stmt.InsertAfterName:
      case Stmt.DropHead:
        this.#stmt = Stmt.Skip;
        break;
      case Stmt.Values:
        if (this.#depth === 0) this.#stmt = Stmt.Skip;
        break;
      default:
        // CreateHead (DEFINER=`user`@`host`), InsertColumns, Skip: nothing to learn.
        break;
    }
  }

  #onLiteral(): void {
    switch (this.#stmt) {
      case Stmt.CreateHead:
      case Stmt.InsertColumns:
      case Stmt.Skip:
        break;
      case Stmt.Values:
        if (this.#depth === 0) this.#stmt = Stmt.Skip;
        break;
      case Stmt.CreateAfterName:
      case Stmt.DropAfterName:
        this.#finishName();
        this.#stmt = Stmt.Skip;
        break;
      default:
        this.#stmt = Stmt.Skip;
        break;
    }
  }

  #onPunct(b: number): void {
    switch (this.#stmt) {
      case Stmt.Skip:
      case Stmt.CreateHead:
        break;
      case Stmt.Values:
        if (this.#depth > 0) {
          if (b === 0x28) this.#depth++;
          else if (b === 0x29 && --this.#depth === 0) this.#rowEnd = this.#at + 1;
        } else if (b === 0x28 && this.#expectRow) {
          this.#rowStart(this.#slot!);
          this.#slot!.rows++;
          this.#depth = 1;
          this.#expectRow = false;
        } else if (b === 0x2c && !this.#expectRow) {
          this.#expectRow = true;
        } else {
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.InsertColumns:
        if (b === 0x28) this.#depth++;
        else if (b === 0x29 && --this.#depth === 0) this.#stmt = Stmt.InsertAfterName;
        break;
      case Stmt.InsertAfterName:
        if (b === 0x2e) this.#stmt = Stmt.InsertQualified;
        else if (b === 0x28) {
          this.#stmt = Stmt.InsertColumns;
          this.#depth = 1;
        } else this.#stmt = Stmt.Skip;
        break;
      case Stmt.CreateAfterName:
        if (b === 0x2e) {
          this.#stmt = Stmt.CreateQualified;
        } else {
          this.#finishName();
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.DropAfterName:
        if (b === 0x2e) {
          this.#stmt = Stmt.DropQualified;
        } else if (b === 0x2c) {
          this.#finishName();
          this.#stmt = Stmt.DropNames;
        } else {
          this.#finishName();
          this.#stmt = Stmt.Skip;
        }
        break;
      case Stmt.DropNames:
        if (b !== 0x2c) this.#stmt = Stmt.Skip;
        break;
      default:
        this.#stmt = Stmt.Skip;
        break;
    }
  }
}

/** `text` without any occurrence of `qualifier` (`db`.), outside or inside strings alike. */
function withoutQualifier(text: Buffer, qualifier: Buffer): Buffer {
  let at = text.indexOf(qualifier);
  if (at === -1) return text;
  const parts: Buffer[] = [];
  let from = 0;
  while (at !== -1) {
    parts.push(text.subarray(from, at));
    from = at + qualifier.length;
    at = text.indexOf(qualifier, from);
  }
  parts.push(text.subarray(from));
  return Buffer.concat(parts);
}

/** The DEFINER=`user`@`host` clause of a CREATE statement's head (the first one only: bodies may say anything). */
const DEFINER_RE = /DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|CURRENT_USER(?:\s*\(\s*\))?|[A-Za-z0-9_$.%-]+)(?:\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[A-Za-z0-9_$.%-]+))?/i;

/** `text` without the DEFINER clause of its head, if it has one. */
function withoutDefiner(text: Buffer): Buffer {
  // latin1 maps every byte to one character and back: byte offsets stay exact.
  const head = text.toString('latin1', 0, Math.min(text.length, CAPTURE_HEAD));
  const m = DEFINER_RE.exec(head);
  if (!m) return text;
  return Buffer.concat([text.subarray(0, m.index), text.subarray(m.index + m[0].length)]);
}
