/**
 * First-start setup: the default organization, and an admin token so that someone can
 * use the API at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppContext } from './context.js';
import { ensureDefaultOrganization } from './catalog/organizations.js';
import { createToken, ensureAdminToken, grantAccesses, ALL_ACCESSES } from './catalog/tokens.js';
import { ensureOrganizationIdentity } from './encryption.js';

export interface BootstrapResult {
  organizationId: string;
  /** Set only when this start created a new admin token: shown once, never again. */
  created?: { id: string; secret: string; file: string };
}

export async function bootstrap(ctx: AppContext): Promise<BootstrapResult> {
  const org = await ensureDefaultOrganization(ctx.db, ctx.secrets, ctx.config.dataDir);
  // Backups are encrypted from the very first one: the default organization gets an age
  // identity under the data dir (the README says how to move it offline).
  await ensureOrganizationIdentity(ctx, org);
  const bt = ctx.config.bootstrapToken;
  if (bt) {
    await ensureAdminToken(ctx.db, org.id, bt.id, bt.secret, 'bootstrap');
    return { organizationId: org.id };
  }
  const any = await ctx.db.selectFrom('service_tokens').select('id').limit(1).executeTakeFirst();
  if (any) return { organizationId: org.id };
  const { token, secret } = await createToken(ctx.db, { organizationId: org.id, name: 'admin', superuser: true });
  await grantAccesses(ctx.db, token.id, ALL_ACCESSES, 'organization', org.id);
  const file = path.join(ctx.config.dataDir, 'bootstrap-token');
  fs.writeFileSync(file, `${token.id}:${secret}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return { organizationId: org.id, created: { id: token.id, secret, file } };
}
