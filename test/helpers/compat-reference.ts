/**
 * The compatible views' contracts in reference/ (Yandex Cloud and backupman
 * markdown), parsed at test time, never copied by hand: the JSON example block and the
 * field tables, turned into checks of real responses.
 */
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { REFERENCE_DIR } from './reference.js';

function read(file: string): string {
  return fs.readFileSync(path.join(REFERENCE_DIR, file), 'utf8');
}

function jsonExample(text: string, file: string): any {
  const m = /```json[^\n]*\n([\s\S]*?)\n```/.exec(text);
  if (!m) throw new Error(`no json block in ${file}`);
  return JSON.parse(m[1]);
}

/** RFC 3339 date-time, 0 to 9 digits of fractions of a second. */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

// ---------------------------------------------------------------- Yandex Cloud

export interface YandexField {
  /** e.g. "backups[]", "backups[].createdAt", "nextPageToken" */
  path: string;
  type: string;
  /** "date-time", "int64" */
  format?: string;
  /** Values listed as `<li>NAME: ...</li>`. */
  enum?: string[];
}

export interface YandexReference {
  example: any;
  fields: YandexField[];
}

/** The response of a Yandex REST reference page: its JSON example and its Field | Description table. */
export function yandexReference(file: string): YandexReference {
  const text = read(file);
  const response = text.slice(text.indexOf('## Response'));
  const fields: YandexField[] = [];
  let inTable = false;
  for (const line of response.split('\n')) {
    if (/^Field \| Description/.test(line)) {
      inTable = true;
      continue;
    }
    if (!inTable || /^---/.test(line)) continue;
    const cut = line.indexOf(' | ');
    if (cut < 0) continue;
    const name = line.slice(0, cut).replace(/<br>/g, '').trim();
    const desc = line.slice(cut + 3);
    const t = /^\*\*(\w+)\*\*(?:\s*\(([\w-]+)\))?/.exec(desc.trim());
    if (!t) throw new Error(`${file}: cannot read the type of ${name}: ${desc.slice(0, 80)}`);
    const values = [...desc.matchAll(/<li>([A-Z][A-Z0-9_]*):/g)].map((m) => m[1]);
    fields.push({ path: name, type: t[1], ...(t[2] ? { format: t[2] } : {}), ...(values.length ? { enum: values } : {}) });
  }
  if (fields.length === 0) throw new Error(`no field table in ${file}`);
  return { example: jsonExample(text, file), fields };
}

function checkYandexValue(f: YandexField, value: unknown, where: string): void {
  if (f.type === 'object') {
    assert.ok(value !== null && typeof value === 'object', `${where}: an object`);
    return;
  }
  assert.equal(typeof value, f.type, `${where}: ${f.type}, got ${JSON.stringify(value)}`);
  const s = value as string;
  if (f.format === 'date-time') assert.ok(RFC3339.test(s) && !Number.isNaN(Date.parse(s)), `${where}: RFC 3339 date-time, got ${s}`);
  if (f.format === 'int64') assert.match(s, /^-?\d+$/, `${where}: an int64 as a decimal string`);
  if (f.enum) assert.ok(f.enum.includes(s), `${where}: one of ${f.enum.join(', ')}, got ${s}`);
}

/**
 * Check a list response against the reference: every field of every item present with its
 * documented type, format and enum; `nextPageToken` required unless `lastPage` (where it is
 * absent, as Yandex sends it). Fields the reference does not list are only allowed when
 * named in `extra` (with their checker).
 */
