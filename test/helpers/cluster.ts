/**
 * Real Strongbox processes for chaos tests: `serve` and `worker`s spawned as
 * `node src/main.ts serve|worker` (transpiled, see mainCommand()), sharing one catalog, one secret key and
 * one age identity, each with its own data dir, killable with SIGKILL and restartable.
 *
 * The catalog is the matrix's (helpers/catalog.ts): on the SQLite leg a cluster is one
 * `serve` (SQLite means one process), on the PostgreSQL leg `serve` plus any number of
 * workers on a fresh catalog database. Every process's stdout and stderr (pino JSON lines)
 * go to a file that outlives its kills: `logs()` reads them back.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { api } from './server.js';
import { catalogKind, newTestCatalog, type CatalogKind, type TestCatalog } from './catalog.js';
import { prng } from '../pipeline/rowcount/helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type Role = 'serve' | 'worker';

export interface ClusterProcess {
  readonly role: Role;
  /** "serve", "worker-1", ... */
  readonly name: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The live process's id, or null while it is down. */
  readonly pid: number | null;
  /** Every pid this process has had, oldest first (a restart is a new pid). */
  readonly pids: readonly number[];
  /** How often it was killed with SIGKILL. */
  readonly kills: number;
  /** Spawn it (again) and wait until it is ready: serve answers /health, a worker logged its start. */
  start(): Promise<void>;
  /** SIGKILL, and wait until the process is gone. Children it had (dump tools) are not killed: as after a real crash. */
  kill9(): Promise<void>;
  /** SIGTERM, and wait for the exit; resolves with its exit code (null after a signal). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** Every JSON line it logged, over all its lives, in order. */
  logs(): Array<Record<string, any>>;
  /** The raw log text (for messages on failure). */
  logText(): string;
}

export interface Cluster {
  kind: CatalogKind;
  /** serve's API URL (the same across restarts). */
  url: string;
  /** `<id>:<secret>` of the bootstrap admin token. */
  token: string;
  serve: ClusterProcess;
  workers: ClusterProcess[];
  /** serve and the workers. */
  processes: ClusterProcess[];
  /** The age identity file every process has (STRONGBOX_AGE_IDENTITY_FILE). */
  identityFile: string;
  /** The folder holding every data dir and shared file. */
  dir: string;
  /** The environment every process gets (besides its own data dir). */
  env: Record<string, string>;
  /** The live process whose job runner is `leaseOwner` ("host:pid:random", matched by pid). */
  ownerOf(leaseOwner: string | null): ClusterProcess | undefined;
  /** Run a read-only query on the catalog (SQLite: `?` placeholders; PostgreSQL: `$1`). */
  query<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Stop every process (SIGTERM, then SIGKILL), drop the catalog, remove the folder. */
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** Worker processes besides serve (PostgreSQL catalog only). Default 0. */
  workers?: number;
  /** Default: the matrix's (STRONGBOX_TEST_CATALOG). */
  catalog?: CatalogKind;
  /** More environment for every process. */
  env?: Record<string, string>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tsFilesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath ?? (e as any).path, e.name))
    .sort();
}

let compiled: Promise<string[]> | null = null;
/**
 * How to start src/main.ts: transpiled once per content of src/ (with the esbuild that tsx
 * itself runs on) into .test-tmp/, a process starts in about half the CPU time of
 * `node --import tsx src/main.ts`, which a loop of kills and restarts pays on every start.
 * Falls back to tsx when esbuild cannot be found.
 */
