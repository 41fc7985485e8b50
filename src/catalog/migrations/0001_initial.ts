import type { Kysely } from 'kysely';

/** The foundation tables. Never edit once landed: add a new numbered migration instead. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('organizations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('encryption_recipients', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('service_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('superuser', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'text')
    .addColumn('expires_at', 'text')
    .addColumn('deleted_at', 'text')
    .execute();

  await db.schema
    .createTable('service_token_accesses')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('token_id', 'text', (c) => c.notNull().references('service_tokens.id'))
    .addColumn('access', 'text', (c) => c.notNull())
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('service_token_accesses_unique', ['token_id', 'access', 'resource_type', 'resource_id'])
    .execute();

  await db.schema
    .createTable('databases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('deleted_at', 'text')
    .addUniqueConstraint('databases_org_name', ['organization_id', 'name'])
    .execute();

  await db.schema
    .createTable('branches')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('database_id', 'text', (c) => c.notNull().references('databases.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('production', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('connection_url_enc', 'text')
    .addColumn('conn_host', 'text', (c) => c.notNull())
    .addColumn('conn_port', 'integer', (c) => c.notNull())
    .addColumn('conn_database', 'text', (c) => c.notNull())
    .addColumn('conn_user', 'text', (c) => c.notNull())
    .addColumn('server_version', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('deleted_at', 'text')
    .addUniqueConstraint('branches_db_name', ['database_id', 'name'])
    .execute();

  await db.schema
    .createTable('storage_destinations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('config_enc', 'text', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('storage_destinations_org_name', ['organization_id', 'name'])
    .execute();

  await db.schema
    .createTable('backups')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('database_id', 'text', (c) => c.notNull().references('databases.id'))
    .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('raw_size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('pvc_size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('required', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('emergency', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('backup_policy_id', 'text')
    .addColumn('actor_id', 'text')
    .addColumn('actor_name', 'text')
    .addColumn('retention_value', 'integer', (c) => c.notNull())
    .addColumn('retention_unit', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('completed_at', 'text')
    .addColumn('expires_at', 'text')
    .addColumn('deleted_at', 'text')
    .addColumn('error', 'text')
    .addColumn('engine', 'text', (c) => c.notNull())
    .addColumn('server_version', 'text')
    .addColumn('client_version', 'text')
    .addColumn('compression', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text')
    .addColumn('table_row_counts', 'text')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_raw_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_at', 'text')
    .execute();
  await db.schema.createIndex('backups_branch_created').on('backups').columns(['branch_id', 'created_at']).execute();
  await db.schema.createIndex('backups_state_created').on('backups').columns(['state', 'created_at']).execute();

  await db.schema
    .createTable('artifacts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('backup_id', 'text', (c) => c.notNull().references('backups.id'))
    .addColumn('destination_id', 'text', (c) => c.notNull().references('storage_destinations.id'))
    .addColumn('destination_name', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('sha256', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('artifacts_backup').on('artifacts').column('backup_id').execute();
}
