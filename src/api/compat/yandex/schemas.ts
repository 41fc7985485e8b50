/**
 * TypeBox schemas of the Yandex Cloud managed-database view (Managed Service for
 * PostgreSQL / MySQL, REST): request validation, response serialization and the OpenAPI
 * document. Shapes follow reference/yandex-mdb-*-list-backups.md and the
 * Backup / Operation messages described in API-NOTES.md.
 */
import { Type, type Static } from '@sinclair/typebox';
import { NAME_PATTERN } from '../../../names.js';

/** Yandex limits cluster ids to 50 characters; ours are 12. */
export const ClusterId = Type.String({ minLength: 1, maxLength: 50, description: 'ID of the cluster: a Strongbox branch id' });
export const BackupId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'ID of the backup' });

export const ClusterParams = Type.Object({ clusterId: ClusterId });
export const BackupParams = Type.Object({ backupId: BackupId });
export const OperationParams = Type.Object({ operationId: Type.String({ minLength: 1, maxLength: 100 }) });

const PageFields = {
  pageSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'at most this many results (0: the default, 100)' })),
  pageToken: Type.Optional(Type.String({ maxLength: 100, description: 'nextPageToken of the previous page' })),
};
export const PageQuery = Type.Object(PageFields);
export const FolderPageQuery = Type.Object({ folderId: Type.String({ minLength: 1, maxLength: 50, description: 'ID of the folder: a Strongbox organization id' }), ...PageFields });

/** A Backup resource. `method` is sent by the PostgreSQL prefix only. */
export const Backup = Type.Object({
  id: Type.String(),
  folderId: Type.String(),
  createdAt: Type.String({ description: 'when the backup completed (its creation while it is CREATING)' }),
  sourceClusterId: Type.String(),
  startedAt: Type.String(),
  size: Type.String({ description: 'bytes stored, int64 as a string' }),
  type: Type.Union([Type.Literal('AUTOMATED'), Type.Literal('MANUAL')]),
  method: Type.Optional(Type.Union([Type.Literal('BASE'), Type.Literal('INCREMENTAL')])),
  journalSize: Type.String(),
  status: Type.Union([Type.Literal('DONE'), Type.Literal('CREATING')]),
});
export type BackupJson = Static<typeof Backup>;

export const BackupList = Type.Object({
  backups: Type.Array(Backup),
  nextPageToken: Type.Optional(Type.String({ description: 'absent on the last page' })),
});

const Status = Type.Object({ code: Type.Integer(), message: Type.String(), details: Type.Array(Type.Unknown()) });

/** A long-running operation, polled at GET /operations/{id}. `response` and `error` are exclusive. */
export const Operation = Type.Object({
  id: Type.String(),
  description: Type.String(),
  createdAt: Type.String(),
  createdBy: Type.String(),
  modifiedAt: Type.String(),
  done: Type.Boolean(),
  metadata: Type.Object({ '@type': Type.String() }, { additionalProperties: true }),
  response: Type.Optional(Type.Object({ '@type': Type.String() }, { additionalProperties: true })),
  error: Type.Optional(Status),
});
/** A message packed in google.protobuf.Any: its type URL, then its fields. */
type AnyMessage = { '@type': string } & Record<string, unknown>;
export type OperationJson = Omit<Static<typeof Operation>, 'metadata' | 'response'> & { metadata: AnyMessage; response?: AnyMessage };

/**
 * Cluster.Restore: the backup, the new cluster's name, and `time` (honoured for archived
 * clusters: a point-in-time restore). Everything else Yandex takes (environment,
 * configSpec, hostSpecs, folderId...) is accepted and ignored: the new database is created
 * on the backup's own server.
 */
export const RestoreBody = Type.Object(
  {
    backupId: BackupId,
    name: Type.String({ minLength: 1, maxLength: 63, pattern: NAME_PATTERN, description: 'name of the new cluster: the new branch and the database created for it' }),
    time: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'RFC 3339 time to restore to: honoured for a cluster with continuous archiving (the backup replayed forward to it, inclusive), ignored otherwise',
      }),
    ),
  },
  { additionalProperties: true },
);
