/**
 * Continuous archiving (point-in-time recovery) as the pages show it: the receiver's state
 * in words (streaming, failed with the server's whole reason, off), the recovery window with
 * its gaps in red and the missing files named, and the switch that turns archiving on or
 * off for a branch. Switching on is where the server's preconditions bite (replication
 * privilege, wal_level, a free slot, pg_hba.conf, log_bin...): the API's 422 lists every
 * problem and the panel shows that text as it is.
 */
import { useEffect, useState } from 'preact/hooks';
import { patch, type ArchiveStatus, type Branch, type RecoveryWindow } from '../api.js';
import { ConfirmDialog } from './ConfirmDialog.js';
import { ErrorBox } from './ErrorBox.js';
import { StateBadge } from './StateBadge.js';
import { Time } from './Time.js';
import { useApi, usePoll } from '../hooks.js';
import { branchApi } from '../session.js';
import './archiving.css';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** "2024-05-01 13:45:07 UTC": restore points are asked for in UTC, so they are shown in UTC. */
export function formatUtc(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** The value of an <input type="datetime-local" step="1"> that holds a UTC time, for an ISO time. */
export function toUtcInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** Such an input's value (read as UTC) as an ISO time with its zone, or undefined when it is not a time. */
export function fromUtcInput(value: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d{1,3})?)?$/.exec(value.trim());
  if (!m) return undefined;
  const d = new Date(`${m[1]}T${m[2]}${m[3] ?? ':00'}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** Archiving of a branch in words: off, starting, streaming (and when the last file was stored), failed and why. */
export function ArchiveStateView({ archive, compact = false }: { archive: ArchiveStatus | null; compact?: boolean }) {
  if (!archive || !archive.enabled) {
    return (
      <span class="archive-state" data-archive-state="off">
        <span class="muted">off</span>
        {archive && !compact && <span class="muted small"> (switched off; what was archived stays until retention removes it)</span>}
      </span>
    );
  }
  return (
    <span class="archive-state" data-archive-state={archive.state}>
      <StateBadge state={archive.state} />
      {archive.state === 'streaming' && (
        <span class="muted small">
          {' '}
          {archive.last_shipped_at ? (
            <>
              last file stored <Time iso={archive.last_shipped_at} relative />
            </>
          ) : (
            'no file complete yet'
          )}
        </span>
      )}
      {archive.state === 'starting' && <span class="muted small"> waiting for a worker to start the receiver</span>}
      {archive.state === 'failed' && (
        <span class="archive-error" role="alert">
          <span class="reason-label">Archiving failed: </span>
          <span class="failure-reason">{archive.error ?? 'no reason recorded'}</span>
        </span>
      )}
    </span>
  );
}

/** The recovery window of a branch: earliest – latest (UTC), and every gap in red with the files it lacks. */
export function RecoveryWindowView({ org, database, branch, onLoaded }: { org: string; database: string; branch: string; onLoaded?: (w: RecoveryWindow) => void }) {
  const win = useApi<RecoveryWindow>(branchApi(org, database, branch, 'recovery-window'));
  usePoll(win.reload, 15_000, true);
  useEffect(() => {
    if (win.data) onLoaded?.(win.data);
  }, [win.data]);
  if (win.error) return <ErrorBox error={win.error} />;
  if (!win.data) return <p class="muted small">Loading the recovery window…</p>;
  const w = win.data;
  return (
    <div class="recovery-window" data-recovery-window>
      {w.earliest && w.latest ? (
        <p>
          Restorable to any time from <strong data-earliest={w.earliest}>{formatUtc(w.earliest)}</strong> to <strong data-latest={w.latest}>{formatUtc(w.latest)}</strong>
          {w.gaps.length > 0 && ', except in the gaps below'}.
        </p>
      ) : (
        <p class="muted">Nothing restorable to a point in time yet: it takes a backup taken while archiving is on, and the archive from there on.</p>
      )}
      {w.gaps.length > 0 && (
        <ul class="gap-list" aria-label="Gaps in the archive">
          {w.gaps.map((g, i) => (
            <li key={i} class="gap">
              <strong>Gap</strong> {g.after ? <>after {formatUtc(g.after)}</> : 'from the start'}
              {g.before ? <>, until {formatUtc(g.before)}</> : ', with nothing restorable after it until a newer backup'}: missing{' '}
              {g.missing.map((m, j) => (
                <span key={m}>
                  {j > 0 && ', '}
                  <code>{m}</code>
                </span>
              ))}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/**
 * The point-in-time recovery card of a branch: its archiving state, the switch, and the
 * recovery window. Polls while the receiver is starting so "streaming" shows up by itself.
 */
export function ArchivingPanel({ org, database, branch }: { org: string; database: string; branch: string }) {
  const path = branchApi(org, database, branch);
  const b = useApi<Branch>(path);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [confirmOff, setConfirmOff] = useState(false);
  const archive = b.data?.archive ?? null;
  const on = archive?.enabled === true;
  usePoll(b.reload, on && archive?.state !== 'streaming' ? 1000 : 10_000, b.data !== undefined);

  async function toggle(to: boolean) {
    setConfirmOff(false);
    setBusy(true);
    setError(undefined);
    try {
      await patch<Branch>(path, { archiving: to });
      b.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card archiving-panel" aria-labelledby="pitr-h">
      <h2 id="pitr-h">Point-in-time recovery</h2>
      <ErrorBox error={b.error} />
      {b.data && (
        <>
          <p>
            Continuous archiving: <ArchiveStateView archive={archive} />
          </p>
          <p class="muted small">
            {b.data.kind === 'mysql'
              ? 'On: every binary log is stored as it closes, and each dump records its binlog coordinates, so the branch can be restored to any second.'
              : 'On: every WAL segment is stored as it completes (through a replication slot), and backups become base backups, so the branch can be restored to any second.'}
          </p>
          {on ? (
            <button type="button" onClick={() => setConfirmOff(true)} disabled={busy}>
              {busy ? 'Switching off…' : 'Switch archiving off'}
            </button>
          ) : (
            <button type="button" class="primary" onClick={() => toggle(true)} disabled={busy}>
              {busy ? 'Checking the server…' : 'Switch archiving on'}
            </button>
          )}
          <ErrorBox error={error} />
          {archive && <RecoveryWindowView org={org} database={database} branch={branch} />}
          <ConfirmDialog open={confirmOff} title="Switch archiving off?" confirmLabel="Switch off" onConfirm={() => toggle(false)} onCancel={() => setConfirmOff(false)}>
            <p>
              New writes to {database}/{branch} will no longer be archived{b.data.kind === 'postgresql' ? ' and the replication slot is dropped' : ''}. What was archived stays until retention removes it. Writes made while
              archiving is off cannot be restored to a point in time.
            </p>
          </ConfirmDialog>
        </>
      )}
    </section>
  );
}
