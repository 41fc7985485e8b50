/**
 * TypeBox schemas of the native (PlanetScale v1) dialect: the single source for request
 * validation, response serialization, TypeScript types and the OpenAPI document.
 * Backup shapes follow reference/planetscale-*-backups.md field for field.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { NAME_PATTERN } from '../../names.js';

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorBody = Type.Object({ code: Type.String(), message: Type.String() }, { $id: 'Error' });

export const NameParam = Type.String({ minLength: 1, maxLength: 63, pattern: NAME_PATTERN });
export const IdParam = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });

export const OrgParams = Type.Object({ organization: NameParam });
export const DbParams = Type.Object({ organization: NameParam, database: NameParam });
export const BranchParams = Type.Object({ organization: NameParam, database: NameParam, branch: NameParam });
export const BackupParams = Type.Object({ organization: NameParam, database: NameParam, branch: NameParam, id: IdParam });

export const PageQuery = {
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 25 })),
};

/** The paginated list envelope PlanetScale returns. */
export const ListEnvelope = <T extends TSchema>(item: T) =>
  Type.Object({
    type: Type.Literal('list'),
    current_page: Type.Integer(),
    next_page: Nullable(Type.Integer()),
    next_page_url: Nullable(Type.String()),
    prev_page: Nullable(Type.Integer()),
    prev_page_url: Nullable(Type.String()),
    data: Type.Array(item),
    total_count: Type.Integer(),
    total_pages: Type.Integer(),
  });

export const Organization = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    encryption_recipients: Type.Array(Type.String(), { description: 'age public keys every new artifact is encrypted to (empty: not encrypted)' }),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false },
);

export const AgeRecipient = Type.String({ pattern: '^age1[02-9ac-hj-np-z]{58}$', description: 'an age X25519 public key' });
/** An age identity (private key) given with a request; used for that job only, never stored beyond it. */
export const AgeIdentity = Type.String({ minLength: 74, maxLength: 4096, description: 'one or more AGE-SECRET-KEY-1... lines; used for this job only and never returned' });

export const Database = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    kind: Type.Union([Type.Literal('postgresql'), Type.Literal('mysql')]),
    storage_destinations: Nullable(Type.Array(Type.String(), { description: 'destination names its backups go to; null: the organization defaults' })),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false },
);

const JobStateSchema = Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('success'), Type.Literal('failed'), Type.Literal('canceled')]);

