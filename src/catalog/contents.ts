/** What each backup's dump holds (pipeline/rowcount/contents.ts), one row per backup. */
import type { CatalogDb } from './db.js';
import { nowIso } from './ids.js';
import { parseContents, type DumpContents } from '../pipeline/rowcount/contents.js';

/** Record (or replace) the contents of a backup's dump. */
export async function saveContents(db: CatalogDb, backupId: string, contents: DumpContents, now: Date): Promise<void> {
  const json = JSON.stringify(contents);
  await db
    .insertInto('backup_contents')
    .values({ backup_id: backupId, contents: json, created_at: nowIso(now) })
    .onConflict((oc) => oc.column('backup_id').doUpdateSet({ contents: json }))
    .execute();
}

/** The contents recorded with a backup, or null (an older backup, or a dump that could not be read). */
export async function loadContents(db: CatalogDb, backupId: string): Promise<DumpContents | null> {
  const row = await db.selectFrom('backup_contents').select('contents').where('backup_id', '=', backupId).executeTakeFirst();
  return parseContents(row?.contents);
}
