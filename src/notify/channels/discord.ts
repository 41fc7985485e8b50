/** Discord webhooks: one embed coloured by severity; mentions are switched off (a database name cannot ping @everyone). */
import { ChannelConfigError, type Channel, type Notification } from './channel.js';
import { httpUrl, onlyFields, post } from './http.js';
import { cap } from './format.js';

const COLOR = { info: 0x2eb67d, warning: 0xecb22e, error: 0xe01e5a } as const;

export function discordBody(n: Notification): string {
  return JSON.stringify({
    content: '',
    embeds: [{ title: cap(n.title, 256), description: cap(n.message, 4000), color: COLOR[n.severity], timestamp: n.created_at, footer: { text: cap(`${n.organization} · ${n.kind}`, 2000) } }],
    allowed_mentions: { parse: [] },
  });
}

export const discord = {
  type: 'discord',
  secretFields: ['url'],
  parse(input) {
    onlyFields(input, ['url'], 'discord');
    if (input.url === undefined) throw new ChannelConfigError('config.url is required: the Discord webhook URL (https://discord.com/api/webhooks/...)');
    return { config: {}, secrets: { url: httpUrl(input.url, 'config.url') } };
  },
  send(n, settings, opts) {
    return post({ url: settings.secrets.url, headers: { 'content-type': 'application/json' }, body: discordBody(n), timeoutMs: opts.timeoutMs, secrets: [settings.secrets.url] });
  },
} satisfies Channel;
