/** Authentication and authorization: 401 without credentials, 403 without the access, 404 across organizations. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';
import pg from 'pg';

describe('auth', () => {
  let server: TestServer;
  const source = uniqueName('sbx_auth');
  let mainPath: string;
  let otherPath: string;

  async function token(org: string, grants: Array<{ accesses: string[]; database?: string; branch?: string }>): Promise<string> {
    const t = await api(server, 'POST', `/v1/organizations/${org}/service-tokens`, { name: `t-${grants.map((g) => g.accesses.join('+')).join(',')}` });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    assert.ok(t.body.token, 'the secret is shown at creation');
    for (const g of grants) {
      const r = await api(server, 'POST', `/v1/organizations/${org}/service-tokens/${t.body.id}/accesses`, g);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    return `${t.body.id}:${t.body.token}`;
  }

  before(async () => {
    server = await startServer();
    const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query(`create database "${source}"`);
    await c.end();
    mainPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source), true);
    otherPath = await registerBranch(server, 'default', 'app', 'postgresql', 'feature', pgUrl(source));
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'other' })).status, 201);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('health and the OpenAPI document need no token', async () => {
    assert.equal((await api(server, 'GET', '/health', undefined, null)).status, 200);
    const doc = await api(server, 'GET', '/openapi.json', undefined, null);
    assert.equal(doc.status, 200);
    assert.ok(doc.body.paths['/v1/organizations/{organization}/databases/{database}/branches/{branch}/backups']);
  });

  test('401 without or with bad credentials, in the PlanetScale error shape', async () => {
    for (const t of [null, '', 'garbage', 'nosuchid:nosuchsecretnosuchsecret', `${server.token.split(':')[0]}:wrongsecretwrongsecret`]) {
      const r = await api(server, 'GET', `${mainPath}/backups`, undefined, t);
      assert.equal(r.status, 401, `token ${t}`);
      assert.equal(r.body.code, 'unauthorized');
      assert.equal(typeof r.body.message, 'string');
    }
  });

  test('403 when the access is missing; grants on a branch do not reach its siblings', async () => {
    const reader = await token('default', [{ accesses: ['read_backups'] }]);
    assert.equal((await api(server, 'GET', `${mainPath}/backups`, undefined, reader)).status, 200);
    const w = await api(server, 'POST', `${mainPath}/backups`, {}, reader);
    assert.equal(w.status, 403);
    assert.equal(w.body.code, 'forbidden');
    assert.match(w.body.message, /write_backups/);

    const branchWriter = await token('default', [{ accesses: ['write_backups', 'read_backups'], database: 'app', branch: 'feature' }]);
    assert.equal((await api(server, 'POST', `${otherPath}/backups`, {}, branchWriter)).status, 201);
    assert.equal((await api(server, 'POST', `${mainPath}/backups`, {}, branchWriter)).status, 403);
    assert.equal((await api(server, 'GET', `${mainPath}/backups`, undefined, branchWriter)).status, 403);

    const dbReader = await token('default', [{ accesses: ['read_backups', 'read_branches'], database: 'app' }]);
    assert.equal((await api(server, 'GET', `${mainPath}/backups`, undefined, dbReader)).status, 200);
    assert.equal((await api(server, 'GET', `${otherPath}/backups`, undefined, dbReader)).status, 200);
    assert.equal((await api(server, 'POST', '/v1/organizations/default/databases', { name: 'x', kind: 'mysql' }, dbReader)).status, 403);

    // Downloading a dump is as good as restoring it: production needs the production access.
    const restorer = await token('default', [{ accesses: ['restore_backup', 'read_backups'] }]);
    const list = await api(server, 'GET', `${mainPath}/backups`, undefined, restorer);
    assert.equal(list.status, 200);
  });

  test('a token of another organization gets 404, never a hint that the resource exists', async () => {
    const outsider = await token('other', [{ accesses: ['read_backups', 'write_backups', 'read_databases', 'read_branches', 'read_organization'] }]);
    for (const url of ['/v1/organizations/default', '/v1/organizations/default/databases', '/v1/organizations/default/databases/app', `${mainPath}`, `${mainPath}/backups`, `${mainPath}/backups/abc123`]) {
      const r = await api(server, 'GET', url, undefined, outsider);
      assert.equal(r.status, 404, url);
      assert.equal(r.body.code, 'not_found');
    }
    assert.equal((await api(server, 'POST', `${mainPath}/backups`, {}, outsider)).status, 404);
    const orgs = await api(server, 'GET', '/v1/organizations', undefined, outsider);
    assert.deepEqual(orgs.body.data.map((o: any) => o.name), ['other']);
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'third' }, outsider)).status, 403, 'only the server admin creates organizations');
  });

  test('a deleted token stops working at once', async () => {
    const t = await token('default', [{ accesses: ['read_backups'] }]);
    assert.equal((await api(server, 'GET', `${mainPath}/backups`, undefined, t)).status, 200);
    assert.equal((await api(server, 'DELETE', `/v1/organizations/default/service-tokens/${t.split(':')[0]}`)).status, 204);
    assert.equal((await api(server, 'GET', `${mainPath}/backups`, undefined, t)).status, 401);
  });
});
