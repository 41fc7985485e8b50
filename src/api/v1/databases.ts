/** Databases: a named product with an engine; its branches are the real databases dumped. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import { createDefaultPolicies } from '../../catalog/policies.js';
import type { Database as DatabaseRow } from '../../catalog/schema.js';
import { hasAccess, requireAccess } from '../auth.js';
import { conflict, unprocessable } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveDatabase, resolveOrganization } from '../resolve.js';
import { destinationNames, presentDatabase } from './present.js';
import { Database, DbParams, ListEnvelope, NameParam, Nullable, OrgParams, PageQuery } from './schemas.js';

export function databaseRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/organizations/:organization/databases',
      {
        schema: {
          tags: ['Databases'],
          summary: 'Register a database',
          params: OrgParams,
          body: Type.Object({ name: NameParam, kind: Type.Union([Type.Literal('postgresql'), Type.Literal('mysql')]) }, { additionalProperties: false }),
          response: { 201: Database },
        },
      },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_databases', { organizationId: org.id });
        const exists = await ctx.db.selectFrom('databases').select('id').where('organization_id', '=', org.id).where('name', '=', req.body.name).executeTakeFirst();
        if (exists) throw conflict(`Database "${req.body.name}" already exists`);
        const now = nowIso(ctx.clock());
        const row: DatabaseRow = { id: newId(), organization_id: org.id, name: req.body.name, kind: req.body.kind, created_at: now, updated_at: now, deleted_at: null, storage_destinations: null };
        await ctx.db.transaction().execute(async (trx) => {
          await trx.insertInto('databases').values(row).execute();
          await createDefaultPolicies(trx, row, ctx.clock());
        });
        return reply.status(201).send(presentDatabase(row));
      },
    );

    app.get(
      '/organizations/:organization/databases',
      { schema: { tags: ['Databases'], summary: 'List databases', params: OrgParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(Database) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        // A token may hold read_databases on the org or only on some databases: list what it can read.
        const all = await ctx.db.selectFrom('databases').selectAll().where('organization_id', '=', org.id).where('deleted_at', 'is', null).orderBy('name').execute();
        const visible = all.filter((d) => hasAccess(req.principal, 'read_databases', { organizationId: org.id, databaseId: d.id }));
        const names = await destinationNames(ctx, org.id);
        return envelope(req, visible.slice((page - 1) * perPage, page * perPage).map((d) => presentDatabase(d, names)), page, perPage, visible.length);
      },
    );

    app.get(
      '/organizations/:organization/databases/:database',
      { schema: { tags: ['Databases'], summary: 'Get a database', params: DbParams, response: { 200: Database } } },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'read_databases', { organizationId: org.id, databaseId: database.id });
        return presentDatabase(database, await destinationNames(ctx, org.id));
      },
    );

    app.patch(
      '/organizations/:organization/databases/:database',
      {
        schema: {
          tags: ['Databases'],
          summary: "Choose the storage destinations of a database's backups",
          description: 'A list of destination names (every backup is written to all of them at once), or null to use the organization defaults.',
          params: DbParams,
          body: Type.Object({ storage_destinations: Nullable(Type.Array(NameParam, { minItems: 1, maxItems: 10, uniqueItems: true })) }, { additionalProperties: false }),
          response: { 200: Database },
        },
      },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'write_databases', { organizationId: org.id, databaseId: database.id });
        const names = await destinationNames(ctx, org.id);
        let chosen: string | null = null;
        if (req.body.storage_destinations !== null) {
          const byName = new Map([...names].map(([id, name]) => [name, id]));
          const missing = req.body.storage_destinations.filter((n) => !byName.has(n));
          if (missing.length) throw unprocessable(`no storage destination named ${missing.map((m) => `"${m}"`).join(', ')} in this organization`);
          chosen = JSON.stringify(req.body.storage_destinations.map((n) => byName.get(n)!));
        }
        const now = nowIso(ctx.clock());
        await ctx.db.updateTable('databases').set({ storage_destinations: chosen, updated_at: now }).where('id', '=', database.id).execute();
        return presentDatabase({ ...database, storage_destinations: chosen, updated_at: now }, names);
      },
    );
  };
}
