/**
 * What the signed-in token may do, read from the session's accesses with the API's rule
 * (src/api/auth.ts hasAccess): a server-admin token may do everything; another token holds an
 * access on its own organization, on one database, or on one branch. Pages use it only to
 * hide buttons that would answer 403; the API still decides.
 */
import type { AppState } from '../session.js';

export function can(app: AppState, access: string, scope: { databaseId?: string } = {}): boolean {
  const s = app.session;
  if (s.token.superuser) return true;
  if (app.org !== s.organization.name) return false;
  return s.accesses.some(
    (a) => a.access === access && ((a.resource_type === 'organization' && a.resource_id === s.organization.id) || (a.resource_type === 'database' && a.resource_id === scope.databaseId)),
  );
}
