/** Schema snapshots: one row per distinct schema of a branch, shared by the backups that saw it. */
import crypto from 'node:crypto';
import type { CatalogDb } from './db.js';
import type { Branch, SchemaSnapshot } from './schema.js';
import { newId, nowIso } from './ids.js';

export async function recordSnapshot(db: CatalogDb, branch: Branch, ddl: string, now: Date): Promise<SchemaSnapshot> {
  const sha256 = crypto.createHash('sha256').update(ddl).digest('hex');
  const same = await db.selectFrom('schema_snapshots').selectAll().where('branch_id', '=', branch.id).where('sha256', '=', sha256).executeTakeFirst();
  if (same) return same;
  const row: SchemaSnapshot = {
    id: newId(),
    organization_id: branch.organization_id,
    database_id: branch.database_id,
    branch_id: branch.id,
    name: `${branch.name}-${nowIso(now).slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}`,
    ddl,
    sha256,
    created_at: nowIso(now),
    updated_at: nowIso(now),
    linted_at: null,
  };
  await db.insertInto('schema_snapshots').values(row).execute();
  return row;
}
