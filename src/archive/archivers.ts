/**
 * Switching a branch's continuous archiving on and off (the `archivers` row), shared by the
 * API and the CLI through the API. Switching on checks the server first; the archive
 * manager (manager.ts) then starts the receiver, and drops the slot after switching off.
 */
import type { AppContext } from '../context.js';
import type { Archiver, Branch, Database } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import type { ConnectionInfo } from '../engines/engine.js';
import { slotNameFor } from './postgres/preconditions.js';
import { receiverFor } from './receiver.js';

/** What the server lacks for archiving ([] = ready); an engine without a receiver says so. Throws EngineError when the server cannot be asked. */
export async function archivingProblems(ctx: AppContext, kind: Database['kind'], conn: ConnectionInfo): Promise<string[]> {
  let receiver;
  try {
    receiver = receiverFor(kind);
  } catch (e) {
    return [e instanceof Error ? e.message : String(e)];
  }
  return receiver.preconditions(ctx, conn);
}

/** Switch archiving on or off for a branch (idempotent). On again: the receiver resumes where the archive ends. */
export async function setArchiving(ctx: AppContext, branch: Branch, kind: Database['kind'], on: boolean): Promise<void> {
  const now = nowIso(ctx.clock());
  const existing = await ctx.db.selectFrom('archivers').select(['enabled']).where('branch_id', '=', branch.id).executeTakeFirst();
  if (!on) {
    if (existing?.enabled === 1) await ctx.db.updateTable('archivers').set({ enabled: 0, state: 'stopped', error: null, updated_at: now }).where('branch_id', '=', branch.id).execute();
    return;
  }
  if (existing?.enabled === 1) return;
  if (existing) {
    await ctx.db.updateTable('archivers').set({ enabled: 1, state: 'starting', error: null, updated_at: now }).where('branch_id', '=', branch.id).execute();
    return;
  }
  await ctx.db
    .insertInto('archivers')
    .values({
      branch_id: branch.id,
      organization_id: branch.organization_id,
      database_id: branch.database_id,
      kind: kind === 'postgresql' ? 'wal' : 'binlog',
      enabled: 1,
      state: 'starting',
      error: null,
      slot_name: kind === 'postgresql' ? slotNameFor(branch.id) : null,
      position: null,
      worker_id: null,
      lease_expires_at: null,
      last_shipped_at: null,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.column('branch_id').doUpdateSet({ enabled: 1, state: 'starting', error: null, updated_at: now }))
    .execute();
}

/** The archivers of some branches, by branch id. */
export async function archiversOf(ctx: AppContext, branchIds: string[]): Promise<Map<string, Archiver>> {
  if (branchIds.length === 0) return new Map();
  const rows = await ctx.db.selectFrom('archivers').selectAll().where('branch_id', 'in', branchIds).execute();
  return new Map(rows.map((a) => [a.branch_id, a]));
}

/** The archiver of one branch, or null. */
export async function archiverOf(ctx: AppContext, branchId: string): Promise<Archiver | null> {
  return (await ctx.db.selectFrom('archivers').selectAll().where('branch_id', '=', branchId).executeTakeFirst()) ?? null;
}

/** Whether a branch is archived now (its backups are then base backups, on PostgreSQL). */
export async function isArchived(ctx: AppContext, branchId: string): Promise<boolean> {
  const a = await ctx.db.selectFrom('archivers').select('enabled').where('branch_id', '=', branchId).executeTakeFirst();
  return a?.enabled === 1;
}
