/**
 * A streaming rewrite of a mariadb-dump / mysqldump SQL dump on its way into the client,
 * for a restore under another database name (and, by default, as another account).
 *
 * A dump made without `--databases` still names its source database in a few places:
 * - sequence references in column defaults: `DEFAULT nextval(`src`.`seq`)`, which would
 *   make the restored table draw numbers from the source's sequence (or fail where there
 *   is no such database);
 * - view definitions, which MariaDB writes with qualified names in some cases
 *   (`select `src`.`t`.`id` …`, `nextval(`src`.`seq`)`): the restored view would read the
 *   source's tables;
 * - `ALTER DATABASE `src` CHARACTER SET …` around each routine whose database collation
 *   differs from the database default, which would change the SOURCE database's default
 *   character set while a copy is restored next to it (or fail on another server).
 * Those references are rewritten to the target database. `LOCK TABLES` / `UNLOCK
 * TABLES` around each table's rows are dropped: a table whose default draws from a
 * sequence cannot take rows under them ("Table 'seq' was not locked with LOCK TABLES",
 * which fails the stock `mariadb-dump | mariadb` too), and InnoDB gains nothing from them.
 * With `stripDefiners`, the
 * DEFINER clauses of views, routines, triggers and events are dropped too, so that the
 * objects belong to the restoring account (PostgreSQL's `--no-owner`): the source's
 * accounts need not exist, and the restoring account needs no SET USER privilege.
 *
 * Only lines that hold DDL are looked at: a line starting with `CREATE`, `ALTER`,
 * `LOCK`, `UNLOCK` or a comment (`/*`), and the continuation lines of a CREATE TABLE
 * statement. Row data
 * (lines starting with `INSERT` or `(`) streams through untouched and unbuffered, so
 * memory stays flat however large a row is; a DDL line longer than MAX_LINE is passed
 * through as it is.
 */
import { Transform, type TransformCallback } from 'node:stream';

const NL = 0x0a;
/** A buffered DDL line longer than this is passed on unchanged (no real DDL line is). */
const MAX_LINE = 1 << 20;

export interface DumpRewriteOptions {
  /** The database the dump was taken from; null when unknown (no name is rewritten). */
  sourceDatabase: string | null;
  /** The database being restored into. */
  targetDatabase: string;
  /** Drop DEFINER clauses (objects then belong to the restoring account). */
  stripDefiners: boolean;
  /** Rounds of cycling sequences that have wrapped, to add to their SETVAL (see DatabaseProperties). */
  sequenceRounds?: Record<string, number>;
}

