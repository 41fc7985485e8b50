/** Point-in-time restore of a MariaDB/MySQL branch. Stub: the mysql-pitr task replaces it. */
import type { AppContext } from '../../context.js';
import type { Job } from '../../catalog/schema.js';

export async function restoreMysqlToPoint(_ctx: AppContext, _job: Job, _plan: unknown, _signal: AbortSignal): Promise<void> {
  throw new Error('point-in-time restore of MariaDB/MySQL is not available yet');
}
