/** Bad input always gets a clear 4xx in the PlanetScale error shape: never a 500, never a stack trace. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { dropDatabase, mysqlUrl, pgUrl, uniqueName } from '../helpers/databases.js';
import pg from 'pg';
import mysql from 'mysql2/promise';

describe('bad input', () => {
  let server: TestServer;
  const pgDb = uniqueName('sbx_bad');
  const myDb = uniqueName('sbx_bad');
  let pgPath: string;
  let myPath: string;

  before(async () => {
    server = await startServer();
    const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query(`create database "${pgDb}"`);
    await c.end();
    const m = await mysql.createConnection({ host: '127.0.0.1', user: 'root' });
    await m.query(`create database \`${myDb}\``);
    await m.end();
    pgPath = await registerBranch(server, 'default', 'pgapp', 'postgresql', 'main', pgUrl(pgDb));
    myPath = await registerBranch(server, 'default', 'myapp', 'mysql', 'main', mysqlUrl(myDb));
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', pgDb);
    await dropDatabase('mysql', myDb);
  });

  function assertClientError(r: { status: number; body: any }, status: number, code: string, what: string) {
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, code, what);
    assert.equal(typeof r.body.message, 'string', what);
    assert.doesNotMatch(r.body.message, /\n\s+at |node_modules|\.ts:\d+/, `${what}: no stack trace`);
    assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message'], what);
  }

  test('create backup: wrong types, unknown fields, retention out of range', async () => {
    const cases: Array<[unknown, string]> = [
      [{ retention_value: '5', retention_unit: 'day' }, 'retention_value'],
      [{ retention_value: 0, retention_unit: 'day' }, 'retention_value'],
      [{ retention_value: 1001, retention_unit: 'day' }, 'retention_value'],
      [{ retention_value: 1.5, retention_unit: 'day' }, 'retention_value'],
      [{ retention_value: -3, retention_unit: 'day' }, 'retention_value'],
      [{ retention_value: 5, retention_unit: 'fortnight' }, 'retention_unit'],
      [{ retention_value: 5 }, 'together'],
      [{ retention_unit: 'day' }, 'together'],
      [{ name: 42 }, 'name'],
      [{ name: '' }, 'name'],
      [{ emergency: 'yes' }, 'emergency'],
      [{ surprise: true }, 'surprise'],
      [[1, 2], 'body'],
      ['"just a string"', 'body'],
    ];
    for (const [body, mention] of cases) {
      const r = await api(server, 'POST', `${pgPath}/backups`, body);
      assertClientError(r, 422, 'invalid_params', JSON.stringify(body));
      assert.match(r.body.message, new RegExp(mention), JSON.stringify(body));
    }
    const ok = await api(server, 'POST', `${pgPath}/backups`, { retention_value: 1000, retention_unit: 'hour', emergency: true });
    assert.equal(ok.status, 201, 'the limits themselves are accepted');
  });

  test('emergency backups are PostgreSQL only', async () => {
    const r = await api(server, 'POST', `${myPath}/backups`, { emergency: true });
    assertClientError(r, 422, 'unprocessable', 'emergency on mysql');
    assert.match(r.body.message, /PostgreSQL/);
  });

  test('malformed JSON, wrong content type, huge bodies', async () => {
    assertClientError(await api(server, 'POST', `${pgPath}/backups`, '{"name": '), 400, 'bad_request', 'malformed JSON');
    assertClientError(await api(server, 'POST', `${pgPath}/backups`, '{"__proto__": {"x": 1}}'), 400, 'bad_request', 'prototype pollution');
    assertClientError(await api(server, 'POST', `${pgPath}/backups`, 'name=x', undefined, { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type', 'form body');
    assertClientError(await api(server, 'POST', `${pgPath}/backups`, JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) })), 413, 'payload_too_large', 'huge body');
    const empty = await api(server, 'POST', `${pgPath}/backups`, '');
    assert.equal(empty.status, 201, 'an empty body means no options');
  });

  test('branches: URLs that do not parse or do not connect, wrong kind, bad names', async () => {
    const base = '/v1/organizations/default/databases/pgapp/branches';
    const secret = 'S3cr3t-Pa55word';
    const cases: Array<[unknown, number, string, RegExp]> = [
      [{ name: 'b1', connection_url: 'not a url' }, 422, 'invalid_params', /connection_url/],
      [{ name: 'b1', connection_url: `ftp://u:${secret}@h/db` }, 422, 'invalid_params', /connection_url/],
      [{ name: 'b1', connection_url: `postgresql://u:${secret}@127.0.0.1:5432/` }, 422, 'invalid_params', /database/],
      [{ name: 'b1', connection_url: `postgresql://u:${secret}@127.0.0.1:5432/db?sslmode=require` }, 422, 'invalid_params', /connection_url/],
      [{ name: 'b1', connection_url: `postgresql://postgres:${secret}@127.0.0.1:1/${pgDb}` }, 422, 'unprocessable', /connect/],
      [{ name: 'b1', connection_url: `postgresql://postgres:${secret}@127.0.0.1:5432/sbx_no_such_db` }, 422, 'unprocessable', /sbx_no_such_db/],
      [{ name: 'b1', connection_url: `mysql://root:${secret}@127.0.0.1:3306/${myDb}` }, 422, 'unprocessable', /mysql/],
      [{ name: 'Bad Name!', connection_url: pgUrl(pgDb) }, 422, 'invalid_params', /name/],
      [{ name: '../../etc', connection_url: pgUrl(pgDb) }, 422, 'invalid_params', /name/],
      [{ name: 'b1', connection_url: pgUrl(pgDb), production: 'yes' }, 422, 'invalid_params', /production/],
      [{ name: 'b1' }, 422, 'invalid_params', /connection_url/],
    ];
    for (const [body, status, code, mention] of cases) {
      const r = await api(server, 'POST', base, body);
      assertClientError(r, status, code, JSON.stringify(body));
      assert.match(r.body.message, mention, JSON.stringify(body));
      assert.ok(!r.body.message.includes(secret), `the password never comes back: ${r.body.message}`);
    }
    const wrongUser = await api(server, 'POST', '/v1/organizations/default/databases/myapp/branches', { name: 'b2', connection_url: `mysql://nobody_here:${secret}@127.0.0.1:3306/${myDb}` });
    assertClientError(wrongUser, 422, 'unprocessable', 'mysql access denied');
    assert.ok(!wrongUser.body.message.includes(secret));
    assertClientError(await api(server, 'POST', base, { name: 'main', connection_url: pgUrl(pgDb) }), 409, 'conflict', 'duplicate branch');
  });

  test('databases and organizations: bad names, bad kinds, duplicates', async () => {
    assertClientError(await api(server, 'POST', '/v1/organizations/default/databases', { name: 'x', kind: 'oracle' }), 422, 'invalid_params', 'kind');
    assertClientError(await api(server, 'POST', '/v1/organizations/default/databases', { name: 'x'.repeat(64), kind: 'mysql' }), 422, 'invalid_params', 'long name');
    assertClientError(await api(server, 'POST', '/v1/organizations/default/databases', { name: 'pgapp', kind: 'postgresql' }), 409, 'conflict', 'duplicate');
    assertClientError(await api(server, 'POST', '/v1/organizations', { name: 'default' }), 409, 'conflict', 'duplicate org');
    assertClientError(await api(server, 'POST', '/v1/organizations', { name: "'; drop table x; --" }), 422, 'invalid_params', 'sql in name');
  });

  test('a NUL character in a path, a query or a JSON string is a 400 in each dialect, never a 500 from the catalog', async () => {
    assertClientError(await api(server, 'GET', `/v1/organizations/default/databases/pg%00app/branches`), 400, 'bad_request', 'NUL in a path segment');
    assertClientError(await api(server, 'GET', `${pgPath}/backups?state=a%00b`), 400, 'bad_request', 'NUL in the query');
    assertClientError(await api(server, 'POST', `${pgPath}/backups`, '{"name":"a\\u0000b"}'), 400, 'bad_request', 'NUL in a JSON string');
    assertClientError(await api(server, 'POST', '/v1/organizations/default/databases', '{"name":"x","kind":"postgresql","a\\u0000":1}'), 400, 'bad_request', 'NUL in a JSON key');
    const bearer = `Bearer ${server.token}`;
    const y = await api(server, 'GET', '/managed-postgresql/v1/clusters/a%00b/backups', undefined, bearer);
    assert.equal(y.status, 400, JSON.stringify(y.body));
    assert.equal(y.body.code, 3, 'Yandex: INVALID_ARGUMENT');
    const op = await api(server, 'POST', '/managed-mysql/v1/clusters/%00:backup', undefined, bearer);
    assert.equal(op.status, 400, JSON.stringify(op.body));
    const bm = await api(server, 'GET', '/api/backups/%00/download', undefined, null, { 'x-api-key': server.token });
    assert.equal(bm.status, 400, JSON.stringify(bm.body));
    assert.equal(typeof bm.body.error, 'string', 'backupman: {"error": ...}');
    // Nothing reached the catalog: the server logged no error.
    const { readFileSync } = await import('node:fs');
    const errors = readFileSync(server.logFile, 'utf8').split('\n').filter((l) => l.includes('"level":50'));
    assert.deepEqual(errors, []);
  });

  test('unknown things are 404 in the same shape', async () => {
    assertClientError(await api(server, 'GET', `${pgPath}/backups/nosuchbackup`), 404, 'not_found', 'backup');
    assertClientError(await api(server, 'GET', '/v1/organizations/default/databases/nope/branches/main/backups'), 404, 'not_found', 'database');
    assertClientError(await api(server, 'GET', '/v1/organizations/nope'), 404, 'not_found', 'org');
    assertClientError(await api(server, 'GET', '/v1/nothing/here'), 404, 'not_found', 'route');
    assertClientError(await api(server, 'GET', `${pgPath}/backups/bad%2F..%2Fid`), 400, 'bad_request', 'id with slashes');
  });
});
