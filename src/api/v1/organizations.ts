/** Organizations: the tenants. Creating one needs a server-admin (bootstrap) token. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { createOrganization, findOrganizationByName } from '../../catalog/organizations.js';
import { hasAnyAccess, requireAccess } from '../auth.js';
import { conflict, forbidden } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveOrganization } from '../resolve.js';
import { presentOrganization } from './present.js';
import { AgeRecipient, ListEnvelope, NameParam, OrgParams, Organization, PageQuery } from './schemas.js';
import { ensureOrganizationIdentity } from '../../encryption.js';
import { nowIso } from '../../catalog/ids.js';

export function organizationRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/organizations',
      {
        schema: {
          tags: ['Organizations'],
          summary: 'Create an organization (server-admin tokens only)',
          body: Type.Object({ name: NameParam }, { additionalProperties: false }),
          response: { 201: Organization },
        },
      },
      async (req, reply) => {
        if (req.principal.token.superuser !== 1) throw forbidden('Forbidden: only a server-admin token (the bootstrap token) can create organizations');
        if (await findOrganizationByName(ctx.db, req.body.name)) throw conflict(`Organization "${req.body.name}" already exists`);
        const created = await createOrganization(ctx.db, ctx.secrets, ctx.config.dataDir, req.body.name);
        await ensureOrganizationIdentity(ctx, created);
        const org = await ctx.db.selectFrom('organizations').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
        return reply.status(201).send(presentOrganization(org));
      },
    );

    app.get(
      '/organizations',
      { schema: { tags: ['Organizations'], summary: 'List the organizations this token can see', querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(Organization) } } },
      async (req) => {
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        let q = ctx.db.selectFrom('organizations');
        if (req.principal.token.superuser !== 1) q = q.where('id', '=', req.principal.token.organization_id);
        const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
        const rows = await q.selectAll().orderBy('name').limit(perPage).offset((page - 1) * perPage).execute();
        const visible = rows.filter((o) => hasAnyAccess(req.principal, 'read_organization', o.id));
        return envelope(req, visible.map(presentOrganization), page, perPage, Number(total));
      },
    );

    app.patch(
      '/organizations/:organization',
      {
        schema: {
          tags: ['Organizations'],
          summary: 'Set the age recipients new backups are encrypted to',
          description: 'Existing artifacts keep the recipients they were encrypted to. An empty list turns encryption off for new backups.',
          params: OrgParams,
          body: Type.Object({ encryption_recipients: Type.Array(AgeRecipient, { maxItems: 20, uniqueItems: true }) }, { additionalProperties: false }),
          response: { 200: Organization },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const now = nowIso(ctx.clock());
        await ctx.db.updateTable('organizations').set({ encryption_recipients: JSON.stringify(req.body.encryption_recipients), updated_at: now }).where('id', '=', org.id).execute();
        return presentOrganization({ ...org, encryption_recipients: JSON.stringify(req.body.encryption_recipients), updated_at: now });
      },
    );

    app.get(
      '/organizations/:organization',
      { schema: { tags: ['Organizations'], summary: 'Get an organization', params: OrgParams, response: { 200: Organization } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        return presentOrganization(org);
      },
    );
  };
}
