/**
 * The HTTP client under the client commands: the server from STRONGBOX_URL, the token from
 * STRONGBOX_TOKEN or the bootstrap-token file, and the API's error messages in the words of
 * the command line (flags, not request body fields).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CliError } from './errors.js';

export interface Client {
  /** The server's base URL (for messages). */
  readonly base: string;
  request(method: string, url: string, body?: unknown): Promise<any>;
  raw(url: string): Promise<Response>;
}

/**
 * Rewrite an API message for a CLI user: each request body field the command sets from a
 * flag is named by that flag (`pass overwrite: true` → `pass --overwrite`,
 * `body.kind must be one of` → `--kind must be one of`), and `hints` replace API recipes
 * with the command that does the same.
 */
export function translateApiMessage(message: string, fields: Record<string, string> = {}, hints: Array<[string, string]> = []): string {
  let out = message;
  for (const [from, to] of hints) out = out.split(from).join(to);
  for (const [field, flag] of Object.entries(fields)) {
    const f = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out
      // `pass overwrite: true`, `{"overwrite": true}`
      .replace(new RegExp(`\\{?"?\\b${f}"?: (true|false)\\}?`, 'g'), flag)
      // `body.kind must be ...`, `body/kind`, `querystring.state must be ...`
      .replace(new RegExp(`\\b(?:body|querystring)[./]${f}\\b`, 'g'), flag)
      // `unknown field "kind"`, `missing required field "kind"` (not any quoted word: a name may be "name")
      .replace(new RegExp(`\\bfield "${f}"`, 'g'), `field ${flag}`);
    // A bare field name is only unambiguous when it cannot be an ordinary word.
    if (field.includes('_')) out = out.replace(new RegExp(`\\b${f}\\b`, 'g'), flag);
  }
  return out;
}

export function client(opts: { fields?: Record<string, string>; hints?: Array<[string, string]> } = {}): Client {
  const base = (process.env.STRONGBOX_URL || `http://${process.env.STRONGBOX_HOST || '127.0.0.1'}:${process.env.STRONGBOX_PORT || '8080'}`).replace(/\/$/, '');
  let token = process.env.STRONGBOX_TOKEN;
  const file = path.join(path.resolve(process.env.STRONGBOX_DATA_DIR || './data'), 'bootstrap-token');
  if (!token && fs.existsSync(file)) token = fs.readFileSync(file, 'utf8').trim();
  if (!token) throw new CliError(`no service token: set STRONGBOX_TOKEN=<id>:<secret> (or run where ${file} is readable)`);
  const headers = { authorization: token };
  const fail = (status: number, json: any, text: string): CliError => {
    const message = translateApiMessage(String(json?.message ?? text ?? '').trim(), opts.fields, opts.hints);
    return new CliError(`${status} ${json?.code ?? ''}: ${message}`);
  };
  const reach = async (url: string, init: RequestInit): Promise<Response> => {
    try {
      return await fetch(base + url, init);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach Strongbox at ${base}: ${cause?.code ?? cause?.message ?? (e as Error).message} (is it running? set STRONGBOX_URL to point elsewhere)`);
    }
  };
  return {
    base,
    async request(method, url, body) {
      const res = await reach(url, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json: any = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        if (res.ok) throw new CliError(`${base} answered ${url} with something that is not JSON: is STRONGBOX_URL a Strongbox server?`);
      }
      if (!res.ok) throw fail(res.status, json, text);
      return json;
    },
    async raw(url) {
      const res = await reach(url, { headers });
      if (!res.ok) {
        const text = await res.text().catch(() => '');
        let json: any = null;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        throw fail(res.status, json, text);
      }
      return res;
    },
  };
}
