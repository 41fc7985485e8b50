/**
 * One backup: what it is, why it failed (in full), its stored copies with their sha256, its
 * verifications, the schema it saw and what changed since the previous backup, a live
 * progress bar while it runs, and the actions (verify, protect, download, restore, delete).
 */
import { useEffect, useState } from 'preact/hooks';
import { del, get, patch, post, queryString, type Artifacts, type Backup, type List, type Progress, type Verification } from '../api.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { ProgressBar } from '../components/ProgressBar.js';
import { StateBadge } from '../components/StateBadge.js';
import { Time } from '../components/Time.js';
import { formatBytes, formatDuration, secondsBetween } from '../format.js';
import { useApi, usePoll } from '../hooks.js';
import { href, navigate, pagePath } from '../router.js';
import type { PageProps } from '../routes.js';
import { branchApi, orgApi, useApp } from '../session.js';

const running = (state: string | undefined) => state === 'pending' || state === 'running';

export function BackupDetail({ params }: PageProps) {
  const { org } = useApp();
  const { database, branch, id } = params;
  const api = branchApi(org, database, branch, 'backups', id);
  const listPage = pagePath('databases', database, 'branches', branch, 'backups');
  const backup = useApi<Backup>(api);
  const artifacts = useApi<Artifacts>(`${api}/artifacts`);
  const verifications = useApi<{ data: Verification[] }>(`${api}/verifications`);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [status, setStatus] = useState('');
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const b = backup.data;
  const live = running(b?.state);

  // While it runs: bytes, rate and ETA every second; when it ends, everything else once more.
  usePoll(
    async () => {
      const p = await get<Progress>(`${api}/progress`);
      setProgress(p);
      if (!running(p.state)) {
        backup.reload();
        artifacts.reload();
      }
    },
    1000,
    live,
  );
  useEffect(() => {
    if (live) get<Progress>(`${api}/progress`).then(setProgress, () => undefined);
  }, [live]);
  // The backup and its copies load side by side: a backup that ended between the two answers
  // is seen ended while its copies (and the reason it failed) are from before. Nothing polls
  // an ended backup, so read the copies once more.
  const artifactsState = artifacts.data?.backup_state;
  useEffect(() => {
    if (b && !live && artifactsState !== undefined && running(artifactsState)) artifacts.reload();
  }, [b?.state, artifactsState]);
  // Verifications in flight are polled too, so their result appears without a reload.
  const verifying = (verifications.data?.data ?? []).some((v) => running(v.state));
  usePoll(
    async () => {
      verifications.reload();
      artifacts.reload();
    },
    1500,
    verifying,
  );

  async function act(what: string, fn: () => Promise<unknown>, done: string) {
    setBusy(true);
    setActionError(undefined);
    setStatus(`${what}…`);
    try {
      await fn();
      setStatus(done);
    } catch (e) {
      setStatus('');
      setActionError(e);
    } finally {
      setBusy(false);
    }
  }

  if (!b) {
    return (
      <>
        <PageHeader title="Backup" />
        <ErrorBox error={backup.error} />
        {backup.loading && <Loading what="Loading the backup" />}
      </>
    );
  }
  const reason = artifacts.data?.backup_error ?? progress?.error ?? null;
  // Verify, download and restore need a stored copy; a backup that failed before writing one has none.
  const stored = artifacts.data?.data.filter((a) => a.state === 'success').length ?? 0;
  const deleted = b.deleted_at !== null;
  return (
    <>
      <PageHeader title={`Backup ${b.name}`}>
        <a class="button" href={href(listPage)}>
          ← All backups of {database}/{branch}
        </a>
      </PageHeader>
      <p class="status-line" role="status" aria-live="polite">
        {status}
      </p>
      <ErrorBox error={actionError} />
      <ErrorBox error={backup.error} />

      <section class="card" aria-labelledby="summary-h">
        <h2 id="summary-h" class="visually-hidden">
          Summary
        </h2>
        <dl class="facts">
          <dt>State</dt>
          <dd>
            <StateBadge state={b.state} />
            {deleted && <span class="tag">deleted</span>}
          </dd>
          <dt>Created</dt>
          <dd>
            <Time iso={b.created_at} relative />
          </dd>
          <dt>Started</dt>
          <dd>
            <Time iso={b.started_at} />
          </dd>
          <dt>Completed</dt>
          <dd>
            <Time iso={b.completed_at} />
          </dd>
          <dt>Duration</dt>
          <dd>{formatDuration(secondsBetween(b.started_at, b.completed_at))}</dd>
          <dt>Size</dt>
          <dd>{formatBytes(b.size)}</dd>
          <dt>Expires</dt>
          <dd>
            <Time iso={b.expires_at} relative />
          </dd>
          <dt>Protected</dt>
          <dd>{b.protected ? 'yes' : 'no'}</dd>
          <dt>Made by</dt>
          <dd>{b.backup_policy ? `policy ${b.backup_policy.display_name || b.backup_policy.name}` : (b.actor?.display_name ?? 'unknown')}</dd>
          {b.restored_branches.length > 0 && (
            <>
              <dt>Restored into</dt>
              <dd>
                {b.restored_branches.map((r, i) => (
                  <span key={r.id}>
                    {i > 0 && ', '}
                    {r.deleted_at ? r.name.replace(/~deleted~.*$/, ' (forgotten)') : <a href={href(pagePath('databases', database, 'branches', r.name, 'backups'))}>{r.name}</a>}
                  </span>
                ))}
              </dd>
            </>
          )}
        </dl>
        {reason && (
          <div class="failure" role={b.state === 'failed' ? 'alert' : undefined}>
            <h3>{b.state === 'failed' ? 'Failure reason' : 'Reason'}</h3>
            <p class="failure-reason">{reason}</p>
          </div>
        )}
      </section>

      {live && (
        <section class="card" aria-labelledby="progress-h">
          <h2 id="progress-h">Progress</h2>
          {progress ? (
            <ProgressBar
              label="Backup progress"
              bytes={progress.bytes_read}
              total={progress.estimated_total_bytes}
              percent={progress.percent}
              rate={progress.rate_bytes_per_second}
              eta={progress.eta_seconds}
            />
          ) : (
            <Loading what="Waiting for the first progress report" />
          )}
          {progress && <p class="muted small">{formatBytes(progress.bytes_written)} written to storage (compressed{progress.state === 'pending' ? '; waiting for a worker' : ''}).</p>}
          <button type="button" disabled={busy} onClick={() => act('Canceling', () => post(`${api}/cancel`).then(() => backup.reload()), 'Backup canceled.')}>
            Cancel backup
          </button>
        </section>
      )}

      {!deleted && !live && (
        <section class="card actions" aria-label="Actions">
          {stored > 0 && (
            <>
              <button
                type="button"
                disabled={busy}
                onClick={() =>
                  act(
                    'Queuing a verification',
                    () => post(`${api}/verify`, {}).then(() => verifications.reload()),
                    'Verification queued: every copy is re-read and checked against its sha256.',
                  )
                }
              >
                Verify
              </button>
              <button
                type="button"
                disabled={busy}
                onClick={() =>
                  act(
                    'Queuing a full verification',
                    () => post(`${api}/verify`, { restore: true }).then(() => verifications.reload()),
                    'Full verification queued: the backup is restored into a scratch database and compared.',
                  )
                }
              >
                Verify by restoring
              </button>
              <a class="button" href={`${api}/download`} download>
                Download
              </a>
              <a class="button" href={href('/restore', { database, branch, backup: b.id })}>
                Restore…
              </a>
            </>
          )}
          <button
            type="button"
            disabled={busy}
            onClick={() =>
              act(
                b.protected ? 'Unprotecting' : 'Protecting',
                () => patch<Backup>(api, { protected: !b.protected }).then(() => backup.reload()),
                b.protected ? 'No longer protected: retention may delete it.' : 'Protected: retention will keep it.',
              )
            }
          >
            {b.protected ? 'Unprotect' : 'Protect'}
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => setConfirmDelete(true)}>
            Delete…
          </button>
        </section>
      )}
      <ConfirmDialog
        open={confirmDelete}
        title={`Delete backup ${b.name}?`}
        confirmLabel="Delete backup"
        onCancel={() => setConfirmDelete(false)}
        onConfirm={() => {
          setConfirmDelete(false);
          act('Deleting', () => del(api), 'Deleted.').then(() => navigate(listPage));
        }}
      >
        <p>
          {stored > 0 ? `Its ${plural2(stored)} in storage will be removed from every destination. This cannot be undone.` : 'It has no stored copies; only its record goes.'}
        </p>
      </ConfirmDialog>

      <section class="card" aria-labelledby="artifacts-h">
        <h2 id="artifacts-h">Stored copies</h2>
        <ErrorBox error={artifacts.error} />
        {artifacts.data && artifacts.data.data.length === 0 && <p class="muted">No copies (yet).</p>}
        {artifacts.data && artifacts.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Destination</th>
                  <th scope="col">State</th>
                  <th scope="col" class="num">
                    Size
                  </th>
                  <th scope="col">sha256</th>
                  <th scope="col">Last check</th>
                  <th scope="col">Path</th>
                </tr>
              </thead>
              <tbody>
                {artifacts.data.data.map((a) => (
                  <tr key={a.id}>
                    <th scope="row">
                      {a.destination}
                      <div class="muted small">{a.provider}</div>
                    </th>
                    <td>
                      <StateBadge state={a.state} />
                      {a.error && <div class="failure-reason small">{a.error}</div>}
                    </td>
                    <td class="num">{formatBytes(a.size)}</td>
                    <td>
                      <code class="hash">{a.sha256 ?? '—'}</code>
                    </td>
                    <td>
                      {a.verification ? <StateBadge state={a.verification} /> : <span class="muted">never</span>}
                      {a.verified_at && (
                        <div class="small">
                          <Time iso={a.verified_at} />
                        </div>
                      )}
                    </td>
                    <td>
                      <code class="path">{a.path}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="verifications-h">
        <h2 id="verifications-h">Verifications</h2>
        <ErrorBox error={verifications.error} />
        {verifications.data && verifications.data.data.length === 0 && <p class="muted">Never verified.</p>}
        {verifications.data && verifications.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">State</th>
                  <th scope="col">Asked</th>
                  <th scope="col">Finished</th>
                  <th scope="col">Result</th>
                </tr>
              </thead>
              <tbody>
                {verifications.data.data.map((v) => (
                  <tr key={v.id}>
                    <td>
                      {v.kind === 'full' ? 'full (restore)' : 'quick (checksums)'}
                      {v.drill_policy_id && <span class="tag">drill</span>}
                    </td>
                    <td>
                      <StateBadge state={v.state} />
                    </td>
                    <td>
                      <Time iso={v.created_at} />
                    </td>
                    <td>
                      <Time iso={v.completed_at} />
                    </td>
                    <td>
                      {v.error && <p class="failure-reason">{v.error}</p>}
                      <VerificationResult result={v.result} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <SchemaSection org={org} database={database} branch={branch} backup={b} />
    </>
  );
}

function plural2(n: number): string {
  return n === 1 ? '1 copy' : `${n} copies`;
}

/** The differences a full verification found, or how many checks passed. */
function VerificationResult({ result }: { result: unknown }) {
  if (!result || typeof result !== 'object') return null;
  const r = result as { method?: string; differences?: Array<{ kind?: string; schema?: string; name?: string; problem?: string }>; differences_total?: number };
  if (!r.differences) return r.method ? <span class="muted small">compared by {r.method}</span> : null;
  if (r.differences.length === 0) return <span class="small">no differences{r.method ? ` (${r.method})` : ''}</span>;
  return (
    <details>
      <summary>{r.differences_total ?? r.differences.length} differences</summary>
      <ul class="small">
        {r.differences.slice(0, 50).map((d, i) => (
          <li key={i}>
            {[d.kind, [d.schema, d.name].filter(Boolean).join('.'), d.problem].filter(Boolean).join(': ')}
          </li>
        ))}
      </ul>
    </details>
  );
}

/**
 * The schema the backup saw, and its diff to the schema of the branch's previous backup
 * that has one (found by listing the branch's backups started before this one).
 */
function SchemaSection({ org, database, branch, backup }: { org: string; database: string; branch: string; backup: Backup }) {
  const snap = backup.schema_snapshot;
  const snapBase = orgApi(org, 'databases', database, 'schema-snapshots');
  const ddl = useApi<string>(snap ? `${snapBase}/${encodeURIComponent(snap.id)}` : null);
  const before = useApi<List<Backup>>(
    snap ? branchApi(org, database, branch, 'backups') + queryString({ to: backup.started_at ?? backup.created_at, all: true, per_page: 20 }) : null,
  );
  const previous = (before.data?.data ?? []).find((x) => x.id !== backup.id && x.schema_snapshot !== null && x.created_at <= backup.created_at);
  const diff = useApi<string>(snap && previous ? `${snapBase}/${encodeURIComponent(previous.schema_snapshot!.id)}/diff/${encodeURIComponent(snap.id)}` : null);
  return (
    <section class="card" aria-labelledby="schema-h">
      <h2 id="schema-h">Schema</h2>
      {!snap ? (
        <p class="muted">No schema snapshot was recorded for this backup.</p>
      ) : (
        <>
          <ErrorBox error={ddl.error ?? before.error ?? diff.error} />
          <h3>Changes since the previous backup</h3>
          {before.data && !previous && <p class="muted">No earlier backup of this branch has a schema snapshot to compare with.</p>}
          {previous && diff.data !== undefined && (
            <>
              <p class="small">
                From <a href={href(pagePath('databases', database, 'branches', branch, 'backups', previous.id))}>{previous.name}</a> to this backup:
              </p>
              {diff.data === '' ? <p>No schema changes.</p> : <DiffView text={diff.data} />}
            </>
          )}
          <details>
            <summary>Full schema ({snap.name})</summary>
            {ddl.data !== undefined ? <pre class="code">{ddl.data}</pre> : <Loading what="Loading the schema" />}
          </details>
        </>
      )}
    </section>
  );
}

/** A unified diff with added and removed lines marked by class and by their +/- sign. */
function DiffView({ text }: { text: string }) {
  // Each line is drawn with its newline; the patch's own last newline is not a line.
  const lines = text.replace(/\n$/, '').split('\n');
  return (
    <pre class="code diff" aria-label="Unified diff of the schema">
      {lines.map((l, i) => (
        <span key={i} class={l.startsWith('+++') || l.startsWith('---') ? 'diff-file' : l.startsWith('@@') ? 'diff-hunk' : l.startsWith('+') ? 'diff-add' : l.startsWith('-') ? 'diff-del' : undefined}>
          {l}
          {'\n'}
        </span>
      ))}
    </pre>
  );
}
