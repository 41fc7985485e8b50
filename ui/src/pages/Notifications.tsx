/**
 * Notifications of the organization: webhooks (signed JSON to any URL) and channels (Slack,
 * Discord, Telegram, ntfy, email). For each: whether it is on, and when Strongbox turned it
 * off because it kept failing, why (shown first, in red); the last delivery; "Send test"
 * with its result; its delivery log; create (a webhook's signing secret shown once), edit,
 * delete with confirmation. Secret settings are write-only: an edit keeps them unless
 * typed again.
 */
import { useState } from 'preact/hooks';
import { del, patch, post, queryString, type Database, type List } from '../api.js';
import { can } from '../components/access.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { ErrorBox, errorText } from '../components/ErrorBox.js';
import { Loading } from '../components/Loading.js';
import { PageHeader } from '../components/PageHeader.js';
import { Pager } from '../components/Pager.js';
import { SecretOnce } from '../components/SecretOnce.js';
import { StateBadge } from '../components/StateBadge.js';
import { Time } from '../components/Time.js';
import '../components/settings.css';
import { plural } from '../format.js';
import { useApi } from '../hooks.js';
import type { PageProps } from '../routes.js';
import { orgApi, useApp } from '../session.js';

/** The events a target can ask for (src/notify/kinds.ts EVENT_KINDS; the browser test compares). */
export const EVENT_KINDS = ['backup.succeeded', 'backup.failed', 'backup.overdue', 'restore.succeeded', 'restore.failed', 'verification.failed', 'destination.failed'];
const EVENT_WORDS: Record<string, string> = {
  'backup.succeeded': 'a backup succeeded',
  'backup.failed': 'a backup failed',
  'backup.overdue': 'a branch has had no successful backup for twice its policy’s frequency',
  'restore.succeeded': 'a restore succeeded',
  'restore.failed': 'a restore failed',
  'verification.failed': 'a verification or restore drill failed',
  'destination.failed': 'a copy to a destination failed',
};

type ChannelType = 'slack' | 'discord' | 'telegram' | 'ntfy' | 'email';
type Kind = 'webhooks' | 'notification-channels';

interface TargetBase {
  id: string;
  events: string[];
  enabled: boolean;
  database: string | null;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
  last_sent_at: string | null;
  last_sent_success: boolean | null;
  last_sent_result: string | null;
}
interface Webhook extends TargetBase {
  url: string;
  secret?: string;
}
interface Channel extends TargetBase {
  name: string;
  type: ChannelType;
  config: Record<string, unknown>;
}
type Target = Webhook | Channel;

interface Delivery {
  id: string;
  event: { id: string; kind: string; message: string; created_at: string };
  state: 'pending' | 'success' | 'failed';
  attempt: number;
  status_code: number | null;
  success: boolean;
  error: string | null;
  duration_ms: number | null;
  created_at: string;
  next_attempt_at: string | null;
}

const isChannel = (t: Target): t is Channel => 'type' in t;
const labelOf = (t: Target) => (isChannel(t) ? t.name : t.url);

