/**
 * The Yandex Cloud managed-database backups API as a view of the catalog. The same plugin
 * is mounted at /managed-postgresql/v1 and /managed-mysql/v1; each mount sees only the
 * branches ("clusters") of its engine's databases. Mappings (DESIGN.md): folderId =
 * organization id, clusterId = branch id, a backup is listed while it is being made
 * (CREATING) and once it succeeded (DONE); failed, canceled, skipped and deleted ones
 * do not exist for a Yandex client. Errors: {code: <gRPC code>, message, details} with
 * the HTTP status of the code (errors.ts). Auth: `Authorization: Bearer <id>:<secret>`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppContext } from '../../../context.js';
import { createBackup, DEFAULT_RETENTION } from '../../../catalog/backups.js';
import type { Access } from '../../../catalog/tokens.js';
import type { Backup, Branch, Database } from '../../../catalog/schema.js';
import { deleteBackupArtifacts } from '../../../jobs/artifacts.js';
import { canSeeOrganization, hasAccess, hasAnyAccess, requireAccess, type Principal, type Scope } from '../../auth.js';
import { ApiError, forbidden, notFound } from '../../errors.js';
import { failedPrecondition } from './errors.js';
import { listedPage } from './list.js';
import { decodePageToken, encodePageToken, pageSizeOf } from './paging.js';
import { backupOperation, deleteOperation, isListed, journalSizes, OPERATION_PREFIX, presentBackup, restoreOperation, type Engine } from './present.js';
import { restoreToNewBranch } from './restore.js';
import { Backup as BackupSchema, BackupList, BackupParams, ClusterParams, FolderPageQuery, Operation, OperationParams, PageQuery, RestoreBody } from './schemas.js';

const PREFIX_ENGINE: Record<string, Engine> = { '/managed-postgresql/v1': 'postgresql', '/managed-mysql/v1': 'mysql' };
const ENGINE_TAG: Record<Engine, string> = { postgresql: 'Yandex Managed PostgreSQL (compatible)', mysql: 'Yandex Managed MySQL (compatible)' };

function scopeOf(branch: Pick<Branch, 'organization_id' | 'database_id' | 'id'>): Scope {
  return { organizationId: branch.organization_id, databaseId: branch.database_id, branchId: branch.id };
}

/** At least one of `accesses` (e.g. whoever may read backups, or whoever started the operation). */
function requireOneOf(p: Principal, accesses: Access[], scope: Scope): void {
  if (!accesses.some((a) => hasAccess(p, a, scope))) throw forbidden(`Forbidden: this service token lacks the "${accesses[0]}" access here`);
}

function deleteAccess(branch: Branch): Access {
  return branch.production === 1 ? 'delete_production_branch_backups' : 'delete_backups';
}

/**
 * @param engine which clusters this mount serves; by default taken from the prefix it is
 * registered under (/managed-postgresql/v1 or /managed-mysql/v1).
 */
