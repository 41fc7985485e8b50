/**
 * The API contracts, parsed at test time, turned into validators for real responses.
 * The documents live in the repository's reference/ folder (copies of the team's shared
 * contracts, so a clone anywhere passes); test/reference.test.ts checks that the copies
 * still equal ../shared/reference/ wherever that folder exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { Ajv, type ValidateFunction } from 'ajv';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REFERENCE_DIR = path.resolve(here, '../../reference');
/** The team's shared copy, when this checkout sits beside it. */
export const SHARED_REFERENCE_DIR = path.resolve(here, '../../../shared/reference');

/** The OpenAPI document embedded in a reference markdown file (the ```yaml fence). */
export function referenceOpenApi(file: string): any {
  const text = fs.readFileSync(path.join(REFERENCE_DIR, file), 'utf8');
  const m = /````yaml[^\n]*\n([\s\S]*?)\n````/.exec(text);
  if (!m) throw new Error(`no yaml block in ${file}`);
  return YAML.parse(m[1]);
}

function responseSchema(file: string, method: string, status: string): any {
  const doc = referenceOpenApi(file);
  const pathItem = Object.values(doc.paths)[0] as any;
  return pathItem[method].responses[status].content['application/json'].schema;
}

/** The list_backups 200 schema, exactly as documented. */
export function listBackupsSchema(): any {
  return responseSchema('planetscale-list-backups.md', 'get', '200');
}

/**
 * The create_backup 201 schema. That document leaves out `nullable` on fields which are
 * null by nature on a backup that was just created (started_at, completed_at,
 * backup_policy of a manual backup...), while the list document marks the very same
 * fields of the very same object nullable. We take the nullability of the list document
 * for those fields, and everything else (fields, types, enums, additionalProperties)
 * from the create document.
 */
export function createBackupSchema(): any {
  const create = structuredClone(responseSchema('planetscale-create-backup.md', 'post', '201'));
  const listItem = listBackupsSchema().properties.data.items;
  for (const [name, prop] of Object.entries<any>(create.properties)) {
    const listed = listItem.properties[name];
    if (listed?.nullable) prop.nullable = true;
    if (prop.type === 'object' && listed?.properties) {
      for (const [sub, subProp] of Object.entries<any>(prop.properties)) if (listed.properties[sub]?.nullable) subProp.nullable = true;
    }
  }
  return create;
}

const ajv = new Ajv({ strict: false, allErrors: true });
const cache = new Map<any, ValidateFunction>();

/** Throw a readable error when `value` does not match `schema`. */
export function assertMatches(schema: any, value: unknown, what = 'response'): void {
  let v = cache.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    cache.set(schema, v);
  }
  if (!v(value)) throw new Error(`${what} does not match the reference: ${ajv.errorsText(v.errors, { separator: '\n  ' })}\n${JSON.stringify(value, null, 2).slice(0, 2000)}`);
}
