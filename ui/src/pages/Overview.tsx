/**
 * Every branch the token can read, at a glance: last good backup and its age, the last
 * run, the next one, stored bytes, and a mark (in words, not only red) on branches that are
 * overdue, whose last run failed, whose last restore drill failed or whose archiving failed;
 * and, for archived branches, the recovery window (gaps in red). Below, per branch, the
 * size and duration of its backups over the last 90 days, loaded as the charts scroll into view.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { HistoryPoint, OverviewEntry } from '../api.js';
import { ArchiveStateView, RecoveryWindowView } from '../components/Archiving.js';
import { Chart, type ChartPoint } from '../components/Chart.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { StateBadge } from '../components/StateBadge.js';
import { Time } from '../components/Time.js';
import { formatAge, formatBytes, formatDuration, plural } from '../format.js';
import { useApi } from '../hooks.js';
import { href, pagePath } from '../router.js';
import type { PageProps } from '../routes.js';
import { branchApi, orgApi, useApp } from '../session.js';

/** Why a branch needs attention, in words (the red mark is never the only signal). */
export function attentionReasons(e: OverviewEntry): string[] {
  const out: string[] = [];
  if (e.overdue) out.push('Overdue: no successful backup for more than twice the policy frequency');
  if (e.last_backup?.state === 'failed') out.push('Last backup failed');
  if (e.last_drill?.state === 'failed') out.push('Last restore drill failed');
  if (e.archive?.enabled && e.archive.state === 'failed') out.push('Archiving failed');
  return out;
}

const backupsPath = (e: OverviewEntry) => pagePath('databases', e.database.name, 'branches', e.branch.name, 'backups');

export function Overview(_props: PageProps) {
  const { org } = useApp();
  const { data, error, loading, reload } = useApi<{ data: OverviewEntry[] }>(orgApi(org, 'overview'));
  const [onlyAttention, setOnlyAttention] = useState(false);
  const rendered = useRef(false);
  // For bench/dashboard.ts and anyone profiling: when the table first showed real rows.
  useLayoutEffect(() => {
    if (data && !rendered.current) {
      rendered.current = true;
      performance.mark('strongbox:overview-rendered');
    }
  }, [data]);
  const entries = data?.data ?? [];
  const attention = entries.filter((e) => e.attention);
  const shown = onlyAttention ? attention : entries;
  return (
    <>
      <PageHeader title="Overview">
        <button type="button" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </PageHeader>
      <ErrorBox error={error} />
      {!data && loading && <Loading what="Loading the branches" />}
      {data && (
        <>
          <p class="summary" role="status">
            {plural(entries.length, 'branch', 'branches')}
            {attention.length > 0 ? (
              <strong class="attention-text">, {attention.length} need{attention.length === 1 ? 's' : ''} attention</strong>
            ) : (
              entries.length > 0 && ', all fine'
            )}
            .
          </p>
          {entries.length === 0 ? (
            <p>No branches yet. Register a database and a branch through the API or the CLI (see the README quick start), then take a backup.</p>
          ) : (
            <>
              <label class="inline-check">
                <input type="checkbox" checked={onlyAttention} onChange={(e) => setOnlyAttention((e.target as HTMLInputElement).checked)} /> Only branches that need attention
              </label>
              <div class="table-wrap">
                <table class="overview" id="overview-table">
                  <caption class="visually-hidden">Branches and the state of their backups</caption>
                  <thead>
                    <tr>
                      <th scope="col">Branch</th>
                      <th scope="col">Status</th>
                      <th scope="col">Last successful backup</th>
                      <th scope="col">Last run</th>
                      <th scope="col">Next run</th>
                      <th scope="col">Point-in-time recovery</th>
                      <th scope="col" class="num">
                        Stored
                      </th>
                      <th scope="col" class="num">
                        Backups
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {shown.map((e) => (
                      <OverviewRow key={e.branch.id} e={e} org={org} />
                    ))}
                  </tbody>
                </table>
              </div>
              <h2>History, last 90 days</h2>
              <div class="chart-grid-list">
                {shown.map((e) => (
                  <BranchCharts key={e.branch.id} e={e} org={org} />
                ))}
              </div>
            </>
          )}
        </>
      )}
    </>
  );
}

