/** Writing the audit log: one row per write request, whatever its outcome. */
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../context.js';
import { newId, nowIso } from '../catalog/ids.js';
import { pathOf } from './paging.js';

export async function recordAudit(ctx: AppContext, req: FastifyRequest, status: number): Promise<void> {
  const principal = req.principal as FastifyRequest['principal'] | null;
  const params = (req.params ?? {}) as Record<string, unknown>;
  let organizationId = principal?.token.organization_id ?? null;
  // (A name with a NUL was refused with a 400; it names no organization and cannot be queried.)
  if (typeof params.organization === 'string' && !params.organization.includes('\u0000')) {
    const org = await ctx.db.selectFrom('organizations').select('id').where('name', '=', params.organization).executeTakeFirst();
    // Another organization's name is recorded against the caller's own organization: its
    // audit log must not reveal that the other one exists.
    if (org && (principal?.token.superuser === 1 || org.id === principal?.token.organization_id)) organizationId = org.id;
  }
  await ctx.db
    .insertInto('audit_log')
    .values({
      id: newId(16),
      organization_id: organizationId,
      token_id: principal?.token.id ?? null,
      token_name: principal?.token.name ?? null,
      method: req.method,
      route: req.routeOptions.url ?? 'unknown',
      path: pathOf(req).slice(0, 1000),
      status,
      remote_address: req.ip ?? null,
      created_at: nowIso(ctx.clock()),
    })
    .execute();
}
