/**
 * Webhooks: the event as JSON, POSTed and signed. The body is
 * `{"id", "event", "created_at", "organization", "data"}`; the headers name the event and the
 * delivery, and `X-Strongbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` signs
 * `"<t>.<body>"` under the webhook's secret, so a receiver can tell it came from us and is
 * fresh (README, "Notifications", shows how to check it).
 */
import crypto from 'node:crypto';
import { post } from './http.js';
import type { Notification, SendResult } from './channel.js';

/** The JSON body of a webhook delivery. */
export function webhookBody(n: Notification): string {
  return JSON.stringify({ id: n.id, event: n.kind, created_at: n.created_at, organization: n.organization, data: n.data });
}

/** The signature header's value for `body` sent at `unixSeconds`. */
export function signature(secret: string, unixSeconds: number, body: string): string {
  const mac = crypto.createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** A new signing secret: 32 random bytes. */
export function newWebhookSecret(): string {
  return 'whsec_' + crypto.randomBytes(32).toString('base64url');
}

export async function sendWebhook(n: Notification, url: string, secret: string, opts: { timeoutMs: number; now: Date }): Promise<SendResult> {
  const body = webhookBody(n);
  return post({
    url,
    body,
    timeoutMs: opts.timeoutMs,
    secrets: [secret],
    headers: {
      'content-type': 'application/json',
      'user-agent': 'Strongbox-Webhook',
      'x-strongbox-event': n.kind,
      'x-strongbox-delivery': n.delivery_id,
      'x-strongbox-signature': signature(secret, Math.floor(opts.now.getTime() / 1000), body),
    },
  });
}