function OverviewRow({ e, org }: { e: OverviewEntry; org: string }) {
  const reasons = attentionReasons(e);
  const last = e.last_backup;
  return (
    <tr class={e.attention ? 'attention' : undefined} data-branch={`${e.database.name}/${e.branch.name}`}>
      <th scope="row">
        <a href={href(backupsPath(e))}>
          {e.database.name}/{e.branch.name}
        </a>
        {e.branch.production && <span class="tag">production</span>}
        <div class="muted small">{e.database.kind === 'mysql' ? 'MySQL/MariaDB' : 'PostgreSQL'}</div>
      </th>
      <td data-label="Status">
        {reasons.length ? (
          <ul class="attention-list">
            {reasons.map((r) => (
              <li key={r}>
                <span class="mark" aria-hidden="true">
                  ●
                </span>{' '}
                {r}
              </li>
            ))}
          </ul>
        ) : (
          <span class="ok">OK</span>
        )}
      </td>
      <td data-label="Last success">
        {e.last_success ? (
          <>
            <Time iso={e.last_success.completed_at} />
            <div class="muted small">{e.last_success_age_seconds === null ? '' : `${formatAge(e.last_success_age_seconds)} ago`}</div>
          </>
        ) : (
          <span class="muted">never</span>
        )}
      </td>
      <td data-label="Last run">
        {last ? (
          <>
            <a href={href(`${backupsPath(e)}/${encodeURIComponent(last.id)}`)}>
              <StateBadge state={last.state} />
            </a>
            <div class="muted small">
              <Time iso={last.completed_at ?? last.created_at} />
              {last.duration_seconds !== null && ` · ${formatDuration(last.duration_seconds)}`}
            </div>
          </>
        ) : (
          <span class="muted">none</span>
        )}
      </td>
      <td data-label="Next run">{e.next_run_at ? <Time iso={e.next_run_at} relative /> : <span class="muted">not scheduled</span>}</td>
      <td data-label="Point-in-time recovery" class="pitr-cell">
        <ArchiveStateView archive={e.archive} compact />
        {e.archive?.enabled && <RecoveryWindowView org={org} database={e.database.name} branch={e.branch.name} />}
      </td>
      <td data-label="Stored" class="num">{formatBytes(e.stored_bytes)}</td>
      <td data-label="Backups" class="num">{e.backup_count}</td>
    </tr>
  );
}

/** Size and duration charts of one branch, fetched once the card is (nearly) visible. */
function BranchCharts({ e, org }: { e: OverviewEntry; org: string }) {
  const ref = useRef<HTMLElement>(null);
  const [visible, setVisible] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (!el || visible) return;
    if (typeof IntersectionObserver === 'undefined') return setVisible(true);
    const io = new IntersectionObserver((es) => es.some((x) => x.isIntersecting) && setVisible(true), { rootMargin: '200px' });
    io.observe(el);
    return () => io.disconnect();
  }, [visible]);
  const history = useApi<{ data: HistoryPoint[] }>(visible ? `${branchApi(org, e.database.name, e.branch.name, 'backup-history')}?days=90` : null);
  const points = history.data?.data ?? [];
  const sizes: ChartPoint[] = points.filter((p) => p.state === 'success').map((p) => ({ x: Date.parse(p.completed_at ?? p.created_at), y: p.size, label: p.name }));
  const durations: ChartPoint[] = points
    .filter((p) => p.duration_seconds !== null)
    .map((p) => ({ x: Date.parse(p.completed_at ?? p.created_at), y: p.duration_seconds!, label: `${p.name} (${p.state})` }));
  return (
    <section class="card chart-card" ref={ref} aria-label={`History of ${e.database.name}/${e.branch.name}`}>
      <h3>
        <a href={href(backupsPath(e))}>
          {e.database.name}/{e.branch.name}
        </a>
      </h3>
      <ErrorBox error={history.error} />
      {!history.data ? (
        <Loading what="Loading the history" />
      ) : (
        <>
          <Chart title="Backup size" points={sizes} format={formatBytes} />
          <Chart title="Backup duration" points={durations} format={formatDuration} />
        </>
      )}
    </section>
  );
}
