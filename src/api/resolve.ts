/**
 * Find the organization / database / branch / backup a route names, as the caller is
 * allowed to see it: anything in another organization, or deleted, is a plain 404.
 */
import type { CatalogDb } from '../catalog/db.js';
import type { Backup, Branch, Database, Organization } from '../catalog/schema.js';
import { canSeeOrganization, type Principal } from './auth.js';
import { notFound } from './errors.js';
import { memoized } from '../catalog/memo.js';

export async function resolveOrganization(db: CatalogDb, p: Principal, name: string): Promise<Organization> {
  const org = await memoized(db, `org\u0000${name}`, () => db.selectFrom('organizations').selectAll().where('name', '=', name).executeTakeFirst());
  if (!org || !canSeeOrganization(p, org.id)) throw notFound(`Organization "${name}" not found`);
  return org;
}

export async function resolveDatabase(db: CatalogDb, p: Principal, orgName: string, dbName: string): Promise<{ org: Organization; database: Database }> {
  const org = await resolveOrganization(db, p, orgName);
  const database = await memoized(db, `database\u0000${org.id}\u0000${dbName}`, () =>
    db.selectFrom('databases').selectAll().where('organization_id', '=', org.id).where('name', '=', dbName).where('deleted_at', 'is', null).executeTakeFirst(),
  );
  if (!database) throw notFound(`Database "${dbName}" not found`);
  return { org, database };
}

export async function resolveBranch(
  db: CatalogDb,
  p: Principal,
  orgName: string,
  dbName: string,
  branchName: string,
): Promise<{ org: Organization; database: Database; branch: Branch }> {
  const { org, database } = await resolveDatabase(db, p, orgName, dbName);
  const branch = await memoized(db, `branch\u0000${database.id}\u0000${branchName}`, () =>
    db.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('name', '=', branchName).where('deleted_at', 'is', null).executeTakeFirst(),
  );
  if (!branch) throw notFound(`Branch "${branchName}" not found`);
  return { org, database, branch };
}

export async function resolveBackup(
  db: CatalogDb,
  p: Principal,
  params: { organization: string; database: string; branch: string; id: string },
): Promise<{ org: Organization; database: Database; branch: Branch; backup: Backup }> {
  const r = await resolveBranch(db, p, params.organization, params.database, params.branch);
  const backup = await db.selectFrom('backups').selectAll().where('id', '=', params.id).where('branch_id', '=', r.branch.id).executeTakeFirst();
  if (!backup) throw notFound(`Backup "${params.id}" not found`);
  return { ...r, backup };
}
