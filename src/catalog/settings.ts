/** Facts about the catalog itself (the `catalog_settings` table), one value per name. */
import type { Kysely } from 'kysely';
import type { CatalogSchema } from './schema.js';
import { nowIso } from './ids.js';

/** The fingerprint of the secret key the catalog's secrets are sealed with (secrets.ts keyFingerprint). */
export const SECRET_KEY_FINGERPRINT = 'secret_key_fingerprint';

type Db = Kysely<CatalogSchema>;

export async function getSetting(db: Db, name: string): Promise<string | null> {
  const row = await db.selectFrom('catalog_settings').select('value').where('name', '=', name).executeTakeFirst();
  return row?.value ?? null;
}

/**
 * Record `value` unless a value is already there, and return the one that stands: of two
 * processes starting at once on a new catalog, the first insert wins and both see it.
 */
export async function settleSetting(db: Db, name: string, value: string, now = new Date()): Promise<string> {
  await db
    .insertInto('catalog_settings')
    .values({ name, value, updated_at: nowIso(now) })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  return (await getSetting(db, name))!;
}

/** Set `value`, whatever was there (inside the caller's transaction when it passes one). */
export async function putSetting(db: Db, name: string, value: string, now = new Date()): Promise<void> {
  await db
    .insertInto('catalog_settings')
    .values({ name, value, updated_at: nowIso(now) })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: nowIso(now) }))
    .execute();
}
