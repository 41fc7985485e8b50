/**
 * The CLI's API-client commands. They talk to a running server over HTTP with a service
 * token, exactly like any other client, so they never bypass access checks.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';

export class CliError extends Error {}

export const USAGE = `Usage: strongbox <command>

Server:
  serve                                   run the API and the job runner
  worker                                  run only the job runner (scale-out: PostgreSQL catalog)
  token create [--name N] [--org O] [--admin]
                                          create a service token offline, print <id>:<secret>
                                          (SQLite catalog: with the server stopped)
  secrets rotate-key                      re-encrypt every stored secret under a new key (every process stopped)
  secrets fingerprint                     print the fingerprint of this process's secret key
  catalog rebuild --destination NAME [--org O]
                                          rebuild the catalog's backups from the manifests in a destination

Client (STRONGBOX_URL, default http://127.0.0.1:8080; STRONGBOX_TOKEN, default <data dir>/bootstrap-token):
  database add ORG/DB --kind postgresql|mysql
  branch add ORG/DB/BRANCH [--production]  connection URL from $STRONGBOX_CONNECTION_URL or stdin
  backup create ORG/DB/BRANCH [--name N] [--retention 7d] [--wait]
  backup list ORG/DB/BRANCH [--all] [--state STATE] [--page N]
  backup get ORG/DB/BRANCH ID
  backup progress ORG/DB/BRANCH ID        follow a backup until it ends (bytes, rate, ETA)
  backup download ORG/DB/BRANCH ID -o FILE
                                          download the stored artifact and check its sha256
  backup verify ORG/DB/BRANCH ID [--full] [--wait]
                                          check every stored copy (--full: restore into a scratch database too)
  backup protect|unprotect|delete|cancel ORG/DB/BRANCH ID
  restore ORG/DB/NEW_BRANCH --backup ID [--wait] [--overwrite] [--preserve-ownership]
                                          restore into a new branch (target URL, if any, from
                                          $STRONGBOX_CONNECTION_URL; default: a new database on the backup's server);
                                          --preserve-ownership keeps owners and grants (the roles must exist there)
`;

interface Client {
  request(method: string, url: string, body?: unknown): Promise<any>;
  raw(url: string): Promise<Response>;
}

function client(): Client {
  const base = (process.env.STRONGBOX_URL || `http://${process.env.STRONGBOX_HOST || '127.0.0.1'}:${process.env.STRONGBOX_PORT || '8080'}`).replace(/\/$/, '');
  let token = process.env.STRONGBOX_TOKEN;
  if (!token) {
    const file = path.join(path.resolve(process.env.STRONGBOX_DATA_DIR || './data'), 'bootstrap-token');
    if (fs.existsSync(file)) token = fs.readFileSync(file, 'utf8').trim();
  }
  if (!token) throw new CliError('no service token: set STRONGBOX_TOKEN=<id>:<secret>');
  const headers = { authorization: token };
  return {
    async request(method, url, body) {
      let res: Response;
      try {
        res = await fetch(base + url, {
          method,
          headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        throw new CliError(`cannot reach Strongbox at ${base}: ${(e as Error).message}`);
      }
      const text = await res.text();
      const json = text ? JSON.parse(text) : null;
      if (!res.ok) throw new CliError(`${res.status} ${json?.code ?? ''}: ${json?.message ?? text}`);
      return json;
    },
    async raw(url) {
      const res = await fetch(base + url, { headers });
      if (!res.ok) {
        const json = await res.json().catch(() => null);
        throw new CliError(`${res.status} ${json?.code ?? ''}: ${json?.message ?? ''}`);
      }
      return res;
    },
  };
}

function splitPath(spec: string | undefined, parts: number, what: string): string[] {
  const p = (spec ?? '').split('/');
  if (p.length !== parts || p.some((x) => x === '')) throw new CliError(`expected ${what}, got "${spec ?? ''}"`);
  return p.map(encodeURIComponent);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function formatEta(s: number | null): string {
  if (s === null) return '--';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `text` on one line, cut to `max` characters (a table cell; the full text is in `backup get`). */
