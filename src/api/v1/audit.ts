/** GET .../audit-log: the organization's write requests, newest first. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { requireAccess } from '../auth.js';
import { envelope } from '../paging.js';
import { resolveOrganization } from '../resolve.js';
import { ListEnvelope, Nullable, OrgParams, PageQuery } from './schemas.js';

const AuditEntry = Type.Object(
  {
    id: Type.String(),
    actor: Nullable(Type.Object({ id: Type.String(), display_name: Nullable(Type.String()) }, { additionalProperties: false })),
    method: Type.String(),
    route: Type.String(),
    path: Type.String(),
    status: Type.Integer(),
    remote_address: Nullable(Type.String()),
    created_at: Type.String(),
  },
  { additionalProperties: false },
);

export function auditRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/organizations/:organization/audit-log',
      {
        schema: {
          tags: ['Organizations'],
          summary: 'Every write request in the organization: who, what, when, from where, result',
          params: OrgParams,
          querystring: Type.Object(PageQuery, { additionalProperties: false }),
          response: { 200: ListEnvelope(AuditEntry) },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const q = ctx.db.selectFrom('audit_log').where('organization_id', '=', org.id);
        const { n } = await q.select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
        const rows = await q.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(perPage).offset((page - 1) * perPage).execute();
        return envelope(
          req,
          rows.map((r) => ({
            id: r.id,
            actor: r.token_id === null ? null : { id: r.token_id, display_name: r.token_name },
            method: r.method,
            route: r.route,
            path: r.path,
            status: r.status,
            remote_address: r.remote_address,
            created_at: r.created_at,
          })),
          page,
          perPage,
          Number(n),
        );
      },
    );
  };
}
