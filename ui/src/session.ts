/**
 * What every page knows: the signed-in session (token, accesses) and the organization the
 * dashboard is looking at. A server-admin token can see several organizations and switch.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { apiPath, type Session } from './api.js';

export interface AppState {
  session: Session;
  /** Name of the organization shown. */
  org: string;
  /** Names of every organization the token can see (one for most tokens). */
  orgs: string[];
  setOrg(name: string): void;
  signOut(): Promise<void>;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const state = useContext(AppContext);
  if (!state) throw new Error('useApp() outside the signed-in shell');
  return state;
}

/** `/v1/organizations/<org>/<parts...>`, every part percent-encoded. */
export function orgApi(org: string, ...parts: string[]): string {
  return apiPath('/v1/organizations', org, ...parts);
}

/** `/v1/organizations/<org>/databases/<db>/branches/<branch>/<parts...>`. */
export function branchApi(org: string, database: string, branch: string, ...parts: string[]): string {
  return orgApi(org, 'databases', database, 'branches', branch, ...parts);
}
