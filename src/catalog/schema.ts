/**
 * Row types of the catalog tables, as Kysely sees them. Timestamps are ISO 8601 UTC
 * strings with milliseconds (`Date.toISOString()`), so they sort as text on every
 * dialect; booleans are 0/1 integers. Both choices keep SQL dialect-agnostic.
 */
import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';

type Bool = number; // 0 | 1

export interface OrganizationsTable {
  id: string;
  name: string;
  /** JSON array of age recipients (public keys); null = none. */
  encryption_recipients: string | null;
  created_at: string;
  updated_at: string;
}

export interface ServiceTokensTable {
  id: string;
  organization_id: string;
  name: string;
  /** scrypt hash of the secret, never the secret. */
  secret_hash: string;
  /** May create and see every organization (the bootstrap/admin token). */
  superuser: Bool;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  deleted_at: string | null;
}

export type ResourceType = 'organization' | 'database' | 'branch';

export interface ServiceTokenAccessesTable {
  id: string;
  token_id: string;
  access: string;
  resource_type: ResourceType;
  resource_id: string;
  created_at: string;
}

export interface DatabasesTable {
  id: string;
  organization_id: string;
  name: string;
  kind: 'postgresql' | 'mysql';
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  /** JSON array of destination names chosen for this database; null = the organization's defaults. */
  storage_destinations: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface BranchesTable {
  id: string;
  organization_id: string;
  database_id: string;
  name: string;
  production: Bool;
  /** The full connection URL, encrypted at rest (see secrets.ts). Never returned by the API. */
  connection_url_enc: string | null;
  conn_host: string;
  conn_port: number;
  conn_database: string;
  conn_user: string;
  server_version: string | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  /** The backup this branch was made from by a restore, or null. */
  restored_from_backup_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The restore job that fills this branch's database. */
  restore_job_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Per-branch dump options that are ours, not PlanetScale's; a branch without a row has the defaults. */
export interface BranchOptionsTable {
  branch_id: string;
  /** MariaDB: dump system-versioned tables with their history (`--dump-history`). */
  dump_history: Bool;
  /** Parallelism of the branch's backups (`jobs`, migration 0019): 1 = one dump stream. */
  jobs: ColumnType<number, number | undefined, number>;
  updated_at: string;
}

export interface StorageDestinationsTable {
  id: string;
  organization_id: string;
  name: string;
  provider: 'local' | 's3' | 'google_drive';
  /** Provider configuration as JSON, encrypted at rest (it may hold credentials). */
  config_enc: string;
  is_default: Bool;
  created_at: string;
  updated_at: string;
}

export type BackupState = 'pending' | 'running' | 'success' | 'failed' | 'canceled' | 'ignored';

export interface BackupsTable {
  id: string;
  organization_id: string;
  database_id: string;
  branch_id: string;
  name: string;
  state: BackupState;
  /** Bytes stored (compressed) per artifact. */
  size: ColumnType<number, number | undefined, number>;
  /** Bytes the dump tool produced, before compression. */
  raw_size: ColumnType<number, number | undefined, number>;
  /** Size of the source database as its server reported it. */
  pvc_size: ColumnType<number, number | undefined, number>;
  protected: Bool;
  required: Bool;
  emergency: Bool;
  backup_policy_id: string | null;
  actor_id: string | null;
  actor_name: string | null;
  retention_value: number;
  retention_unit: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
  expires_at: string | null;
  deleted_at: string | null;
  /** Why the backup failed or was canceled/ignored; safe to show users. */
  error: string | null;
  engine: 'postgresql' | 'mysql';
  server_version: string | null;
  client_version: string | null;
  compression: string;
  sha256: string | null;
  /** JSON object {table: rows} recorded at backup time. */
  table_row_counts: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  attempts: ColumnType<number, number | undefined, number>;
  cancel_requested: ColumnType<Bool, Bool | undefined, Bool>;
  progress_raw_bytes: ColumnType<number, number | undefined, number>;
  progress_bytes: ColumnType<number, number | undefined, number>;
  progress_at: string | null;
  /** When the last verification finished, and how it ended ('passed' | 'failed'). */
  verified_at: ColumnType<string | null, string | null | undefined, string | null>;
  verification: ColumnType<string | null, string | null | undefined, string | null>;
  /** For a scheduled backup: the slot of its policy's schedule it was taken for. */
  schedule_slot: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON {format: 'age', recipients: [fingerprints]} when the artifacts are encrypted, else null. */
  encryption: ColumnType<string | null, string | null | undefined, string | null>;
  schema_snapshot_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** MySQL: bytes of the dump's largest statement (to compare with max_allowed_packet); null when not measured. */
  largest_statement: ColumnType<number | null, number | null | undefined, number | null>;
  /** JSON DatabaseProperties (engines/engine.ts) of the dumped database; null for older backups. */
  database_properties: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON Ownership (engines/engine.ts): roles the objects need, MySQL grants; null when not recorded. */
  ownership: ColumnType<string | null, string | null | undefined, string | null>;
  /** 'logical' (a dump), 'base' (pg_basebackup of an archived branch), 'incremental' (migration 0014). */
  method: ColumnType<BackupMethod, BackupMethod | undefined, BackupMethod>;
  /** JSON RecoveryStart: where WAL/binlog replay starts after this backup; null if unknown. */
  recovery_start: ColumnType<string | null, string | null | undefined, string | null>;
  /** The parallelism this backup was requested with (`jobs`); null = the branch's option (migration 0019). */
  jobs: ColumnType<number | null, number | null | undefined, number | null>;
}

export type BackupMethod = 'logical' | 'base' | 'incremental';

/** backups.recovery_start, parsed: a base backup's WAL start, or a dump's binlog coordinates. */
export type RecoveryStart = { timeline: number; lsn: string } | { file: string; position: number; gtid: string | null };

export type ArchiveKind = 'wal' | 'binlog';
export type ArchiverState = 'starting' | 'streaming' | 'stopped' | 'failed';

/** A branch switched to continuous archiving, and the lease of the receiver that streams it. */
export interface ArchiversTable {
  branch_id: string;
  organization_id: string;
  database_id: string;
  kind: ArchiveKind;
  enabled: Bool;
  state: ArchiverState;
  /** Why the receiver is not streaming (cleaned, no secrets), or null. */
  error: string | null;
  /** PostgreSQL: the replication slot the receiver streams from. */
  slot_name: string | null;
  /** Where streaming resumes: JSON {timeline, lsn} or {file, position}. */
  position: string | null;
  worker_id: string | null;
  lease_expires_at: string | null;
  last_shipped_at: string | null;
  created_at: string;
  updated_at: string;
}

/** A WAL segment or binlog file shipped to the destinations. */
export interface ArchiveFilesTable {
  id: string;
  organization_id: string;
  database_id: string;
  branch_id: string;
  kind: ArchiveKind;
  /** The server's file name: 000000010000000000000003, mariadb-bin.000012. */
  name: string;
  timeline: number | null;
  start_lsn: string | null;
  end_lsn: string | null;
  /** Time of the first / last commit or event the file holds, when known. */
  first_event_at: string | null;
  last_event_at: string | null;
  raw_size: ColumnType<number, number | undefined, number>;
  size: ColumnType<number, number | undefined, number>;
  /** 'success' once at least one copy is stored whole; 'deleted' by retention. */
  state: ColumnType<'success' | 'deleted', 'success' | 'deleted' | undefined, 'success' | 'deleted'>;
  created_at: string;
  deleted_at: string | null;
}

/**
 * How many backups a branch has per (live, state, policy, month of created_at): kept exact by
 * triggers on `backups` (migration 0018), read by the list for total_count and to find page N.
 */
export interface BackupCountsTable {
  branch_id: string;
  /** 1: not deleted (deleted_at is null); 0: deleted. */
  live: number;
  state: BackupState;
  /** backup_policy_id, or '' for a backup without a policy. */
  policy_key: string;
  /** 'YYYY-MM' of created_at. */
  month: string;
  n: number;
}

/** The stored copy of an archive file in one destination. */
export interface ArchiveCopiesTable {
  id: string;
  archive_file_id: string;
  destination_id: string;
  destination_name: string;
  provider: 'local' | 's3' | 'google_drive';
  path: string;
  size: ColumnType<number, number | undefined, number>;
  sha256: string | null;
  state: 'success' | 'failed' | 'deleted';
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface SchemaSnapshotsTable {
  id: string;
  organization_id: string;
  database_id: string;
  branch_id: string;
  name: string;
  /** Normalized DDL (engines/schema.ts). */
  ddl: string;
  sha256: string;
  created_at: string;
  updated_at: string;
  linted_at: string | null;
}

export interface BackupPoliciesTable {
  id: string;
  organization_id: string;
  database_id: string;
  name: string;
  display_name: string;
  target: 'production' | 'development';
  retention_value: number;
  retention_unit: 'hour' | 'day' | 'week' | 'month' | 'year';
  frequency_value: number;
  frequency_unit: 'hour' | 'day' | 'week' | 'month';
  schedule_time: string;
  schedule_day: number | null;
  schedule_week: number | null;
  /** A required policy can be edited but not deleted (each database gets one per target). */
  required: Bool;
  created_at: string;
  updated_at: string;
  /** The slot of the last scheduled run (not the time the dump started). */
  last_ran_at: string | null;
  next_run_at: string | null;
  deleted_at: string | null;
  /** Restore drills: a full verification of every Nth successful backup of each branch; null = off. */
  verify_every: ColumnType<number | null, number | null | undefined, number | null>;
  /** Restore drills: at least one full verification per this period (hour/day/week/month); null = off. */
  verification_frequency_value: ColumnType<number | null, number | null | undefined, number | null>;
  verification_frequency_unit: ColumnType<'hour' | 'day' | 'week' | 'month' | null, 'hour' | 'day' | 'week' | 'month' | null | undefined, 'hour' | 'day' | 'week' | 'month' | null>;
}

export type ArtifactState = 'pending' | 'success' | 'failed' | 'deleted';

export interface ArtifactsTable {
  id: string;
  backup_id: string;
  destination_id: string;
  destination_name: string;
  provider: 'local' | 's3' | 'google_drive';
  /** Key of the dump object inside the destination. */
  path: string;
  size: ColumnType<number, number | undefined, number>;
  sha256: string | null;
  state: ArtifactState;
  error: string | null;
  created_at: string;
  updated_at: string;
  verified_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** 'passed' | 'failed' (with the reason in a verification job), or null: never verified. */
  verification: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * A parallel backup's copy: JSON list of its part objects (jobs/parallel-parts.ts), in the
   * folder of `path` (then its SHA256SUMS file); null for a single-stream dump (migration 0019).
   */
  parts: ColumnType<string | null, string | null | undefined, string | null>;
}

export type JobKind = 'restore' | 'verify' | 'repair';
export type JobState = 'pending' | 'running' | 'success' | 'failed' | 'canceled';

export interface JobsTable {
  id: string;
  organization_id: string;
  kind: JobKind;
  backup_id: string;
  /** For a restore: the branch being filled. */
  branch_id: string | null;
  state: JobState;
  /** JSON parameters (restore target, verify mode). Never holds a secret. */
  params: string;
  /** JSON outcome details (per-artifact checks, row count comparison). */
  result: string | null;
  error: string | null;
  bytes: ColumnType<number, number | undefined, number>;
  total_bytes: ColumnType<number, number | undefined, number>;
  actor_id: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  attempts: ColumnType<number, number | undefined, number>;
  cancel_requested: ColumnType<number, number | undefined, number>;
  /** A secret the job needs (an age identity given with a restore), sealed; cleared when it ends. */
  secret_enc: ColumnType<string | null, string | null | undefined, string | null>;
  /** A full verification's scratch database, recorded before it is created and cleared once dropped. */
  scratch_database: ColumnType<string | null, string | null | undefined, string | null>;
  /** For a restore drill: the policy that scheduled it. */
  policy_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** For a restore drill: unique, so that a drill is enqueued once however many workers look. */
  drill_key: ColumnType<string | null, string | null | undefined, string | null>;
}

/** What a backup's dump holds (pipeline/rowcount/contents.ts DumpContents as JSON). */
export interface BackupContentsTable {
  backup_id: string;
  contents: string;
  created_at: string;
}

/**
 * Something worth an alert (a failed restore drill): written when it happens, for the
 * notification channels to deliver (delivered_at) when they exist.
 */
export interface EventsTable {
  id: string;
  organization_id: string;
  /** e.g. 'verification.failed'. */
  kind: string;
  severity: 'info' | 'warning' | 'error';
  database_id: string | null;
  branch_id: string | null;
  backup_id: string | null;
  job_id: string | null;
  message: string;
  created_at: string;
  /** When the notifications took it: its deliveries (one per matching webhook or channel) are written. */
  delivered_at: string | null;
  /** JSON: the resource as the API showed it when it happened (migrations/0011); null for older events. */
  payload: ColumnType<string | null, string | null | undefined, string | null>;
}

export type NotificationTargetType = 'webhook' | 'channel';
export type ChannelType = 'slack' | 'discord' | 'telegram' | 'ntfy' | 'email';

/** What webhooks and notification channels share (migrations/0011_notifications.ts). */
interface NotificationTargetColumns {
  id: string;
  organization_id: string;
  /** JSON array of event kinds it receives. */
  events: string;
  /** Only events of this database; null = every database. */
  database_id: string | null;
  enabled: Bool;
  /** Why Strongbox turned it off (it kept failing); cleared when it is enabled again. */
  disabled_reason: string | null;
  /** Deliveries in a row that failed every attempt; reset by a success. */
  consecutive_failures: ColumnType<number, number | undefined, number>;
  created_at: string;
  updated_at: string;
  last_sent_at: string | null;
  last_sent_success: Bool | null;
  /** "200 OK", "timed out after 2 s"...: the last attempt in a few words. */
  last_sent_result: string | null;
}

export interface WebhooksTable extends NotificationTargetColumns {
  url: string;
  /** The signing secret, sealed (secrets.ts); shown once, when the webhook is created. */
  secret_enc: string;
}

export interface NotificationChannelsTable extends NotificationTargetColumns {
  name: string;
  type: ChannelType;
  /** JSON of the settings that are not secret (chat id, SMTP host, recipients...). */
  config: string;
  /** JSON of the secret settings (webhook URL, bot token, password), sealed. */
  secrets_enc: string;
}

/** The outbox: one row per event and target, sent under a lease, retried with backoff. */
export interface NotificationDeliveriesTable {
  id: string;
  organization_id: string;
  event_id: string;
  target_type: NotificationTargetType;
  target_id: string;
  /** pending (to send, or to retry at next_attempt_at), success, failed (gave up). */
  state: 'pending' | 'success' | 'failed';
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: string | null;
  /** Of the last attempt. */
  status_code: number | null;
  error: string | null;
  duration_ms: number | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface CatalogSchema {
  organizations: OrganizationsTable;
  service_tokens: ServiceTokensTable;
  service_token_accesses: ServiceTokenAccessesTable;
  databases: DatabasesTable;
  branches: BranchesTable;
  branch_options: BranchOptionsTable;
  storage_destinations: StorageDestinationsTable;
  backups: BackupsTable;
  artifacts: ArtifactsTable;
  jobs: JobsTable;
  backup_policies: BackupPoliciesTable;
  schema_snapshots: SchemaSnapshotsTable;
  audit_log: AuditLogTable;
  catalog_settings: CatalogSettingsTable;
  backup_contents: BackupContentsTable;
  events: EventsTable;
  webhooks: WebhooksTable;
  notification_channels: NotificationChannelsTable;
  notification_deliveries: NotificationDeliveriesTable;
  ui_sessions: UiSessionsTable;
  archivers: ArchiversTable;
  archive_files: ArchiveFilesTable;
  archive_copies: ArchiveCopiesTable;
  backup_counts: BackupCountsTable;
}

export interface AuditLogTable {
  id: string;
  /** The organization the request was about (or the token's, for organization-less routes). */
  organization_id: string | null;
  token_id: string | null;
  token_name: string | null;
  method: string;
  /** The route pattern, e.g. /v1/organizations/:organization/databases. */
  route: string;
  /** The path as requested, without its query string. */
  path: string;
  status: number;
  remote_address: string | null;
  created_at: string;
}

/** A dashboard sign-in (migrations/0012_ui_sessions.ts); the cookie holds the secret, the id is its sha256. */
export interface UiSessionsTable {
  /** sha256 (hex) of the session secret the browser holds; never the secret. */
  id: string;
  token_id: string;
  /** Sent back by the dashboard in X-CSRF-Token with every write. */
  csrf_token: string;
  user_agent: string | null;
  created_at: string;
  last_seen_at: string;
  /** The idle deadline: last use + the idle lifetime. */
  expires_at: string;
}

/** One fact about the catalog itself (see migrations/0007_catalog_settings.ts). */
export interface CatalogSettingsTable {
  name: string;
  value: string;
  updated_at: string;
}

export type Organization = Selectable<OrganizationsTable>;
export type ServiceToken = Selectable<ServiceTokensTable>;
export type Database = Selectable<DatabasesTable>;
export type Branch = Selectable<BranchesTable>;
export type StorageDestination = Selectable<StorageDestinationsTable>;
export type Backup = Selectable<BackupsTable>;
export type NewBackup = Insertable<BackupsTable>;
export type BackupUpdate = Updateable<BackupsTable>;
export type Artifact = Selectable<ArtifactsTable>;
export type Job = Selectable<JobsTable>;
export type BackupPolicy = Selectable<BackupPoliciesTable>;
export type SchemaSnapshot = Selectable<SchemaSnapshotsTable>;
export type AuditEntry = Selectable<AuditLogTable>;
export type Event = Selectable<EventsTable>;
export type Webhook = Selectable<WebhooksTable>;
export type NotificationChannel = Selectable<NotificationChannelsTable>;
export type NotificationDelivery = Selectable<NotificationDeliveriesTable>;
export type Archiver = Selectable<ArchiversTable>;
export type ArchiveFile = Selectable<ArchiveFilesTable>;
export type ArchiveCopy = Selectable<ArchiveCopiesTable>;
