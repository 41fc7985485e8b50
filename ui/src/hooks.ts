/** Data loading and polling for pages, with stale answers dropped when the inputs change. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { get } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Fetch again (keeps showing the old data meanwhile). */
  reload: () => void;
}

/** GET `path` (null: nothing to load yet); reloads when the path changes. */
export function useApi<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: path !== null });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    if (path === null) {
      setState({ data: undefined, error: undefined, loading: false });
      return;
    }
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    get<T>(path).then(
      (data) => mine === seq.current && setState({ data, error: undefined, loading: false }),
      (error) => mine === seq.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
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
