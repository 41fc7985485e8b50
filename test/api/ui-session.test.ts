/**
 * The dashboard's server side: sign-in sessions in a cookie (flags, CSRF on writes, the
 * token's accesses exactly, the end of a session) and the built files it serves (headers,
 * caching, nothing outside the folder, a clear 503 when the dashboard is not built).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseCookies, serializeCookie } from '../../src/api/cookies.js';
import { UI_CSP } from '../../src/api/ui.js';
import { api, registerBranch, startServer, until, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';

describe('cookie header parsing', () => {
  test('reads pairs, trims, unquotes, keeps the first of a repeated name, skips junk', () => {
    const c = parseCookies('a=1; strongbox_session=abc ;b="q v";a=2; junk; =x; c=; d=e=f');
    assert.equal(c.get('a'), '1');
    assert.equal(c.get('strongbox_session'), 'abc');
    assert.equal(c.get('b'), 'q v');
    assert.equal(c.get('c'), '');
    assert.equal(c.get('d'), 'e=f');
    assert.equal(c.has('junk'), false);
    assert.equal(c.has(''), false);
    assert.equal(parseCookies(undefined).size, 0);
    assert.equal(parseCookies('').size, 0);
    assert.equal(parseCookies(['x=1', 'y=2']).get('y'), '2');
  });

  test('writes HttpOnly, SameSite=Strict, Path=/ cookies and refuses values cookies cannot carry', () => {
    assert.equal(serializeCookie('s', 'v'), 's=v; HttpOnly; SameSite=Strict; Path=/');
    assert.match(serializeCookie('s', 'v', { secure: true }), /; Secure$/);
    assert.match(serializeCookie('s', '', { maxAge: 0 }), /Max-Age=0; Expires=Thu, 01 Jan 1970/);
    assert.throws(() => serializeCookie('s', 'a;b'));
    assert.throws(() => serializeCookie('s', 'a b'));
    assert.throws(() => serializeCookie('a=b', 'v'));
  });
});

/** The cookie pair ("strongbox_session=...") a Set-Cookie header sets. */
function cookieOf(res: { headers: Headers }): string {
  const set = res.headers.get('set-cookie');
  assert.ok(set, 'a Set-Cookie header');
  return set.split(';')[0];
}

/** A request with the session cookie (and no Authorization header), maybe the CSRF token. */
function withSession(server: TestServer, method: string, url: string, cookie: string, csrf?: string, body?: unknown, headers: Record<string, string> = {}) {
  return api(server, method, url, body, null, { cookie, ...(csrf !== undefined ? { 'x-csrf-token': csrf } : {}), ...headers });
}

