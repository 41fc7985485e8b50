/**
 * The backupman API (`/api/backups`) as a view of the catalog: every backup the key may
 * read, the stored copies of each as "DriveFiles", a POST that backs up everything the
 * key may write, and the download of one stored copy. Auth: `X-Api-Key: <id>:<secret>`;
 * errors are `{"error": "..."}` (401: "Unauthorized"), see errors.ts. backupman has no
 * organizations: a key sees its own organization.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppContext } from '../../../context.js';
import { Readable } from 'node:stream';
import { createBackup, DEFAULT_RETENTION } from '../../../catalog/backups.js';
import { liveBackupsNewestFirst } from '../../../catalog/newest-first.js';
import type { Branch } from '../../../catalog/schema.js';
import { openDestinationById } from '../../../destinations.js';
import { openVerifiedArtifact } from '../../../jobs/artifacts.js';
import { partsTarball } from '../../../jobs/parallel-copies.js';
import type { StorageProvider } from '../../../storage/provider.js';
import { canSeeOrganization, hasAccess, hasAnyAccess, requireAccess, type Scope } from '../../auth.js';
import { conflict, forbidden, notFound } from '../../errors.js';
import { presentBackup, PRESENTED_ARTIFACT_COLUMNS, PRESENTED_COLUMNS } from './present.js';
import { BackupItem, BackupListBody, DriveFileParams, MessageBody, type BackupItemJson } from './schemas.js';

const tags = ['backupman (compatible)'];
/**
 * Backups read, presented and sent at a time by GET /api/backups; other requests run between
 * two batches. 100: a batch holds the loop ~2.5 ms (bench/list-api.ts: /health p99 during the
 * full list of 107,000 backups 8.8 ms, 57 ms with batches of 500, at no more CPU).
 */
const BATCH = 100;

function scopeOf(branch: Pick<Branch, 'organization_id' | 'database_id' | 'id'>): Scope {
  return { organizationId: branch.organization_id, databaseId: branch.database_id, branchId: branch.id };
}

