/** Backups of a branch: create, list (every PlanetScale filter), get, artifacts, download, progress. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { artifactsOf, createBackup, DEFAULT_RETENTION } from '../../catalog/backups.js';
import { listBackups } from '../../catalog/backup-list.js';
import type { Branch } from '../../catalog/schema.js';
import { openFirstReadable, readableCopies, deleteBackupArtifacts } from '../../jobs/artifacts.js';
import { newId, nowIso } from '../../catalog/ids.js';
import { insertJob, newJob, restoreInProgress } from '../../catalog/jobs.js';
import { parseTimestamp, type IntervalUnit } from '../../time.js';
import { requireAccess, type Principal, type Scope } from '../auth.js';
import { badRequest, conflict, invalidParams, unprocessable } from '../errors.js';
import { envelope, originOf } from '../paging.js';
import { resolveBackup, resolveBranch } from '../resolve.js';
import { failureReason, presentArtifact, presentBackups, presentVerification, PRESENTED_BACKUP_COLUMNS } from './present.js';
import { AgeIdentity, Artifact, Backup, BackupParams, BackupStateSchema, BranchParams, CreateBackupBody, ListBackupsQuery, ListEnvelope, Nullable, Progress, Verification } from './schemas.js';
import { checkIdentity } from './identity.js';
import { progressSnapshot } from '../../pipeline/progress.js';
import { partsTarball } from '../../jobs/parallel-copies.js';

function timestampParam(name: string, value: string): string {
  const d = parseTimestamp(value);
  if (!d) throw badRequest(`${name} must be an ISO 8601 timestamp such as 2023-01-01T00:00:00Z, got "${value}"`);
  return d.toISOString();
}

/** Reading a dump's bytes is as good as restoring it elsewhere, so it needs the restore access. */
function requireRestoreAccess(p: Principal, branch: Branch, scope: Scope): void {
  requireAccess(p, branch.production === 1 ? 'restore_production_branch_backup' : 'restore_backup', scope);
}

