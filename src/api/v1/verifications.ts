/**
 * A branch's verifications (those asked for and the restore drills its policies
 * scheduled), newest first: where a drill's results are listed. A backup's own are at
 * `.../backups/{id}/verifications`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { requireAccess } from '../auth.js';
import { envelope } from '../paging.js';
import { resolveBranch } from '../resolve.js';
import { presentVerification } from './present.js';
import { BranchParams, ListEnvelope, PageQuery, Verification } from './schemas.js';

const JobState = Type.Union(['pending', 'running', 'success', 'failed', 'canceled'].map((s) => Type.Literal(s)));

export function verificationRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/organizations/:organization/databases/:database/branches/:branch/verifications',
      {
        schema: {
          tags: ['Backups'],
          summary: "A branch's verifications and restore drills, newest first",
          description: '`drill=true` lists only the restore drills backup policies scheduled (`drill=false` only those asked for); `state` filters by state.',
          params: BranchParams,
          querystring: Type.Object({ drill: Type.Optional(Type.Boolean()), state: Type.Optional(JobState), ...PageQuery }, { additionalProperties: false }),
          response: { 200: ListEnvelope(Verification) },
        },
      },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        let q = ctx.db.selectFrom('jobs').innerJoin('backups', 'backups.id', 'jobs.backup_id').where('backups.branch_id', '=', branch.id).where('jobs.kind', '=', 'verify');
        if (req.query.drill !== undefined) q = q.where('jobs.policy_id', req.query.drill ? 'is not' : 'is', null);
        if (req.query.state !== undefined) q = q.where('jobs.state', '=', req.query.state as 'pending');
        const { n } = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
        const rows = await q
          .selectAll('jobs')
          .orderBy('jobs.created_at', 'desc')
          .orderBy('jobs.id', 'desc')
          .limit(perPage)
          .offset((page - 1) * perPage)
          .execute();
        return envelope(req, rows.map(presentVerification), page, perPage, Number(n));
      },
    );
  };
}
