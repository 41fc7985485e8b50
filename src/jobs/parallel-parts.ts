/**
 * The parts of a parallel backup (`jobs: N`), as stored and recorded: one object per part
 * (pre-data, data parts, post-data), a SHA256SUMS file and the manifest beside them, all
 * in the backup's folder. Shared by the backup, restore, verification, download, repair,
 * rebuild and deletion, so that every reader agrees on what a parallel backup is.
 *
 * The copy's `artifacts.path` is its SHA256SUMS file (`sha256sum -c` checks the parts with
 * stock tools), and the backup's and the copy's `sha256` is the sha256 of that file: it
 * pins every part's bytes, as a single dump's sha256 pins its one object. `size` is the
 * sum of the parts' sizes.
 */
import { createHash } from 'node:crypto';
import path from 'node:path/posix';
import type { Artifact } from '../catalog/schema.js';

/** File name of the list of the parts' sha256 sums, in `sha256sum` format. */
export const SHA256SUMS = 'SHA256SUMS';

/** One stored part of a parallel backup. */
export interface BackupPart {
  /** '00-pre-data', '01-data', ..., 'NN-post-data': the file names sort in restore order. */
  name: string;
  section: 'pre-data' | 'data' | 'post-data';
  /** The object's file name in the backup's folder. */
  file: string;
  /** Bytes stored (compressed, encrypted), and their sha256; null until the part is stored. */
  size: number | null;
  sha256: string | null;
  /** Bytes the dump tool produced for this part. */
  raw_size: number | null;
  /** Data parts: the tables it holds, with their rows once counted. */
  tables?: Array<{ schema: string; table: string; rows: number | null }>;
  /** The data part that also holds sequence values and large objects. */
  rest?: boolean;
}

/** The parts of a copy, or null for a single-stream dump. Throws on a parts list that is not ours. */
export function partsOf(artifact: Pick<Artifact, 'parts'>): BackupPart[] | null {
  if (artifact.parts === null || artifact.parts === undefined) return null;
  const parts = JSON.parse(artifact.parts) as BackupPart[];
  if (!Array.isArray(parts) || parts.some((p) => typeof p?.file !== 'string' || p.file.includes('/') || p.file === '' || p.file === '.' || p.file === '..')) {
    throw new Error('the parts list of this copy is not readable');
  }
  return parts;
}

/** The storage key of `part` of the copy whose SHA256SUMS is at `artifactPath`. */
export function partKey(artifactPath: string, part: Pick<BackupPart, 'file'>): string {
  return `${path.dirname(artifactPath)}/${part.file}`;
}

/** The SHA256SUMS text of stored parts: one "<sha256>  <file>" line each, in restore order. */
export function sha256Sums(parts: BackupPart[]): string {
  return parts.map((p) => `${p.sha256}  ${p.file}\n`).join('');
}

/** The sha256 of a text (the SHA256SUMS file: the backup's sha256). */
export function sha256Of(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Every object key a copy has in its destination, besides its manifest. */
export function copyKeys(artifact: Pick<Artifact, 'path' | 'parts'>): string[] {
  let parts: BackupPart[] | null;
  try {
    parts = partsOf(artifact);
  } catch {
    parts = null;
  }
  return parts ? [...parts.map((p) => partKey(artifact.path, p)), artifact.path] : [artifact.path];
}

/** Refusal for code paths that read a copy as one object, where a parallel backup's parts are not supported. */
export class PartsNotSupportedError extends Error {
  constructor(what: string) {
    super(`${what} is not supported for a parallel backup (its dump is stored in parts); restore or download it through the native API instead`);
    this.name = 'PartsNotSupportedError';
  }
}
