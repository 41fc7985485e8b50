/**
 * Error messages made fit to store in the catalog and show to users (the API, the CLI,
 * notifications): one function, used wherever a failure's reason is recorded. Tools and
 * servers echo whatever they choked on: a MariaDB error once carried 4 KB of hex from the
 * statement it refused, which buried the reason and bloated every listing.
 */

/** Longest reason stored, in characters. */
export const MAX_ERROR_TEXT = 1000;

/** Hex runs longer than this are data, not information; a sha256 (64 digits) stays whole. */
const LONG_HEX = /(?:0x)?[0-9a-fA-F]{65,}/g;
const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]/g;
// Every control character but tab and newline.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

/**
 * `text` cleaned and capped: terminal escapes and control characters removed, runs of
 * more than 64 hex digits cut to their first 16 (saying how many were left out), blank
 * lines collapsed, and at most `max` characters: the head and the tail are kept, because
 * tools print the context first and the reason last.
 */
export function cleanErrorText(text: string, max?: number): string;
export function cleanErrorText(text: string | null, max?: number): string | null;
export function cleanErrorText(text: string | null, max = MAX_ERROR_TEXT): string | null {
  if (text === null) return null;
  let s = String(text)
    .replace(/\r\n?/g, '\n')
    .replace(ANSI_ESCAPE, '')
    .replace(CONTROL, ' ')
    .replace(LONG_HEX, (run) => `${run.slice(0, 16)}…[${run.length - 16} hex digits left out]`)
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (s.length > max) {
    const marker = (n: number) => ` …[${n} characters left out]… `;
    // The marker's own length comes out of the budget, so the result is never over `max`.
    const room = Math.max(0, max - marker(s.length).length);
    const tail = Math.floor(room / 4);
    const head = room - tail;
    s = s.slice(0, head) + marker(s.length - head - tail) + s.slice(s.length - tail);
  }
  return s;
}
