/**
 * The server's log lines: JSON (pino's own lines, one object a line) for machines and log
 * collectors, or short human lines when a person watches a terminal. STRONGBOX_LOG_FORMAT
 * picks one (`json`, `pretty`); `auto`, the default, is pretty when stdout is a terminal.
 * The pretty form is a small pino destination of our own: it reads each JSON line pino
 * writes and prints it as `time LEVEL message key=value...`, so redaction and levels work
 * the same in both forms.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Whether the lines go out pretty: asked for, or `auto` on a terminal. */
export function prettyLogs(format: LogFormat, isTTY: boolean | undefined): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY === true);
}

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '\u001b[90m' },
  20: { name: 'DEBUG', color: '\u001b[36m' },
  30: { name: 'INFO', color: '\u001b[32m' },
  40: { name: 'WARN', color: '\u001b[33m' },
  50: { name: 'ERROR', color: '\u001b[31m' },
  60: { name: 'FATAL', color: '\u001b[35m' },
};
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';

/** pino's own fields, and the request line's fields the pretty form places itself. */
const OWN_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v']);
const REQUEST_FIELDS = new Set(['method', 'url', 'status', 'ms', 'token_id', 'reqId']);

function clock(time: unknown): string {
  const d = new Date(typeof time === 'number' || typeof time === 'string' ? time : Date.now());
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(11, 23);
}

/** A value as `key=value` shows it: plain words bare, anything else as JSON. */
function show(value: unknown): string {
  if (typeof value === 'string') return /^[\w./:@+-]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as a human line (no trailing newline). A request line reads
 * `GET /v1/organizations 200 3.1 ms token=… req=…`; an error's stack follows on indented lines.
 */
export function formatPretty(line: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.replace(/\n$/, '');
  }
  const level = LEVELS[Number(o.level)] ?? { name: String(o.level ?? '?').toUpperCase(), color: '' };
  const paint = (c: string, s: string) => (color && c ? `${c}${s}${RESET}` : s);
  const parts = [paint(DIM, clock(o.time)), paint(level.color, level.name.padEnd(5))];
  const isRequest = typeof o.method === 'string' && o.url !== undefined && o.status !== undefined;
  if (isRequest) {
    const status = Number(o.status);
    parts.push(`${String(o.method)} ${String(o.url)} ${paint(status >= 500 ? LEVELS[50]!.color : status >= 400 ? LEVELS[40]!.color : '', String(o.status))} ${String(o.ms)} ms`);
    if (o.token_id) parts.push(`token=${show(o.token_id)}`);
    if (o.reqId) parts.push(paint(DIM, `req=${show(o.reqId)}`));
  } else if (o.msg !== undefined) parts.push(String(o.msg));
  let stack = '';
  for (const [k, v] of Object.entries(o)) {
    if (OWN_FIELDS.has(k) || (isRequest && REQUEST_FIELDS.has(k))) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const err = v as { message?: unknown; stack?: unknown; type?: unknown };
      parts.push(`err=${show(err.message ?? err.type ?? v)}`);
      if (typeof err.stack === 'string') stack = '\n' + err.stack.split('\n').slice(1).map((l) => `    ${l.trim()}`).join('\n');
      continue;
    }
    parts.push(paint(DIM, `${k}=`) + show(v));
  }
  return parts.join(' ') + stack;
}

/** A pino destination that writes pretty lines to `out` (pino hands it one JSON line per write). */
export function prettyDestination(out: NodeJS.WritableStream & { isTTY?: boolean }, color = out.isTTY === true && !process.env.NO_COLOR): { write(line: string): boolean } {
  return { write: (line: string) => out.write(formatPretty(line, color) + '\n') };
}

/** Query parameters whose values may be credentials: never logged. */
const SECRET_PARAM = /token|secret|pass|key|sig|auth|credential|session|csrf/i;

/** The URL of a request as logged: the query's values that may be secrets are replaced, and long URLs cut. */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  let out = url;
  if (q >= 0) {
    const params = url
      .slice(q + 1)
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        const name = eq < 0 ? pair : pair.slice(0, eq);
        let decoded = name;
        try {
          decoded = decodeURIComponent(name.replace(/\+/g, ' '));
        } catch {
          /* a malformed escape: judge the name as written */
        }
        return eq >= 0 && SECRET_PARAM.test(decoded) ? `${name}=[redacted]` : pair;
      });
    out = `${url.slice(0, q)}?${params.join('&')}`;
  }
  return out.length > 500 ? `${out.slice(0, 500)}…` : out;
}

/**
 * The one line logged for each request, when its response is done: method, URL (see
 * loggableUrl), status, duration, and the id of the token that made it (never its secret);
 * the request id comes from the request's logger. A response that failed on the way out
 * (the client went away mid-stream) is logged at error level with why.
 */
export function logRequest(req: FastifyRequest, reply: FastifyReply, error?: Error | null): void {
  const status = reply.statusCode;
  const line = {
    method: req.method,
    url: loggableUrl(req.url),
    status,
    ms: Math.round(reply.elapsedTime * 10) / 10,
    token_id: (req.principal as { token?: { id?: string } } | null)?.token?.id,
    ...(error ? { err: error } : {}),
  };
  if (error || status >= 500) req.log.error(line, 'request');
  else req.log.info(line, 'request');
}

/**
 * Fastify's request logging as one line per request: nothing when a request comes in
 * (Fastify's "incoming request"), logRequest() when it is done (instead of "request
 * completed"). Fastify's other lines (5xx handling, stream errors) are kept.
 */
export class RequestLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    logRequest(request, reply, error);
  }
}
