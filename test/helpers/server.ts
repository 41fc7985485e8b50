/**
 * A real Strongbox server for tests: its own temp data dir and catalog (the matrix's kind,
 * see helpers/catalog.ts, or the STRONGBOX_CATALOG_URL given), a bootstrap admin token,
 * the job runner, listening on a free port.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { createContext, LOG_REDACT, type AppContext } from '../../src/context.js';
import { bootstrap } from '../../src/bootstrap.js';
import { buildApp } from '../../src/app.js';
import { JobRunner } from '../../src/jobs/runner.js';
import { catalogKind, newTestCatalog, type TestCatalog } from './catalog.js';

export interface TestServer {
  url: string;
  /** `<id>:<secret>` of the bootstrap admin token. */
  token: string;
  ctx: AppContext;
  app: FastifyInstance;
  runner: JobRunner;
  dataDir: string;
  /** Everything the server logged, for secret-leak checks. */
  logFile: string;
  close(): Promise<void>;
  /** Stop the server and throw its catalog away (SQLite file or PostgreSQL database), keeping the data dir: a lost catalog. */
  loseCatalog(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}, opts: { runner?: boolean; clock?: () => Date } = {}): Promise<TestServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-test-'));
  const id = 'tk' + crypto.randomBytes(4).toString('hex');
  const secret = crypto.randomBytes(24).toString('base64url');
  // On the matrix's PostgreSQL leg, a fresh catalog database (unless the test brings its
  // own); on the SQLite leg the server's default file under its data dir.
  const catalog: TestCatalog | null = env.STRONGBOX_CATALOG_URL || catalogKind() === 'sqlite' ? null : await newTestCatalog('postgres');
  // Tests poll fast (10 requests a second): the default rate limit is for people, not for
  // polling loops; the rate-limit test sets its own.
  // Tests keep their extra local destinations in temporary folders of their own: the
  // temporary directory is an allowed root (the local-roots test sets its own).
  const config = loadConfig({ STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: '0', STRONGBOX_BOOTSTRAP_TOKEN: `${id}:${secret}`, STRONGBOX_LEASE_SECONDS: '5', STRONGBOX_RATE_LIMIT_PER_MINUTE: '100000', STRONGBOX_LOCAL_ROOTS: os.tmpdir(), ...(catalog ? { STRONGBOX_CATALOG_URL: catalog.url } : {}), ...env });
  const logFile = path.join(dataDir, 'server.log');
  const log = pino({ level: 'debug', redact: LOG_REDACT }, pino.destination({ dest: logFile, sync: true }));
  // No scheduler runs on its own here: tests that want one drive Scheduler.tick() themselves,
  // so a default policy's slot can never add a surprise backup to another test.
  const ctx = await createContext(config, { log, clock: opts.clock });
  await bootstrap(ctx);
  const runner = new JobRunner(ctx, 200);
  if (opts.runner !== false) await runner.start();
  const app = await buildApp(ctx);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    token: `${id}:${secret}`,
    ctx,
    app,
    runner,
    dataDir,
    logFile,
    async close() {
      try {
        await app.close();
        await runner.stop();
        await ctx.catalog.close();
      } finally {
        // Whatever failed above, the catalog database and the files go (a leftover catalog
        // database would outlive the run on the shared server).
        await catalog?.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    },
    async loseCatalog() {
      await app.close();
      await runner.stop();
      await ctx.catalog.close();
      if (catalog) await catalog.drop();
      else for (const f of fs.readdirSync(dataDir)) if (f.startsWith('catalog.sqlite')) fs.rmSync(path.join(dataDir, f));
    },
  };
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** Call the API. `token` null sends no credentials. */
export async function api<T = any>(server: { url: string; token: string }, method: string, url: string, body?: unknown, token: string | null = server.token, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
  const h: Record<string, string> = { ...headers };
  if (token !== null) h.authorization = token;
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(server.url + url, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/** Poll `fn` until it returns something other than undefined; throw after `ms`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, everyMs));
  }
}

const settled = (state: string | undefined) => state !== 'pending' && state !== 'running';

/** Poll a backup until it leaves pending/running (or the deadline passes). */
export async function waitForBackup(server: TestServer, branchPath: string, id: string, timeoutMs = 60_000): Promise<any> {
  return until(`backup ${id}`, async () => {
    const r = await api(server, 'GET', `${branchPath}/backups/${id}`);
    if (r.status !== 200) throw new Error(`GET backup ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    return settled(r.body.state) ? r.body : undefined;
  }, timeoutMs);
}

/** Wait until the verification `id` of a backup (`backupPath`: the backup's API path) has ended. */
export async function waitForVerification(server: Pick<TestServer, 'url' | 'token'>, backupPath: string, id: string, timeoutMs = 60_000): Promise<any> {
  return until(`verification ${id}`, async () => {
    const r = await api(server, 'GET', `${backupPath}/verifications`);
    const v = r.body.data.find((x: any) => x.id === id);
    return v && v.state !== 'pending' && v.state !== 'running' ? v : undefined;
  }, timeoutMs);
}

/** Poll a branch until its restore leaves pending/running; returns the branch. */
export async function waitForRestore(server: TestServer, dbPath: string, branch: string, timeoutMs = 60_000): Promise<any> {
  return until(`the restore of ${branch}`, async () => {
    const r = await api(server, 'GET', `${dbPath}/branches/${branch}`);
    if (r.status !== 200) throw new Error(`GET branch ${branch}: ${r.status} ${JSON.stringify(r.body)}`);
    return settled(r.body.restore?.state) ? r.body : undefined;
  }, timeoutMs);
}

/** Register a database and a branch through the API; returns the branch's API path. */
export async function registerBranch(server: Pick<TestServer, 'url' | 'token'>, org: string, db: string, kind: 'postgresql' | 'mysql', branch: string, connectionUrl: string, production = false): Promise<string> {
  const d = await api(server, 'POST', `/v1/organizations/${org}/databases`, { name: db, kind });
  if (d.status !== 201 && d.status !== 409) throw new Error(`create database: ${d.status} ${JSON.stringify(d.body)}`);
  const b = await api(server, 'POST', `/v1/organizations/${org}/databases/${db}/branches`, { name: branch, production, connection_url: connectionUrl });
  if (b.status !== 201) throw new Error(`create branch: ${b.status} ${JSON.stringify(b.body)}`);
  return `/v1/organizations/${org}/databases/${db}/branches/${branch}`;
}
