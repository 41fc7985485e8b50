/**
 * The client commands: each talks to a running server over HTTP with a service token,
 * exactly like any other client, so it never bypasses access checks. Results go to stdout
 * (tables by default, the API's JSON with --json), progress and problems to stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import type { CommandSpec, Values } from './args.js';
import { client, type Client } from './client.js';
import { CliError, EXIT, UsageError } from './errors.js';
import { fieldsList, formatBytes, oneLine, plural, print, printJson, table } from './output.js';
import { ProgressDisplay, type ProgressSnapshot } from './progress.js';

interface Invocation {
  spec: CommandSpec;
  values: Values;
  positionals: string[];
  c: Client;
  json: boolean;
}

type Handler = (inv: Invocation) => Promise<void>;

/** A path argument split into its URL-encoded parts; a usage error when it has the wrong shape. */
function splitPath(inv: Invocation, index: number, parts: number): string[] {
  const spec = inv.positionals[index] ?? '';
  const p = spec.split('/');
  const what = inv.spec.args[index];
  if (p.length !== parts || p.some((x) => x === '')) throw new UsageError(`expected ${what} for "${inv.spec.name}", got "${spec}"; see strongbox ${inv.spec.name} --help`);
  return p.map(encodeURIComponent);
}

/** A word as a shell would need it, for the commands we print for the user to paste. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** How often a wait polls: a terminal's bar moves smoothly, a log needs less. */
const pollMs = () => (process.stderr.isTTY ? 500 : 1000);

/**
 * While following a job, Ctrl-C stops the following, not the job: say so, and how to pick
 * it up again or stop it, then exit 130 (128 + SIGINT) like any interrupted command.
 */
