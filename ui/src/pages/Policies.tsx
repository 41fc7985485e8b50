/**
 * Backup policies of a database: the list, a form to create or edit one (PlanetScale's
 * policy fields plus the restore-drill settings) with the server's plain-words preview of
 * the schedule and its next five runs as the fields change, and delete (required policies
 * can be edited but not deleted, as the API says). The database is in the URL.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, patch, post, type Database, type List } from '../api.js';
import { can } from '../components/access.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { ErrorBox, errorText } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { Time } from '../components/Time.js';
import '../components/settings.css';
import { formatRelative, plural } from '../format.js';
import { useApi } from '../hooks.js';
import { navigate } from '../router.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

export interface Policy {
  id: string;
  name: string;
  display_name: string;
  target: 'production' | 'development';
  retention_value: number;
  retention_unit: string;
  frequency_value: number;
  frequency_unit: string;
  schedule_time: string;
  schedule_day: number | null;
  schedule_week: number | null;
  created_at: string;
  updated_at: string;
  last_ran_at: string | null;
  next_run_at: string | null;
  required: boolean;
  verify_every: number | null;
  verification_frequency_value: number | null;
  verification_frequency_unit: string | null;
}

interface Preview {
  description: string;
  next_runs: string[];
}

const FREQUENCY_UNITS = ['hour', 'day', 'week', 'month'];
const RETENTION_UNITS = ['hour', 'day', 'week', 'month', 'year'];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const WINDOWS = ['1st–7th (first)', '8th–14th (second)', '15th–21st (third)', '22nd–28th (fourth)'];

/** The form's fields as the inputs hold them (strings; "" for an empty optional one). */
interface Form {
  name: string;
  display_name: string;
  target: string;
  frequency_value: string;
  frequency_unit: string;
  schedule_time: string;
  schedule_day: string;
  schedule_week: string;
  retention_value: string;
  retention_unit: string;
  verify_every: string;
  verification_frequency_value: string;
  verification_frequency_unit: string;
}

const EMPTY: Form = {
  name: '',
  display_name: '',
  target: 'production',
  frequency_value: '1',
  frequency_unit: 'day',
  schedule_time: '02:00',
  schedule_day: '',
  schedule_week: '',
  retention_value: '7',
  retention_unit: 'day',
  verify_every: '',
  verification_frequency_value: '',
  verification_frequency_unit: '',
};

const str = (v: number | string | null) => (v === null ? '' : String(v));

function formOf(p: Policy): Form {
  return {
    name: p.name,
    display_name: p.display_name === p.name ? '' : p.display_name,
    target: p.target,
    frequency_value: str(p.frequency_value),
    frequency_unit: p.frequency_unit,
    schedule_time: p.schedule_time,
    schedule_day: str(p.schedule_day),
    schedule_week: str(p.schedule_week),
    retention_value: str(p.retention_value),
    retention_unit: p.retention_unit,
    verify_every: str(p.verify_every),
    verification_frequency_value: str(p.verification_frequency_value),
    verification_frequency_unit: p.verification_frequency_unit ?? '',
  };
}

const int = (s: string) => (s.trim() === '' ? null : Number(s));

/** The schedule fields as the API takes them (day and week only where the unit uses them). */
function scheduleOf(f: Form) {
  const weekly = f.frequency_unit === 'week' || f.frequency_unit === 'month';
  return {
    frequency_value: Number(f.frequency_value),
    frequency_unit: f.frequency_unit,
    schedule_time: f.schedule_time,
    schedule_day: weekly ? int(f.schedule_day) : null,
    schedule_week: f.frequency_unit === 'month' ? int(f.schedule_week) : null,
  };
}

function bodyOf(f: Form) {
  const drill = int(f.verification_frequency_value);
  return {
    name: f.name.trim(),
    ...(f.display_name.trim() ? { display_name: f.display_name.trim() } : {}),
    target: f.target,
    ...scheduleOf(f),
    retention_value: Number(f.retention_value),
    retention_unit: f.retention_unit,
    verify_every: int(f.verify_every),
    verification_frequency_value: drill,
    verification_frequency_unit: drill === null ? null : f.verification_frequency_unit || null,
  };
}

