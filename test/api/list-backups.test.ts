/** list_backups: every filter of the reference, the pagination envelope, and bad queries. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { api, registerBranch, startServer, waitForBackup, type TestServer } from '../helpers/server.js';
import { assertMatches, listBackupsSchema } from '../helpers/reference.js';
import { dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';

async function psql(sql: string, database = 'postgres') {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('GET .../backups', () => {
  let server: TestServer;
  let branchPath: string;
  const source = uniqueName('sbx_list');
  const ok: any[] = [];
  const failed: any[] = [];

  before(async () => {
    server = await startServer();
    await psql(`create database "${source}"`);
    await psql('create table t (id int primary key, note text); insert into t select g, md5(g::text) from generate_series(1, 500) g', source);
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'dev', pgUrl(source));
    for (let i = 0; i < 5; i++) {
      const r = await api(server, 'POST', `${branchPath}/backups`, { name: `ok-${i}` });
      ok.push(await waitForBackup(server, branchPath, r.body.id));
    }
    // The source goes away: the next backups fail, giving the list a second state.
    await psql(`drop database "${source}" with (force)`);
    for (let i = 0; i < 2; i++) {
      const r = await api(server, 'POST', `${branchPath}/backups`, { name: `bad-${i}` });
      failed.push(await waitForBackup(server, branchPath, r.body.id));
    }
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  const list = async (qs = '') => {
    const r = await api(server, 'GET', `${branchPath}/backups${qs}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertMatches(listBackupsSchema(), r.body, `list_backups${qs}`);
    return r.body;
  };

  test('the fixture has 5 good and 2 failed backups with readable reasons', () => {
    assert.deepEqual(ok.map((b) => b.state), ['success', 'success', 'success', 'success', 'success']);
    assert.deepEqual(failed.map((b) => b.state), ['failed', 'failed']);
  });

  test('newest first, three pages of three, with the full envelope', async () => {
    const p1 = await list('?per_page=3');
    assert.equal(p1.type, 'list');
    assert.equal(p1.current_page, 1);
    assert.equal(p1.total_count, 7);
    assert.equal(p1.total_pages, 3);
    assert.equal(p1.prev_page, null);
    assert.equal(p1.prev_page_url, null);
    assert.equal(p1.next_page, 2);
    assert.match(p1.next_page_url, /[?&]page=2/);
    assert.match(p1.next_page_url, /per_page=3/);
    assert.deepEqual(p1.data.map((b: any) => b.name), ['bad-1', 'bad-0', 'ok-4']);
    const p2 = await list('?per_page=3&page=2');
    assert.equal(p2.prev_page, 1);
    assert.equal(p2.next_page, 3);
    assert.deepEqual(p2.data.map((b: any) => b.name), ['ok-3', 'ok-2', 'ok-1']);
    const p3 = await list('?per_page=3&page=3');
    assert.equal(p3.next_page, null);
    assert.equal(p3.next_page_url, null);
    assert.equal(p3.prev_page, 2);
    assert.deepEqual(p3.data.map((b: any) => b.name), ['ok-0']);
    const beyond = await list('?per_page=3&page=9');
    assert.equal(beyond.data.length, 0);
    assert.equal((await list()).data.length, 7, 'default per_page is 25');
  });

  test('state filter', async () => {
    assert.equal((await list('?state=success')).total_count, 5);
    const f = await list('?state=failed');
    assert.equal(f.total_count, 2);
    for (const b of f.data) assert.equal(b.completed_at !== null, true);
    assert.equal((await list('?state=running')).total_count, 0);
  });

  test('from / to filter on the start time', async () => {
    const cut = ok[2].started_at;
    const from = await list(`?from=${encodeURIComponent(cut)}`);
    assert.deepEqual(from.data.map((b: any) => b.name).sort(), ['bad-0', 'bad-1', 'ok-2', 'ok-3', 'ok-4']);
    const to = await list(`?to=${encodeURIComponent(cut)}`);
    assert.deepEqual(to.data.map((b: any) => b.name).sort(), ['ok-0', 'ok-1', 'ok-2']);
    const both = await list(`?from=${encodeURIComponent(ok[1].started_at)}&to=${encodeURIComponent(ok[3].started_at)}`);
    assert.deepEqual(both.data.map((b: any) => b.name).sort(), ['ok-1', 'ok-2', 'ok-3']);
    assert.equal((await list('?from=2000-01-01')).total_count, 7, 'a plain date is accepted');
    assert.equal((await list('?to=2000-01-01T00:00:00Z')).total_count, 0);
  });

  test('running_at range', async () => {
    const b = ok[3];
    const r = await list(`?running_at=${encodeURIComponent(`${b.started_at}..${b.started_at}`)}`);
    assert.ok(r.data.some((x: any) => x.id === b.id));
    assert.ok(r.data.every((x: any) => x.started_at <= b.started_at && (x.completed_at === null || x.completed_at >= b.started_at)));
    assert.equal((await list(`?running_at=${encodeURIComponent('2001-01-01T00:00:00Z..2001-01-02T00:00:00Z')}`)).total_count, 0);
  });

  test('production filter: the branch is a development branch', async () => {
    assert.equal((await list('?production=true')).total_count, 0);
    assert.equal((await list('?production=false')).total_count, 7);
  });

  test('policy filter and all=true (deleted backups)', async () => {
    // Policies and deletion have their own routes elsewhere; the filter is what is tested here.
    await server.ctx.db.updateTable('backups').set({ backup_policy_id: 'pol123', deleted_at: null }).where('id', '=', ok[0].id).execute();
    const byPolicy = await list('?policy=pol123');
    assert.deepEqual(byPolicy.data.map((b: any) => b.id), [ok[0].id]);
    assert.equal((await list('?policy=nope')).total_count, 0);
    await server.ctx.db.updateTable('backups').set({ deleted_at: new Date().toISOString() }).where('id', '=', ok[1].id).execute();
    assert.equal((await list()).total_count, 6, 'deleted backups are hidden');
    const all = await list('?all=true');
    assert.equal(all.total_count, 7);
    assert.ok(all.data.find((b: any) => b.id === ok[1].id).deleted_at);
  });

  test('bad queries are 400 with a clear message, never an empty page', async () => {
    for (const qs of ['?from=yesterday', '?to=2023-02-30', '?from=2023-01-01T25:00:00Z', '?running_at=2023-01-01', '?running_at=a..b', '?running_at=2023-01-02..2023-01-01', '?per_page=101', '?per_page=0', '?page=0', '?page=abc', '?state=done', '?production=maybe', '?all=perhaps', '?bogus=1']) {
      const r = await api(server, 'GET', `${branchPath}/backups${qs}`);
      assert.equal(r.status, 400, `${qs}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'bad_request', qs);
      assert.ok(typeof r.body.message === 'string' && r.body.message.length > 5, qs);
    }
  });
});
