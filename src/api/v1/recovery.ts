/**
 * The recovery window of an archived branch (our extension to the PlanetScale API): the
 * times a create-branch with `restore_point` can reach, and the holes a missing archive
 * file makes.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { recoveryWindow } from '../../archive/window.js';
import { requireAccess } from '../auth.js';
import { resolveBranch } from '../resolve.js';
import { BranchParams, Nullable } from './schemas.js';

const RecoveryWindowSchema = Type.Object(
  {
    earliest: Nullable(Type.String({ description: 'the earliest restorable time: when the oldest kept base backup (PostgreSQL) or dump with binlog coordinates (MariaDB/MySQL) was consistent; null: nothing restorable' })),
    latest: Nullable(Type.String({ description: 'the latest restorable time: the last commit in the archive that can be replayed to (what the server wrote since is archived once its current WAL segment or binlog is complete)' })),
    gaps: Type.Array(
      Type.Object(
        {
          after: Nullable(Type.String({ description: 'the last restorable time before the gap' })),
          before: Nullable(Type.String({ description: 'the first restorable time after it (null: none until a newer backup)' })),
          missing: Type.Array(Type.String(), { description: 'the missing WAL segments or binlog files (the first 20, then a count)' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export function recoveryRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/organizations/:organization/databases/:database/branches/:branch/recovery-window',
      {
        schema: {
          tags: ['Branches'],
          operationId: 'get_recovery_window',
          summary: 'The times a point-in-time restore of the branch can reach',
          description:
            'Strongbox extension. For a branch with continuous archiving: `earliest` and `latest` bound the times `restore_point` (create-branch) can take, and each of `gaps` is a hole a missing archive file makes, where a restore is refused. ' +
            'All null and empty for a branch that is not archived. Needs read_backups.',
          params: BranchParams,
          response: { 200: RecoveryWindowSchema },
        },
      },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        return recoveryWindow(ctx, branch);
      },
    );
  };
}
