/**
 * Tenant isolation of local storage. Organizations share the server's disk: every
 * organization's default destination is `<data dir>/backups`, its backups under
 * `<organization>/...`. An organization admin (not a server admin) must never reach
 * another organization's folder: not by "..", not through a symlink, not by asking a
 * rebuild what lies in a shared folder, and a restore uses only its own organization's key.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createPgFixture, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { identityFilesFor } from '../../src/encryption.js';
import { ALL_ACCESSES } from '../../src/catalog/tokens.js';

/** Every file and folder under `dir` (relative), or [] when it does not exist. */
function tree(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).map(String).sort() : [];
}

describe('local destinations stay inside the allowed roots, and each organization inside its own folder', () => {
  let server: TestServer;
  /** An organization admin of "acme": every access, on acme only. */
  let acme: { url: string; token: string };
  const extraRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-roots-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-outside-'));
  const source = uniqueName('sbx_roots');
  const restored = uniqueName('sbx_roots_r');
  let backups: string;
  let branchPath: string;
  let backupId: string;

  const post = (who: { url: string; token: string }, org: string, name: string, dir: unknown) => api(who, 'POST', `/v1/organizations/${org}/storage-destinations`, { name, provider: 'local', config: { path: dir } });

  before(async () => {
    server = await startServer({ STRONGBOX_LOCAL_ROOTS: extraRoot });
    backups = path.join(server.dataDir, 'backups');
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'acme' })).status, 201);
    const t = await api(server, 'POST', '/v1/organizations/acme/service-tokens', { name: 'acme-admin' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const g = await api(server, 'POST', `/v1/organizations/acme/service-tokens/${t.body.id}/accesses`, { accesses: [...ALL_ACCESSES] });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    acme = { url: server.url, token: `${t.body.id}:${t.body.token}` };

    // The default organization's backup, in the shared root: `<data dir>/backups/default/...`.
    await createPgFixture(source);
    branchPath = await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl(source));
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
    assert.equal(b.state, 'success', JSON.stringify(b));
    backupId = b.id;
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
    await dropDatabase('postgresql', restored);
    fs.rmSync(extraRoot, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  test("an organization admin cannot point a destination at another organization's folder, and nothing is written there first", async () => {
    const before = tree(path.join(backups, 'default'));
    fs.mkdirSync(path.join(extraRoot, 'acme'), { recursive: true });
    // One symlink to a folder that does not exist yet, one to the other organization's backups.
    fs.symlinkSync(path.join(extraRoot, 'default'), path.join(extraRoot, 'acme', 'link'));
    fs.symlinkSync(path.join(backups, 'default'), path.join(extraRoot, 'acme', 'backups-of-default'));
    for (const dir of [
      path.join(backups, 'acme') + '/../default',
      `${backups}/acme/x/../../default/shop`,
      path.join(backups, 'default'),
      backups,
      path.join(extraRoot, 'default'),
      path.join(extraRoot, 'acme', 'link', 'x'),
      path.join(extraRoot, 'acme', 'backups-of-default'),
      path.join(extraRoot, 'acme', 'backups-of-default', 'shop'),
    ]) {
      const r = await post(acme, 'acme', 'sneaky', dir);
      assert.equal(r.status, 403, `${dir}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'forbidden');
      assert.match(r.body.message, new RegExp(`a destination of organization "acme" must be inside ${backups}/acme or ${extraRoot}/acme`));
    }
    assert.deepEqual(tree(path.join(backups, 'default')), before, 'no probe object was written into the other organization\'s folder');
    assert.deepEqual(tree(path.join(extraRoot, 'default')), []);

    for (const dir of [outside, '/etc', path.join(server.dataDir, 'age'), server.dataDir]) {
      const r = await post(acme, 'acme', 'sneaky', dir);
      assert.equal(r.status, 422, `${dir}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'invalid_params');
      assert.match(r.body.message, /config\.path: .* (is outside the folders local destinations may use|is inside the data directory)/);
    }
    assert.deepEqual(tree(outside), []);

    // Its own folders, in any root; stored normalized.
    const own = await post(acme, 'acme', 'offsite', `${extraRoot}/acme/nas/../nas2`);
    assert.equal(own.status, 201, JSON.stringify(own.body));
    assert.equal(own.body.config.path, path.join(extraRoot, 'acme', 'nas2'));
    assert.equal((await post(acme, 'acme', 'near', path.join(backups, 'acme', 'near'))).status, 201);
    // Nor can it move one there later.
    const moved = await api(acme, 'PATCH', '/v1/organizations/acme/storage-destinations/near', { config: { path: path.join(backups, 'default') } });
    assert.equal(moved.status, 403, JSON.stringify(moved.body));
    assert.deepEqual(tree(path.join(backups, 'default')), before);
  });

  test('a server admin may use any folder of a root, never one outside or the data dir', async () => {
    assert.equal((await post(server, 'acme', 'shared', path.join(extraRoot, 'shared'))).status, 201);
    assert.equal((await post(server, 'default', 'outside', outside)).status, 422);
    assert.equal((await post(server, 'default', 'keys', path.join(server.dataDir, 'age'))).status, 422);
    assert.deepEqual(tree(outside), []);
  });

  test("a rebuild in a shared folder sees only the caller's own backups, and names no other organization's", async () => {
    // acme's default destination is the shared root itself, like every organization's.
    const r = await api(acme, 'POST', '/v1/organizations/acme/storage-destinations/local/rebuild');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { manifests: 0, backups_added: 0, artifacts_added: 0, databases_added: 0, branches_added: 0, problems: ['1 manifest(s) of other organizations in this destination were left alone'] });
    assert.equal((await api(acme, 'GET', '/v1/organizations/acme/databases')).body.data.length, 0);
  });

  test("a restore uses only its own organization's key, even for a backup of another that reached its catalog", async () => {
    // Another organization's encrypted dump placed in acme's folder with a manifest claiming it
    // for acme (anyone who can write to a destination acme controls could do this).
    const [folder] = tree(path.join(backups, 'default', 'shop', 'main')).filter((f) => f.includes(backupId) && !f.includes('/'));
    const from = path.join(backups, 'default', 'shop', 'main', folder);
    const to = path.join(backups, 'acme', 'shop', 'main', folder);
    fs.mkdirSync(to, { recursive: true });
    for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(to, f));
    const manifest = JSON.parse(fs.readFileSync(path.join(to, 'manifest.json'), 'utf8'));
    fs.writeFileSync(path.join(to, 'manifest.json'), JSON.stringify({ ...manifest, organization: 'acme', backup_id: `${backupId}x` }));
    // And one under acme's folder that still names its real organization.
    const named = path.join(backups, 'acme', 'shop', 'main', `${folder}-named`);
    fs.mkdirSync(named);
    for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(named, f));

    const r = await api(acme, 'POST', '/v1/organizations/acme/storage-destinations/local/rebuild');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.backups_added, 1);
    assert.deepEqual(r.body.problems, [`acme/shop/main/${folder}-named/manifest.json: the manifest belongs to another organization`, '1 manifest(s) of other organizations in this destination were left alone']);

    const acmeOrg = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'acme').executeTakeFirstOrThrow();
    const defaultOrg = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
    const files = identityFilesFor(server.ctx, acmeOrg.id);
    assert.deepEqual(files, [path.join(server.dataDir, 'age', `${acmeOrg.id}.key`)]);
    assert.ok(!identityFilesFor(server.ctx, defaultOrg.id).includes(files[0]));

    const dbPath = '/v1/organizations/acme/databases/shop';
    assert.equal((await api(acme, 'PATCH', `${dbPath}/branches/main`, { connection_url: pgUrl(source) })).status, 200);
    const req = await api(acme, 'POST', `${dbPath}/branches`, { name: restored, backup_id: `${backupId}x` });
    assert.equal(req.status, 201, JSON.stringify(req.body));
    const b = await waitForRestore(acme as TestServer, dbPath, restored);
    assert.equal(b.restore.state, 'failed', 'the other organization\'s key was not tried');
    assert.match(b.restore.error, /no identity|cannot decrypt/);
    await until('the half-restored database to be dropped', async () =>
      withPgClient(pgUrl('postgres'), async (c) => ((await c.query('select 1 from pg_database where datname = $1', [restored])).rowCount === 0 ? true : undefined)),
    );
  });

  test('a destination whose folder left the roots is refused when used, with the reason', async () => {
    assert.equal((await post(server, 'default', 'nas', path.join(extraRoot, 'nas'))).status, 201);
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default/databases/shop', { storage_destinations: ['nas'] })).status, 200);
    // The operator narrows the roots (a restart with another STRONGBOX_LOCAL_ROOTS).
    const roots = server.ctx.config.localRoots;
    server.ctx.config.localRoots = [roots[0]];
    try {
      const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
      assert.equal(b.state, 'failed');
      const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', b.id).executeTakeFirstOrThrow();
      assert.match(row.error!, /destination "nas": its folder \S+ is outside the folders local destinations may use \(STRONGBOX_LOCAL_ROOTS: /);
    } finally {
      server.ctx.config.localRoots = roots;
      await api(server, 'PATCH', '/v1/organizations/default/databases/shop', { storage_destinations: ['local'] });
    }
  });
});
