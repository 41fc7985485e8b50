/**
 * Restore a backup into a NEW branch: a new database on the backup's server named after the
 * branch, or an (empty) database given by its connection URL. An archived branch can also be
 * restored to a point in time (a UTC time within its recovery window, or "latest"): the
 * request then sends `restore_point` and Strongbox picks the base backup. Then follow the
 * restore (bytes, rate, ETA, and a point-in-time restore's phase) to its result. The branch
 * being watched is in the URL, so a reload keeps following it.
 */
import { useEffect, useState } from 'preact/hooks';
import { get, post, queryString, type Backup, type Branch, type Database, type List } from '../api.js';
import { formatUtc, fromUtcInput, RecoveryWindowView, toUtcInput } from '../components/Archiving.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { ProgressBar } from '../components/ProgressBar.js';
import { StateBadge } from '../components/StateBadge.js';
import { Time } from '../components/Time.js';
import { formatBytes, formatDuration, formatTime } from '../format.js';
import { useApi, usePoll } from '../hooks.js';
import { href, navigate, pagePath } from '../router.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

export function Restore({ query }: PageProps) {
  const watch = query.get('watch');
  const database = query.get('database') ?? '';
  if (watch && database) return <RestoreProgress database={database} branch={watch} />;
  return <RestoreForm initial={{ database, branch: query.get('branch') ?? '', backup: query.get('backup') ?? '' }} />;
}

