/**
 * Webhooks of an organization (PlanetScale-style): an http(s) URL that receives the
 * events it asks for as signed JSON (src/notify). The signing secret is shown once, in
 * the response that creates the webhook. Reading needs `read_organization`, changing
 * (and sending a test) `write_organization`: a webhook sees every event of the
 * organization, as a storage destination sees every backup.
 *
 * Also the pieces the channel routes share: the event list, the database filter, the
 * delivery log.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import type { Organization, Webhook } from '../../catalog/schema.js';
import { requireAccess } from '../auth.js';
import { invalidParams, notFound } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveOrganization } from '../resolve.js';
import { IdParam, ListEnvelope, NameParam, Nullable, OrgParams, PageQuery } from './schemas.js';
import { EVENT_KINDS, type EventKind } from '../../notify/kinds.js';
import { ChannelConfigError } from '../../notify/channels/channel.js';
import { httpUrl } from '../../notify/channels/http.js';
import { newWebhookSecret } from '../../notify/channels/webhook.js';
import { eventsOf, webhookTarget, type Target } from '../../notify/targets.js';
import { sendTest } from '../../notify/dispatch.js';

/** An event kind; an enum (not a union of constants) so that a wrong one is told the allowed values. */
export const EventKindSchema = Type.Unsafe<EventKind>({ type: 'string', enum: [...EVENT_KINDS] });
export const EventList = Type.Array(EventKindSchema, { minItems: 1, maxItems: EVENT_KINDS.length, uniqueItems: true, description: 'the events to send; all of them when left out' });
export const DatabaseFilter = Nullable(Type.String({ ...NameParam, description: 'only events of this database (its name); null: every database' }));

export const TargetState = {
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  database: Nullable(Type.String()),
  disabled_reason: Nullable(Type.String({ description: 'why Strongbox disabled it (it kept failing); cleared by enabling it again' })),
  created_at: Type.String(),
  updated_at: Type.String(),
  last_sent_at: Nullable(Type.String()),
  last_sent_success: Nullable(Type.Boolean()),
  last_sent_result: Nullable(Type.String({ description: 'the last attempt in a few words: "200 OK", "HTTP 500 ...", "no answer within 2 s"' })),
};

const WebhookSchema = Type.Object(
  {
    id: Type.String(),
    url: Type.String(),
    ...TargetState,
    secret: Type.Optional(Type.String({ description: 'the signing secret; only in the response that created the webhook' })),
  },
  { additionalProperties: false },
);

export const DeliverySchema = Type.Object(
  {
    id: Type.String(),
    event: Type.Object({ id: Type.String(), kind: Type.String(), message: Type.String(), created_at: Type.String() }, { additionalProperties: false }),
    state: Type.Union([Type.Literal('pending'), Type.Literal('success'), Type.Literal('failed')], { description: 'pending: to send or to retry at next_attempt_at; failed: given up' }),
    attempt: Type.Integer({ description: 'attempts made so far' }),
    status_code: Nullable(Type.Integer({ description: 'HTTP status (SMTP reply code for email) of the last attempt' })),
    success: Type.Boolean(),
    error: Nullable(Type.String()),
    duration_ms: Nullable(Type.Integer()),
    created_at: Type.String(),
    next_attempt_at: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

/** The path parameters of one webhook or channel. */
export const TargetParams = Type.Object({ organization: NameParam, id: IdParam });

/**
 * The routes webhooks and channels have alike, on `${base}/:id`: delete (with the delivery
 * log), send a test now, and the delivery log. `find` answers 404 for an id not in the org.
 */
export function targetRoutes<Row extends { id: string }>(
  ctx: AppContext,
  spec: {
    base: string;
    tags: string[];
    table: 'webhooks' | 'notification_channels';
    find: (orgId: string, id: string) => Promise<Row>;
    target: (row: Row) => Target;
    summaries: { delete: string; test: string; deliveries: string };
  },
): FastifyPluginAsyncTypebox {
  const { base, tags, table, find, target, summaries } = spec;
  return async (app) => {
    app.delete(`${base}/:id`, { schema: { tags, summary: summaries.delete, params: TargetParams } }, async (req, reply) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'write_organization', { organizationId: org.id });
      const row = await find(org.id, req.params.id);
      await ctx.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('notification_deliveries').where('target_id', '=', row.id).execute();
        await trx.deleteFrom(table).where('id', '=', row.id).execute();
      });
      return reply.status(204).send();
    });

    app.post(`${base}/:id/test`, { schema: { tags, summary: summaries.test, params: TargetParams, response: { 200: DeliverySchema } } }, async (req) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'write_organization', { organizationId: org.id });
      return sendTest(ctx, target(await find(org.id, req.params.id)), org.name);
    });

    app.get(
      `${base}/:id/deliveries`,
      { schema: { tags, summary: summaries.deliveries, params: TargetParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(DeliverySchema) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const row = await find(org.id, req.params.id);
        return deliveryPage(ctx, req, row.id, req.query.page ?? 1, req.query.per_page ?? 25);
      },
    );
  };
}

