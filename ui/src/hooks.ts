/** Data loading and polling for pages, with stale answers dropped when the inputs change. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Fetch again (keeps showing the old data meanwhile). */
  reload: () => void;
}

/** How long a page with nothing to show yet waits before it asks again, try after try. */
export const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15_000];

/** An answer that may be different in a moment: no answer at all, 408, 429 or 5xx. */
function transient(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500);
}

/** The same error, saying when the page will ask again. */
function retrying(error: ApiError, ms: number): ApiError {
  return new ApiError(error.status, error.code, `${error.message} Trying again in ${Math.round(ms / 1000)} s.`);
}

/**
 * GET `path` (null: nothing to load yet); reloads when the path changes. While the page has
 * nothing to show, a failure that may pass (the server restarting, the network blinking) is
 * shown and the request made again by itself after RETRY_DELAYS_MS, for as long as the page
 * is open; once something is shown, a failed reload keeps it and shows the error.
 */
export function useApi<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: path !== null });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  const shown = useRef(false);
  const tries = useRef(0);
  useEffect(() => {
    if (path === null) {
      setState({ data: undefined, error: undefined, loading: false });
      shown.current = false;
      return;
    }
    const mine = ++seq.current;
    let again: number | undefined;
    setState((s) => ({ ...s, loading: true }));
    get<T>(path).then(
      (data) => {
        if (mine !== seq.current) return;
        shown.current = true;
        tries.current = 0;
        setState({ data, error: undefined, loading: false });
      },
      (error) => {
        if (mine !== seq.current) return;
        if (!shown.current && transient(error)) {
          const wait = RETRY_DELAYS_MS[Math.min(tries.current++, RETRY_DELAYS_MS.length - 1)];
          again = window.setTimeout(() => setTick((t) => t + 1), wait);
          setState({ data: undefined, error: retrying(error as ApiError, wait), loading: false });
        } else setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    return () => window.clearTimeout(again);
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Call `fn` every `ms` while `active` (the first call after `ms`); never two at once. */
export function usePoll(fn: () => Promise<unknown> | void, ms: number, active: boolean): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return;
    let stopped = false;
    let timer: number | undefined;
    const loop = async () => {
      try {
        await saved.current();
      } catch {
        /* the page shows its own errors; keep polling */
      }
      if (!stopped) timer = window.setTimeout(loop, ms);
    };
    timer = window.setTimeout(loop, ms);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [ms, active]);
}
