/** The recovery window of an archived MariaDB/MySQL branch. Stub: the mysql-pitr task replaces it. */
import type { AppContext } from '../../context.js';
import type { Branch } from '../../catalog/schema.js';

export async function mysqlRecoveryWindow(_ctx: AppContext, _branch: Branch): Promise<{ earliest: string | null; latest: string | null; gaps: Array<{ after: string | null; before: string | null; missing: string[] }> }> {
  return { earliest: null, latest: null, gaps: [] };
}
