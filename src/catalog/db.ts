/**
 * Opens the catalog. This file and nothing else knows which SQL dialect is in use:
 * SQLite (better-sqlite3, one file, the default) or PostgreSQL (several workers).
 * Everything else talks Kysely and stays dialect-agnostic.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider } from 'kysely';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { CatalogSchema } from './schema.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_jobs_restore_verify.js';
import * as m0003 from './migrations/0003_backup_policies.js';
import * as m0004 from './migrations/0004_encryption_destinations.js';
import * as m0005 from './migrations/0005_schema_snapshots.js';
import * as m0006 from './migrations/0006_audit_log.js';

export type CatalogDb = Kysely<CatalogSchema>;

export interface Catalog {
  db: CatalogDb;
  dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;
}

/** Numbered migrations, in order. Add new files here; never edit a landed one. */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_jobs_restore_verify': m0002,
  '0003_backup_policies': m0003,
  '0004_encryption_destinations': m0004,
  '0005_schema_snapshots': m0005,
  '0006_audit_log': m0006,
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

/** Open the catalog at `url` ("sqlite:<file>" or "postgres://...") and bring its schema up to date. */
export async function openCatalog(url: string): Promise<Catalog> {
  let catalog: Catalog;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const sqlite = new SQLite(file);
    // WAL lets API reads go on while a job writes; busy_timeout waits out short write locks
    // instead of failing with SQLITE_BUSY.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('synchronous = NORMAL');
    if (file !== ':memory:') {
      try {
        fs.chmodSync(file, 0o600);
      } catch {
        /* best effort: the file may be on a filesystem without modes */
      }
    }
    const db = new Kysely<CatalogSchema>({ dialect: new SqliteDialect({ database: sqlite }) });
    catalog = { db, dialect: 'sqlite', close: () => db.destroy() };
  } else {
    // int8 columns (sizes) come back as strings by default; our sizes fit in a double.
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    const db = new Kysely<CatalogSchema>({ dialect: new PostgresDialect({ pool }) });
    catalog = { db, dialect: 'postgres', close: () => db.destroy() };
  }
  await migrate(catalog.db);
  return catalog;
}

/** Run pending migrations. Kysely's Migrator takes a lock so that concurrent starts are safe. */
export async function migrate(db: CatalogDb): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`catalog migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? error}`);
  }
}
