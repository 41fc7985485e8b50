/** Organizations and their storage destinations. */
import path from 'node:path';
import type { CatalogDb } from './db.js';
import type { Database, Organization, StorageDestination } from './schema.js';
import { newId, nowIso } from './ids.js';
import type { SecretBox } from '../secrets.js';

export const DEFAULT_ORGANIZATION = 'default';
export const DEFAULT_DESTINATION = 'local';

export async function findOrganizationByName(db: CatalogDb, name: string): Promise<Organization | undefined> {
  return db.selectFrom('organizations').selectAll().where('name', '=', name).executeTakeFirst();
}

/**
 * Create an organization with its default destination: a local folder under the data
 * directory, so a fresh install can take backups with no configuration at all.
 */
export async function createOrganization(db: CatalogDb, secrets: SecretBox, dataDir: string, name: string): Promise<Organization> {
  const now = nowIso();
  const org: Organization = { id: newId(), name, encryption_recipients: null, created_at: now, updated_at: now };
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('organizations').values(org).execute();
    await trx
      .insertInto('storage_destinations')
      .values({
        id: newId(),
        organization_id: org.id,
        name: DEFAULT_DESTINATION,
        provider: 'local',
        config_enc: secrets.seal(JSON.stringify({ path: path.join(dataDir, 'backups') })),
        is_default: 1,
        created_at: now,
        updated_at: now,
      })
      .execute();
  });
  return org;
}

export async function ensureDefaultOrganization(db: CatalogDb, secrets: SecretBox, dataDir: string): Promise<Organization> {
  const existing = await findOrganizationByName(db, DEFAULT_ORGANIZATION);
  if (existing) return existing;
  try {
    return await createOrganization(db, secrets, dataDir, DEFAULT_ORGANIZATION);
  } catch (e) {
    // Another worker created it between our read and our insert.
    const again = await findOrganizationByName(db, DEFAULT_ORGANIZATION);
    if (again) return again;
    throw e;
  }
}

/**
 * The destinations a new backup of `database` is written to: the ones it chose, or else
 * its organization's default ones.
 */
export async function destinationsFor(db: CatalogDb, database: Pick<Database, 'organization_id' | 'storage_destinations'>): Promise<StorageDestination[]> {
  const q = db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', database.organization_id);
  if (database.storage_destinations !== null) {
    const ids = JSON.parse(database.storage_destinations) as string[];
    return ids.length ? q.where('id', 'in', ids).orderBy('name').execute() : [];
  }
  return q.where('is_default', '=', 1).orderBy('name').execute();
}
