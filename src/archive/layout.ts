/**
 * Where archived WAL segments and binlog files live in a destination: beside the branch's
 * backups, one object per file plus a small manifest, so that an operator can restore
 * without Strongbox (age -d | zstd -d gives back the server's own file, named as the
 * server named it).
 *
 *   <org>/<database>/<branch>/archive/wal/<timeline 8 hex>/<segment>.zst[.age]
 *   <org>/<database>/<branch>/archive/binlog/<file>.zst[.age]
 *   ... and <object>.manifest.json beside each (format strongbox-archive/1)
 */
import type { ArchiveKind } from '../catalog/schema.js';

/** The folder of a branch's archive of one kind. */
export function archiveFolder(orgName: string, dbName: string, branchName: string, kind: ArchiveKind): string {
  return `${orgName}/${dbName}/${branchName}/archive/${kind}`;
}

/** The object key of one archived file. `timeline` is required for WAL (segments of different timelines never mix). */
export function archiveKey(orgName: string, dbName: string, branchName: string, file: { kind: ArchiveKind; name: string; timeline: number | null }, opts: { compressionSuffix: string; encrypted: boolean }): string {
  const folder = archiveFolder(orgName, dbName, branchName, file.kind);
  const sub = file.kind === 'wal' ? `${(file.timeline ?? 1).toString(16).toUpperCase().padStart(8, '0')}/` : '';
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(file.name) || file.name.startsWith('.')) throw new Error(`not an archive file name: ${JSON.stringify(file.name)}`);
  return `${folder}/${sub}${file.name}${opts.compressionSuffix}${opts.encrypted ? '.age' : ''}`;
}

/** The manifest written beside an archived object. */
export function archiveManifestKey(objectKey: string): string {
  return `${objectKey}.manifest.json`;
}

/** The manifest's content: enough to rebuild the catalog's archive_files row, and to check the object. */
export interface ArchiveManifest {
  format: 'strongbox-archive/1';
  kind: ArchiveKind;
  name: string;
  organization: string;
  database: string;
  branch: string;
  engine: 'postgresql' | 'mysql';
  timeline: number | null;
  start_lsn: string | null;
  end_lsn: string | null;
  first_event_at: string | null;
  last_event_at: string | null;
  raw_size: number;
  size: number;
  sha256: string;
  compression: string;
  encryption: { format: 'age'; recipients: string[] } | null;
  created_at: string;
  strongbox_version: string;
}