/** "every 1 day at 02:00": a compact schedule for the list (the form shows the server's own words). */
function scheduleShort(p: Policy): string {
  const every = p.frequency_value === 1 ? `every ${p.frequency_unit}` : `every ${plural(p.frequency_value, p.frequency_unit)}`;
  const on =
    p.frequency_unit === 'week' && p.schedule_day !== null
      ? ` on ${WEEKDAYS[p.schedule_day]}`
      : p.frequency_unit === 'month'
        ? ` in days ${WINDOWS[p.schedule_week ?? 0].split(' ')[0]}${p.schedule_day !== null ? `, ${WEEKDAYS[p.schedule_day]}` : ''}`
        : '';
  return `${every}${on} at ${p.schedule_time} UTC`;
}

/** 2nd, 3rd, 11th, 21st. */
function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

function drillShort(p: Policy): string {
  const parts: string[] = [];
  if (p.verify_every !== null) parts.push(p.verify_every === 1 ? 'every backup' : `every ${ordinal(p.verify_every)} backup`);
  if (p.verification_frequency_value !== null && p.verification_frequency_unit) parts.push(`at least once per ${plural(p.verification_frequency_value, p.verification_frequency_unit)}`);
  return parts.length ? parts.join(', ') : 'off';
}

export function Policies({ query }: PageProps) {
  const app = useApp();
  const { org } = app;
  const databases = useApi<List<Database>>(`${orgApi(org, 'databases')}?per_page=100`);
  const dbs = databases.data?.data ?? [];
  const database = query.get('database') ?? '';
  // One database: show it without asking.
  useEffect(() => {
    if (!database && dbs.length > 0) navigate('/policies', { database: dbs[0].name });
  }, [databases.data]);
  const current = dbs.find((d) => d.name === database);

  return (
    <>
      <PageHeader title="Backup policies" />
      <p>A policy backs up every branch of its target (production or development) of a database on a schedule, keeps each backup for its retention, and can prove the backups restore with drills.</p>
      <ErrorBox error={databases.error} />
      {!databases.data && databases.loading && <Loading what="Loading the databases" />}
      {databases.data && dbs.length === 0 && <p>No databases yet: register one with the API or the CLI first.</p>}
      {dbs.length > 0 && (
        <div class="field narrow">
          <label for="p-db">Database</label>
          <select id="p-db" value={database} onChange={(e) => navigate('/policies', { database: (e.target as HTMLSelectElement).value })}>
            {!current && <option value="">Choose…</option>}
            {dbs.map((d) => (
              <option key={d.id} value={d.name}>
                {d.name}
              </option>
            ))}
          </select>
        </div>
      )}
      {current && <PolicyList key={current.name} database={current} writable={can(app, 'write_backups', { databaseId: current.id })} />}
    </>
  );
}

