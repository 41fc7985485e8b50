/**
 * Secrets at rest: connection URLs and storage credentials are stored encrypted with
 * AES-256-GCM. The key comes from STRONGBOX_SECRET_KEY, or from `<data dir>/secret.key`
 * (created with mode 0600 on first start). The catalog file alone reveals no password.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
  /** The fingerprint of the key this box seals with (see keyFingerprint). */
  readonly fingerprint: string;
  /** The fingerprints of every key this box opens with: the sealing key's first. */
  readonly fingerprints: readonly string[];
}

/**
 * A short name for a secret key, safe to show and to store: an HMAC of a fixed text under
 * the key, so it tells which key is meant without revealing anything of it.
 */
export function keyFingerprint(key: Buffer): string {
  return crypto.createHmac('sha256', key).update('strongbox secret key fingerprint').digest('hex').slice(0, 16);
}

function readKeyFile(file: string): Buffer {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new Error(`${file} is not a 64-hex-character key`);
  return Buffer.from(text, 'hex');
}

export function keyFile(dataDir: string): string {
  return path.join(dataDir, 'secret.key');
}

/**
 * Load the key (from config or the key file, creating it once) and return a box that uses
 * it. A `secret.key.new` left by a key rotation that stopped half-way is also accepted for
 * opening, so no secret is ever unreadable; running the rotation again finishes it. When
 * the catalog already names that pending key (`sealWith`: the rotation committed, only the
 * file rename was lost), new secrets are sealed with it too.
 */
export function loadSecretBox(dataDir: string, hexKey: string | null, sealWith: string | null = null): SecretBox {
  let key: Buffer;
  const file = keyFile(dataDir);
  if (hexKey) key = Buffer.from(hexKey, 'hex');
  else {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      // 'wx' fails if the file exists, so two processes starting at once cannot both create it.
      fs.writeFileSync(file, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    key = readKeyFile(file);
  }
  const box = secretBox(key);
  if (!fs.existsSync(`${file}.new`)) return box;
  const pending = secretBox(readKeyFile(`${file}.new`));
  const [first, second] = sealWith !== null && sealWith === pending.fingerprint ? [pending, box] : [box, pending];
  return {
    seal: first.seal,
    open(sealed) {
      try {
        return first.open(sealed);
      } catch {
        return second.open(sealed);
      }
    },
    fingerprint: first.fingerprint,
    fingerprints: [first.fingerprint, second.fingerprint],
  };
}

export function secretBox(key: Buffer): SecretBox {
  const fingerprint = keyFingerprint(key);
  return {
    fingerprint,
    fingerprints: [fingerprint],
    seal(plain) {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
    },
    open(sealed) {
      const [v, iv, tag, ct] = sealed.split(':');
      if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('sealed secret has an unknown format');
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      try {
        return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('cannot decrypt a stored secret: STRONGBOX_SECRET_KEY or secret.key differs from the one it was sealed with');
      }
    },
  };
}
