/**
 * Measures the largest statement of a SQL dump (mysqldump / mariadb-dump) as it streams
 * past, bytes unchanged. A MySQL server refuses a statement longer than its
 * max_allowed_packet ("server has gone away"), so a backup records this number and a
 * restore compares it with the target server's limit before it starts.
 *
 * A statement is the lines up to one that ends with `;` (`;;` under DELIMITER ;;), the
 * way mysqldump writes them: data never holds a raw newline (it is escaped as `\n`), so
 * an INSERT and its rows end exactly there. `--` comment lines do not count (the client
 * drops them); the count includes the `;` and newline, which the client does not send,
 * so it may overstate an INSERT by a byte or two, never understate it (a routine body
 * with lines ending in `;` counts in pieces: routines are small). Cost: one memchr per line.
 */
import { Transform, type TransformCallback } from 'node:stream';

const NL = 0x0a;
const SEMICOLON = 0x3b;
const SPACE = 0x20;
const CR = 0x0d;
const TAB = 0x09;
const DASH = 0x2d;

export class StatementSizer extends Transform {
  private current = 0;
  private max = 0;
  /** The last byte of the current line that is not white space (0 when none yet). */
  private lastByte = 0;
  /** How much of the current line's start is known: 0 nothing, 1 a first `-`, 2 all it takes. */
  private head = 0;
  /** The current line is a `--` comment (the client drops those). */
  private comment = false;
  /** Bytes of the current line so far, while it may still turn out to be a comment. */
  private pending = 0;

  /** Bytes of the largest statement seen so far (all of them, once the stream ended). */
  get largest(): number {
    return Math.max(this.max, this.current);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.head === 0) {
        this.comment = false;
        if (chunk[pos] === DASH) {
          this.head = 1;
          this.pending = 1;
          pos++;
          continue;
        }
        this.head = 2;
      } else if (this.head === 1) {
        // The line started with '-' at the end of the last chunk: a comment if '-' follows.
        this.head = 2;
        this.comment = chunk[pos] === DASH;
        if (!this.comment) this.current += this.pending;
        this.pending = 0;
      }
      const nl = chunk.indexOf(NL, pos);
      const end = nl < 0 ? len : nl;
      // The last significant byte of this piece of the line, scanning back over white space.
      let i = end - 1;
      while (i >= pos && (chunk[i] === SPACE || chunk[i] === CR || chunk[i] === TAB)) i--;
      if (i >= pos) this.lastByte = chunk[i];
      if (nl < 0) {
        if (!this.comment) this.current += len - pos;
        break;
      }
      if (!this.comment) this.current += nl + 1 - pos;
      pos = nl + 1;
      this.head = 0;
      if (this.lastByte === SEMICOLON && !this.comment) {
        if (this.current > this.max) this.max = this.current;
        this.current = 0;
      }
      this.lastByte = 0;
    }
    callback(null, chunk);
  }
}