function onInterrupt(display: ProgressDisplay | null, lines: string[]): () => void {
  const handler = () => {
    display?.clear();
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exit(EXIT.interrupted);
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

function backupSnapshot(p: any): ProgressSnapshot {
  const base = { state: p.state, done: p.bytes_read, total: p.estimated_total_bytes ?? null, percent: p.percent, rate: p.rate_bytes_per_second, eta: p.eta_seconds, verb: 'read' };
  if (p.state === 'pending') return { ...base, note: 'waiting for a worker…' };
  if (p.state === 'running' && p.bytes_read === 0) return { ...base, note: 'starting the dump…' };
  const extra = `${formatBytes(p.bytes_written)} stored`;
  // The total is an estimate (the database's size on disk): once the dump has ended, what it read is the truth.
  if (p.state !== 'running') return { ...base, total: null, percent: null, eta: null, extra };
  return { ...base, extra };
}

/** Follow a backup until it ends; returns the backup and why it failed (null if it did not). */
async function followBackup(c: Client, base: string, id: string, pathArg: string): Promise<{ backup: any; error: string | null }> {
  const display = new ProgressDisplay();
  const stop = onInterrupt(display, [
    `strongbox: stopped following; backup ${id} keeps running on the server.`,
    `  follow it:  strongbox backup progress ${shellWord(pathArg)} ${shellWord(id)}`,
    `  cancel it:  strongbox backup cancel ${shellWord(pathArg)} ${shellWord(id)}`,
  ]);
  try {
    for (;;) {
      const p = await c.request('GET', `${base}/${encodeURIComponent(id)}/progress`);
      if (p.state !== 'pending' && p.state !== 'running') {
        display.finish(backupSnapshot(p));
        return { backup: await c.request('GET', `${base}/${encodeURIComponent(id)}`), error: p.error ?? null };
      }
      display.update(backupSnapshot(p));
      await sleep(pollMs());
    }
  } finally {
    stop();
  }
}

function restoreSnapshot(r: any): ProgressSnapshot {
  // The artifact's size is known once the restore has opened it: before that there is no
  // total to show (never "0 B of 0 B").
  const total = r.total_bytes > 0 ? r.total_bytes : null;
  // A point-in-time restore also says what it is doing (fetching, replaying WAL, copying out).
  const base = { state: r.state, done: r.bytes, total, rate: r.rate_bytes_per_second, eta: total ? r.eta_seconds : null, verb: 'read', ...(r.phase ? { extra: r.phase } : {}) };
  if (r.state === 'pending') return { ...base, note: 'waiting for a worker…' };
  if (r.state === 'running' && r.bytes === 0) return { ...base, note: r.phase ?? 'preparing…' };
  return base;
}

/** Follow a restore into `branchUrl` until it ends; returns the branch as it ended. */
async function followRestore(c: Client, branchUrl: string, pathArg: string): Promise<any> {
  const display = new ProgressDisplay();
  const stop = onInterrupt(display, [
    `strongbox: stopped following; the restore into ${pathArg} keeps running on the server (a restore cannot be canceled).`,
    `  follow it:  strongbox restore progress ${shellWord(pathArg)}`,
  ]);
  try {
    for (;;) {
      const cur = await c.request('GET', branchUrl);
      const r = cur.restore;
      if (!r) throw new CliError(`branch ${pathArg} was not made by a restore: there is no restore to follow`);
      if (r.state !== 'pending' && r.state !== 'running') {
        display.finish(restoreSnapshot(r));
        return cur;
      }
      display.update(restoreSnapshot(r));
      await sleep(pollMs());
    }
  } finally {
    stop();
  }
}

function printRestoreResult(inv: Invocation, branch: any): void {
  const r = branch.restore;
  if (inv.json) printJson(branch);
  else print(r.state === 'success' ? `restore succeeded: branch ${branch.name} (${branch.connection.host}:${branch.connection.port}/${branch.connection.database})` : `restore ${r.state}: ${r.error}`);
  if (r.state !== 'success') process.exitCode = EXIT.failed;
}

const branchUrl = (org: string, db: string, branch: string) => `/v1/organizations/${org}/databases/${db}/branches/${branch}`;

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

export const HANDLERS: Record<string, Handler> = {
  async 'database add'(inv) {
    const [org, db] = splitPath(inv, 0, 2);
    const d = await inv.c.request('POST', `/v1/organizations/${org}/databases`, { name: decodeURIComponent(db), kind: inv.values.kind });
    if (inv.json) printJson(d);
    else print(`database ${d.name} (${d.kind}) id ${d.id}`);
  },

  async 'database list'(inv) {
    const [org] = splitPath(inv, 0, 1);
    const qs = new URLSearchParams();
    if (inv.values.page) qs.set('page', String(inv.values.page));
    const list = await inv.c.request('GET', `/v1/organizations/${org}/databases?${qs}`);
    if (inv.json) return printJson(list);
    print(table(list.data.map((d: any) => ({ name: d.name, kind: d.kind, id: d.id, destinations: d.storage_destinations?.join(', ') ?? '(defaults)', created: d.created_at })), ['name', 'kind', 'id', 'destinations', 'created']));
    print(`page ${list.current_page} of ${list.total_pages}, ${plural(list.total_count, 'database')}`);
  },

  async 'branch add'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    // Never from argv: a password there is visible to every user of the machine (ps).
    const url = process.env.STRONGBOX_CONNECTION_URL || (process.stdin.isTTY ? '' : await readStdin());
    if (!url) throw new UsageError('give the connection URL in $STRONGBOX_CONNECTION_URL or on stdin (never as an argument); see strongbox branch add --help');
    const b = await inv.c.request('POST', `/v1/organizations/${org}/databases/${db}/branches`, { name: decodeURIComponent(branch), production: inv.values.production === true, connection_url: url });
    if (inv.json) printJson(b);
    else print(`branch ${b.name} id ${b.id}: ${b.kind} ${b.server_version} at ${b.connection.host}:${b.connection.port}/${b.connection.database}`);
  },

  async 'branch list'(inv) {
    const [org, db] = splitPath(inv, 0, 2);
    const qs = new URLSearchParams();
    if (inv.values.page) qs.set('page', String(inv.values.page));
    const list = await inv.c.request('GET', `/v1/organizations/${org}/databases/${db}/branches?${qs}`);
    if (inv.json) return printJson(list);
    const rows = list.data.map((b: any) => ({
      name: b.name,
      production: yesNo(b.production),
      server: `${b.kind} ${b.server_version ?? ''}`.trim(),
      connection: `${b.connection.user}@${b.connection.host}:${b.connection.port}/${b.connection.database}`,
      restore: b.restore ? `${b.restore.state} (backup ${b.restore.backup_id})` : '',
    }));
    print(table(rows, ['name', 'production', 'server', 'connection', ...(rows.some((r: any) => r.restore) ? ['restore'] : [])]));
    print(`page ${list.current_page} of ${list.total_pages}, ${plural(list.total_count, 'branch', 'branches')}`);
  },

  async 'branch archiving'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const mode = inv.positionals[1];
    if (mode !== 'on' && mode !== 'off' && mode !== 'status') throw new UsageError(`"${mode}" is not on, off or status; see strongbox branch archiving --help`);
    const url = branchUrl(org, db, branch);
    const b = mode === 'status' ? await inv.c.request('GET', url) : await inv.c.request('PATCH', url, { archiving: mode === 'on' });
    if (inv.json) return printJson(b);
    const a = b.archive;
    if (!a) return print(`branch ${b.name}: archiving is off (never switched on)`);
    const state = a.enabled ? `on, ${a.state}` : 'off';
    print(`branch ${b.name}: archiving ${state}${a.last_shipped_at ? `, last file stored ${a.last_shipped_at}` : ''}${a.slot_name ? `, replication slot ${a.slot_name}` : ''}${a.error ? `\n  error: ${a.error}` : ''}`);
  },

  async 'branch recovery-window'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const w = await inv.c.request('GET', `${branchUrl(org, db, branch)}/recovery-window`);
    if (inv.json) return printJson(w);
    if (!w.earliest || !w.latest) {
      print(`branch ${decodeURIComponent(branch)}: nothing restorable to a point in time (archiving off, or no backup taken since it was switched on)`);
    } else {
      print(`branch ${decodeURIComponent(branch)}: restorable from ${w.earliest} to ${w.latest}${w.gaps.length ? ', except in the gaps below' : ''}`);
    }
    for (const g of w.gaps) print(`  gap after ${g.after ?? 'the start'} until ${g.before ?? '(nothing restorable after it until a newer backup)'}: missing ${g.missing.join(', ')}`);
  },

  async 'backup create'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const body: Record<string, unknown> = {};
    if (inv.values.name) body.name = inv.values.name;
    if (inv.values.retention) {
      const m = /^(\d+)\s*(h|hour|d|day|w|week|m|month|y|year)s?$/.exec(String(inv.values.retention));
      if (!m) throw new UsageError(`--retention is like 6h, 7d, 2w, 3m or 1y, got "${inv.values.retention}"; see strongbox backup create --help`);
      body.retention_value = Number(m[1]);
      body.retention_unit = { h: 'hour', d: 'day', w: 'week', m: 'month', y: 'year' }[m[2][0] as 'h'];
    }
    const base = `${branchUrl(org, db, branch)}/backups`;
    const b = await inv.c.request('POST', base, body);
    const quiet = inv.values.quiet === true;
    if (!inv.values.wait) {
      if (inv.json) printJson(b);
      else print(quiet ? b.id : `backup ${b.id} queued (${b.name})`);
      return;
    }
    if (!inv.json && !quiet) print(`backup ${b.id} queued (${b.name})`);
    const { backup: final, error } = await followBackup(inv.c, base, b.id, inv.positionals[0]);
    if (inv.json) printJson({ ...final, error });
    else if (quiet) print(final.id);
    else print(`backup ${final.id}: ${final.state}, ${formatBytes(final.size)} stored`);
    if (final.state !== 'success') {
      if (error) process.stderr.write(`reason: ${error}\n`);
      const arts = await inv.c.request('GET', `${base}/${encodeURIComponent(b.id)}/artifacts`);
      for (const a of arts.data) if (a.error) process.stderr.write(`  ${a.destination}: ${a.error}\n`);
      process.exitCode = EXIT.failed;
    }
  },

  async 'backup list'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const qs = new URLSearchParams();
    if (inv.values.all) qs.set('all', 'true');
    if (inv.values.state) qs.set('state', String(inv.values.state));
    if (inv.values.page) qs.set('page', String(inv.values.page));
    const base = `${branchUrl(org, db, branch)}/backups`;
    const list = await inv.c.request('GET', `${base}?${qs}`);
    if (inv.json) return printJson(list);
    if (inv.values.quiet) {
      for (const b of list.data) print(b.id);
      return;
    }
    // The Backup object has no room for the reason (it is PlanetScale's, field for field):
    // each failed, canceled or ignored backup's comes from its progress.
    const reasons: string[] = await Promise.all(
      list.data.map(async (b: any) => (['failed', 'canceled', 'ignored'].includes(b.state) ? ((await inv.c.request('GET', `${base}/${encodeURIComponent(b.id)}/progress`)).error ?? '') : '')),
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
    print(table(rows, reasons.some((r) => r !== '') ? [...columns, 'reason'] : columns));
    print(`page ${list.current_page} of ${list.total_pages}, ${plural(list.total_count, 'backup')}`);
  },

  async 'backup get'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const base = `${branchUrl(org, db, branch)}/backups/${encodeURIComponent(inv.positionals[1])}`;
    const [b, arts] = await Promise.all([inv.c.request('GET', base), inv.c.request('GET', `${base}/artifacts`)]);
    // `error` (why it failed, was canceled or ignored) sits beside the state it explains.
    const { id, name, state, ...rest } = b;
    if (inv.json) return printJson({ id, name, state, error: arts.backup_error ?? null, ...rest, artifacts: arts.data });
    const verifications = (await inv.c.request('GET', `${base}/verifications`)).data as any[];
    let out = fieldsList([
      ['id', id],
      ['name', name],
      ['state', state],
      ...(arts.backup_error ? ([['reason', arts.backup_error]] as Array<[string, unknown]>) : []),
      ['size', formatBytes(b.size)],
      ['created', b.created_at],
      ['started', b.started_at],
      ['completed', b.completed_at],
      ['expires', b.expires_at],
      ['deleted', b.deleted_at],
      ['protected', yesNo(b.protected)],
      ['policy', b.backup_policy?.name ?? b.backup_policy?.id],
      ['restored into', b.restored_branches.map((r: any) => r.name).join(', ')],
    ]);
    out += `\nStored copies:\n`;
    out += arts.data.length
      ? table(
          arts.data.map((a: any) => ({ destination: a.destination, provider: a.provider, state: a.state, size: formatBytes(a.size), sha256: a.sha256 ?? '', verified: a.verification ? `${a.verification} ${a.verified_at}` : '', error: a.error ?? '' })),
          ['destination', 'provider', 'state', 'size', 'sha256', 'verified', ...(arts.data.some((a: any) => a.error) ? ['error'] : [])],
        )
      : '(none)\n';
    if (verifications.length) {
      out += `\nVerifications:\n`;
      out += table(
        verifications.map((v) => ({ id: v.id, kind: v.kind, state: v.state, completed: v.completed_at ?? '', error: oneLine(v.error ?? '', 100) })),
        ['id', 'kind', 'state', 'completed', ...(verifications.some((v) => v.error) ? ['error'] : [])],
      );
    }
    print(out);
  },

  async 'backup progress'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const { backup: final, error } = await followBackup(inv.c, `${branchUrl(org, db, branch)}/backups`, inv.positionals[1], inv.positionals[0]);
    if (inv.json) printJson({ ...final, error });
    else print(`backup ${final.id}: ${final.state}${error ? `: ${error}` : ''}`);
    if (final.state !== 'success') process.exitCode = EXIT.failed;
  },

  async 'backup download'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const output = path.resolve(String(inv.values.output));
    const shown = String(inv.values.output);
    const force = inv.values.force === true;
    if (!force && fs.existsSync(output)) throw new CliError(`${shown} already exists; pass --force to replace it, or choose another -o FILE`);
    if (fs.existsSync(output) && fs.statSync(output).isDirectory()) throw new CliError(`${shown} is a directory; give a file name with -o`);
    const res = await inv.c.raw(`${branchUrl(org, db, branch)}/backups/${encodeURIComponent(inv.positionals[1])}/download`);
    const expected = res.headers.get('x-checksum-sha256');
    const total = Number(res.headers.get('content-length')) || null;
    const hash = crypto.createHash('sha256');
    // Beside the target (same filesystem, so the rename is atomic), under a name nobody else uses.
    const tmp = path.join(path.dirname(output), `.${path.basename(output)}.partial-${crypto.randomBytes(4).toString('hex')}`);
    const display = new ProgressDisplay(process.stderr, 5_000);
    const started = Date.now();
    let done = 0;
    let lastDraw = 0;
    const snapshot = (state: string): ProgressSnapshot => {
      const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
      return { state, done, total, rate, eta: total && rate > 0 ? (total - done) / rate : null, verb: 'received' };
    };
    const removeTmp = () => fs.rmSync(tmp, { force: true });
    const stop = onInterrupt(display, [`strongbox: download stopped; nothing was written to ${shown}`]);
    process.once('exit', removeTmp);
    try {
      await pipeline(
        Readable.fromWeb(res.body as any),
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            hash.update(chunk);
            done += chunk.length;
            if (Date.now() - lastDraw > 200) {
              lastDraw = Date.now();
              display.update(snapshot('download'));
            }
            cb(null, chunk);
          },
        }),
        fs.createWriteStream(tmp, { mode: 0o600, flags: 'wx' }),
      );
      display.finish(snapshot('done'));
      const actual = hash.digest('hex');
      if (expected && actual !== expected) throw new CliError(`checksum mismatch: expected ${expected}, got ${actual}; nothing written`);
      if (force) fs.renameSync(tmp, output);
      else {
        // No clobbering a file that appeared while we downloaded: link fails if it exists.
        try {
          fs.linkSync(tmp, output);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new CliError(`${shown} appeared while downloading; pass --force to replace it`);
          throw e;
        }
        removeTmp();
      }
      if (inv.json) printJson({ file: output, size: done, sha256: actual, verified: expected !== null });
      else print(`wrote ${shown} (${formatBytes(done)}, sha256 ${actual}${expected ? ', verified' : ', not verified: the server sent no checksum'})`);
    } finally {
      stop();
      display.clear();
      removeTmp();
      process.off('exit', removeTmp);
    }
  },

  async 'backup verify'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const id = inv.positionals[1];
    const base = `${branchUrl(org, db, branch)}/backups/${encodeURIComponent(id)}`;
    const v = await inv.c.request('POST', `${base}/verify`, inv.values.full ? { restore: true } : {});
    if (!inv.values.wait) {
      if (inv.json) printJson(v);
      else print(`verification ${v.id} (${v.kind}) queued`);
      return;
    }
    if (!inv.json) print(`verification ${v.id} (${v.kind}) queued`);
    const stop = onInterrupt(null, [
      `strongbox: stopped following; verification ${v.id} keeps running on the server.`,
      `  see its result later:  strongbox backup get ${shellWord(inv.positionals[0])} ${shellWord(id)}`,
    ]);
    try {
      for (;;) {
        const list = await inv.c.request('GET', `${base}/verifications`);
        const cur = list.data.find((x: any) => x.id === v.id);
        if (cur && cur.state !== 'pending' && cur.state !== 'running') {
          if (inv.json) printJson(cur);
          else {
            for (const a of cur.result?.artifacts ?? []) print(`  ${a.destination}: ${a.ok ? 'ok' : `FAILED: ${a.error}`}`);
            if (cur.result?.restore) print(`  restore into ${cur.result.restore.database}: ${cur.result.restore.ok ? `ok, ${plural(cur.result.restore.tables, 'table')}, row counts match` : `FAILED: ${cur.result.restore.error}`}`);
            print(`verification ${cur.state === 'success' ? 'passed' : `failed: ${cur.error}`}`);
          }
          if (cur.state !== 'success') process.exitCode = EXIT.failed;
          return;
        }
        await sleep(1000);
      }
    } finally {
      stop();
    }
  },

  async 'backup protect'(inv) {
    await protect(inv, true);
  },
  async 'backup unprotect'(inv) {
    await protect(inv, false);
  },

  async 'backup delete'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const id = inv.positionals[1];
    await inv.c.request('DELETE', `${branchUrl(org, db, branch)}/backups/${encodeURIComponent(id)}`);
    if (inv.json) printJson({ id, deleted: true });
    else print(`backup ${id}: deleted`);
  },

  async 'backup cancel'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const id = inv.positionals[1];
    const b = await inv.c.request('POST', `${branchUrl(org, db, branch)}/backups/${encodeURIComponent(id)}/cancel`, {});
    if (inv.json) printJson(b);
    else print(`backup ${id}: ${b.state}`);
  },

  async restore(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    const point = inv.values['restore-point'] as string | undefined;
    if (inv.values.backup === undefined && point === undefined) throw new UsageError('missing option --backup ID (or --restore-point TIME|latest with --from BRANCH); see strongbox restore --help');
    if (inv.values.from !== undefined && point === undefined) throw new UsageError('--from only applies with --restore-point (a point-in-time restore of that branch)');
    const body: Record<string, unknown> = { name: decodeURIComponent(branch), production: inv.values.production === true };
    if (inv.values.backup !== undefined) body.backup_id = inv.values.backup;
    if (point !== undefined) body.restore_point = point;
    if (inv.values.from !== undefined) body.parent_branch = inv.values.from;
    if (inv.values['target-data-dir'] !== undefined) body.target_data_dir = inv.values['target-data-dir'];
    const what = point === undefined ? `backup ${inv.values.backup}` : `${inv.values.from ?? `backup ${inv.values.backup}`} at ${point === 'latest' ? 'the latest archived time' : point}`;
    if (process.env.STRONGBOX_CONNECTION_URL) body.connection_url = process.env.STRONGBOX_CONNECTION_URL;
    if (inv.values.overwrite) body.overwrite = true;
    if (inv.values['preserve-ownership']) body.preserve_ownership = true;
    const b = await inv.c.request('POST', `/v1/organizations/${org}/databases/${db}/branches`, body);
    if (!inv.values.wait) {
      if (inv.json) printJson(b);
      else print(`restoring ${what} into branch ${b.name} (${b.connection.host}:${b.connection.port}/${b.connection.database}); follow it: strongbox restore progress ${shellWord(inv.positionals[0])}`);
      return;
    }
    if (!inv.json) print(`restoring ${what} into branch ${b.name} (${b.connection.host}:${b.connection.port}/${b.connection.database})`);
    printRestoreResult(inv, await followRestore(inv.c, branchUrl(org, db, branch), inv.positionals[0]));
  },

  async 'restore progress'(inv) {
    const [org, db, branch] = splitPath(inv, 0, 3);
    printRestoreResult(inv, await followRestore(inv.c, branchUrl(org, db, branch), inv.positionals[0]));
  },
};

