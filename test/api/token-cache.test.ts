/**
 * The principal cache (api/auth.ts): a token's row and accesses are kept for
 * PRINCIPAL_CACHE_MS between reads. The process that deletes a token or changes its accesses
 * sees it at once; a change made by another process (here: straight in the catalog, which is
 * what another serve or worker on the same PostgreSQL catalog does) within that bound.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, until, type TestServer } from '../helpers/server.js';
import { pgUrl } from '../helpers/databases.js';
import { PRINCIPAL_CACHE_MS } from '../../src/api/auth.js';
import { nowIso } from '../../src/catalog/ids.js';

describe('cached principals', () => {
  let server: TestServer;
  let branchPath: string;

  async function reader(): Promise<{ id: string; header: string }> {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'cached-reader' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const g = await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, { accesses: ['read_backups'] });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    return { id: t.body.id, header: `${t.body.id}:${t.body.token}` };
  }
  const list = (header: string) => api(server, 'GET', `${branchPath}/backups`, undefined, header).then((r) => r.status);

  before(async () => {
    server = await startServer({}, { runner: false });
    branchPath = await registerBranch(server, 'default', 'cache', 'postgresql', 'main', pgUrl('postgres'));
  });
  after(async () => {
    await server?.close();
  });

  test('a token deleted through the API stops working at once', async () => {
    const t = await reader();
    assert.equal(await list(t.header), 200);
    assert.equal(await list(t.header), 200); // now cached
    assert.equal((await api(server, 'DELETE', `/v1/organizations/default/service-tokens/${t.id}`)).status, 204);
    assert.equal(await list(t.header), 401);
  });

  test('accesses taken away through the API stop working at once, and granted ones work at once', async () => {
    const t = await reader();
    assert.equal(await list(t.header), 200);
    const revoke = await api(server, 'DELETE', `/v1/organizations/default/service-tokens/${t.id}/accesses`, { accesses: ['read_backups'] });
    assert.equal(revoke.status, 200, JSON.stringify(revoke.body));
    assert.equal(await list(t.header), 403);
    assert.equal((await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.id}/accesses`, { accesses: ['read_backups'] })).status, 200);
    assert.equal(await list(t.header), 200);
  });

  test('a token deleted or expired by another process stops working within PRINCIPAL_CACHE_MS', async () => {
    for (const change of [{ deleted_at: nowIso() }, { expires_at: nowIso(new Date(Date.now() + 300)) }]) {
      const t = await reader();
      assert.equal(await list(t.header), 200);
      const at = Date.now();
      await server.ctx.db.updateTable('service_tokens').set(change).where('id', '=', t.id).execute();
      await until('the change to be seen', async () => ((await list(t.header)) === 401 ? true : undefined), 10_000, 50);
      const took = Date.now() - at;
      assert.ok(took <= PRINCIPAL_CACHE_MS + 1000, `took ${took} ms`);
    }
  });

  test('a wrong secret is refused even while the token is cached', async () => {
    const t = await reader();
    assert.equal(await list(t.header), 200);
    assert.equal(await list(`${t.id}:wrong-secret-wrong-secret`), 401);
    assert.equal(await list(t.header), 200);
  });
});
