/**
 * The SQL that mariadb-binlog prints for a replay, on its way into the client:
 *
 * - The GTID of each original transaction (`SET @@session.gtid_seq_no=…`, with its
 *   `server_id` and `gtid_domain_id`) is dropped: a replay is new writes on the target
 *   server, which numbers them itself. Kept, they would be logged again under the source's
 *   numbers, out of order where the target is the source's own server (refused there under
 *   gtid_strict_mode, and confusing its replicas anywhere).
 * - A statement that names the source database explicitly is refused, and the replay
 *   stops before it. `--rewrite-db` renames the database of row events and the default
 *   database of statements, but not a name written in a statement's text: `ALTER TABLE
 *   src.t …` or `DROP DATABASE src`, replayed as written, would change the live source
 *   database. Under binlog_format = ROW only DDL is logged as statements.
 *
 * mariadb-binlog prints one event after another: comment lines (`# at 1234`, `#261130 …`),
 * statements ended by the delimiter `/*!*\/;`, and row events as `BINLOG '…'` blocks of
 * base64, which go through without being looked at.
 */
import { Transform, type TransformCallback } from 'node:stream';

const NL = 0x0a;
/** A statement longer than this is not searched (no DDL is); it is passed on as it is. */
const MAX_STATEMENT = 1 << 20;
const GTID_SETTING = /^\/\*M!\d+ SET @@session\.(?:gtid_seq_no|gtid_domain_id|server_id)=\d+\*\/\/\*!\*\/;\s*$/;

/** A statement of the binlog that would touch the source database: where it is and how it starts. */
export class SourceDatabaseStatement extends Error {
  constructor(
    readonly position: string | null,
    readonly statement: string,
    database: string,
  ) {
    super(
      `the binlog holds a statement that names the source database "${database}" explicitly${position ? ` (at position ${position})` : ''}: ${statement.replace(/\s+/g, ' ').slice(0, 200)}; replayed into a database of another name it would change "${database}" itself, so the replay stops before it (restore to an earlier time, or replay the rest by hand)`,
    );
    this.name = 'SourceDatabaseStatement';
  }
}

/**
 * Whether SQL text names database `db`: as the qualifier of a name (`db`.t, db.t) or after
 * DATABASE / SCHEMA. Strings and comments are skipped; the SQL inside MariaDB's executable
 * comments is read. Names compare case-insensitively (a false alarm stops a replay; a miss
 * would change the source).
 */
export function namesDatabase(sql: string, db: string): boolean {
  const want = db.toLowerCase();
  const tokens: Array<{ ident: string | null; text: string }> = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      i = skipQuoted(sql, i, c);
      tokens.push({ ident: null, text: 'str' });
    } else if (c === '`') {
      let j = i + 1;
      let name = '';
      while (j < n) {
        if (sql[j] === '`') {
          if (sql[j + 1] === '`') {
            name += '`';
            j += 2;
            continue;
          }
          break;
        }
        name += sql[j++];
      }
      tokens.push({ ident: name, text: name });
      i = j + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      // /*!50001 … */ and /*M!100001 … */ hold SQL: drop the marker, read the rest.
      const m = /^\/\*M?!\d*/.exec(sql.slice(i, i + 16));
      if (m) i += m[0].length;
      else {
        const end = sql.indexOf('*/', i + 2);
        i = end < 0 ? n : end + 2;
      }
    } else if (c === '*' && sql[i + 1] === '/') {
      i += 2;
    } else if (c === '#' || (c === '-' && sql[i + 1] === '-' && (sql[i + 2] === ' ' || sql[i + 2] === '\t' || sql[i + 2] === '\n'))) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (/[A-Za-z0-9_$\u0080-\uffff]/.test(c)) {
      let j = i;
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j])) j++;
      const word = sql.slice(i, j);
      tokens.push({ ident: word, text: word.toUpperCase() });
      i = j;
    } else if (/\s/.test(c)) {
      i++;
    } else {
      tokens.push({ ident: null, text: c });
      i++;
    }
  }
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.ident === null || t.ident.toLowerCase() !== want) continue;
    if (tokens[k + 1]?.text === '.') return true;
    const before = tokens[k - 1]?.text;
    if (before === 'DATABASE' || before === 'SCHEMA') return true;
    // CREATE DATABASE IF NOT EXISTS db / DROP DATABASE IF EXISTS db
    if (before === 'EXISTS' && ['DATABASE', 'SCHEMA'].some((w) => tokens.slice(Math.max(0, k - 4), k).some((x) => x.text === w))) return true;
  }
  return false;
}

