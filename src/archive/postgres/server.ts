/**
 * The temporary PostgreSQL server a point-in-time restore replays WAL in: a scratch folder
 * per restore job (`<data dir>/pitr/<job id>`, see pitrScratchRoot), holding the recovered data directory, the
 * fetched WAL, a socket and a log. The server runs the binaries of the data directory's own
 * major version, as the `postgres` system user when Strongbox runs as root (PostgreSQL
 * refuses root), and listens on a Unix socket in that folder only (no TCP: with trust
 * authentication, nobody else on the machine may reach it). Settings are given on its
 * command line, which outranks the postgresql.conf and postgresql.auto.conf that came with
 * the base backup, and hold no secret.
 *
 * The folder is removed by the job when it ends. After a kill -9 of the Strongbox process
 * the server and the folder outlive it; sweepPitrScratch (run with the scratch database
 * sweep, on start and after lease take-overs) stops the server and removes the folder of
 * every job that no longer runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AppContext } from '../../context.js';
import { EngineError } from '../../engines/index.js';
import { toolEnvironment } from '../../engines/process.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * The folder holding every point-in-time restore's scratch folder: `<data dir>/pitr`, unless
 * the server's user (postgres, when we are root) cannot reach into the data dir (a private
 * 0700 folder, as it should be): then a folder of this data dir's own under
 * STRONGBOX_PITR_DIR or the system's temporary folder, named after the data dir so that
 * two Strongbox processes on one machine never sweep each other's.
 */
export function pitrScratchRoot(ctx: Pick<AppContext, 'config'>): string {
  if (!isRoot || reachableByOthers(ctx.config.dataDir)) return path.join(ctx.config.dataDir, 'pitr');
  const instance = crypto.createHash('sha256').update(path.resolve(ctx.config.dataDir)).digest('hex').slice(0, 12);
  return path.join(process.env.STRONGBOX_PITR_DIR || os.tmpdir(), `strongbox-pitr-${instance}`);
}

