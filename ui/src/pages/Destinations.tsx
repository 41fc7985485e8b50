/**
 * Storage destinations of the organization: the list with a Test button (the same probe as
 * at creation: write, read back, delete a small object), forms to add a local folder, an
 * S3-compatible bucket or a Google Drive folder, to edit one, and delete with confirmation.
 *
 * Secrets are write-only: the API shows them as "[redacted]" and the forms never show even
 * that; an edit sends "[redacted]" back for every secret left empty, which the API reads as
 * "keep the stored value".
 */
import { useState } from 'preact/hooks';
import { del, patch, post, type List } from '../api.js';
import { can } from '../components/access.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { ErrorBox, errorText } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { Time } from '../components/Time.js';
import '../components/settings.css';
import { useApi } from '../hooks.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

type Provider = 'local' | 's3' | 'google_drive';

interface Destination {
  id: string;
  name: string;
  provider: Provider;
  config: Record<string, unknown>;
  default: boolean;
  created_at: string;
  updated_at: string;
}

interface TestResult {
  ok: boolean;
  duration_ms: number;
  error?: string;
}

/** What the API shows (and takes back, meaning "keep") in place of a secret. */
const REDACTED = '[redacted]';
const PROVIDERS: Record<Provider, string> = { local: 'Local folder', s3: 'S3-compatible bucket', google_drive: 'Google Drive folder' };

/** Where a destination writes, in a line (never a secret: those are not in the config we get). */
function whereOf(d: Destination): string {
  const c = d.config;
  if (d.provider === 'local') return String(c.path ?? '');
  if (d.provider === 's3') return `${c.endpoint ? `${String(c.endpoint)} ` : ''}bucket ${String(c.bucket ?? '')}${c.prefix ? `/${String(c.prefix)}` : ''}${c.region ? ` (${String(c.region)})` : ''}`;
  return `folder ${String(c.folder_id ?? '')}`;
}

