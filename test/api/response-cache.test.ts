/**
 * Answers of repeated catalog reads (api/response-cache.ts): a backups list or a backup asked
 * for again while the catalog is unchanged is sent from memory, and any change to the catalog
 * (through the API, through this process's own catalog connection, or from another connection
 * or process) is seen by the very next request. Answers are never shared between tokens or
 * between hosts the request names.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { pgUrl } from '../helpers/databases.js';
import { responseCacheLookups } from '../../src/metrics.js';

async function lookups(): Promise<{ hit: number; miss: number }> {
  const values = (await responseCacheLookups.get()).values;
  const of = (r: string) => values.find((v) => v.labels.result === r)?.value ?? 0;
  return { hit: of('hit'), miss: of('miss') };
}

/** Run `sql` on the server's catalog through a connection of its own (another process would do the same). */
async function fromAnotherConnection(server: TestServer, sql: string, params: string[]): Promise<void> {
  const url = server.ctx.config.catalogUrl;
  if (url.startsWith('sqlite:')) {
    const db = new SQLite(path.resolve(url.slice('sqlite:'.length)));
    try {
      db.prepare(sql.replace(/\$\d+/g, '?')).run(...params);
    } finally {
      db.close();
    }
  } else {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql, params);
    } finally {
      await c.end();
    }
  }
}