function RestoreForm({ initial }: { initial: { database: string; branch: string; backup: string } }) {
  const { org } = useApp();
  const [database, setDatabase] = useState(initial.database);
  const [branch, setBranch] = useState(initial.branch);
  const [backup, setBackup] = useState(initial.backup);
  const [target, setTarget] = useState<'new' | 'url'>('new');
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [overwrite, setOverwrite] = useState(false);
  const [ownership, setOwnership] = useState(false);
  const [identity, setIdentity] = useState('');
  // What to restore: a backup as it was taken, or (archived branches) the branch at a point in time.
  const [mode, setMode] = useState<'backup' | 'time'>('backup');
  const [pointLatest, setPointLatest] = useState(true);
  const [when, setWhen] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const databases = useApi<List<Database>>(`${orgApi(org, 'databases')}?per_page=100`);
  const branches = useApi<List<Branch>>(database ? `${orgApi(org, 'databases', database, 'branches')}?per_page=100` : null);
  const backups = useApi<List<Backup>>(database && branch ? orgApi(org, 'databases', database, 'branches', branch, 'backups') + queryString({ per_page: 100 }) : null);
  // Restorable: finished and not deleted (a backup that failed on one destination may still have good copies).
  const restorable = (backups.data?.data ?? []).filter((b) => b.deleted_at === null && (b.state === 'success' || b.state === 'failed'));
  const chosenBranch = (branches.data?.data ?? []).find((b) => b.name === branch);
  // A branch that was ever archived may have a recovery window (switched off: what was archived stays).
  const archived = chosenBranch?.archive != null;
  const pointInTime = archived && mode === 'time';
  const restorePoint = pointLatest ? 'latest' : fromUtcInput(when);

  // Defaults once the lists arrive: the only database/branch, the newest good backup.
  useEffect(() => {
    const d = databases.data?.data;
    if (!database && d?.length === 1) setDatabase(d[0].name);
  }, [databases.data]);
  useEffect(() => {
    const bs = (branches.data?.data ?? []).filter((b) => !b.restore || b.restore.state === 'success');
    if (!branch && bs.length === 1) setBranch(bs[0].name);
  }, [branches.data]);
  useEffect(() => {
    if (!backup && restorable.length) setBackup((restorable.find((b) => b.state === 'success') ?? restorable[0]).id);
  }, [backups.data]);
  useEffect(() => {
    if (!name && branch) setName(`${branch}-restore-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`.slice(0, 63));
  }, [branch]);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = pointInTime ? { name: name.trim(), parent_branch: branch, restore_point: restorePoint } : { name: name.trim(), backup_id: backup };
      if (target === 'url') {
        body.connection_url = url.trim();
        if (overwrite) body.overwrite = true;
      }
      if (ownership) body.preserve_ownership = true;
      if (identity.trim()) body.age_identity = identity.trim();
      await post<Branch>(orgApi(org, 'databases', database, 'branches'), body);
      setUrl('');
      setIdentity('');
      navigate('/restore', { database, watch: name.trim() });
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const chosen = restorable.find((b) => b.id === backup);
  return (
    <>
      <PageHeader title="Restore a backup" />
      <p>A restore never writes to the backed-up database: it makes a new branch, in a new database or in an empty one you name.</p>
      <form class="card form" onSubmit={submit} aria-busy={busy}>
        <fieldset>
          <legend>Backup</legend>
          <div class="field">
            <label for="r-db">Database</label>
            <select
              id="r-db"
              required
              value={database}
              onChange={(e) => {
                setDatabase((e.target as HTMLSelectElement).value);
                setBranch('');
                setBackup('');
              }}
            >
              <option value="">Choose…</option>
              {(databases.data?.data ?? []).map((d) => (
                <option key={d.id} value={d.name}>
                  {d.name} ({d.kind === 'mysql' ? 'MySQL/MariaDB' : 'PostgreSQL'})
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="r-branch">Branch</label>
            <select
              id="r-branch"
              required
              value={branch}
              disabled={!database}
              onChange={(e) => {
                setBranch((e.target as HTMLSelectElement).value);
                setBackup('');
              }}
            >
              <option value="">Choose…</option>
              {(branches.data?.data ?? []).map((b) => (
                <option key={b.id} value={b.name}>
                  {b.name}
                  {b.production ? ' (production)' : ''}
                </option>
              ))}
            </select>
          </div>
          {archived && (
            <div class="field" role="radiogroup" aria-labelledby="r-what">
              <span id="r-what" class="label">What to restore</span>
              <label class="inline-check">
                <input type="radio" name="what" checked={mode === 'backup'} onChange={() => setMode('backup')} /> A backup, as it was taken
              </label>
              <label class="inline-check">
                <input type="radio" name="what" checked={mode === 'time'} onChange={() => setMode('time')} /> The branch at a point in time (continuous archiving)
              </label>
            </div>
          )}
          {pointInTime && (
            <div class="field point-in-time">
              <RecoveryWindowView
                org={org}
                database={database}
                branch={branch}
                onLoaded={(w) => {
                  if (!when && w.latest) setWhen(toUtcInput(w.latest));
                }}
              />
              <label class="inline-check">
                <input type="radio" name="point" checked={pointLatest} onChange={() => setPointLatest(true)} /> Latest: everything archived so far
              </label>
              <label class="inline-check">
                <input type="radio" name="point" checked={!pointLatest} onChange={() => setPointLatest(false)} /> At a time
              </label>
              {!pointLatest && (
                <>
                  <label for="r-when">Time (UTC)</label>
                  <input id="r-when" type="datetime-local" step="1" required value={when} onInput={(e) => setWhen((e.target as HTMLInputElement).value)} aria-describedby="r-when-hint" />
                  <p class="hint" id="r-when-hint">
                    In UTC, to the second: every transaction committed at or before it is restored, none after.
                    {restorePoint && restorePoint !== 'latest' ? ` Restores to ${formatUtc(restorePoint)}.` : ''} Strongbox picks the newest backup before it and replays the archive from there.
                  </p>
                </>
              )}
            </div>
          )}
          {!pointInTime && (
            <div class="field">
              <label for="r-backup">Backup</label>
              <select id="r-backup" required value={backup} disabled={!branch} onChange={(e) => setBackup((e.target as HTMLSelectElement).value)}>
                <option value="">Choose…</option>
                {restorable.map((b) => (
                  <option key={b.id} value={b.id}>
                    {formatTime(b.completed_at ?? b.created_at)} · {b.name} · {formatBytes(b.size)}
                    {b.state === 'failed' ? ' (failed on some destination)' : ''}
                  </option>
                ))}
              </select>
              {branch && backups.data && restorable.length === 0 && <p class="hint">This branch has no backup that can be restored.</p>}
              {chosen && (
                <p class="hint">
                  <StateBadge state={chosen.state} /> taken <Time iso={chosen.completed_at ?? chosen.created_at} relative />
                </p>
              )}
            </div>
          )}
        </fieldset>
        <fieldset>
          <legend>Restore into</legend>
          <label class="inline-check">
            <input type="radio" name="target" checked={target === 'new'} onChange={() => setTarget('new')} /> A new database on the same server as the backup's branch, named after the new branch
          </label>
          <label class="inline-check">
            <input type="radio" name="target" checked={target === 'url'} onChange={() => setTarget('url')} /> An existing database, by its connection URL
          </label>
          <div class="field">
            <label for="r-name">New branch name</label>
            <input id="r-name" required pattern="[a-z0-9][a-z0-9_\-]*" maxLength={63} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} aria-describedby="r-name-hint" />
            <p class="hint" id="r-name-hint">
              Lower-case letters, digits, <code>-</code> and <code>_</code>.{target === 'new' ? ' The new database gets this name too.' : ''}
            </p>
          </div>
          {target === 'url' && (
            <>
              <div class="field">
                <label for="r-url">Target connection URL</label>
                <input id="r-url" type="password" required autoComplete="off" spellcheck={false} placeholder="postgresql://user:password@host:5432/database" value={url} onInput={(e) => setUrl((e.target as HTMLInputElement).value)} aria-describedby="r-url-hint" />
                <p class="hint" id="r-url-hint">
                  Stored encrypted, never shown again. The database should be empty.
                </p>
              </div>
              <label class="inline-check">
                <input type="checkbox" checked={overwrite} onChange={(e) => setOverwrite((e.target as HTMLInputElement).checked)} /> Restore even if the database is not empty
              </label>
            </>
          )}
        </fieldset>
        <details>
          <summary>More options</summary>
          <label class="inline-check">
            <input type="checkbox" checked={ownership} onChange={(e) => setOwnership((e.target as HTMLInputElement).checked)} /> Keep owners and privileges (the roles must exist on the target server)
          </label>
          <div class="field">
            <label for="r-identity">age identity (only when this server does not hold the key the backup was encrypted to)</label>
            <textarea id="r-identity" rows={2} spellcheck={false} autoComplete="off" value={identity} onInput={(e) => setIdentity((e.target as HTMLTextAreaElement).value)} />
          </div>
        </details>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || (pointInTime ? !restorePoint : !backup) || !name.trim()}>
          {busy ? 'Starting the restore…' : 'Restore'}
        </button>
      </form>
    </>
  );
}

/** Follow the restore into `branch` until it ends; then say where the data is. */
function RestoreProgress({ database, branch }: { database: string; branch: string }) {
  const { org } = useApp();
  const path = orgApi(org, 'databases', database, 'branches', branch);
  const [b, setB] = useState<Branch | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const load = () => get<Branch>(path).then(setB, setError);
  useEffect(() => {
    load();
  }, [path]);
  const r = b?.restore ?? null;
  const live = r !== null && (r.state === 'pending' || r.state === 'running');
  usePoll(load, 1000, live);
  return (
    <>
      <PageHeader title={`Restore into ${database}/${branch}`} />
      <ErrorBox error={error} />
      {!b && !error && <Loading what="Loading the restore" />}
      {b && !r && <p>Branch {branch} was not created by a restore.</p>}
      {b && r && (
        <section class="card" aria-labelledby="restore-h">
          <h2 id="restore-h">
            <StateBadge state={r.state} />
          </h2>
          {r.restore_point && (
            <p>
              Point in time: <strong>{r.restore_point === 'latest' ? 'latest (everything archived)' : formatUtc(r.restore_point)}</strong>
            </p>
          )}
          {live && r.phase && (
            <p class="phase" role="status" data-phase>
              {r.phase}…
            </p>
          )}
          {live && (
            <ProgressBar
              label="Restore progress"
              bytes={r.bytes}
              total={r.total_bytes || null}
              percent={r.total_bytes > 0 ? (100 * r.bytes) / r.total_bytes : null}
              rate={r.rate_bytes_per_second}
              eta={r.eta_seconds}
            />
          )}
          {r.state === 'pending' && <p class="muted">Waiting for a worker to pick it up.</p>}
          {r.state === 'success' && (
            <div class="result" role="status">
              <p>
                Restored {formatBytes(r.total_bytes)} in {formatDuration(r.started_at && r.completed_at ? (Date.parse(r.completed_at) - Date.parse(r.started_at)) / 1000 : null)} into database <code>{b.connection.database}</code> on{' '}
                <code>
                  {b.connection.host}:{b.connection.port}
                </code>{' '}
                (branch <strong>{b.name}</strong>).
              </p>
              <p>
                <a href={href(pagePath('databases', database, 'branches', b.name, 'backups'))}>Backups of the new branch {b.name}</a>
              </p>
            </div>
          )}
          {(r.state === 'failed' || r.state === 'canceled') && (
            <div class="failure" role="alert">
              <h3>Why the restore {r.state === 'failed' ? 'failed' : 'was canceled'}</h3>
              <p class="failure-reason">{r.error ?? 'no reason recorded'}</p>
            </div>
          )}
          <p class="small">
            <a href={href('/restore')}>Restore another backup</a>
          </p>
        </section>
      )}
    </>
  );
}
