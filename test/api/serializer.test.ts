/**
 * The serializer's rewritten response schemas (src/api/serializer.ts) must write exactly the
 * bytes the declared schemas write, for every value the declared schemas allow: compared over
 * every response schema the API modules export, with seeded random values (nulls, odd strings,
 * missing optional fields, large numbers), plus the cases that went wrong while it was built.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fastJsonStringify from 'fast-json-stringify';
import { Kind, Type, type TSchema } from '@sinclair/typebox';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { buildSerializer, serializableSchema } from '../../src/api/serializer.js';
import { mulberry32 } from '../helpers/random.js';
import * as native from '../../src/api/v1/schemas.js';
import * as destinations from '../../src/api/v1/destinations.js';
import * as webhooks from '../../src/api/v1/webhooks.js';
import * as yandex from '../../src/api/compat/yandex/schemas.js';
import * as backupman from '../../src/api/compat/backupman/schemas.js';
import { ERROR_SCHEMAS } from '../../src/api/openapi.js';

type Json = Record<string, unknown>;

const isSchema = (v: unknown): v is TSchema => typeof v === 'object' && v !== null && Kind in v;
const exported = (mod: Record<string, unknown>, name: string) =>
  Object.entries(mod).filter(([, v]) => isSchema(v)).map(([k, v]) => [`${name}.${k}`, v as TSchema] as const);

const schemas: Array<readonly [string, TSchema]> = [
  ...exported(native, 'native'),
  ...exported(destinations, 'destinations'),
  ...exported(webhooks, 'webhooks'),
  ...exported(yandex, 'yandex'),
  ...exported(backupman, 'backupman'),
];
// List pages wrap their items in the envelope: the shape the list routes answer with.
for (const [name, s] of [...schemas]) if (s.type === 'object') schemas.push([`ListEnvelope(${name})`, native.ListEnvelope(s)]);
const shared = Object.fromEntries([native.ErrorBody, ...ERROR_SCHEMAS].map((s) => [s.$id as string, s]));

const ODD_STRINGS = ['', 'plain', 'quote " and \\ backslash', 'line\nbreak\ttab\u0001', 'ünïcödé ✓ 𝄞', '\u2028\u2029', '</script>', 'x'.repeat(300)];

/** Whether a string schema's own constraints allow a string (names have patterns and lengths). */
function allows(schema: Json, v: string): boolean {
  if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) return false;
  if (typeof schema.minLength === 'number' && [...v].length < schema.minLength) return false;
  return !(typeof schema.maxLength === 'number' && [...v].length > schema.maxLength);
}

/** A random value the schema allows (what a handler could hand to the serializer). */
function valueFor(schema: Json, rnd: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  if (typeof schema.$ref === 'string') return valueFor(shared[schema.$ref] as Json, rnd, depth);
  if (schema.nullable === true && rnd() < 0.3) return null;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) return pick(schema.enum);
  for (const k of ['anyOf', 'oneOf'] as const) if (Array.isArray(schema[k])) return valueFor(pick(schema[k] as Json[]), rnd, depth);
  switch (schema.type) {
    case 'null':
      return null;
    case 'boolean':
      return rnd() < 0.5;
    case 'integer':
      return pick([0, 1, -1, 42, 2 ** 31, Number.MAX_SAFE_INTEGER, Math.floor(rnd() * 1e12)]);
    case 'number':
      return pick([0, 0.5, -3.25, 1e21, rnd() * 1e6]);
    case 'string':
      if (schema.format === 'date-time') return new Date(Math.floor(rnd() * 4e12)).toISOString();
      const fits = [...ODD_STRINGS, 'db_1', 'a-b.c', `age1${'q'.repeat(58)}`].filter((v) => allows(schema, v));
      assert.ok(fits.length > 0, `no test string fits ${JSON.stringify(schema)}`);
      return pick(fits);
    case 'array':
      return depth > 6 ? [] : Array.from({ length: Math.floor(rnd() * 4) }, () => valueFor(schema.items as Json, rnd, depth + 1));
    case 'object': {
      const out: Json = {};
      const required = new Set((schema.required as string[] | undefined) ?? []);
      for (const [k, s] of Object.entries((schema.properties as Record<string, Json> | undefined) ?? {})) {
        if (required.has(k) || rnd() < 0.6) out[k] = valueFor(s, rnd, depth + 1);
      }
      for (const s of Object.values((schema.patternProperties as Record<string, Json> | undefined) ?? {})) {
        for (let i = Math.floor(rnd() * 3); i > 0; i--) out[pick(['a', 'key "q"', 'ключ', `k${i}`])] = valueFor(s, rnd, depth + 1);
      }
      return out;
    }
    default:
      // No type (unknown / any): any JSON value.
      return pick([null, 1, 'text', [1, 'two'], { nested: { deep: true } }]);
  }
}

