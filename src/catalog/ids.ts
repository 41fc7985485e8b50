import crypto from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A random opaque id of lower-case letters and digits (PlanetScale-style, 12 chars ≈ 62 bits). */
export function newId(length = 12): string {
  const bytes = crypto.randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i] % ALPHABET.length];
  return out;
}

/** The current time as the catalog stores it. */
export function nowIso(now: Date = new Date()): string {
  return now.toISOString();
}
