/**
 * One contract that never drifts: the OpenAPI document covers every route the server has,
 * and the native Backup schema in it is the reference's, field for field.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { createBackupSchema, listBackupsSchema } from '../helpers/reference.js';

/** Fastify's ":param(regex)" → OpenAPI's "{param}", and its "::" (a literal colon) → ":". */
function openApiPath(url: string): string {
  return url
    .replace(/::/g, '\u0000')
    .replace(/:([A-Za-z_]+)(\([^)]*\))?/g, '{$1}')
    .replace(/\u0000/g, ':');
}

/** A JSON schema reduced to what a contract is about: types, nullability, enums, fields. */
function shape(schema: any, doc: any): any {
  if (schema?.$ref) return shape(resolveRef(doc, schema.$ref), doc);
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) {
    const nonNull = variants.filter((v: any) => v.type !== 'null');
    const nullable = nonNull.length < variants.length;
    if (nonNull.every((v: any) => v.const !== undefined || v.enum)) {
      return { type: 'string', nullable, enum: nonNull.flatMap((v: any) => v.enum ?? [v.const]).sort() };
    }
    assert.equal(nonNull.length, 1, `unexpected union ${JSON.stringify(schema).slice(0, 200)}`);
    return { ...shape(nonNull[0], doc), nullable: nullable || nonNull[0].nullable === true };
  }
  const type = schema.type;
  const out: any = { type: type === 'integer' ? 'integer' : type, nullable: schema.nullable === true };
  if (schema.enum) out.enum = [...schema.enum].sort();
  if (type === 'object') {
    out.properties = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, shape(v, doc)]));
    out.required = [...(schema.required ?? [])].sort();
  }
  if (type === 'array') out.items = shape(schema.items, doc);
  return out;
}

function resolveRef(doc: any, ref: string): any {
  const m = /^#\/components\/schemas\/(.+)$/.exec(ref);
  assert.ok(m, `unsupported $ref ${ref}`);
  return doc.components.schemas[m[1]];
}

/** Keep only what the reference describes, so our extra descriptions do not matter. */
function restrictTo(ours: any, ref: any): any {
  if (!ours || !ref || ref.type !== 'object') return ours;
  return {
    ...ours,
    properties: Object.fromEntries(Object.keys(ref.properties).map((k) => [k, restrictTo(ours.properties[k], ref.properties[k])])),
  };
}

describe('the OpenAPI document', () => {
  let server: TestServer;
  let doc: any;
  before(async () => {
    server = await startServer();
    doc = (await api(server, 'GET', '/openapi.json', undefined, null)).body;
  });
  after(async () => server?.close());

  test('covers every route of every dialect, and nothing that does not exist', () => {
    const documented = new Set<string>();
    for (const [p, item] of Object.entries<any>(doc.paths)) for (const m of Object.keys(item)) documented.add(`${m.toUpperCase()} ${p}`);
    const served = server.app.routeList.filter((r) => !r.hidden).map((r) => `${r.method} ${openApiPath(r.url)}`);
    assert.ok(served.length >= 40, `only ${served.length} routes`);
    for (const r of served) assert.ok(documented.has(r), `${r} is served but not in the OpenAPI document`);
    for (const d of documented) assert.ok(served.includes(d), `${d} is documented but not served`);
    for (const prefix of ['/v1/', '/managed-postgresql/v1/', '/managed-mysql/v1/', '/api/']) {
      assert.ok([...documented].some((d) => d.split(' ')[1].startsWith(prefix)), `no ${prefix} route documented`);
    }
  });

  test('every documented operation has a summary, its parameters and its responses', () => {
    for (const [p, item] of Object.entries<any>(doc.paths)) {
      for (const [m, op] of Object.entries<any>(item)) {
        assert.ok(op.summary, `${m} ${p} has no summary`);
        for (const name of [...p.matchAll(/\{(\w+)\}/g)].map((x) => x[1])) {
          assert.ok((op.parameters ?? []).some((q: any) => q.in === 'path' && q.name === name), `${m} ${p} does not document path parameter ${name}`);
        }
        assert.ok(op.responses && Object.keys(op.responses).length > 0, `${m} ${p} documents no response`);
      }
    }
  });

  test('the native Backup schema is the reference schema, field for field', () => {
    const listPath = doc.paths['/v1/organizations/{organization}/databases/{database}/branches/{branch}/backups'];
    const ourList = shape(listPath.get.responses['200'].content['application/json'].schema, doc);
    const refList = shape(listBackupsSchema(), {});
    const ourItem = ourList.properties.data.items;
    const refItem = refList.properties.data.items;
    assert.deepEqual(Object.keys(ourItem.properties).sort(), Object.keys(refItem.properties).sort(), 'the same fields');
    assert.deepEqual(restrictTo(ourItem, refItem).properties, refItem.properties, 'types, enums and nullability of every field');
    for (const k of refList.required) assert.ok(ourList.required.includes(k), `envelope field ${k} is required`);

    const ourCreate = shape(listPath.post.responses['201'].content['application/json'].schema, doc);
    const refCreate = shape(createBackupSchema(), {});
    assert.deepEqual(Object.keys(ourCreate.properties).sort(), Object.keys(refCreate.properties).sort());
    assert.deepEqual(ourCreate.required, refCreate.required);
  });
});
