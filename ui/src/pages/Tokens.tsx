/**
 * Service tokens of the organization: the list (with each token's accesses on demand), a
 * form to make one with its accesses on the organization, one database or one branch, and
 * delete with confirmation. The new token's secret is shown once, with a Copy button; the
 * server keeps only its hash.
 */
import { useState } from 'preact/hooks';
import { del, post, type Branch, type Database, type List } from '../api.js';
import { can } from '../components/access.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { ErrorBox } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { SecretOnce } from '../components/SecretOnce.js';
import { Time } from '../components/Time.js';
import '../components/settings.css';
import { fromLocalInput } from '../format.js';
import { useApi } from '../hooks.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

interface Token {
  id: string;
  name: string;
  /** The secret: only in the answer that created the token. */
  token?: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
}

interface TokenAccess {
  access: string;
  resource_type: 'organization' | 'database' | 'branch';
  resource_id: string;
}

/**
 * The accesses a token can hold, as the API names them (src/catalog/tokens.ts ALL_ACCESSES;
 * the browser test checks that this list is the API's), with what each allows.
 */
export const ACCESSES: Array<[string, string]> = [
  ['read_backups', 'see backups, policies and their progress'],
  ['write_backups', 'start backups, change policies, verify, protect'],
  ['delete_backups', 'delete backups of development branches'],
  ['delete_production_branch_backups', 'delete backups of production branches'],
  ['restore_backup', 'restore backups of development branches'],
  ['restore_production_branch_backup', 'restore backups of production branches'],
  ['read_databases', 'see databases'],
  ['write_databases', 'register and change databases'],
  ['read_branches', 'see branches'],
  ['write_branches', 'register and change branches (connection URLs)'],
  ['read_organization', 'see destinations, tokens, webhooks, the audit log'],
  ['write_organization', 'change destinations, tokens, webhooks'],
];

