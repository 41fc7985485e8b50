/**
 * Notification channels of an organization: Slack, Discord, Telegram, ntfy and email
 * (src/notify/channels). Secret settings (webhook URLs, bot tokens, passwords) are sealed
 * at rest and shown only as {"set": true}; a change may leave them out to keep them, or
 * give null to remove an optional one. Accesses as for webhooks (webhooks.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import type { ChannelType, NotificationChannel } from '../../catalog/schema.js';
import { requireAccess } from '../auth.js';
import { conflict, notFound } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveOrganization } from '../resolve.js';
import { ListEnvelope, OrgParams, PageQuery } from './schemas.js';
import { EVENT_KINDS } from '../../notify/kinds.js';
import { CHANNELS, CHANNEL_TYPES } from '../../notify/channels/index.js';
import type { ChannelSettings } from '../../notify/channels/channel.js';
import { channelSettings, channelTarget } from '../../notify/targets.js';
import { checked, databaseFilterId, databaseNames, DatabaseFilter, EventList, presentTargetState, TargetParams, targetRoutes, TargetState } from './webhooks.js';

const ChannelTypeSchema = Type.Unsafe<ChannelType>({ type: 'string', enum: CHANNEL_TYPES });
const ChannelName = Type.String({ minLength: 1, maxLength: 100 });
const ConfigInput = Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), { description: 'the settings of the channel type; see the README, "Notifications"' });

const ChannelSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    type: ChannelTypeSchema,
    ...TargetState,
    config: Type.Record(Type.String(), Type.Unknown(), { description: 'settings that are not secret; secret ones show as {"set": true|false}' }),
  },
  { additionalProperties: false },
);


/** Plain settings as they are, secret ones as {"set": true|false}. */
function presentConfig(type: ChannelType, settings: ChannelSettings): Record<string, unknown> {
  const out: Record<string, unknown> = { ...settings.config };
  for (const f of CHANNELS[type].secretFields) out[f] = { set: settings.secrets[f] !== undefined };
  return out;
}

function presentChannel(ctx: AppContext, c: NotificationChannel, names: Map<string, string>, settings = channelSettings(ctx, c)) {
  return { id: c.id, name: c.name, type: c.type, ...presentTargetState(c, names), config: presentConfig(c.type, settings) };
}

export function notificationChannelRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/notification-channels';
  const tags = ['Notification channels'];

  async function find(orgId: string, id: string): Promise<NotificationChannel> {
    const c = await ctx.db.selectFrom('notification_channels').selectAll().where('organization_id', '=', orgId).where('id', '=', id).executeTakeFirst();
    if (!c) throw notFound(`Notification channel "${id}" not found`);
    return c;
  }

  async function nameTaken(orgId: string, name: string, except?: string): Promise<void> {
    let q = ctx.db.selectFrom('notification_channels').select('id').where('organization_id', '=', orgId).where('name', '=', name);
    if (except) q = q.where('id', '!=', except);
    if (await q.executeTakeFirst()) throw conflict(`Notification channel "${name}" already exists`);
  }

  return async (app) => {
    app.get(
      base,
      { schema: { tags, summary: 'List notification channels', params: OrgParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(ChannelSchema) } } },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'read_organization', { organizationId: org.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const rows = await ctx.db.selectFrom('notification_channels').selectAll().where('organization_id', '=', org.id).orderBy('name').execute();
        const names = await databaseNames(ctx, org.id);
        return envelope(req, rows.slice((page - 1) * perPage, page * perPage).map((c) => presentChannel(ctx, c, names)), page, perPage, rows.length);
      },
    );

    app.post(
      base,
      {
        schema: {
          tags,
          summary: 'Add a notification channel (Slack, Discord, Telegram, ntfy or email)',
          params: OrgParams,
          body: Type.Object(
            { name: ChannelName, type: ChannelTypeSchema, config: ConfigInput, events: Type.Optional(EventList), enabled: Type.Optional(Type.Boolean()), database: Type.Optional(DatabaseFilter) },
            { additionalProperties: false },
          ),
          response: { 201: ChannelSchema },
        },
      },
      async (req, reply) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const settings = checked(() => CHANNELS[req.body.type].parse(req.body.config));
        await nameTaken(org.id, req.body.name);
        const databaseId = await databaseFilterId(ctx, org, req.body.database);
        const now = nowIso(ctx.clock());
        const row: NotificationChannel = {
          id: newId(),
          organization_id: org.id,
          name: req.body.name,
          type: req.body.type,
          config: JSON.stringify(settings.config),
          secrets_enc: ctx.secrets.seal(JSON.stringify(settings.secrets)),
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
        await ctx.db.insertInto('notification_channels').values(row).execute();
        return reply.status(201).send(presentChannel(ctx, row, await databaseNames(ctx, org.id), settings));
      },
    );

    app.get(`${base}/:id`, { schema: { tags, summary: 'Get a notification channel', params: TargetParams, response: { 200: ChannelSchema } } }, async (req) => {
      const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
      requireAccess(req.principal, 'read_organization', { organizationId: org.id });
      return presentChannel(ctx, await find(org.id, req.params.id), await databaseNames(ctx, org.id));
    });

    app.patch(
      `${base}/:id`,
      {
        schema: {
          tags,
          summary: 'Change a channel; config fields left out keep their values (secret ones too), null removes an optional one; enabling it again clears disabled_reason',
          params: TargetParams,
          body: Type.Object(
            { name: Type.Optional(ChannelName), config: Type.Optional(ConfigInput), events: Type.Optional(EventList), enabled: Type.Optional(Type.Boolean()), database: Type.Optional(DatabaseFilter) },
            { additionalProperties: false },
          ),
          response: { 200: ChannelSchema },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        requireAccess(req.principal, 'write_organization', { organizationId: org.id });
        const c = await find(org.id, req.params.id);
        const changes: Partial<NotificationChannel> = { updated_at: nowIso(ctx.clock()) };
        let settings = channelSettings(ctx, c);
        if (req.body.config !== undefined) {
          const merged: Record<string, unknown> = { ...settings.config, ...settings.secrets, ...req.body.config };
          for (const [k, v] of Object.entries(req.body.config)) if (v === null) delete merged[k];
          settings = checked(() => CHANNELS[c.type].parse(merged));
          changes.config = JSON.stringify(settings.config);
          changes.secrets_enc = ctx.secrets.seal(JSON.stringify(settings.secrets));
        }
        if (req.body.name !== undefined && req.body.name !== c.name) {
          await nameTaken(org.id, req.body.name, c.id);
          changes.name = req.body.name;
        }
        if (req.body.events !== undefined) changes.events = JSON.stringify(req.body.events);
        if (req.body.database !== undefined) changes.database_id = await databaseFilterId(ctx, org, req.body.database);
        if (req.body.enabled !== undefined) {
          changes.enabled = req.body.enabled ? 1 : 0;
          if (req.body.enabled) Object.assign(changes, { disabled_reason: null, consecutive_failures: 0 });
        }
        await ctx.db.updateTable('notification_channels').set(changes).where('id', '=', c.id).execute();
        return presentChannel(ctx, { ...c, ...changes }, await databaseNames(ctx, org.id), settings);
      },
    );

    await app.register(
      targetRoutes(ctx, {
        base,
        tags,
        table: 'notification_channels',
        find,
        target: (c) => channelTarget(ctx, c),
        summaries: { delete: 'Delete a notification channel and its delivery log', test: 'Send a test message now and return how it went', deliveries: "A channel's delivery log, newest first" },
      }),
    );
  };
}
