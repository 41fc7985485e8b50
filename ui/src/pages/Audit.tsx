/**
 * The organization's audit log: every write request (who, what, when, from where, the
 * answer's status), newest first, a page at a time. The route takes only page and per_page,
 * so those are the page's only controls; both live in the URL.
 */
import { queryString, type List } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { Pager } from '../components/Pager.js';
import { Time } from '../components/Time.js';
import '../components/settings.css';
import { useApi } from '../hooks.js';
import { navigate } from '../router.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

interface AuditEntry {
  id: string;
  actor: { id: string; display_name: string | null } | null;
  method: string;
  route: string;
  path: string;
  status: number;
  remote_address: string | null;
  created_at: string;
}

const SIZES = [25, 50, 100];

export function Audit({ query }: PageProps) {
  const { org } = useApp();
  const page = Math.max(1, Number(query.get('page')) || 1);
  const perPage = SIZES.includes(Number(query.get('per_page'))) ? Number(query.get('per_page')) : 25;
  const list = useApi<List<AuditEntry>>(orgApi(org, 'audit-log') + queryString({ page, per_page: perPage }));
  const go = (p: number, size = perPage) => navigate('/audit', { page: p > 1 ? p : undefined, per_page: size !== 25 ? size : undefined });
  const data = list.data;
  return (
    <>
      <PageHeader title="Audit log">
        <button type="button" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
      </PageHeader>
      <p>Every change made in {org} through the API, the CLI or this dashboard, newest first. Reads are not recorded.</p>
      <div class="field narrow">
        <label for="a-size">Entries per page</label>
        <select id="a-size" value={String(perPage)} onChange={(e) => go(1, Number((e.target as HTMLSelectElement).value))}>
          {SIZES.map((n) => (
            <option key={n} value={String(n)}>
              {n}
            </option>
          ))}
        </select>
      </div>
      <ErrorBox error={list.error} />
      {!data && list.loading && <Loading what="Loading the audit log" />}
      {data && data.data.length === 0 && <p>Nothing has been changed yet.</p>}
      {data && data.data.length > 0 && (
        <div class="table-wrap">
          <table class="stack" id="audit-table" aria-busy={list.loading}>
            <caption class="visually-hidden">Audit log of {org}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Request</th>
                <th scope="col" class="num">
                  Result
                </th>
                <th scope="col">From</th>
              </tr>
            </thead>
            <tbody>
              {data.data.map((e) => (
                <tr key={e.id} data-route={`${e.method} ${e.route}`}>
                  <td data-label="When">
                    <Time iso={e.created_at} />
                  </td>
                  <td data-label="Who">{e.actor ? <span title={`token ${e.actor.id}`}>{e.actor.display_name ?? e.actor.id}</span> : <span class="muted">no token</span>}</td>
                  <th scope="row">
                    <code class="path">
                      {e.method} {e.path}
                    </code>
                  </th>
                  <td data-label="Result" class="num">
                    <span class={e.status >= 400 ? 'attention-text' : 'ok'}>{e.status}</span>
                  </td>
                  <td data-label="From">{e.remote_address ?? <span class="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && <Pager page={data.current_page} totalPages={data.total_pages} total={data.total_count} noun="change" onPage={(p) => go(p)} />}
    </>
  );
}