function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function printTable(rows: Array<Record<string, unknown>>, columns: string[]): void {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(line(columns.map((c) => c.toUpperCase())) + '\n');
  for (const r of rows) process.stdout.write(line(columns.map((c) => String(r[c] ?? ''))) + '\n');
}

/** Follow a backup until it ends; returns the backup and why it failed (null if it did not). */
async function followProgress(c: Client, base: string, id: string): Promise<{ backup: any; error: string | null }> {
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const p = await c.request('GET', `${base}/${id}/progress`);
    const pct = p.percent === null ? '' : ` ${p.percent}%`;
    const line = `${p.state}${pct}  read ${formatBytes(p.bytes_read)}  stored ${formatBytes(p.bytes_written)}  ${formatBytes(p.rate_bytes_per_second)}/s  ETA ${formatEta(p.eta_seconds)}`;
    if (line !== last) {
      process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      last = line;
    }
    if (p.state !== 'pending' && p.state !== 'running') {
      if (tty) process.stdout.write('\n');
      return { backup: await c.request('GET', `${base}/${id}`), error: p.error ?? null };
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export async function runClientCommand(command: string, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      kind: { type: 'string' },
      production: { type: 'boolean', default: false },
      name: { type: 'string' },
      retention: { type: 'string' },
      wait: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      state: { type: 'string' },
      page: { type: 'string' },
      output: { type: 'string', short: 'o' },
      full: { type: 'boolean', default: false },
      backup: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      'preserve-ownership': { type: 'boolean', default: false },
    },
  });
  const c = client();
  // `restore` takes no sub-command: its first argument is the new branch.
  if (command === 'restore') return restoreCommand(c, [sub, ...positionals], values);
  const key = `${command} ${sub ?? ''}`;
  switch (key) {
    case 'database add': {
      const [org, db] = splitPath(positionals[0], 2, 'ORG/DB');
      if (values.kind !== 'postgresql' && values.kind !== 'mysql') throw new CliError('--kind must be postgresql or mysql');
      const d = await c.request('POST', `/v1/organizations/${org}/databases`, { name: decodeURIComponent(db), kind: values.kind });
      process.stdout.write(`database ${d.name} (${d.kind}) id ${d.id}\n`);
      return;
    }
    case 'branch add': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      // Never from argv: a password there is visible to every user of the machine (ps).
      const url = process.env.STRONGBOX_CONNECTION_URL || (process.stdin.isTTY ? '' : await readStdin());
      if (!url) throw new CliError('give the connection URL in $STRONGBOX_CONNECTION_URL or on stdin (never as an argument)');
      const b = await c.request('POST', `/v1/organizations/${org}/databases/${db}/branches`, { name: decodeURIComponent(branch), production: values.production, connection_url: url });
      process.stdout.write(`branch ${b.name} id ${b.id}: ${b.kind} ${b.server_version} at ${b.connection.host}:${b.connection.port}/${b.connection.database}\n`);
      return;
    }
    case 'backup create': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      const body: Record<string, unknown> = {};
      if (values.name) body.name = values.name;
      if (values.retention) {
        const m = /^(\d+)\s*(h|hour|d|day|w|week|m|month|y|year)s?$/.exec(values.retention);
        if (!m) throw new CliError('--retention is like 6h, 7d, 2w, 3m or 1y');
        const unit = { h: 'hour', d: 'day', w: 'week', m: 'month', y: 'year' }[m[2][0] as 'h'];
        body.retention_value = Number(m[1]);
        body.retention_unit = unit;
      }
      const base = `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups`;
      const b = await c.request('POST', base, body);
      process.stdout.write(`backup ${b.id} queued (${b.name})\n`);
      if (values.wait) {
        const { backup: final, error } = await followProgress(c, base, b.id);
        process.stdout.write(`backup ${final.id}: ${final.state}, ${formatBytes(final.size)} stored\n`);
        if (final.state !== 'success') {
          if (error) process.stderr.write(`reason: ${error}\n`);
          const arts = await c.request('GET', `${base}/${b.id}/artifacts`);
          for (const a of arts.data) if (a.error) process.stderr.write(`  ${a.destination}: ${a.error}\n`);
          process.exitCode = 1;
        }
      }
      return;
    }
    case 'backup list': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      const qs = new URLSearchParams();
      if (values.all) qs.set('all', 'true');
      if (values.state) qs.set('state', values.state);
      if (values.page) qs.set('page', values.page);
      const base = `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups`;
      const list = await c.request('GET', `${base}?${qs}`);
      // The Backup object has no room for the reason (it is PlanetScale's, field for field):
      // each failed, canceled or ignored backup's comes from its progress.
      const reasons = await Promise.all(
        list.data.map(async (b: any) => (['failed', 'canceled', 'ignored'].includes(b.state) ? ((await c.request('GET', `${base}/${encodeURIComponent(b.id)}/progress`)).error ?? '') : '')),
      );
      const rows = list.data.map((b: any, i: number) => ({
        id: b.id,
        name: b.name,
        state: b.state,
        size: formatBytes(b.size),
        created: b.created_at,
        expires: b.expires_at ?? '',
        protected: b.protected ? 'yes' : '',
        reason: oneLine(reasons[i], 100),
      }));
      const columns = ['id', 'name', 'state', 'size', 'created', 'expires', 'protected'];
      printTable(rows, reasons.some((r) => r !== '') ? [...columns, 'reason'] : columns);
      process.stdout.write(`page ${list.current_page} of ${list.total_pages}, ${list.total_count} backups\n`);
      return;
    }
    case 'backup get': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      const id = positionals[1];
      if (!id) throw new CliError('give the backup id');
      const base = `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups/${encodeURIComponent(id)}`;
      const b = await c.request('GET', base);
      const arts = await c.request('GET', `${base}/artifacts`);
      // `error` (why it failed, was canceled or ignored) sits beside the state it explains.
      const { id: backupId, name, state, ...rest } = b;
      process.stdout.write(JSON.stringify({ id: backupId, name, state, error: arts.backup_error ?? null, ...rest, artifacts: arts.data }, null, 2) + '\n');
      return;
    }
    case 'backup progress': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      if (!positionals[1]) throw new CliError('give the backup id');
      const { backup: final, error } = await followProgress(c, `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups`, encodeURIComponent(positionals[1]));
      process.stdout.write(`backup ${final.id}: ${final.state}${error ? `: ${error}` : ''}\n`);
      return;
    }
    case 'backup download': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      if (!positionals[1] || !values.output) throw new CliError('usage: backup download ORG/DB/BRANCH ID -o FILE');
      const res = await c.raw(`/v1/organizations/${org}/databases/${db}/branches/${branch}/backups/${encodeURIComponent(positionals[1])}/download`);
      const expected = res.headers.get('x-checksum-sha256');
      const hash = crypto.createHash('sha256');
      const tmp = `${values.output}.partial`;
      await pipeline(
        Readable.fromWeb(res.body as any),
        new Transform({
          transform(chunk, _e, cb) {
            hash.update(chunk);
            cb(null, chunk);
          },
        }),
        fs.createWriteStream(tmp, { mode: 0o600 }),
      );
      const actual = hash.digest('hex');
      if (expected && actual !== expected) {
        fs.rmSync(tmp, { force: true });
        throw new CliError(`checksum mismatch: expected ${expected}, got ${actual}; nothing written`);
      }
      fs.renameSync(tmp, values.output);
      process.stdout.write(`wrote ${values.output} (sha256 ${actual}, verified)\n`);
      return;
    }
    case 'backup verify': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      if (!positionals[1]) throw new CliError('give the backup id');
      const base = `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups/${encodeURIComponent(positionals[1])}`;
      const v = await c.request('POST', `${base}/verify`, values.full ? { restore: true } : {});
      process.stdout.write(`verification ${v.id} (${v.kind}) queued\n`);
      if (!values.wait) return;
      for (;;) {
        const list = await c.request('GET', `${base}/verifications`);
        const cur = list.data.find((x: any) => x.id === v.id);
        if (cur.state !== 'pending' && cur.state !== 'running') {
          for (const a of cur.result?.artifacts ?? []) process.stdout.write(`  ${a.destination}: ${a.ok ? 'ok' : `FAILED: ${a.error}`}\n`);
          if (cur.result?.restore) process.stdout.write(`  restore into ${cur.result.restore.database}: ${cur.result.restore.ok ? `ok, ${cur.result.restore.tables} tables, row counts match` : `FAILED: ${cur.result.restore.error}`}\n`);
          process.stdout.write(`verification ${cur.state === 'success' ? 'passed' : `failed: ${cur.error}`}\n`);
          if (cur.state !== 'success') process.exitCode = 1;
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    case 'backup protect':
    case 'backup unprotect':
    case 'backup delete':
    case 'backup cancel': {
      const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/BRANCH');
      if (!positionals[1]) throw new CliError('give the backup id');
      const url = `/v1/organizations/${org}/databases/${db}/branches/${branch}/backups/${encodeURIComponent(positionals[1])}`;
      if (sub === 'delete') await c.request('DELETE', url);
      else if (sub === 'cancel') process.stdout.write(`backup ${positionals[1]}: ${(await c.request('POST', `${url}/cancel`, {})).state}\n`);
      else await c.request('PATCH', url, { protected: sub === 'protect' });
      if (sub !== 'cancel') process.stdout.write(`backup ${positionals[1]}: ${sub === 'delete' ? 'deleted' : `${sub}ed`}\n`);
      return;
    }
    default:
      throw new CliError(`unknown command "${key.trim()}"\n\n${USAGE}`);
  }
}