/** Backticks for MySQL: doubles any inside. */
function tick(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An account in a DEFINER clause: `user`@`host`, a bare `role`, or CURRENT_USER. */
const ACCOUNT = '(?:`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?|CURRENT_USER(?:\\(\\))?)';
const DEFINER_ROUTINE = new RegExp(`^CREATE DEFINER=${ACCOUNT} `);
const DEFINER_VIEW = new RegExp(`^(/\\*!\\d+ )DEFINER=${ACCOUNT} `);
const DEFINER_TRIGGER_EVENT = new RegExp(`^(/\\*!\\d+ CREATE\\*/ /\\*!\\d+ )DEFINER=${ACCOUNT}\\s*\\*/ `);
/** mariadb-dump's table locks around each table's rows, exactly as it writes them. */
const TABLE_LOCK = /^(?:LOCK TABLES `(?:[^`]|``)+` WRITE|UNLOCK TABLES);\s*$/;
/** The line of a view's definition: `/*!50001 VIEW `v` AS select … *\/;` */
const VIEW_LINE = /^\/\*!\d+ VIEW /;
/** mariadb-dump's position of a sequence: `DO SETVAL(`seq`, next, is_used);` (no round). */
const SETVAL_LINE = /^DO SETVAL\(`((?:[^`]|``)+)`, (-?\d+), ([01])\);/;

export class MysqlDumpRewriter extends Transform {
  private readonly sequenceRef: RegExp | null;
  private readonly qualifier: RegExp | null;
  private readonly alterDatabase: RegExp | null;
  private readonly target: string;
  private readonly rounds: Map<string, number> | null;
  /** The line being buffered (a DDL line), or null. */
  private line: Buffer[] | null = null;
  private lineBytes = 0;
  /** Inside a line that is passed through. */
  private midLine = false;
  /** Inside a CREATE TABLE statement (its column lines start with spaces). */
  private inCreateTable = false;

  constructor(private readonly options: DumpRewriteOptions) {
    super();
    const renames = options.sourceDatabase !== null && options.sourceDatabase !== options.targetDatabase;
    const src = renames ? escapeRegExp(tick(options.sourceDatabase!)) : null;
    this.sequenceRef = src ? new RegExp(`\\b(nextval|lastval|setval)\\(${src}\\.`, 'gi') : null;
    this.alterDatabase = src ? new RegExp(`^((?:/\\*!\\d+ )?ALTER DATABASE )${src}`, 'i') : null;
    this.qualifier = src ? new RegExp(`${src}\\.`, 'g') : null;
    this.target = tick(options.targetDatabase);
    const rounds = Object.entries(options.sequenceRounds ?? {}).filter(([, n]) => Number.isInteger(n) && n > 0);
    this.rounds = rounds.length ? new Map(rounds) : null;
  }

  /** Whether the line starting at buf[pos] is DDL worth buffering; decided by its first byte. */
  private wants(first: number): boolean {
    // 'C'REATE, 'A'LTER, 'L'OCK, 'U'NLOCK, '/'* comment, 'D'O SETVAL when a round is to
    // be added; anything inside a CREATE TABLE.
    return this.inCreateTable || first === 0x43 || first === 0x41 || first === 0x4c || first === 0x55 || first === 0x2f || (first === 0x44 && this.rounds !== null);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    let pos = 0;
    let passFrom = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.line !== null) {
        const nl = chunk.indexOf(NL, pos);
        const end = nl < 0 ? len : nl + 1;
        this.line.push(chunk.subarray(pos, end));
        this.lineBytes += end - pos;
        pos = end;
        passFrom = end;
        if (nl >= 0) this.finishLine();
        else if (this.lineBytes > MAX_LINE) {
          // Not DDL after all (or DDL too long to matter): pass it on as it is.
          for (const part of this.line) this.push(part);
          this.line = null;
          this.midLine = true;
        }
        continue;
      }
      if (this.midLine) {
        const nl = chunk.indexOf(NL, pos);
        if (nl < 0) {
          pos = len;
          break;
        }
        pos = nl + 1;
        this.midLine = false;
        continue;
      }
      // At the start of a line.
      if (this.wants(chunk[pos])) {
        if (pos > passFrom) this.push(chunk.subarray(passFrom, pos));
        this.line = [];
        this.lineBytes = 0;
        passFrom = pos;
      } else {
        this.midLine = true;
      }
    }
    if (pos > passFrom && this.line === null) this.push(chunk.subarray(passFrom, pos));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.line !== null) this.finishLine();
    callback();
  }

  private finishLine(): void {
    const buf = this.line!.length === 1 ? this.line![0] : Buffer.concat(this.line!);
    this.line = null;
    this.lineBytes = 0;
    // latin1 maps each byte to one char and back: names and literals in any charset survive.
    const text = buf.toString('latin1');
    const trimmed = text.trimEnd();
    if (!this.inCreateTable && /^CREATE (?:OR REPLACE )?TABLE /i.test(text)) this.inCreateTable = true;
    if (!this.inCreateTable && TABLE_LOCK.test(text)) return;
    let out = text;
    if (this.rounds) {
      out = out.replace(SETVAL_LINE, (m, name: string, value: string, used: string) => {
        // Names in the dump are latin1-decoded bytes; the recorded ones are JavaScript text.
        const round = this.rounds!.get(Buffer.from(name.replace(/``/g, '`'), 'latin1').toString('utf8'));
        return round ? `DO SETVAL(\`${name}\`, ${value}, ${used}, ${round});` : m;
      });
    }
    if (this.qualifier && VIEW_LINE.test(out)) out = out.replace(this.qualifier, () => `${this.target}.`);
    if (this.sequenceRef) out = out.replace(this.sequenceRef, (_m, fn: string) => `${fn}(${this.target}.`);
    if (this.alterDatabase) out = out.replace(this.alterDatabase, (_m, head: string) => `${head}${this.target}`);
    if (this.options.stripDefiners && !this.inCreateTable) {
      out = out.replace(DEFINER_ROUTINE, 'CREATE ').replace(DEFINER_VIEW, '$1').replace(DEFINER_TRIGGER_EVENT, '$1*/ ');
    }
    if (this.inCreateTable && trimmed.endsWith(';')) this.inCreateTable = false;
    this.push(out === text ? buf : Buffer.from(out, 'latin1'));
  }
}
