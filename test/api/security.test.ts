/**
 * Security: secrets never leak (logs, API responses, catalog file, manifests, process
 * arguments), rate limits, the audit log, token expiry and revocation, key rotation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { catalogKind } from '../helpers/catalog.js';
import path from 'node:path';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { createMysqlFixture, dropDatabase, mysqlUrl, uniqueName, withMysqlConnection } from '../helpers/databases.js';
import { allProcesses } from '../helpers/processes.js';
import { rotateSecretKey } from '../../src/rotate.js';
import { loadSecretBox } from '../../src/secrets.js';

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? (e as any).path, e.name));
}

describe('secrets never leak', () => {
  let server: TestServer;
  const source = uniqueName('sbx_sec');
  const restored = uniqueName('sbx_sec_r');
  const user = uniqueName('sbx_sec_u').slice(0, 30);
  const password = `Sbx-Pw-${crypto.randomBytes(9).toString('base64url')}`;
  const url = `mysql://${user}:${encodeURIComponent(password)}@127.0.0.1:3306/${source}`;

  before(async () => {
    server = await startServer();
    await createMysqlFixture(source);
    await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
      await c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
      await c.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%'`);
    });
  });
  after(async () => {
    await server?.close();
    await dropDatabase('mysql', source);
    await dropDatabase('mysql', restored);
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`DROP USER IF EXISTS '${user}'@'%'`));
  });

  test('a full backup / restore / verify / download cycle leaves the password nowhere', async () => {
    const responses: string[] = [];
    const call = async (method: string, p: string, body?: unknown) => {
      const r = await api(server, method, p, body);
      responses.push(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
      return r;
    };
    const branchPath = await registerBranch(server, 'default', 'shop', 'mysql', 'main', url);
    // Watch every process's arguments while the dump runs.
    const seenArgs: string[] = [];
    const watcher = setInterval(() => {
      for (const p of allProcesses()) seenArgs.push(p.argv.join(' '));
    }, 20);
    const b = await call('POST', `${branchPath}/backups`, {});
    const done = await waitForBackup(server, branchPath, b.body.id);
    clearInterval(watcher);
    assert.equal(done.state, 'success');
    assert.ok(seenArgs.some((a) => /mariadb-dump|mysqldump/.test(a)), 'the dump process was seen');
    assert.ok(!seenArgs.some((a) => a.includes(password)), 'the password is in no process arguments');

    await call('POST', '/v1/organizations/default/databases/shop/branches', { name: restored, backup_id: done.id });
    for (let i = 0; i < 300; i++) {
      const r = await call('GET', `/v1/organizations/default/databases/shop/branches/${restored}`);
      if (!['pending', 'running'].includes(r.body.restore.state)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await call('POST', `${branchPath}/backups/${done.id}/verify`, { restore: true });
    await new Promise((res) => setTimeout(res, 1500));
    for (const p of ['/v1/organizations/default/databases/shop/branches', `${branchPath}`, `${branchPath}/backups`, `${branchPath}/backups/${done.id}/artifacts`, `${branchPath}/backups/${done.id}/verifications`, '/openapi.json', '/v1/organizations/default/audit-log']) {
      await call('GET', p);
    }
    // A failing connection produces an error message: it must not quote the URL either.
    await call('POST', '/v1/organizations/default/databases/shop/branches', { name: 'bad', connection_url: url.replace('127.0.0.1:3306', '127.0.0.1:1') });

    const encoded = encodeURIComponent(password);
    const leaks = (text: string) => text.includes(password) || text.includes(encoded) || text.includes(Buffer.from(password).toString('base64'));
    assert.ok(!responses.some(leaks), 'no API response holds the password');
    for (const file of filesUnder(server.dataDir)) {
      assert.ok(!leaks(fs.readFileSync(file).toString('latin1')), `${path.relative(server.dataDir, file)} holds the password`);
    }
    if (catalogKind() === 'sqlite') {
      // The catalog file (and its WAL) was among those: the URL is there only encrypted.
      assert.ok(filesUnder(server.dataDir).some((f) => f.endsWith('catalog.sqlite')));
    } else {
      // The catalog is a PostgreSQL database: every row of it, as pg_dump writes it.
      const dump = execFileSync('pg_dump', ['--data-only', '--dbname', server.ctx.config.catalogUrl], { maxBuffer: 256 * 1024 * 1024 }).toString('latin1');
      assert.match(dump, /COPY public\.branches \(.*connection_url_enc/, 'the dump holds the branches');
      assert.ok(!leaks(dump), 'the PostgreSQL catalog holds the password');
    }
    assert.ok(fs.readFileSync(server.logFile, 'utf8').length > 1000, 'the log was written (and checked)');
  });
});

describe('limits, audit, tokens, key rotation', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ STRONGBOX_RATE_LIMIT_PER_MINUTE: '20' });
  });
  after(async () => server?.close());

  async function token(body: Record<string, unknown>, accesses: string[] = ['read_organization']): Promise<{ id: string; auth: string }> {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', body);
    assert.equal(t.status, 201, JSON.stringify(t.body));
    await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, { accesses });
    return { id: t.body.id, auth: `${t.body.id}:${t.body.token}` };
  }

  test('a token past its rate limit gets 429 with Retry-After; other tokens are unaffected', async () => {
    const t = await token({ name: 'busy' });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 25; i++) {
      const r = await api(server, 'GET', '/v1/organizations/default', undefined, t.auth);
      statuses.push(r.status);
      if (r.status === 429) {
        retryAfter = r.headers.get('retry-after');
        assert.equal(r.body.code, 'rate_limited');
      }
    }
    assert.equal(statuses.filter((s) => s === 200).length, 20);
    assert.equal(statuses.filter((s) => s === 429).length, 5);
    assert.ok(Number(retryAfter) >= 1);
    const other = await token({ name: 'calm' });
    assert.equal((await api(server, 'GET', '/v1/organizations/default', undefined, other.auth)).status, 200);
    // Guessing secrets is limited too: bad credentials count against the token id.
    const guesses = [];
    for (let i = 0; i < 22; i++) guesses.push((await api(server, 'GET', '/v1/organizations/default', undefined, `${other.id}:wrong-${i}-aaaaaaaaaaaaaaaa`)).status);
    assert.ok(guesses.includes(429), 'guessing runs into the limit');
  });

  test('expired tokens get 401; revoked accesses stop working at once', async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    assert.equal((await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'old', expires_at: '2001-01-01T00:00:00Z' })).status, 422);
    const t = await token({ name: 'short', expires_at: expiresAt });
    assert.equal((await api(server, 'GET', '/v1/organizations/default', undefined, t.auth)).status, 200);
    await new Promise((r) => setTimeout(r, 1700));
    const r = await api(server, 'GET', '/v1/organizations/default', undefined, t.auth);
    assert.equal(r.status, 401);
    assert.match(r.body.message, /expired/);

    const t2 = await token({ name: 'revoked' }, ['read_organization', 'read_databases']);
    assert.equal((await api(server, 'GET', '/v1/organizations/default/databases', undefined, t2.auth)).status, 200);
    const del = await api(server, 'DELETE', `/v1/organizations/default/service-tokens/${t2.id}/accesses`, { accesses: ['read_organization'] });
    assert.deepEqual(del.body.data.map((a: any) => a.access), ['read_databases']);
    assert.equal((await api(server, 'GET', '/v1/organizations/default', undefined, t2.auth)).status, 403);
  });

  test('every write is in the audit log: who, what, when, from where, result', async () => {
    const t = await token({ name: 'auditee' }, ['read_organization']);
    await api(server, 'POST', '/v1/organizations/default/databases', { name: 'audited', kind: 'mysql' }, t.auth); // 403
    // The entry is written once the response has gone out (onResponse): a moment later.
    const log = await until('the refused write in the audit log', async () => {
      const l = await api(server, 'GET', '/v1/organizations/default/audit-log?per_page=100');
      assert.equal(l.status, 200);
      return l.body.data.some((e: any) => e.actor?.display_name === 'auditee' && e.method === 'POST') ? l : undefined;
    }, 5_000, 50);
    const refused = log.body.data.find((e: any) => e.actor?.display_name === 'auditee' && e.method === 'POST');
    assert.equal(refused.status, 403);
    assert.equal(refused.path, '/v1/organizations/default/databases');
    assert.equal(refused.route, '/v1/organizations/:organization/databases');
    assert.equal(refused.remote_address, '127.0.0.1');
    assert.ok(log.body.data.some((e: any) => e.method === 'POST' && e.route.endsWith('/service-tokens') && e.status === 201));
    assert.ok(log.body.data.every((e: any, i: number, all: any[]) => i === 0 || all[i - 1].created_at >= e.created_at), 'newest first');
    assert.ok(!log.body.data.some((e: any) => e.method === 'GET'), 'reads are not audited');
  });

  test('rotating the secret key re-encrypts every secret; a half-done rotation stays readable', async () => {
    const ctx = server.ctx;
    const dest = await api(server, 'GET', '/v1/organizations/default/storage-destinations/local');
    const before = fs.readFileSync(path.join(server.dataDir, 'secret.key'), 'utf8');
    const { secrets } = await rotateSecretKey({ ...ctx, config: { ...ctx.config, secretKey: null } }, null);
    assert.ok(secrets >= 1);
    const afterKey = fs.readFileSync(path.join(server.dataDir, 'secret.key'), 'utf8');
    assert.notEqual(afterKey, before);
    assert.equal(fs.existsSync(path.join(server.dataDir, 'secret.key.new')), false);
    assert.equal(fs.statSync(path.join(server.dataDir, 'secret.key')).mode & 0o777, 0o600);
    const box = loadSecretBox(server.dataDir, null);
    const row = await ctx.db.selectFrom('storage_destinations').select('config_enc').where('name', '=', 'local').executeTakeFirstOrThrow();
    assert.equal(JSON.parse(box.open(row.config_enc)).path, dest.body.config.path, 'readable with the new key');
    assert.throws(() => loadSecretBox(path.join(server.dataDir, 'nowhere'), before.trim()).open(row.config_enc), /cannot decrypt/, 'not with the old one');
  });
});
