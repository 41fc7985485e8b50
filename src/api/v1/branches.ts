/** Branches: one real database (server + database name) that Strongbox dumps. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import type { Branch as BranchRow } from '../../catalog/schema.js';
import { ConnectionUrlError, engineFor, EngineError, parseConnectionUrl } from '../../engines/index.js';
import { hasAccess, requireAccess } from '../auth.js';
import { conflict, invalidParams, unprocessable } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveBranch, resolveDatabase } from '../resolve.js';
import { presentBranch } from './present.js';
import { Branch, BranchParams, DbParams, ListEnvelope, NameParam, PageQuery } from './schemas.js';

export function branchRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/organizations/:organization/databases/:database/branches',
      {
        schema: {
          tags: ['Branches'],
          summary: 'Register a branch (a real database to back up)',
          description: 'The connection URL is checked by connecting to the server; it is stored encrypted and never returned.',
          params: DbParams,
          body: Type.Object(
            {
              name: NameParam,
              production: Type.Optional(Type.Boolean()),
              connection_url: Type.String({ minLength: 1, maxLength: 2048, description: 'postgresql://user:pass@host:port/db or mysql://user:pass@host:port/db' }),
            },
            { additionalProperties: false },
          ),
          response: { 201: Branch },
        },
      },
      async (req, reply) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'write_branches', { organizationId: org.id, databaseId: database.id });
        let parsed;
        try {
          parsed = parseConnectionUrl(req.body.connection_url);
        } catch (e) {
          if (e instanceof ConnectionUrlError) throw invalidParams(`connection_url: ${e.message}`);
          throw e;
        }
        if (parsed.kind !== database.kind) {
          throw unprocessable(`connection_url is a ${parsed.kind} URL but database "${database.name}" is ${database.kind}`);
        }
        const exists = await ctx.db.selectFrom('branches').select('id').where('database_id', '=', database.id).where('name', '=', req.body.name).where('deleted_at', 'is', null).executeTakeFirst();
        if (exists) throw conflict(`Branch "${req.body.name}" already exists`);
        let server;
        try {
          server = await engineFor(parsed.kind).probe(parsed.info);
        } catch (e) {
          if (e instanceof EngineError) throw unprocessable(`cannot use this connection: ${e.message}`);
          throw e;
        }
        const now = nowIso(ctx.clock());
        const row: BranchRow = {
          id: newId(),
          organization_id: org.id,
          database_id: database.id,
          name: req.body.name,
          production: req.body.production ? 1 : 0,
          connection_url_enc: ctx.secrets.seal(req.body.connection_url),
          conn_host: parsed.info.host,
          conn_port: parsed.info.port,
          conn_database: parsed.info.database,
          conn_user: parsed.info.user,
          server_version: server.version,
          created_at: now,
          updated_at: now,
          deleted_at: null,
        };
        await ctx.db.insertInto('branches').values(row).execute();
        return reply.status(201).send(presentBranch(row, database.kind));
      },
    );

    app.get(
      '/organizations/:organization/databases/:database/branches',
      { schema: { tags: ['Branches'], summary: 'List branches', params: DbParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(Branch) } } },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const all = await ctx.db.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('deleted_at', 'is', null).orderBy('name').execute();
        const visible = all.filter((b) => hasAccess(req.principal, 'read_branches', { organizationId: org.id, databaseId: database.id, branchId: b.id }));
        return envelope(req, visible.slice((page - 1) * perPage, page * perPage).map((b) => presentBranch(b, database.kind)), page, perPage, visible.length);
      },
    );

    app.get(
      '/organizations/:organization/databases/:database/branches/:branch',
      { schema: { tags: ['Branches'], summary: 'Get a branch', params: BranchParams, response: { 200: Branch } } },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_branches', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        return presentBranch(branch, database.kind);
      },
    );
  };
}
