/**
 * The key rules every provider enforces, so that a key means the same object on a local
 * disk, in a bucket and in a Drive folder, and can never reach outside a provider's root.
 */
import { StorageError } from './provider.js';

// Control characters (NUL above all) are never part of a sane key and break logs and paths.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function refuse(what: string, value: string, why: string): never {
  throw new StorageError(`invalid storage ${what} ${JSON.stringify(value)}: ${why}`, true);
}

function checkCommon(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new StorageError(`invalid storage ${what}: not a string`, true);
  if (CONTROL.test(value)) refuse(what, value, 'contains a control character');
  if (value.includes('\\')) refuse(what, value, 'contains a backslash');
  if (value.startsWith('/')) refuse(what, value, 'is absolute');
}

/**
 * Checks an object key and returns its segments. A key is relative and slash-separated,
 * with no empty, "." or ".." segment, no backslash and no control character. Throws
 * StorageError(permanent) otherwise.
 */
export function keySegments(key: unknown): string[] {
  checkCommon('key', key);
  if (key === '') refuse('key', key, 'is empty');
  const segments = key.split('/');
  for (const s of segments) {
    if (s === '') refuse('key', key, 'has an empty segment');
    if (s === '.' || s === '..') refuse('key', key, `has a "${s}" segment`);
  }
  return segments;
}

/**
 * Checks a listing prefix: the same rules as a key, except that it may be empty, end with
 * a slash, or end in the middle of a segment ("org/db/br").
 */
export function checkPrefix(prefix: unknown): string {
  checkCommon('prefix', prefix);
  const segments = prefix.split('/');
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === '' && !last && prefix !== '') refuse('prefix', prefix, 'has an empty segment');
    // A partial last segment "." or ".." could only match by climbing out, so refuse it too.
    if (s === '.' || s === '..') refuse('prefix', prefix, `has a "${s}" segment`);
  });
  return prefix;
}
