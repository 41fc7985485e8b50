/**
 * TypeBox schemas of the backupman view, field for field as
 * reference/backupman-list-backups.md (Go-style capitalized names, nullability
 * as its tables say).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Status = Type.Union([Type.Literal('pending'), Type.Literal('finished'), Type.Literal('failed')]);

/** One stored copy of a dump: a Strongbox artifact. */
export const DriveFile = Type.Object({
  Id: Type.String(),
  BackupId: Type.String(),
  Provider: Type.Union([Type.Literal('local'), Type.Literal('s3'), Type.Literal('google_drive')]),
  Label: Type.String({ description: 'file name' }),
  Path: Nullable(Type.String({ description: 'key of the file inside its storage destination' })),
  Status,
  CreatedAt: Type.String(),
  UpdatedAt: Nullable(Type.String()),
});

export const BackupItem = Type.Object({
  Id: Type.String(),
  Status,
  Label: Type.String({ description: '<database>/<branch>' }),
  DumpPath: Nullable(Type.String({ description: 'absolute path of the dump on this machine when a local destination holds a good copy' })),
  CreatedAt: Type.String(),
  UpdatedAt: Nullable(Type.String()),
  DriveFiles: Nullable(Type.Array(DriveFile)),
});
export type BackupItemJson = Static<typeof BackupItem>;

export const BackupListBody = Type.Object({ Results: Type.Array(BackupItem) });
export const MessageBody = Type.Object({ Message: Type.String() });
export const DriveFileParams = Type.Object({ driveFileId: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }) });
