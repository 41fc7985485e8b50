/** The dashboard: the sign-in page until there is a session, then the shell and the page the hash names. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, get, getSession, onUnauthorized, setCsrfToken, signOut, type List, type Session } from './api.js';
import { Shell } from './components/Shell.js';
import { ErrorBox } from './components/ErrorBox.js';
import { Loading } from './components/Loading.js';
import { SignIn } from './pages/SignIn.js';
import { NotFound } from './pages/NotFound.js';
import { matchPath, useLocation } from './router.js';
import { routes } from './routes.js';
import { AppContext, type AppState } from './session.js';

const ORG_KEY = 'strongbox.organization';

export function App() {
  // undefined: still asking the server whether a session exists.
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [startError, setStartError] = useState<unknown>(undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [orgs, setOrgs] = useState<string[]>([]);
  const [org, setOrg] = useState('');
  const loc = useLocation();

  function start(s: Session) {
    setCsrfToken(s.csrf_token);
    setNotice(undefined);
    // Show the session's organization (or a server admin's last choice) at once; the list of
    // organizations, needed only for switching, arrives after, off the first page's path.
    const saved = s.token.superuser ? localStorage.getItem(ORG_KEY) : null;
    const first = saved || s.organization.name;
    setOrgs([first]);
    setOrg(first);
    setSession(s);
    get<List<{ name: string }>>('/v1/organizations?per_page=100').then(
      (list) => {
        const names = list.data.length ? list.data.map((o) => o.name) : [s.organization.name];
        setOrgs(names);
        if (!names.includes(first)) setOrg(names.includes(s.organization.name) ? s.organization.name : names[0]);
      },
      () => undefined, // no read_organization access: the session's own organization is all there is
    );
  }

  useEffect(() => {
    onUnauthorized(() => {
      setCsrfToken(null);
      setSession(null);
      setNotice('Your session has ended (it expired, its token was deleted, or you signed out elsewhere). Sign in again.');
    });
    getSession().then(start, (e) => {
      if (!(e instanceof ApiError && e.status === 401)) setStartError(e);
      setSession(null);
    });
  }, []);

  const state = useMemo<AppState | null>(
    () =>
      session
        ? {
            session,
            org,
            orgs,
            setOrg(name: string) {
              localStorage.setItem(ORG_KEY, name);
              setOrg(name);
            },
            async signOut() {
              await signOut();
              setCsrfToken(null);
              setSession(null);
              setNotice('You are signed out.');
            },
          }
        : null,
    [session, org, orgs],
  );

  if (session === undefined) return <Loading what="Starting" />;
  if (state === null) {
    return (
      <>
        <ErrorBox error={startError} />
        <SignIn onSignedIn={start} notice={notice} />
      </>
    );
  }
  let page = <NotFound path={loc.path} />;
  for (const r of routes) {
    const params = matchPath(r.path, loc.path);
    if (params) {
      const Page = r.page;
      // Keyed by the organization and the path: another backup or org is a fresh page.
      page = <Page key={`${org} ${loc.path}`} params={params} query={loc.query} />;
      break;
    }
  }
  return (
    <AppContext.Provider value={state}>
      <Shell nav={routes.filter((r) => r.nav).map((r) => ({ path: r.path, label: r.nav! }))} current={loc.path}>
        {page}
      </Shell>
    </AppContext.Provider>
  );
}
