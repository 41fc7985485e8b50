/**
 * The backups of one branch with the API's filters (state, policy, time range, deleted ones
 * too), kept in the URL so a filtered list can be bookmarked; paging; and per backup its
 * copies per destination and, when it failed, the reason in full.
 */
import { useEffect, useState } from 'preact/hooks';
import { get, post, queryString, type Artifacts, type Backup, type List } from '../api.js';
import { ArchivingPanel } from '../components/Archiving.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { Pager } from '../components/Pager.js';
import { StateBadge } from '../components/StateBadge.js';
import { Time } from '../components/Time.js';
import { formatBytes, formatDuration, fromLocalInput, secondsBetween, toLocalInput } from '../format.js';
import { useApi } from '../hooks.js';
import { href, navigate, pagePath } from '../router.js';
import type { PageProps } from '../routes.js';
import { branchApi, orgApi, useApp } from '../session.js';

const STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'ignored'];
const PER_PAGE = 25;

interface Filters {
  state: string;
  policy: string;
  from: string;
  to: string;
  all: boolean;
}

function filtersOf(q: URLSearchParams): Filters {
  return { state: q.get('state') ?? '', policy: q.get('policy') ?? '', from: q.get('from') ?? '', to: q.get('to') ?? '', all: q.get('all') === 'true' };
}

