/**
 * Catalog rebuild reports what it did: a manifest whose transaction fails half-way (after
 * its database and branch were inserted) adds nothing, and counts nothing as added.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { api, startServer, type TestServer } from '../helpers/server.js';

/** Write a manifest and a dump of `size` random bytes the way a backup lays them out. */
function writeBackup(root: string, m: { organization: string; database: string; branch: string; backup_id: string }): void {
  const folder = path.join(root, m.organization, m.database, m.branch, `20260101T000000Z-${m.backup_id}`);
  fs.mkdirSync(folder, { recursive: true });
  const dump = crypto.randomBytes(64);
  fs.writeFileSync(path.join(folder, 'dump.pgdump.zst'), dump);
  const now = '2026-01-01T00:00:00.000Z';
  const manifest = {
    format: 'strongbox-manifest/1',
    name: m.backup_id,
    production: false,
    engine: 'postgresql',
    server_version: '15.0',
    client_version: '15.0',
    compression: 'zstd',
    encryption: null,
    file: 'dump.pgdump.zst',
    size: dump.length,
    raw_size: dump.length,
    sha256: crypto.createHash('sha256').update(dump).digest('hex'),
    table_row_counts: null,
    database_size: 0,
    created_at: now,
    started_at: now,
    completed_at: now,
    retention: { value: 7, unit: 'day' },
    ...m,
  };
  fs.writeFileSync(path.join(folder, 'manifest.json'), JSON.stringify(manifest));
}

describe('catalog rebuild', () => {
  let server: TestServer;
  let root: string;

  before(async () => {
    server = await startServer({}, { runner: false });
    root = path.join(server.dataDir, 'backups');
  });
  after(async () => {
    await server?.close();
  });

  test('counts only what committed: manifests that fail after their database and branch were added report none of them', async () => {
    // Four manifests of one backup id under four databases: the first one in wins; each of
    // the others fails on the backup ("already in the catalog under another branch") after
    // inserting its database, its policies and its branch, which roll back.
    for (const database of ['alpha', 'beta', 'gamma', 'delta']) writeBackup(root, { organization: 'default', database, branch: 'main', backup_id: 'rbshared1' });
    const r = await api(server, 'POST', '/v1/organizations/default/storage-destinations/local/rebuild');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.manifests, 4);
    assert.equal(r.body.problems.length, 3, JSON.stringify(r.body.problems));
    for (const p of r.body.problems) assert.match(p, /^default\/\w+\/main\/20260101T000000Z-rbshared1\/manifest\.json: backup rbshared1 is already in the catalog under another branch$/);
    assert.deepEqual(
      { backups: r.body.backups_added, artifacts: r.body.artifacts_added, databases: r.body.databases_added, branches: r.body.branches_added },
      { backups: 1, artifacts: 1, databases: 1, branches: 1 },
    );
    const dbs = (await api(server, 'GET', '/v1/organizations/default/databases')).body.data;
    assert.equal(dbs.length, 1, 'the failed manifests left no database behind');

    // Again: everything is known or fails, so nothing is added, and nothing is said to be.
    const again = await api(server, 'POST', '/v1/organizations/default/storage-destinations/local/rebuild');
    assert.deepEqual(
      { manifests: again.body.manifests, backups: again.body.backups_added, artifacts: again.body.artifacts_added, databases: again.body.databases_added, branches: again.body.branches_added, problems: again.body.problems.length },
      { manifests: 4, backups: 0, artifacts: 0, databases: 0, branches: 0, problems: 3 },
    );
  });
});