/** Turn a notification settings error into the API's 422. */
export function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ChannelConfigError) throw invalidParams(e.message);
    throw e;
  }
}

/** The database a filter names (by name, in the organization), as its id; null for none. */
export async function databaseFilterId(ctx: AppContext, org: Organization, name: string | null | undefined): Promise<string | null> {
  if (name === null || name === undefined) return null;
  const d = await ctx.db.selectFrom('databases').select('id').where('organization_id', '=', org.id).where('name', '=', name).where('deleted_at', 'is', null).executeTakeFirst();
  if (!d) throw invalidParams(`database: no database "${name}" in organization "${org.name}"`);
  return d.id;
}

/** id → name of the organization's databases (deleted ones too: a filter may outlive its database). */
export async function databaseNames(ctx: AppContext, organizationId: string): Promise<Map<string, string>> {
  const rows = await ctx.db.selectFrom('databases').select(['id', 'name']).where('organization_id', '=', organizationId).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** The state every target shows, webhook or channel. */
export function presentTargetState(t: Omit<Webhook, 'url' | 'secret_enc'>, names: Map<string, string>) {
  return {
    events: eventsOf(t),
    enabled: t.enabled === 1,
    database: t.database_id === null ? null : (names.get(t.database_id) ?? t.database_id),
    disabled_reason: t.disabled_reason,
    created_at: t.created_at,
    updated_at: t.updated_at,
    last_sent_at: t.last_sent_at,
    last_sent_success: t.last_sent_success === null ? null : t.last_sent_success === 1,
    last_sent_result: t.last_sent_result,
  };
}

function presentWebhook(w: Webhook, names: Map<string, string>, secret?: string) {
  return { id: w.id, url: w.url, ...presentTargetState(w, names), ...(secret !== undefined ? { secret } : {}) };
}

/** One page of a target's delivery log, newest first. */
export async function deliveryPage(ctx: AppContext, req: FastifyRequest, targetId: string, page: number, perPage: number) {
  const { n } = await ctx.db
    .selectFrom('notification_deliveries')
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .where('target_id', '=', targetId)
    .executeTakeFirstOrThrow();
  const rows = await ctx.db
    .selectFrom('notification_deliveries as d')
    .leftJoin('events as e', 'e.id', 'd.event_id')
    .selectAll('d')
    .select(['e.kind', 'e.message', 'e.created_at as event_created_at'])
    .where('d.target_id', '=', targetId)
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(perPage)
    .offset((page - 1) * perPage)
    .execute();
  const data = rows.map((d) => ({
    id: d.id,
    event: { id: d.event_id, kind: d.kind ?? 'unknown', message: d.message ?? '', created_at: d.event_created_at ?? d.created_at },
    state: d.state,
    attempt: d.attempts,
    status_code: d.status_code,
    success: d.state === 'success',
    error: d.error,
    duration_ms: d.duration_ms,
    created_at: d.created_at,
    next_attempt_at: d.state === 'pending' ? d.next_attempt_at : null,
  }));
  return envelope(req, data, page, perPage, Number(n));
}

export function webhookRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/webhooks';
  const tags = ['Webhooks'];

  async function find(orgId: string, id: string): Promise<Webhook> {
    const w = await ctx.db.selectFrom('webhooks').selectAll().where('organization_id', '=', orgId).where('id', '=', id).executeTakeFirst();
    if (!w) throw notFound(`Webhook "${id}" not found`);
    return w;
  }

  return async (app) => {
    app.get(
      base,
      { schema: { tags, summary: 'List webhooks', params: OrgParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(WebhookSchema) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const rows = await ctx.db.selectFrom('webhooks').selectAll().where('organization_id', '=', org.id).orderBy('created_at').orderBy('id').execute();
        const names = await databaseNames(ctx, org.id);
        return envelope(req, rows.slice((page - 1) * perPage, page * perPage).map((w) => presentWebhook(w, names)), page, perPage, rows.length);
      },
    );

    app.post(
      base,
      {
        schema: {
          tags,
          summary: 'Create a webhook (its signing secret is shown only in this response)',
          params: OrgParams,
          body: Type.Object(
            { url: Type.String({ minLength: 1, maxLength: 2048 }), events: Type.Optional(EventList), enabled: Type.Optional(Type.Boolean()), database: Type.Optional(DatabaseFilter) },
            { additionalProperties: false },
          ),
          response: { 201: WebhookSchema },
        },
      },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const url = checked(() => httpUrl(req.body.url, 'url'));
        const databaseId = await databaseFilterId(ctx, org, req.body.database);
        const secret = newWebhookSecret();
        const now = nowIso(ctx.clock());
        const row: Webhook = {
          id: newId(),
          organization_id: org.id,
          url,
          secret_enc: ctx.secrets.seal(secret),
          events: JSON.stringify(req.body.events ?? EVENT_KINDS),
          database_id: databaseId,
          enabled: req.body.enabled === false ? 0 : 1,
          disabled_reason: null,
          consecutive_failures: 0,
          created_at: now,
          updated_at: now,
          last_sent_at: null,
          last_sent_success: null,
          last_sent_result: null,
        };
        await ctx.db.insertInto('webhooks').values(row).execute();
        return reply.status(201).send(presentWebhook(row, await databaseNames(ctx, org.id), secret));
      },
    );

    app.get(`${base}/:id`, { schema: { tags, summary: 'Get a webhook', params: TargetParams, response: { 200: WebhookSchema } } }, async (req) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'read_organization', { organizationId: org.id });
      return presentWebhook(await find(org.id, req.params.id), await databaseNames(ctx, org.id));
    });

    app.patch(
      `${base}/:id`,
      {
        schema: {
          tags,
          summary: 'Change a webhook; enabling it again clears disabled_reason',
          params: TargetParams,
          body: Type.Object(
            { url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })), events: Type.Optional(EventList), enabled: Type.Optional(Type.Boolean()), database: Type.Optional(DatabaseFilter) },
            { additionalProperties: false },
          ),
          response: { 200: WebhookSchema },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const w = await find(org.id, req.params.id);
        const changes: Partial<Webhook> = { updated_at: nowIso(ctx.clock()) };
        if (req.body.url !== undefined) changes.url = checked(() => httpUrl(req.body.url, 'url'));
        if (req.body.events !== undefined) changes.events = JSON.stringify(req.body.events);
        if (req.body.database !== undefined) changes.database_id = await databaseFilterId(ctx, org, req.body.database);
        if (req.body.enabled !== undefined) {
          changes.enabled = req.body.enabled ? 1 : 0;
          if (req.body.enabled) Object.assign(changes, { disabled_reason: null, consecutive_failures: 0 });
        }
        await ctx.db.updateTable('webhooks').set(changes).where('id', '=', w.id).execute();
        return presentWebhook({ ...w, ...changes }, await databaseNames(ctx, org.id));
      },
    );

    await app.register(
      targetRoutes(ctx, {
        base,
        tags,
        table: 'webhooks',
        find,
        target: (w) => webhookTarget(ctx, w),
        summaries: { delete: 'Delete a webhook and its delivery log', test: 'Send a test event now and return how it went', deliveries: "A webhook's delivery log, newest first" },
      }),
    );
  };
}
