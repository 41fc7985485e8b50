/**
 * Storage destinations of an organization: where artifacts go. Secrets in a destination's
 * configuration are encrypted at rest and never returned (shown as "[redacted]"; sending
 * "[redacted]" back in a PATCH keeps the stored value). Every create or update proves the
 * destination works by writing, reading back and deleting a small probe object.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import type { StorageDestination } from '../../catalog/schema.js';
import { openStorage, redactStorageConfig, REDACTED } from '../../storage/registry.js';
import { StorageError, type ProviderName } from '../../storage/provider.js';
import { requireAccess, type Principal } from '../auth.js';
import { ApiError, conflict, forbidden, invalidParams, notFound, unprocessable } from '../errors.js';
import { cleanErrorText } from '../../error-text.js';
import { confineLocalPath, LocalPathError } from '../../destinations.js';
import { envelope } from '../paging.js';
import { resolveOrganization } from '../resolve.js';
import { NameParam, ListEnvelope, OrgParams, PageQuery } from './schemas.js';
import { rebuildCatalog } from '../../jobs/rebuild.js';

const Provider = Type.Union([Type.Literal('local'), Type.Literal('s3'), Type.Literal('google_drive')]);
const ConfigObject = Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), { description: 'provider settings; see the README for each provider' });

export const Destination = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    provider: Provider,
    config: Type.Record(Type.String(), Type.Unknown(), { description: 'with secrets shown as "[redacted]"' }),
    default: Type.Boolean({ description: 'used by every database that does not choose its own destinations' }),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false },
);

const DestParams = Type.Object({ organization: NameParam, name: NameParam });

function configOf(ctx: AppContext, d: StorageDestination): Record<string, unknown> {
  return JSON.parse(ctx.secrets.open(d.config_enc)) as Record<string, unknown>;
}

export function presentDestination(ctx: AppContext, d: StorageDestination) {
  return {
    id: d.id,
    name: d.name,
    provider: d.provider,
    config: redactStorageConfig({ provider: d.provider, config: configOf(ctx, d) }),
    default: d.is_default === 1,
    created_at: d.created_at,
    updated_at: d.updated_at,
  };
}

/** Open the destination and prove it: write, read back and delete a small probe object. */
async function probe(provider: ProviderName, config: Record<string, unknown>): Promise<void> {
  let storage;
  try {
    storage = openStorage({ provider, config });
  } catch (e) {
    if (e instanceof StorageError) throw invalidParams(`config: ${e.message}`);
    throw e;
  }
  const key = `strongbox-probe/${crypto.randomBytes(8).toString('hex')}`;
  const payload = crypto.randomBytes(64);
  try {
    await storage.put(key, payload);
    const chunks: Buffer[] = [];
    for await (const c of await storage.read(key)) chunks.push(c as Buffer);
    if (!Buffer.concat(chunks).equals(payload)) throw new Error('the probe object read back differs from what was written');
    await storage.delete(key);
    if ((await storage.stat(key)) !== null) throw new Error('the probe object is still there after deleting it');
  } catch (e) {
    await storage.delete(key).catch(() => {});
    throw unprocessable(`cannot use this destination: ${(e as Error).message}`);
  }
}

