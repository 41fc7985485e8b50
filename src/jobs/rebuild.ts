/**
 * Catalog rebuild: every artifact carries a manifest.json beside it, so the catalog's
 * record of backups can be rebuilt from storage alone after the catalog is lost.
 * Connection secrets are never in storage: rebuilt branches need their connection URL
 * set again before new backups.
 *
 * A rebuild works for one organization and sees only its manifests (keys under
 * `<organization>/`, naming it): several organizations may share a folder or a bucket, and
 * one must never learn another's database names or backup ids, nor take its backups in.
 * Each manifest is added in one transaction, and counted only once that committed.
 */
import type { AppContext } from '../context.js';
import type { Branch, Database, Organization, StorageDestination } from '../catalog/schema.js';
import { newId, nowIso } from '../catalog/ids.js';
import { createDefaultPolicies } from '../catalog/policies.js';
import { openDestination } from '../destinations.js';
import { isValidName } from '../names.js';
import { saveContents } from '../catalog/contents.js';
import { parseContents } from '../pipeline/rowcount/contents.js';
import type { StorageProvider } from '../storage/provider.js';
import { partsOf, SHA256SUMS, sha256Of, sha256Sums, type BackupPart } from './parallel-parts.js';

export interface RebuildResult {
  manifests: number;
  backups_added: number;
  artifacts_added: number;
  databases_added: number;
  branches_added: number;
  problems: string[];
}

interface Manifest {
  format: string;
  backup_id: string;
  name: string;
  organization: string;
  database: string;
  branch: string;
  production: boolean;
  engine: 'postgresql' | 'mysql';
  server_version: string | null;
  client_version: string | null;
  compression: string;
  encryption: unknown;
  file: string;
  size: number;
  raw_size: number;
  sha256: string;
  table_row_counts: Record<string, number> | null;
  database_size: number;
  created_at: string;
  started_at: string | null;
  completed_at: string;
  expires_at?: string;
  retention: { value: number; unit: string };
  /** Since 0.2 (absent from older manifests). */
  contents?: unknown;
  largest_statement?: number | null;
  database_properties?: unknown;
  ownership?: unknown;
  /** A parallel backup's parts (then `file` is its SHA256SUMS). */
  parts?: unknown;
}

/**
 * The parts a parallel backup's manifest lists, once each is found in `folder` with its
 * size, and SHA256SUMS with the backup's sha256; throws naming what is missing or differs.
 */
async function checkStoredParts(storage: StorageProvider, folder: string, m: Manifest): Promise<BackupPart[]> {
  if (m.file !== SHA256SUMS) throw new Error(`a parallel backup's manifest must name ${SHA256SUMS} as its file`);
  const parts = partsOf({ parts: JSON.stringify(m.parts) });
  if (!parts || parts.length === 0 || parts.some((p) => !Number.isInteger(p.size) || typeof p.sha256 !== 'string')) throw new Error('the manifest lists parts without their size or sha256');
  let total = 0;
  for (const p of parts) {
    const st = await storage.stat(`${folder}/${p.file}`);
    if (!st) throw new Error(`part ${p.file} is missing beside it`);
    if (st.size !== p.size) throw new Error(`part ${p.file} is ${st.size} bytes, the manifest says ${p.size}`);
    total += st.size;
  }
  if (total !== m.size) throw new Error(`the parts add up to ${total} bytes, the manifest says ${m.size}`);
  const chunks: Buffer[] = [];
  for await (const c of await storage.read(`${folder}/${SHA256SUMS}`)) chunks.push(c as Buffer);
  const sums = Buffer.concat(chunks);
  if (sha256Of(sums) !== m.sha256 || sums.toString('utf8') !== sha256Sums(parts)) throw new Error(`${SHA256SUMS} does not match the manifest`);
  return parts;
}

function checkManifest(m: any): asserts m is Manifest {
  const ok =
    m &&
    m.format === 'strongbox-manifest/1' &&
    typeof m.backup_id === 'string' &&
    /^[A-Za-z0-9_-]{1,64}$/.test(m.backup_id) &&
    isValidName(m.database) &&
    isValidName(m.branch) &&
    (m.engine === 'postgresql' || m.engine === 'mysql') &&
    typeof m.file === 'string' &&
    !m.file.includes('/') &&
    typeof m.sha256 === 'string' &&
    Number.isInteger(m.size) &&
    typeof m.created_at === 'string' &&
    typeof m.completed_at === 'string';
  if (!ok) throw new Error('not a Strongbox manifest, or one with missing fields');
}