export function assertYandexList(ref: YandexReference, body: any, opts: { lastPage: boolean; extra?: Record<string, (v: unknown) => boolean> }): void {
  const top = ref.fields.filter((f) => !f.path.includes('[].'));
  for (const f of top) {
    const key = f.path.replace(/\[\]$/, '');
    if (key === 'nextPageToken') {
      if (opts.lastPage) assert.ok(!(key in body), 'no nextPageToken on the last page');
      else checkYandexValue(f, body[key], key);
      continue;
    }
    assert.ok(key in body, `${key} present`);
    if (f.path.endsWith('[]')) assert.ok(Array.isArray(body[key]), `${key} is an array`);
  }
  assert.deepEqual(Object.keys(body).filter((k) => !top.some((f) => f.path.replace(/\[\]$/, '') === k)), [], 'no top-level field the reference does not list');
  for (const list of top.filter((f) => f.path.endsWith('[]'))) {
    const name = list.path.slice(0, -2);
    const itemFields = ref.fields.filter((f) => f.path.startsWith(`${name}[].`));
    for (const [i, item] of (body[name] as any[]).entries()) {
      checkYandexValue(list, item, `${name}[${i}]`);
      for (const f of itemFields) {
        const key = f.path.slice(name.length + 3);
        assert.ok(key in item, `${name}[${i}].${key} present`);
        checkYandexValue(f, item[key], `${name}[${i}].${key}`);
      }
      for (const key of Object.keys(item)) {
        if (itemFields.some((f) => f.path === `${name}[].${key}`)) continue;
        const check = opts.extra?.[key];
        assert.ok(check, `${name}[${i}].${key} is not in the reference`);
        assert.ok(check(item[key]), `${name}[${i}].${key} = ${JSON.stringify(item[key])}`);
      }
    }
  }
}

// ---------------------------------------------------------------- backupman

export interface BackupmanField {
  name: string;
  type: string;
  nullable: boolean;
  /** Values listed in the description as (`a`, `b`, `c`) (not an "e.g." list). */
  enum?: string[];
  /** The description says it is an ISO 8601 timestamp. */
  timestamp: boolean;
}

export interface BackupmanReference {
  example: any;
  backup: BackupmanField[];
  driveFile: BackupmanField[];
}

function backupmanTable(text: string, heading: string): BackupmanField[] {
  const start = text.indexOf(heading);
  if (start < 0) throw new Error(`no "${heading}" table in the backupman reference`);
  const fields: BackupmanField[] = [];
  for (const line of text.slice(start + heading.length).split('\n')) {
    if (fields.length && !line.startsWith('|')) break;
    const m = /^\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|(.*)\|\s*(Yes|No)\s*\|\s*$/.exec(line);
    if (!m) continue;
    const desc = m[3];
    const list = /\((?!e\.g\.)(`[^`]+`(?:,\s*`[^`]+`)+)\)/.exec(desc);
    fields.push({
      name: m[1],
      type: m[2],
      nullable: m[4] === 'Yes',
      ...(list ? { enum: [...list[1].matchAll(/`([^`]+)`/g)].map((x) => x[1]) } : {}),
      timestamp: /timestamp/i.test(desc) && /ISO 8601/.test(desc),
    });
  }
  if (fields.length === 0) throw new Error(`empty "${heading}" table in the backupman reference`);
  return fields;
}

export function backupmanReference(): BackupmanReference {
  const text = read('backupman-list-backups.md');
  return {
    example: jsonExample(text, 'backupman-list-backups.md'),
    backup: backupmanTable(text, '**Response Schema:**'),
    driveFile: backupmanTable(text, '**`DriveFiles` Object Schema:**'),
  };
}

function checkBackupmanObject(fields: BackupmanField[], obj: any, where: string): void {
  assert.deepEqual(Object.keys(obj).sort(), fields.map((f) => f.name).sort(), `${where}: exactly the reference's fields`);
  for (const f of fields) {
    const v = obj[f.name];
    if (v === null) {
      assert.ok(f.nullable, `${where}.${f.name} is not nullable`);
      continue;
    }
    if (f.type === 'array') assert.ok(Array.isArray(v), `${where}.${f.name}: an array`);
    else assert.equal(typeof v, f.type, `${where}.${f.name}: ${f.type}`);
    if (f.enum) assert.ok(f.enum.includes(v), `${where}.${f.name}: one of ${f.enum.join(', ')}, got ${v}`);
    if (f.timestamp) assert.ok(RFC3339.test(v) && !Number.isNaN(Date.parse(v)), `${where}.${f.name}: an ISO 8601 timestamp, got ${v}`);
  }
}

/** Check a GET /api/backups body against the reference tables (fields, types, nullability, enums). */
export function assertBackupmanList(ref: BackupmanReference, body: any): void {
  assert.deepEqual(Object.keys(body), Object.keys(ref.example), 'the envelope of the reference');
  assert.ok(Array.isArray(body.Results));
  for (const [i, item] of body.Results.entries()) {
    checkBackupmanObject(ref.backup, item, `Results[${i}]`);
    for (const [j, file] of (item.DriveFiles ?? []).entries()) checkBackupmanObject(ref.driveFile, file, `Results[${i}].DriveFiles[${j}]`);
  }
}
