/**
 * Telegram bots: `POST <api_url>/bot<token>/sendMessage` with the chat id and plain text.
 * `api_url` defaults to https://api.telegram.org (a local Bot API server, or a test
 * receiver, can stand in); the bot token is secret and is scrubbed from every error.
 */
import { ChannelConfigError, type Channel } from './channel.js';
import { httpUrl, onlyFields, post, text } from './http.js';
import { cap, plainText } from './format.js';

export const TELEGRAM_API = 'https://api.telegram.org';

export const telegram = {
  type: 'telegram',
  secretFields: ['bot_token'],
  parse(input) {
    onlyFields(input, ['bot_token', 'chat_id', 'api_url'], 'telegram');
    const token = text(input, 'bot_token', { max: 200 })!;
    if (!/^\d+:[A-Za-z0-9_-]+$/.test(token)) throw new ChannelConfigError('config.bot_token does not look like a bot token (<digits>:<letters>, as @BotFather gives it)');
    const chat = typeof input.chat_id === 'number' && Number.isInteger(input.chat_id) ? String(input.chat_id) : text(input, 'chat_id', { max: 100 })!;
    if (!/^(-?\d+|@[A-Za-z0-9_]{4,})$/.test(chat)) throw new ChannelConfigError('config.chat_id must be a chat id (a number, negative for groups) or a @channelname');
    const api = input.api_url === undefined || input.api_url === null ? TELEGRAM_API : httpUrl(input.api_url, 'config.api_url').replace(/\/+$/, '');
    return { config: { chat_id: chat, api_url: api }, secrets: { bot_token: token } };
  },
  send(n, settings, opts) {
    const token = settings.secrets.bot_token;
    return post({
      url: `${settings.config.api_url as string}/bot${token}/sendMessage`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chat_id: settings.config.chat_id, text: cap(`${n.title}\n${plainText(n)}`, 4096), disable_web_page_preview: true }),
      timeoutMs: opts.timeoutMs,
      secrets: [token],
      // Telegram says what is wrong in `description` ("Bad Request: chat not found").
      describeFailure: (_status, body) => {
        try {
          return (JSON.parse(body) as { description?: string }).description ?? null;
        } catch {
          return null;
        }
      },
    });
  },
} satisfies Channel;
