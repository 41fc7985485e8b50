/**
 * Every page of the dashboard: one line here (its hash path, and its nav label when it has
 * one) and one file in pages/. Paths are matched in order; `:name` segments become params.
 */
import type { FunctionComponent } from 'preact';
import { Overview } from './pages/Overview.js';
import { Backups } from './pages/Backups.js';
import { BackupDetail } from './pages/BackupDetail.js';
import { Restore } from './pages/Restore.js';
import { Policies } from './pages/Policies.js';
import { Destinations } from './pages/Destinations.js';
import { Tokens } from './pages/Tokens.js';
import { Audit } from './pages/Audit.js';
import { Notifications } from './pages/Notifications.js';

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
  { path: '/databases/:database/branches/:branch/backups', page: Backups },
  { path: '/databases/:database/branches/:branch/backups/:id', page: BackupDetail },
  { path: '/restore', page: Restore, nav: 'Restore' },
  { path: '/policies', page: Policies, nav: 'Policies' },
  { path: '/destinations', page: Destinations, nav: 'Destinations' },
  { path: '/notifications', page: Notifications, nav: 'Notifications' },
  { path: '/tokens', page: Tokens, nav: 'Tokens' },
  { path: '/audit', page: Audit, nav: 'Audit log' },
];
