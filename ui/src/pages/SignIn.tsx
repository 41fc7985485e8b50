/** Sign in with a service token (or the bootstrap token); the server answers with a session cookie. */
import { useEffect, useState } from 'preact/hooks';
import { signIn, type Session } from '../api.js';
import { ErrorBox } from '../components/ErrorBox.js';

export function SignIn({ onSignedIn, notice }: { onSignedIn: (s: Session) => void; notice?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = 'Sign in · Strongbox';
  }, []);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await signIn(token.trim());
      setToken('');
      onSignedIn(s);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} class="card" aria-busy={busy}>
        <h1>Strongbox</h1>
        <p>Sign in with a service token. The dashboard can see and do what the token's accesses allow, as the API does.</p>
        {notice && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        <div class="field">
          <label for="token">Service token</label>
          <input id="token" name="token" type="password" autoComplete="off" spellcheck={false} required placeholder="id:secret" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} aria-describedby="token-hint" />
          <p class="hint" id="token-hint">
            As <code>id:secret</code>: the bootstrap token, or one made with <code>POST …/service-tokens</code>. It is sent once; the browser keeps only a session cookie.
          </p>
        </div>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