function PolicyList({ database, writable }: { database: Database; writable: boolean }) {
  const { org } = useApp();
  const base = orgApi(org, 'databases', database.name, 'backup-policies');
  const list = useApi<List<Policy>>(`${base}?per_page=100`);
  // null: no form; "new": a new policy; otherwise the policy being edited.
  const [editing, setEditing] = useState<Policy | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Policy | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [status, setStatus] = useState('');

  async function remove(p: Policy) {
    setDeleting(null);
    setError(undefined);
    try {
      await del(`${base}/${encodeURIComponent(p.id)}`);
      setStatus(`Policy ${p.display_name} deleted.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  const policies = list.data?.data ?? [];
  return (
    <section aria-labelledby="policies-h">
      <div class="page-header">
        <h2 id="policies-h">Policies of {database.name}</h2>
        {writable && editing === null && (
          <button type="button" class="primary" onClick={() => setEditing('new')}>
            New policy
          </button>
        )}
      </div>
      {!writable && <p class="muted">This token cannot change the policies of {database.name} (that needs the write_backups access).</p>}
      <p class="status-line" role="status">
        {status}
      </p>
      <ErrorBox error={error ?? list.error} />
      {editing !== null && (
        <PolicyForm
          key={editing === 'new' ? 'new' : editing.id}
          base={base}
          policy={editing === 'new' ? null : editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              setStatus(`Policy ${saved.display_name} saved; next run ${saved.next_run_at ? formatRelative(saved.next_run_at) : 'not scheduled'}.`);
              list.reload();
            }
          }}
        />
      )}
      {!list.data && list.loading && <Loading what="Loading the policies" />}
      {list.data && policies.length === 0 && <p>No policies: {database.name} is backed up only when someone asks.</p>}
      {policies.length > 0 && (
        <div class="table-wrap">
          <table class="stack" id="policies-table">
            <caption class="visually-hidden">Backup policies of {database.name}</caption>
            <thead>
              <tr>
                <th scope="col">Policy</th>
                <th scope="col">Target</th>
                <th scope="col">Schedule</th>
                <th scope="col">Kept for</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col">Restore drills</th>
                {writable && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {policies.map((p) => (
                <tr key={p.id} data-policy={p.name}>
                  <th scope="row">
                    {p.display_name}
                    {p.required && <span class="tag">required</span>}
                    {p.display_name !== p.name && <div class="muted small">{p.name}</div>}
                  </th>
                  <td data-label="Target">{p.target}</td>
                  <td data-label="Schedule">{scheduleShort(p)}</td>
                  <td data-label="Kept for">{plural(p.retention_value, p.retention_unit)}</td>
                  <td data-label="Next run">
                    <Time iso={p.next_run_at} relative />
                  </td>
                  <td data-label="Last run">
                    <Time iso={p.last_ran_at} />
                  </td>
                  <td data-label="Restore drills">{drillShort(p)}</td>
                  {writable && (
                    <td data-label="Actions">
                      <div class="row-actions">
                        <button type="button" onClick={() => setEditing(p)} aria-label={`Edit ${p.display_name}`}>
                          Edit
                        </button>
                        {!p.required && (
                          <button type="button" class="danger" onClick={() => setDeleting(p)} aria-label={`Delete ${p.display_name}`}>
                            Delete
                          </button>
                        )}
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog open={deleting !== null} title="Delete this policy?" confirmLabel="Delete policy" onCancel={() => setDeleting(null)} onConfirm={() => deleting && remove(deleting)}>
        <p>
          {deleting?.display_name} stops running. The backups it made stay, each until its own expiry. This cannot be undone (a new policy can be made).
        </p>
      </ConfirmDialog>
    </section>
  );
}

function PolicyForm({ base, policy, onDone }: { base: string; policy: Policy | null; onDone: (saved: Policy | null) => void }) {
  const [f, setF] = useState<Form>(policy ? formOf(policy) : EMPTY);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [previewError, setPreviewError] = useState<string | null>(null);

  const set = (k: keyof Form) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const schedule = scheduleOf(f);
  const previewKey = JSON.stringify([schedule, f.retention_value, f.retention_unit]);

  // Ask the server how the schedule reads, a moment after the last change.
  useEffect(() => {
    let stale = false;
    const timer = window.setTimeout(async () => {
      try {
        const p = await post<Preview>(`${base}/preview`, { ...schedule, ...(f.retention_value.trim() ? { retention_value: Number(f.retention_value), retention_unit: f.retention_unit } : {}) });
        if (!stale) {
          setPreview(p);
          setPreviewError(null);
        }
      } catch (e) {
        if (stale) return;
        setPreview(null);
        setPreviewError(e instanceof ApiError && e.status === 404 ? 'The server cannot preview schedules (it is older than this dashboard).' : errorText(e));
      }
    }, 250);
    return () => {
      stale = true;
      window.clearTimeout(timer);
    };
  }, [previewKey]);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = bodyOf(f);
      const saved = policy ? await patch<Policy>(`${base}/${encodeURIComponent(policy.id)}`, body) : await post<Policy>(base, body);
      onDone(saved);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const unit = f.frequency_unit;
  return (
    <form class="card" onSubmit={submit} aria-busy={busy} aria-labelledby="policy-form-h">
      <h3 id="policy-form-h">{policy ? `Edit ${policy.display_name}` : 'New policy'}</h3>
      <div class="form-row">
        <div class="field">
          <label for="pf-name">Name</label>
          <input id="pf-name" required maxLength={63} value={f.name} onInput={set('name')} aria-describedby="pf-name-hint" />
          <p class="hint" id="pf-name-hint">
            Lower-case letters, digits, "-" and "_", starting with a letter or digit.
          </p>
        </div>
        <div class="field">
          <label for="pf-display">Display name (optional)</label>
          <input id="pf-display" maxLength={255} value={f.display_name} onInput={set('display_name')} />
        </div>
        <div class="field">
          <label for="pf-target">Branches</label>
          <select id="pf-target" value={f.target} onChange={set('target')}>
            <option value="production">production branches</option>
            <option value="development">development branches</option>
          </select>
        </div>
      </div>
      <fieldset>
        <legend>Schedule (UTC)</legend>
        <div class="form-row">
          <div class="field">
            <label for="pf-fv">Every</label>
            <input id="pf-fv" type="number" min={1} max={365} required value={f.frequency_value} onInput={set('frequency_value')} />
          </div>
          <div class="field">
            <label for="pf-fu">Unit</label>
            <select id="pf-fu" value={unit} onChange={set('frequency_unit')}>
              {FREQUENCY_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}s
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="pf-time">{unit === 'hour' ? 'Starting at (UTC)' : 'At (UTC)'}</label>
            <input id="pf-time" type="time" required value={f.schedule_time} onInput={set('schedule_time')} />
          </div>
          {(unit === 'week' || unit === 'month') && (
            <div class="field">
              <label for="pf-day">{unit === 'week' ? 'On' : 'Weekday (optional)'}</label>
              <select id="pf-day" value={f.schedule_day} onChange={set('schedule_day')}>
                <option value="">{unit === 'week' ? 'Sunday (default)' : 'none: the first day of the window'}</option>
                {WEEKDAYS.map((d, i) => (
                  <option key={d} value={String(i)}>
                    {d}
                  </option>
                ))}
              </select>
            </div>
          )}
          {unit === 'month' && (
            <div class="field">
              <label for="pf-week">Days of the month</label>
              <select id="pf-week" value={f.schedule_week} onChange={set('schedule_week')}>
                <option value="">1st–7th (default)</option>
                {WINDOWS.map((w, i) => (
                  <option key={w} value={String(i)}>
                    {w}
                  </option>
                ))}
              </select>
            </div>
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Retention</legend>
        <div class="form-row">
          <div class="field">
            <label for="pf-rv">Keep each backup for</label>
            <input id="pf-rv" type="number" min={1} max={1000} required value={f.retention_value} onInput={set('retention_value')} />
          </div>
          <div class="field">
            <label for="pf-ru">Unit</label>
            <select id="pf-ru" value={f.retention_unit} onChange={set('retention_unit')}>
              {RETENTION_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}s
                </option>
              ))}
            </select>
          </div>
        </div>
      </fieldset>
      <div class="preview" aria-live="polite" id="policy-preview">
        {preview ? (
          <>
            <p>
              <strong class="preview-description">{preview.description}.</strong>
            </p>
            <p class="muted small">The next five runs, if saved now:</p>
            <ol class="next-runs">
              {preview.next_runs.map((t) => (
                <li key={t}>
                  <time dateTime={t}>{t.slice(0, 16).replace('T', ' ')} UTC</time> <span class="muted">({formatRelative(t)})</span>
                </li>
              ))}
            </ol>
          </>
        ) : previewError ? (
          <p class="attention-text">This schedule cannot be used: {previewError}</p>
        ) : (
          <p class="muted">Working out the schedule…</p>
        )}
      </div>
      <fieldset>
        <legend>Restore drills (optional)</legend>
        <p class="hint">Strongbox restores a backup into a scratch database and checks it, by itself. Leave both empty for no drills.</p>
        <div class="form-row">
          <div class="field">
            <label for="pf-ve">Fully verify every Nth backup</label>
            <input id="pf-ve" type="number" min={1} max={1000} placeholder="off" value={f.verify_every} onInput={set('verify_every')} />
          </div>
          <div class="field">
            <label for="pf-vfv">At least once per</label>
            <input id="pf-vfv" type="number" min={1} max={365} placeholder="off" value={f.verification_frequency_value} onInput={set('verification_frequency_value')} />
          </div>
          <div class="field">
            <label for="pf-vfu">Unit</label>
            <select id="pf-vfu" value={f.verification_frequency_unit} onChange={set('verification_frequency_unit')} required={f.verification_frequency_value.trim() !== ''}>
              <option value="">—</option>
              {FREQUENCY_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}s
                </option>
              ))}
            </select>
          </div>
        </div>
      </fieldset>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : policy ? 'Save changes' : 'Create policy'}
        </button>
        <button type="button" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