async function protect(inv: Invocation, on: boolean): Promise<void> {
  const [org, db, branch] = splitPath(inv, 0, 3);
  const id = inv.positionals[1];
  const b = await inv.c.request('PATCH', `${branchUrl(org, db, branch)}/backups/${encodeURIComponent(id)}`, { protected: on });
  if (inv.json) printJson(b);
  else print(`backup ${id}: ${on ? 'protected' : 'unprotected'}`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/**
 * API recipes in messages, as the commands that do the same: a CLI user reads
 * `strongbox backup unprotect ...`, not `PATCH {"protected": false}`.
 */
function hintsFor(spec: CommandSpec, positionals: string[]): Array<[string, string]> {
  if (!spec.name.startsWith('backup ') || positionals.length < 2) return [];
  const target = `${shellWord(positionals[0])} ${shellWord(positionals[1])}`;
  return [
    ['PATCH {"protected": false}', `strongbox backup unprotect ${target}`],
    ['POST .../cancel', `strongbox backup cancel ${target}`],
  ];
}

/** Run a parsed client command. */
export async function runClient(spec: CommandSpec, values: Values, positionals: string[]): Promise<void> {
  const handler = HANDLERS[spec.name];
  if (!handler) throw new CliError(`no handler for "${spec.name}"`);
  const c = client({ fields: spec.fields, hints: hintsFor(spec, positionals) });
  await handler({ spec, values, positionals, c, json: values.json === true });
}
