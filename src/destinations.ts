/**
 * Turn a storage destination row (config sealed at rest) into a live provider, and keep
 * local destinations inside the folders the operator allows.
 *
 * Local folders: every path is normalized (resolved, and the part that exists taken
 * through realpath, so neither ".." nor a symlink leads elsewhere) and must lie in one of
 * the roots (config.localRoots: `<data dir>/backups` and STRONGBOX_LOCAL_ROOTS). A
 * server-admin token may use any folder of a root; any other token only its own
 * organization's folder of a root, `<root>/<organization>/...`, which is where that
 * organization's backups go in the default destination too. Nothing in the data dir but
 * its backups folder is ever allowed: the catalog and the keys are there.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppContext } from './context.js';
import type { StorageDestination } from './catalog/schema.js';
import { openStorage } from './storage/registry.js';
import { StorageError, type StorageProvider } from './storage/provider.js';
import { retryingProvider } from './storage/retry.js';

/** Whether `child` is `parent` or inside it (both absolute and normalized). */
export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel));
}

/**
 * `p` resolved, with its longest existing prefix replaced by that prefix's realpath: the
 * folder a local provider rooted at `p` really writes to, as far as it exists yet.
 */
export function normalizeLocalPath(p: string): string {
  let existing = path.resolve(p);
  const rest: string[] = [];
  for (let hops = 0; ; ) {
    try {
      return path.join(fs.realpathSync(existing), ...rest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const parent = path.dirname(existing);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === existing) return path.resolve(p);
      // A dangling symlink: where it points is where a write through it would land.
      let link: fs.Stats | undefined;
      try {
        link = fs.lstatSync(existing);
      } catch {
        /* missing, or under something that is not a folder: nothing to follow */
      }
      if (link?.isSymbolicLink() && hops++ < 40) {
        existing = path.resolve(parent, fs.readlinkSync(existing));
        continue;
      }
      rest.unshift(path.basename(existing));
      existing = parent;
    }
  }
}

/** Why a local path was refused; `forbidden`: the folder is allowed, but not to this caller. */
export class LocalPathError extends Error {
  constructor(
    message: string,
    readonly forbidden: boolean,
  ) {
    super(message);
    this.name = 'LocalPathError';
  }
}

/**
 * Check a local destination's folder for a caller and return it normalized (what to
 * store). `organization` is the destination's organization; `superuser` whether the
 * caller is a server admin. Throws LocalPathError.
 */
export function confineLocalPath(ctx: Pick<AppContext, 'config'>, requested: string, organization: string, superuser: boolean): string {
  const where = normalizeLocalPath(requested);
  const roots = ctx.config.localRoots.map(normalizeLocalPath);
  const [backups] = roots;
  if (isWithin(where, normalizeLocalPath(ctx.config.dataDir)) && !isWithin(where, backups)) {
    throw new LocalPathError(`${requested} is inside the data directory, which holds the catalog and the keys; only its backups folder (${backups}) can hold destinations`, false);
  }
  if (!roots.some((r) => isWithin(where, r))) {
    throw new LocalPathError(`${requested} is outside the folders local destinations may use: ${roots.join(', ')} (the server's operator sets them with STRONGBOX_LOCAL_ROOTS)`, false);
  }
  if (!superuser) {
    const own = roots.map((r) => path.join(r, organization));
    if (!own.some((r) => isWithin(where, r))) {
      throw new LocalPathError(`${requested} is not in this organization's folders: a destination of organization "${organization}" must be inside ${own.join(' or ')}`, true);
    }
  }
  return where;
}

/**
 * The provider of a destination, wrapped in the retry layer: transient errors of single
 * calls (stat, put, read, list, delete) are retried with backoff; streaming writes retry
 * their own parts inside the provider.
 */
export function openDestination(ctx: AppContext, dest: StorageDestination): StorageProvider {
  const config = JSON.parse(ctx.secrets.open(dest.config_enc)) as Record<string, unknown>;
  if (dest.provider === 'local' && typeof config.path === 'string') {
    // Checked again on every use: the roots may have been narrowed since the destination was
    // made, or the folder replaced by a symlink. Which organization may use which part of a
    // root was settled when the destination was made, by whoever made it.
    const where = normalizeLocalPath(config.path);
    const roots = ctx.config.localRoots.map(normalizeLocalPath);
    if (!roots.some((r) => isWithin(where, r))) {
      throw new StorageError(`destination "${dest.name}": its folder ${config.path} is outside the folders local destinations may use (STRONGBOX_LOCAL_ROOTS: ${roots.join(', ')})`, true);
    }
  }
  return retryingProvider(openStorage({ provider: dest.provider, config }));
}

export async function openDestinationById(ctx: AppContext, id: string): Promise<{ dest: StorageDestination; provider: StorageProvider }> {
  const dest = await ctx.db.selectFrom('storage_destinations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { dest, provider: openDestination(ctx, dest) };
}
