/**
 * The access matrix of every native route, taken from the server's own OpenAPI document:
 *   (a) no (or a malformed) token           → 401 in the native error shape;
 *   (b) a token of another organization with every access on its own → 404 for anything
 *       under /v1/organizations/default/... (never 403, never 2xx: existence never leaks);
 *   (c) a token of the same organization with no access → 403 (list routes that show
 *       only what the token may see are an explicit allow-list below);
 *   (d) the admin token with a minimal valid request → its 2xx.
 * Path parameters are real resources made in before(); destructive calls act on
 * throwaway ones. A route missing from CASES fails, so a new route must be added there.
 * Then the production rule: delete/restore accesses on the organization do not reach the
 * backups of a production branch, which need the *_production_* accesses.
 *
 * The job runner runs only while the fixtures' backups are made; the restores and
 * verifications queued below stay pending, so nothing is created on the database server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, registerBranch, startServer, waitForBackup, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { authHeaders, discoverRoutes, errorShapeProblem, fillPath, RawClient, routeKey, type RouteSpec } from '../helpers/routes.js';
import { ALL_ACCESSES } from '../../src/catalog/tokens.js';

/** Real resources the routes are called on. */
interface Fixtures {
  source: string;
  orgId: string;
  recipient: string;
  mainKeep: string;
  mainVictim: string;
  mainVictim2: string;
  devKeep: string;
  devVictim: string;
  devVictim2: string;
  repairable: string;
  snapshot: string;
  artifact: string;
  devArtifact: string;
  policy: string;
  tokenId: string;
  mainBranchId: string;
}

type Params = Record<string, string>;

interface Case {
  /** The admin's answer to the minimal valid request. */
  ok: number;
  /** Overrides of the shared path parameters (for every check). */
  params?: (f: Fixtures) => Params;
  /** The minimal valid body (for every check, so that validation never answers first). */
  body?: (f: Fixtures) => unknown;
  /** For (d) only: make the throwaway resource the call consumes. */
  prepare?: (f: Fixtures) => Promise<Params>;
}

/**
 * (c) allow-list: routes whose documented answer to a token of the organization holding
 * no access is not 403. Each is a list that shows what the token may read, which is nothing.
 * Everything else must answer 403.
 */
const NO_ACCESS_EXCEPTIONS: Record<string, { status: number; why: string }> = {
  'GET /v1/organizations': { status: 200, why: 'lists the organizations the token may read (read_organization): none' },
  'GET /v1/organizations/{organization}/databases': { status: 200, why: 'lists the databases the token may read (read_databases): none' },
  'GET /v1/organizations/{organization}/databases/{database}/branches': { status: 200, why: 'lists the branches the token may read (read_branches): none' },
  'GET /v1/organizations/{organization}/overview': { status: 200, why: 'lists the branches the token may read backups of (read_backups): none' },
};

/**
 * (b): routes outside /v1/organizations/{organization}, where "another organization" is not
 * in the path, and what such a token gets there. Every route under it must answer 404.
 */
const OUTSIDE_ORGANIZATION: Record<string, { status: number; why: string }> = {
  'GET /v1/organizations': { status: 200, why: 'lists its own organization only (checked below)' },
  'POST /v1/organizations': { status: 403, why: 'only a server-admin (bootstrap) token creates organizations' },
};

