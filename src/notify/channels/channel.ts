/**
 * The one small interface every notification channel implements (Slack, Discord,
 * Telegram, ntfy, email), and what a send reports. Webhooks are sent by webhook.ts with
 * the same result shape. Channels are wired by type in index.ts.
 */
import type { ChannelType } from '../../catalog/schema.js';
import type { Severity } from '../kinds.js';

/** What is being told: an event (or a test), ready for any channel to format. */
export interface Notification {
  /** The event's id: the same on every retry, so a receiver can drop duplicates. */
  id: string;
  /** This delivery's id (one per event and target). */
  delivery_id: string;
  /** An event kind (kinds.ts), or "test". */
  kind: string;
  severity: Severity;
  created_at: string;
  /** The organization's name. */
  organization: string;
  /** One line for people, e.g. `backup "x" of shop/main failed: ...`. */
  message: string;
  /** A short title, e.g. "Backup failed: shop/main". */
  title: string;
  /** The resource as the API shows it (the webhook body's `data`). */
  data: Record<string, unknown>;
}

/** How one attempt went. Never holds a secret (error texts are scrubbed of them). */
export interface SendResult {
  success: boolean;
  /** HTTP status, or the SMTP reply code; null when no answer came. */
  status_code: number | null;
  /** Why it failed, in a sentence; null on success. */
  error: string | null;
  duration_ms: number;
}

/** Settings as stored: the plain ones, and the secret ones (sealed together in the catalog). */
export interface ChannelSettings {
  config: Record<string, unknown>;
  secrets: Record<string, string>;
}

/** A setting a user gave is wrong: the message names the field and says what is expected. */
export class ChannelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelConfigError';
  }
}

export interface SendOptions {
  /** Give up on an answer after this long (HTTP channels; email allows itself more, see email.ts). */
  timeoutMs: number;
}

export interface Channel {
  readonly type: ChannelType;
  /** Settings that are secret: stored sealed, shown only as {"set": true|false}. */
  readonly secretFields: readonly string[];
  /**
   * Check and normalize the settings of a request (the whole set: on a change, the route
   * merges the stored ones with the new ones first). Throws ChannelConfigError.
   */
  parse(input: Record<string, unknown>): ChannelSettings;
  /** Send one notification. Never throws: a failure is a result (safe to retry). */
  send(n: Notification, settings: ChannelSettings, opts: SendOptions): Promise<SendResult>;
}