export function yandexRoutes(ctx: AppContext, engine?: Engine): FastifyPluginAsyncTypebox {
  return async (app) => {
    const kind = engine ?? PREFIX_ENGINE[app.prefix];
    if (!kind) throw new Error(`yandexRoutes: cannot tell the engine from the prefix "${app.prefix}"; pass it`);
    const tags = [ENGINE_TAG[kind]];

    /** A cluster the caller may see, of this mount's engine; anything else is NOT_FOUND. */
    async function findCluster(p: Principal, clusterId: string): Promise<{ branch: Branch; database: Database }> {
      const missing = () => notFound(`Cluster "${clusterId}" not found`);
      const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', clusterId).where('deleted_at', 'is', null).executeTakeFirst();
      if (!branch || !canSeeOrganization(p, branch.organization_id)) throw missing();
      const database = await ctx.db.selectFrom('databases').selectAll().where('id', '=', branch.database_id).where('deleted_at', 'is', null).executeTakeFirst();
      if (!database || database.kind !== kind) throw missing();
      return { branch, database };
    }

    /** A backup of this engine the caller may see, whatever its state (callers decide what is visible). */
    async function findBackup(p: Principal, backupId: string): Promise<{ backup: Backup; branch: Branch; database: Database }> {
      const missing = () => notFound(`Backup "${backupId}" not found`);
      const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', backupId).executeTakeFirst();
      if (!backup || backup.engine !== kind || !canSeeOrganization(p, backup.organization_id)) throw missing();
      const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirst();
      const database = await ctx.db.selectFrom('databases').selectAll().where('id', '=', backup.database_id).executeTakeFirst();
      if (!branch || !database) throw missing();
      return { backup, branch, database };
    }

    /** One keyset page of listed backups, newest first, of some branches (clusters) of one organization. */
    async function listPage(where: { organizationId: string; branchIds: string[] }, query: { pageSize?: number; pageToken?: string }) {
      const size = pageSizeOf(query.pageSize);
      const cursor = decodePageToken(query.pageToken);
      if (where.branchIds.length === 0) return { backups: [] };
      const rows = await listedPage(ctx.db, { ...where, engine: kind }, cursor, size + 1);
      const page = rows.slice(0, size);
      const last = page[page.length - 1];
      // The last page has no nextPageToken at all, as Yandex (proto3 JSON leaves out empty strings).
      const journals = await journalSizes(ctx.db, page);
      return { backups: page.map((b) => presentBackup(kind, b, journals.get(b.id))), ...(rows.length > size && last ? { nextPageToken: encodePageToken({ createdAt: last.created_at, id: last.id }) } : {}) };
    }

    app.get(
      '/clusters/:clusterId/backups',
      {
        schema: {
          tags,
          summary: 'Cluster.ListBackups: backups of a cluster (branch), newest first',
          description: 'Keyset pages: pageSize 0..1000 (0: 100), pageToken = the nextPageToken of the previous page, absent on the last page. Needs read_backups.',
          params: ClusterParams,
          querystring: PageQuery,
          response: { 200: BackupList },
        },
      },
      async (req) => {
        const { branch } = await findCluster(req.principal, req.params.clusterId);
        requireAccess(req.principal, 'read_backups', scopeOf(branch));
        return listPage({ organizationId: branch.organization_id, branchIds: [branch.id] }, req.query);
      },
    );

    app.get(
      '/backups',
      {
        schema: {
          tags,
          summary: 'Backup.List: backups of a folder (organization), newest first',
          description: 'Only the clusters on which the token holds read_backups. Same paging as Cluster.ListBackups.',
          querystring: FolderPageQuery,
          response: { 200: BackupList },
        },
      },
      async (req) => {
        const p = req.principal;
        const folderId = req.query.folderId;
        const org = await ctx.db.selectFrom('organizations').select('id').where('id', '=', folderId).executeTakeFirst();
        if (!org || !canSeeOrganization(p, org.id)) throw notFound(`Folder "${folderId}" not found`);
        if (!hasAnyAccess(p, 'read_backups', org.id)) throw forbidden('Forbidden: this service token lacks the "read_backups" access here');
        const everywhere = p.token.superuser === 1 || p.accesses.some((a) => a.access === 'read_backups' && a.resource_type === 'organization' && a.resource_id === org.id);
        // The folder's clusters of this engine (deleted ones too: their backups are listed
        // until deleted themselves); a backup's engine is always its database's kind.
        const branches = await ctx.db
          .selectFrom('branches as b')
          .innerJoin('databases as d', 'd.id', 'b.database_id')
          .select(['b.id', 'b.organization_id', 'b.database_id'])
          .where('b.organization_id', '=', org.id)
          .where('d.kind', '=', kind)
          .execute();
        const branchIds = (everywhere ? branches : branches.filter((b) => hasAccess(p, 'read_backups', scopeOf(b)))).map((b) => b.id);
        return listPage({ organizationId: org.id, branchIds }, req.query);
      },
    );

    app.get(
      '/backups/:backupId',
      { schema: { tags, summary: 'Backup.Get', description: 'Needs read_backups. Failed, canceled and deleted backups are NOT_FOUND.', params: BackupParams, response: { 200: BackupSchema } } },
      async (req) => {
        const { backup, branch } = await findBackup(req.principal, req.params.backupId);
        requireAccess(req.principal, 'read_backups', scopeOf(branch));
        if (!isListed(backup)) throw notFound(`Backup "${backup.id}" not found`);
        return presentBackup(kind, backup, (await journalSizes(ctx.db, [backup])).get(backup.id));
      },
    );

    app.delete(
      '/backups/:backupId',
      {
        schema: {
          tags,
          summary: 'Backup.Delete: delete a backup and its stored copies',
          description:
            'Answers a finished Operation. Needs delete_backups (delete_production_branch_backups on production branches). ' +
            'A protected backup, one still being created and one being restored or verified are refused: HTTP 409 with code 9 FAILED_PRECONDITION.',
          params: BackupParams,
          response: { 200: Operation },
        },
      },
      async (req) => {
        const { backup, branch } = await findBackup(req.principal, req.params.backupId);
        requireAccess(req.principal, deleteAccess(branch), scopeOf(branch));
        if (!isListed(backup)) throw notFound(`Backup "${backup.id}" not found`);
        if (backup.protected === 1) throw failedPrecondition('this backup is protected; unprotect it first (native API: PATCH {"protected": false})');
        if (backup.state !== 'success') throw failedPrecondition('this backup is still being created; delete it once it is DONE');
        const busy = await ctx.db.selectFrom('jobs').select(['kind']).where('backup_id', '=', backup.id).where('state', 'in', ['pending', 'running']).executeTakeFirst();
        if (busy) throw failedPrecondition(`this backup is being ${busy.kind === 'restore' ? 'restored' : busy.kind === 'verify' ? 'verified' : 'repaired'}; try again when that finishes`);
        await deleteBackupArtifacts(ctx, backup);
        const fresh = await ctx.db.selectFrom('backups').selectAll().where('id', '=', backup.id).executeTakeFirstOrThrow();
        return deleteOperation(kind, fresh, req.principal.token.id);
      },
    );

    // A literal colon in a path is "::" to Fastify; the regex keeps the cluster id from swallowing ":backup".
    app.post(
      '/clusters/:clusterId(^[^:/]+)::backup',
      {
        schema: {
          tags,
          summary: 'Cluster.Backup: start a backup of a cluster (branch)',
          description: 'No body. Answers an Operation (done: false) to poll at GET /operations/{id}; its response is the Backup. Needs write_backups.',
          params: ClusterParams,
          response: { 200: Operation },
        },
      },
      async (req) => {
        const { branch, database } = await findCluster(req.principal, req.params.clusterId);
        requireAccess(req.principal, 'write_backups', scopeOf(branch));
        if (branch.connection_url_enc === null) throw failedPrecondition(`cluster "${branch.id}" has no connection URL set; set it (native API: PATCH the branch) before taking backups`);
        if (branch.restore_job_id !== null) {
          // A cluster made by Cluster.Restore is only there once its restore succeeded.
          const restore = await ctx.db.selectFrom('jobs').select('state').where('id', '=', branch.restore_job_id).executeTakeFirst();
          if (restore && restore.state !== 'success') {
            throw failedPrecondition(restore.state === 'pending' || restore.state === 'running' ? `cluster "${branch.id}" is still being restored; back it up once the restore is done` : `the restore that made cluster "${branch.id}" ${restore.state}: there is nothing to back up`);
          }
        }
        const backup = await createBackup(ctx.db, {
          database,
          branch,
          retentionValue: DEFAULT_RETENTION.value,
          retentionUnit: DEFAULT_RETENTION.unit,
          emergency: false,
          actor: { id: req.principal.token.id, name: req.principal.token.name },
          compression: 'zstd',
          now: ctx.clock(),
        });
        ctx.nudge();
        return backupOperation(kind, backup);
      },
    );

    app.post(
      '/clusters::restore',
      {
        schema: {
          tags,
          summary: 'Cluster.Restore: restore a backup into a new cluster (branch)',
          description:
            'Creates a new branch named `name` in the backup\'s database, and a new database of that name on the backup\'s server, and restores into it. ' +
            '`time` (RFC 3339) is honoured for a cluster with continuous archiving: the backup is replayed forward to that time (every transaction committed at or before it), and a time the archive cannot reach (a missing WAL segment or binlog, before the backup, after the latest archived commit) is refused with FAILED_PRECONDITION naming what is missing; for other clusters it is ignored and the restore is to the backup\'s own point in time. ' +
            'Other Yandex fields (environment, configSpec, hostSpecs, folderId...) are accepted and ignored. ' +
            'Needs restore_backup (restore_production_branch_backup for backups of production branches). Answers an Operation whose response is the new Cluster.',
          body: RestoreBody,
          response: { 200: Operation },
        },
      },
      async (req) => {
        const { backup, branch: source, database } = await findBackup(req.principal, req.body.backupId);
        if (!isListed(backup)) throw notFound(`Backup "${backup.id}" not found`);
        const { branch, job } = await restoreToNewBranch(ctx, req.principal, { backup, source, database, name: req.body.name, time: req.body.time });
        return restoreOperation(kind, job, branch);
      },
    );

    app.get(
      '/operations/:operationId',
      {
        schema: {
          tags,
          summary: 'Operation.Get: the state of a backup, restore or delete operation',
          description: 'Operation ids are "bk-<backup id>", "rs-<restore job id>" and "dl-<backup id>".',
          params: OperationParams,
          response: { 200: Operation },
        },
      },
      async (req) => {
        const p = req.principal;
        const id = req.params.operationId;
        const missing = () => notFound(`Operation "${id}" not found`);
        const rest = id.slice(3);
        try {
          if (id.startsWith(OPERATION_PREFIX.backup)) {
            const { backup, branch } = await findBackup(p, rest);
            requireOneOf(p, ['read_backups', 'write_backups'], scopeOf(branch));
            return backupOperation(kind, backup);
          }
          if (id.startsWith(OPERATION_PREFIX.delete)) {
            const { backup, branch } = await findBackup(p, rest);
            requireOneOf(p, ['read_backups', deleteAccess(branch)], scopeOf(branch));
            if (backup.deleted_at === null) throw missing();
            // Who deleted it is not recorded.
            return deleteOperation(kind, backup, '');
          }
          if (id.startsWith(OPERATION_PREFIX.restore)) {
            const job = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', rest).where('kind', '=', 'restore').executeTakeFirst();
            if (!job || job.branch_id === null) throw missing();
            const { branch: source } = await findBackup(p, job.backup_id);
            const target = await ctx.db.selectFrom('branches').selectAll().where('id', '=', job.branch_id).executeTakeFirst();
            if (!target) throw missing();
            requireOneOf(p, ['read_backups', source.production === 1 ? 'restore_production_branch_backup' : 'restore_backup'], scopeOf(source));
            return restoreOperation(kind, job, target);
          }
        } catch (e) {
          // The backup behind an operation id being unknown means the operation is.
          if (e instanceof ApiError && e.status === 404) throw missing();
          throw e;
        }
        throw missing();
      },
    );
  };
}
