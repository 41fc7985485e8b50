/**
 * Deeply nested JSON bodies (issue 10, defect 9): an 800 KB body nesting 400k levels in a
 * destination's config crashed the handler with "Maximum call stack size exceeded" (a 500)
 * after the destination probe had already written. The depth is now refused at parse time,
 * before any route runs, with a 400 in each dialect's error shape.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { jsonDepth, MAX_JSON_DEPTH } from '../../src/api/json-body.js';

/** `{"x": [[[ ... ]]]}` with `levels` levels in all, the outer object included. */
const nested = (levels: number, extra = '') => `{${extra}"x":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;

describe('deeply nested JSON bodies', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({}, { runner: false });
  });
  after(async () => {
    await server?.close();
  });

  test('jsonDepth counts arrays and objects, not brackets inside strings, without recursion', () => {
    assert.equal(jsonDepth('{}'), 1);
    assert.equal(jsonDepth('{"a":[{"b":[]}]}'), 4);
    assert.equal(jsonDepth('"[[[[{{{{"'), 0);
    assert.equal(jsonDepth('{"a":"\\"[[[[","b":[1]}'), 2, 'an escaped quote does not end the string');
    assert.equal(jsonDepth('{"a":"\\\\","b":[[1]]}'), 3, 'an escaped backslash does not escape the closing quote');
    assert.equal(jsonDepth('['.repeat(1_000_000) + ']'.repeat(1_000_000)), 1_000_000);
    assert.equal(jsonDepth('['.repeat(1_000_000), 10), 11, 'stops once past the limit');
  });

  test('an 800 KB destination config nesting 400k levels: 400 before the probe writes anything, not a 500', async () => {
    const dir = path.join(server.dataDir, 'backups', 'deep');
    const depth = 400_000;
    const body = `{"name":"deep","provider":"local","config":{"path":${JSON.stringify(dir)},"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    assert.ok(body.length > 800_000 && body.length < 1024 * 1024, 'under the body size limit, so only the depth can refuse it');
    const r = await api(server, 'POST', '/v1/organizations/default/storage-destinations', body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 'bad_request');
    assert.match(r.body.message, /deeper than 64 levels/);
    assert.equal(fs.existsSync(dir), false, 'the probe never ran');
    assert.equal((await api(server, 'GET', '/v1/organizations/default/storage-destinations/deep')).status, 404);
    assert.doesNotMatch(fs.readFileSync(server.logFile, 'utf8'), /Maximum call stack/);
  });

  test(`native: ${MAX_JSON_DEPTH} levels reach the route (422, unknown field), ${MAX_JSON_DEPTH + 1} are a 400`, async () => {
    const url = '/v1/organizations/default/databases';
    const ok = await api(server, 'POST', url, nested(MAX_JSON_DEPTH, '"name":"deepdb","kind":"postgresql",'));
    assert.equal(ok.status, 422, JSON.stringify(ok.body));
    assert.match(ok.body.message, /unknown field "x"/);
    const deep = await api(server, 'POST', url, nested(MAX_JSON_DEPTH + 1));
    assert.equal(deep.status, 400);
    assert.deepEqual(Object.keys(deep.body).sort(), ['code', 'message']);
    assert.equal(deep.body.code, 'bad_request');
    // Brackets inside strings are text, whatever their number.
    const text = await api(server, 'POST', url, { name: '['.repeat(200), kind: 'postgresql' });
    assert.equal(text.status, 422, JSON.stringify(text.body));
    assert.doesNotMatch(text.body.message, /deeper/);
  });

  test('Yandex view: 400 {"code": 3 INVALID_ARGUMENT, "message", "details"}', async () => {
    for (const prefix of ['/managed-postgresql/v1', '/managed-mysql/v1']) {
      const r = await api(server, 'POST', `${prefix}/clusters:restore`, nested(100_000, '"backupId":"x","name":"y",'), `Bearer ${server.token}`);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, 3);
      assert.match(r.body.message, /deeper than 64 levels/);
      assert.deepEqual(r.body.details, []);
    }
  });

  test('backupman view: 400 {"error": "..."}', async () => {
    const r = await api(server, 'POST', '/api/backups', nested(100_000), null, { 'x-api-key': server.token });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body), ['error']);
    assert.match(r.body.error, /deeper than 64 levels/);
  });

  test('malformed JSON is still a 400 in the dialect shape', async () => {
    const r = await api(server, 'POST', '/v1/organizations/default/databases', '{"name": ');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'bad_request');
    assert.match(r.body.message, /^malformed JSON body/);
    const p = await api(server, 'POST', '/v1/organizations/default/databases', '{"__proto__": {"x": 1}}');
    assert.equal(p.status, 400);
  });
});
