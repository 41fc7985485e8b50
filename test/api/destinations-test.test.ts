/**
 * POST .../storage-destinations/{name}/test: the probe a destination passed when it was made,
 * run again on demand (the dashboard's "Test" button). A reachable local folder passes and
 * keeps no probe behind; an S3 destination whose server went away fails with a readable
 * reason, as a 200 answer with ok: false; no secret is in either answer; the access is
 * write_organization, as for creating one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { s3DestinationConfig, startS3Server, type S3TestServer } from '../helpers/s3server.js';

describe('testing a storage destination', () => {
  let server: TestServer;
  let s3: S3TestServer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-dtest-'));
  const base = '/v1/organizations/default/storage-destinations';

  before(async () => {
    server = await startServer();
    s3 = await startS3Server();
  });
  after(async () => {
    await server?.close();
    await s3?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a reachable local folder passes, and the probe object is gone afterwards', async () => {
    const folder = path.join(dir, 'ok');
    assert.equal((await api(server, 'POST', base, { name: 'folder', provider: 'local', config: { path: folder } })).status, 201);
    const r = await api(server, 'POST', `${base}/folder/test`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ok, true);
    assert.equal(typeof r.body.duration_ms, 'number');
    assert.ok(r.body.duration_ms >= 0);
    assert.equal(r.body.error, undefined);
    // Only the (empty) probe folder the local provider keeps may remain: no probe object.
    const left = fs.readdirSync(folder, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    assert.deepEqual(left, []);

    // The built-in default destination too.
    assert.equal((await api(server, 'POST', `${base}/local/test`)).body.ok, true);
  });

  test('a folder that stopped being usable fails with its reason', async () => {
    const folder = path.join(dir, 'turns-into-a-file');
    assert.equal((await api(server, 'POST', base, { name: 'fragile', provider: 'local', config: { path: folder } })).status, 201);
    fs.rmSync(folder, { recursive: true, force: true });
    fs.writeFileSync(folder, 'not a folder any more');
    const r = await api(server, 'POST', `${base}/fragile/test`);
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, false);
    assert.match(r.body.error, /^cannot use this destination: /);
  });

  test('an S3 destination whose server is gone fails with a readable reason and no secret', async (t) => {
    const config = s3DestinationConfig(s3, 'dtest', { max_attempts: 1, connect_timeout_ms: 1000, request_timeout_ms: 2000 });
    const made = await api(server, 'POST', base, { name: 'bucket', provider: 's3', config });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const good = await api(server, 'POST', `${base}/bucket/test`);
    assert.deepEqual(Object.keys(good.body).sort(), ['duration_ms', 'ok']);
    assert.equal(good.body.ok, true);

    s3.goAway();
    const r = await api(server, 'POST', `${base}/bucket/test`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ok, false);
    assert.match(r.body.error, /^cannot use this destination: /);
    t.diagnostic(`the reason given: ${r.body.error}`);
    // Readable: a sentence of words, one line, not a stack or a dump of an object.
    assert.ok(r.body.error.length < 600, r.body.error);
    assert.doesNotMatch(r.body.error, /\n\s+at |\[object Object\]|undefined/);
    const text = JSON.stringify(r.body) + JSON.stringify(good.body);
    for (const secret of [s3.secretAccessKey, s3.accessKeyId]) assert.ok(!text.includes(secret), 'no credential in the answer');
    assert.ok(!fs.readFileSync(server.logFile, 'utf8').includes(s3.secretAccessKey), 'no credential in the log');
    s3.restore();
  });

  test('unknown names are 404; a token that may only read gets 403; no token 401', async () => {
    const missing = await api(server, 'POST', `${base}/nope/test`);
    assert.equal(missing.status, 404);
    assert.match(missing.body.message, /"nope" not found/);

    const t = (await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'reader' })).body;
    await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.id}/accesses`, { accesses: ['read_organization'] });
    const reader = `${t.id}:${t.token}`;
    const denied = await api(server, 'POST', `${base}/folder/test`, undefined, reader);
    assert.equal(denied.status, 403);
    assert.equal((await api(server, 'POST', `${base}/folder/test`, undefined, null)).status, 401);
  });
});
