import { IDENTITY_RE } from '../../encryption.js';
import { invalidParams } from '../errors.js';

/** Validate an age identity given with a request; the message never quotes it (it is a secret). */
export function checkIdentity(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0 || !lines.every((l) => IDENTITY_RE.test(l))) {
    throw invalidParams('age_identity must be one or more age identities (lines starting AGE-SECRET-KEY-1), as age-keygen writes them');
  }
  return lines.join('\n');
}
