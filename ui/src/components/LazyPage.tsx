/**
 * A page whose code is fetched the first time it is shown, so the bundle every visit waits
 * for (the shell and the overview) does not carry the settings pages. The chunk has a hashed
 * name like every asset; a failed fetch (say, the server was upgraded meanwhile) says so.
 */
import type { FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../routes.js';
import { ErrorBox } from './ErrorBox.js';
import { Loading } from './Loading.js';

export function lazyPage(load: () => Promise<FunctionComponent<PageProps>>): FunctionComponent<PageProps> {
  let loaded: FunctionComponent<PageProps> | null = null;
  let pending: Promise<FunctionComponent<PageProps>> | null = null;
  return function LazyPage(props: PageProps) {
    const [, setReady] = useState(loaded !== null);
    const [error, setError] = useState<unknown>(undefined);
    useEffect(() => {
      if (loaded) return;
      pending ??= load().then((page) => (loaded = page));
      pending.then(
        () => setReady(true),
        (e) => {
          pending = null;
          setError(new Error(`Could not load this page (${e instanceof Error ? e.message : String(e)}). If Strongbox was just upgraded, reload the page.`));
        },
      );
    }, []);
    if (loaded) {
      const Page = loaded;
      return <Page {...props} />;
    }
    return error ? <ErrorBox error={error} /> : <Loading what="Loading the page" />;
  };
}