export function destinationRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/storage-destinations';

  /**
   * A local destination's folder, checked against the allowed roots for this caller and
   * normalized, before the probe writes anything there (see destinations.ts).
   */
  function confined(provider: ProviderName, config: Record<string, unknown>, orgName: string, p: Principal): Record<string, unknown> {
    // Anything else wrong with the path is for openStorage to say.
    if (provider !== 'local' || typeof config.path !== 'string' || !path.isAbsolute(config.path)) return config;
    try {
      return { ...config, path: confineLocalPath(ctx, config.path, orgName, p.token.superuser === 1) };
    } catch (e) {
      if (!(e instanceof LocalPathError)) throw e;
      throw e.forbidden ? forbidden(`Forbidden: config.path: ${e.message}`) : invalidParams(`config.path: ${e.message}`);
    }
  }

  async function find(orgId: string, name: string): Promise<StorageDestination> {
    const d = await ctx.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', orgId).where('name', '=', name).executeTakeFirst();
    if (!d) throw notFound(`Storage destination "${name}" not found`);
    return d;
  }

  /** Artifacts in a destination that a backup still counts on. */
  async function liveArtifacts(destinationId: string): Promise<number> {
    const { n } = await ctx.db
      .selectFrom('artifacts as a')
      .innerJoin('backups as b', 'b.id', 'a.backup_id')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .where('a.destination_id', '=', destinationId)
      .where('a.state', 'in', ['success', 'pending'])
      .where('b.deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(n);
  }

  return async (app) => {
    app.get(
      base,
      { schema: { tags: ['Storage destinations'], summary: 'List storage destinations', params: OrgParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(Destination) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const rows = await ctx.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', org.id).orderBy('name').execute();
        return envelope(req, rows.slice((page - 1) * perPage, page * perPage).map((d) => presentDestination(ctx, d)), page, perPage, rows.length);
      },
    );

    app.post(
      base,
      {
        schema: {
          tags: ['Storage destinations'],
          summary: 'Add a storage destination (checked with a probe object)',
          params: OrgParams,
          body: Type.Object({ name: NameParam, provider: Provider, config: ConfigObject, default: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          response: { 201: Destination },
        },
      },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const exists = await ctx.db.selectFrom('storage_destinations').select('id').where('organization_id', '=', org.id).where('name', '=', req.body.name).executeTakeFirst();
        if (exists) throw conflict(`Storage destination "${req.body.name}" already exists`);
        const config = confined(req.body.provider, req.body.config, org.name, req.principal);
        await probe(req.body.provider, config);
        const now = nowIso(ctx.clock());
        const row: StorageDestination = {
          id: newId(),
          organization_id: org.id,
          name: req.body.name,
          provider: req.body.provider,
          config_enc: ctx.secrets.seal(JSON.stringify(config)),
          is_default: req.body.default ? 1 : 0,
          created_at: now,
          updated_at: now,
        };
        await ctx.db.insertInto('storage_destinations').values(row).execute();
        return reply.status(201).send(presentDestination(ctx, row));
      },
    );

    app.get(`${base}/:name`, { schema: { tags: ['Storage destinations'], summary: 'Get a storage destination', params: DestParams, response: { 200: Destination } } }, async (req) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'read_organization', { organizationId: org.id });
      return presentDestination(ctx, await find(org.id, req.params.name));
    });

    app.patch(
      `${base}/:name`,
      {
        schema: {
          tags: ['Storage destinations'],
          summary: 'Change a destination: its configuration (checked again) or whether it is a default',
          params: DestParams,
          body: Type.Object({ config: Type.Optional(ConfigObject), default: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          response: { 200: Destination },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const d = await find(org.id, req.params.name);
        const changes: Partial<StorageDestination> = { updated_at: nowIso(ctx.clock()) };
        if (req.body.config !== undefined) {
          const old = configOf(ctx, d);
          // "[redacted]" sent back means "keep what you have".
          const config = confined(d.provider, Object.fromEntries(Object.entries(req.body.config).map(([k, v]) => [k, v === REDACTED ? old[k] : v])), org.name, req.principal);
          // New credentials are fine; pointing elsewhere would strand the artifacts there.
          const moved = JSON.stringify(redactStorageConfig({ provider: d.provider, config })) !== JSON.stringify(redactStorageConfig({ provider: d.provider, config: old }));
          if (moved) {
            const n = await liveArtifacts(d.id);
            if (n > 0) throw conflict(`destination "${d.name}" holds ${n} live artifact(s): only its credentials can change; add a new destination to write elsewhere`);
          }
          await probe(d.provider, config);
          changes.config_enc = ctx.secrets.seal(JSON.stringify(config));
        }
        if (req.body.default !== undefined) changes.is_default = req.body.default ? 1 : 0;
        await ctx.db.updateTable('storage_destinations').set(changes).where('id', '=', d.id).execute();
        return presentDestination(ctx, { ...d, ...changes });
      },
    );

    app.delete(
      `${base}/:name`,
      { schema: { tags: ['Storage destinations'], summary: 'Remove a destination that holds no live artifact', params: DestParams } },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const d = await find(org.id, req.params.name);
        const live = await liveArtifacts(d.id);
        if (live > 0) throw conflict(`destination "${d.name}" still holds ${live} live artifact(s); delete those backups first`);
        const users = await ctx.db.selectFrom('databases').select(['name', 'storage_destinations']).where('organization_id', '=', org.id).where('deleted_at', 'is', null).execute();
        const using = users.filter((u) => u.storage_destinations && (JSON.parse(u.storage_destinations) as string[]).includes(d.id));
        if (using.length) throw conflict(`database(s) ${using.map((u) => `"${u.name}"`).join(', ')} write to this destination; choose other destinations for them first`);
        await ctx.db.transaction().execute(async (trx) => {
          // Only the history of copies that are gone (failed or deleted) is dropped with it.
          await trx.deleteFrom('artifacts').where('destination_id', '=', d.id).execute();
          await trx.deleteFrom('storage_destinations').where('id', '=', d.id).execute();
        });
        return reply.status(204).send();
      },
    );

    app.post(
      `${base}/:name/test`,
      {
        schema: {
          tags: ['Storage destinations'],
          summary: 'Check that a destination works now, with the probe used at creation',
          description:
            'Writes, reads back and deletes a small probe object with the stored configuration. The answer is 200 either way: `ok` says whether it worked, `error` why not (secrets never included). Needs write_organization, as creating one does (the probe writes).',
          operationId: 'test_storage_destination',
          params: DestParams,
          response: {
            200: Type.Object(
              {
                ok: Type.Boolean(),
                duration_ms: Type.Integer({ description: 'how long the probe took' }),
                error: Type.Optional(Type.String({ description: 'why the destination cannot be used; only when ok is false' })),
              },
              { additionalProperties: false },
            ),
          },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const d = await find(org.id, req.params.name);
        const started = performance.now();
        try {
          // Confined again: the allowed roots may have changed since the destination was made.
          await probe(d.provider, confined(d.provider, configOf(ctx, d), org.name, req.principal));
          return { ok: true, duration_ms: Math.round(performance.now() - started) };
        } catch (e) {
          // A failed test is an answer, not an error of the request: the probe's 4xx become its reason.
          if (!(e instanceof ApiError)) throw e;
          return { ok: false, duration_ms: Math.round(performance.now() - started), error: cleanErrorText(e.message) };
        }
      },
    );

    app.post(
      `${base}/:name/rebuild`,
      {
        schema: {
          tags: ['Storage destinations'],
          summary: 'Rebuild catalog entries from the manifests found in this destination',
          description: 'Adds every backup (with its database and branch) found in the destination that the catalog does not know. Rebuilt branches have no connection URL: set it again (PATCH the branch) before new backups.',
          params: DestParams,
          response: {
            200: Type.Object({
              manifests: Type.Integer(),
              backups_added: Type.Integer(),
              artifacts_added: Type.Integer(),
              databases_added: Type.Integer(),
              branches_added: Type.Integer(),
              problems: Type.Array(Type.String()),
            }),
          },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        return rebuildCatalog(ctx, org, await find(org.id, req.params.name));
      },
    );
  };
}
