/**
 * The PostgreSQL WAL receiver: pg_receivewal on a replication slot into a spool folder,
 * shipping each completed segment. (Being written.)
 */
import type { ArchiveReceiver } from '../receiver.js';

export const postgresReceiver: ArchiveReceiver = {
  async preconditions() {
    return ['continuous archiving of PostgreSQL is not available yet'];
  },
  async run() {
    throw new Error('continuous archiving of PostgreSQL is not available yet');
  },
};
