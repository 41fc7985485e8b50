/** Turn a storage destination row (config sealed at rest) into a live provider. */
import type { AppContext } from './context.js';
import type { StorageDestination } from './catalog/schema.js';
import { openStorage } from './storage/registry.js';
import type { StorageProvider } from './storage/provider.js';

export function openDestination(ctx: AppContext, dest: StorageDestination): StorageProvider {
  const config = JSON.parse(ctx.secrets.open(dest.config_enc)) as Record<string, unknown>;
  return openStorage({ provider: dest.provider, config });
}

export async function openDestinationById(ctx: AppContext, id: string): Promise<{ dest: StorageDestination; provider: StorageProvider }> {
  const dest = await ctx.db.selectFrom('storage_destinations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { dest, provider: openDestination(ctx, dest) };
}
