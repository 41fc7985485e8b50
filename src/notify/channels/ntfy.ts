/**
 * ntfy (ntfy.sh or a self-hosted server): the message POSTed to the topic URL, with the
 * Title, Priority and Tags headers; an access token (secret, optional) for protected topics.
 */
import type { Channel, Notification } from './channel.js';
import { httpUrl, onlyFields, post, text } from './http.js';
import { cap } from './format.js';

const PRIORITY = { info: 'default', warning: 'high', error: 'high' } as const;
const TAGS = { info: 'white_check_mark', warning: 'warning', error: 'rotating_light' } as const;

/** Header values must be Latin-1: anything else goes as an RFC 2047 encoded word, which ntfy decodes. */
function headerText(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?UTF-8?B?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

export function ntfyHeaders(n: Notification): Record<string, string> {
  return { title: headerText(cap(n.title, 200)), priority: PRIORITY[n.severity], tags: `${TAGS[n.severity]},strongbox`, 'content-type': 'text/plain; charset=utf-8' };
}

export const ntfy = {
  type: 'ntfy',
  secretFields: ['token'],
  parse(input) {
    onlyFields(input, ['url', 'token'], 'ntfy');
    const url = httpUrl(input.url, 'config.url');
    const token = text(input, 'token', { optional: true, max: 500 });
    return { config: { url }, secrets: token ? { token } : ({} as Record<string, string>) };
  },
  send(n, settings, opts) {
    const token = settings.secrets.token;
    return post({
      url: settings.config.url as string,
      headers: { ...ntfyHeaders(n), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: cap(`${n.message}\n${n.organization} · ${n.created_at}`, 4000),
      timeoutMs: opts.timeoutMs,
      secrets: token ? [token] : [],
    });
  },
} satisfies Channel;
