/**
 * Response serialization: what Fastify's serializer compiler is given for each route.
 *
 * fast-json-stringify writes an `anyOf` by testing the value against every branch with Ajv
 * at run time, for every field of every row. Our schemas say "nullable" and "one of these
 * words" that way (`Nullable(x)` is `anyOf [x, null]`, a union of literals is `anyOf` of
 * `const`s), so a page of 100 backups ran a few thousand Ajv checks just to be written out.
 *
 * The serializer therefore gets a copy of each response schema in which
 *   - `anyOf [S, {type: null}]`, S a plain single-type schema, becomes `{...S, nullable: true}`;
 *   - a union of string literals (nullable or not) becomes `{type: 'string'}` (+ nullable).
 * Both write exactly the same bytes for every value the declared schema allows (the
 * serializer checks nothing: validation and the OpenAPI document keep the declared schemas,
 * test/api/serializer.test.ts compares the output of both over all our response schemas).
 * Note that `nullable` must stay on objects: without it fast-json-stringify writes `null`
 * as `{}`.
 */
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

type Schema = Record<string | symbol, unknown>;

/** Keys that make a branch more than one plain type: such unions are left to fast-json-stringify. */
const NOT_PLAIN = ['anyOf', 'oneOf', 'allOf', 'not', '$ref', 'if', 'const', 'nullable', 'enum'];

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNull = (s: unknown) => isObject(s) && s.type === 'null' && Object.keys(s).every((k) => k === 'type' || k === 'description');
const isPlain = (s: unknown): s is Schema => isObject(s) && typeof s.type === 'string' && s.type !== 'null' && !NOT_PLAIN.some((k) => k in s);
const isStringLiteral = (s: unknown) => isObject(s) && typeof s.const === 'string' && (s.type === undefined || s.type === 'string');

/** The serializer's copy of a response schema (the input is not changed). */
export function serializableSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(serializableSchema);
  if (!isObject(schema)) return schema;
  // String keys only: TypeBox's symbols (its Kind) would describe the declared schema.
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    // Keyword values that hold schemas, or maps of names to schemas.
    if (k === 'properties' || k === 'patternProperties' || k === 'definitions' || k === '$defs') {
      out[k] = isObject(v) ? Object.fromEntries(Object.entries(v).map(([n, s]) => [n, serializableSchema(s)])) : v;
    } else if (k === 'items' || k === 'additionalProperties' || k === 'anyOf' || k === 'oneOf' || k === 'allOf') {
      out[k] = serializableSchema(v);
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(out.anyOf) && out.anyOf.length > 0) {
    const { anyOf: branches, ...outer } = out as Schema & { anyOf: unknown[] };
    const rest = branches.filter((b) => !isNull(b));
    const nullable = rest.length < branches.length;
    const extra = nullable ? { nullable: true } : {};
    if (rest.length > 0 && rest.every(isStringLiteral)) return { ...outer, type: 'string', ...extra };
    if (nullable && rest.length === 1 && isPlain(rest[0])) return { ...outer, ...rest[0], ...extra };
  }
  return out;
}

type SerializerFactory = ReturnType<typeof SerializerSelector>;

/**
 * Fastify's default serializer compiler (`schemaController.compilersFactory.buildSerializer`),
 * handed the rewritten schema of each route; shared schemas (`addSchema`) are rewritten too.
 */
export const buildSerializer: SerializerFactory = (externalSchemas, serializerOpts) => {
  const shared = externalSchemas && Object.fromEntries(Object.entries(externalSchemas as Record<string, unknown>).map(([id, s]) => [id, serializableSchema(s)]));
  const compile = SerializerSelector()(shared as never, serializerOpts);
  return (route) => compile({ ...route, schema: serializableSchema(route.schema) as never });
};
