/**
 * What the dashboard's first page and its charts read: one line per branch (its last run,
 * its last success and age, its next scheduled run, what it stores, whether it is overdue
 * or its last restore drill failed, its continuous archiving), and a branch's backups over time.
 *
 * The overview is a handful of grouped queries per organization, whatever the number of
 * backups (bench/overview.ts measures it with 10,000): never a query per branch or a loop
 * over backups. Overdue is branchFreshness's answer (jobs/overdue.ts), the one rule the
 * notifications and the metrics use too.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import type { BackupState, JobState } from '../../catalog/schema.js';
import { branchFreshness } from '../../jobs/overdue.js';
import { hasAccess, requireAccess } from '../auth.js';
import { resolveBranch, resolveOrganization } from '../resolve.js';
import { BackupStateSchema, BranchParams, Nullable, OrgParams } from './schemas.js';

const JobStateSchema = Type.Union(['pending', 'running', 'success', 'failed', 'canceled'].map((s) => Type.Literal(s)));

const OverviewEntry = Type.Object(
  {
    database: Type.Object({ id: Type.String(), name: Type.String(), kind: Type.Union([Type.Literal('postgresql'), Type.Literal('mysql')]) }, { additionalProperties: false }),
    branch: Type.Object({ id: Type.String(), name: Type.String(), production: Type.Boolean() }, { additionalProperties: false }),
    last_backup: Nullable(
      Type.Object(
        {
          id: Type.String(),
          name: Type.String(),
          state: BackupStateSchema,
          created_at: Type.String(),
          completed_at: Nullable(Type.String()),
          size: Type.Number(),
          duration_seconds: Nullable(Type.Number()),
          error: Nullable(Type.String({ description: 'why it failed or was canceled' })),
        },
        { additionalProperties: false, description: 'the newest backup that was not deleted (a skipped "ignored" run is not a run)' },
      ),
    ),
    last_success: Nullable(
      Type.Object(
        { id: Type.String(), name: Type.String(), completed_at: Type.String(), size: Type.Number() },
        { additionalProperties: false, description: 'the newest successful backup that was not deleted' },
      ),
    ),
    last_success_age_seconds: Nullable(Type.Number()),
    next_run_at: Nullable(Type.String({ description: 'the soonest next run of the policies that cover the branch; null: none covers it' })),
    stored_bytes: Type.Number({ description: 'bytes of every stored copy (artifact) of the branch’s backups that were not deleted, all destinations together' }),
    backup_count: Type.Integer({ description: 'successful backups kept (not deleted)' }),
    overdue: Type.Boolean({ description: 'no successful backup for more than twice the frequency of the policy that covers the branch' }),
    overdue_at: Nullable(Type.String({ description: 'when it became or will become overdue; null: no policy covers it' })),
    last_drill: Nullable(
      Type.Object(
        { state: JobStateSchema, completed_at: Nullable(Type.String()), error: Nullable(Type.String()) },
        { additionalProperties: false, description: 'the newest restore drill (a full verification a policy scheduled)' },
      ),
    ),
    archive: Nullable(
      Type.Object(
        {
          enabled: Type.Boolean(),
          state: Type.Union(['starting', 'streaming', 'stopped', 'failed'].map((s) => Type.Literal(s))),
          error: Nullable(Type.String({ description: 'why archiving failed (cleaned, no secrets)' })),
          last_shipped_at: Nullable(Type.String({ description: 'when the last WAL segment / binlog was stored' })),
        },
        { additionalProperties: false, description: 'continuous archiving (point-in-time recovery) of the branch, as GET branch shows it; null: never switched on' },
      ),
    ),
    attention: Type.Boolean({ description: 'overdue, or the last run failed, or the last drill failed, or archiving is on and failing' }),
  },
  { additionalProperties: false },
);

const HistoryPoint = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    state: BackupStateSchema,
    created_at: Type.String(),
    completed_at: Nullable(Type.String()),
    duration_seconds: Nullable(Type.Number()),
    size: Type.Number(),
  },
  { additionalProperties: false },
);

/** The most points a history answers: a chart has no use for more. */
export const HISTORY_MAX_POINTS = 1000;