export function Backups({ params, query }: PageProps) {
  const { org } = useApp();
  const { database, branch } = params;
  const here = pagePath('databases', database, 'branches', branch, 'backups');
  const applied = filtersOf(query);
  const page = Math.max(1, Number(query.get('page')) || 1);
  const listPath =
    branchApi(org, database, branch, 'backups') +
    queryString({ state: applied.state, policy: applied.policy, from: applied.from, to: applied.to, all: applied.all || undefined, page, per_page: PER_PAGE });
  const list = useApi<List<Backup>>(listPath);
  const policies = useApi<List<{ id: string; name: string; display_name: string }>>(`${orgApi(org, 'databases', database, 'backup-policies')}?per_page=100`);
  const [form, setForm] = useState<Filters>(applied);
  const [copies, setCopies] = useState<Record<string, Artifacts>>({});
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [starting, setStarting] = useState(false);

  // Copies per destination: one small request per backup on the page (the list has no artifacts).
  useEffect(() => {
    const rows = list.data?.data ?? [];
    let cancelled = false;
    Promise.all(rows.map((b) => get<Artifacts>(branchApi(org, database, branch, 'backups', b.id, 'artifacts')).then((a) => [b.id, a] as const, () => null))).then((pairs) => {
      if (!cancelled) setCopies(Object.fromEntries(pairs.filter((p): p is readonly [string, Artifacts] => p !== null)));
    });
    return () => {
      cancelled = true;
    };
  }, [list.data]);

  const go = (f: Filters, p = 1) => navigate(here, { state: f.state, policy: f.policy, from: f.from, to: f.to, all: f.all || undefined, page: p > 1 ? p : undefined });
  const set = (k: keyof Filters) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : k === 'from' || k === 'to' ? (fromLocalInput(t.value) ?? '') : t.value });
  };

  async function backupNow() {
    setStarting(true);
    setActionError(undefined);
    try {
      const b = await post<Backup>(branchApi(org, database, branch, 'backups'), {});
      navigate(`${here}/${encodeURIComponent(b.id)}`);
    } catch (e) {
      setActionError(e);
      setStarting(false);
    }
  }

  const data = list.data;
  return (
    <>
      <PageHeader title={`Backups of ${database}/${branch}`}>
        <button type="button" class="primary" onClick={backupNow} disabled={starting}>
          {starting ? 'Starting…' : 'Back up now'}
        </button>
        <a class="button" href={href('/restore', { database, branch })}>
          Restore…
        </a>
      </PageHeader>
      <ErrorBox error={actionError} />
      <ArchivingPanel org={org} database={database} branch={branch} />
      <form
        class="filters card"
        aria-label="Filter backups"
        onSubmit={(e) => {
          e.preventDefault();
          go(form);
        }}
      >
        <div class="field">
          <label for="f-state">State</label>
          <select id="f-state" value={form.state} onChange={set('state')}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-policy">Policy</label>
          <select id="f-policy" value={form.policy} onChange={set('policy')}>
            <option value="">any (manual too)</option>
            {(policies.data?.data ?? []).map((p) => (
              <option key={p.id} value={p.id}>
                {p.display_name || p.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-from">Started from</label>
          <input id="f-from" type="datetime-local" value={toLocalInput(form.from || null)} onChange={set('from')} />
        </div>
        <div class="field">
          <label for="f-to">Started until</label>
          <input id="f-to" type="datetime-local" value={toLocalInput(form.to || null)} onChange={set('to')} />
        </div>
        <label class="inline-check">
          <input type="checkbox" checked={form.all} onChange={set('all')} /> Include deleted backups
        </label>
        <div class="filter-actions">
          <button type="submit" class="primary">
            Apply filters
          </button>
          <button
            type="button"
            onClick={() => {
              const none = { state: '', policy: '', from: '', to: '', all: false };
              setForm(none);
              go(none);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorBox error={list.error} />
      {!data && list.loading && <Loading what="Loading the backups" />}
      {data && (
        <>
          {data.data.length === 0 ? (
            <p>No backups match these filters.</p>
          ) : (
            <div class="table-wrap">
              <table class="backups" aria-busy={list.loading}>
                <caption class="visually-hidden">Backups of {database}/{branch}, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Backup</th>
                    <th scope="col">State</th>
                    <th scope="col">Started</th>
                    <th scope="col" class="num">
                      Duration
                    </th>
                    <th scope="col" class="num">
                      Size
                    </th>
                    <th scope="col">Copies</th>
                    <th scope="col">Protected</th>
                    <th scope="col">Expires</th>
                  </tr>
                </thead>
                <tbody>
                  {data.data.map((b) => (
                    <BackupRow key={b.id} b={b} copies={copies[b.id]} detail={`${here}/${encodeURIComponent(b.id)}`} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <Pager page={data.current_page} totalPages={data.total_pages} total={data.total_count} noun="backup" onPage={(p) => go(applied, p)} />
        </>
      )}
    </>
  );
}

function BackupRow({ b, copies, detail }: { b: Backup; copies: Artifacts | undefined; detail: string }) {
  const reason = copies?.backup_error ?? null;
  return (
    <>
      <tr class={b.state === 'failed' ? 'failed-row' : undefined} data-backup={b.id}>
        <th scope="row">
          <a href={href(detail)}>{b.name}</a>
          {b.deleted_at && <span class="tag">deleted</span>}
          <div class="muted small">{b.backup_policy ? `policy ${b.backup_policy.display_name || b.backup_policy.name}` : b.actor ? `by ${b.actor.display_name}` : 'manual'}</div>
        </th>
        <td>
          <StateBadge state={b.state} />
        </td>
        <td>
          <Time iso={b.started_at ?? b.created_at} />
        </td>
        <td class="num">{formatDuration(secondsBetween(b.started_at, b.completed_at))}</td>
        <td class="num">{b.state === 'success' || b.size > 0 ? formatBytes(b.size) : '—'}</td>
        <td>
          {copies === undefined ? (
            <span class="muted">…</span>
          ) : copies.data.length === 0 ? (
            <span class="muted">none</span>
          ) : (
            <ul class="copies">
              {copies.data.map((a) => (
                <li key={a.id}>
                  {a.destination}: <StateBadge state={a.state} />
                </li>
              ))}
            </ul>
          )}
        </td>
        <td>{b.protected ? <span class="tag">protected</span> : <span class="muted">no</span>}</td>
        <td>
          <Time iso={b.expires_at} />
        </td>
      </tr>
      {reason && (
        <tr class="reason-row">
          <td colSpan={8}>
            <span class="reason-label">{b.state === 'failed' ? 'Failure reason' : 'Reason'}: </span>
            <span class="failure-reason">{reason}</span>
          </td>
        </tr>
      )}
    </>
  );
}
