/**
 * Drive search queries (`q`): string literals are single-quoted, and inside them a backslash
 * and a single quote must each be escaped with a backslash.
 */

/** `value` as a Drive query string literal, quotes included: it's → 'it\'s'. */
export function driveString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}
