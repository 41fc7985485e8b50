/**
 * age encryption as stream stages, through the stock `age` tool, so that every artifact
 * is a plain age file anyone can decrypt with `age -d` and no Strongbox at all.
 */
import type { Duplex } from 'node:stream';
import { processDuplex } from './compress.js';

const AGE_NOT_FOUND = 'age not found: install the age package (https://age-encryption.org)';

/** Encrypt to every recipient (`age1...` public keys); any one matching identity decrypts. */
export function ageEncrypt(recipients: readonly string[]): Duplex {
  if (recipients.length === 0) throw new RangeError('ageEncrypt needs at least one recipient');
  return processDuplex('age', recipients.flatMap((r) => ['-r', r]), { name: 'age', notFoundMessage: AGE_NOT_FOUND });
}

/**
 * Decrypt with the identities in `identityFiles` (paths, never the keys themselves, so no
 * secret is on a command line). Errors, with age's own message, when no identity matches.
 */
export function ageDecrypt(identityFiles: readonly string[]): Duplex {
  if (identityFiles.length === 0) throw new RangeError('ageDecrypt needs at least one identity file');
  return processDuplex('age', ['-d', ...identityFiles.flatMap((f) => ['-i', f])], { name: 'age', notFoundMessage: AGE_NOT_FOUND });
}