/** A GET whose path goes out exactly as written (fetch would resolve its "..").  */
function rawGet(base: string, rawPath: string): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard sessions', () => {
  let server: TestServer;
  let offsetMs = 0;
  const source = uniqueName('sbx_uisess');
  let branchPath: string;
  const uiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-outside-'));

  async function token(grants: Array<{ accesses: string[]; database?: string; branch?: string }>, name = 'ui-test'): Promise<{ id: string; value: string }> {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const g of grants) assert.equal((await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, g)).status, 200);
    return { id: t.body.id, value: `${t.body.id}:${t.body.token}` };
  }

  async function signIn(tokenValue: string, headers: Record<string, string> = {}) {
    const r = await api(server, 'POST', '/ui/session', { token: tokenValue }, null, headers);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { cookie: cookieOf(r), csrf: r.body.csrf_token as string, res: r };
  }

  before(async () => {
    fs.writeFileSync(path.join(uiDir, 'index.html'), '<!doctype html><title>Strongbox</title><script type="module" src="/ui/assets/app-3F2A9C1B.js"></script>');
    fs.mkdirSync(path.join(uiDir, 'assets'));
    fs.writeFileSync(path.join(uiDir, 'assets', 'app-3F2A9C1B.js'), 'console.log("hi")');
    fs.writeFileSync(path.join(uiDir, 'assets', 'app-3F2A9C1B.css'), 'body{}');
    fs.writeFileSync(path.join(uiDir, '.hidden'), 'no');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside the dashboard');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(uiDir, 'assets', 'link.txt'));
    server = await startServer({ STRONGBOX_UI_DIR: uiDir }, { clock: () => new Date(Date.now() + offsetMs) });
    await createDatabase('postgresql', source);
    branchPath = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source), true);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
    fs.rmSync(uiDir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  test('sign in sets an HttpOnly, SameSite=Strict, Path=/ cookie and answers the token, its organization and accesses', async () => {
    const { res, csrf } = await signIn(server.token);
    const set = res.headers.get('set-cookie')!;
    assert.match(set, /^strongbox_session=[A-Za-z0-9_-]{43}; /);
    for (const flag of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(set.split('; ').includes(flag), `${flag} in ${set}`);
    assert.ok(!set.includes('Secure'), 'no Secure flag over plain http');
    assert.equal(typeof csrf, 'string');
    assert.ok(csrf.length >= 32);
    assert.equal(res.body.token.id, server.token.split(':')[0]);
    assert.equal(res.body.token.superuser, true);
    assert.equal(res.body.organization.name, 'default');
    assert.ok(res.body.accesses.some((a: any) => a.access === 'write_backups' && a.resource_type === 'organization'));
    assert.equal(JSON.stringify(res.body).includes(server.token.split(':')[1]), false, 'the secret is not echoed');
    assert.equal(res.headers.get('cache-control'), 'no-store');

    // The catalog holds the secret's hash, not the secret.
    const secret = cookieOf(res).split('=')[1];
    const rows = await server.ctx.db.selectFrom('ui_sessions').selectAll().execute();
    assert.ok(rows.length >= 1);
    assert.ok(rows.every((r) => r.id !== secret && /^[0-9a-f]{64}$/.test(r.id)));
  });

  test('over https (X-Forwarded-Proto) the cookie is also Secure', async () => {
    const { res } = await signIn(server.token, { 'x-forwarded-proto': 'https' });
    assert.ok(res.headers.get('set-cookie')!.split('; ').includes('Secure'));
  });

  test('a wrong token is 401 whether or not its id exists; a malformed one is 400', async () => {
    const id = server.token.split(':')[0];
    const wrongSecret = await api(server, 'POST', '/ui/session', { token: `${id}:wrongsecretwrongsecret` }, null);
    const noSuchId = await api(server, 'POST', '/ui/session', { token: 'nosuchtoken:wrongsecretwrongsecret' }, null);
    assert.equal(wrongSecret.status, 401);
    assert.equal(noSuchId.status, 401);
    assert.deepEqual(wrongSecret.body, noSuchId.body, 'the same answer: it does not say which ids exist');
    assert.equal(wrongSecret.body.code, 'unauthorized');
    assert.equal(wrongSecret.headers.get('set-cookie'), null);
    const malformed = await api(server, 'POST', '/ui/session', { token: 'no-colon-here' }, null);
    assert.equal(malformed.status, 400);
    assert.match(malformed.body.message, /<token-id>:<secret>/);
    assert.equal((await api(server, 'POST', '/ui/session', {}, null)).status, 422);
    assert.equal((await api(server, 'POST', '/ui/session', { token: 5 }, null)).status, 422);
  });

  test('GET /ui/session answers the session of the cookie, 401 without one', async () => {
    const { cookie, csrf } = await signIn(server.token);
    const r = await withSession(server, 'GET', '/ui/session', cookie);
    assert.equal(r.status, 200);
    assert.equal(r.body.csrf_token, csrf);
    assert.equal(r.body.organization.name, 'default');
    const none = await api(server, 'GET', '/ui/session', undefined, null);
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'unauthorized');
    const forged = await withSession(server, 'GET', '/ui/session', `strongbox_session=${'A'.repeat(43)}`);
    assert.equal(forged.status, 401);
  });

  test('the cookie authenticates /v1 requests; writes need the X-CSRF-Token header', async () => {
    const { cookie, csrf } = await signIn(server.token);
    const list = await withSession(server, 'GET', `${branchPath}/backups`, cookie);
    assert.equal(list.status, 200, JSON.stringify(list.body));

    const name = uniqueName('uidb').replace(/_/g, '-');
    const missing = await withSession(server, 'POST', '/v1/organizations/default/databases', cookie, undefined, { name, kind: 'postgresql' });
    assert.equal(missing.status, 403);
    assert.deepEqual(Object.keys(missing.body).sort(), ['code', 'message']);
    assert.equal(missing.body.code, 'forbidden');
    assert.match(missing.body.message, /missing or wrong CSRF token/);
    const wrong = await withSession(server, 'POST', '/v1/organizations/default/databases', cookie, csrf.slice(0, -1) + (csrf.endsWith('A') ? 'B' : 'A'), { name, kind: 'postgresql' });
    assert.equal(wrong.status, 403);
    assert.equal((await api(server, 'GET', `/v1/organizations/default/databases/${name}`)).status, 404, 'the refused writes did nothing');

    const ok = await withSession(server, 'POST', '/v1/organizations/default/databases', cookie, csrf, { name, kind: 'postgresql' });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const doomed = await token([], 'ui-delete-me');
    assert.equal((await withSession(server, 'DELETE', `/v1/organizations/default/service-tokens/${doomed.id}`, cookie)).status, 403, 'a DELETE needs it too');
    assert.equal((await withSession(server, 'DELETE', `/v1/organizations/default/service-tokens/${doomed.id}`, cookie, csrf)).status, 204);

    // The write is audited as the session's token.
    const audit = await api(server, 'GET', '/v1/organizations/default/audit-log?per_page=50');
    const entry = audit.body.data.find((e: any) => e.method === 'POST' && e.path === '/v1/organizations/default/databases' && e.status === 201);
    assert.equal(entry?.actor?.id, server.token.split(':')[0]);
  });

  test("a session has exactly its token's accesses: a read-only token's session cannot back up", async () => {
    const reader = await token([{ accesses: ['read_backups', 'read_branches', 'read_databases'] }], 'ui-reader');
    const { cookie, csrf, res } = await signIn(reader.value);
    assert.equal(res.body.token.superuser, false);
    assert.deepEqual(res.body.accesses.map((a: any) => a.access).sort(), ['read_backups', 'read_branches', 'read_databases']);
    assert.equal((await withSession(server, 'GET', `${branchPath}/backups`, cookie)).status, 200);
    const viaCookie = await withSession(server, 'POST', `${branchPath}/backups`, cookie, csrf, {});
    const viaHeader = await api(server, 'POST', `${branchPath}/backups`, {}, reader.value);
    assert.equal(viaCookie.status, 403);
    assert.equal(viaHeader.status, 403);
    assert.deepEqual(viaCookie.body, viaHeader.body, 'the same refusal as with the Authorization header');
    // Another organization stays invisible (404), as with the header.
    assert.equal((await api(server, 'POST', '/v1/organizations', { name: 'ui-other' })).status, 201);
    assert.equal((await withSession(server, 'GET', '/v1/organizations/ui-other/databases', cookie)).status, 404);
    // An Authorization header wins over the cookie: an admin's cookie does not lift a reader's header.
    const admin = await signIn(server.token);
    const both = await api(server, 'POST', `${branchPath}/backups`, {}, reader.value, { cookie: admin.cookie, 'x-csrf-token': admin.csrf });
    assert.equal(both.status, 403);
  });

  test('a deleted token ends its sessions (401, cookie cleared, rows gone)', async () => {
    const t = await token([{ accesses: ['read_backups'] }], 'ui-doomed');
    const { cookie } = await signIn(t.value);
    assert.equal((await withSession(server, 'GET', `${branchPath}/backups`, cookie)).status, 200);
    assert.equal((await api(server, 'DELETE', `/v1/organizations/default/service-tokens/${t.id}`)).status, 204);
    const r = await withSession(server, 'GET', `${branchPath}/backups`, cookie);
    assert.equal(r.status, 401);
    assert.equal(r.body.code, 'unauthorized');
    assert.match(r.headers.get('set-cookie') ?? '', /^strongbox_session=; .*Max-Age=0/);
    assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 401);
    const left = await server.ctx.db.selectFrom('ui_sessions').select('id').where('token_id', '=', t.id).execute();
    assert.equal(left.length, 0);
  });

  test('a session idle for 12 hours is over', async () => {
    const { cookie } = await signIn(server.token);
    offsetMs = 11 * 3600_000;
    try {
      assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 200, 'used after 11 h: still alive, and its deadline moves');
      offsetMs = 22 * 3600_000;
      assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 200, '11 h after its last use');
      offsetMs = 34 * 3600_000 + 60_000;
      assert.equal((await withSession(server, 'GET', `${branchPath}/backups`, cookie)).status, 401, 'idle for 12 h');
    } finally {
      offsetMs = 0;
    }
  });

  test('however busy, a session ends 7 days after its sign-in', async () => {
    const { cookie } = await signIn(server.token);
    try {
      for (let h = 10; h < 7 * 24; h += 10) {
        offsetMs = h * 3600_000;
        assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 200, `used every 10 hours: alive at ${h} h`);
      }
      offsetMs = 7 * 24 * 3600_000 + 60_000;
      assert.equal((await withSession(server, 'GET', `${branchPath}/backups`, cookie)).status, 401);
    } finally {
      offsetMs = 0;
    }
  });

  test('sign out needs the CSRF token, ends the session and clears the cookie', async () => {
    const { cookie, csrf } = await signIn(server.token);
    const refused = await withSession(server, 'DELETE', '/ui/session', cookie);
    assert.equal(refused.status, 403);
    assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 200, 'a refused sign-out leaves the session');
    const out = await withSession(server, 'DELETE', '/ui/session', cookie, csrf);
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /^strongbox_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0/);
    assert.equal((await withSession(server, 'GET', `${branchPath}/backups`, cookie)).status, 401);
    assert.equal((await withSession(server, 'GET', '/ui/session', cookie)).status, 401);
    // Signing out twice is no error.
    assert.equal((await withSession(server, 'DELETE', '/ui/session', cookie, csrf)).status, 204);
  });

  test('sign-in and sign-out are audited; no token secret or session secret reaches the log or the audit log', async () => {
    const t = await token([{ accesses: ['read_backups'] }], 'ui-audited');
    const { cookie, csrf } = await signIn(t.value);
    assert.equal((await withSession(server, 'DELETE', '/ui/session', cookie, csrf)).status, 204);
    // The audit entry is written once the answer has gone out: wait for it, don't race it.
    const mine = await until('the sign-in and the sign-out in the audit log', async () => {
      const audit = await api(server, 'GET', '/v1/organizations/default/audit-log?per_page=100');
      const found = audit.body.data.filter((e: any) => e.route === '/ui/session' && e.actor?.id === t.id);
      return found.length >= 2 ? found : undefined;
    }, 10_000);
    assert.deepEqual(mine.map((e: any) => `${e.method} ${e.status}`).sort(), ['DELETE 204', 'POST 200']);
    const log = fs.readFileSync(server.logFile, 'utf8');
    const rows = JSON.stringify(await server.ctx.db.selectFrom('audit_log').selectAll().execute());
    for (const secret of [t.value.split(':')[1], server.token.split(':')[1], cookie.split('=')[1]]) {
      assert.equal(log.includes(secret), false, 'a secret in the server log');
      assert.equal(rows.includes(secret), false, 'a secret in the audit log');
    }
  });

  test('/ui/session is in the OpenAPI document; the static routes are not', async () => {
    const doc = (await api(server, 'GET', '/openapi.json', undefined, null)).body;
    const s = doc.paths['/ui/session'];
    assert.ok(s?.post && s.get && s.delete);
    assert.equal(s.post.operationId, 'create_ui_session');
    assert.ok(s.post.responses['200'] && s.post.responses['401']);
    assert.ok(s.get.responses['200'] && s.get.responses['401']);
    assert.equal(doc.paths['/'], undefined);
    assert.equal(Object.keys(doc.paths).some((p) => p.startsWith('/ui/') && p !== '/ui/session'), false);
  });

  test('GET / serves index.html with the strict headers; hashed assets are cached for good', async () => {
    const page = await fetch(server.url + '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.equal(page.headers.get('content-security-policy'), UI_CSP);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(await page.text(), /<title>Strongbox<\/title>/);
    const again = await fetch(server.url + '/', { headers: { 'if-none-match': page.headers.get('etag')! } });
    assert.equal(again.status, 304);

    const js = await fetch(server.url + '/ui/assets/app-3F2A9C1B.js');
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type')!, /^text\/javascript/);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(await js.text(), 'console.log("hi")');
    assert.match((await fetch(server.url + '/ui/assets/app-3F2A9C1B.css')).headers.get('content-type')!, /^text\/css/);
    assert.equal((await fetch(server.url + '/ui/assets/nope.js')).status, 404);
  });

  test('nothing outside the dashboard folder is served: .., encoded .., hidden files, symlinks out', async () => {
    for (const p of [
      '/ui/assets/../../package.json',
      '/ui/../package.json',
      '/ui/assets/%2e%2e/%2e%2e/package.json',
      '/ui/assets/..%2f..%2fpackage.json',
      '/ui/assets/..%5c..%5cpackage.json',
      '/ui/%2fetc%2fpasswd',
      '/ui//etc/passwd',
      '/ui/.hidden',
      '/ui/assets/link.txt',
      '/ui/assets/app-3F2A9C1B.js%00.png',
      '/ui/assets',
      '/ui/',
    ]) {
      const r = await rawGet(server.url, p);
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.equal(r.body.includes('"name"'), false, `${p} leaked package.json`);
      assert.equal(r.body.includes('outside the dashboard'), false, `${p} followed a symlink out`);
    }
  });

  test('GET / answers 503 with what to do when the dashboard is not built', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-ui-empty-'));
    const bare = await startServer({ STRONGBOX_UI_DIR: empty }, { runner: false });
    try {
      const r = await fetch(bare.url + '/');
      assert.equal(r.status, 503);
      assert.match(await r.text(), /the dashboard is not built: run npm run build/);
      assert.equal(r.headers.get('content-security-policy'), UI_CSP);
      assert.equal((await fetch(bare.url + '/ui/assets/app.js')).status, 404);
      // The API does not need the dashboard.
      assert.equal((await api(bare, 'GET', '/v1/organizations')).status, 200);
    } finally {
      await bare.close();
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
