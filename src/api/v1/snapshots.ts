/** Schema snapshots: the DDL a backup saw, and unified diffs between two of them. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { createTwoFilesPatch } from 'diff';
import type { AppContext } from '../../context.js';
import type { SchemaSnapshot } from '../../catalog/schema.js';
import { requireAccess } from '../auth.js';
import { notFound } from '../errors.js';
import { resolveDatabase } from '../resolve.js';
import { IdParam, NameParam } from './schemas.js';

export function snapshotRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/databases/:database/schema-snapshots';

  async function find(databaseId: string, id: string): Promise<SchemaSnapshot> {
    const s = await ctx.db.selectFrom('schema_snapshots').selectAll().where('id', '=', id).where('database_id', '=', databaseId).executeTakeFirst();
    if (!s) throw notFound(`Schema snapshot "${id}" not found`);
    return s;
  }

  return async (app) => {
    app.get(
      `${base}/:id`,
      {
        schema: {
          tags: ['Schema snapshots'],
          summary: 'The DDL of a schema snapshot (text/plain)',
          params: Type.Object({ organization: NameParam, database: NameParam, id: IdParam }),
          produces: ['text/plain'],
        },
      },
      async (req, reply) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        const snap = await find(database.id, req.params.id);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: snap.branch_id });
        return reply.type('text/plain; charset=utf-8').header('x-schema-sha256', snap.sha256).send(snap.ddl);
      },
    );

    app.get(
      `${base}/:id/diff/:other`,
      {
        schema: {
          tags: ['Schema snapshots'],
          summary: 'Unified diff from one schema snapshot to another (text/plain; empty when identical)',
          params: Type.Object({ organization: NameParam, database: NameParam, id: IdParam, other: IdParam }),
          produces: ['text/plain'],
        },
      },
      async (req, reply) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        const a = await find(database.id, req.params.id);
        const b = await find(database.id, req.params.other);
        for (const s of [a, b]) requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: s.branch_id });
        const patch = a.sha256 === b.sha256 ? '' : createTwoFilesPatch(`${a.name}.sql`, `${b.name}.sql`, a.ddl, b.ddl, a.created_at, b.created_at, { context: 3 });
        return reply.type('text/plain; charset=utf-8').send(patch);
      },
    );
  };
}