export function backupRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/databases/:database/branches/:branch/backups';
  return async (app) => {
    app.post(
      base,
      { schema: { tags: ['Backups'], summary: 'Create a backup', operationId: 'create_backup', params: BranchParams, body: CreateBackupBody, response: { 201: Backup } } },
      async (req, reply) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const body = req.body ?? {};
        if ((body.retention_value === undefined) !== (body.retention_unit === undefined)) {
          throw invalidParams('retention_value and retention_unit must be given together (e.g. {"retention_value": 6, "retention_unit": "hour"})');
        }
        if (body.emergency && database.kind !== 'postgresql') {
          throw unprocessable('emergency backups are only supported for PostgreSQL databases');
        }
        if (branch.connection_url_enc === null) throw conflict(`Branch "${branch.name}" has no connection URL set; set it before taking backups`);
        if (await restoreInProgress(ctx.db, branch)) throw conflict(`a restore into branch "${branch.name}" is still running; back it up once it has finished`);
        const backup = await createBackup(ctx.db, {
          database,
          branch,
          name: body.name,
          retentionValue: body.retention_value ?? DEFAULT_RETENTION.value,
          retentionUnit: (body.retention_unit as IntervalUnit | undefined) ?? DEFAULT_RETENTION.unit,
          emergency: body.emergency ?? false,
          actor: { id: req.principal.token.id, name: req.principal.token.name },
          compression: 'zstd',
          now: ctx.clock(),
          ...(body.jobs !== undefined ? { jobs: body.jobs } : {}),
        });
        ctx.nudge();
        const [json] = await presentBackups(ctx, [backup], branch, originOf(req));
        return reply.status(201).send(json);
      },
    );

    app.get(
      base,
      { schema: { tags: ['Backups'], summary: 'List backups', operationId: 'list_backups', params: BranchParams, querystring: ListBackupsQuery, response: { 200: ListEnvelope(Backup) } } },
      async (req) => {
        const { org, database, branch } = await resolveBranch(ctx.db, req.principal, req.params.organization, req.params.database, req.params.branch);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const q = req.query;
        const page = q.page ?? 1;
        const perPage = q.per_page ?? 25;
        let runningAt: { start: string; end: string } | undefined;
        if (q.running_at !== undefined) {
          const parts = q.running_at.split('..');
          if (parts.length !== 2) throw badRequest(`running_at must be a range "START..END" of ISO 8601 timestamps, got "${q.running_at}"`);
          runningAt = { start: timestampParam('running_at start', parts[0]), end: timestampParam('running_at end', parts[1]) };
          if (runningAt.start > runningAt.end) throw badRequest('running_at: the start of the range is after its end');
        }
        const from = q.from !== undefined ? timestampParam('from', q.from) : undefined;
        const to = q.to !== undefined ? timestampParam('to', q.to) : undefined;
        if (from && to && from > to) throw badRequest('from is after to');
        // The list is of one branch: a production filter that doesn't match it leaves nothing.
        if (q.production !== undefined && q.production !== (branch.production === 1)) return envelope(req, [], page, perPage, 0);
        const { rows, total } = await listBackups(
          ctx.db,
          { branchId: branch.id, includeDeleted: q.all === true, state: q.state, policyId: q.policy, from, to, runningAt },
          page,
          perPage,
          PRESENTED_BACKUP_COLUMNS,
        );
        return envelope(req, await presentBackups(ctx, rows, branch, originOf(req)), page, perPage, total);
      },
    );

    app.get(
      `${base}/:id`,
      { schema: { tags: ['Backups'], summary: 'Get a backup', operationId: 'get_backup', params: BackupParams, response: { 200: Backup } } },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const [json] = await presentBackups(ctx, [backup], branch, originOf(req));
        return json;
      },
    );

    app.get(
      `${base}/:id/artifacts`,
      {
        schema: {
          tags: ['Backups'],
          summary: "A backup's stored copies, one per storage destination",
          description: "Each copy's `error` says why that copy failed; `backup_state` and `backup_error` say how the backup as a whole ended and why (the PlanetScale Backup object has no field for it).",
          params: BackupParams,
          response: {
            200: Type.Object({
              type: Type.Literal('list'),
              data: Type.Array(Artifact),
              backup_state: BackupStateSchema,
              backup_error: Nullable(Type.String({ description: 'why the backup failed, was canceled or was ignored' })),
            }),
          },
        },
      },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const data = (await artifactsOf(ctx.db, [backup.id])).map(presentArtifact);
        return { type: 'list' as const, data, backup_state: backup.state, backup_error: failureReason(backup) };
      },
    );

    app.get(
      `${base}/:id/progress`,
      { schema: { tags: ['Backups'], summary: 'Bytes, rate and ETA of a running backup', params: BackupParams, response: { 200: Progress } } },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const done = backup.state !== 'pending' && backup.state !== 'running';
        const startedAt = backup.started_at ? Date.parse(backup.started_at) : null;
        const endAt = backup.completed_at ? Date.parse(backup.completed_at) : backup.progress_at ? Date.parse(backup.progress_at) : ctx.clock().getTime();
        const snap =
          startedAt === null
            ? { rate_bytes_per_second: 0, eta_seconds: null, percent: null }
            : progressSnapshot({ bytes: backup.progress_raw_bytes, startedAt, now: endAt, totalEstimate: backup.pvc_size > 0 ? backup.pvc_size : undefined });
        return {
          state: backup.state,
          bytes_read: backup.progress_raw_bytes,
          bytes_written: backup.progress_bytes,
          rate_bytes_per_second: snap.rate_bytes_per_second,
          estimated_total_bytes: backup.pvc_size > 0 ? backup.pvc_size : null,
          percent: backup.state === 'success' ? 100 : done ? null : snap.percent,
          eta_seconds: done ? null : snap.eta_seconds,
          started_at: backup.started_at,
          updated_at: backup.progress_at,
          error: failureReason(backup),
        };
      },
    );

    app.get(
      `${base}/:id/download`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Stream the stored bytes of the first good artifact',
          description:
            'The body is the artifact exactly as stored (compressed, and encrypted when recipients are set). The X-Checksum-Sha256 header carries its sha256 (hex). ' +
            'A parallel backup (stored in parts) downloads as a tar (application/x-tar) of `<backup id>/manifest.json`, `SHA256SUMS` and its parts as stored; check them with `sha256sum -c SHA256SUMS`. Needs the restore access of the branch.',
          params: BackupParams,
        },
      },
      async (req, reply) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireRestoreAccess(req.principal, branch, { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (backup.deleted_at !== null) throw conflict('this backup was deleted; its artifacts are gone');
        const { copies: artifacts, refusal } = await readableCopies(ctx, backup);
        if (refusal !== null) throw conflict(refusal);
        // The first copy that can be opened; checked as it streams, so a corrupt one is cut
        // off before its end, never sent whole.
        // A parallel backup (stored in parts) comes as a tar of its parts, SHA256SUMS and manifest.
        if (artifacts[0].parts !== null) {
          const tar = await partsTarball(ctx, backup, artifacts[0]);
          return reply
            .header('content-type', 'application/x-tar')
            .header('content-length', String(tar.size))
            .header('content-disposition', `attachment; filename="${tar.fileName}"`)
            .send(tar.stream);
        }
        const { artifact, stream } = await openFirstReadable(ctx, artifacts);
        const fileName = artifact.path.split('/').pop() ?? 'backup';
        return reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', String(artifact.size))
          .header('content-disposition', `attachment; filename="${fileName}"`)
          .header('x-checksum-sha256', artifact.sha256 ?? '')
          .send(stream);
      },
    );

    app.patch(
      `${base}/:id`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Protect or unprotect a backup',
          operationId: 'update_backup',
          params: BackupParams,
          body: Type.Object({ protected: Type.Boolean() }, { additionalProperties: false }),
          response: { 200: Backup },
        },
      },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (backup.deleted_at !== null) throw conflict('this backup was deleted');
        const now = nowIso(ctx.clock());
        await ctx.db.updateTable('backups').set({ protected: req.body.protected ? 1 : 0, updated_at: now }).where('id', '=', backup.id).execute();
        const [json] = await presentBackups(ctx, [{ ...backup, protected: req.body.protected ? 1 : 0, updated_at: now }], branch, originOf(req));
        return json;
      },
    );

    app.delete(
      `${base}/:id`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Delete a backup and its artifacts everywhere',
          description: 'Refused for a protected backup, one still pending or running (cancel it), and one being restored or verified. Idempotent.',
          operationId: 'delete_backup',
          params: BackupParams,
        },
      },
      async (req, reply) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, branch.production === 1 ? 'delete_production_branch_backups' : 'delete_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (backup.deleted_at === null) {
          if (backup.protected === 1) throw conflict('this backup is protected; unprotect it first (PATCH {"protected": false})');
          if (backup.state === 'pending' || backup.state === 'running') throw conflict(`this backup is ${backup.state}; cancel it first (POST .../cancel)`);
          const busy = await ctx.db.selectFrom('jobs').select(['kind']).where('backup_id', '=', backup.id).where('state', 'in', ['pending', 'running']).executeTakeFirst();
          if (busy) throw conflict(`this backup is being ${busy.kind === 'restore' ? 'restored' : 'verified'}; try again when that finishes`);
        }
        // Already deleted: remove whatever artifact a failed earlier attempt left behind.
        await deleteBackupArtifacts(ctx, backup);
        return reply.status(204).send();
      },
    );

    app.post(
      `${base}/:id/cancel`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Cancel a pending or running backup',
          description: 'The dump is killed and its partial artifacts removed; the backup ends `canceled`. Answers once the cancel has taken effect (or after 10 s with the current state).',
          params: BackupParams,
          body: Type.Optional(Type.Object({}, { additionalProperties: false })),
          response: { 200: Backup },
        },
      },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (backup.state !== 'pending' && backup.state !== 'running') throw conflict(`this backup is already ${backup.state}`);
        const now = nowIso(ctx.clock());
        // Pending: cancel it in place (unless a worker claims it this very moment).
        const res = await ctx.db
          .updateTable('backups')
          .set({ state: 'canceled', error: 'canceled by request', completed_at: now, updated_at: now })
          .where('id', '=', backup.id)
          .where('state', '=', 'pending')
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) {
          await ctx.db.updateTable('backups').set({ cancel_requested: 1, updated_at: now }).where('id', '=', backup.id).execute();
          ctx.cancelLocal(backup.id);
          const deadline = Date.now() + 10_000;
          for (;;) {
            const b = await ctx.db.selectFrom('backups').select('state').where('id', '=', backup.id).executeTakeFirstOrThrow();
            if ((b.state !== 'pending' && b.state !== 'running') || Date.now() > deadline) break;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        const fresh = await ctx.db.selectFrom('backups').selectAll().where('id', '=', backup.id).executeTakeFirstOrThrow();
        const [json] = await presentBackups(ctx, [fresh], branch, originOf(req));
        return json;
      },
    );

    app.post(
      `${base}/:id/verify`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Verify a backup',
          description:
            'Quick (default): re-read every artifact and check size and sha256 against the catalog and the manifest. ' +
            'Full (`{"restore": true}`): also restore into a scratch database on the source server, read every table, compare row counts with those recorded at backup time, and drop the scratch database. Needs read_backups (and the restore access for a full verification).',
          params: BackupParams,
          body: Type.Object({ restore: Type.Optional(Type.Boolean()), age_identity: Type.Optional(AgeIdentity) }, { additionalProperties: false }),
          response: { 202: Verification },
        },
      },
      async (req, reply) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        const scope = { organizationId: org.id, databaseId: database.id, branchId: branch.id };
        requireAccess(req.principal, 'read_backups', scope);
        if (req.body.restore) requireRestoreAccess(req.principal, branch, scope);
        if (backup.deleted_at !== null) throw conflict('this backup was deleted; there is nothing left to verify');
        if (backup.state === 'pending' || backup.state === 'running') throw conflict(`this backup is ${backup.state}; verify it once it has finished`);
        // Not only `success`: a backup that failed because some destination did is verified from its stored copies.
        const { refusal } = await readableCopies(ctx, backup);
        if (refusal !== null) throw conflict(refusal);
        if (req.body.age_identity !== undefined && !req.body.restore) throw invalidParams('age_identity is only needed for a full verification ({"restore": true})');
        const job = newJob({
          organizationId: org.id,
          kind: 'verify',
          backupId: backup.id,
          params: { restore: req.body.restore === true },
          actorId: req.principal.token.id,
          now: ctx.clock(),
          secretEnc: req.body.age_identity === undefined ? null : ctx.secrets.seal(checkIdentity(req.body.age_identity)),
        });
        await ctx.db.insertInto('jobs').values(job).execute();
        ctx.nudge();
        return reply.status(202).send(presentVerification(job));
      },
    );

    app.get(
      `${base}/:id/verifications`,
      {
        schema: {
          tags: ['Backups'],
          summary: "A backup's verifications, newest first",
          params: BackupParams,
          response: { 200: Type.Object({ type: Type.Literal('list'), data: Type.Array(Verification) }) },
        },
      },
      async (req) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        const rows = await ctx.db.selectFrom('jobs').selectAll().where('backup_id', '=', backup.id).where('kind', '=', 'verify').orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
        return { type: 'list' as const, data: rows.map(presentVerification) };
      },
    );

    app.post(
      `${base}/:id/repair`,
      {
        schema: {
          tags: ['Backups'],
          summary: 'Copy a good artifact to the destinations whose copy failed',
          description: 'Runs as a job; GET .../artifacts shows the result. A backup that failed only because some destinations did is `success` once every copy is stored.',
          params: BackupParams,
          body: Type.Optional(Type.Object({}, { additionalProperties: false })),
          response: { 202: Type.Object({ id: Type.String(), state: Type.String() }) },
        },
      },
      async (req, reply) => {
        const { org, database, branch, backup } = await resolveBackup(ctx.db, req.principal, req.params);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id, branchId: branch.id });
        if (backup.deleted_at !== null) throw conflict('this backup was deleted');
        if (backup.state === 'pending' || backup.state === 'running') throw conflict(`this backup is ${backup.state}`);
        const arts = await artifactsOf(ctx.db, [backup.id]);
        if (!arts.some((a) => a.state === 'failed')) throw conflict('every artifact of this backup is fine: nothing to repair');
        if (!arts.some((a) => a.state === 'success')) throw conflict('this backup has no good artifact to repair from');
        const job = await insertJob(ctx.db, newJob({ organizationId: org.id, kind: 'repair', backupId: backup.id, params: {}, actorId: req.principal.token.id, now: ctx.clock() }));
        ctx.nudge();
        return reply.status(202).send({ id: job.id, state: job.state });
      },
    );
  };
}
