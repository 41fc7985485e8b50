/** Catalog rows → native (PlanetScale) JSON. The only place that knows both shapes. */
import type { AppContext } from '../../context.js';
import type { Artifact, Backup, Branch, Database, Organization, ServiceToken } from '../../catalog/schema.js';
import { artifactsOf } from '../../catalog/backups.js';
import type { BackupJson } from './schemas.js';

export function presentOrganization(o: Organization) {
  return { id: o.id, name: o.name, created_at: o.created_at, updated_at: o.updated_at };
}

export function presentDatabase(d: Database) {
  return { id: d.id, name: d.name, kind: d.kind, created_at: d.created_at, updated_at: d.updated_at };
}

export function presentBranch(b: Branch, kind: Database['kind']) {
  return {
    id: b.id,
    name: b.name,
    production: b.production === 1,
    kind,
    connection: { host: b.conn_host, port: b.conn_port, database: b.conn_database, user: b.conn_user },
    server_version: b.server_version,
    created_at: b.created_at,
    updated_at: b.updated_at,
  };
}

export function presentToken(t: ServiceToken, secret?: string) {
  return {
    id: t.id,
    name: t.name,
    ...(secret !== undefined ? { token: secret } : {}),
    created_at: t.created_at,
    last_used_at: t.last_used_at,
    expires_at: t.expires_at,
  };
}

export function presentArtifact(a: Artifact) {
  return {
    id: a.id,
    destination: a.destination_name,
    provider: a.provider,
    path: a.path,
    size: a.size,
    sha256: a.sha256,
    state: a.state,
    error: a.error,
    created_at: a.created_at,
    updated_at: a.updated_at,
  };
}

/** Present backups of one branch; loads their artifacts in one query to price them. */
export async function presentBackups(ctx: AppContext, rows: Backup[], branch: Branch): Promise<BackupJson[]> {
  const artifacts = await artifactsOf(ctx.db, rows.map((r) => r.id));
  const storedBytes = new Map<string, number>();
  for (const a of artifacts) {
    if (a.state === 'success') storedBytes.set(a.backup_id, (storedBytes.get(a.backup_id) ?? 0) + a.size);
  }
  return rows.map((b) => {
    const bytes = b.deleted_at === null ? (storedBytes.get(b.id) ?? 0) : 0;
    return {
      id: b.id,
      name: b.name,
      state: b.state,
      size: b.size,
      // Every stored copy costs; price per GB-month is configurable (S3 standard by default).
      estimated_storage_cost: Math.round((bytes / 1e9) * ctx.config.storagePricePerGbMonth * 1e6) / 1e6,
      created_at: b.created_at,
      updated_at: b.updated_at,
      started_at: b.started_at,
      expires_at: b.expires_at,
      completed_at: b.completed_at,
      deleted_at: b.deleted_at,
      pvc_size: b.pvc_size,
      protected: b.protected === 1,
      required: b.required === 1,
      restored_branches: [],
      actor: b.actor_id === null ? null : { id: b.actor_id, display_name: b.actor_name ?? b.actor_id, avatar_url: '' },
      backup_policy: null,
      schema_snapshot: null,
      database_branch: { id: branch.id, name: branch.name, created_at: branch.created_at, updated_at: branch.updated_at, deleted_at: branch.deleted_at },
    };
  });
}
