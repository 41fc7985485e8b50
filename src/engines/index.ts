// Source engines: how Strongbox talks to the databases it backs up (PostgreSQL, MySQL/MariaDB):
// probe a server, dump a database as a stream, restore a dump, and check what is there.
import type { Engine, EngineKind } from './engine.js';
import { mysql } from './mysql/index.js';
import { postgres } from './postgres/index.js';

export * from './engine.js';
export { ConnectionUrlError, isSafeDatabaseName, parseConnectionUrl, redactConnectionUrl } from './connection.js';
export { databaseIdentity, sameDatabase, type DatabaseIdentity } from './identity.js';
export { mysql } from './mysql/index.js';
export { postgres } from './postgres/index.js';

const ENGINES: Record<EngineKind, Engine> = { postgresql: postgres, mysql };

/** The engine for a database kind. */
export function engineFor(kind: EngineKind): Engine {
  const engine = ENGINES[kind];
  // Kinds come from the catalog; a stray value must fail loudly, not as "undefined is not a function".
  if (!engine) throw new Error(`unknown engine kind "${String(kind)}"`);
  return engine;
}
