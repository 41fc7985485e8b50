/**
 * Base backups of archived PostgreSQL branches: pg_basebackup over the replication protocol,
 * the data directory as one tar on stdout with no WAL in it (`-Ft -X none -D -`): the WAL a
 * restore needs, from the backup's start to its end, is in the branch's archive. The tar
 * carries backup_label and backup_manifest (pg_verifybackup can check an unpacked copy).
 *
 * It is a DumpProcess like pg_dump's, so it goes through the backups' own pipeline
 * (jobs/backup.ts). Where the backup starts and ends (LSN, timeline) is read off
 * pg_basebackup's --verbose lines.
 */
import { EngineError, type ConnectionInfo, type DumpProcess } from '../../engines/engine.js';
import { runTool } from '../../engines/process.js';
import { replicationArgs, replicationEnv, serverTools } from './tools.js';

/** Where a base backup starts and ends: backups.recovery_start of a base backup. */
export interface BaseBackupRange {
  timeline: number;
  /** The WAL position replay starts from (the backup's checkpoint redo point). */
  lsn: string;
  /** The end: a restore is consistent once WAL up to here is replayed. */
  stop_lsn: string;
  stop_timeline: number;
  /** When the end was reached (this machine's clock). */
  stop_time: string;
}

export interface BaseBackupProcess extends DumpProcess {
  /** Once `done` resolved: where the backup starts and ends; null if pg_basebackup did not say. */
  range(): BaseBackupRange | null;
}

const START_RE = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/;
const END_RE = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/;

/** Start a base backup of the server of `conn` (the whole cluster: physical backups have no per-database form). */
export async function startBaseBackup(conn: ConnectionInfo, opts: { serverMajor: number; label: string; signal?: AbortSignal; clock?: () => Date }): Promise<BaseBackupProcess> {
  if (opts.signal?.aborted) throw new EngineError('pg_basebackup was canceled before it started');
  const tools = await serverTools(opts.serverMajor);
  const run = runTool({
    name: 'pg_basebackup',
    path: tools.pgBasebackup,
    // A fast checkpoint: the backup was asked for now (a spread one can take up to
    // checkpoint_timeout before the first byte).
    args: [...replicationArgs(conn), '--pgdata=-', '--format=tar', '--wal-method=none', '--checkpoint=fast', '--verbose', `--label=${opts.label}`],
    env: replicationEnv(conn, 'strongbox_basebackup'),
    secrets: [conn.password],
    stdin: 'ignore',
    signal: opts.signal,
  });
  let start: { lsn: string; timeline: number } | null = null;
  let stop: { lsn: string; at: string } | null = null;
  let pending = '';
  run.child.stderr!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const s = START_RE.exec(line);
      if (s) start = { lsn: s[1], timeline: Number(s[2]) };
      const e = END_RE.exec(line);
      if (e) stop = { lsn: e[1], at: (opts.clock?.() ?? new Date()).toISOString() };
    }
  });
  return {
    stdout: run.child.stdout!,
    done: run.done,
    kill: run.kill,
    clientVersion: tools.versionLine,
    range() {
      const s = start as { lsn: string; timeline: number } | null;
      const e = stop as { lsn: string; at: string } | null;
      if (!s || !e) return null;
      return { timeline: s.timeline, lsn: s.lsn, stop_lsn: e.lsn, stop_timeline: s.timeline, stop_time: e.at };
    },
  };
}