/** A channel type's settings: which are secret, and how each reads in the form. */
interface FieldSpec {
  key: string;
  label: string;
  secret?: boolean;
  optional?: boolean;
  kind?: 'text' | 'number' | 'checkbox' | 'list';
  hint?: string;
  placeholder?: string;
}
const CHANNEL_FIELDS: Record<ChannelType, FieldSpec[]> = {
  slack: [{ key: 'url', label: 'Incoming webhook URL', secret: true, placeholder: 'https://hooks.slack.com/services/…' }],
  discord: [{ key: 'url', label: 'Webhook URL', secret: true, placeholder: 'https://discord.com/api/webhooks/…' }],
  telegram: [
    { key: 'bot_token', label: 'Bot token', secret: true, hint: 'As @BotFather gives it: <digits>:<letters>.' },
    { key: 'chat_id', label: 'Chat id', hint: 'A number (negative for groups) or @channelname.' },
    { key: 'api_url', label: 'Bot API URL (optional)', optional: true, placeholder: 'https://api.telegram.org' },
  ],
  ntfy: [
    { key: 'url', label: 'Topic URL', placeholder: 'https://ntfy.sh/my-backups' },
    { key: 'token', label: 'Access token (optional)', secret: true, optional: true },
  ],
  email: [
    { key: 'host', label: 'SMTP host' },
    { key: 'port', label: 'Port', kind: 'number', optional: true, placeholder: '587' },
    { key: 'secure', label: 'TLS from the start (usually port 465)', kind: 'checkbox' },
    { key: 'starttls', label: 'Require STARTTLS (off only for a local relay)', kind: 'checkbox' },
    { key: 'user', label: 'User (optional)', optional: true },
    { key: 'password', label: 'Password (optional)', secret: true, optional: true },
    { key: 'from', label: 'From', placeholder: 'Strongbox <backups@example.com>' },
    { key: 'to', label: 'To', kind: 'list', hint: 'Addresses separated by commas.' },
  ],
};
const CHANNEL_NAMES: Record<ChannelType, string> = { slack: 'Slack', discord: 'Discord', telegram: 'Telegram', ntfy: 'ntfy', email: 'Email (SMTP)' };

export function Notifications(_: PageProps) {
  const app = useApp();
  const writable = can(app, 'write_organization');
  const databases = useApi<List<Database>>(`${orgApi(app.org, 'databases')}?per_page=100`);
  const dbs = databases.data?.data ?? [];
  return (
    <>
      <PageHeader title="Notifications" />
      <p>Hear about failed backups, restores and drills, and about branches whose backups silently stopped. A target that keeps failing is turned off, and says why here.</p>
      {!writable && <p class="muted">This token can look but not change notifications (that needs the write_organization access).</p>}
      <Targets kind="webhooks" writable={writable} databases={dbs} />
      <Targets kind="notification-channels" writable={writable} databases={dbs} />
    </>
  );
}

