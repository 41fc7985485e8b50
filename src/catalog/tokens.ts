/**
 * Service tokens and their accesses. Secrets are stored only as scrypt hashes and
 * compared in constant time.
 */
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import type { CatalogDb } from './db.js';
import type { ResourceType, ServiceToken } from './schema.js';
import { newId, nowIso } from './ids.js';

const scrypt = promisify(crypto.scrypt) as (pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;
const SCRYPT = { N: 16384, r: 8, p: 1 };

/** Every access a token can hold (PlanetScale's names). An admin token holds them all. */
export const ALL_ACCESSES = [
  'read_backups',
  'write_backups',
  'delete_backups',
  'delete_production_branch_backups',
  'restore_backup',
  'restore_production_branch_backup',
  'read_databases',
  'write_databases',
  'read_branches',
  'write_branches',
  'read_organization',
  'write_organization',
] as const;
export type Access = (typeof ALL_ACCESSES)[number];

export async function hashSecret(secret: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(secret, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(secret, Buffer.from(salt, 'base64'), expected.length, { ...SCRYPT, N: Number(n) });
  return crypto.timingSafeEqual(actual, expected);
}

/** A new random secret: 32 bytes, URL-safe. */
export function newSecret(): string {
  return 'sbx_' + crypto.randomBytes(32).toString('base64url');
}

export interface TokenAccess {
  access: string;
  resource_type: ResourceType;
  resource_id: string;
}

export async function createToken(
  db: CatalogDb,
  opts: { organizationId: string; name: string; id?: string; secret?: string; superuser?: boolean; expiresAt?: string | null },
): Promise<{ token: ServiceToken; secret: string }> {
  const secret = opts.secret ?? newSecret();
  const now = nowIso();
  const token: ServiceToken = {
    id: opts.id ?? newId(),
    organization_id: opts.organizationId,
    name: opts.name,
    secret_hash: await hashSecret(secret),
    superuser: opts.superuser ? 1 : 0,
    created_at: now,
    updated_at: now,
    last_used_at: null,
    expires_at: opts.expiresAt ?? null,
    deleted_at: null,
  };
  await db.insertInto('service_tokens').values(token).execute();
  return { token, secret };
}

export async function grantAccesses(db: CatalogDb, tokenId: string, accesses: readonly string[], resourceType: ResourceType, resourceId: string): Promise<void> {
  const now = nowIso();
  for (const access of accesses) {
    await db
      .insertInto('service_token_accesses')
      .values({ id: newId(), token_id: tokenId, access, resource_type: resourceType, resource_id: resourceId, created_at: now })
      .onConflict((oc) => oc.columns(['token_id', 'access', 'resource_type', 'resource_id']).doNothing())
      .execute();
  }
}

export async function revokeAccesses(db: CatalogDb, tokenId: string, accesses: readonly string[], resourceType: ResourceType, resourceId: string): Promise<void> {
  await db
    .deleteFrom('service_token_accesses')
    .where('token_id', '=', tokenId)
    .where('resource_type', '=', resourceType)
    .where('resource_id', '=', resourceId)
    .where('access', 'in', accesses)
    .execute();
}

export async function tokenAccesses(db: CatalogDb, tokenId: string): Promise<TokenAccess[]> {
  return db.selectFrom('service_token_accesses').select(['access', 'resource_type', 'resource_id']).where('token_id', '=', tokenId).execute();
}

/**
 * Ensure an admin token with exactly this id and secret exists in `organizationId`:
 * created if missing, its secret re-hashed if it changed, its accesses completed.
 */
export async function ensureAdminToken(db: CatalogDb, organizationId: string, id: string, secret: string, name: string): Promise<void> {
  const existing = await db.selectFrom('service_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  if (!existing) {
    await createToken(db, { organizationId, name, id, secret, superuser: true });
  } else if (existing.organization_id !== organizationId) {
    throw new Error(`the bootstrap token id "${id}" already belongs to another organization`);
  } else if (existing.deleted_at !== null || !(await verifySecret(secret, existing.secret_hash)) || existing.superuser !== 1) {
    await db
      .updateTable('service_tokens')
      .set({ secret_hash: await hashSecret(secret), superuser: 1, deleted_at: null, updated_at: nowIso() })
      .where('id', '=', id)
      .execute();
  }
  await grantAccesses(db, id, ALL_ACCESSES, 'organization', organizationId);
}