export function backupmanRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/backups',
      {
        schema: {
          tags,
          summary: 'List backups',
          description:
            'Every backup of the branches on which the key holds read_backups, newest first, no paging. Deleted (and skipped) backups are left out. ' +
            'Status: any copy pending → pending, else any failed → failed, else finished (a backup still being made is pending; one that failed is failed).',
          response: { 200: BackupListBody },
        },
      },
      async (req, reply) => {
        const p = req.principal;
        const orgId = p.token.organization_id;
        if (!hasAnyAccess(p, 'read_backups', orgId)) throw forbidden('Forbidden: this key lacks the "read_backups" access');
        const branches = (await ctx.db.selectFrom('branches').selectAll().where('organization_id', '=', orgId).execute()).filter((b) => hasAccess(p, 'read_backups', scopeOf(b)));
        if (branches.length === 0) return { Results: [] };
        const databases = new Map((await ctx.db.selectFrom('databases').select(['id', 'name']).where('organization_id', '=', orgId).execute()).map((d) => [d.id, d.name]));
        const branchById = new Map(branches.map((b) => [b.id, b]));
        // DumpPath: the first good copy in a destination that is a folder on this machine.
        const providers = new Map<string, StorageProvider | null>();
        async function localPathOf(destinationId: string, key: string): Promise<string | null> {
          if (!providers.has(destinationId)) {
            try {
              providers.set(destinationId, (await openDestinationById(ctx, destinationId)).provider);
            } catch (e) {
              req.log.warn({ err: e, destination: destinationId }, 'cannot open storage destination');
              providers.set(destinationId, null);
            }
          }
          const provider = providers.get(destinationId);
          return provider?.capabilities.localPath ? provider.localPath(key) : null;
        }
        // The route's own serializer for one item: the bytes the whole list's would give.
        const serializeItem = reply.compileSerializationSchema(BackupItem) as (item: BackupItemJson) => string;
        const batches = liveBackupsNewestFirst(ctx.db, { branchIds: [...branchById.keys()], columns: PRESENTED_COLUMNS, batch: BATCH });
        // The first batch is read before the answer starts, so that a catalog that cannot be
        // read is a 500 rather than a cut-off 200.
        const head = await batches.next();
        async function* body(): AsyncGenerator<string> {
          let first = true;
          yield '{"Results":[';
          for (let next = head; !next.done; next = await batches.next()) {
            const backups = next.value;
            // The copies of the batch, in artifactsOf's order, only what is shown of them.
            const artifacts = await ctx.db
              .selectFrom('artifacts')
              .select([...PRESENTED_ARTIFACT_COLUMNS, 'destination_id'])
              .where('backup_id', 'in', backups.map((b) => b.id))
              .orderBy('created_at')
              .orderBy('destination_name')
              .execute();
            const byBackup = new Map<string, typeof artifacts>();
            for (const a of artifacts) byBackup.set(a.backup_id, [...(byBackup.get(a.backup_id) ?? []), a]);
            const items: string[] = [];
            for (const b of backups) {
              const files = byBackup.get(b.id) ?? [];
              let dumpPath: string | null = null;
              for (const a of files) {
                if (a.state !== 'success' || a.provider !== 'local') continue;
                dumpPath = await localPathOf(a.destination_id, a.path);
                if (dumpPath !== null) break;
              }
              const branch = branchById.get(b.branch_id)!;
              items.push(serializeItem(presentBackup(b, `${databases.get(b.database_id) ?? b.database_id}/${branch.name}`, files, dumpPath)));
            }
            yield (first ? '' : ',') + items.join(',');
            first = false;
            // Other requests run between two batches.
            await new Promise((r) => setImmediate(r));
          }
          yield ']}';
        }
        // Streamed a batch at a time: a list of 100,000 backups is ~70 MB of JSON, never held whole.
        return reply.type('application/json; charset=utf-8').send(Readable.from(body()) as never);
      },
    );

    app.post(
      '/backups',
      {
        schema: {
          tags,
          summary: 'Start a backup of every branch the key may write',
          description:
            'One backup of each branch on which the key holds write_backups, whose connection URL is set (and, for a branch made by a restore, whose restore succeeded). Answers at once; GET /api/backups shows them. ' +
            '409 when there is no such branch.',
          response: { 200: MessageBody },
        },
      },
      async (req) => {
        const p = req.principal;
        const orgId = p.token.organization_id;
        if (!hasAnyAccess(p, 'write_backups', orgId)) throw forbidden('Forbidden: this key lacks the "write_backups" access');
        const databases = await ctx.db.selectFrom('databases').selectAll().where('organization_id', '=', orgId).where('deleted_at', 'is', null).execute();
        const branches = await ctx.db
          .selectFrom('branches')
          .selectAll()
          .where('organization_id', '=', orgId)
          .where('deleted_at', 'is', null)
          .where('connection_url_enc', 'is not', null)
          .orderBy('created_at')
          .execute();
        // A branch made by a restore has nothing worth backing up until that restore succeeded.
        const restoreIds = branches.map((b) => b.restore_job_id).filter((x): x is string => x !== null);
        const unrestored = new Set(
          restoreIds.length ? (await ctx.db.selectFrom('jobs').select('id').where('id', 'in', restoreIds).where('state', '!=', 'success').execute()).map((j) => j.id) : [],
        );
        const now = ctx.clock();
        let started = 0;
        for (const branch of branches) {
          const database = databases.find((d) => d.id === branch.database_id);
          if (!database || !hasAccess(p, 'write_backups', scopeOf(branch))) continue;
          if (branch.restore_job_id !== null && unrestored.has(branch.restore_job_id)) continue;
          await createBackup(ctx.db, {
            database,
            branch,
            retentionValue: DEFAULT_RETENTION.value,
            retentionUnit: DEFAULT_RETENTION.unit,
            emergency: false,
            actor: { id: p.token.id, name: p.token.name },
            compression: 'zstd',
            now,
          });
          started++;
        }
        if (started === 0) throw conflict('there is no branch this key may back up (write_backups) with a connection URL set');
        ctx.nudge();
        return { Message: 'Backup started' };
      },
    );

    app.get(
      '/backups/:driveFileId/download',
      {
        schema: {
          tags,
          summary: 'Download one stored copy (DriveFile) of a dump',
          description:
            'The bytes exactly as stored (compressed, and encrypted when the organization has recipients), checked against their sha256 while they stream (X-Checksum-Sha256). ' +
            'Needs restore_backup (restore_production_branch_backup on production branches).',
          params: DriveFileParams,
        },
      },
      async (req, reply) => {
        const p = req.principal;
        const missing = () => notFound(`drive file "${req.params.driveFileId}" not found`);
        const artifact = await ctx.db.selectFrom('artifacts').selectAll().where('id', '=', req.params.driveFileId).executeTakeFirst();
        if (!artifact || artifact.state === 'deleted') throw missing();
        const backup = await ctx.db.selectFrom('backups').selectAll().where('id', '=', artifact.backup_id).executeTakeFirst();
        if (!backup || backup.deleted_at !== null || !canSeeOrganization(p, backup.organization_id)) throw missing();
        const branch = await ctx.db.selectFrom('branches').selectAll().where('id', '=', backup.branch_id).executeTakeFirstOrThrow();
        requireAccess(p, branch.production === 1 ? 'restore_production_branch_backup' : 'restore_backup', scopeOf(branch));
        if (artifact.state !== 'success') throw conflict(`this file is ${artifact.state === 'pending' ? 'still being written' : 'failed'}: there is nothing stored to download`);
        // A parallel backup's copy (stored in parts) comes as a tar of its parts, SHA256SUMS and manifest.
        if (artifact.parts !== null) {
          const tar = await partsTarball(ctx, backup, artifact);
          return reply
            .header('content-type', 'application/x-tar')
            .header('content-length', String(tar.size))
            .header('content-disposition', `attachment; filename="${tar.fileName}"`)
            .send(tar.stream);
        }
        // Checked as it streams: a corrupt copy is cut off before its end, never sent whole.
        const { stream } = await openVerifiedArtifact(ctx, artifact);
        const fileName = artifact.path.split('/').pop() ?? 'backup';
        return reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', String(artifact.size))
          .header('content-disposition', `attachment; filename="${fileName}"`)
          .header('x-checksum-sha256', artifact.sha256 ?? '')
          .send(stream);
      },
    );
  };
}