/** Seconds between two catalog timestamps, or null when either is missing. */
function secondsBetween(start: string | null, end: string | null): number | null {
  if (start === null || end === null) return null;
  return Math.max(0, Date.parse(end) - Date.parse(start)) / 1000;
}

export function overviewRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  /** The overview of one organization, for the branches `visible` lets through. */
  async function overview(organizationId: string, visible: (b: { database_id: string; branch_id: string }) => boolean) {
    const db = ctx.db;
    const now = ctx.clock();
    const branches = (
      await db
        .selectFrom('branches as b')
        .innerJoin('databases as d', 'd.id', 'b.database_id')
        .select(['d.id as database_id', 'd.name as database_name', 'd.kind', 'b.id as branch_id', 'b.name as branch_name', 'b.production', 'b.connection_url_enc'])
        .where('b.organization_id', '=', organizationId)
        .where('b.deleted_at', 'is', null)
        .where('d.deleted_at', 'is', null)
        .orderBy('d.name')
        .orderBy('b.name')
        .execute()
    ).filter(visible);
    if (branches.length === 0) return [];

    // The newest run, the newest success and the newest drill of each branch, each in two
    // steps: the newest time per branch (a grouped read of an index), then the rows at those
    // times. Not one query joining the two: PostgreSQL's planner, with statistics older than
    // a burst of inserts, ran that join's aggregate once per backup (seconds instead of ms).
    // The queries do not depend on each other: on PostgreSQL they run at once on the pool's
    // connections (on SQLite one after the other, as every query there).
    const newestRows = async <T extends { branch_id: string }>(newestTimes: Promise<Array<{ branch_id: string; newest: unknown }>>, rows: (branchIds: string[], times: string[]) => Promise<T[]>, timeOf: (r: T) => string | null) => {
      const wanted = new Map((await newestTimes).filter((n) => typeof n.newest === 'string').map((n) => [n.branch_id, n.newest as string]));
      if (wanted.size === 0) return [];
      return (await rows([...wanted.keys()], [...new Set(wanted.values())])).filter((r) => wanted.get(r.branch_id) === timeOf(r));
    };
    const lastRuns = newestRows(
      db
        .selectFrom('backups')
        .select(['branch_id', (e) => e.fn.max('created_at').as('newest')])
        .where('organization_id', '=', organizationId)
        .where('deleted_at', 'is', null)
        .where('state', '!=', 'ignored')
        .groupBy('branch_id')
        .execute(),
      (branchIds, times) =>
        db
          .selectFrom('backups')
          .select(['id', 'branch_id', 'name', 'state', 'created_at', 'started_at', 'completed_at', 'size', 'error'])
          .where('branch_id', 'in', branchIds)
          .where('created_at', 'in', times)
          .where('deleted_at', 'is', null)
          .where('state', '!=', 'ignored')
          .execute(),
      (r) => r.created_at,
    );
    const lastSuccesses = newestRows(
      db
        .selectFrom('backups')
        .select(['branch_id', (e) => e.fn.max('completed_at').as('newest')])
        .where('organization_id', '=', organizationId)
        .where('state', '=', 'success')
        .where('deleted_at', 'is', null)
        .groupBy('branch_id')
        .execute(),
      (branchIds, times) =>
        db
          .selectFrom('backups')
          .select(['id', 'branch_id', 'name', 'completed_at', 'size'])
          .where('branch_id', 'in', branchIds)
          .where('completed_at', 'in', times)
          .where('state', '=', 'success')
          .where('deleted_at', 'is', null)
          .execute(),
      (r) => r.completed_at,
    );
    // Restore drills are verify jobs a policy enqueued.
    const drills = newestRows(
      db
        .selectFrom('jobs as j')
        .innerJoin('backups as k', 'k.id', 'j.backup_id')
        .select(['k.branch_id', (e) => e.fn.max('j.created_at').as('newest')])
        .where('j.organization_id', '=', organizationId)
        .where('j.kind', '=', 'verify')
        .where('j.policy_id', 'is not', null)
        .groupBy('k.branch_id')
        .execute(),
      (branchIds, times) =>
        db
          .selectFrom('jobs as j')
          .innerJoin('backups as k', 'k.id', 'j.backup_id')
          .select(['k.branch_id', 'j.id', 'j.state', 'j.created_at', 'j.completed_at', 'j.error'])
          .where('j.organization_id', '=', organizationId)
          .where('j.created_at', 'in', times)
          .where('k.branch_id', 'in', branchIds)
          .where('j.kind', '=', 'verify')
          .where('j.policy_id', 'is not', null)
          .execute(),
      (r) => r.created_at,
    );
    const storedQuery = db
      .selectFrom('artifacts as a')
      .innerJoin('backups as k', 'k.id', 'a.backup_id')
      .select(['k.branch_id', (e) => e.fn.sum<number>('a.size').as('bytes')])
      .where('k.organization_id', '=', organizationId)
      .where('k.deleted_at', 'is', null)
      .where('a.state', '=', 'success')
      .groupBy('k.branch_id')
      .execute();
    const countsQuery = db
      .selectFrom('backups')
      .select(['branch_id', (e) => e.fn.countAll<number>().as('n')])
      .where('organization_id', '=', organizationId)
      .where('deleted_at', 'is', null)
      .where('state', '=', 'success')
      .groupBy('branch_id')
      .execute();
    const policiesQuery = db
      .selectFrom('backup_policies')
      .select(['database_id', 'target', 'next_run_at'])
      .where('organization_id', '=', organizationId)
      .where('deleted_at', 'is', null)
      .execute();
    const archiversQuery = db
      .selectFrom('archivers')
      .select(['branch_id', 'enabled', 'state', 'error', 'last_shipped_at'])
      .where('organization_id', '=', organizationId)
      .execute();
    const [runRows, successRows, drillRows, stored, counts, policies, freshRows, archiverRows] = await Promise.all([
      lastRuns,
      lastSuccesses,
      drills,
      storedQuery,
      countsQuery,
      policiesQuery,
      branchFreshness(ctx, { organizationId, now }),
      archiversQuery,
    ]);
    const archivers = new Map(archiverRows.map((a) => [a.branch_id, a]));
    const freshness = new Map(freshRows.map((f) => [f.branch_id, f]));

    // Rows that tie on a timestamp (two backups in one millisecond) resolve to the greater id, so the answer is stable.
    const newest = <T extends { branch_id: string; id: string }>(rows: T[]) => {
      const m = new Map<string, T>();
      for (const r of rows) {
        const prev = m.get(r.branch_id);
        if (!prev || r.id > prev.id) m.set(r.branch_id, r);
      }
      return m;
    };
    const lastRun = newest(runRows);
    const lastSuccess = newest(successRows);
    const lastDrill = newest(drillRows);
    const bytes = new Map(stored.map((r) => [r.branch_id, Number(r.bytes ?? 0)]));
    const count = new Map(counts.map((r) => [r.branch_id, Number(r.n)]));

    return branches.map((b) => {
      const run = lastRun.get(b.branch_id);
      const success = lastSuccess.get(b.branch_id);
      const drill = lastDrill.get(b.branch_id);
      const fresh = freshness.get(b.branch_id);
      // The policies that cover a branch: its database's, of its target, when it can be dumped (catalog/policies.ts policyBranches).
      const nextRuns = b.connection_url_enc === null ? [] : policies.filter((p) => p.database_id === b.database_id && (p.target === 'production') === (b.production === 1) && p.next_run_at !== null).map((p) => p.next_run_at as string);
      const overdue = fresh?.overdue ?? false;
      const lastRunFailed = run?.state === 'failed';
      const drillFailed = drill?.state === 'failed';
      const archiver = archivers.get(b.branch_id);
      const archiveFailed = archiver?.enabled === 1 && archiver.state === 'failed';
      return {
        database: { id: b.database_id, name: b.database_name, kind: b.kind },
        branch: { id: b.branch_id, name: b.branch_name, production: b.production === 1 },
        last_backup: run
          ? {
              id: run.id,
              name: run.name,
              state: run.state as BackupState,
              created_at: run.created_at,
              completed_at: run.completed_at,
              size: Number(run.size),
              duration_seconds: secondsBetween(run.started_at, run.completed_at),
              error: run.state === 'failed' || run.state === 'canceled' ? run.error : null,
            }
          : null,
        last_success: success ? { id: success.id, name: success.name, completed_at: success.completed_at as string, size: Number(success.size) } : null,
        last_success_age_seconds: success?.completed_at ? Math.max(0, Math.floor((now.getTime() - Date.parse(success.completed_at)) / 1000)) : null,
        next_run_at: nextRuns.length ? nextRuns.reduce((a, c) => (c < a ? c : a)) : null,
        stored_bytes: bytes.get(b.branch_id) ?? 0,
        backup_count: count.get(b.branch_id) ?? 0,
        overdue,
        overdue_at: fresh?.overdue_at ?? null,
        last_drill: drill ? { state: drill.state as JobState, completed_at: drill.completed_at, error: drill.error } : null,
        archive: archiver ? { enabled: archiver.enabled === 1, state: archiver.state, error: archiver.error, last_shipped_at: archiver.last_shipped_at } : null,
        attention: overdue || lastRunFailed || drillFailed || archiveFailed,
      };
    });
  }

  return async (app) => {
    app.get(
      '/organizations/:organization/overview',
      {
        schema: {
          tags: ['Dashboard'],
          summary: 'Every branch at a glance: last run, last success and its age, next run, stored bytes, overdue, last restore drill',
          description: 'One entry per live branch the token may read backups of (read_backups on the organization, the database or the branch).',
          operationId: 'get_overview',
          params: OrgParams,
          response: { 200: Type.Object({ data: Type.Array(OverviewEntry) }, { additionalProperties: false }) },
        },
      },
      async (req) => {
        const org = await resolveOrganization(ctx.db, req.principal, req.params.organization);
        const p = req.principal;
        const data = await overview(org.id, (b) => hasAccess(p, 'read_backups', { organizationId: org.id, databaseId: b.database_id, branchId: b.branch_id }));
        return { data };
      },
    );

    app.get(
      '/organizations/:organization/databases/:database/branches/:branch/backup-history',
      {
        schema: {
          tags: ['Dashboard'],
          summary: "A branch's backups over the last days, oldest first, for charts of size and duration",
          description: `Deleted backups are included (they happened); skipped ("ignored") runs are not. At most ${HISTORY_MAX_POINTS} points: the newest ones.`,
          operationId: 'get_backup_history',
          params: BranchParams,
          querystring: Type.Object({ days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660, default: 90 })) }, { additionalProperties: false }),
          response: { 200: Type.Object({ data: Type.Array(HistoryPoint) }, { additionalProperties: false }) },
        },
      },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const since = new Date(ctx.clock().getTime() - (req.query.days ?? 90) * 86_400_000).toISOString();
        const rows = await ctx.db
          .selectFrom('backups')
          .select(['id', 'name', 'state', 'created_at', 'started_at', 'completed_at', 'size'])
          .where('branch_id', '=', branch.id)
          .where('created_at', '>=', since)
          .where('state', '!=', 'ignored')
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(HISTORY_MAX_POINTS)
          .execute();
        return {
          data: rows.reverse().map((r) => ({
            id: r.id,
            name: r.name,
            state: r.state,
            created_at: r.created_at,
            completed_at: r.completed_at,
            duration_seconds: secondsBetween(r.started_at, r.completed_at),
            size: Number(r.size),
          })),
        };
      },
    );
  };
}
