/**
 * Every page of the dashboard: one line here (its hash path, and its nav label when it has
 * one) and one file in pages/. Paths are matched in order; `:name` segments become params.
 * The overview, the first page after sign-in, is in the main bundle; every other page is a
 * chunk of its own fetched when first shown (lazyPage), which keeps the overview's first
 * render short.
 */
import type { FunctionComponent } from 'preact';
import { lazyPage } from './components/LazyPage.js';
import { Overview } from './pages/Overview.js';

export interface PageProps {
  /** The decoded `:name` segments of the path. */
  params: Record<string, string>;
  /** The query after `?` in the hash (filters, paging). */
  query: URLSearchParams;
}

export interface Route {
  path: string;
  page: FunctionComponent<PageProps>;
  /** Label in the main navigation (pages reached by links only have none). */
  nav?: string;
}

export const routes: Route[] = [
  { path: '/', page: Overview, nav: 'Overview' },
  { path: '/databases/:database/branches/:branch/backups', page: lazyPage(() => import('./pages/Backups.js').then((m) => m.Backups)) },
  { path: '/databases/:database/branches/:branch/backups/:id', page: lazyPage(() => import('./pages/BackupDetail.js').then((m) => m.BackupDetail)) },
  { path: '/restore', page: lazyPage(() => import('./pages/Restore.js').then((m) => m.Restore)), nav: 'Restore' },
  { path: '/policies', page: lazyPage(() => import('./pages/Policies.js').then((m) => m.Policies)), nav: 'Policies' },
  { path: '/destinations', page: lazyPage(() => import('./pages/Destinations.js').then((m) => m.Destinations)), nav: 'Destinations' },
  { path: '/notifications', page: lazyPage(() => import('./pages/Notifications.js').then((m) => m.Notifications)), nav: 'Notifications' },
  { path: '/tokens', page: lazyPage(() => import('./pages/Tokens.js').then((m) => m.Tokens)), nav: 'Tokens' },
  { path: '/audit', page: lazyPage(() => import('./pages/Audit.js').then((m) => m.Audit)), nav: 'Audit log' },
];
