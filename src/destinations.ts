/** Turn a storage destination row (config sealed at rest) into a live provider. */
import type { AppContext } from './context.js';
import type { StorageDestination } from './catalog/schema.js';
import { openStorage } from './storage/registry.js';
import type { StorageProvider } from './storage/provider.js';
import { retryingProvider } from './storage/retry.js';

/**
 * The provider of a destination, wrapped in the retry layer: transient errors of single
 * calls (stat, put, read, list, delete) are retried with backoff; streaming writes retry
 * their own parts inside the provider.
 */
export function openDestination(ctx: AppContext, dest: StorageDestination): StorageProvider {
  const config = JSON.parse(ctx.secrets.open(dest.config_enc)) as Record<string, unknown>;
  return retryingProvider(openStorage({ provider: dest.provider, config }));
}

export async function openDestinationById(ctx: AppContext, id: string): Promise<{ dest: StorageDestination; provider: StorageProvider }> {
  const dest = await ctx.db.selectFrom('storage_destinations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { dest, provider: openDestination(ctx, dest) };
}