let server: TestServer;
const uniq = (prefix: string) => `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
const scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-matrix-'));

async function admin(method: string, url: string, body?: unknown): Promise<any> {
  const r = await api(server, method, url, body);
  if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const ORG = '/v1/organizations/{organization}';
const DB = `${ORG}/databases/{database}`;
const BRANCH = `${DB}/branches/{branch}`;
const BACKUP = `${BRANCH}/backups/{id}`;
const TOKEN = `${ORG}/service-tokens/{id}`;
const POLICY = `${DB}/backup-policies/{id}`;
const DEST = `${ORG}/storage-destinations/{name}`;

/** A webhook and a notification channel for the routes that act on one. */
const webhook = async (): Promise<string> => (await admin('POST', '/v1/organizations/default/webhooks', { url: 'http://127.0.0.1:65533/hook' })).id;
const channel = async (): Promise<string> => (await admin('POST', '/v1/organizations/default/notification-channels', { name: uniq('ch'), type: 'ntfy', config: { url: 'http://127.0.0.1:65533/topic' } })).id;

/** One row per native route: its minimal valid request and documented exceptions. */
const CASES: Record<string, Case> = {
  'POST /v1/organizations': { ok: 201, body: () => ({ name: uniq('org') }) },
  'GET /v1/organizations': { ok: 200 },
  [`GET ${ORG}`]: { ok: 200 },
  [`PATCH ${ORG}`]: { ok: 200, body: (f) => ({ encryption_recipients: [f.recipient] }) },
  [`GET ${ORG}/audit-log`]: { ok: 200 },
  [`GET ${ORG}/overview`]: { ok: 200 },

  [`POST ${ORG}/databases`]: { ok: 201, body: () => ({ name: uniq('db'), kind: 'postgresql' }) },
  [`GET ${ORG}/databases`]: { ok: 200 },
  [`GET ${DB}`]: { ok: 200 },
  [`PATCH ${DB}`]: { ok: 200, body: () => ({ storage_destinations: null }) },

  [`POST ${DB}/branches`]: { ok: 201, body: (f) => ({ name: uniq('br'), connection_url: pgUrl(f.source) }) },
  [`GET ${DB}/branches`]: { ok: 200 },
  [`GET ${BRANCH}`]: { ok: 200 },
  [`PATCH ${BRANCH}`]: { ok: 200, body: () => ({ production: true }) },
  [`DELETE ${BRANCH}`]: {
    ok: 204,
    prepare: async (f) => {
      const name = uniq('gone');
      await admin('POST', '/v1/organizations/default/databases/app/branches', { name, connection_url: pgUrl(f.source) });
      return { branch: name };
    },
  },

  [`POST ${BRANCH}/backups`]: { ok: 201, params: () => ({ branch: 'dev' }), body: () => ({}) },
  [`GET ${BRANCH}/backups`]: { ok: 200 },
  [`GET ${BRANCH}/backup-history`]: { ok: 200 },
  [`GET ${BRANCH}/verifications`]: { ok: 200 },
  [`GET ${BRANCH}/recovery-window`]: { ok: 200 },
  [`GET ${BACKUP}`]: { ok: 200 },
  [`PATCH ${BACKUP}`]: { ok: 200, body: () => ({ protected: false }) },
  [`DELETE ${BACKUP}`]: { ok: 204, prepare: async (f) => ({ id: f.mainVictim }) },
  [`GET ${BACKUP}/artifacts`]: { ok: 200 },
  [`GET ${BACKUP}/progress`]: { ok: 200 },
  [`GET ${BACKUP}/download`]: { ok: 200 },
  [`POST ${BACKUP}/cancel`]: {
    ok: 200,
    body: () => ({}),
    prepare: async () => {
      // The runner is stopped: a new backup stays pending until canceled.
      const b = await admin('POST', '/v1/organizations/default/databases/app/branches/dev/backups', {});
      return { branch: 'dev', id: b.id };
    },
  },
  [`POST ${BACKUP}/verify`]: { ok: 202, body: () => ({}) },
  [`GET ${BACKUP}/verifications`]: { ok: 200 },
  [`POST ${BACKUP}/repair`]: { ok: 202, params: (f) => ({ branch: 'dev', id: f.repairable }), body: () => ({}) },

  [`POST ${ORG}/service-tokens`]: { ok: 201, body: () => ({ name: uniq('tok') }) },
  [`GET ${ORG}/service-tokens`]: { ok: 200 },
  [`GET ${TOKEN}`]: { ok: 200 },
  [`DELETE ${TOKEN}`]: {
    ok: 204,
    prepare: async () => ({ id: (await admin('POST', '/v1/organizations/default/service-tokens', { name: uniq('gone') })).id }),
  },
  [`GET ${TOKEN}/accesses`]: { ok: 200 },
  [`POST ${TOKEN}/accesses`]: { ok: 200, body: () => ({ accesses: ['read_backups'] }) },
  [`DELETE ${TOKEN}/accesses`]: { ok: 200, body: () => ({ accesses: ['read_backups'] }) },

  [`GET ${DB}/backup-policies`]: { ok: 200 },
  [`POST ${DB}/backup-policies/preview`]: { ok: 200, body: () => ({ frequency_value: 1, frequency_unit: 'day', schedule_time: '02:00' }) },
  [`POST ${DB}/backup-policies`]: {
    ok: 201,
    body: () => ({ name: uniq('pol'), target: 'development', retention_value: 1, retention_unit: 'day', frequency_value: 1, frequency_unit: 'day', schedule_time: '03:00' }),
  },
  [`GET ${POLICY}`]: { ok: 200 },
  [`PATCH ${POLICY}`]: { ok: 200, body: () => ({ display_name: 'Access matrix' }) },
  [`DELETE ${POLICY}`]: {
    ok: 204,
    prepare: async () => {
      const p = await admin('POST', '/v1/organizations/default/databases/app/backup-policies', {
        name: uniq('gone'),
        target: 'development',
        retention_value: 1,
        retention_unit: 'day',
        frequency_value: 1,
        frequency_unit: 'day',
        schedule_time: '04:00',
      });
      return { id: p.id };
    },
  },

  [`GET ${ORG}/storage-destinations`]: { ok: 200 },
  [`POST ${ORG}/storage-destinations`]: { ok: 201, body: () => ({ name: uniq('dst'), provider: 'local', config: { path: path.join(scratchDir, uniq('dst')) } }) },
  [`GET ${DEST}`]: { ok: 200 },
  [`PATCH ${DEST}`]: { ok: 200, body: () => ({ default: false }) },
  [`DELETE ${DEST}`]: {
    ok: 204,
    prepare: async () => {
      const name = uniq('gone');
      await admin('POST', '/v1/organizations/default/storage-destinations', { name, provider: 'local', config: { path: path.join(scratchDir, name) } });
      return { name };
    },
  },
  [`POST ${DEST}/rebuild`]: { ok: 200, params: () => ({ name: 'local' }) },
  [`POST ${DEST}/test`]: { ok: 200 },

  // Notification targets point at a closed local port: a test send answers 200 with the failure.
  [`GET ${ORG}/webhooks`]: { ok: 200 },
  [`POST ${ORG}/webhooks`]: { ok: 201, body: () => ({ url: 'http://127.0.0.1:65533/hook' }) },
  [`GET ${ORG}/webhooks/{id}`]: { ok: 200, prepare: async () => ({ id: await webhook() }) },
  [`PATCH ${ORG}/webhooks/{id}`]: { ok: 200, body: () => ({ enabled: false }), prepare: async () => ({ id: await webhook() }) },
  [`DELETE ${ORG}/webhooks/{id}`]: { ok: 204, prepare: async () => ({ id: await webhook() }) },
  [`POST ${ORG}/webhooks/{id}/test`]: { ok: 200, prepare: async () => ({ id: await webhook() }) },
  [`GET ${ORG}/webhooks/{id}/deliveries`]: { ok: 200, prepare: async () => ({ id: await webhook() }) },
  [`GET ${ORG}/notification-channels`]: { ok: 200 },
  [`POST ${ORG}/notification-channels`]: { ok: 201, body: () => ({ name: uniq('ch'), type: 'ntfy', config: { url: 'http://127.0.0.1:65533/topic' } }) },
  [`GET ${ORG}/notification-channels/{id}`]: { ok: 200, prepare: async () => ({ id: await channel() }) },
  [`PATCH ${ORG}/notification-channels/{id}`]: { ok: 200, body: () => ({ enabled: false }), prepare: async () => ({ id: await channel() }) },
  [`DELETE ${ORG}/notification-channels/{id}`]: { ok: 204, prepare: async () => ({ id: await channel() }) },
  [`POST ${ORG}/notification-channels/{id}/test`]: { ok: 200, prepare: async () => ({ id: await channel() }) },
  [`GET ${ORG}/notification-channels/{id}/deliveries`]: { ok: 200, prepare: async () => ({ id: await channel() }) },

  [`GET ${DB}/schema-snapshots/{id}`]: { ok: 200 },
  [`GET ${DB}/schema-snapshots/{id}/diff/{other}`]: { ok: 200 },
};

function defaultParams(route: RouteSpec, f: Fixtures): Params {
  const id = route.path.includes('/service-tokens/') ? f.tokenId : route.path.includes('/backup-policies/') ? f.policy : route.path.includes('/schema-snapshots/') ? f.snapshot : f.mainKeep;
  return { organization: 'default', database: 'app', branch: 'main', id, other: f.snapshot, name: 'spare' };
}

describe('access matrix: every native route', () => {
  let routes: RouteSpec[];
  let client: RawClient;
  let f: Fixtures;
  const tokens: Record<'other' | 'none' | 'deleter' | 'prodDeleter', string> = { other: '', none: '', deleter: '', prodDeleter: '' };
  const source = uniqueName('sbx_matrix');

  before(async () => {
    server = await startServer({ STRONGBOX_RATE_LIMIT_PER_MINUTE: '0' }, { runner: false });
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table items (id int primary key, note text); insert into items values (1, $$a$$)'));
    const main = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(source), true);
    const dev = await registerBranch(server, 'default', 'app', 'postgresql', 'dev', pgUrl(source), false);

    const token = async (org: string, name: string, accesses: string[]) => {
      const t = await admin('POST', `/v1/organizations/${org}/service-tokens`, { name });
      if (accesses.length) await admin('POST', `/v1/organizations/${org}/service-tokens/${t.id}/accesses`, { accesses });
      return { id: t.id as string, token: `${t.id}:${t.token}` };
    };
    await admin('POST', '/v1/organizations', { name: 'other' });
    tokens.other = (await token('other', 'other-everything', [...ALL_ACCESSES])).token;
    tokens.none = (await token('default', 'nothing', [])).token;
    tokens.deleter = (await token('default', 'deleter', ['delete_backups', 'restore_backup'])).token;
    tokens.prodDeleter = (await token('default', 'prod-deleter', ['delete_production_branch_backups', 'restore_production_branch_backup'])).token;
    const target = await token('default', 'matrix-target', ['read_backups']);

    await admin('POST', '/v1/organizations/default/storage-destinations', { name: 'spare', provider: 'local', config: { path: path.join(scratchDir, 'spare') } });
    const flakyDir = path.join(scratchDir, 'flaky');
    await admin('POST', '/v1/organizations/default/storage-destinations', { name: 'flaky', provider: 'local', config: { path: flakyDir } });

    await server.runner.start();
    const take = async (branchPath: string) => {
      const b = await waitForBackup(server, branchPath, (await admin('POST', `${branchPath}/backups`, {})).id);
      return b;
    };
    const mainKeep = await take(main);
    const mainVictim = await take(main);
    const mainVictim2 = await take(main);
    const devKeep = await take(dev);
    const devVictim = await take(dev);
    const devVictim2 = await take(dev);
    for (const b of [mainKeep, mainVictim, mainVictim2, devKeep, devVictim, devVictim2]) assert.equal(b.state, 'success', JSON.stringify(b));
    // A backup whose second copy failed (its folder became a file): repair has work to do.
    await admin('PATCH', '/v1/organizations/default/databases/app', { storage_destinations: ['local', 'flaky'] });
    fs.rmSync(flakyDir, { recursive: true, force: true });
    fs.writeFileSync(flakyDir, 'not a folder');
    const repairable = await take(dev);
    await admin('PATCH', '/v1/organizations/default/databases/app', { storage_destinations: null });
    const arts = (await admin('GET', `${dev}/backups/${repairable.id}/artifacts`)).data;
    assert.deepEqual(arts.map((a: any) => a.state).sort(), ['failed', 'success'], 'one good copy, one failed');
    const verification = await admin('POST', `${main}/backups/${mainKeep.id}/verify`, {});
    for (let i = 0; i < 300; i++) {
      const v = (await admin('GET', `${main}/backups/${mainKeep.id}/verifications`)).data.find((x: any) => x.id === verification.id);
      if (v && !['pending', 'running'].includes(v.state)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await server.runner.stop();

    const org = await admin('GET', '/v1/organizations/default');
    f = {
      source,
      orgId: org.id,
      recipient: org.encryption_recipients[0],
      mainKeep: mainKeep.id,
      mainVictim: mainVictim.id,
      mainVictim2: mainVictim2.id,
      devKeep: devKeep.id,
      devVictim: devVictim.id,
      devVictim2: devVictim2.id,
      repairable: repairable.id,
      snapshot: mainKeep.schema_snapshot.id,
      artifact: (await admin('GET', `${main}/backups/${mainKeep.id}/artifacts`)).data[0].id,
      devArtifact: (await admin('GET', `${dev}/backups/${devKeep.id}/artifacts`)).data[0].id,
      policy: (await admin('GET', '/v1/organizations/default/databases/app/backup-policies')).data[0].id,
      tokenId: target.id,
      mainBranchId: (await admin('GET', main)).id,
    };
    // Public routes take no token: health, the document, and the dashboard's sign-in (test/api/ui-session.test.ts).
    routes = (await discoverRoutes(server.url)).filter((r) => r.dialect === 'native' && r.path !== '/health' && r.path !== '/openapi.json' && r.path !== '/ui/session');
    client = new RawClient(server.url, { maxSockets: 4 });
  });

  after(async () => {
    client?.close();
    await server?.close();
    await dropDatabase('postgresql', source);
    fs.rmSync(scratchDir, { recursive: true, force: true });
  });

  /** Send route's minimal request with `token` (null: none); `extra` params override (for d). */
  async function call(route: RouteSpec, token: string | null, extra: Params = {}) {
    const c = CASES[routeKey(route)];
    const params = { ...defaultParams(route, f), ...(c?.params?.(f) ?? {}), ...extra };
    const body = c?.body?.(f);
    const headers: Record<string, string> = { ...authHeaders('native', token) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = fillPath(route.path, params);
    const res = await client.request({ method: route.method, path: url, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { ...res, url };
  }

  function expectError(res: { status: number; json: unknown; text: string; url: string }, status: number, code: string) {
    assert.equal(res.status, status, `${res.url}: ${res.status} ${res.text.slice(0, 300)}`);
    assert.equal(errorShapeProblem('native', res.json), null, `${res.url}: ${res.text.slice(0, 300)}`);
    assert.equal((res.json as any).code, code);
  }

  test('the routes come from the OpenAPI document, and every one has a row in CASES (and every row a route)', () => {
    const keys = routes.map(routeKey);
    console.log(`access matrix: ${keys.length} native routes`);
    assert.ok(keys.length >= 40, `only ${keys.length} native routes`);
    const missing = keys.filter((k) => !(k in CASES));
    assert.deepEqual(missing, [], 'routes without a row in CASES (add their minimal valid request)');
    const stale = [...Object.keys(CASES), ...Object.keys(NO_ACCESS_EXCEPTIONS), ...Object.keys(OUTSIDE_ORGANIZATION)].filter((k) => !keys.includes(k));
    assert.deepEqual(stale, [], 'rows in CASES, NO_ACCESS_EXCEPTIONS or OUTSIDE_ORGANIZATION for routes the server no longer has');
    const outside = keys.filter((k) => !k.split(' ')[1].startsWith('/v1/organizations/{organization}'));
    assert.deepEqual(outside.sort(), Object.keys(OUTSIDE_ORGANIZATION).sort(), 'routes outside an organization are listed in OUTSIDE_ORGANIZATION');
  });

  test('(a) without a valid token: 401 in the native error shape', async (t) => {
    for (const route of routes) {
      await t.test(routeKey(route), async () => {
        expectError(await call(route, null), 401, 'unauthorized');
        expectError(await call(route, 'nosuchtoken:nosuchsecretnosuchsecret'), 401, 'unauthorized');
        expectError(await call(route, `${server.token.split(':')[0]}:wrong-secret-wrong-secret`), 401, 'unauthorized');
      });
    }
  });

  test("(b) another organization's token holding every access there: 404 under /v1/organizations/default, never 403 or 2xx", async (t) => {
    for (const route of routes) {
      await t.test(routeKey(route), async () => {
        const c = CASES[routeKey(route)];
        assert.ok(c, `no row in CASES for ${routeKey(route)}`);
        const res = await call(route, tokens.other);
        if (route.path.startsWith('/v1/organizations/{organization}')) {
          expectError(res, 404, 'not_found');
          assert.doesNotMatch((res.json as any).message, /forbidden|access/i, 'a 404 that does not hint at permissions');
        } else {
          const outside = OUTSIDE_ORGANIZATION[routeKey(route)];
          assert.ok(outside, `${routeKey(route)} is outside /v1/organizations/{organization}: OUTSIDE_ORGANIZATION must say what another organization gets`);
          assert.equal(res.status, outside.status, `${res.url}: ${res.text.slice(0, 300)} (${outside.why})`);
          if (res.status >= 400) assert.equal(errorShapeProblem('native', res.json), null, res.text);
        }
      });
    }
    const orgs = await api(server, 'GET', '/v1/organizations', undefined, tokens.other);
    assert.deepEqual(orgs.body.data.map((o: any) => o.name), ['other'], 'another organization lists only itself');
  });

  test('(c) a token of the organization without accesses: 403 (documented list exceptions aside)', async (t) => {
    for (const route of routes) {
      await t.test(routeKey(route), async () => {
        const c = CASES[routeKey(route)];
        assert.ok(c, `no row in CASES for ${routeKey(route)}`);
        const res = await call(route, tokens.none);
        const exception = NO_ACCESS_EXCEPTIONS[routeKey(route)];
        if (exception) {
          assert.equal(res.status, exception.status, `${res.url}: ${res.text.slice(0, 300)} (${exception.why})`);
          if (res.status === 200 && Array.isArray((res.json as any)?.data)) assert.deepEqual((res.json as any).data, [], 'a token without accesses sees an empty list');
          if (res.status >= 400) assert.equal(errorShapeProblem('native', res.json), null, res.text);
        } else {
          expectError(res, 403, 'forbidden');
        }
      });
    }
  });

  test('(d) the admin token with a minimal valid request: 2xx', async (t) => {
    for (const route of routes) {
      await t.test(routeKey(route), async () => {
        const c = CASES[routeKey(route)];
        assert.ok(c, `no row in CASES for ${routeKey(route)} (add its minimal valid request)`);
        const extra = c.prepare ? await c.prepare(f) : {};
        const res = await call(route, server.token, extra);
        assert.equal(res.status, c.ok, `${route.method} ${res.url}: ${res.text.slice(0, 400)}`);
      });
    }
  });

  test('production rule: delete_backups/restore_backup do not reach a production branch; the production accesses do not reach a development one', async () => {
    const base = '/v1/organizations/default/databases/app';
    const main = `${base}/branches/main/backups`;
    const dev = `${base}/branches/dev/backups`;
    const d = tokens.deleter;
    const p = tokens.prodDeleter;

    // Delete.
    const r1 = await api(server, 'DELETE', `${main}/${f.mainKeep}`, undefined, d);
    assert.equal(r1.status, 403, JSON.stringify(r1.body));
    assert.match(r1.body.message, /delete_production_branch_backups/);
    assert.equal((await api(server, 'DELETE', `${dev}/${f.devVictim}`, undefined, d)).status, 204);
    assert.equal((await api(server, 'DELETE', `${dev}/${f.devKeep}`, undefined, p)).status, 403, 'production accesses are not development ones');
    assert.equal((await api(server, 'DELETE', `${main}/${f.mainVictim2}`, undefined, p)).status, 204);

    // Restore (a new branch from a backup).
    const r2 = await api(server, 'POST', `${base}/branches`, { name: uniq('rp'), backup_id: f.mainKeep }, d);
    assert.equal(r2.status, 403, JSON.stringify(r2.body));
    assert.match(r2.body.message, /restore_production_branch_backup/);
    const r3 = await api(server, 'POST', `${base}/branches`, { name: uniq('rd'), backup_id: f.devKeep }, d);
    assert.equal(r3.status, 201, JSON.stringify(r3.body));
    assert.equal((await api(server, 'POST', `${base}/branches`, { name: uniq('rd'), backup_id: f.devKeep }, p)).status, 403);
    assert.equal((await api(server, 'POST', `${base}/branches`, { name: uniq('rp'), backup_id: f.mainKeep }, p)).status, 201);

    // Downloading the bytes is as good as restoring them.
    assert.equal((await api(server, 'GET', `${main}/${f.mainKeep}/download`, undefined, d)).status, 403);
    assert.equal((await api(server, 'GET', `${dev}/${f.devKeep}/download`, undefined, d)).status, 200);
    assert.equal((await api(server, 'GET', `${main}/${f.mainKeep}/download`, undefined, p)).status, 200);

    // The same rule through the compatible views.
    const y = '/managed-postgresql/v1';
    const yandex = (method: string, url: string, token: string, body?: unknown) => client.request({ method, path: url, headers: { ...authHeaders('yandex', token), ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const y1 = await yandex('DELETE', `${y}/backups/${f.mainKeep}`, d);
    assert.equal(y1.status, 403, y1.text);
    assert.equal((y1.json as any).code, 7, 'PERMISSION_DENIED');
    assert.equal((await yandex('DELETE', `${y}/backups/${f.devVictim2}`, d)).status, 200);
    assert.equal((await yandex('POST', `${y}/clusters:restore`, d, { backupId: f.mainKeep, name: uniq('yp') })).status, 403);
    assert.equal((await yandex('POST', `${y}/clusters:restore`, d, { backupId: f.devKeep, name: uniq('yd') })).status, 200);
    const bm = (id: string, token: string) => client.request({ method: 'GET', path: `/api/backups/${id}/download`, headers: authHeaders('backupman', token) });
    assert.equal((await bm(f.artifact, d)).status, 403);
    assert.equal((await bm(f.devArtifact, d)).status, 200);
  });

  test('compatible views: 401 in their own shape without a token; 404 for another organization', async () => {
    const all = await discoverRoutes(server.url);
    const compat = all.filter((r) => r.dialect !== 'native');
    assert.ok(compat.length >= 10, `only ${compat.length} compat routes`);
    const values: Params = { clusterId: f.mainBranchId, backupId: f.mainKeep, operationId: `bk-${f.mainKeep}`, driveFileId: f.artifact };
    const problems: string[] = [];
    for (const route of compat) {
      const query = route.query.some((q) => q.name === 'folderId') ? `?folderId=${f.orgId}` : '';
      const url = fillPath(route.path, values) + query;
      const body = route.body ? JSON.stringify({ backupId: f.mainKeep, name: uniq('c') }) : undefined;
      const send = (token: string | null) => client.request({ method: route.method, path: url, headers: { ...authHeaders(route.dialect, token), ...(body ? { 'content-type': 'application/json' } : {}) }, body });
      const none = await send(null);
      if (none.status !== 401) problems.push(`${route.method} ${url} without a token: ${none.status} ${none.text.slice(0, 200)}`);
      const shape = errorShapeProblem(route.dialect, none.json);
      if (shape) problems.push(`${route.method} ${url} without a token: ${shape}`);
      if (route.dialect === 'backupman' && (none.json as any)?.error !== 'Unauthorized') problems.push(`${route.method} ${url}: backupman says "Unauthorized", got ${none.text}`);
      if (route.dialect === 'yandex' && (none.json as any)?.code !== 16) problems.push(`${route.method} ${url}: Yandex UNAUTHENTICATED is code 16, got ${none.text}`);

      // backupman has no organization in its paths: a key sees its own. Its list is checked below.
      if (route.dialect === 'backupman' && !route.path.includes('{driveFileId}')) continue;
      const other = await send(tokens.other);
      if (other.status !== 404) problems.push(`${route.method} ${url} with another organization's token: ${other.status} ${other.text.slice(0, 200)}`);
      else if (errorShapeProblem(route.dialect, other.json)) problems.push(`${route.method} ${url}: ${errorShapeProblem(route.dialect, other.json)}`);
    }
    const list = await client.request({ method: 'GET', path: '/api/backups', headers: authHeaders('backupman', tokens.other) });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual((list.json as any).Results, [], "another organization's key lists none of default's backups");
    assert.deepEqual(problems, []);
  });
});
