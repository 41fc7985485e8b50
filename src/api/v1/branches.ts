/** Branches: one real database (server + database name) that Strongbox dumps. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import type { Branch as BranchRow, Database as DatabaseRow, Job } from '../../catalog/schema.js';
import { ConnectionUrlError, engineFor, EngineError, parseConnectionUrl, type ConnectionInfo, type EngineKind } from '../../engines/index.js';
import { readableCopies } from '../../jobs/artifacts.js';
import { sourceConflict } from '../../jobs/restore.js';
import { restorePreflight } from '../../jobs/fidelity.js';
import { newJob } from '../../catalog/jobs.js';
import { addInterval } from '../../time.js';
import { hasAccess, requireAccess } from '../auth.js';
import { conflict, forbidden, invalidParams, notFound, unprocessable } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveBranch, resolveDatabase } from '../resolve.js';
import { presentBranch, presentBranches } from './present.js';
import { AgeIdentity, Branch, BranchParams, DbParams, IdParam, Jobs, ListEnvelope, NameParam, PageQuery } from './schemas.js';
import { isParallelBackup } from '../../jobs/parallel-restore.js';
import { checkIdentity } from './identity.js';
import { archiverOf, archivingProblems, setArchiving } from '../../archive/archivers.js';
import { BACKUP_END, parseRestorePoint, PitrRefusal, planPointInTime } from '../../archive/pitr.js';
import { confineLocalPath, LocalPathError } from '../../destinations.js';
import fs from 'node:fs';
import path from 'node:path';

/** Parse a connection URL from a request: 422 when malformed or of the other engine. */
function parseUrl(url: string, kind: DatabaseRow['kind']): { kind: EngineKind; info: ConnectionInfo } {
  let parsed;
  try {
    parsed = parseConnectionUrl(url);
  } catch (e) {
    if (e instanceof ConnectionUrlError) throw invalidParams(`connection_url: ${e.message}`);
    throw e;
  }
  if (parsed.kind !== kind) throw unprocessable(`connection_url is a ${parsed.kind} URL but the database is ${kind}`);
  return parsed;
}

/** Talk to a source server on behalf of a request: its failures are the caller's to fix (422). */
async function probeOr422<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof EngineError) throw unprocessable(`cannot use this connection: ${e.message}`);
    throw e;
  }
}

/** Strongbox extension on branches (MariaDB): dumps keep the history of system-versioned tables. */
const DumpHistory = Type.Boolean({
  description:
    'Strongbox extension, MariaDB only: dump system-versioned tables with their history (mariadb-dump --dump-history), so a restore has every row version, not just the current rows. Default false.',
});

/** Run a point-in-time planning step for a request: what the archive cannot do is a 409, a bad value a 422. */
async function pitrOr4xx<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof PitrRefusal) throw e.status === 422 ? invalidParams(e.message) : conflict(e.message);
    throw e;
  }
}

/**
 * Check a target_data_dir request: PostgreSQL only, not with connection_url, inside the
 * local roots (this organization's part for a non-admin token, as for local destinations),
 * not existing yet, its parent existing. Returns it normalized.
 */
function checkTargetDataDirFor(ctx: AppContext) {
  return (requested: string, kind: DatabaseRow['kind'], orgName: string, superuser: boolean, withUrl: boolean): string => {
    if (kind !== 'postgresql') throw invalidParams('target_data_dir applies to PostgreSQL only (a recovered data directory)');
    if (withUrl) throw invalidParams('target_data_dir and connection_url exclude each other: the restore delivers either a data directory or a database');
    if (!path.isAbsolute(requested)) throw invalidParams('target_data_dir must be an absolute path');
    let where: string;
    try {
      where = confineLocalPath(ctx, requested, orgName, superuser);
    } catch (e) {
      if (!(e instanceof LocalPathError)) throw e;
      throw e.forbidden ? forbidden(`Forbidden: target_data_dir: ${e.message}`) : invalidParams(`target_data_dir: ${e.message}`);
    }
    if (fs.existsSync(where)) throw conflict(`target_data_dir ${where} already exists; give a folder that does not exist yet`);
    if (!fs.existsSync(path.dirname(where))) throw invalidParams(`target_data_dir: ${path.dirname(where)} does not exist`);
    return where;
  };
}

/** Strongbox extension on branches: continuous archiving for point-in-time recovery. */
const Archiving = Type.Boolean({
  description:
    'Strongbox extension: continuous archiving for point-in-time recovery. PostgreSQL: a WAL receiver (pg_receivewal, with a replication slot) stores every WAL segment, and backups become pg_basebackup base backups; ' +
    'MariaDB/MySQL: the binary logs are stored as they close. Switching it on checks the server first (replication privilege, wal_level, WAL senders, a free slot, pg_hba.conf; log_bin) and answers 422 naming every problem. Default false.',
});

