/**
 * Which processes may share a catalog, with real `strongbox` processes:
 * - SQLite is one process: a second `worker` (or an offline tool) started beside a `serve`
 *   that runs a backup refuses to start and says why, and the backup is untouched and
 *   succeeds; after kill -9 the lock is gone and a new process starts and recovers.
 * - A worker stays up until asked to stop (it used to exit 0 right after "started").
 * - Several workers share a PostgreSQL catalog and one secret key; a worker with another
 *   key refuses to start and names the key (fingerprint) it expected; key rotation needs
 *   every process stopped and then moves the expected key.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from './helpers/databases.js';
import { api, until } from './helpers/server.js';
import SQLite from 'better-sqlite3';
import { pino } from 'pino';
import { keyFingerprint } from '../src/secrets.js';
import { loadConfig } from '../src/config.js';
import type { CatalogLock } from '../src/catalog/db.js';
import { rotateSecretKey } from '../src/rotate.js';
// Imported under another name on purpose: this file picks its catalogs itself (SQLite and
// PostgreSQL both), so the test runner's matrix need not run it a second time.
import { createContext as openContext, SecretKeyMismatchError } from '../src/context.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const main = path.join(root, 'src/main.ts');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Proc {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
}

const started: Proc[] = [];

function strongbox(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { cwd: root, env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const p = { child, output: () => out, exited };
  started.push(p);
  return p;
}

/** The environment without anything of the test process's own Strongbox settings. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STRONGBOX_')) env[k] = v;
  return { ...env, STRONGBOX_LOG_LEVEL: 'info', STRONGBOX_LEASE_SECONDS: '5' };
}

/** Run a command to its end; returns its exit code and output. */
async function run(args: string[], env: Record<string, string>, ms = 60_000): Promise<{ code: number | string; out: string }> {
  const p = strongbox(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, out: p.output() };
}

async function waitForHealth(url: string, p: Proc): Promise<void> {
  await until(`${url}/health (${p.output()})`, async () => {
    if (p.child.exitCode !== null) throw new Error(`the server exited: ${p.output()}`);
    try {
      return (await fetch(`${url}/health`)).ok ? true : undefined;
    } catch {
      return undefined;
    }
  }, 30_000, 100);
}

async function stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  return p.exited;
}

after(async () => {
  for (const p of started) await stop(p, 'SIGKILL');
});

describe('a SQLite catalog serves one process', { timeout: 180_000 }, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-lock-'));
  const source = uniqueName('sbx_lock');
  const token = `tk${crypto.randomBytes(4).toString('hex')}:${crypto.randomBytes(24).toString('base64url')}`;
  let env: Record<string, string>;
  let server: { url: string; token: string };
  let serve: Proc;
  let branchPath: string;
  /**
   * Hold an ACCESS EXCLUSIVE lock on the source's table in an open transaction: pg_dump
   * waits for it, so a backup stays running until the returned function is called.
   */
  const block = async (): Promise<() => Promise<void>> => {
    let locked!: () => void;
    let release!: () => void;
    const ready = new Promise<void>((r) => (locked = r));
    const held = withPgClient(pgUrl(source), async (c: pg.Client) => {
      await c.query('begin');
      await c.query('lock table t in access exclusive mode');
      locked();
      await new Promise<void>((r) => (release = r));
      await c.query('commit');
    });
    await Promise.race([ready, held]);
    return async () => {
      release();
      await held;
    };
  };

  const backupState = async (id: string) => (await api(server, 'GET', `${branchPath}/backups/${id}`)).body;

  before(async () => {
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 1000) g'));
    const port = await freePort();
    env = { STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token };
    server = { url: `http://127.0.0.1:${port}`, token };
    serve = strongbox(['serve'], env);
    await waitForHealth(server.url, serve);
    assert.equal((await api(server, 'POST', '/v1/organizations/default/databases', { name: 'shop', kind: 'postgresql' })).status, 201);
    const b = await api(server, 'POST', '/v1/organizations/default/databases/shop/branches', { name: 'main', connection_url: pgUrl(source) });
    assert.equal(b.status, 201, JSON.stringify(b.body));
    branchPath = '/v1/organizations/default/databases/shop/branches/main';
  });
  after(async () => {
    await stop(serve, 'SIGKILL');
    await dropDatabase('postgresql', source);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a second process refuses to start and the running backup is untouched and succeeds', async () => {
    const release = await block();
    try {
      await refusedBesideARunningBackup(release);
    } finally {
      await release();
    }
  });

  async function refusedBesideARunningBackup(release: () => Promise<void>) {
    const id = (await api(server, 'POST', `${branchPath}/backups`, {})).body.id as string;
    await until('the backup to run', async () => ((await backupState(id)).state === 'running' ? true : undefined), 30_000);
    const partials = () => (fs.existsSync(path.join(dataDir, 'backups')) ? fs.readdirSync(path.join(dataDir, 'backups'), { recursive: true }).map(String).filter((f) => /\.partial-/.test(f)) : []);
    await until('the partial file of the running backup', async () => (partials().length ? true : undefined), 30_000);

    const worker = await run(['worker'], env);
    assert.notEqual(worker.code, 0, worker.out);
    assert.match(worker.out, new RegExp(`the SQLite catalog \\S+catalog\\.sqlite is in use by another Strongbox process \\(\`serve\`, pid ${serve.child.pid} on `));
    assert.match(worker.out, /serves one process at a time: stop that process first; to run several workers, put the catalog on PostgreSQL/);
    assert.doesNotMatch(worker.out, /interrupted|started/, 'it touched nothing before refusing');

    const tool = await run(['token', 'create'], env);
    assert.notEqual(tool.code, 0);
    assert.match(tool.out, /in use by another Strongbox process .*stop the server first, or create the token through the API \(POST \/v1\/organizations\/\{organization\}\/service-tokens\)/);
    const during = await backupState(id);
    assert.equal(during.state, 'running', 'the backup still runs');
    assert.ok(partials().length > 0, 'its partial file is still there');
    await release();
    const done = await until('the backup to finish', async () => {
      const b = await backupState(id);
      return b.state === 'running' || b.state === 'pending' ? undefined : b;
    }, 60_000);
    assert.equal(done.state, 'success', JSON.stringify(done));
    assert.equal(serve.child.exitCode, null, 'serve still runs');
  }

  test('after kill -9 the lock is gone: a new worker starts, recovers the dead one\'s backup, and stays up until SIGTERM', async () => {
    const release = await block();
    let id: string;
    try {
      id = (await api(server, 'POST', `${branchPath}/backups`, {})).body.id as string;
      await until('the backup to run', async () => ((await backupState(id)).state === 'running' ? true : undefined), 30_000);
      assert.equal(await stop(serve, 'SIGKILL'), 'SIGKILL');
    } finally {
      await release();
    }

    const worker = strongbox(['worker'], env);
    await until(`the worker to start (${worker.output()})`, async () => (/Strongbox worker \S+ started/.test(worker.output()) ? true : undefined), 30_000);
    await until(`the dead process's backup to be recovered (${worker.output()})`, async () => (/marked an interrupted backup as failed/.test(worker.output()) ? true : undefined), 30_000);
    // It used to exit 0 here, right after "started": nothing kept its event loop alive.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(worker.child.exitCode, null, `the worker is still running: ${worker.output()}`);
    assert.equal(await stop(worker), 0, 'SIGTERM stops it with status 0');
    assert.match(worker.output(), /shutting down/);

    const catalog = new SQLite(path.join(dataDir, 'catalog.sqlite'), { readonly: true });
    try {
      const row = catalog.prepare('select state, error from backups where id = ?').get(id) as { state: string; error: string };
      assert.deepEqual(row, { state: 'failed', error: 'interrupted: the worker running this stopped before it finished' });
    } finally {
      catalog.close();
    }
  });
});