async function restoreCommand(c: Client, positionals: Array<string | undefined>, values: { backup?: string; wait?: boolean; overwrite?: boolean; production?: boolean; 'preserve-ownership'?: boolean }): Promise<void> {
  const [org, db, branch] = splitPath(positionals[0], 3, 'ORG/DB/NEW_BRANCH');
  if (!values.backup) throw new CliError('give the backup to restore: --backup ID');
  const body: Record<string, unknown> = { name: decodeURIComponent(branch), backup_id: values.backup, production: values.production };
  if (process.env.STRONGBOX_CONNECTION_URL) body.connection_url = process.env.STRONGBOX_CONNECTION_URL;
  if (values.overwrite) body.overwrite = true;
  if (values['preserve-ownership']) body.preserve_ownership = true;
  const dbPath = `/v1/organizations/${org}/databases/${db}/branches`;
  const b = await c.request('POST', dbPath, body);
  process.stdout.write(`restoring backup ${values.backup} into branch ${b.name} (${b.connection.host}:${b.connection.port}/${b.connection.database})\n`);
  if (!values.wait) return;
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const cur = await c.request('GET', `${dbPath}/${branch}`);
    const r = cur.restore;
    const pct = r.total_bytes > 0 ? ` ${Math.min(100, Math.floor((r.bytes / r.total_bytes) * 100))}%` : '';
    const line = `${r.state}${pct}  ${formatBytes(r.bytes)} of ${formatBytes(r.total_bytes)}  ${formatBytes(r.rate_bytes_per_second)}/s  ETA ${formatEta(r.eta_seconds)}`;
    if (line !== last) {
      process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      last = line;
    }
    if (r.state !== 'pending' && r.state !== 'running') {
      if (tty) process.stdout.write('\n');
      process.stdout.write(r.state === 'success' ? `restore succeeded\n` : `restore ${r.state}: ${r.error}\n`);
      if (r.state !== 'success') process.exitCode = 1;
      return;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}
