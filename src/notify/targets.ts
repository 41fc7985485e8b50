/**
 * Webhooks and channels as the dispatcher sees them: one Target, whatever the table, that
 * can send a notification and remembers how its last attempt went.
 */
import type { AppContext } from '../context.js';
import type { ChannelType, Event, NotificationChannel, NotificationTargetType, Webhook } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { CHANNELS } from './channels/index.js';
import type { ChannelSettings, Notification, SendResult } from './channels/channel.js';
import { sendWebhook } from './channels/webhook.js';
import { TITLE, type Severity } from './kinds.js';

export interface Target {
  kind: NotificationTargetType;
  /** The metrics label and the word for people: webhook, slack, discord... */
  type: 'webhook' | ChannelType;
  table: 'webhooks' | 'notification_channels';
  row: Webhook | NotificationChannel;
  /** Send once; never throws. */
  send(n: Notification, opts: { timeoutMs: number; now: Date }): Promise<SendResult>;
}

/** The settings of a channel: the plain ones and the secret ones, opened. */
export function channelSettings(ctx: AppContext, row: NotificationChannel): ChannelSettings {
  return { config: JSON.parse(row.config) as Record<string, unknown>, secrets: JSON.parse(ctx.secrets.open(row.secrets_enc)) as Record<string, string> };
}

export function webhookTarget(ctx: AppContext, row: Webhook): Target {
  return { kind: 'webhook', type: 'webhook', table: 'webhooks', row, send: (n, opts) => sendWebhook(n, row.url, ctx.secrets.open(row.secret_enc), opts) };
}

export function channelTarget(ctx: AppContext, row: NotificationChannel): Target {
  const channel = CHANNELS[row.type];
  return { kind: 'channel', type: row.type, table: 'notification_channels', row, send: (n, opts) => channel.send(n, channelSettings(ctx, row), opts) };
}

export async function loadTarget(ctx: AppContext, kind: NotificationTargetType, id: string): Promise<Target | undefined> {
  if (kind === 'webhook') {
    const row = await ctx.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && webhookTarget(ctx, row);
  }
  const row = await ctx.db.selectFrom('notification_channels').selectAll().where('id', '=', id).executeTakeFirst();
  return row && channelTarget(ctx, row);
}

/** The event kinds a target asked for. */
export function eventsOf(row: { events: string }): string[] {
  return JSON.parse(row.events) as string[];
}

/** How an attempt went, in a few words: "200 OK", "HTTP 500 ...", "no answer within 2 s". */
export function resultText(r: SendResult): string {
  if (r.success) return r.status_code !== null ? `${r.status_code} OK` : 'sent';
  return r.error ?? 'failed';
}

/** Remember the last attempt on the target (the API and the dashboard show it). */
export async function recordAttempt(ctx: AppContext, t: Target, r: SendResult, now: Date): Promise<void> {
  await ctx.db
    .updateTable(t.table)
    .set({ last_sent_at: nowIso(now), last_sent_success: r.success ? 1 : 0, last_sent_result: resultText(r) })
    .where('id', '=', t.row.id)
    .execute();
}

/** "Backup failed: shop/main", from the event's payload. */
export function titleOf(kind: string, data: Record<string, unknown>): string {
  const db = (data.database as { name?: string } | undefined)?.name;
  const branch = (data.branch as { name?: string } | undefined)?.name;
  const title = TITLE[kind] ?? kind;
  return db && branch ? `${title}: ${db}/${branch}` : title;
}

/** An event as the channels get it. */
export function notificationOf(e: Event, organization: string, deliveryId: string, data: Record<string, unknown>): Notification {
  return {
    id: e.id,
    delivery_id: deliveryId,
    kind: e.kind,
    severity: e.severity as Severity,
    created_at: e.created_at,
    organization,
    message: e.message,
    title: titleOf(e.kind, data),
    data,
  };
}
