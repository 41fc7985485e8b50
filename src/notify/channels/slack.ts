/** Slack incoming webhooks: `text` (for notifications and old clients) plus Block Kit blocks. */
import { ChannelConfigError, type Channel, type Notification } from './channel.js';
import { httpUrl, onlyFields, post } from './http.js';
import { cap } from './format.js';

const ICON = { info: ':white_check_mark:', warning: ':warning:', error: ':rotating_light:' } as const;

/** Slack's mrkdwn treats &, < and > as markup. */
function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function slackBody(n: Notification): string {
  return JSON.stringify({
    text: `${ICON[n.severity]} ${escape(n.title)}: ${escape(cap(n.message, 2000))}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: cap(n.title, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: `${ICON[n.severity]} ${escape(cap(n.message, 2900))}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escape(`${n.organization} · ${n.kind} · ${n.created_at}`) }] },
    ],
  });
}

export const slack = {
  type: 'slack',
  secretFields: ['url'],
  parse(input) {
    onlyFields(input, ['url'], 'slack');
    if (input.url === undefined) throw new ChannelConfigError('config.url is required: the Slack incoming webhook URL (https://hooks.slack.com/services/...)');
    return { config: {}, secrets: { url: httpUrl(input.url, 'config.url') } };
  },
  send(n, settings, opts) {
    return post({ url: settings.secrets.url, headers: { 'content-type': 'application/json' }, body: slackBody(n), timeoutMs: opts.timeoutMs, secrets: [settings.secrets.url] });
  },
} satisfies Channel;