export function Destinations(_: PageProps) {
  const app = useApp();
  const base = orgApi(app.org, 'storage-destinations');
  const list = useApi<List<Destination>>(`${base}?per_page=100`);
  const writable = can(app, 'write_organization');
  const [editing, setEditing] = useState<Destination | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Destination | null>(null);
  const [tests, setTests] = useState<Record<string, TestResult | 'running' | { failed: string }>>({});
  const [error, setError] = useState<unknown>(undefined);
  const [status, setStatus] = useState('');

  async function test(d: Destination) {
    setTests((t) => ({ ...t, [d.name]: 'running' }));
    try {
      const r = await post<TestResult>(`${base}/${encodeURIComponent(d.name)}/test`);
      setTests((t) => ({ ...t, [d.name]: r }));
    } catch (e) {
      setTests((t) => ({ ...t, [d.name]: { failed: errorText(e) } }));
    }
  }

  async function remove(d: Destination) {
    setDeleting(null);
    setError(undefined);
    try {
      await del(`${base}/${encodeURIComponent(d.name)}`);
      setStatus(`Destination ${d.name} removed.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  const rows = list.data?.data ?? [];
  return (
    <>
      <PageHeader title="Storage destinations">
        {writable && editing === null && (
          <button type="button" class="primary" onClick={() => setEditing('new')}>
            Add destination
          </button>
        )}
      </PageHeader>
      <p>Where backups are stored. Every backup is written to each of its database's destinations (or to the default ones) in one pass.</p>
      {!writable && <p class="muted">This token can look but not change destinations (that needs the write_organization access).</p>}
      <p class="status-line" role="status">
        {status}
      </p>
      <ErrorBox error={error ?? list.error} />
      {editing !== null && (
        <DestinationForm
          key={editing === 'new' ? 'new' : editing.id}
          base={base}
          existing={editing === 'new' ? null : editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              setStatus(`Destination ${saved.name} saved: Strongbox wrote, read back and deleted a test object there.`);
              setTests(({ [saved.name]: _stale, ...rest }) => rest);
              list.reload();
            }
          }}
        />
      )}
      {!list.data && list.loading && <Loading what="Loading the destinations" />}
      {list.data && rows.length === 0 && <p>No destinations.</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="stack" id="destinations-table">
            <caption class="visually-hidden">Storage destinations</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Where</th>
                <th scope="col">Changed</th>
                <th scope="col">Test</th>
                {writable && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => {
                const t = tests[d.name];
                return (
                  <tr key={d.id} data-destination={d.name}>
                    <th scope="row">
                      {d.name}
                      {d.default && <span class="tag">default</span>}
                    </th>
                    <td data-label="Kind">{PROVIDERS[d.provider] ?? d.provider}</td>
                    <td data-label="Where" class="path">{whereOf(d)}</td>
                    <td data-label="Changed">
                      <Time iso={d.updated_at} />
                    </td>
                    <td data-label="Test">
                      {writable && (
                        <button type="button" onClick={() => test(d)} disabled={t === 'running'} aria-label={`Test ${d.name}`}>
                          {t === 'running' ? 'Testing…' : 'Test'}
                        </button>
                      )}
                      <div aria-live="polite">
                        {t && t !== 'running' && 'ok' in t && (
                          <p class={`test-result ${t.ok ? 'passed' : 'failed'}`}>
                            {t.ok ? `✓ Works (write, read back, delete in ${t.duration_ms} ms)` : `✗ ${t.error ?? 'failed'}`}
                          </p>
                        )}
                        {t && t !== 'running' && 'failed' in t && <p class="test-result failed">✗ {t.failed}</p>}
                      </div>
                    </td>
                    {writable && (
                      <td data-label="Actions">
                        <div class="row-actions">
                          <button type="button" onClick={() => setEditing(d)} aria-label={`Edit ${d.name}`}>
                            Edit
                          </button>
                          <button type="button" class="danger" onClick={() => setDeleting(d)} aria-label={`Delete ${d.name}`}>
                            Delete
                          </button>
                        </div>
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog open={deleting !== null} title="Remove this destination?" confirmLabel="Remove destination" onCancel={() => setDeleting(null)} onConfirm={() => deleting && remove(deleting)}>
        <p>
          Strongbox forgets {deleting?.name} ({deleting ? whereOf(deleting) : ''}). It refuses while a live backup still has a copy there or a database writes there. Files already there are not touched.
        </p>
      </ConfirmDialog>
    </>
  );
}

/** The form's fields; secrets start empty ("keep" on an edit). */
interface Form {
  name: string;
  provider: Provider;
  isDefault: boolean;
  path: string;
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  force_path_style: boolean;
  access_key_id: string;
  secret_access_key: string;
  session_token: string;
  folder_id: string;
  cred_type: 'oauth' | 'service_account';
  client_id: string;
  client_secret: string;
  refresh_token: string;
  service_account_json: string;
}

function formOf(d: Destination | null): Form {
  const c = d?.config ?? {};
  const s = (k: string) => (typeof c[k] === 'string' && c[k] !== REDACTED ? (c[k] as string) : '');
  const creds = (typeof c.credentials === 'object' && c.credentials !== null ? c.credentials : {}) as Record<string, unknown>;
  return {
    name: d?.name ?? '',
    provider: d?.provider ?? 'local',
    isDefault: d?.default ?? false,
    path: s('path'),
    endpoint: s('endpoint'),
    region: s('region'),
    bucket: s('bucket'),
    prefix: s('prefix'),
    force_path_style: c.force_path_style === true,
    access_key_id: '',
    secret_access_key: '',
    session_token: '',
    folder_id: s('folder_id'),
    cred_type: creds.type === 'service_account' ? 'service_account' : 'oauth',
    client_id: typeof creds.client_id === 'string' && creds.client_id !== REDACTED ? creds.client_id : '',
    client_secret: '',
    refresh_token: '',
    service_account_json: '',
  };
}

/**
 * The configuration to send: on an edit, the stored one (redacted) with the form's plain
 * fields over it, and each secret either re-entered or "[redacted]" (keep).
 */
function configOf(f: Form, existing: Destination | null): Record<string, unknown> {
  const old = existing?.config ?? {};
  const optional = (v: string) => (v.trim() === '' ? undefined : v.trim());
  const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  switch (f.provider) {
    case 'local':
      return { path: f.path.trim() };
    case 's3': {
      const keep = (k: string) => (old[k] === REDACTED ? REDACTED : undefined);
      const newKeys = f.access_key_id.trim() !== '' || f.secret_access_key !== '';
      return clean({
        ...old,
        endpoint: optional(f.endpoint),
        region: optional(f.region),
        bucket: f.bucket.trim(),
        prefix: optional(f.prefix),
        force_path_style: f.force_path_style,
        // Both keys re-entered, or both kept.
        access_key_id: newKeys ? optional(f.access_key_id) : keep('access_key_id'),
        secret_access_key: newKeys ? f.secret_access_key || undefined : keep('secret_access_key'),
        session_token: f.session_token !== '' ? f.session_token : newKeys ? undefined : keep('session_token'),
      });
    }
    case 'google_drive': {
      let credentials: unknown;
      if (f.cred_type === 'service_account' && f.service_account_json.trim() !== '') {
        try {
          const key = JSON.parse(f.service_account_json) as Record<string, unknown>;
          credentials = { type: 'service_account', client_email: key.client_email, private_key: key.private_key, ...(key.token_uri ? { token_uri: key.token_uri } : {}) };
        } catch {
          throw new Error('The service account key is not valid JSON: paste the whole key file Google gave you.');
        }
      } else if (f.cred_type === 'oauth' && (f.client_secret !== '' || f.refresh_token !== '')) {
        credentials = { type: 'oauth', client_id: f.client_id.trim(), client_secret: f.client_secret, refresh_token: f.refresh_token };
      } else if (existing) {
        credentials = REDACTED; // keep the stored credentials
      } else {
        credentials = f.cred_type === 'oauth' ? { type: 'oauth', client_id: f.client_id.trim(), client_secret: '', refresh_token: '' } : undefined;
      }
      const { credentials: _old, ...rest } = old;
      return clean({ ...rest, folder_id: f.folder_id.trim(), credentials });
    }
  }
}

function DestinationForm({ base, existing, onDone }: { base: string; existing: Destination | null; onDone: (saved: Destination | null) => void }) {
  const [f, setF] = useState<Form>(formOf(existing));
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof Form) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setF({ ...f, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const keepHint = existing ? 'Set. Leave empty to keep it; type a new one to replace it.' : undefined;
  const hasSecret = (k: string) => existing?.config[k] === REDACTED;

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const config = configOf(f, existing);
      const saved = existing
        ? await patch<Destination>(`${base}/${encodeURIComponent(existing.name)}`, { config, default: f.isDefault })
        : await post<Destination>(base, { name: f.name.trim(), provider: f.provider, config, default: f.isDefault });
      // Nothing secret stays in the page once it is sent.
      setF(formOf(saved));
      onDone(saved);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} aria-busy={busy} aria-labelledby="dest-form-h" autoComplete="off">
      <h2 id="dest-form-h">{existing ? `Edit ${existing.name}` : 'Add a destination'}</h2>
      <div class="form-row">
        {!existing && (
          <div class="field">
            <label for="df-name">Name</label>
            <input id="df-name" required maxLength={63} value={f.name} onInput={set('name')} aria-describedby="df-name-hint" />
            <p class="hint" id="df-name-hint">
              Lower-case letters, digits, "-" and "_".
            </p>
          </div>
        )}
        <div class="field">
          <label for="df-provider">Kind</label>
          <select id="df-provider" value={f.provider} onChange={set('provider')} disabled={existing !== null}>
            {(Object.keys(PROVIDERS) as Provider[]).map((p) => (
              <option key={p} value={p}>
                {PROVIDERS[p]}
              </option>
            ))}
          </select>
        </div>
      </div>
      {f.provider === 'local' && (
        <div class="field">
          <label for="df-path">Folder</label>
          <input id="df-path" required value={f.path} onInput={set('path')} placeholder="/srv/backups/strongbox" aria-describedby="df-path-hint" />
          <p class="hint" id="df-path-hint">
            An absolute path on the Strongbox server, under its data directory's backups folder or a root in STRONGBOX_LOCAL_ROOTS.
          </p>
        </div>
      )}
      {f.provider === 's3' && (
        <>
          <div class="form-row">
            <div class="field">
              <label for="df-bucket">Bucket</label>
              <input id="df-bucket" required value={f.bucket} onInput={set('bucket')} />
            </div>
            <div class="field">
              <label for="df-prefix">Prefix (optional)</label>
              <input id="df-prefix" value={f.prefix} onInput={set('prefix')} placeholder="strongbox" />
            </div>
            <div class="field">
              <label for="df-region">Region</label>
              <input id="df-region" value={f.region} onInput={set('region')} placeholder="us-east-1" />
            </div>
          </div>
          <div class="field">
            <label for="df-endpoint">Endpoint (S3-compatible services only)</label>
            <input id="df-endpoint" type="url" value={f.endpoint} onInput={set('endpoint')} placeholder="https://minio.example.com" aria-describedby="df-endpoint-hint" />
            <p class="hint" id="df-endpoint-hint">
              Empty for AWS S3 itself. MinIO, Ceph, R2 and most others also need path-style addressing.
            </p>
          </div>
          <label class="inline-check">
            <input type="checkbox" checked={f.force_path_style} onChange={set('force_path_style')} /> Path-style addressing (endpoint/bucket)
          </label>
          <fieldset>
            <legend>Credentials</legend>
            <p class="hint">{existing && hasSecret('secret_access_key') ? 'Stored credentials are kept unless you enter both keys again.' : 'Leave both empty to use the server’s own AWS credentials (environment, instance role).'}</p>
            <div class="form-row">
              <div class="field">
                <label for="df-akid">Access key id</label>
                <input id="df-akid" value={f.access_key_id} onInput={set('access_key_id')} placeholder={hasSecret('access_key_id') ? 'set (hidden)' : ''} spellcheck={false} />
              </div>
              <div class="field">
                <label for="df-secret">Secret access key</label>
                <input id="df-secret" type="password" autoComplete="new-password" value={f.secret_access_key} onInput={set('secret_access_key')} placeholder={hasSecret('secret_access_key') ? 'set (hidden)' : ''} />
              </div>
              <div class="field">
                <label for="df-session">Session token (optional)</label>
                <input id="df-session" type="password" autoComplete="new-password" value={f.session_token} onInput={set('session_token')} placeholder={hasSecret('session_token') ? 'set (hidden)' : ''} />
              </div>
            </div>
          </fieldset>
        </>
      )}
      {f.provider === 'google_drive' && (
        <>
          <div class="field">
            <label for="df-folder">Drive folder id</label>
            <input id="df-folder" required value={f.folder_id} onInput={set('folder_id')} aria-describedby="df-folder-hint" spellcheck={false} />
            <p class="hint" id="df-folder-hint">
              The last part of the folder's address (drive.google.com/drive/folders/<strong>this</strong>).
            </p>
          </div>
          <fieldset>
            <legend>Credentials</legend>
            {existing && <p class="hint">{keepHint}</p>}
            <div class="field">
              <label for="df-credtype">Sign in as</label>
              <select id="df-credtype" value={f.cred_type} onChange={set('cred_type')}>
                <option value="oauth">an OAuth client with a refresh token</option>
                <option value="service_account">a service account</option>
              </select>
            </div>
            {f.cred_type === 'oauth' ? (
              <div class="form-row">
                <div class="field">
                  <label for="df-cid">Client id</label>
                  <input id="df-cid" value={f.client_id} onInput={set('client_id')} spellcheck={false} />
                </div>
                <div class="field">
                  <label for="df-csecret">Client secret</label>
                  <input id="df-csecret" type="password" autoComplete="new-password" value={f.client_secret} onInput={set('client_secret')} placeholder={existing ? 'set (hidden)' : ''} />
                </div>
                <div class="field">
                  <label for="df-refresh">Refresh token</label>
                  <input id="df-refresh" type="password" autoComplete="new-password" value={f.refresh_token} onInput={set('refresh_token')} placeholder={existing ? 'set (hidden)' : ''} />
                </div>
              </div>
            ) : (
              <div class="field">
                <label for="df-sa">Service account key (JSON)</label>
                <textarea id="df-sa" rows={5} value={f.service_account_json} onInput={set('service_account_json')} placeholder={existing ? 'set (hidden): paste a key to replace it' : '{"type": "service_account", "client_email": …, "private_key": …}'} spellcheck={false} />
              </div>
            )}
          </fieldset>
        </>
      )}
      <label class="inline-check">
        <input type="checkbox" checked={f.isDefault} onChange={set('isDefault')} /> Default: used by every database that does not choose its own destinations
      </label>
      <p class="hint">Saving first writes, reads back and deletes a small test object there; a destination that does not work is not saved.</p>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking and saving…' : existing ? 'Save changes' : 'Add destination'}
        </button>
        <button type="button" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