function Targets({ kind, writable, databases }: { kind: Kind; writable: boolean; databases: Database[] }) {
  const { org } = useApp();
  const base = orgApi(org, kind);
  const list = useApi<List<Target>>(`${base}?per_page=100`);
  const [editing, setEditing] = useState<Target | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Target | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<string, Delivery | 'running' | { failed: string }>>({});
  const [logOpen, setLogOpen] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [status, setStatus] = useState('');
  const webhooks = kind === 'webhooks';
  const noun = webhooks ? 'webhook' : 'channel';
  const headingId = `${kind}-h`;

  async function sendTest(t: Target) {
    setTests((s) => ({ ...s, [t.id]: 'running' }));
    try {
      const d = await post<Delivery>(`${base}/${encodeURIComponent(t.id)}/test`);
      setTests((s) => ({ ...s, [t.id]: d }));
      list.reload();
    } catch (e) {
      setTests((s) => ({ ...s, [t.id]: { failed: errorText(e) } }));
    }
  }

  async function setEnabled(t: Target, enabled: boolean) {
    setError(undefined);
    try {
      await patch(`${base}/${encodeURIComponent(t.id)}`, { enabled });
      setStatus(`${labelOf(t)} ${enabled ? 'enabled' : 'disabled'}.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  async function remove(t: Target) {
    setDeleting(null);
    setError(undefined);
    try {
      await del(`${base}/${encodeURIComponent(t.id)}`);
      setStatus(`${labelOf(t)} deleted.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  const rows = list.data?.data ?? [];
  return (
    <section aria-labelledby={headingId} class="card">
      <div class="page-header">
        <h2 id={headingId}>{webhooks ? 'Webhooks' : 'Channels'}</h2>
        {writable && editing === null && (
          <button
            type="button"
            class="primary"
            onClick={() => {
              setSecret(null);
              setEditing('new');
            }}
          >
            {webhooks ? 'Add webhook' : 'Add channel'}
          </button>
        )}
      </div>
      <p class="hint">
        {webhooks
          ? 'Each event is POSTed as JSON, signed with HMAC-SHA256 of the body under the webhook’s secret (header with a timestamp); 2 s timeout, retries with backoff.'
          : 'Slack and Discord incoming webhooks, a Telegram bot, ntfy, or email over SMTP: no receiver of your own needed.'}
      </p>
      <p class="status-line" role="status">
        {status}
      </p>
      <ErrorBox error={error ?? list.error} />
      {secret && (
        <SecretOnce
          title="The webhook’s signing secret"
          secret={secret}
          hint="Your receiver checks each delivery’s signature with it (see the README, “Notifications”)."
          onDone={() => setSecret(null)}
        />
      )}
      {editing !== null && (
        <TargetForm
          key={editing === 'new' ? 'new' : editing.id}
          kind={kind}
          base={base}
          existing={editing === 'new' ? null : editing}
          databases={databases}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              if (!isChannel(saved) && saved.secret) setSecret(saved.secret);
              setStatus(`${labelOf(saved)} saved.`);
              list.reload();
            }
          }}
        />
      )}
      {!list.data && list.loading && <Loading what={`Loading the ${noun}s`} />}
      {list.data && rows.length === 0 && <p>No {noun}s yet.</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="stack" id={`${kind}-table`}>
            <caption class="visually-hidden">{webhooks ? 'Webhooks' : 'Notification channels'}</caption>
            <thead>
              <tr>
                <th scope="col">{webhooks ? 'URL' : 'Channel'}</th>
                <th scope="col">State</th>
                <th scope="col">Events</th>
                <th scope="col">Last delivery</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <TargetRows
                  key={t.id}
                  t={t}
                  writable={writable}
                  test={tests[t.id]}
                  logOpen={logOpen === t.id}
                  logPath={`${base}/${encodeURIComponent(t.id)}/deliveries`}
                  onTest={() => sendTest(t)}
                  onEdit={() => {
                    setSecret(null);
                    setEditing(t);
                  }}
                  onEnable={(on) => setEnabled(t, on)}
                  onDelete={() => setDeleting(t)}
                  onLog={() => setLogOpen(logOpen === t.id ? null : t.id)}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog open={deleting !== null} title={`Delete this ${noun}?`} confirmLabel={`Delete ${noun}`} onCancel={() => setDeleting(null)} onConfirm={() => deleting && remove(deleting)}>
        <p>
          {deleting ? labelOf(deleting) : ''} gets no more notifications, and its delivery log is deleted with it. This cannot be undone.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function TargetRows(props: {
  t: Target;
  writable: boolean;
  test: Delivery | 'running' | { failed: string } | undefined;
  logOpen: boolean;
  logPath: string;
  onTest: () => void;
  onEdit: () => void;
  onEnable: (on: boolean) => void;
  onDelete: () => void;
  onLog: () => void;
}) {
  const { t, writable, test } = props;
  const label = labelOf(t);
  const all = EVENT_KINDS.every((k) => t.events.includes(k));
  return (
    <>
      <tr data-target={t.id} class={t.enabled ? undefined : 'attention'}>
        <th scope="row">
          <span class="url">{label}</span>
          {isChannel(t) && <div class="muted small">{CHANNEL_NAMES[t.type] ?? t.type}{configSummary(t)}</div>}
          {t.database && <div class="muted small">only database {t.database}</div>}
        </th>
        <td data-label="State">
          {t.enabled ? <span class="ok">✓ enabled</span> : <span class="attention-text">✗ disabled</span>}
          {t.disabled_reason && (
            <p class="disabled-reason" role="note">
              Turned off by Strongbox: {t.disabled_reason}
            </p>
          )}
        </td>
        <td data-label="Events">{all ? 'every event' : t.events.join(', ')}</td>
        <td data-label="Last delivery">
          {t.last_sent_at ? (
            <>
              <Time iso={t.last_sent_at} relative />
              <div class={t.last_sent_success ? 'ok small' : 'attention-text small'}>
                {t.last_sent_success ? '✓ ' : '✗ '}
                {t.last_sent_result ?? ''}
              </div>
            </>
          ) : (
            <span class="muted">never</span>
          )}
        </td>
        <td data-label="Actions">
          <div class="row-actions">
            {writable && (
              <button type="button" onClick={props.onTest} disabled={test === 'running'} aria-label={`Send a test to ${label}`}>
                {test === 'running' ? 'Sending…' : 'Send test'}
              </button>
            )}
            <button type="button" onClick={props.onLog} aria-expanded={props.logOpen} aria-label={`Delivery log of ${label}`}>
              Log
            </button>
            {writable && (
              <>
                <button type="button" onClick={props.onEdit} aria-label={`Edit ${label}`}>
                  Edit
                </button>
                <button type="button" onClick={() => props.onEnable(!t.enabled)} aria-label={`${t.enabled ? 'Disable' : 'Enable'} ${label}`}>
                  {t.enabled ? 'Disable' : 'Enable'}
                </button>
                <button type="button" class="danger" onClick={props.onDelete} aria-label={`Delete ${label}`}>
                  Delete
                </button>
              </>
            )}
          </div>
          <div aria-live="polite" class="test-outcome">
            {test && test !== 'running' && 'success' in test && (
              <p class={`test-result ${test.success ? 'passed' : 'failed'}`}>
                {test.success ? '✓ Test delivered' : '✗ Test failed'}
                {test.status_code !== null ? ` (${test.status_code})` : ''}
                {test.duration_ms !== null ? ` in ${test.duration_ms} ms` : ''}
                {test.error ? `: ${test.error}` : ''}
              </p>
            )}
            {test && test !== 'running' && 'failed' in test && <p class="test-result failed">✗ {test.failed}</p>}
          </div>
        </td>
      </tr>
      {props.logOpen && (
        <tr>
          <td colSpan={5}>
            <DeliveryLog path={props.logPath} label={label} />
          </td>
        </tr>
      )}
    </>
  );
}

/** A channel's plain settings in a few words (secret ones only say that they are set). */
function configSummary(c: Channel): string {
  const cfg = c.config;
  const v = (k: string) => (typeof cfg[k] === 'string' || typeof cfg[k] === 'number' ? String(cfg[k]) : '');
  switch (c.type) {
    case 'telegram':
      return ` · chat ${v('chat_id')}`;
    case 'ntfy':
      return ` · ${v('url')}`;
    case 'email':
      return ` · ${v('host')}:${v('port')} → ${Array.isArray(cfg.to) ? cfg.to.join(', ') : ''}`;
    default:
      return '';
  }
}

function DeliveryLog({ path, label }: { path: string; label: string }) {
  const [page, setPage] = useState(1);
  const log = useApi<List<Delivery>>(path + queryString({ page, per_page: 10 }));
  const data = log.data;
  return (
    <div class="delivery-log">
      <h3>Deliveries to {label}</h3>
      <ErrorBox error={log.error} />
      {!data && log.loading && <Loading what="Loading the deliveries" />}
      {data && data.data.length === 0 && <p class="muted">No event has been delivered yet (tests are not logged here; their result shows above).</p>}
      {data && data.data.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Deliveries to {label}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">State</th>
                <th scope="col" class="num">
                  Status
                </th>
                <th scope="col" class="num">
                  Attempts
                </th>
                <th scope="col">Error / next try</th>
              </tr>
            </thead>
            <tbody>
              {data.data.map((d) => (
                <tr key={d.id}>
                  <td>
                    <Time iso={d.created_at} />
                  </td>
                  <th scope="row">
                    <code>{d.event.kind}</code>
                    <div class="small">{d.event.message}</div>
                  </th>
                  <td>
                    <StateBadge state={d.state} />
                  </td>
                  <td class="num">{d.status_code ?? '—'}</td>
                  <td class="num">{d.attempt}</td>
                  <td>
                    {d.error && <span class="failure-reason">{d.error}</span>}
                    {d.next_attempt_at && (
                      <div class="muted small">
                        next try <Time iso={d.next_attempt_at} relative />
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && data.total_pages > 1 && <Pager page={data.current_page} totalPages={data.total_pages} total={data.total_count} noun="delivery" onPage={setPage} />}
    </div>
  );
}

function TargetForm({ kind, base, existing, databases, onDone }: { kind: Kind; base: string; existing: Target | null; databases: Database[]; onDone: (saved: Target | null) => void }) {
  const webhooks = kind === 'webhooks';
  const channel = existing && isChannel(existing) ? existing : null;
  const [url, setUrl] = useState(existing && !isChannel(existing) ? existing.url : '');
  const [name, setName] = useState(channel?.name ?? '');
  const [type, setType] = useState<ChannelType>(channel?.type ?? 'slack');
  const [config, setConfig] = useState<Record<string, string | boolean>>(() => initialConfig(channel?.type ?? 'slack', channel));
  const [events, setEvents] = useState<Set<string>>(new Set(existing?.events ?? EVENT_KINDS));
  const [database, setDatabase] = useState(existing?.database ?? '');
  const [enabled, setEnabled] = useState(existing?.enabled ?? true);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const idp = webhooks ? 'wf' : 'cf';

  const toggle = (k: string) => {
    const next = new Set(events);
    if (next.has(k)) next.delete(k);
    else next.add(k);
    setEvents(next);
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (events.size === 0) throw new Error('Choose at least one event.');
      const common = { events: EVENT_KINDS.filter((k) => events.has(k)), database: database || null, enabled };
      const body = webhooks ? { url: url.trim(), ...common } : { ...(existing ? {} : { type }), name: name.trim(), config: configBody(type, config, existing !== null), ...common };
      const saved = existing ? await patch<Target>(`${base}/${encodeURIComponent(existing.id)}`, body) : await post<Target>(base, body);
      onDone(saved);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const fields = CHANNEL_FIELDS[type];
  return (
    <form class="card" onSubmit={submit} aria-busy={busy} aria-labelledby={`${idp}-h`} autoComplete="off">
      <h3 id={`${idp}-h`}>{existing ? `Edit ${labelOf(existing)}` : webhooks ? 'New webhook' : 'New channel'}</h3>
      {webhooks ? (
        <div class="field">
          <label for={`${idp}-url`}>URL</label>
          <input id={`${idp}-url`} type="url" required value={url} onInput={(e) => setUrl((e.target as HTMLInputElement).value)} placeholder="https://example.com/strongbox-events" />
        </div>
      ) : (
        <>
          <div class="form-row">
            <div class="field">
              <label for={`${idp}-name`}>Name</label>
              <input id={`${idp}-name`} required maxLength={100} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="ops-slack" />
            </div>
            <div class="field">
              <label for={`${idp}-type`}>Kind</label>
              <select
                id={`${idp}-type`}
                value={type}
                disabled={existing !== null}
                onChange={(e) => {
                  const t = (e.target as HTMLSelectElement).value as ChannelType;
                  setType(t);
                  setConfig(initialConfig(t, null));
                }}
              >
                {(Object.keys(CHANNEL_NAMES) as ChannelType[]).map((t) => (
                  <option key={t} value={t}>
                    {CHANNEL_NAMES[t]}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <fieldset>
            <legend>{CHANNEL_NAMES[type]} settings</legend>
            {fields.map((fs) => {
              const id = `${idp}-${fs.key}`;
              const isSet = channel ? (channel.config[fs.key] as { set?: boolean } | undefined)?.set === true : false;
              if (fs.kind === 'checkbox') {
                return (
                  <label class="inline-check" key={fs.key}>
                    <input id={id} type="checkbox" checked={config[fs.key] === true} onChange={(e) => setConfig({ ...config, [fs.key]: (e.target as HTMLInputElement).checked })} /> {fs.label}
                  </label>
                );
              }
              const hint = fs.secret && isSet ? 'Set. Leave empty to keep it; type a new value to replace it.' : fs.hint;
              return (
                <div class="field" key={fs.key}>
                  <label for={id}>{fs.label}</label>
                  <input
                    id={id}
                    type={(fs.secret ? 'password' : fs.kind === 'number' ? 'number' : 'text') as string as 'text'}
                    autoComplete={fs.secret ? 'new-password' : 'off'}
                    required={!fs.optional && !(fs.secret && isSet)}
                    value={String(config[fs.key] ?? '')}
                    placeholder={fs.secret && isSet ? 'set (hidden)' : fs.placeholder}
                    onInput={(e) => setConfig({ ...config, [fs.key]: (e.target as HTMLInputElement).value })}
                    aria-describedby={hint ? `${id}-hint` : undefined}
                    spellcheck={false}
                  />
                  {hint && (
                    <p class="hint" id={`${id}-hint`}>
                      {hint}
                    </p>
                  )}
                </div>
              );
            })}
          </fieldset>
        </>
      )}
      <fieldset>
        <legend>Events</legend>
        <div class="check-grid">
          {EVENT_KINDS.map((k) => (
            <label class="inline-check" key={k}>
              <input type="checkbox" name="event" value={k} checked={events.has(k)} onChange={() => toggle(k)} />
              <span>
                <code>{k}</code> <span class="muted small">{EVENT_WORDS[k]}</span>
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <div class="form-row">
        <div class="field">
          <label for={`${idp}-db`}>Databases</label>
          <select id={`${idp}-db`} value={database} onChange={(e) => setDatabase((e.target as HTMLSelectElement).value)}>
            <option value="">every database</option>
            {databases.map((d) => (
              <option key={d.id} value={d.name}>
                only {d.name}
              </option>
            ))}
          </select>
        </div>
      </div>
      <label class="inline-check">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled((e.target as HTMLInputElement).checked)} /> Enabled
        {existing?.disabled_reason ? ' (enabling it again clears why it was turned off)' : ''}
      </label>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : existing ? 'Save changes' : webhooks ? 'Create webhook' : 'Create channel'}
        </button>
        <button type="button" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
      {!existing && webhooks && <p class="hint">The signing secret is shown once, after it is created.</p>}
      {existing && <p class="muted small">{plural(existing.events.length, 'event')} now; last changed <Time iso={existing.updated_at} />.</p>}
    </form>
  );
}

/** The form's values for a channel type: plain settings as stored, secrets empty. */
function initialConfig(type: ChannelType, channel: Channel | null): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const f of CHANNEL_FIELDS[type]) {
    const v = channel?.config[f.key];
    if (f.kind === 'checkbox') out[f.key] = typeof v === 'boolean' ? v : f.key === 'starttls';
    else if (f.secret) out[f.key] = '';
    else if (Array.isArray(v)) out[f.key] = v.join(', ');
    else out[f.key] = v === undefined || v === null ? '' : String(v);
  }
  return out;
}

/**
 * The config to send. Empty optional fields are left out on create; on an edit an empty
 * secret is left out (the API keeps it) and an emptied plain optional field is null (removed).
 */
function configBody(type: ChannelType, values: Record<string, string | boolean>, edit: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of CHANNEL_FIELDS[type]) {
    const v = values[f.key];
    if (f.kind === 'checkbox') {
      out[f.key] = v === true;
      continue;
    }
    const s = String(v ?? '').trim();
    if (s === '') {
      if (edit && f.optional && !f.secret) out[f.key] = null;
      continue;
    }
    out[f.key] = f.kind === 'number' ? Number(s) : f.kind === 'list' ? s.split(/[,;\s]+/).filter(Boolean) : s;
  }
  return out;
}