function skipQuoted(sql: string, i: number, q: string): number {
  let j = i + 1;
  while (j < sql.length) {
    if (sql[j] === '\\') j += 2;
    else if (sql[j] === q) {
      if (sql[j + 1] === q) j += 2;
      else return j + 1;
    } else j++;
  }
  return j;
}

/** The replay stage: drops the GTID settings and refuses statements naming `sourceDatabase` (see the header). */
export class BinlogReplayFilter extends Transform {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Lines of the statement being read (not a BINLOG block), or null between statements. */
  private statement: string[] | null = null;
  private statementBytes = 0;
  private held: Buffer[] = [];
  private inRowEvent = false;
  private position: string | null = null;

  constructor(private readonly sourceDatabase: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NL, start);
        if (nl < 0) break;
        const piece = chunk.subarray(start, nl + 1);
        const line = this.partial.length ? Buffer.concat([...this.partial, piece]) : piece;
        this.partial = [];
        this.partialBytes = 0;
        this.line(line);
        start = nl + 1;
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        this.partialBytes += rest.length;
        // A line this long is row data (a BINLOG block is one line per 76 characters, so
        // this is a statement's value): pass it on as it is.
        if (this.partialBytes > MAX_STATEMENT) {
          this.release();
          for (const p of this.partial) this.push(p);
          this.push(rest);
          this.partial = [];
          this.partialBytes = 0;
          this.statement = null;
        } else this.partial.push(Buffer.from(rest));
      }
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.partial.length) this.line(Buffer.concat(this.partial));
      this.release();
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  private line(line: Buffer): void {
    const text = line.toString('utf8');
    if (this.inRowEvent) {
      if (/'\/\*!\*\/;\s*$/.test(text)) this.inRowEvent = false;
      this.push(line);
      return;
    }
    // Between statements: event comments, GTID settings, row events. (Inside one, a line
    // is the statement's, whatever it starts with.)
    if (this.statement === null && text.startsWith('#')) {
      const at = /^# at (\d+)/.exec(text);
      if (at) this.position = at[1];
      this.push(line);
      return;
    }
    if (this.statement === null && GTID_SETTING.test(text)) return;
    if (this.statement === null && text.startsWith("BINLOG '")) {
      if (!/'\/\*!\*\/;\s*$/.test(text)) this.inRowEvent = true;
      this.push(line);
      return;
    }
    // A statement's lines are held until it is complete and checked: the client must never
    // get part of a refused statement (it would run it at the end of its input).
    this.statement ??= [];
    this.held.push(line);
    this.statementBytes += line.length;
    if (this.statementBytes <= MAX_STATEMENT) this.statement.push(text);
    else this.release();
    if (/\/\*!\*\/;\s*$/.test(text) || /^DELIMITER /.test(text)) {
      const sql = this.statement.join('');
      if (this.statementBytes <= MAX_STATEMENT && !/^\s*(SET |use |START TRANSACTION|COMMIT|ROLLBACK|DELIMITER |\/\*!\\C )/i.test(sql) && namesDatabase(sql.replace(/\/\*!\*\/;\s*$/, ''), this.sourceDatabase)) {
        throw new SourceDatabaseStatement(this.position, sql, this.sourceDatabase);
      }
      this.release();
      this.statement = null;
      this.statementBytes = 0;
    }
  }

  /** Pass on the lines held. */
  private release(): void {
    for (const l of this.held) this.push(l);
    this.held = [];
  }
}
