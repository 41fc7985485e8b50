/**
 * Database servers a test starts for itself and removes afterwards: a private PostgreSQL
 * (initdb + pg_ctl) and a private MariaDB (mariadb-install-db + mariadbd), each in a
 * temporary folder, listening on a free port of 127.0.0.1, with a superuser that needs no
 * password. For "restore into a different server", and for point-in-time recovery tests
 * (WAL streaming with `replication`, binlogs with `logBin`).
 *
 *   const pg = await startPrivatePostgres();      // pg.url: postgresql://postgres@127.0.0.1:PORT/postgres
 *   try { ... } finally { await pg.stop(); }
 *
 * PostgreSQL refuses to run as root: as root, its tools run as the `postgres` system user
 * (runuser), which owns the temporary folder. mariadbd is told `--user=root` instead.
 * A server left running by a test that crashed is stopped when the test process exits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import mysql2 from 'mysql2/promise';

export interface PrivateServer {
  /** Superuser URL of the server's default database (postgres / mysql). */
  url: string;
  host: string;
  port: number;
  /** The server's data directory (PostgreSQL: PGDATA; MariaDB: --datadir). */
  dataDir: string;
  /** The temporary folder holding everything of this server (data, socket, logs). */
  root: string;
  /** Server version string, e.g. "15.20" or "10.11.19-MariaDB". */
  version: string;
  /** Stop the server (immediately: tests do not need a clean shutdown) and remove its folder. */
  stop(): Promise<void>;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const running = new Set<() => void>();
process.once('exit', () => {
  for (const stopNow of running) stopNow();
});

/** A TCP port of 127.0.0.1 free right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The bin folder of the newest PostgreSQL on this machine (Debian layout), or of `major`. */
export function postgresBinDir(major?: number): string {
  const majors = fs
    .readdirSync('/usr/lib/postgresql')
    .map(Number)
    .filter((n) => Number.isInteger(n) && fs.existsSync(`/usr/lib/postgresql/${n}/bin/initdb`))
    .sort((a, b) => b - a);
  const pick = major ?? majors[0];
  if (pick === undefined || !majors.includes(pick)) throw new Error(`no PostgreSQL ${major ?? ''} server binaries under /usr/lib/postgresql (have: ${majors.join(', ') || 'none'})`);
  return `/usr/lib/postgresql/${pick}/bin`;
}