/** Whether every folder down to `dir` lets others through (the x bit). */
function reachableByOthers(dir: string): boolean {
  let p = path.resolve(dir);
  for (;;) {
    try {
      if ((fs.statSync(p).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    const up = path.dirname(p);
    if (up === p) return true;
    p = up;
  }
}

/** Create the scratch root: only its owner writes in it; the server's user goes through to its own job folder. */
export function ensureScratchRoot(ctx: Pick<AppContext, 'config'>): string {
  const root = pitrScratchRoot(ctx);
  fs.mkdirSync(root, { recursive: true, mode: 0o711 });
  fs.chmodSync(root, 0o711);
  return root;
}

/** The scratch folder of restore job `jobId`. */
export function pitrScratchDir(ctx: Pick<AppContext, 'config'>, jobId: string): string {
  return path.join(pitrScratchRoot(ctx), jobId);
}

/** The user the server runs as: the `postgres` system user when we are root, else ourselves (null). */
export function serverOwner(): { uid: number; gid: number } | null {
  if (!isRoot) return null;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new EngineError('Strongbox runs as root and this machine has no "postgres" system user to run the temporary PostgreSQL server as (PostgreSQL refuses to run as root); install the PostgreSQL server package, or run Strongbox as another user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Give `p` to the server's user (no-op unless root). */
export function giveToServer(p: string, owner: { uid: number; gid: number } | null): void {
  if (owner) fs.chownSync(p, owner.uid, owner.gid);
}

/**
 * The bin folder with the `postgres` server binary of major version `major`:
 * STRONGBOX_PG_BIN_DIRS first, then Debian's /usr/lib/postgresql/<major>/bin.
 */
export function serverBinDir(major: number): string {
  const candidates = [...(process.env.STRONGBOX_PG_BIN_DIRS ?? '').split(':').filter(Boolean), `/usr/lib/postgresql/${major}/bin`];
  for (const dir of candidates) {
    const bin = path.join(dir, 'postgres');
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      continue;
    }
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000, env: toolEnvironment({}) });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(r.stdout ?? '');
    if (m && Number(m[1]) === major) return dir;
  }
  throw new EngineError(`no PostgreSQL ${major} server binaries on this machine (the base backup is of PostgreSQL ${major}, and WAL is replayed by a server of the same major version): install postgresql-${major}, or name its bin folder in STRONGBOX_PG_BIN_DIRS`);
}

/** A value for unix_socket_directories: the folder, quoted when needed. */
function socketDirectorySetting(dir: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(dir) ? dir : `"${dir}"`;
}

/**
 * restore_command copying from `walDir`: PostgreSQL runs it with the shell, so the folder is
 * single-quoted (a quote inside becomes '\'') and its `%` doubled (PostgreSQL's escape).
 */
export function copyRestoreCommand(walDir: string): string {
  const quoted = `'${walDir.replace(/'/g, `'\\''`).replace(/%/g, '%%')}`;
  return `cp ${quoted}/%f' "%p"`;
}

export interface RecoveryServer {
  /** Socket folder and port: where to connect (host = the folder). */
  socketDir: string;
  port: number;
  /** The server's log so far. */
  log(): string;
  /** Resolves when the server process has exited (with its exit code, null if killed). */
  exited: Promise<number | null>;
  /** Fast shutdown (a clean checkpoint); immediate, then SIGKILL, if it does not stop in time. Resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Start `postgres` on `dataDir` (which holds recovery.signal) with `settings` on its command
 * line. Returns at once; the caller waits for it to accept connections (it does once
 * recovery ended and it was promoted) or to exit.
 */
export function startRecoveryServer(opts: {
  binDir: string;
  dataDir: string;
  scratch: string;
  port: number;
  owner: { uid: number; gid: number } | null;
  settings: Record<string, string>;
}): RecoveryServer {
  const { scratch, owner } = opts;
  const logFile = path.join(scratch, 'server.log');
  const hba = path.join(scratch, 'pg_hba.conf');
  const ident = path.join(scratch, 'pg_ident.conf');
  const conf = path.join(scratch, 'postgresql.conf');
  // Only the owner of the scratch folder (the server's user; root can always) reaches the
  // socket inside it, so trust authentication lets in nobody else.
  fs.writeFileSync(hba, 'local all all trust\n', { mode: 0o600 });
  fs.writeFileSync(ident, '', { mode: 0o600 });
  fs.writeFileSync(conf, '# settings are on the command line (see Strongbox src/archive/postgres/server.ts)\n', { mode: 0o600 });
  for (const f of [hba, ident, conf]) giveToServer(f, owner);
  const settings: Record<string, string> = {
    config_file: conf,
    hba_file: hba,
    ident_file: ident,
    listen_addresses: '',
    port: String(opts.port),
    unix_socket_directories: socketDirectorySetting(scratch),
    unix_socket_permissions: '0700',
    hot_standby: 'off',
    fsync: 'off',
    synchronous_commit: 'off',
    shared_buffers: '64MB',
    max_connections: '20',
    shared_preload_libraries: '',
    archive_mode: 'off',
    archive_command: '',
    max_wal_senders: '0',
    primary_conninfo: '',
    primary_slot_name: '',
    ssl: 'off',
    logging_collector: 'off',
    log_destination: 'stderr',
    log_min_messages: 'info',
    external_pid_file: '',
    cluster_name: 'strongbox-pitr',
    ...opts.settings,
  };
  const args = ['-D', opts.dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const fd = fs.openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(path.join(opts.binDir, 'postgres'), args, {
      stdio: ['ignore', fd, fd],
      env: toolEnvironment({ LC_MESSAGES: 'C' }),
      cwd: scratch,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    });
  } finally {
    fs.closeSync(fd);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const alive = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  return {
    socketDir: scratch,
    port: opts.port,
    log: () => {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    exited,
    async stop() {
      if (!alive()) return void (await exited);
      const waitMs = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
      child.kill('SIGINT');
      if (await waitMs(120_000)) return;
      child.kill('SIGQUIT');
      if (await waitMs(10_000)) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The server still running on a scratch folder's data directory (its postmaster.pid), or null. */
function leftoverServerPid(dataDir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 1) return null;
    // Only a postgres whose command line names this data directory: a pid can be reused.
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.some((a) => path.basename(a) === 'postgres' || a.endsWith('/postgres')) && cmdline.includes(dataDir) ? pid : null;
  } catch {
    return null;
  }
}

async function stopLeftover(dataDir: string): Promise<void> {
  const pid = leftoverServerPid(dataDir);
  if (pid === null) return;
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (leftoverServerPid(dataDir) === null) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };
  try {
    process.kill(pid, 'SIGQUIT');
    if (await gone(10_000)) return;
    process.kill(pid, 'SIGKILL');
    await gone(5_000);
  } catch {
    /* already gone */
  }
}

/** Stop the server of a scratch folder, if one runs, and remove the folder. */
export async function removeScratch(dir: string): Promise<void> {
  await stopLeftover(path.join(dir, 'data'));
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Remove the scratch folders (and stop the servers) of point-in-time restores that no longer
 * run: their process died (kill -9) before its own cleanup. Returns how many were removed;
 * never throws.
 */
export async function sweepPitrScratch(ctx: AppContext): Promise<number> {
  const root = pitrScratchRoot(ctx);
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return 0;
  }
  if (entries.length === 0) return 0;
  const jobs = await ctx.db.selectFrom('jobs').select(['id', 'state']).where('id', 'in', entries).execute();
  let removed = 0;
  for (const entry of entries) {
    const job = jobs.find((j) => j.id === entry);
    if (job && (job.state === 'pending' || job.state === 'running')) continue;
    try {
      await removeScratch(path.join(root, entry));
      removed++;
      ctx.log.warn({ job: entry }, 'removed the scratch folder (and stopped the temporary server) of an interrupted point-in-time restore');
    } catch (e) {
      ctx.log.warn({ job: entry, err: e instanceof Error ? e.message : String(e) }, 'could not remove the scratch folder of an interrupted point-in-time restore; will try again');
    }
  }
  return removed;
}

/** A free-looking port number for the socket's name (no TCP is opened; two servers just need different names). */
export function socketPort(): number {
  return 40_000 + Math.floor(Math.random() * 20_000);
}
