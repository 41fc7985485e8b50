/**
 * Email over SMTP (nodemailer): host, port, implicit TLS (`secure`, port 465) or STARTTLS
 * (required by default whenever a password is sent in the clear otherwise), an optional
 * login (the password is secret), a sender and a list of recipients. An SMTP exchange has
 * several round trips, so it gets at least 10 s, not the 2 s of a webhook.
 */
import { cleanErrorText } from '../../error-text.js';
import { ChannelConfigError, type Channel, type Notification, type SendResult } from './channel.js';
import { onlyFields, redact, text } from './http.js';
import { plainText } from './format.js';

const MIN_TIMEOUT_MS = 10_000;
const ADDRESS = /^[^\s@<>",;]+@[^\s@<>",;]+$/;
/** "backups@example.com" or "Strongbox <backups@example.com>". */
const MAILBOX = /^(?:[^<>@\r\n]{0,100}<[^\s@<>",;]+@[^\s@<>",;]+>|[^\s@<>",;]+@[^\s@<>",;]+)$/;

export function emailSubject(n: Notification): string {
  return `[Strongbox] ${n.title}`.replace(/[\r\n]+/g, ' ');
}

export const email = {
  type: 'email',
  secretFields: ['password'],
  parse(input) {
    onlyFields(input, ['host', 'port', 'secure', 'starttls', 'user', 'password', 'from', 'to'], 'email');
    const host = text(input, 'host', { max: 255 })!;
    if (!/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(host)) throw new ChannelConfigError('config.host must be a host name or an IP address');
    if (input.secure !== undefined && typeof input.secure !== 'boolean') throw new ChannelConfigError('config.secure must be true (TLS from the start, usually port 465) or false');
    if (input.starttls !== undefined && typeof input.starttls !== 'boolean') throw new ChannelConfigError('config.starttls must be true (upgrade with STARTTLS, required) or false (plain, for a local relay)');
    const secure = input.secure === true;
    const starttls = input.starttls !== false;
    const port = input.port === undefined ? (secure ? 465 : 587) : input.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new ChannelConfigError('config.port must be a port number (1-65535)');
    const user = text(input, 'user', { optional: true, max: 255 });
    const password = text(input, 'password', { optional: true, max: 1000 });
    if (password !== undefined && user === undefined) throw new ChannelConfigError('config.password is given without config.user');
    const from = text(input, 'from', { max: 320 })!;
    if (!MAILBOX.test(from)) throw new ChannelConfigError('config.from must be an email address ("backups@example.com" or "Strongbox <backups@example.com>")');
    const to = input.to;
    if (!Array.isArray(to) || to.length === 0 || to.length > 50) throw new ChannelConfigError('config.to must be a list of 1 to 50 email addresses');
    for (const a of to) if (typeof a !== 'string' || !ADDRESS.test(a)) throw new ChannelConfigError(`config.to: "${String(a).slice(0, 100)}" is not an email address`);
    return { config: { host, port, secure, starttls, ...(user !== undefined ? { user } : {}), from, to }, secrets: password !== undefined ? { password } : ({} as Record<string, string>) };
  },
  async send(n, settings, opts): Promise<SendResult> {
    const c = settings.config as { host: string; port: number; secure: boolean; starttls: boolean; user?: string; from: string; to: string[] };
    const password = settings.secrets.password;
    const timeout = Math.max(opts.timeoutMs, MIN_TIMEOUT_MS);
    // Loaded by the first email, not when the server starts: most servers never send one.
    let nodemailer: (typeof import('nodemailer'))['default'];
    try {
      nodemailer = (await import('nodemailer')).default;
    } catch (e) {
      return { success: false, status_code: null, error: cleanErrorText(`cannot load nodemailer: ${(e as Error).message}`, 500), duration_ms: 0 };
    }
    const transport = nodemailer.createTransport({
      host: c.host,
      port: c.port,
      secure: c.secure,
      requireTLS: !c.secure && c.starttls,
      ignoreTLS: !c.secure && !c.starttls,
      auth: c.user !== undefined ? { user: c.user, pass: password ?? '' } : undefined,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
    const t0 = performance.now();
    try {
      const info = await transport.sendMail({ from: c.from, to: c.to, subject: emailSubject(n), text: plainText(n) });
      const code = /^(\d{3})/.exec(String(info.response ?? ''))?.[1];
      return { success: true, status_code: code ? Number(code) : null, error: null, duration_ms: Math.round(performance.now() - t0) };
    } catch (e) {
      const err = e as Error & { responseCode?: number; code?: string };
      const error = cleanErrorText(redact(`${err.code ? `${err.code}: ` : ''}${err.message}`, password ? [password] : []), 500);
      return { success: false, status_code: err.responseCode ?? null, error, duration_ms: Math.round(performance.now() - t0) };
    } finally {
      transport.close();
    }
  },
} satisfies Channel;