/** 422 naming everything the server lacks for archiving; a server that cannot be asked is 422 too (the caller's connection). */
async function requireArchivable(ctx: AppContext, kind: DatabaseRow['kind'], conn: ConnectionInfo): Promise<void> {
  const problems = await probeOr422(() => archivingProblems(ctx, kind, conn));
  if (problems.length) throw unprocessable(`cannot archive this branch: ${problems.join('; ')}`);
}

export function branchRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const checkTargetDataDir = checkTargetDataDirFor(ctx);
  return async (app) => {
    app.post(
      '/organizations/:organization/databases/:database/branches',
      {
        schema: {
          tags: ['Branches'],
          summary: 'Register a branch, or create one by restoring a backup',
          description:
            'With `connection_url` and no `backup_id`: register an existing database to back up (the server is checked by connecting). ' +
            'With `backup_id`: restore that backup into a NEW database, created on the same server as the backup\'s branch and named after the new branch, ' +
            'or into the (empty) database of `connection_url`; a non-empty target needs `overwrite: true`. Needs restore_backup (restore_production_branch_backup for production backups). ' +
            'The connection URL is stored encrypted and never returned.',
          params: DbParams,
          body: Type.Object(
            {
              name: NameParam,
              production: Type.Optional(Type.Boolean()),
              connection_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'postgresql://user:pass@host:port/db or mysql://user:pass@host:port/db' })),
              backup_id: Type.Optional(IdParam),
              overwrite: Type.Optional(Type.Boolean({ description: 'with backup_id and connection_url: restore over a non-empty database' })),
              age_identity: Type.Optional(AgeIdentity),
              preserve_ownership: Type.Optional(
                Type.Boolean({
                  description:
                    'Strongbox extension, with backup_id: keep owners and privileges (PostgreSQL owners and GRANTs; MariaDB DEFINERs and the grants on the database) instead of giving every object to the restoring user. ' +
                    'The roles must exist on the target server: missing ones are named in a 409 before anything starts.',
                }),
              ),
              dump_history: Type.Optional(DumpHistory),
              jobs: Type.Optional(Jobs),
              archiving: Type.Optional(Archiving),
              restore_point: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 64,
                  description:
                    'Point-in-time restore of an archived branch: "latest", or a time with its zone (2024-05-01T13:45:00Z). The new database holds every transaction committed at or before it, none after. ' +
                    'Replays from `backup_id` when given, else from the newest backup of `parent_branch` consistent by then. A time the archive cannot reach (a missing WAL segment or binlog, or after the latest archived commit) is refused with 409 naming what is missing. See GET .../recovery-window.',
                }),
              ),
              parent_branch: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'with restore_point and no backup_id: the archived branch to restore' })),
              target_data_dir: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 1024,
                  description:
                    'Strongbox extension, PostgreSQL disaster recovery: put the recovered data directory (the whole cluster) in this folder, which must not exist yet, inside the folders local destinations may use (STRONGBOX_LOCAL_ROOTS), instead of restoring a database. ' +
                    'The branch is recorded without a connection URL: set one once a server runs on the folder.',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: Branch },
        },
      },
      async (req, reply) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        const body = req.body;
        if (body.backup_id === undefined && body.restore_point === undefined) {
          requireAccess(req.principal, 'write_branches', { organizationId: org.id, databaseId: database.id });
          if (body.connection_url === undefined) throw invalidParams('connection_url is required (or backup_id, to create the branch from a backup)');
          if (body.overwrite !== undefined) throw invalidParams('overwrite only applies when restoring a backup (backup_id)');
          if (body.age_identity !== undefined) throw invalidParams('age_identity only applies when restoring a backup (backup_id)');
          if (body.preserve_ownership !== undefined) throw invalidParams('preserve_ownership only applies when restoring a backup (backup_id)');
          if (body.parent_branch !== undefined) throw invalidParams('parent_branch only applies with restore_point (a point-in-time restore of that branch)');
          if (body.target_data_dir !== undefined) throw invalidParams('target_data_dir only applies with restore_point or the backup_id of a base backup');
        }
        if (body.dump_history && database.kind !== 'mysql') throw invalidParams('dump_history applies to MariaDB/MySQL branches only (system-versioned tables)');
        if (body.archiving && (body.backup_id !== undefined || body.restore_point !== undefined)) throw invalidParams('archiving cannot start with a restore: switch it on (PATCH the branch) once the restore is done');
        const restorePoint = body.restore_point === undefined ? undefined : await pitrOr4xx(() => parseRestorePoint(body.restore_point!));
        const parsed = body.connection_url === undefined ? null : parseUrl(body.connection_url, database.kind);
        let backup = body.backup_id === undefined ? null : await ctx.db.selectFrom('backups').selectAll().where('id', '=', body.backup_id).where('database_id', '=', database.id).executeTakeFirst();
        if (body.backup_id !== undefined && !backup) throw notFound(`Backup "${body.backup_id}" not found in database "${database.name}"`);
        // A point in time: which backup to start from and every archive file up to the time
        // are planned now, so that what the archive cannot reach is refused before anything starts.
        const dataDir = body.target_data_dir === undefined ? null : checkTargetDataDir(body.target_data_dir, database.kind, org.name, req.principal.token.superuser === 1, body.connection_url !== undefined);
        if (restorePoint !== undefined || dataDir !== null || backup?.method === 'base') {
          let parent: BranchRow | undefined;
          if (body.parent_branch !== undefined) {
            parent = await ctx.db.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('name', '=', body.parent_branch).where('deleted_at', 'is', null).executeTakeFirst();
            if (!parent) throw notFound(`Branch "${body.parent_branch}" not found in database "${database.name}"`);
            if (backup && backup.branch_id !== parent.id) throw invalidParams(`backup "${backup.id}" is not a backup of parent_branch "${parent.name}"`);
          }
          if (!backup && !parent) throw invalidParams('restore_point needs parent_branch (the archived branch to restore) or backup_id');
          const from = parent ?? (await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup!.branch_id).executeTakeFirstOrThrow());
          requireAccess(req.principal, from.production === 1 ? 'restore_production_branch_backup' : 'restore_backup', { organizationId: org.id, databaseId: database.id, branchId: from.id });
          if (dataDir !== null && restorePoint === undefined && backup?.method !== 'base') throw invalidParams('target_data_dir needs restore_point, or the backup_id of a base backup');
          const plan = await pitrOr4xx(() => planPointInTime(ctx, from, restorePoint ?? BACKUP_END, backup ? { backup } : {}));
          backup = plan.backup;
        } else if (body.parent_branch !== undefined) {
          throw invalidParams('parent_branch only applies with restore_point (a point-in-time restore of that branch)');
        }
        let source: BranchRow | undefined;
        if (backup) {
          source = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
          requireAccess(req.principal, source.production === 1 ? 'restore_production_branch_backup' : 'restore_backup', {
            organizationId: org.id,
            databaseId: database.id,
            branchId: source.id,
          });
          if (backup.deleted_at !== null) throw conflict('that backup was deleted; it cannot be restored');
          // Not only `success`: a backup that failed because some destination did restores
          // from the copies that were stored (GET .../artifacts lists them as `success`).
          const { refusal } = await readableCopies(ctx, backup);
          if (refusal !== null) throw conflict(refusal);
          if (body.overwrite && (await isParallelBackup(ctx, backup.id))) {
            throw conflict('that backup is a parallel one (stored in parts), which cannot be restored over an existing database yet; restore it into a new or empty database');
          }
        }
        const exists = await ctx.db.selectFrom('branches').select('id').where('database_id', '=', database.id).where('name', '=', body.name).where('deleted_at', 'is', null).executeTakeFirst();
        if (exists) throw conflict(`Branch "${body.name}" already exists`);

        const engine = engineFor(database.kind);
        let targetUrl: string;
        let target: ConnectionInfo;
        let create = false;
        if (dataDir !== null) {
          // No database is restored: the row gets no connection (below).
          targetUrl = 'postgresql://-@localhost/-';
          target = { host: '', port: 0, database: source!.conn_database, user: '', password: '' };
        } else if (backup && source && parsed === null) {
          // Same server as the backup's branch, with its credentials, a new database named after the branch.
          if (source.connection_url_enc === null) throw conflict(`the backup's branch "${source.name}" has no connection URL; give connection_url for the restore target`);
          const url = new URL(ctx.secrets.open(source.connection_url_enc));
          url.pathname = `/${body.name}`;
          targetUrl = url.toString();
          target = parseConnectionUrl(targetUrl).info;
          if (await probeOr422(() => engine.databaseExists(target, target.database))) {
            throw conflict(`a database named "${target.database}" already exists on ${target.host}:${target.port}; choose another branch name, or give connection_url to restore into an empty database`);
          }
          create = true;
        } else {
          targetUrl = body.connection_url!;
          target = parsed!.info;
        }
        const server = create || dataDir !== null ? null : await probeOr422(() => engine.probe(target));
        if (body.archiving) await requireArchivable(ctx, database.kind, target);
        // Asked of the servers, once the target answered: "localhost", "127.0.0.1" and "[::1]"
        // (or a proxy) reach one database.
        if (source && !create && dataDir === null) {
          const clash = await probeOr422(() => sourceConflict(ctx, database.kind, source, target));
          if (clash !== null) throw conflict(clash);
        }
        // What would fail the restore before it writes anything is said now, not in the job.
        if (backup && dataDir === null) {
          const restored = backup;
          const preflight = await probeOr422(() => restorePreflight(engine, restored, target, body.preserve_ownership === true));
          if (preflight.length) throw conflict(preflight.join('; '));
        }
        if (backup && !create && dataDir === null && !body.overwrite && !(await probeOr422(() => engine.databaseIsEmpty(target)))) {
          throw conflict(`database "${target.database}" is not empty; pass overwrite: true to restore over it`);
        }

        const now = ctx.clock();
        const row: BranchRow = {
          id: newId(),
          organization_id: org.id,
          database_id: database.id,
          name: body.name,
          production: body.production ? 1 : 0,
          connection_url_enc: dataDir !== null ? null : ctx.secrets.seal(targetUrl),
          conn_host: target.host,
          conn_port: target.port,
          conn_database: target.database,
          conn_user: target.user,
          server_version: server?.version ?? source?.server_version ?? null,
          created_at: nowIso(now),
          updated_at: nowIso(now),
          deleted_at: null,
          restored_from_backup_id: backup?.id ?? null,
          restore_job_id: null,
        };
        if (dataDir !== null) {
          // Nothing to connect to until someone starts a server on the recovered folder.
          Object.assign(row, { connection_url_enc: null, conn_host: '', conn_port: 0, conn_user: '', conn_database: source!.conn_database });
        }
        let job: Job | null = null;
        if (backup) {
          job = newJob({
            organizationId: org.id,
            kind: 'restore',
            backupId: backup.id,
            branchId: row.id,
            params: {
              create,
              overwrite: body.overwrite === true,
              ...(body.preserve_ownership ? { preserve_ownership: true } : {}),
              ...(restorePoint !== undefined ? { restore_point: restorePoint } : {}),
              ...(dataDir !== null ? { target_data_dir: dataDir } : {}),
              ...(body.jobs !== undefined ? { jobs: body.jobs } : {}),
            },
            actorId: req.principal.token.id,
            now,
            secretEnc: body.age_identity === undefined ? null : ctx.secrets.seal(checkIdentity(body.age_identity)),
          });
          row.restore_job_id = job.id;
        }
        await ctx.db.transaction().execute(async (trx) => {
          await trx.insertInto('branches').values(row).execute();
          if (body.dump_history !== undefined || body.jobs !== undefined) {
            await trx.insertInto('branch_options').values({ branch_id: row.id, dump_history: body.dump_history ? 1 : 0, jobs: body.jobs ?? 1, updated_at: row.created_at }).execute();
          }
          if (job && backup) {
            await trx.insertInto('jobs').values(job).execute();
            // As PlanetScale does: a backup being restored is kept at least a day longer.
            const floor = nowIso(addInterval(now, 1, 'day'));
            if (backup.expires_at === null || backup.expires_at < floor) {
              await trx.updateTable('backups').set({ expires_at: floor, updated_at: nowIso(now) }).where('id', '=', backup.id).execute();
            }
          }
        });
        if (job) ctx.nudge();
        if (body.archiving) await setArchiving(ctx, row, database.kind, true);
        return reply.status(201).send(presentBranch(row, database.kind, job, now.getTime(), { dump_history: body.dump_history === true, jobs: body.jobs ?? 1, archiver: body.archiving ? await archiverOf(ctx, row.id) : null }));
      },
    );

    app.patch(
      '/organizations/:organization/databases/:database/branches/:branch',
      {
        schema: {
          tags: ['Branches'],
          summary: "Change a branch's connection URL, production flag or options",
          description: 'Use it to set the URL again after a password change, or on a branch rebuilt from storage (which has none). The new URL is checked by connecting.',
          params: BranchParams,
          body: Type.Object(
            {
              connection_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
              production: Type.Optional(Type.Boolean()),
              dump_history: Type.Optional(DumpHistory),
              jobs: Type.Optional(Jobs),
              archiving: Type.Optional(
                Type.Boolean({
                  description:
                    'Strongbox extension: `true` checks the server (422 naming every problem) and starts continuous archiving; `false` stops it (the PostgreSQL replication slot is dropped shortly after; archived files stay until retention removes them).',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Branch },
        },
      },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'write_branches', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const now = nowIso(ctx.clock());
        const changes: Partial<BranchRow> = { updated_at: now };
        if (req.body.production !== undefined) changes.production = req.body.production ? 1 : 0;
        if (req.body.dump_history && database.kind !== 'mysql') throw invalidParams('dump_history applies to MariaDB/MySQL branches only (system-versioned tables)');
        if (req.body.connection_url !== undefined) {
          const parsed = parseUrl(req.body.connection_url, database.kind);
          const server = await probeOr422(() => engineFor(database.kind).probe(parsed.info));
          Object.assign(changes, {
            connection_url_enc: ctx.secrets.seal(req.body.connection_url),
            conn_host: parsed.info.host,
            conn_port: parsed.info.port,
            conn_database: parsed.info.database,
            conn_user: parsed.info.user,
            server_version: server.version,
          });
        }
        if (req.body.archiving === true) {
          if (req.body.connection_url !== undefined) await requireArchivable(ctx, database.kind, parseUrl(req.body.connection_url, database.kind).info);
          else if (branch.connection_url_enc === null) throw conflict('the branch has no connection URL; set connection_url to switch archiving on');
          else await requireArchivable(ctx, database.kind, parseConnectionUrl(ctx.secrets.open(branch.connection_url_enc)).info);
        }
        await ctx.db.updateTable('branches').set(changes).where('id', '=', branch.id).execute();
        if (req.body.archiving !== undefined) await setArchiving(ctx, { ...branch, ...changes }, database.kind, req.body.archiving);
        if (req.body.dump_history !== undefined) {
          const dumpHistory = req.body.dump_history ? 1 : 0;
          await ctx.db
            .insertInto('branch_options')
            .values({ branch_id: branch.id, dump_history: dumpHistory, updated_at: now })
            .onConflict((oc) => oc.column('branch_id').doUpdateSet({ dump_history: dumpHistory, updated_at: now }))
            .execute();
        }
        if (req.body.jobs !== undefined) {
          const jobs = req.body.jobs;
          await ctx.db
            .insertInto('branch_options')
            .values({ branch_id: branch.id, dump_history: 0, jobs, updated_at: now })
            .onConflict((oc) => oc.column('branch_id').doUpdateSet({ jobs, updated_at: now }))
            .execute();
        }
        const [json] = await presentBranches(ctx, [{ ...branch, ...changes }], database.kind);
        return json;
      },
    );

    app.delete(
      '/organizations/:organization/databases/:database/branches/:branch',
      {
        schema: {
          tags: ['Branches'],
          summary: 'Forget a branch',
          description: 'Removes the branch from Strongbox. The real database is never dropped. Refused while a restore into it runs or while it still has backups.',
          params: BranchParams,
        },
      },
      async (req, reply) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'write_branches', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (branch.restore_job_id) {
          const job = await ctx.db.selectFrom('jobs').select('state').where('id', '=', branch.restore_job_id).executeTakeFirst();
          if (job && (job.state === 'pending' || job.state === 'running')) throw conflict('a restore into this branch is still running');
        }
        const live = await ctx.db.selectFrom('backups').select('id').where('branch_id', '=', branch.id).where('deleted_at', 'is', null).limit(1).executeTakeFirst();
        if (live) throw conflict('this branch still has backups; delete them first (protected ones must be unprotected)');
        const now = nowIso(ctx.clock());
        // The record stays (restored_branches of old backups point at it) under a name no
        // user can pick ("~" is outside the name alphabet), so the name is free again.
        await ctx.db.updateTable('branches').set({ deleted_at: now, updated_at: now, name: `${branch.name}~deleted~${branch.id}` }).where('id', '=', branch.id).execute();
        return reply.status(204).send();
      },
    );

    app.get(
      '/organizations/:organization/databases/:database/branches',
      { schema: { tags: ['Branches'], summary: 'List branches', params: DbParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(Branch) } } },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const all = await ctx.db.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('deleted_at', 'is', null).orderBy('name').execute();
        const visible = all.filter((b) => hasAccess(req.principal, 'read_branches', { organizationId: org.id, databaseId: database.id, branchId: b.id }));
        return envelope(req, await presentBranches(ctx, visible.slice((page - 1) * perPage, page * perPage), database.kind), page, perPage, visible.length);
      },
    );

    app.get(
      '/organizations/:organization/databases/:database/branches/:branch',
      { schema: { tags: ['Branches'], summary: 'Get a branch', params: BranchParams, response: { 200: Branch } } },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_branches', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const [json] = await presentBranches(ctx, [branch], database.kind);
        return json;
      },
    );
  };
}