describe('response serialization', () => {
  test(`the rewritten schemas write the same bytes as the declared ones (${schemas.length} schemas)`, () => {
    assert.ok(schemas.length > 40, `only ${schemas.length} schemas were found: the module exports have moved`);
    // Fastify's default compiler against the one the server is built with (app.ts).
    const declaredCompiler = SerializerSelector()(shared, {});
    const rewrittenCompiler = buildSerializer(shared, {});
    let rewrites = 0;
    for (const [name, schema] of schemas) {
      if (JSON.stringify(serializableSchema(schema)) !== JSON.stringify(schema)) rewrites++;
      const route = { method: 'GET', url: `/${name}`, httpStatus: '200', schema };
      const declared = declaredCompiler(route);
      const rewritten = rewrittenCompiler(route);
      for (let seed = 1; seed <= 100; seed++) {
        const value = valueFor(schema as Json, mulberry32(seed * 7919 + name.length));
        let want: string;
        try {
          want = declared(value);
        } catch (e) {
          throw new Error(`${name}, seed ${seed}: ${(e as Error).message}: ${JSON.stringify(value).slice(0, 600)}`);
        }
        assert.equal(rewritten(value), want, `${name}, seed ${seed}: ${JSON.stringify(value).slice(0, 400)}`);
      }
    }
    // The comparison means something only if schemas were in fact rewritten.
    assert.ok(rewrites > 20, `only ${rewrites} schemas were rewritten`);
  });

  test('a nullable field becomes one plain schema marked nullable, its description kept', () => {
    assert.deepEqual(serializableSchema(native.Nullable(Type.Integer({ description: 'n' }))), { type: 'integer', description: 'n', nullable: true });
    const obj = serializableSchema(Type.Object({ a: native.Nullable(Type.Object({ b: native.Nullable(Type.String()) })) })) as Json;
    const a = (obj.properties as Record<string, Json>).a;
    assert.equal(a.nullable, true);
    assert.equal(a.type, 'object');
    assert.deepEqual((a.properties as Record<string, Json>).b, { type: 'string', nullable: true });
  });

  test('a null object is written as null, not as {}', () => {
    const s = Type.Object({ o: native.Nullable(Type.Object({ x: Type.Integer() })) });
    assert.equal(fastJsonStringify(serializableSchema(s) as never)({ o: null }), '{"o":null}');
    // Why nullable must be kept: without it the same serializer writes {}.
    const lost = serializableSchema(s) as Json;
    delete ((lost.properties as Record<string, Json>).o as Json).nullable;
    assert.equal(fastJsonStringify(lost as never)({ o: null }), '{"o":{}}');
  });

  test('word unions become strings; other unions are left as they are', () => {
    assert.deepEqual(serializableSchema(Type.Union([Type.Literal('a'), Type.Literal('b')])), { type: 'string' });
    assert.deepEqual(serializableSchema(native.Nullable(Type.Union([Type.Literal('a'), Type.Literal('b')]))), { type: 'string', nullable: true });
    assert.deepEqual(serializableSchema(Type.Union([Type.Literal('a'), Type.Literal('b'), Type.Null()])), { type: 'string', nullable: true });
    const mixed = Type.Union([Type.String(), Type.Integer()]);
    assert.deepEqual(serializableSchema(mixed), JSON.parse(JSON.stringify(mixed)));
    const refOrNull = Type.Union([Type.Ref('Error'), Type.Null()]);
    assert.deepEqual(serializableSchema(refOrNull), JSON.parse(JSON.stringify(refOrNull)));
  });

  test('the declared schema is not changed', () => {
    const s = Type.Object({ a: native.Nullable(Type.String()) });
    const before = JSON.stringify(s);
    serializableSchema(s);
    assert.equal(JSON.stringify(s), before);
  });
});
