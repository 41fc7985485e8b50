/** The frame around every signed-in page: skip link, header with nav and organization, sign-out. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { useApp } from '../session.js';
import { href } from '../router.js';
import { ErrorBox } from './ErrorBox.js';

export interface NavItem {
  path: string;
  label: string;
}

export function Shell({ nav, current, children }: { nav: NavItem[]; current: string; children: ComponentChildren }) {
  const app = useApp();
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const active = (path: string) => (path === '/' ? current === '/' : current === path || current.startsWith(`${path}/`));
  return (
    <div class="shell">
      <a
        class="skip-link"
        href="#main"
        onClick={(e) => {
          // The hash is the router's: move the focus instead of navigating to "#main".
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href('/')}>
          Strongbox
        </a>
        <nav aria-label="Main">
          <ul class="nav">
            {nav.map((n) => (
              <li key={n.path}>
                <a href={href(n.path)} aria-current={active(n.path) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          {app.orgs.length > 1 ? (
            <label class="org-select">
              <span>Organization</span>
              <select value={app.org} onChange={(e) => app.setOrg((e.target as HTMLSelectElement).value)}>
                {app.orgs.map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            </label>
          ) : (
            <span class="org-name" title="Organization">
              {app.org}
            </span>
          )}
          <span class="token-name" title={`Signed in with token ${app.session.token.id}`}>
            {app.session.token.name}
            {app.session.token.superuser ? ' (server admin)' : ''}
          </span>
          <button
            type="button"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await app.signOut();
              } catch (e) {
                setError(e);
                setBusy(false);
              }
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <ErrorBox error={error} />
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