export function mainCommand(): Promise<string[]> {
  compiled ??= (async () => {
    const files = tsFilesUnder(path.join(ROOT, 'src'));
    const hash = crypto.createHash('sha256');
    for (const f of files) hash.update(path.relative(ROOT, f)).update('\0').update(fs.readFileSync(f)).update('\0');
    const base = path.join(ROOT, '.test-tmp');
    const dir = path.join(base, `cluster-build-${hash.digest('hex').slice(0, 16)}`);
    const main = path.join(dir, 'src', 'main.js');
    if (fs.existsSync(main)) return [main];
    let esbuild: { build(options: Record<string, unknown>): Promise<unknown> };
    try {
      const require = createRequire(import.meta.url);
      esbuild = require(require.resolve('esbuild', { paths: [require.resolve('tsx')] }));
    } catch {
      return ['--import', 'tsx', 'src/main.ts'];
    }
    // Built beside and renamed into place: test files running at once never see half a build.
    fs.mkdirSync(base, { recursive: true });
    const tmp = fs.mkdtempSync(path.join(base, 'cluster-building-'));
    await esbuild.build({ entryPoints: files, outdir: path.join(tmp, 'src'), outbase: path.join(ROOT, 'src'), format: 'esm', platform: 'node', target: 'node20', logLevel: 'silent' });
    try {
      fs.renameSync(tmp, dir);
    } catch {
      fs.rmSync(tmp, { recursive: true, force: true }); // another test file built it first
    }
    // Builds of other contents of src/ an hour old are of no use any more (younger ones may
    // still be running in another test run on this tree).
    for (const old of fs.readdirSync(base)) {
      const p = path.join(base, old);
      if (/^cluster-(build|building)-/.test(old) && p !== dir && fs.statSync(p).mtimeMs < Date.now() - 3600_000) fs.rmSync(p, { recursive: true, force: true });
    }
    return [main];
  })();
  return compiled;
}

/** The process environment without any STRONGBOX_ setting of the test process itself. */
function baseEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STRONGBOX_') && k !== 'NODE_OPTIONS' && k !== 'NODE_TEST_CONTEXT') out[k] = v;
  return out;
}

class Proc implements ClusterProcess {
  #child: ChildProcess | null = null;
  #exited: Promise<number | null> | null = null;
  #pids: number[] = [];
  #kills = 0;
  /** Log length when the current life began: readiness is looked for after it. */
  #logStart = 0;

