/**
 * The services one Strongbox process shares between its HTTP API, its job runner and its
 * CLI commands, built once at start.
 */
import fs from 'node:fs';
import { pino, type Logger } from 'pino';
import type { Config } from './config.js';
import { openCatalog, type Catalog, type CatalogDb, type CatalogLock } from './catalog/db.js';
import { getSetting, SECRET_KEY_FINGERPRINT, settleSetting } from './catalog/settings.js';
import { keyFile, loadSecretBox, type SecretBox } from './secrets.js';
import { tagIdentityFiles } from './encryption.js';
import { prettyDestination, prettyLogs } from './log.js';

export interface AppContext {
  config: Config;
  catalog: Catalog;
  db: CatalogDb;
  secrets: SecretBox;
  log: Logger;
  /** The time. Injectable so tests can run schedules and expiry on a simulated clock. */
  clock: () => Date;
  /** Wake the job runner (a backup was queued); a no-op when no runner is attached. */
  nudge: () => void;
  /** Stop a backup or job at once if this process runs it; false otherwise (the heartbeat of its worker will see the request). */
  cancelLocal: (id: string) => boolean;
}

/** Redact anything that may hold a secret, whatever the log line. */
export const LOG_REDACT = {
  paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'connection_url', '*.connection_url', 'password', '*.password', 'secret', '*.secret', 'token', '*.token', 'age_identity', '*.age_identity'],
  censor: '[redacted]',
};

/**
 * The process's logger, secrets redacted: JSON lines on stdout, or human ones when
 * STRONGBOX_LOG_FORMAT says so or (`auto`) stdout is a terminal (log.ts).
 */
export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): Logger {
  const options = { level: config.logLevel, redact: LOG_REDACT };
  if (prettyLogs(config.logFormat, out.isTTY)) return pino(options, prettyDestination(out));
  return out === process.stdout ? pino(options) : pino(options, out);
}

/** This process's secret key is not the one the catalog's secrets are sealed with. */
export class SecretKeyMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretKeyMismatchError';
  }
}

/** Where this process's key comes from, for messages (never the key). */
export function secretKeySource(config: Config): string {
  return config.secretKey ? 'STRONGBOX_SECRET_KEY' : keyFile(config.dataDir);
}

/**
 * Make sure this process's key is the catalog's: a process with another key would start
 * and then fail every job it claims. The first process on a catalog records its key's
 * fingerprint; on a catalog from before fingerprints, the key must first open a secret
 * that is already there.
 */
async function checkSecretKey(config: Config, db: CatalogDb, secrets: SecretBox, clock: () => Date): Promise<void> {
  const mismatch = (expected: string) =>
    new SecretKeyMismatchError(
      `this process's secret key (${secretKeySource(config)}, fingerprint ${secrets.fingerprint}) is not the one the catalog's secrets are sealed with ` +
        `(${expected}). Every Strongbox process on one catalog needs the same key: give this one the STRONGBOX_SECRET_KEY, or a copy of the secret.key file, ` +
        'of the process that created the catalog (`strongbox secrets fingerprint` prints the fingerprint of a key)',
    );
  let expected = await getSetting(db, SECRET_KEY_FINGERPRINT);
  if (expected === null) {
    const sealed =
      (await db.selectFrom('storage_destinations').select('config_enc as s').limit(1).executeTakeFirst()) ??
      (await db.selectFrom('branches').select('connection_url_enc as s').where('connection_url_enc', 'is not', null).limit(1).executeTakeFirst());
    if (sealed?.s) {
      try {
        secrets.open(sealed.s);
      } catch {
        throw mismatch('a key of unknown fingerprint: the catalog predates key fingerprints');
      }
    }
    expected = await settleSetting(db, SECRET_KEY_FINGERPRINT, secrets.fingerprint, clock());
  }
  if (!secrets.fingerprints.includes(expected)) throw mismatch(`fingerprint ${expected}`);
}

export interface ContextOptions {
  log?: Logger;
  clock?: () => Date;
  /** The process lock to hold on the catalog (see CatalogLock); the `strongbox` commands take one, tests need not. */
  lock?: CatalogLock;
}

export async function createContext(config: Config, opts: ContextOptions = {}): Promise<AppContext> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const log = opts.log ?? createLogger(config);
  const clock = opts.clock ?? (() => new Date());
  const catalog = await openCatalog(config.catalogUrl, { lock: opts.lock });
  let secrets: SecretBox;
  try {
    secrets = loadSecretBox(config.dataDir, config.secretKey, await getSetting(catalog.db, SECRET_KEY_FINGERPRINT));
    await checkSecretKey(config, catalog.db, secrets, clock);
    // Identities generated before they named their organization: name it, so that a restore
    // can tell its own organization's keys from another's (encryption.ts identityFilesFor).
    tagIdentityFiles(config.dataDir, await catalog.db.selectFrom('organizations').select(['id', 'name']).execute());
  } catch (e) {
    await catalog.close().catch(() => {});
    throw e;
  }
  return { config, catalog, db: catalog.db, secrets, log, clock, nudge: () => {}, cancelLocal: () => false };
}
