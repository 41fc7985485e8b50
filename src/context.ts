/**
 * The services one Strongbox process shares between its HTTP API, its job runner and its
 * CLI commands, built once at start.
 */
import fs from 'node:fs';
import { pino, type Logger } from 'pino';
import type { Config } from './config.js';
import { openCatalog, type Catalog, type CatalogDb } from './catalog/db.js';
import { loadSecretBox, type SecretBox } from './secrets.js';

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

export async function createContext(config: Config, opts: { log?: Logger; clock?: () => Date } = {}): Promise<AppContext> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const log = opts.log ?? pino({ level: config.logLevel, redact: LOG_REDACT });
  const secrets = loadSecretBox(config.dataDir, config.secretKey);
  const catalog = await openCatalog(config.catalogUrl);
  return { config, catalog, db: catalog.db, secrets, log, clock: opts.clock ?? (() => new Date()), nudge: () => {}, cancelLocal: () => false };
}