export const RestoreState = Type.Object(
  {
    id: Type.String({ description: 'the restore job' }),
    backup_id: Type.String(),
    restore_point: Nullable(Type.String({ description: 'a point-in-time restore: the time (ISO) or "latest" it replays the archive to; null for the restore of a backup as it is' })),
    phase: Nullable(Type.String({ description: 'while a point-in-time restore runs: what it is doing (fetching the base backup, fetching WAL, replaying, copying the database out)' })),
    state: JobStateSchema,
    bytes: Type.Integer({ description: 'bytes of the artifact read so far' }),
    total_bytes: Type.Integer(),
    rate_bytes_per_second: Type.Number(),
    eta_seconds: Nullable(Type.Number()),
    error: Nullable(Type.String()),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    completed_at: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

/** Strongbox extension: parallel dump and restore (jobs/parallel-backup.ts, jobs/parallel-restore.ts). */
export const Jobs = Type.Integer({
  minimum: 1,
  maximum: 16,
  description:
    'Strongbox extension, PostgreSQL and MariaDB/MySQL: dump (or restore) with N processes at once. A backup with jobs > 1 is stored in parts (pre-data, N data parts over disjoint tables, post-data) of one consistent snapshot ' +
    '(PostgreSQL: one exported snapshot; MariaDB: every dump opens its snapshot while commits are blocked for a moment, which needs the RELOAD and PROCESS privileges); ' +
    'a restore loads the data parts side by side (PostgreSQL: and builds indexes with pg_restore -j N; MariaDB: triggers come last). 1 (the default) is one dump stream.',
});

export const Branch = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    production: Type.Boolean(),
    kind: Type.Union([Type.Literal('postgresql'), Type.Literal('mysql')]),
    connection: Type.Object({ host: Type.String(), port: Type.Integer(), database: Type.String(), user: Type.String() }),
    server_version: Nullable(Type.String()),
    created_at: Type.String(),
    updated_at: Type.String(),
    restore: Nullable(RestoreState),
    dump_history: Type.Boolean({ description: 'Strongbox extension, MariaDB: dumps keep the history of system-versioned tables' }),
    jobs: Type.Integer({ description: 'Strongbox extension: parallelism of this branch\'s backups (1: one dump stream); see `jobs` on create-backup' }),
    archiving: Type.Boolean({ description: 'Strongbox extension: continuous archiving (WAL / binlogs) for point-in-time recovery is on' }),
    archive: Nullable(
      Type.Object(
        {
          enabled: Type.Boolean(),
          state: Type.Union([Type.Literal('starting'), Type.Literal('streaming'), Type.Literal('stopped'), Type.Literal('failed')]),
          error: Nullable(Type.String({ description: 'why the receiver is not streaming' })),
          last_shipped_at: Nullable(Type.String({ description: 'when the newest WAL segment or binlog file was stored' })),
          slot_name: Nullable(Type.String({ description: 'PostgreSQL: the replication slot holding WAL on the server until it is stored' })),
        },
        { additionalProperties: false, description: 'Strongbox extension: the state of continuous archiving; null if it was never switched on' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const Verification = Type.Object(
  {
    id: Type.String(),
    backup_id: Type.String(),
    kind: Type.Union([Type.Literal('quick'), Type.Literal('full')]),
    drill_policy_id: Nullable(Type.String({ description: 'a restore drill: the backup policy that scheduled it (null: asked for through the API)' })),
    state: JobStateSchema,
    error: Nullable(Type.String()),
    result: Nullable(
      Type.Unknown({
        description:
          'per-artifact checks and, for a full verification, the restore check: `method` ("contents": data digests and inventory compared; "row counts": an older backup), `differences` (every one, up to 1000: kind, schema, name, problem, expected, actual), `differences_total`',
      }),
    ),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    completed_at: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export const BackupStateSchema = Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('success'), Type.Literal('failed'), Type.Literal('canceled'), Type.Literal('ignored')]);

const ResourceRef = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    created_at: Type.String(),
    updated_at: Type.String(),
    deleted_at: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export const BackupPolicyRef = Type.Object(
  {
    id: Type.String(),
    display_name: Type.String(),
    name: Type.String(),
    target: Type.Union([Type.Literal('production'), Type.Literal('development')]),
    retention_value: Type.Integer(),
    retention_unit: Type.String(),
    frequency_value: Type.Integer(),
    frequency_unit: Type.String(),
    schedule_time: Type.String(),
    schedule_day: Nullable(Type.Integer()),
    schedule_week: Nullable(Type.Integer()),
    created_at: Type.String(),
    updated_at: Type.String(),
    last_ran_at: Nullable(Type.String()),
    next_run_at: Nullable(Type.String()),
    required: Type.Boolean(),
  },
  { additionalProperties: false },
);

/**
 * A backup policy as the policy routes show it: the reference's fields plus our restore
 * drill settings (README, "Restore drills"). A Backup embeds the reference shape only
 * (BackupPolicyRef), field for field.
 */
export const BackupPolicyObject = Type.Object(
  {
    ...BackupPolicyRef.properties,
    verify_every: Nullable(Type.Integer()),
    verification_frequency_value: Nullable(Type.Integer()),
    verification_frequency_unit: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export const Backup = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    state: BackupStateSchema,
    size: Type.Integer(),
    estimated_storage_cost: Type.Number(),
    created_at: Type.String(),
    updated_at: Type.String(),
    started_at: Nullable(Type.String()),
    expires_at: Nullable(Type.String()),
    completed_at: Nullable(Type.String()),
    deleted_at: Nullable(Type.String()),
    pvc_size: Type.Integer(),
    protected: Type.Boolean(),
    required: Type.Boolean(),
    restored_branches: Type.Array(ResourceRef),
    actor: Nullable(Type.Object({ id: Type.String(), display_name: Type.String(), avatar_url: Type.String() }, { additionalProperties: false })),
    backup_policy: Nullable(BackupPolicyRef),
    schema_snapshot: Nullable(
      Type.Object(
        {
          id: Type.String(),
          name: Type.String(),
          created_at: Type.String(),
          updated_at: Type.String(),
          linted_at: Nullable(Type.String()),
          url: Type.String(),
        },
        { additionalProperties: false },
      ),
    ),
    database_branch: Nullable(ResourceRef),
  },
  { additionalProperties: false, $id: 'Backup' },
);
export type BackupJson = Static<typeof Backup>;

export const RetentionUnit = Type.Union(['hour', 'day', 'week', 'month', 'year'].map((s) => Type.Literal(s)));

export const CreateBackupBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    retention_unit: Type.Optional(RetentionUnit),
    retention_value: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    emergency: Type.Optional(Type.Boolean()),
    jobs: Type.Optional(Jobs),
  },
  { additionalProperties: false },
);

export const ListBackupsQuery = Type.Object(
  {
    all: Type.Optional(Type.Boolean()),
    state: Type.Optional(BackupStateSchema),
    policy: Type.Optional(IdParam),
    from: Type.Optional(Type.String({ maxLength: 64 })),
    to: Type.Optional(Type.String({ maxLength: 64 })),
    running_at: Type.Optional(Type.String({ maxLength: 130 })),
    production: Type.Optional(Type.Boolean()),
    ...PageQuery,
  },
  { additionalProperties: false },
);

export const Artifact = Type.Object(
  {
    id: Type.String(),
    destination: Type.String(),
    provider: Type.Union([Type.Literal('local'), Type.Literal('s3'), Type.Literal('google_drive')]),
    path: Type.String(),
    size: Type.Integer(),
    sha256: Nullable(Type.String()),
    state: Type.Union(['pending', 'success', 'failed', 'deleted'].map((s) => Type.Literal(s))),
    error: Nullable(Type.String()),
    created_at: Type.String(),
    updated_at: Type.String(),
    verified_at: Nullable(Type.String()),
    verification: Nullable(Type.Union([Type.Literal('passed'), Type.Literal('failed')])),
    parts: Type.Optional(
      Nullable(Type.Integer({ description: 'Strongbox extension: a parallel backup\'s copy is this many part objects beside `path` (its SHA256SUMS file); null for one dump object' })),
    ),
  },
  { additionalProperties: false },
);

export const Progress = Type.Object(
  {
    state: BackupStateSchema,
    bytes_read: Type.Integer({ description: 'bytes the dump tool has produced so far (uncompressed)' }),
    bytes_written: Type.Integer({ description: 'bytes written to storage so far (compressed)' }),
    rate_bytes_per_second: Type.Number({ description: 'uncompressed bytes per second since the start' }),
    estimated_total_bytes: Nullable(Type.Integer({ description: 'the source database size, used for the ETA' })),
    percent: Nullable(Type.Number()),
    eta_seconds: Nullable(Type.Number()),
    started_at: Nullable(Type.String()),
    updated_at: Nullable(Type.String()),
    error: Nullable(Type.String({ description: 'why the backup failed, was canceled or was ignored (null while it runs and when it succeeded)' })),
  },
  { additionalProperties: false },
);

export const ServiceToken = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    token: Type.Optional(Type.String({ description: 'the secret; only in the response that created the token' })),
    created_at: Type.String(),
    last_used_at: Nullable(Type.String()),
    expires_at: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export const TokenAccessSchema = Type.Object(
  {
    access: Type.String(),
    resource_type: Type.Union([Type.Literal('organization'), Type.Literal('database'), Type.Literal('branch')]),
    resource_id: Type.String(),
  },
  { additionalProperties: false },
);