export function Tokens(_: PageProps) {
  const app = useApp();
  const base = orgApi(app.org, 'service-tokens');
  const list = useApi<List<Token>>(`${base}?per_page=100`);
  const databases = useApi<List<Database>>(`${orgApi(app.org, 'databases')}?per_page=100`);
  const writable = can(app, 'write_organization');
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<Created | null>(null);
  const [deleting, setDeleting] = useState<Token | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [status, setStatus] = useState('');
  const me = app.session.token.id;

  async function remove(t: Token) {
    setDeleting(null);
    setError(undefined);
    try {
      await del(`${base}/${encodeURIComponent(t.id)}`);
      setStatus(`Token ${t.name} deleted: it no longer works anywhere.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  const dbNames = new Map((databases.data?.data ?? []).map((d) => [d.id, d.name]));
  const rows = list.data?.data ?? [];
  return (
    <>
      <PageHeader title="Service tokens">
        {writable && !creating && (
          <button
            type="button"
            class="primary"
            onClick={() => {
              setCreated(null);
              setCreating(true);
            }}
          >
            New token
          </button>
        )}
      </PageHeader>
      <p>A token is how scripts, the CLI and this dashboard sign in. It can do exactly what its accesses allow, on the organization, one database or one branch.</p>
      {!writable && <p class="muted">This token can look but not make or delete tokens (that needs the write_organization access).</p>}
      <p class="status-line" role="status">
        {status}
      </p>
      <ErrorBox error={error ?? list.error} />
      {created && (
        <SecretOnce
          title={`Token ${created.name} is ready`}
          secret={created.credential}
          hint="Use it as the Authorization header (Authorization: id:secret), as STRONGBOX_TOKEN for the CLI, or to sign in here."
          onDone={() => setCreated(null)}
        />
      )}
      {creating && (
        <TokenForm
          base={base}
          databases={databases.data?.data ?? []}
          onDone={(result) => {
            setCreating(false);
            if (result) {
              setCreated(result);
              setError(result.grantError);
              list.reload();
            }
          }}
        />
      )}
      {!list.data && list.loading && <Loading what="Loading the tokens" />}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="stack" id="tokens-table">
            <caption class="visually-hidden">Service tokens</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">Accesses</th>
                {writable && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <tr key={t.id} data-token={t.id}>
                  <th scope="row">
                    {t.name}
                    {t.id === me && <span class="tag">this session</span>}
                  </th>
                  <td data-label="Id">
                    <code>{t.id}</code>
                  </td>
                  <td data-label="Created">
                    <Time iso={t.created_at} />
                  </td>
                  <td data-label="Last used">
                    <Time iso={t.last_used_at} relative />
                  </td>
                  <td data-label="Expires">{t.expires_at ? <Time iso={t.expires_at} relative /> : <span class="muted">never</span>}</td>
                  <td data-label="Accesses">
                    <AccessList path={`${base}/${encodeURIComponent(t.id)}/accesses`} dbNames={dbNames} orgName={app.org} />
                  </td>
                  {writable && (
                    <td data-label="Actions">
                      <button type="button" class="danger" onClick={() => setDeleting(t)} aria-label={`Delete ${t.name}`}>
                        Delete
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog open={deleting !== null} title="Delete this token?" confirmLabel="Delete token" onCancel={() => setDeleting(null)} onConfirm={() => deleting && remove(deleting)}>
        <p>
          Everything that uses {deleting?.name} (<code>{deleting?.id}</code>) stops working at once.
          {deleting?.id === me && <strong> It is the token of this session: you will be signed out.</strong>} This cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

/** A token's accesses, loaded when opened. */
function AccessList({ path, dbNames, orgName }: { path: string; dbNames: Map<string, string>; orgName: string }) {
  const [open, setOpen] = useState(false);
  const data = useApi<{ data: TokenAccess[] }>(open ? path : null);
  const on = (a: TokenAccess) => (a.resource_type === 'organization' ? `organization ${orgName}` : a.resource_type === 'database' ? `database ${dbNames.get(a.resource_id) ?? a.resource_id}` : `branch ${a.resource_id}`);
  return (
    <details onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>Show</summary>
      {data.loading && <Loading what="Loading" />}
      <ErrorBox error={data.error} />
      {data.data && (data.data.data.length === 0 ? <p class="muted">none</p> : (
        <ul class="copies">
          {data.data.data.map((a) => (
            <li key={`${a.access} ${a.resource_id}`}>
              <code>{a.access}</code> <span class="muted small">on {on(a)}</span>
            </li>
          ))}
        </ul>
      ))}
    </details>
  );
}

interface Created {
  credential: string;
  name: string;
  /** The token was made but its accesses were not granted. */
  grantError?: Error;
}

function TokenForm({ base, databases, onDone }: { base: string; databases: Database[]; onDone: (created: Created | null) => void }) {
  const { org } = useApp();
  const [name, setName] = useState('');
  const [expires, setExpires] = useState('');
  const [scope, setScope] = useState<'organization' | 'database' | 'branch'>('organization');
  const [database, setDatabase] = useState('');
  const [branch, setBranch] = useState('');
  const [chosen, setChosen] = useState<Set<string>>(new Set(['read_backups']));
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const branches = useApi<List<Branch>>(scope === 'branch' && database ? `${orgApi(org, 'databases', database, 'branches')}?per_page=100` : null);

  const toggle = (a: string) => {
    const next = new Set(chosen);
    if (next.has(a)) next.delete(a);
    else next.add(a);
    setChosen(next);
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const expiresAt = fromLocalInput(expires);
    let made: Token;
    try {
      made = await post<Token>(base, { name: name.trim(), ...(expiresAt ? { expires_at: expiresAt } : {}) });
    } catch (err) {
      setError(err);
      setBusy(false);
      return;
    }
    const credential = `${made.id}:${made.token ?? ''}`;
    if (chosen.size > 0) {
      try {
        await post(`${base}/${encodeURIComponent(made.id)}/accesses`, {
          accesses: ACCESSES.map(([a]) => a).filter((a) => chosen.has(a)),
          ...(scope !== 'organization' ? { database } : {}),
          ...(scope === 'branch' ? { branch } : {}),
        });
      } catch (err) {
        // The token exists: show its secret anyway (it is the only chance) and say what failed.
        onDone({ credential, name: made.name, grantError: new Error(`The token was made, but granting its accesses failed: ${err instanceof Error ? err.message : String(err)}. Grant them again with the API, or delete the token.`) });
        return;
      }
    }
    onDone({ credential, name: made.name });
  }

  return (
    <form class="card" onSubmit={submit} aria-busy={busy} aria-labelledby="token-form-h" autoComplete="off">
      <h2 id="token-form-h">New token</h2>
      <div class="form-row">
        <div class="field">
          <label for="tf-name">Name</label>
          <input id="tf-name" required maxLength={100} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="nightly-script" />
        </div>
        <div class="field">
          <label for="tf-expires">Expires (optional)</label>
          <input id="tf-expires" type="datetime-local" value={expires} onInput={(e) => setExpires((e.target as HTMLInputElement).value)} />
        </div>
      </div>
      <fieldset>
        <legend>Accesses on</legend>
        <div class="form-row">
          <div class="field">
            <label for="tf-scope">Resource</label>
            <select id="tf-scope" value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value as typeof scope)}>
              <option value="organization">the whole organization</option>
              <option value="database">one database</option>
              <option value="branch">one branch</option>
            </select>
          </div>
          {scope !== 'organization' && (
            <div class="field">
              <label for="tf-db">Database</label>
              <select id="tf-db" required value={database} onChange={(e) => setDatabase((e.target as HTMLSelectElement).value)}>
                <option value="">Choose…</option>
                {databases.map((d) => (
                  <option key={d.id} value={d.name}>
                    {d.name}
                  </option>
                ))}
              </select>
            </div>
          )}
          {scope === 'branch' && (
            <div class="field">
              <label for="tf-branch">Branch</label>
              <select id="tf-branch" required value={branch} disabled={!database} onChange={(e) => setBranch((e.target as HTMLSelectElement).value)}>
                <option value="">Choose…</option>
                {(branches.data?.data ?? []).map((b) => (
                  <option key={b.id} value={b.name}>
                    {b.name}
                  </option>
                ))}
              </select>
            </div>
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Accesses</legend>
        <div class="check-grid" id="token-accesses">
          {ACCESSES.map(([a, what]) => (
            <label class="inline-check" key={a}>
              <input type="checkbox" name="access" value={a} checked={chosen.has(a)} onChange={() => toggle(a)} />
              <span>
                <code>{a}</code> <span class="muted small">{what}</span>
              </span>
            </label>
          ))}
        </div>
        <div class="actions">
          <button type="button" onClick={() => setChosen(new Set(ACCESSES.map(([a]) => a).filter((a) => a.startsWith('read_'))))}>
            Read only
          </button>
          <button type="button" onClick={() => setChosen(new Set(ACCESSES.map(([a]) => a)))}>
            All
          </button>
          <button type="button" onClick={() => setChosen(new Set())}>
            None
          </button>
        </div>
      </fieldset>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create token'}
        </button>
        <button type="button" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