describe('several workers on a PostgreSQL catalog share one secret key', { timeout: 180_000 }, () => {
  const catalogDb = uniqueName('sbx_lock_cat');
  const catalogUrl = `postgres://postgres@127.0.0.1:5432/${catalogDb}`;
  const key1 = crypto.randomBytes(32).toString('hex');
  const key2 = crypto.randomBytes(32).toString('hex');
  const fp1 = keyFingerprint(Buffer.from(key1, 'hex'));
  const fp2 = keyFingerprint(Buffer.from(key2, 'hex'));
  const dirs: string[] = [];
  const workerEnv = (key: string, extra: Record<string, string> = {}) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-pgworker-'));
    dirs.push(dir);
    return { STRONGBOX_DATA_DIR: dir, STRONGBOX_CATALOG_URL: catalogUrl, STRONGBOX_SECRET_KEY: key, ...extra };
  };
  /** This test process as one more process on the catalog (in-process: a spawn costs seconds). */
  const context = (key: string, lock?: CatalogLock) => openContext(loadConfig(workerEnv(key)), { log: pino({ level: 'silent' }), lock });

  before(async () => {
    await createDatabase('postgresql', catalogDb);
  });
  after(async () => {
    for (const p of started) await stop(p, 'SIGKILL');
    await dropDatabase('postgresql', catalogDb);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test('a worker with another key refuses to start and names the expected one; rotation needs every process stopped, then moves the key', async () => {
    const worker = strongbox(['worker'], workerEnv(key1));
    await until(`the worker to start (${worker.output()})`, async () => {
      if (worker.child.exitCode !== null) throw new Error(`the worker exited: ${worker.output()}`);
      return /Strongbox worker \S+ started \(catalog: postgres\)/.test(worker.output()) ? true : undefined;
    }, 60_000);
    const second = await context(key1, { mode: 'shared', command: 'worker' });
    await second.catalog.close();

    const wrong = await run(['worker'], workerEnv(key2));
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.out, new RegExp(`secret key \\(STRONGBOX_SECRET_KEY, fingerprint ${fp2}\\) is not the one the catalog's secrets are sealed with \\(fingerprint ${fp1}\\)`));
    assert.ok(!wrong.out.includes(key1) && !wrong.out.includes(key2), 'no key in the message');
    assert.doesNotMatch(wrong.out, /started/);

    const busy = await run(['secrets', 'rotate-key'], workerEnv(key1, { STRONGBOX_NEW_SECRET_KEY: key2 }));
    assert.notEqual(busy.code, 0);
    assert.match(busy.out, new RegExp(`Strongbox processes are running on this catalog \\(strongbox worker pid ${worker.child.pid} on [^)]+\\): stop every \`serve\` and \`worker\` first`));
    // It stays up all along (a worker used to exit 0 once its idle catalog connections closed), until asked to stop.
    assert.equal(worker.child.exitCode, null, worker.output());
    assert.equal(await stop(worker), 0);

    const ctx = await context(key1, { mode: 'exclusive', command: 'secrets rotate-key' });
    try {
      await assert.rejects(context(key1, { mode: 'shared', command: 'worker' }), /a tool that needs the catalog to itself is running on it \(strongbox secrets rotate-key pid \d+/);
      await rotateSecretKey(ctx, key2);
    } finally {
      await ctx.catalog.close();
    }
    await assert.rejects(context(key1), (e: Error) => e instanceof SecretKeyMismatchError && e.message.includes(`sealed with (fingerprint ${fp2})`));
    const renewed = await context(key2, { mode: 'shared', command: 'worker' });
    assert.equal(renewed.secrets.fingerprint, fp2);
    await renewed.catalog.close();
  });
});