  constructor(
    readonly role: Role,
    readonly name: string,
    readonly dataDir: string,
    readonly logFile: string,
    readonly env: Record<string, string>,
    readonly url: string | null,
  ) {}

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }
  get pids(): readonly number[] {
    return this.#pids;
  }
  get kills(): number {
    return this.#kills;
  }

  async start(): Promise<void> {
    if (this.#child) throw new Error(`${this.name} is already running (pid ${this.#child.pid})`);
    this.#logStart = fs.existsSync(this.logFile) ? fs.statSync(this.logFile).size : 0;
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...(await mainCommand()), this.role], { cwd: ROOT, env: this.env, stdio: ['ignore', fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
    this.#child = child;
    if (child.pid) this.#pids.push(child.pid);
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = null;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.#child !== child) throw new Error(`${this.name} exited during start:\n${this.logText().slice(this.#logStart).slice(-3000)}`);
      if (await this.#ready()) return;
      if (Date.now() > deadline) throw new Error(`${this.name} did not become ready in 60 s:\n${this.logText().slice(this.#logStart).slice(-3000)}`);
      await sleep(50);
    }
  }

  async #ready(): Promise<boolean> {
    if (this.role === 'worker') return /worker .*started|started.*worker/i.test(fs.readFileSync(this.logFile, 'utf8').slice(this.#logStart));
    try {
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  async kill9(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#kills++;
    child.kill('SIGKILL');
    await this.#exited;
  }

  async stop(timeoutMs = 15_000): Promise<number | null> {
    const child = this.#child;
    if (!child) return null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  logText(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  logs(): Array<Record<string, any>> {
    const out: Array<Record<string, any>> = [];
    for (const line of this.logText().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        /* a line cut by SIGKILL */
      }
    }
    return out;
  }
}

/** Generate an age identity (age-keygen) in `dir`; returns its file and public key. */
export function generateAgeIdentity(dir: string): { file: string; recipient: string } {
  const file = path.join(dir, 'age-identity.key');
  const text = execFileSync('age-keygen', [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  fs.writeFileSync(file, text, { mode: 0o600 });
  const recipient = /# public key: (age1\S+)/.exec(text)?.[1];
  if (!recipient) throw new Error('age-keygen printed no public key');
  return { file, recipient };
}

/** The pid in a lease owner (`host:pid:id`, JobRunner.workerId), also of a process that is gone. */
export function leaseOwnerPid(leaseOwner: string): number {
  return Number(leaseOwner.split(':').at(-2));
}

/**
 * Start serve (and on PostgreSQL the workers), each ready before this resolves. The default
 * organization's backups are encrypted to one shared age identity that every process can
 * read, so any process can restore any backup.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const kind = opts.catalog ?? catalogKind();
  const workerCount = opts.workers ?? 0;
  if (kind === 'sqlite' && workerCount > 0) throw new Error('a SQLite catalog is for one process: no workers');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-cluster-'));
  const catalog: TestCatalog | null = kind === 'postgres' ? await newTestCatalog('postgres') : null;
  const { file: identityFile, recipient } = generateAgeIdentity(dir);
  const id = 'tk' + crypto.randomBytes(4).toString('hex');
  const token = `${id}:${crypto.randomBytes(24).toString('base64url')}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const serveDir = path.join(dir, 'serve');
  const env: Record<string, string> = {
    ...baseEnv(),
    STRONGBOX_SECRET_KEY: crypto.randomBytes(32).toString('hex'),
    STRONGBOX_BOOTSTRAP_TOKEN: token,
    STRONGBOX_AGE_IDENTITY_FILE: identityFile,
    STRONGBOX_LEASE_SECONDS: '5',
    STRONGBOX_RATE_LIMIT_PER_MINUTE: '0',
    // No policy slot may add a backup the test did not ask for.
    STRONGBOX_SCHEDULER_INTERVAL_SECONDS: '3600',
    STRONGBOX_LOG_LEVEL: 'info',
    STRONGBOX_HOST: '127.0.0.1',
    STRONGBOX_PORT: String(port),
    // Every process may write the default local destination (serve's), all on this machine.
    STRONGBOX_LOCAL_ROOTS: path.join(serveDir, 'backups'),
    ...(catalog ? { STRONGBOX_CATALOG_URL: catalog.url } : {}),
    ...opts.env,
  };
  const make = (role: Role, name: string) => {
    const dataDir = path.join(dir, name);
    fs.mkdirSync(dataDir, { recursive: true });
    return new Proc(role, name, dataDir, path.join(dir, `${name}.log`), { ...env, STRONGBOX_DATA_DIR: dataDir }, role === 'serve' ? url : null);
  };
  const serve = make('serve', 'serve');
  const workers = Array.from({ length: workerCount }, (_, i) => make('worker', `worker-${i + 1}`));
  const processes = [serve, ...workers];
  const sqliteFile = path.join(serveDir, 'catalog.sqlite');

  const cluster: Cluster = {
    kind,
    url,
    token,
    serve,
    workers,
    processes,
    identityFile,
    dir,
    env,
    ownerOf(leaseOwner) {
      if (!leaseOwner) return undefined;
      const pid = leaseOwnerPid(leaseOwner);
      return processes.find((p) => p.pid === pid);
    },
    async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      if (catalog) {
        const c = new pg.Client({ connectionString: catalog.url });
        await c.connect();
        try {
          return (await c.query(sql, params)).rows as T[];
        } finally {
          await c.end();
        }
      }
      const db = new Database(sqliteFile, { readonly: true, fileMustExist: true });
      try {
        db.pragma('busy_timeout = 5000');
        return db.prepare(sql).all(...params) as T[];
      } finally {
        db.close();
      }
    },
    async close() {
      await Promise.all(processes.map((p) => p.stop().catch(() => null)));
      await catalog?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // serve first: it runs the migrations and makes the default organization.
    await serve.start();
    const r = await api({ url, token }, 'PATCH', '/v1/organizations/default', { encryption_recipients: [recipient] });
    if (r.status !== 200) throw new Error(`PATCH organization: ${r.status} ${JSON.stringify(r.body)}`);
    await Promise.all(workers.map((w) => w.start()));
  } catch (e) {
    await cluster.close();
    throw e;
  }
  return cluster;
}

/** A seeded PRNG (mulberry32, the rowcount tests' one): the same seed gives the same run of choices. */
export const seededRandom = prng;

/** The chaos seed: STRONGBOX_CHAOS_SEED when set (to replay a run), else a fresh one. */
export function chaosSeed(): number {
  const raw = process.env.STRONGBOX_CHAOS_SEED;
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) throw new Error(`STRONGBOX_CHAOS_SEED must be a whole number, got "${raw}"`);
    return Number(raw) >>> 0;
  }
  return crypto.randomBytes(4).readUInt32BE(0);
}