export async function rebuildCatalog(ctx: AppContext, org: Organization, dest: StorageDestination): Promise<RebuildResult> {
  const storage = openDestination(ctx, dest);
  const result: RebuildResult = { manifests: 0, backups_added: 0, artifacts_added: 0, databases_added: 0, branches_added: 0, problems: [] };
  // Backups are written under `<organization>/...` (backupFolder), so the key alone says whose a manifest is.
  const own = `${org.name}/`;
  let others = 0;
  for await (const obj of storage.list('')) {
    if (!obj.key.endsWith('/manifest.json')) continue;
    if (!obj.key.startsWith(own)) {
      others++;
      continue;
    }
    result.manifests++;
    try {
      const chunks: Buffer[] = [];
      for await (const c of await storage.read(obj.key)) chunks.push(c as Buffer);
      const m = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      checkManifest(m);
      // Not echoed: the name it gives is not this caller's business.
      if (m.organization !== undefined && m.organization !== org.name) throw new Error('the manifest belongs to another organization');
      const folder = obj.key.slice(0, -'/manifest.json'.length);
      const dumpKey = `${folder}/${m.file}`;
      // A parallel backup: its parts and SHA256SUMS (parallel-parts.ts) instead of one dump.
      const parts = m.parts === undefined ? null : await checkStoredParts(storage, folder, m);
      if (parts === null) {
        const stored = await storage.stat(dumpKey);
        if (!stored) throw new Error(`the dump ${m.file} is missing beside it`);
        if (stored.size !== m.size) throw new Error(`the dump is ${stored.size} bytes, the manifest says ${m.size}`);
      }
      // Counted here, added to the result only once the transaction committed: a manifest
      // that fails half-way adds nothing, and reports nothing as added.
      const added = { backups_added: 0, artifacts_added: 0, databases_added: 0, branches_added: 0 };
      await ctx.db.transaction().execute(async (trx) => {
        const now = nowIso(ctx.clock());
        let database = await trx.selectFrom('databases').selectAll().where('organization_id', '=', org.id).where('name', '=', m.database).where('deleted_at', 'is', null).executeTakeFirst();
        if (!database) {
          database = { id: newId(), organization_id: org.id, name: m.database, kind: m.engine, created_at: now, updated_at: now, deleted_at: null, storage_destinations: null } satisfies Database;
          await trx.insertInto('databases').values(database).execute();
          await createDefaultPolicies(trx, database, ctx.clock());
          added.databases_added++;
        } else if (database.kind !== m.engine) throw new Error(`database "${m.database}" is ${database.kind} here but the backup is ${m.engine}`);
        let branch = await trx.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('name', '=', m.branch).where('deleted_at', 'is', null).executeTakeFirst();
        if (!branch) {
          branch = {
            id: newId(),
            organization_id: org.id,
            database_id: database.id,
            name: m.branch,
            production: m.production ? 1 : 0,
            // Not in storage, on purpose: set it again with PATCH before new backups.
            connection_url_enc: null,
            conn_host: '',
            conn_port: 0,
            conn_database: '',
            conn_user: '',
            server_version: m.server_version,
            created_at: now,
            updated_at: now,
            deleted_at: null,
            restored_from_backup_id: null,
            restore_job_id: null,
          } satisfies Branch;
          await trx.insertInto('branches').values(branch).execute();
          added.branches_added++;
        }
        const known = await trx.selectFrom('backups').select(['id', 'branch_id']).where('id', '=', m.backup_id).executeTakeFirst();
        if (known && known.branch_id !== branch.id) throw new Error(`backup ${m.backup_id} is already in the catalog under another branch`);
        if (!known) {
          await trx
            .insertInto('backups')
            .values({
              id: m.backup_id,
              organization_id: org.id,
              database_id: database.id,
              branch_id: branch.id,
              name: typeof m.name === 'string' ? m.name : m.backup_id,
              state: 'success',
              size: m.size,
              raw_size: Number.isInteger(m.raw_size) ? m.raw_size : 0,
              pvc_size: Number.isInteger(m.database_size) ? m.database_size : 0,
              protected: 0,
              required: 0,
              emergency: 0,
              backup_policy_id: null,
              actor_id: null,
              actor_name: null,
              retention_value: m.retention?.value ?? 7,
              retention_unit: m.retention?.unit ?? 'day',
              created_at: m.created_at,
              updated_at: now,
              started_at: m.started_at,
              completed_at: m.completed_at,
              expires_at: m.expires_at ?? null,
              deleted_at: null,
              error: null,
              engine: m.engine,
              server_version: m.server_version,
              client_version: m.client_version,
              compression: m.compression,
              sha256: m.sha256,
              table_row_counts: m.table_row_counts ? JSON.stringify(m.table_row_counts) : null,
              lease_owner: null,
              lease_expires_at: null,
              progress_at: m.completed_at,
              encryption: m.encryption ? JSON.stringify(m.encryption) : null,
              // What restores and verification rely on, recorded in the manifest since 0.2.
              largest_statement: Number.isInteger(m.largest_statement) ? m.largest_statement : null,
              database_properties: m.database_properties ? JSON.stringify(m.database_properties) : null,
              ownership: m.ownership ? JSON.stringify(m.ownership) : null,
            })
            .execute();
          // Without its contents a rebuilt backup would verify by row counts only.
          const contents = parseContents(m.contents ? JSON.stringify(m.contents) : null);
          if (contents) await saveContents(trx, m.backup_id, contents, ctx.clock());
          added.backups_added++;
        }
        const artifact = await trx.selectFrom('artifacts').select('id').where('backup_id', '=', m.backup_id).where('destination_id', '=', dest.id).where('state', '=', 'success').executeTakeFirst();
        if (!artifact) {
          await trx
            .insertInto('artifacts')
            .values({ id: newId(), backup_id: m.backup_id, destination_id: dest.id, destination_name: dest.name, provider: dest.provider, path: dumpKey, parts: parts === null ? null : JSON.stringify(parts), size: m.size, sha256: m.sha256, state: 'success', error: null, created_at: now, updated_at: now })
            .execute();
          added.artifacts_added++;
        }
      });
      for (const k of Object.keys(added) as (keyof typeof added)[]) result[k] += added[k];
    } catch (e) {
      result.problems.push(`${obj.key}: ${(e as Error).message}`);
    }
  }
  if (others > 0) result.problems.push(`${others} manifest(s) of other organizations in this destination were left alone`);
  return result;
}