function getWithHost(server: TestServer, url: string, host: string): Promise<{ status: number; body: any }> {
  const target = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: target.hostname, port: target.port, path: url, headers: { host, authorization: server.token } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('answers of unchanged catalog reads', () => {
  let server: TestServer;
  let branchPath: string;
  let ids: string[];

  before(async () => {
    server = await startServer({}, { runner: false });
    branchPath = await registerBranch(server, 'default', 'rcache', 'postgresql', 'main', pgUrl('postgres'));
    ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
  });
  after(async () => {
    await server?.close();
  });

  const list = () => api(server, 'GET', `${branchPath}/backups?per_page=2`);

  test('a repeated read is sent from memory, with the same body and headers', async (t) => {
    // On PostgreSQL the stamp moves with any commit on the whole server, which other tests
    // share: a repeat is only bound to be a hit when nothing committed around the two reads.
    let quiet = 0;
    for (let attempt = 0; attempt < 200 && quiet === 0; attempt++) {
      const stampBefore = await server.ctx.catalog.changeStamp();
      const first = await list();
      assert.equal(first.status, 200);
      const before = await lookups();
      const again = await list();
      const after = await lookups();
      const stampAfter = await server.ctx.catalog.changeStamp();
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, first.body);
      assert.equal(again.headers.get('content-type'), first.headers.get('content-type'));
      assert.equal(again.body.total_count, 3);
      if (stampBefore !== stampAfter) continue;
      quiet++;
      assert.equal(after.hit - before.hit, 1, 'the catalog did not change, and the second read was not answered from memory');
    }
    if (server.ctx.catalog.dialect === 'sqlite') assert.equal(quiet, 1, 'nothing else writes this SQLite catalog: the first try is quiet');
    else if (quiet === 0) t.diagnostic('the PostgreSQL server was never quiet around two reads in 200 tries: hits not checked on this leg');
    // A single backup too.
    const one = await api(server, 'GET', `${branchPath}/backups/${ids[0]}`);
    const oneAgain = await api(server, 'GET', `${branchPath}/backups/${ids[0]}`);
    assert.deepEqual(oneAgain.body, one.body);
  });

  test('a change through the API shows in the next read', async () => {
    assert.equal((await list()).body.total_count, 3);
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201);
    ids.push(r.body.id);
    const now = await list();
    assert.equal(now.body.total_count, 4);
    assert.equal(now.body.data[0].id, r.body.id);
  });

  test("a change through this process's own catalog connection shows in the next read", async () => {
    const name = (await api(server, 'GET', `${branchPath}/backups/${ids[1]}`)).body.name;
    await server.ctx.db.updateTable('backups').set({ name: 'renamed-here' }).where('id', '=', ids[1]).execute();
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${ids[1]}`)).body.name, 'renamed-here');
    await server.ctx.db.updateTable('backups').set({ name }).where('id', '=', ids[1]).execute();
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${ids[1]}`)).body.name, name);
  });

  test('a change committed by another connection (another process) shows in the next read', async () => {
    const before = await list();
    const newest = before.body.data[0].id;
    await fromAnotherConnection(server, 'update backups set name = $1 where id = $2', ['renamed-elsewhere', newest]);
    const after = await list();
    assert.equal(after.body.data[0].name, 'renamed-elsewhere');
    await fromAnotherConnection(server, 'update backups set deleted_at = $1 where id = $2', [new Date().toISOString(), newest]);
    const gone = await list();
    assert.equal(gone.body.total_count, before.body.total_count - 1);
    assert.notEqual(gone.body.data[0].id, newest);
  });

  test('answers are not shared between tokens: one without access is refused while another is answered from memory', async () => {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'no-access' });
    assert.equal(t.status, 201);
    const stranger = `${t.body.id}:${t.body.token}`;
    assert.equal((await list()).status, 200);
    assert.equal((await list()).status, 200);
    const refused = await api(server, 'GET', `${branchPath}/backups?per_page=2`, undefined, stranger);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const wrong = await api(server, 'GET', `${branchPath}/backups?per_page=2`, undefined, `${server.token.split(':')[0]}:not-the-secret-at-all`);
    assert.equal(wrong.status, 401);
  });

  test('answers are not shared between hosts: absolute links name the host of each request', async () => {
    const a = await getWithHost(server, `${branchPath}/backups?per_page=1`, 'a.example:8080');
    const b = await getWithHost(server, `${branchPath}/backups?per_page=1`, 'b.example:8080');
    assert.match(a.body.next_page_url, /^http:\/\/a\.example:8080\//);
    assert.match(b.body.next_page_url, /^http:\/\/b\.example:8080\//);
    const a2 = await getWithHost(server, `${branchPath}/backups?per_page=1`, 'a.example:8080');
    assert.deepEqual(a2.body, a.body);
  });

  test('the Yandex views: a repeated list or get is sent from memory; a change from another connection shows in the next read', async () => {
    const clusterId = (await api(server, 'GET', branchPath)).body.id;
    const yandex = (url: string) => api(server, 'GET', url, undefined, `Bearer ${server.token}`);
    const listUrl = `/managed-postgresql/v1/clusters/${clusterId}/backups?pageSize=10`;
    const first = await yandex(listUrl);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const listed: string[] = first.body.backups.map((b: any) => b.id);
    assert.ok(listed.length >= 2, JSON.stringify(first.body));
    if (server.ctx.catalog.dialect === 'sqlite') {
      // Nothing else writes this catalog: a repeat is bound to be a hit (PostgreSQL's stamp moves with other tests' commits).
      for (const url of [listUrl, `/managed-postgresql/v1/backups/${listed[0]}`]) {
        const a = await yandex(url);
        const before = await lookups();
        const b = await yandex(url);
        const after = await lookups();
        assert.equal(a.status, 200);
        assert.deepEqual(b.body, a.body);
        assert.equal(after.hit - before.hit, 1, `${url}: the second read was not answered from memory`);
      }
    }
    await fromAnotherConnection(server, 'update backups set deleted_at = $1 where id = $2', [new Date().toISOString(), listed[0]]);
    assert.deepEqual((await yandex(listUrl)).body.backups.map((b: any) => b.id), listed.slice(1));
    assert.equal((await yandex(`/managed-postgresql/v1/backups/${listed[0]}`)).status, 404);
  });

  test('errors are not kept', async () => {
    const before = await lookups();
    assert.equal((await api(server, 'GET', `${branchPath}/backups/nosuchbackup0000`)).status, 404);
    assert.equal((await api(server, 'GET', `${branchPath}/backups/nosuchbackup0000`)).status, 404);
    const after = await lookups();
    assert.equal(after.hit - before.hit, 0);
    assert.equal(after.miss - before.miss, 2);
  });
});

describe('STRONGBOX_RESPONSE_CACHE_ENTRIES=0', () => {
  let server: TestServer;
  let branchPath: string;
  before(async () => {
    server = await startServer({ STRONGBOX_RESPONSE_CACHE_ENTRIES: '0' }, { runner: false });
    branchPath = await registerBranch(server, 'default', 'rnocache', 'postgresql', 'main', pgUrl('postgres'));
  });
  after(async () => {
    await server?.close();
  });

  test('keeps no answer', async () => {
    const before = await lookups();
    for (let i = 0; i < 3; i++) assert.equal((await api(server, 'GET', `${branchPath}/backups`)).status, 200);
    const after = await lookups();
    assert.equal(after.hit - before.hit, 0);
    assert.equal(after.miss - before.miss, 0);
  });
});
