/**
 * The receiver of a branch's journal: what streams a server's WAL (PostgreSQL) or binlogs
 * (MariaDB/MySQL) and ships every completed file (ship.ts). One implementation per engine,
 * registered here by kind; the archive manager (manager.ts) runs it under a lease.
 */
import type { AppContext } from '../context.js';
import type { Archiver } from '../catalog/schema.js';
import type { ConnectionInfo } from '../engines/engine.js';
import { postgresReceiver } from './postgres/receiver.js';
import { mysqlReceiver } from './mysql/receiver.js';

export interface ArchiveReceiver {
  /**
   * What the server lacks for archiving, as clear sentences naming the setting or the
   * privilege to change (e.g. "wal_level is minimal; set wal_level = replica and restart").
   * [] when it is ready. Throws only when the server cannot be reached or asked at all
   * (an EngineError with the reason). Safe to call at any time; changes nothing.
   */
  preconditions(ctx: AppContext, conn: ConnectionInfo): Promise<string[]>;
  /**
   * Stream until `signal` aborts: resume from where the catalog says (the archiver's
   * position / slot, the files already stored), ship every file as soon as it is complete,
   * keep the archiver's `position` current. Resolves after an abort once the tools have
   * stopped (a file being received stays for the next run); throws on any failure (the
   * manager records it and retries). Safe to run again after a crash: what a dead run left
   * on disk is shipped first, and shipping is idempotent.
   */
  run(ctx: AppContext, archiver: Archiver, conn: ConnectionInfo, signal: AbortSignal): Promise<void>;
}

const receivers: Record<'postgresql' | 'mysql', ArchiveReceiver | null> = {
  postgresql: postgresReceiver,
  mysql: mysqlReceiver,
};

/** The receiver for a database kind; throws when that engine cannot be archived (yet). */
export function receiverFor(kind: 'postgresql' | 'mysql'): ArchiveReceiver {
  const r = receivers[kind];
  if (!r) throw new Error(`continuous archiving of ${kind === 'mysql' ? 'MariaDB/MySQL' : kind} branches is not available`);
  return r;
}
