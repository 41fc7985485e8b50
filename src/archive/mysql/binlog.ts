/**
 * What the MariaDB/MySQL archive needs to know about binlogs and their tools: file names
 * and their sequence, the binlog reader (mariadb-binlog, or mysqlbinlog), and the times a
 * binlog file covers.
 */
import readline from 'node:readline';
import { EngineError, type ConnectionInfo } from '../../engines/engine.js';
import { findInPath, runTool, toolEnvironment } from '../../engines/process.js';

/** `binlog.000012` → { base: 'binlog', seq: 12, width: 6 }; null for a name that is no binlog file. */
export function parseBinlogName(name: string): { base: string; seq: number; width: number } | null {
  const m = /^(.+)\.(\d{6,})$/.exec(name);
  return m ? { base: m[1], seq: Number(m[2]), width: m[2].length } : null;
}

/** The sequence number of a binlog file name (-1 when it has none), for sorting. */
export function binlogSequence(name: string): number {
  return parseBinlogName(name)?.seq ?? -1;
}

/** The name of the `n`th file after `name` in its sequence (the server pads to 6 digits and grows past them). */
export function binlogNameAfter(name: string, n = 1): string {
  const p = parseBinlogName(name);
  if (!p) throw new Error(`not a binlog file name: ${name}`);
  return `${p.base}.${String(p.seq + n).padStart(p.width, '0')}`;
}

/** Binlog file names sorted by their sequence. */
export function sortBinlogNames<T extends { name: string }>(files: T[]): T[] {
  return [...files].sort((a, b) => binlogSequence(a.name) - binlogSequence(b.name));
}

const toolCache = new Map<string, Promise<{ path: string; name: string }>>();

/** The first of `names` in PATH (cached; a failed lookup is not, so installing the tool helps at once). */
export function mysqlTool(names: string[]): Promise<{ path: string; name: string }> {
  const key = names.join(',');
  let p = toolCache.get(key);
  if (!p) {
    p = (async () => {
      for (const name of names) {
        const path = await findInPath(name);
        if (path) return { path, name };
      }
      throw new EngineError(`no ${names.join(' or ')} found in PATH; install mariadb-client (or mysql-client)`);
    })();
    toolCache.set(key, p);
    p.catch(() => toolCache.delete(key));
  }
  return p;
}

export const binlogReader = (): Promise<{ path: string; name: string }> => mysqlTool(['mariadb-binlog', 'mysqlbinlog']);
export const sqlClient = (): Promise<{ path: string; name: string }> => mysqlTool(['mariadb', 'mysql']);

/**
 * How the binlog reader connects to a server: no option files of this machine (`--no-defaults`
 * first), TCP, the URL's host, port and user. The password goes through MYSQL_PWD
 * (`binlogToolEnv`), never an argument.
 */
export function binlogConnectionArgs(conn: ConnectionInfo): string[] {
  return ['--no-defaults', '--protocol=TCP', `--host=${conn.host}`, `--port=${conn.port}`, `--user=${conn.user}`];
}

/**
 * The environment of a binlog tool: MYSQL_PWD when connecting, and UTC, because
 * mariadb-binlog prints event times and reads --stop-datetime in the local time zone.
 */
export function binlogToolEnv(password?: string): NodeJS.ProcessEnv {
  return toolEnvironment({ MYSQL_PWD: password, TZ: 'UTC' });
}

/** `#261130  2:24:29 server id 1  end_log_pos …`: an event header as mariadb-binlog prints it. */
const EVENT_HEADER = /^#(\d{2})(\d{2})(\d{2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+server id /;

/** The event time of one header line (UTC, as binlogToolEnv makes the tool print it), or null. */
export function eventTime(line: string): Date | null {
  const m = EVENT_HEADER.exec(line);
  if (!m) return null;
  const yy = Number(m[1]);
  const t = new Date(Date.UTC(yy >= 70 ? 1900 + yy : 2000 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  // A relayed Rotate event carries no time (1970): not an event of this file.
  return t.getUTCFullYear() < 2001 ? null : t;
}

/**
 * The times of the first and last events of a local binlog file (whole seconds: binlog
 * events carry no fraction). Read with the binlog reader, rows not decoded. Null times
 * for a file without events.
 */
export async function binlogEventTimes(path: string, signal?: AbortSignal): Promise<{ first: string | null; last: string | null }> {
  const tool = await binlogReader();
  const run = runTool({ name: tool.name, path: tool.path, args: ['--no-defaults', '--base64-output=decode-rows', path], env: binlogToolEnv(), secrets: [], stdin: 'ignore', signal });
  let first: number | null = null;
  let last: number | null = null;
  const lines = readline.createInterface({ input: run.child.stdout!, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.charCodeAt(0) !== 0x23 /* # */) continue;
    const t = eventTime(line)?.getTime();
    if (t === undefined) continue;
    first = first === null ? t : Math.min(first, t);
    last = last === null ? t : Math.max(last, t);
  }
  await run.done;
  const iso = (n: number | null) => (n === null ? null : new Date(n).toISOString());
  return { first: iso(first), last: iso(last) };
}
