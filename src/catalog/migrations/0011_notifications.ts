import type { CreateTableBuilder, Kysely } from 'kysely';

/**
 * Notifications (issue 12):
 * - webhooks: PlanetScale-style endpoints, each with a signing secret (sealed with the
 *   catalog's secret key, like connection URLs) and an event filter;
 * - notification_channels: Slack, Discord, Telegram, ntfy, email; the non-secret settings
 *   as JSON, the secret ones (webhook URLs, bot tokens, passwords) sealed apart;
 * - notification_deliveries: the outbox, one row per event × target, with its attempts,
 *   the next one's time and the last result; a lease (owner + expiry) so that of several
 *   processes exactly one sends it at a time, and one killed mid-send hands it on;
 * - events.payload: the resource as the API showed it when the event happened (JSON),
 *   so that a delivery retried an hour later still says what happened then;
 * - indexes for the event sweep: it reads only rows finished since its last pass, and
 *   asks whether a job already has its event (recordFailedDrills joins on job_id).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('events').addColumn('payload', 'text').execute();
  await db.schema.createIndex('events_job').on('events').column('job_id').execute();
  await db.schema.createIndex('backups_completed').on('backups').column('completed_at').execute();
  await db.schema.createIndex('jobs_completed').on('jobs').column('completed_at').execute();

  // What webhooks and channels share: the organization, the filter, the state of the endpoint.
  const target = (t: CreateTableBuilder<string, any>) =>
    t
      .addColumn('events', 'text', (c) => c.notNull())
      .addColumn('database_id', 'text')
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .addColumn('disabled_reason', 'text')
      .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('last_sent_at', 'text')
      .addColumn('last_sent_success', 'integer')
      .addColumn('last_sent_result', 'text');
  await target(
    db.schema
      .createTable('webhooks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('secret_enc', 'text', (c) => c.notNull()),
  ).execute();
  await target(
    db.schema
      .createTable('notification_channels')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('config', 'text', (c) => c.notNull())
      .addColumn('secrets_enc', 'text', (c) => c.notNull()),
  ).execute();
  await db.schema.createIndex('webhooks_org').on('webhooks').columns(['organization_id', 'created_at']).execute();
  await db.schema.createIndex('notification_channels_org').on('notification_channels').columns(['organization_id', 'created_at']).execute();
  await db.schema.createIndex('notification_channels_name').on('notification_channels').columns(['organization_id', 'name']).unique().execute();

  await db.schema
    .createTable('notification_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('target_type', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text')
    .addColumn('status_code', 'integer')
    .addColumn('error', 'text')
    .addColumn('duration_ms', 'integer')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  // One delivery per event and target, however many processes fan the event out.
  await db.schema.createIndex('notification_deliveries_event_target').on('notification_deliveries').columns(['event_id', 'target_id']).unique().execute();
  await db.schema.createIndex('notification_deliveries_due').on('notification_deliveries').columns(['state', 'next_attempt_at']).execute();
  await db.schema.createIndex('notification_deliveries_target').on('notification_deliveries').columns(['target_id', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('notification_deliveries').execute();
  await db.schema.dropTable('notification_channels').execute();
  await db.schema.dropTable('webhooks').execute();
  await db.schema.dropIndex('jobs_completed').execute();
  await db.schema.dropIndex('backups_completed').execute();
  await db.schema.dropIndex('events_job').execute();
  await db.schema.alterTable('events').dropColumn('payload').execute();
}
