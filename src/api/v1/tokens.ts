/**
 * Service tokens of an organization and their accesses. The secret is returned once,
 * when the token is created, and stored only as a hash.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { nowIso } from '../../catalog/ids.js';
import { ALL_ACCESSES, createToken, grantAccesses, revokeAccesses, tokenAccesses } from '../../catalog/tokens.js';
import type { ResourceType } from '../../catalog/schema.js';
import { forgetVerifiedToken, requireAccess, type Principal } from '../auth.js';
import { parseTimestamp } from '../../time.js';
import { invalidParams, notFound } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveBranch, resolveDatabase, resolveOrganization } from '../resolve.js';
import { presentToken } from './present.js';
import { IdParam, ListEnvelope, NameParam, OrgParams, PageQuery, ServiceToken, TokenAccessSchema } from './schemas.js';

const TokenParams = Type.Object({ organization: NameParam, id: IdParam });
const AccessName = Type.Union(ALL_ACCESSES.map((a) => Type.Literal(a)));
/** Accesses to grant or take back, on the organization, a database, or a branch of one. */
const GrantBody = Type.Object(
  { database: Type.Optional(NameParam), branch: Type.Optional(NameParam), accesses: Type.Array(AccessName, { minItems: 1, maxItems: ALL_ACCESSES.length, uniqueItems: true }) },
  { additionalProperties: false },
);
const AccessList = Type.Object({ type: Type.Literal('list'), data: Type.Array(TokenAccessSchema) });

export function tokenRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/service-tokens';

  async function findToken(orgId: string, id: string) {
    const t = await ctx.db.selectFrom('service_tokens').selectAll().where('id', '=', id).where('organization_id', '=', orgId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!t) throw notFound(`Service token "${id}" not found`);
    return t;
  }

  /** The resource a grant names: the organization, a database, or a branch of a database. */
  async function grantTarget(orgName: string, p: Principal, body: { database?: string; branch?: string }, orgId: string): Promise<{ resourceType: ResourceType; resourceId: string }> {
    if (body.branch !== undefined && body.database === undefined) throw invalidParams('a branch is named inside a database: give "database" too');
    if (body.database !== undefined && body.branch !== undefined) {
      return { resourceType: 'branch', resourceId: (await resolveBranch(ctx.db, p, orgName, body.database, body.branch)).branch.id };
    }
    if (body.database !== undefined) return { resourceType: 'database', resourceId: (await resolveDatabase(ctx.db, p, orgName, body.database)).database.id };
    return { resourceType: 'organization', resourceId: orgId };
  }

  return async (app) => {
    app.post(
      base,
      {
        schema: {
          tags: ['Service tokens'],
          summary: 'Create a service token (its secret is shown only in this response)',
          params: OrgParams,
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 100 }),
              expires_at: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601; the token stops working then (401)' })),
            },
            { additionalProperties: false },
          ),
          response: { 201: ServiceToken },
        },
      },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        let expiresAt: string | null = null;
        if (req.body.expires_at !== undefined) {
          const d = parseTimestamp(req.body.expires_at);
          if (!d) throw invalidParams(`expires_at must be an ISO 8601 timestamp, got "${req.body.expires_at.slice(0, 64)}"`);
          if (d.getTime() <= ctx.clock().getTime()) throw invalidParams('expires_at must be in the future');
          expiresAt = d.toISOString();
        }
        const { token, secret } = await createToken(ctx.db, { organizationId: org.id, name: req.body.name, expiresAt });
        return reply.status(201).send(presentToken(token, secret));
      },
    );

    app.get(
      base,
      { schema: { tags: ['Service tokens'], summary: 'List service tokens', params: OrgParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(ServiceToken) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const rows = await ctx.db.selectFrom('service_tokens').selectAll().where('organization_id', '=', org.id).where('deleted_at', 'is', null).orderBy('created_at').execute();
        return envelope(req, rows.slice((page - 1) * perPage, page * perPage).map((t) => presentToken(t)), page, perPage, rows.length);
      },
    );

    app.get(`${base}/:id`, { schema: { tags: ['Service tokens'], summary: 'Get a service token', params: TokenParams, response: { 200: ServiceToken } } }, async (req) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'read_organization', { organizationId: org.id });
      return presentToken(await findToken(org.id, req.params.id));
    });

    app.delete(`${base}/:id`, { schema: { tags: ['Service tokens'], summary: 'Delete a service token', params: TokenParams } }, async (req, reply) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'write_organization', { organizationId: org.id });
      const t = await findToken(org.id, req.params.id);
      await ctx.db.updateTable('service_tokens').set({ deleted_at: nowIso(ctx.clock()), updated_at: nowIso(ctx.clock()) }).where('id', '=', t.id).execute();
      forgetVerifiedToken(t.id);
      return reply.status(204).send();
    });

    app.get(
      `${base}/:id/accesses`,
      { schema: { tags: ['Service tokens'], summary: "List a token's accesses", params: TokenParams, response: { 200: AccessList } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const t = await findToken(org.id, req.params.id);
        return { type: 'list' as const, data: await tokenAccesses(ctx.db, t.id) };
      },
    );

    // Granting and taking back are the same request on the same resources, but for the change.
    const changes = [
      { method: 'POST' as const, summary: 'Grant accesses on the organization, one database, or one branch', apply: grantAccesses },
      { method: 'DELETE' as const, summary: 'Take accesses away (on the organization, one database, or one branch)', apply: revokeAccesses },
    ];
    for (const change of changes) {
      app.route({
        method: change.method,
        url: `${base}/:id/accesses`,
        schema: { tags: ['Service tokens'], summary: change.summary, params: TokenParams, body: GrantBody, response: { 200: AccessList } },
        handler: async (req) => {
          const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
          requireAccess(req.principal, 'write_organization', { organizationId: org.id });
          const t = await findToken(org.id, req.params.id);
          const { resourceType, resourceId } = await grantTarget(org.name, req.principal, req.body, org.id);
          await change.apply(ctx.db, t.id, req.body.accesses, resourceType, resourceId);
          // The token's accesses are cached for a moment (auth.ts): this process sees the change at once.
          forgetVerifiedToken(t.id);
          return { type: 'list' as const, data: await tokenAccesses(ctx.db, t.id) };
        },
      });
    }
  };
}