function run(cmd: string, args: string[], asPostgres: boolean): void {
  const [file, argv] = asPostgres && isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(file, argv, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').slice(-2000)}`);
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms: number, log?: string, gone?: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  const tail = () => (log && fs.existsSync(log) ? `\n${fs.readFileSync(log, 'utf8').slice(-2000)}` : '');
  for (;;) {
    if (await check().catch(() => false)) return;
    if (gone?.()) throw new Error(`${what} exited before it accepted connections${tail()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A private PostgreSQL server (the newest on the machine, or `major`). With `replication`,
 * it can stream WAL (wal_level=replica, replication connections from 127.0.0.1 trusted,
 * slots and senders available) and archives nothing by itself.
 */
export async function startPrivatePostgres(opts: { replication?: boolean; major?: number } = {}): Promise<PrivateServer> {
  const bin = postgresBinDir(opts.major);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-private-pg-'));
  if (isRoot) spawnSync('chown', ['postgres:postgres', root]);
  const dataDir = path.join(root, 'data');
  const log = path.join(root, 'server.log');
  const port = await freePort();
  const stopNow = () => {
    spawnSync(isRoot ? 'runuser' : `${bin}/pg_ctl`, isRoot ? ['-u', 'postgres', '--', `${bin}/pg_ctl`, '-D', dataDir, '-m', 'immediate', 'stop'] : ['-D', dataDir, '-m', 'immediate', 'stop'], { timeout: 30_000 });
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    run(`${bin}/initdb`, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], true);
    const settings = ['-p', String(port), '-k', root, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'shared_buffers=32MB'];
    if (opts.replication) settings.push('-c', 'wal_level=replica', '-c', 'max_wal_senders=10', '-c', 'max_replication_slots=10');
    // pg_ctl -o takes one string; none of these values holds a space or a quote.
    run(`${bin}/pg_ctl`, ['-D', dataDir, '-l', log, '-w', '-t', '60', '-o', settings.join(' '), 'start'], true);
    running.add(stopNow);
    const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const version = (await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0].v.split(' ')[0];
    await client.end();
    return {
      url,
      host: '127.0.0.1',
      port,
      dataDir,
      root,
      version,
      async stop() {
        running.delete(stopNow);
        stopNow();
      },
    };
  } catch (e) {
    stopNow();
    throw e;
  }
}

/** A private MariaDB server. With `logBin`, it writes binlogs (ROW format, server id 1) under its folder. */
export async function startPrivateMariadb(opts: { logBin?: boolean } = {}): Promise<PrivateServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-private-mariadb-'));
  const dataDir = path.join(root, 'data');
  const log = path.join(root, 'error.log');
  const port = await freePort();
  let child: ChildProcess | null = null;
  const stopNow = () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    const user = isRoot ? ['--user=root'] : [];
    // Temporary tables of its own: one bootstrap failed in CI deleting its temporary file in the
    // shared /tmp ("Error on delete of '/tmp/#sql-temptable-…' (Errcode: 2)") while other
    // private servers started beside it.
    const tmpDir = path.join(root, 'tmp');
    fs.mkdirSync(tmpDir);
    run('mariadb-install-db', ['--no-defaults', `--datadir=${dataDir}`, `--tmpdir=${tmpDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...user], false);
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--tmpdir=${tmpDir}`,
      `--port=${port}`,
      `--socket=${path.join(root, 'mariadb.sock')}`,
      `--pid-file=${path.join(root, 'mariadb.pid')}`,
      '--bind-address=127.0.0.1',
      `--log-error=${log}`,
      '--innodb-buffer-pool-size=32M',
      '--innodb-flush-log-at-trx-commit=0',
      ...user,
    ];
    if (opts.logBin) args.push(`--log-bin=${path.join(root, 'binlog')}`, '--server-id=1', '--binlog-format=ROW');
    child = spawn('mariadbd', args, { stdio: 'ignore' });
    running.add(stopNow);
    const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    const url = `mysql://root@127.0.0.1:${port}/mysql`;
    let version = '';
    await waitUntil(
      'the private MariaDB server',
      async () => {
        const c = await mysql2.createConnection({ host: '127.0.0.1', port, user: 'root', database: 'mysql', connectTimeout: 1000 });
        const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT VERSION() AS v');
        version = String(rows[0].v).replace(/^(\d+\.\d+\.\d+-MariaDB).*/, '$1');
        await c.end();
        return true;
      },
      60_000,
      log,
      () => child!.exitCode !== null || child!.signalCode !== null,
    );
    return {
      url,
      host: '127.0.0.1',
      port,
      dataDir,
      root,
      version,
      async stop() {
        running.delete(stopNow);
        if (child!.exitCode === null && child!.signalCode === null) child!.kill('SIGKILL');
        await exited;
        fs.rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    running.delete(stopNow);
    stopNow();
    throw e;
  }
}

/**
 * A private PostgreSQL with replication (for WAL archiving) holding a database "shop" made by
 * `setup` (statements run in it, in order), and a client connected to it for the test to write
 * with. `shopUrl(server)` is what a branch registers. Stop with `stop()` (ends the client too).
 */
export async function startArchivableShop(setup: string[]): Promise<{ server: PrivateServer; shop: pg.Client; stop(): Promise<void> }> {
  const server = await startPrivatePostgres({ replication: true });
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE shop');
  } finally {
    await admin.end();
  }
  const shop = new pg.Client({ connectionString: shopUrl(server) });
  await shop.connect();
  for (const statement of setup) await shop.query(statement);
  return {
    server,
    shop,
    stop: async () => {
      await shop.end().catch(() => {});
      await server.stop();
    },
  };
}

/** The URL of the "shop" database of startArchivableShop's server. */
export function shopUrl(server: Pick<PrivateServer, 'port'>): string {
  return `postgresql://postgres@127.0.0.1:${server.port}/shop`;
}
