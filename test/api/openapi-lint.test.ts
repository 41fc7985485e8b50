/**
 * The served OpenAPI document passes `redocly lint` as redocly.yaml configures it
 * (Redocly's recommended rules, plus: every tag an operation uses is declared with a
 * description) with no error and no warning. A failure lists each problem with its rule,
 * where it is (a JSON pointer into the document) and Redocly's message.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadConfig, lintFromString } from '@redocly/openapi-core';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { derivedOperationId } from '../../src/api/openapi.js';

describe('the OpenAPI document passes redocly lint (recommended)', () => {
  let server: TestServer;
  let doc: any;
  before(async () => {
    server = await startServer({}, { runner: false });
    const r = await api(server, 'GET', '/openapi.json', undefined, null);
    assert.equal(r.status, 200);
    doc = r.body;
  });
  after(async () => server?.close());

  test('no errors and no warnings', async () => {
    // The repository's redocly.yaml: recommended, nothing turned off, plus tags declared and described.
    const config = await loadConfig({ configPath: path.resolve(import.meta.dirname, '../../redocly.yaml') });
    const problems = await lintFromString({ source: JSON.stringify(doc, null, 2), absoluteRef: `${server.url}/openapi.json`, config });
    const lines = problems.map((p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer ?? ''}: ${p.message}`);
    assert.deepEqual(lines, [], `${lines.length} problem(s):\n${lines.join('\n')}`);
  });

  test('operationIds are unique and every operation has one', () => {
    const seen = new Map<string, string>();
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        assert.match(op.operationId ?? '', /^[A-Za-z][A-Za-z0-9_]*$/, `${where} has no usable operationId`);
        assert.ok(!seen.has(op.operationId), `${where} and ${seen.get(op.operationId)} share the operationId ${op.operationId}`);
        seen.set(op.operationId, where);
      }
    }
  });

  test("each dialect's routes take its own credentials and answer errors in its own body", () => {
    const expect = [
      { prefix: '/v1/', scheme: 'ServiceToken', error: 'Error' },
      { prefix: '/managed-postgresql/v1/', scheme: 'BearerToken', error: 'YandexError' },
      { prefix: '/managed-mysql/v1/', scheme: 'BearerToken', error: 'YandexError' },
      { prefix: '/api/', scheme: 'ApiKey', error: 'BackupmanError' },
    ];
    assert.deepEqual(doc.components.securitySchemes.ServiceToken, { type: 'apiKey', in: 'header', name: 'Authorization', description: doc.components.securitySchemes.ServiceToken.description });
    assert.equal(doc.components.securitySchemes.BearerToken.scheme, 'bearer');
    assert.equal(doc.components.securitySchemes.ApiKey.name, 'X-Api-Key');
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      const dialect = expect.find((e) => path.startsWith(e.prefix));
      for (const [method, op] of Object.entries<any>(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        if (!dialect) continue;
        assert.ok(op.security?.some((s: object) => dialect.scheme in s), `${where} does not take ${dialect.scheme}`);
        for (const status of ['400', '401', '429']) {
          assert.equal(op.responses[status]?.content?.['application/json']?.schema?.$ref, `#/components/schemas/${dialect.error}`, `${where}: ${status} is not a ${dialect.error}`);
        }
        if (/\{/.test(path)) assert.ok(op.responses['404'], `${where} names a resource but documents no 404`);
      }
    }
    assert.deepEqual(doc.paths['/health'].get.security, [], '/health needs no token');
    assert.equal(doc.servers.length > 0, true);
    assert.ok(doc.info.license?.name);
  });

  test('the documented error bodies are what the server answers, every field included', async () => {
    const yandexBackup = '/managed-postgresql/v1/backups/nosuchbackup';
    const cases: Array<{ url: string; headers: Record<string, string>; token: string | null; status: number; keys: string[] }> = [
      { url: '/v1/organizations/nosuchorg', headers: {}, token: server.token, status: 404, keys: ['code', 'message'] },
      { url: '/v1/organizations/default', headers: {}, token: null, status: 401, keys: ['code', 'message'] },
      { url: yandexBackup, headers: { authorization: `Bearer ${server.token}` }, token: null, status: 404, keys: ['code', 'details', 'message'] },
      { url: yandexBackup, headers: {}, token: null, status: 401, keys: ['code', 'details', 'message'] },
      { url: '/api/backups/nosuchfile/download', headers: { 'x-api-key': server.token }, token: null, status: 404, keys: ['error'] },
      { url: '/api/backups', headers: {}, token: null, status: 401, keys: ['error'] },
    ];
    for (const c of cases) {
      const r = await api(server, 'GET', c.url, undefined, c.token, c.headers);
      assert.equal(r.status, c.status, `GET ${c.url}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body).sort(), c.keys, `GET ${c.url}: ${JSON.stringify(r.body)}`);
      for (const k of c.keys) assert.notEqual(r.body[k], undefined);
    }
    // A 422 of the native dialect and a 409: the schema-serialized bodies keep their message.
    const bad = await api(server, 'POST', '/v1/organizations/default/databases', { name: 'x', kind: 'oracle' });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.code, 'invalid_params');
    assert.match(bad.body.message, /kind/);
  });
});

test('operationIds derived from a path read as what the route does', () => {
  const O = '/organizations/{organization}';
  const B = `${O}/databases/{database}/branches/{branch}`;
  const cases: Array<[string, string, string]> = [
    ['GET', '/organizations', 'list_organizations'],
    ['POST', '/organizations', 'create_organization'],
    ['GET', B, 'get_branch'],
    ['PATCH', B, 'update_branch'],
    ['GET', `${B}/backups`, 'list_backups'],
    ['DELETE', `${B}/backups/{id}`, 'delete_backup'],
    ['POST', `${B}/backups/{id}/cancel`, 'cancel_backup'],
    ['GET', `${B}/backups/{id}/artifacts`, 'list_backup_artifacts'],
    ['GET', `${B}/backups/{id}/progress`, 'get_backup_progress'],
    ['GET', `${O}/audit-log`, 'get_audit_log'],
    ['POST', `${O}/service-tokens`, 'create_service_token'],
    ['POST', `${O}/databases/{database}/backup-policies/preview`, 'preview_backup_policy'],
    ['GET', `${O}/webhooks/{id}/deliveries`, 'list_webhook_deliveries'],
    ['POST', `${O}/notification-channels/{id}/test`, 'test_notification_channel'],
    ['POST', '/clusters/{clusterId}:backup', 'backup_cluster'],
    ['POST', '/clusters:restore', 'restore_cluster'],
    ['GET', '/ui/session', 'get_session'],
    ['POST', '/ui/session', 'create_session'],
  ];
  for (const [method, path, id] of cases) assert.equal(derivedOperationId(method, path), id, `${method} ${path}`);
});
