/**
 * Fuzzing every route of every dialect with hostile input: wrong types, huge strings,
 * unicode (emoji, RTL, combining marks, NUL, lone surrogates), path traversal, SQL
 * metacharacters, extreme numbers, malformed JSON, wrong content types, missing and
 * extra fields, prototype-pollution keys and odd headers. The routes come from the
 * server's own /openapi.json plus the compat prefixes, so a new route is fuzzed too.
 *
 * Every response must be < 500, in its dialect's error shape when >= 400, free of stack
 * traces, source paths and the secrets the fuzzer sent; requests without valid
 * credentials never succeed, another organization's token never sees into "default",
 * a token without accesses gets nothing. Afterwards the server must still answer,
 * Object.prototype is clean, nothing was logged as an unhandled error, and nothing was
 * written outside the data dir (storage-destination paths given by the fuzzer point
 * into a temp dir of this test, or are invalid; a canary tree, /etc/passwd, /tmp and the
 * repository are checked for anything named after the payloads).
 *
 * Beside the random requests, the states the fuzzer only stumbles on are made on purpose
 * so every run checks them: a stored copy that vanished, odd Host headers on paginated
 * lists, protocol-level client errors, and the same name created by parallel requests
 * (or again after a delete).
 *
 * Replay: STRONGBOX_FUZZ_SEED=<seed printed as "fuzz seed: N">; STRONGBOX_FUZZ_ONLY=<i,j>
 * sends only those request numbers; STRONGBOX_FUZZ_REQUESTS changes the count.
 *
 * Jobs the fuzzer queues (backups, restores, verifications) are never run: the job
 * runner is stopped once the fixtures' backups exist, so that no random request can
 * restore into, or dump, a database on the shared test servers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, registerBranch, startServer, waitForBackup, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, mysqlUrl, pgUrl, uniqueName, withMysqlConnection, withPgClient } from '../helpers/databases.js';
import { authHeaders, dialectOfPath, discoverRoutes, errorShapeProblem, leakIn, RawClient, routeKey, type Dialect, type RawResponse, type RouteSpec } from '../helpers/routes.js';
import { ALL_ACCESSES } from '../../src/catalog/tokens.js';
import { mulberry32 } from '../helpers/random.js';

// ---------------------------------------------------------------- configuration

const SEED = process.env.STRONGBOX_FUZZ_SEED !== undefined && process.env.STRONGBOX_FUZZ_SEED !== '' ? Number(process.env.STRONGBOX_FUZZ_SEED) : crypto.randomBytes(4).readUInt32LE(0);
if (!Number.isInteger(SEED) || SEED < 0 || SEED > 0xffffffff) throw new Error(`STRONGBOX_FUZZ_SEED must be a whole number 0..4294967295, got "${process.env.STRONGBOX_FUZZ_SEED}"`);
const ONLY = process.env.STRONGBOX_FUZZ_ONLY ? process.env.STRONGBOX_FUZZ_ONLY.split(',').map((s) => Number(s.trim())) : null;
const REQUESTS = Number(process.env.STRONGBOX_FUZZ_REQUESTS ?? 12_000);
const MIN_REQUESTS = 10_000;
const CONCURRENCY = 8;
/** STRONGBOX_FUZZ_STATS=1: print the statuses each route answered. */
const STATS = process.env.STRONGBOX_FUZZ_STATS ? new Map<string, Map<number, number>>() : null;
/** Every file-ish payload carries this, so anything it creates can be found afterwards. */
const MARK = `sbxfz${SEED.toString(36)}`;
/** Secrets the fuzzer sends (in connection URLs and storage configs): no response may ever contain them. */
const SENT_SECRETS = { pg: `PgPass${MARK}`, s3: `S3Secret${MARK}`, driveSecret: `DriveSecret${MARK}`, driveRefresh: `DriveRefresh${MARK}` };
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
console.log(`fuzz seed: ${SEED}`);
const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

// ---------------------------------------------------------------- seeded randomness

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  weighted<T>(items: ReadonlyArray<readonly [number, T]>): T {
    let r = this.next() * items.reduce((s, [w]) => s + w, 0);
    for (const [w, v] of items) if ((r -= w) < 0) return v;
    return items[items.length - 1][1];
  }
  word(): string {
    return this.int(2 ** 31).toString(36);
  }
}

/** Request i's own generator: the same seed and i always give the same request. */
function rngFor(i: number): Rng {
  return new Rng(crypto.createHash('sha256').update(`${SEED}:${i}`).digest().readUInt32LE(0));
}

// ---------------------------------------------------------------- JSON with raw tokens

/** A JSON token written as is: -0, 1e309, 9223372036854775808 (JSON.stringify cannot). */
class Raw {
  constructor(readonly text: string) {}
}
/** An object whose keys may repeat or be "__proto__" (a plain object cannot hold those). */
class Obj {
  constructor(readonly entries: Array<[string, unknown]>) {}
}

function toJson(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return 'null';
  if (v !== null && typeof v === 'object') return toJson(new Obj(Object.entries(v)));
  return JSON.stringify(v);
}

// ---------------------------------------------------------------- payloads

const NUMBERS = ['0', '-0', '-1', '1', '1.5', '-1.5', '1e309', '-1e309', '1e-309', '9007199254740993', '9223372036854775807', '9223372036854775808', '-9223372036854775809', '18446744073709551616', '1e21', '2147483648', '4294967296', '1000', '1001', '365', '366', '7', '63', '64', '100', '101', '0.0000001'];

const TRAVERSAL = [
  '..',
  '../',
  `../${MARK}`,
  `../../../../etc/${MARK}`,
  '../../../../etc/passwd',
  `%2e%2e%2f${MARK}`,
  `%2e%2e/%2e%2e/${MARK}`,
  `%252e%252e%252f${MARK}`,
  `..%2f..%2f${MARK}`,
  `..\\..\\${MARK}`,
  `....//....//${MARK}`,
  `..;/${MARK}`,
  '/etc/passwd',
  `/tmp/${MARK}`,
  `./${MARK}`,
  `~/${MARK}`,
  `${MARK}/../../${MARK}`,
  `file:///tmp/${MARK}`,
  `\\\\host\\share\\${MARK}`,
  `${MARK}%00.txt`,
];
const SQL = [`'; drop table x; --`, `' OR '1'='1`, `1; DELETE FROM backups; --`, `"; DROP TABLE organizations; --`, `%' --`, `1) UNION SELECT secret_hash FROM service_tokens --`, `\\'; --`, `admin'--`, `1' AND sleep(5)#`, `$$; DROP TABLE x; $$`];
const UNICODE = [
  '😀🎉👍🏽',
  '👨‍👩‍👧‍👦🇺🇦',
  'مرحبا بالعالم',
  'עברית',
  '\u202Eevil\u202C',
  'e\u0301\u0301\u0301\u0301\u0301',
  'Z\u0364\u0354\u0367\u0311\u0313a\u0308\u0356\u032D',
  '\u0000',
  `a\u0000${MARK}`,
  '\ud800',
  '\udfff',
  `x\ud83d${MARK}`,
  '\uFEFF',
  '\u200B\u200D',
  '\u00A0',
  'ｄｅｆａｕｌｔ',
  'İı',
  'ß',
  '\r\n',
  '\t',
  '\u001b[31mred',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎',
  '\u2028\u2029',
  '\uFFFF\uFFFE',
];
const INJECTION = ['<script>alert(1)</script>', '${7*7}', '{{7*7}}', '$(id)', '`id`', '%s%s%n', 'null', 'undefined', 'NaN', 'Infinity', '-0', '1e309', 'true', '[]', '{}', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'DEFAULT', 'default ', ' default', 'default\n', 'CON', 'nul', '.', '~', 'a/b', '', ' ', '-', '_', '0'];
const BAD_PERCENT = ['%', '%zz', '%E0%A4%A', '%ED%A0%80', '%C0%AE', '%FF', '%00', '%2', '%%', '%u0041'];

function hugeString(rng: Rng): string {
  const n = rng.pick([1_000, 10_000, 65_536, 100_000]);
  return rng.weighted<() => string>([
    [3, () => 'A'.repeat(n)],
    [1, () => '😀'.repeat(Math.floor(n / 2))],
    [1, () => 'e\u0301'.repeat(Math.floor(n / 2))],
    [1, () => `${MARK}/`.repeat(Math.floor(n / (MARK.length + 1)))],
    [1, () => '../'.repeat(Math.floor(n / 3))],
  ])();
}

function hostileString(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.pick(TRAVERSAL)],
    [3, () => rng.pick(SQL)],
    [4, () => rng.pick(UNICODE)],
    [3, () => rng.pick(INJECTION)],
    [2, () => rng.pick(NUMBERS)],
    [1, () => `${rng.pick(UNICODE)}${rng.pick(SQL)}${rng.pick(TRAVERSAL)}`],
    [1, () => 'x'.repeat(rng.pick([63, 64, 65, 100, 101, 255, 256, 1000]))],
    [1, () => hugeString(rng)],
  ])();
}

/** A JSON value of the wrong kind for almost any field. */
function hostileValue(rng: Rng, depth = 0): unknown {
  return rng.weighted<() => unknown>([
    [5, () => hostileString(rng)],
    [3, () => new Raw(rng.pick(NUMBERS))],
    [1, () => rng.chance(0.5)],
    [1, () => null],
    [depth < 3 ? 1 : 0, () => Array.from({ length: rng.int(4) }, () => hostileValue(rng, depth + 1))],
    [depth < 3 ? 1 : 0, () => new Obj(Array.from({ length: rng.int(3) }, () => [rng.pick(['a', '__proto__', 'constructor', MARK, '']), hostileValue(rng, depth + 1)] as [string, unknown]))],
    [depth < 1 ? 0.2 : 0, () => deepNest(rng)],
  ])();
}

function deepNest(rng: Rng): Raw {
  const n = rng.pick([100, 1000, 5000]);
  return rng.chance(0.5) ? new Raw('['.repeat(n) + ']'.repeat(n)) : new Raw('{"a":'.repeat(n) + '1' + '}'.repeat(n));
}

const MALFORMED = [
  '{',
  '}',
  '{"',
  '{"name": ',
  '{"name":"x"',
  '[',
  'nul',
  'NaN',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":-Infinity}',
  "{'name':'x'}",
  '{"name":"x",}',
  '{name:"x"}',
  '{"a":1}{"b":2}',
  '\uFEFF{}',
  '\u0000',
  '{"a":"\\x41"}',
  '{"a":01}',
  '{"a":1.}',
  '{"a":.5}',
  '{"a":+1}',
  '{"a":0x10}',
  '{"a":1e}',
  '/* comment */ {}',
  '{} // trailing',
  '{"a":"unterminated}',
  '{"a":"\\ud800"}',
  '{"a":"\\u0000"}',
  '"\\udfff"',
  '\xff\xfe{\x00}\x00',
  '   \n\t  ',
  'true',
  'false',
  'null',
  '0',
  '-0',
  '"a"',
  '[]',
  '[{}]',
  '1e309',
];

const PROTO = [
  '{"__proto__":{"isAdmin":true}}',
  '{"constructor":{"prototype":{"isAdmin":true}}}',
  '{"a":{"__proto__":{"x":1}}}',
  '{"__proto__":null}',
  '[{"__proto__":{"polluted":1}}]',
  '{"name":"x","__proto__":{"superuser":1}}',
  '{"constructor":{"name":"x"}}',
];

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'APPLICATION/JSON',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/json;;;',
  'application/json-patch+json',
  'application/vnd.api+json',
  '*/*',
  '',
  'application/json, text/plain',
  'application/octet-stream',
  'text/html; charset=utf-8',
  ';',
];

// ---------------------------------------------------------------- the world the fuzzer knows

interface World {
  admin: string;
  adminId: string;
  others: { other: string; noAccess: string; reader: string };
  orgs: string[];
  orgIds: string[];
  databases: string[];
  branches: string[];
  victimBranches: string[];
  branchIds: string[];
  backupIds: string[];
  victimBackupIds: string[];
  tokenIds: string[];
  victimTokenIds: string[];
  policyIds: string[];
  victimPolicyIds: string[];
  snapshotIds: string[];
  destinations: string[];
  victimDestinations: string[];
  artifactIds: string[];
  restoreJobIds: string[];
  recipient: string;
  connectionUrls: string[];
  allowedDir: string;
}

function newName(rng: Rng): string {
  return `${MARK}-${rng.word()}`.slice(0, 63);
}

function ageLike(rng: Rng, prefix: string, alphabet: string): string {
  return prefix + Array.from({ length: 58 }, () => rng.pick([...alphabet])).join('');
}

function storageConfig(rng: Rng, w: World): unknown {
  const n = rng.word();
  const a = w.allowedDir;
  const paths: unknown[] = [
    `${a}/d-${MARK}-${n}`,
    `${a}/x/../d-${MARK}-${n}`,
    `${a}/${MARK} ${n} 😀 עברית`,
    `${a}/nul\u0000${MARK}`,
    `${a}/${'y'.repeat(300)}`,
    `${a}/${'z/'.repeat(60)}${MARK}`,
    `../${MARK}`,
    `${MARK}/relative`,
    `./${MARK}`,
    `~/${MARK}`,
    `file://${a}/${MARK}`,
    `C:\\${MARK}`,
    `\\\\server\\${MARK}`,
    `%2e%2e%2f${MARK}`,
    '',
    ' ',
    '/etc/passwd',
    '/dev/null',
    42,
    new Raw('-0'),
    new Raw('1e309'),
    null,
    true,
    [],
    {},
    [`${a}/${MARK}`],
  ];
  return rng.weighted<() => unknown>([
    [5, () => ({ path: `${a}/d-${MARK}-${n}` })],
    [6, () => ({ path: rng.pick(paths) })],
    [1, () => ({ path: `${a}/e-${MARK}-${n}`, [rng.pick(['extra', MARK, 'constructor', 'prototype', ''])]: hostileValue(rng) })],
    [
      2,
      () => ({
        bucket: rng.pick([`b-${MARK}`, '', '../x', 'UPPER', 'a'.repeat(300)]),
        endpoint: rng.pick(['http://127.0.0.1:1', 'https://127.0.0.1:1', 'not a url', 'file:///etc/passwd']),
        region: rng.pick(['us-east-1', '', '../']),
        access_key_id: `AKIA${n}`,
        secret_access_key: SENT_SECRETS.s3,
        prefix: rng.pick([`${MARK}/`, '../', '', '/abs']),
      }),
    ],
    [
      2,
      () => ({
        folder_id: rng.pick([`f-${MARK}`, '', "'; drop", '../']),
        credentials: rng.pick<unknown>([
          { type: 'oauth', client_id: 'cid', client_secret: SENT_SECRETS.driveSecret, refresh_token: SENT_SECRETS.driveRefresh },
          { type: 'service_account', client_email: 'a@b.c', private_key: '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----' },
          { type: 'nope' },
          'string',
          null,
          [],
        ]),
        api_base: rng.pick(['http://127.0.0.1:1', 'https://127.0.0.1:1', 'http://evil.example', 'file:///etc/passwd', 'javascript:alert(1)']),
        token_uri: rng.pick(['http://127.0.0.1:1/token', 'http://127.0.0.1:1/token?x=1']),
        request_timeout_ms: rng.pick<unknown>([1000, 2000, -1, 0, new Raw('1e309'), '1000']),
        chunk_size_mb: rng.pick<unknown>([0.25, 8, 0, -1, 1e9, 1025, 0.1]),
      }),
    ],
    [1, () => ({})],
    [1, () => hostileValue(rng)],
  ])();
}

function pageToken(rng: Rng, w: World): string {
  const c = rng.pick(['2020-01-01T00:00:00Z', '2999-12-31T23:59:59.999Z', '', 'x', "'; drop", '1e309']);
  const i = rng.pick([...w.backupIds, '', '../x', `${MARK}`, 'a'.repeat(65)]);
  const json = rng.chance(0.8) ? JSON.stringify({ c, i }) : rng.pick(['{"c":1,"i":2}', 'null', '[]', '{"__proto__":{}}', '"str"', '{']);
  return rng.chance(0.85) ? Buffer.from(json).toString('base64url') : rng.pick(['%%%', '====', '!!', hostileString(rng)]);
}

/** A plausible value for a field or parameter of this name, or undefined when none is known. */
function smartValue(name: string, rng: Rng, w: World): unknown {
  switch (name) {
    case 'name':
    case 'database':
    case 'branch':
      if (name === 'database') return rng.chance(0.8) ? rng.pick(w.databases) : newName(rng);
      if (name === 'branch') return rng.chance(0.8) ? rng.pick(w.branches) : newName(rng);
      return rng.chance(0.5) ? rng.pick([...w.orgs, ...w.databases, ...w.branches, ...w.destinations]) : newName(rng);
    case 'kind':
      return rng.pick(['postgresql', 'mysql']);
    case 'connection_url':
      // The first three are real databases (PostgreSQL, PostgreSQL, MariaDB).
      return rng.chance(0.4) ? rng.pick(w.connectionUrls.slice(0, 3)) : rng.pick(w.connectionUrls);
    case 'backup_id':
    case 'backupId':
      return rng.chance(0.85) ? rng.pick(w.backupIds) : rng.word();
    case 'accesses': {
      const n = rng.range(1, 4);
      const out = new Set<string>();
      for (let k = 0; k < n; k++) out.add(rng.chance(0.9) ? rng.pick(ALL_ACCESSES) : rng.pick(['admin', 'superuser', 'READ_BACKUPS', '*']));
      return [...out];
    }
    case 'encryption_recipients':
      return rng.pick([[], [w.recipient], [ageLike(rng, 'age1', '023456789acdefghjklmnpqrstuvwxyz')], [w.recipient, w.recipient], ['age1'], [w.recipient.toUpperCase()]]);
    case 'age_identity':
      return rng.pick([ageLike(rng, 'AGE-SECRET-KEY-1', '023456789ACDEFGHJKLMNPQRSTUVWXYZ'), `# comment\n${ageLike(rng, 'AGE-SECRET-KEY-1', '023456789ACDEFGHJKLMNPQRSTUVWXYZ')}\n`, 'A'.repeat(80), `AGE-SECRET-KEY-1${'x'.repeat(70)}`]);
    case 'config':
      return storageConfig(rng, w);
    case 'provider':
      return rng.pick(['local', 'local', 's3', 'google_drive']);
    case 'expires_at':
      return rng.pick(['2999-01-01T00:00:00Z', '2000-01-01', 'tomorrow', '9999-12-31T23:59:59.999999999Z', '2024-02-30', '+275760-09-13T00:00:00.000Z', '2030-01-01T00:00:00+99:99', new Date(Date.now() + 3_600_000).toISOString()]);
    case 'schedule_time':
      return rng.chance(0.7) ? rng.pick(['03:00', '23:59', '00:00', '12:30']) : rng.pick(['24:00', '3:00', '00:60', '', '99:99', '12:00:00']);
    case 'schedule_day':
    case 'schedule_week':
      return rng.pick<unknown>([null, null, null, 0, 3, 6, 7, -1, new Raw('1e309'), new Raw('9223372036854775808')]);
    case 'frequency_value':
      return rng.pick<unknown>([1, 1, 2, 4, 12, 24, 7, 30, 365, 5, 0, 366, new Raw('-0')]);
    case 'retention_value':
      return rng.pick<unknown>([1, 2, 6, 1000, 0, 1001, new Raw('1.0'), new Raw('1e3')]);
    case 'from':
    case 'to':
      return rng.pick(['2020-01-01T00:00:00Z', '2024-02-30', '2999-12-31', 'yesterday', '0000-01-01', '2020-01-01T00:00:00+14:00', '']);
    case 'running_at':
      return rng.pick(['2020-01-01T00:00:00Z..2999-01-01T00:00:00Z', '..', 'a..b..c', '2999-01-01..2000-01-01', '2020-01-01']);
    case 'folderId':
      return rng.chance(0.8) ? rng.pick(w.orgIds) : rng.word();
    case 'pageToken':
      return pageToken(rng, w);
    case 'display_name':
      return rng.pick(['Nightly', rng.pick(UNICODE), 'x'.repeat(255), 'x'.repeat(256)]);
    case 'policy':
      return rng.pick(w.policyIds);
    case 'page':
      return rng.pick([1, 1, 2, 3, 1000000]);
    case 'per_page':
      return rng.pick([1, 2, 25, 100]);
    case 'pageSize':
      return rng.pick([0, 1, 2, 1000]);
    default:
      return undefined;
  }
}

/** A value that matches `schema` (using plausible values for known names). */
function fromSchema(schema: any, rng: Rng, key: string, w: World, depth = 0): unknown {
  const smart = smartValue(key, rng, w);
  if (smart !== undefined && rng.chance(0.85)) return smart;
  if (!schema || typeof schema !== 'object') return null;
  if (schema.anyOf) return fromSchema(rng.pick(schema.anyOf), rng, key, w, depth);
  if (schema.enum) return rng.pick(schema.enum);
  if (schema.nullable && rng.chance(0.2)) return null;
  switch (schema.type) {
    case 'string': {
      if (schema.pattern === '^[a-z0-9][a-z0-9_-]{0,62}$') return newName(rng);
      if (schema.pattern === '^[A-Za-z0-9_-]+$') return rng.word();
      const len = Math.max(schema.minLength ?? 1, Math.min(schema.maxLength ?? 12, 12));
      return 'x'.repeat(len);
    }
    case 'integer':
    case 'number': {
      const lo = schema.minimum ?? 0;
      const hi = Math.min(schema.maximum ?? lo + 10, lo + 1000);
      return rng.range(lo, hi);
    }
    case 'boolean':
      return rng.chance(0.5);
    case 'array': {
      const n = rng.range(schema.minItems ?? 0, Math.min(schema.maxItems ?? 3, 3));
      const items = Array.from({ length: n }, () => fromSchema(schema.items, rng, key, w, depth + 1));
      return schema.uniqueItems ? [...new Map(items.map((x) => [toJson(x), x])).values()] : items;
    }
    case 'object': {
      const out: Array<[string, unknown]> = [];
      for (const [k, s] of Object.entries<any>(schema.properties ?? {})) {
        if ((schema.required ?? []).includes(k) || rng.chance(0.5)) out.push([k, fromSchema(s, rng, k, w, depth + 1)]);
      }
      return new Obj(out);
    }
    default:
      return {};
  }
}

/** One or two mutations of a (mostly) valid body. `config` is only ever replaced whole. */
function mutate(body: unknown, schema: any, rng: Rng): unknown {
  if (!(body instanceof Obj)) return hostileValue(rng);
  const entries = [...body.entries];
  const kind = rng.weighted<string>([
    [3, 'drop'],
    [3, 'extra'],
    [5, 'retype'],
    [1, 'array'],
    [1, 'wrap'],
    [1, 'scalar'],
    [2, 'huge'],
    [1, 'duplicate'],
    [1, 'nest'],
  ]);
  switch (kind) {
    case 'drop':
      if (entries.length) entries.splice(rng.int(entries.length), 1);
      return new Obj(entries);
    case 'extra':
      entries.push([rng.pick(['extra', 'id', 'superuser', 'organization_id', 'secret_hash', 'deleted_at', MARK, '', ' ', '\u0000', '😀', hostileString(rng).slice(0, 100)]), hostileValue(rng)]);
      return new Obj(entries);
    case 'retype': {
      if (!entries.length) return new Obj([[rng.pick([...Object.keys(schema?.properties ?? {}), 'x']), hostileValue(rng)]]);
      const i = rng.int(entries.length);
      const [k] = entries[i];
      // A storage config is never filled with random paths: only non-objects replace it.
      entries[i] = [k, k === 'config' ? rng.pick<unknown>(['/tmp', 42, null, [], 'x', true]) : hostileValue(rng)];
      return new Obj(entries);
    }
    case 'array':
      return [body];
    case 'wrap':
      return rng.pick([[], [[]], [new Obj([])], new Raw('[null]')]);
    case 'scalar':
      return rng.pick<unknown>([null, true, 0, 'string', new Raw('-0'), new Raw('1e309')]);
    case 'huge': {
      const i = entries.findIndex(([k, v]) => typeof v === 'string' && k !== 'config');
      const big = hugeString(rng);
      if (i >= 0) entries[i] = [entries[i][0], big];
      else entries.push(['name', big]);
      return new Obj(entries);
    }
    case 'duplicate':
      if (entries.length) entries.push([entries[0][0], hostileValue(rng)]);
      return new Obj(entries);
    case 'nest':
      return new Obj([...entries, ['nested', deepNest(rng)]]);
  }
  return body;
}

// ---------------------------------------------------------------- building a request

interface Planned {
  i: number;
  route: string;
  dialect: Dialect;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body?: string;
  chunked: boolean;
  /** How the request authenticates. */
  auth: string;
  /** The request may legitimately be cut off (a body over the limit). */
  mayReset: boolean;
  /** The route this request was made from ("METHOD /template"), or null for a made-up path. */
  driven: string | null;
}

function pctUtf8(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

function encodeComponent(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    // Lone surrogates: percent-encode what UTF-8 makes of them (U+FFFD).
    return pctUtf8(s);
  }
}

/** Encode for the request line without escaping "/", "%", "?" or "..": what a careless client sends. */
function rawish(s: string): string {
  return [...s].map((c) => (/^[\x21-\x7e]$/.test(c) ? c : pctUtf8(c))).join('');
}

function encodeParam(rng: Rng, v: string): string {
  return rng.weighted<() => string>([
    [14, () => encodeComponent(v)],
    [3, () => rawish(v)],
    [2, () => encodeComponent(encodeComponent(v))],
    [1, () => encodeComponent(v) + rng.pick(BAD_PERCENT)],
  ])();
}

/** A real value for a path parameter; what a DELETE names is always a throwaway resource. */
function realParam(rng: Rng, route: RouteSpec, name: string, w: World, method = route.method): string {
  const last = route.pathParams[route.pathParams.length - 1] === name;
  const victim = method === 'DELETE' && last;
  switch (name) {
    case 'organization':
      return rng.chance(0.85) ? 'default' : rng.pick(w.orgs);
    case 'database':
      return rng.chance(0.85) ? 'app' : rng.pick(w.databases);
    case 'branch':
      return victim ? rng.pick(w.victimBranches) : rng.chance(0.8) ? 'main' : rng.pick(w.branches);
    case 'id':
      if (route.path.includes('/service-tokens/')) return rng.pick(victim ? w.victimTokenIds : w.tokenIds);
      if (route.path.includes('/backup-policies/')) return rng.pick(victim ? w.victimPolicyIds : w.policyIds);
      if (route.path.includes('/schema-snapshots/')) return rng.pick(w.snapshotIds);
      return rng.pick(victim ? w.victimBackupIds : w.backupIds);
    case 'other':
      return rng.pick(w.snapshotIds);
    case 'name':
      return rng.pick(victim ? w.victimDestinations : w.destinations);
    case 'clusterId':
      return rng.pick(w.branchIds);
    case 'backupId':
      return rng.pick(victim ? w.victimBackupIds : w.backupIds);
    case 'operationId':
      return rng.pick([`bk-${rng.pick(w.backupIds)}`, `dl-${rng.pick(w.victimBackupIds)}`, `rs-${rng.pick(w.restoreJobIds)}`, `bk-${hostileString(rng).slice(0, 60)}`, `xx-${rng.word()}`, 'bk-', 'rs-', 'dl-']);
    case 'driveFileId':
      return rng.pick(w.artifactIds);
    default:
      return rng.word();
  }
}

function queryString(rng: Rng, route: RouteSpec, w: World, careful: boolean): string {
  const parts: string[] = [];
  const enc = (s: string) => (careful || rng.chance(0.9) ? encodeComponent(s) : rawish(s) + (rng.chance(0.3) ? rng.pick(BAD_PERCENT) : ''));
  for (const q of route.query) {
    if (!q.required && rng.chance(careful ? 0.7 : 0.55)) continue;
    if (q.required && !careful && rng.chance(0.05)) continue;
    const plausible = fromSchema(q.schema, rng, q.name, w);
    const value = careful || rng.chance(0.7) ? plausible : hostileValue(rng);
    const text = typeof value === 'string' ? value : value instanceof Raw ? value.text : toJson(value);
    const encoded = enc(text.slice(0, 1500));
    parts.push(`${enc(q.name)}=${encoded.length <= 1500 ? encoded : enc(text.slice(0, 100))}`);
    if (rng.chance(0.05)) parts.push(`${enc(q.name)}=${enc(rng.pick(NUMBERS))}`);
  }
  if (careful) return parts.length ? `?${parts.join('&')}` : '';
  if (rng.chance(0.08)) parts.push(`${enc(rng.pick(['__proto__', 'constructor', '__proto__[x]', 'a[b]', 'a[]', MARK, '', 'toString']))}=${enc(hostileString(rng).slice(0, 150))}`);
  if (rng.chance(0.02)) parts.push(rng.pick(['&&&', '=', '==', '%zz=1', 'a=%', '?', '#frag']));
  return parts.length ? `?${parts.join('&')}` : '';
}

function credentialsHeaders(rng: Rng, dialect: Dialect, w: World): { headers: Record<string, string | string[]>; auth: string } {
  const mode = rng.weighted<string>([
    [80, 'admin'],
    [3, 'none'],
    [3, 'garbage'],
    [2, 'unknown-id'],
    [0.4, 'wrong-secret'],
    [3, 'other-org'],
    [2, 'no-access'],
    [2, 'reader'],
    [3, 'odd-header'],
    [1.6, 'wrong-dialect-header'],
  ]);
  const put = (cred: string) => ({ headers: authHeaders(dialect, cred), auth: mode });
  const header = dialect === 'backupman' ? 'x-api-key' : 'authorization';
  switch (mode) {
    case 'admin':
      // Native also takes the Bearer word (a common slip); any whitespace may follow it.
      if (dialect === 'native' && rng.chance(0.2)) return { headers: { authorization: `${rng.pick(['Bearer ', 'bearer ', 'BEARER  ', 'Bearer\t'])}${w.admin}` }, auth: mode };
      if (dialect === 'yandex' && rng.chance(0.1)) return { headers: { authorization: `${rng.pick(['bearer ', 'Bearer\t\t', 'BEARER   '])}${w.admin}` }, auth: mode };
      return put(w.admin);
    case 'none':
      return { headers: {}, auth: mode };
    case 'garbage':
      return {
        headers: {
          [header]: rng.pick([
            '',
            ' ',
            ':',
            'a:',
            ':b',
            'Bearer',
            'Bearer ',
            'Bearer :',
            'Basic dXNlcjpwYXNz',
            'null',
            'undefined',
            w.adminId,
            `${w.adminId}:`,
            `Bearer Bearer ${w.admin}`,
            `'; drop table service_tokens; --:x`,
            '../../etc/passwd:x',
            '%00:%00',
            '\u00ff\u00fe:\u00e9\u00e9',
            `${'x'.repeat(601)}:y`,
            `${MARK}:${'s'.repeat(20)}`,
          ]),
        },
        auth: mode,
      };
    case 'unknown-id':
      return put(`${rng.pick([MARK, 'tk00000000', 'a'.repeat(64), 'zz'])}:${'s'.repeat(rng.range(16, 64))}`);
    case 'wrong-secret':
      return put(`${w.adminId}:${rng.word()}${'w'.repeat(20)}`);
    case 'other-org':
      return put(w.others.other);
    case 'no-access':
      return put(w.others.noAccess);
    case 'reader':
      return put(w.others.reader);
    case 'odd-header':
      return rng.weighted<() => { headers: Record<string, string | string[]>; auth: string }>([
        [3, () => ({ headers: { [header]: (rng.chance(0.5) ? 'Bearer ' : '') + 'A'.repeat(rng.range(600, 5000)) }, auth: 'long-header' })],
        [1, () => ({ headers: { [header]: `${w.admin}${'x'.repeat(rng.range(100, 5000))}` }, auth: 'long-header' })],
        [2, () => ({ headers: { ...authHeaders(dialect, w.admin), host: rng.pick(['a b', '', '[::1', 'evil.example', 'x:99999', '%zz', `${MARK}.example`, '127.0.0.1:1', 'a/b?c#d', 'ex ample.com', '[zz]', 'xn--']) }, auth: 'admin+odd-host' })],
        [1, () => ({ headers: { ...authHeaders(dialect, w.admin), 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'java script', 'x-forwarded-for': "'; drop" }, auth: 'admin+forwarded' })],
        [1, () => ({ headers: { [header]: [w.admin, 'garbage:garbage'] }, auth: 'duplicate-header' })],
        [1, () => ({ headers: { ...authHeaders(dialect, w.admin), cookie: `session=${'c'.repeat(1000)}; __proto__=1`, accept: 'application/xml', 'accept-encoding': 'gzip, br, zstd' }, auth: 'admin+cookies' })],
      ])();
    case 'wrong-dialect-header':
      return {
        headers: dialect === 'backupman' ? { authorization: w.admin } : dialect === 'yandex' ? rng.pick<Record<string, string>>([{ authorization: w.admin }, { 'x-api-key': w.admin }]) : { 'x-api-key': w.admin },
        auth: mode,
      };
  }
  return put(w.admin);
}

const ODD_METHODS = ['PUT', 'OPTIONS', 'PROPFIND', 'TRACE', 'PATCH', 'DELETE', 'GET', 'POST', 'SEARCH'];
const PREFIXES = ['/v1', '/v1/organizations/default', '/managed-postgresql/v1', '/managed-mysql/v1', '/api', '/api/backups', '', '/managed-postgresql', '/v2'];

function plan(i: number, routes: RouteSpec[], w: World): Planned {
  const rng = rngFor(i);
  const route = rng.pick(routes);
  // A third of the requests are careful: real resources, valid encoding, a body that
  // mostly validates. They reach the handlers; the rest mostly test the edges.
  const careful = rng.chance(0.35);
  let method = route.method;
  let routeName = route.path;
  let urlPath: string;
  if (careful) {
    urlPath = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeComponent(realParam(rng, route, name, w)));
  } else if (rng.chance(0.03)) {
    // A path no route has, under a real prefix.
    const segs = Array.from({ length: rng.range(1, 4) }, () => encodeParam(rng, rng.chance(0.5) ? hostileString(rng).slice(0, 80) : rng.word()));
    urlPath = `${rng.pick(PREFIXES)}/${segs.join('/')}`;
    method = rng.pick(ODD_METHODS);
    routeName = 'UNKNOWN';
  } else {
    if (rng.chance(0.03)) method = rng.pick(ODD_METHODS);
    urlPath = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const v = rng.chance(0.7) ? realParam(rng, route, name, w, method) : rng.chance(0.8) ? hostileString(rng).slice(0, rng.pick([60, 200, 3000])) : String(smartValue(name, rng, w) ?? rng.word());
      // Node answers a request line + headers over 16 KiB itself (431); that is tested on its own.
      const encoded = encodeParam(rng, v);
      return encoded.length <= 1500 ? encoded : encodeParam(rng, v.slice(0, 100));
    });
    if (rng.chance(0.02)) urlPath += rng.pick(['/', '//', '/..', '/.', '%2F', ';x=1', '/extra']);
  }
  const query = queryString(rng, route, w, careful);
  urlPath += urlPath.length + query.length <= 9000 ? query : '';
  const dialect = dialectOfPath(urlPath);
  // Now and then the absolute form of the request target (RFC 9112 3.2.2), which proxies send.
  if (!careful && rng.chance(0.02)) urlPath = `http://${rng.pick(['127.0.0.1', 'evil.example', 'x'])}${urlPath}`;
  const { headers, auth } = careful && rng.chance(0.85) ? { headers: authHeaders(dialect, w.admin) as Record<string, string | string[]>, auth: 'admin' } : credentialsHeaders(rng, dialect, w);

  let body: string | undefined;
  let contentType: string | undefined = 'application/json';
  let mayReset = false;
  const schema = route.body;
  if (schema && routeName !== 'UNKNOWN') {
    const mode = careful ? 'careful' : rng.weighted<string>([
      [55, 'schema'],
      [12, 'malformed'],
      [8, 'proto'],
      [8, 'content-type'],
      [5, 'none'],
      [6, 'hostile'],
      [1, 'too-large'],
    ]);
    const valid = () => fromSchema(schema, rng, '', w);
    switch (mode) {
      case 'schema': {
        let v = valid();
        if (rng.chance(0.5)) v = mutate(v, schema, rng);
        if (rng.chance(0.15)) v = mutate(v, schema, rng);
        body = toJson(v);
        break;
      }
      case 'careful':
        body = toJson(rng.chance(0.2) ? mutate(valid(), schema, rng) : valid());
        break;
      case 'malformed':
        body = rng.pick(MALFORMED);
        break;
      case 'proto': {
        const base = toJson(valid());
        body = rng.chance(0.5) ? rng.pick(PROTO) : base.replace(/^\{/, `{${rng.pick(['"__proto__":{"superuser":1}', '"constructor":{"prototype":{"superuser":1}}'])}${base === '{}' ? '' : ','}`);
        break;
      }
      case 'content-type':
        body = toJson(valid());
        contentType = rng.pick(CONTENT_TYPES);
        break;
      case 'none':
        contentType = rng.chance(0.5) ? 'application/json' : undefined;
        break;
      case 'hostile':
        body = toJson(hostileValue(rng));
        break;
      case 'too-large':
        body = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + rng.int(1000)) });
        mayReset = true;
        break;
    }
  } else if (!careful && rng.chance(0.25)) {
    body = rng.chance(0.5) ? toJson(hostileValue(rng)) : rng.pick([...MALFORMED, ...PROTO]);
    if (rng.chance(0.3)) contentType = rng.pick(CONTENT_TYPES);
  } else {
    contentType = rng.chance(0.1) ? 'application/json' : undefined;
  }
  if (contentType !== undefined && (body !== undefined || rng.chance(0.5))) headers['content-type'] = contentType;
  return { i, route: routeName, dialect, method, path: urlPath, headers, body, chunked: body !== undefined && rng.chance(0.1), auth, mayReset, driven: routeName === 'UNKNOWN' ? null : routeKey(route) };
}

// ---------------------------------------------------------------- judging a response

interface Failure {
  kind: string;
  key: string;
  detail: string;
}

function redact(s: string, w: World): string {
  let out = s;
  for (const [name, t] of [['admin', w.admin], ['other-org', w.others.other], ['no-access', w.others.noAccess], ['reader', w.others.reader]] as const) {
    out = out.split(t.split(':')[1]).join(`<${name}-secret>`);
  }
  return out;
}

function describeRequest(p: Planned, w: World): string {
  const path = p.path.length > 600 ? `${p.path.slice(0, 600)}... (${p.path.length} chars)` : p.path;
  const headers = Object.fromEntries(Object.entries(p.headers).map(([k, v]) => [k, (Array.isArray(v) ? v : [v]).map((x) => (x.length > 200 ? `${x.slice(0, 200)}... (${x.length} chars)` : x))]));
  const body = p.body === undefined ? '(none)' : p.body.length > 800 ? `${p.body.slice(0, 800)}... (${p.body.length} chars)` : p.body;
  return redact(`#${p.i} [auth: ${p.auth}] ${p.method} ${path}\n    headers: ${JSON.stringify(headers)}\n    body: ${JSON.stringify(body)}${p.chunked ? ' (chunked)' : ''}`, w);
}

const NO_CREDENTIALS = new Set(['none', 'garbage', 'unknown-id', 'wrong-secret', 'long-header', 'wrong-dialect-header']);

/** What kind of answer this is, independent of the route: the status and the body's keys and code. */
function signature(res: RawResponse): string {
  const j = res.json as Record<string, unknown> | undefined;
  if (!j || typeof j !== 'object' || Array.isArray(j)) return `${res.status} ${res.text === '' ? '(empty)' : '(not an object)'}`;
  const code = typeof j.code === 'string' && /^[A-Z_]+$/.test(j.code) ? ` ${j.code}` : '';
  return `${res.status} {${Object.keys(j).sort().join(',')}}${code}${res.status >= 500 ? ` ${String(j.message ?? j.error ?? '').slice(0, 80)}` : ''}`;
}

function judge(p: Planned, res: RawResponse, w: World): Failure[] {
  const out: Failure[] = [];
  const add = (kind: string, detail: string) => out.push({ kind, key: `${kind} | ${signature(res)}`, detail });
  const bodyText = res.text.length > 500 ? `${res.text.slice(0, 500)}...` : res.text;
  if (res.status >= 500) add('5xx', `status ${res.status}: ${bodyText}`);
  const binary = /octet-stream/.test(String(res.headers['content-type'] ?? ''));
  if (res.status >= 400 && p.method !== 'HEAD') {
    const problem = errorShapeProblem(p.dialect, res.json);
    if (problem) add(`wrong ${p.dialect} error shape`, `${problem}; body: ${bodyText}`);
  }
  if (!binary) {
    const leak = leakIn(res.text);
    if (leak) add('internals leaked', leak);
  }
  for (const [what, secret] of [...Object.entries(SENT_SECRETS), ['admin token', w.admin.split(':')[1]], ['other-org token', w.others.other.split(':')[1]], ['reader token', w.others.reader.split(':')[1]]]) {
    if (res.text.includes(secret)) add('secret echoed', `the ${what} secret is in the response: ${bodyText}`);
  }
  const target = p.path.replace(/^https?:\/\/[^/]*/, '');
  // The dashboard's sign-in routes take no token header; signing out without a session is a harmless 204 (test/api/ui-session.test.ts).
  const publicRoute = /^\/(health|openapi\.json|ui\/session)(\?|$)/.test(target);
  if (NO_CREDENTIALS.has(p.auth) && !publicRoute && res.status < 400) add('answered without valid credentials', `status ${res.status}: ${bodyText}`);
  if (p.auth === 'other-org' && p.dialect === 'native' && /^\/v1\/organizations\/default[/?]/.test(target) && (res.status < 400 || res.status === 403)) {
    add("another organization's token saw into default", `status ${res.status}: ${bodyText}`);
  }
  // A token without accesses may list (and see nothing); a read-only one may verify and preview a schedule (read_backups). Nothing else.
  if (p.auth === 'no-access' && !publicRoute && res.status < 300) {
    const data = (res.json as { data?: unknown } | undefined)?.data;
    if (!Array.isArray(data) || data.length > 0) add('a token without accesses got something', `status ${res.status}: ${bodyText}`);
  }
  if (p.auth === 'reader' && ['POST', 'PATCH', 'DELETE', 'PUT'].includes(p.method) && res.status < 300 && !/\/(verify|backup-policies\/preview)(\?|$)/.test(target) && !publicRoute) {
    add('a read-only token wrote', `status ${res.status}: ${bodyText}`);
  }
  return out;
}

// ---------------------------------------------------------------- files outside the data dir

type Tree = Map<string, string>;

function snapshotTree(dir: string): Tree {
  const out: Tree = new Map();
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.set(r, 'dir');
        walk(full, r);
      } else {
        const st = fs.lstatSync(full);
        out.set(r, `${e.isSymbolicLink() ? 'link' : 'file'}:${st.size}:${st.mtimeMs}:${st.mode}`);
      }
    }
  };
  walk(dir, '');
  return out;
}

/** Paths under `dir` (to `depth`) whose name contains `needle`, skipping `skip`. */
function findNamed(dir: string, needle: string, skip: string[], depth: number, budget = { left: 300_000 }): string[] {
  const found: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const e of entries) {
    if (--budget.left < 0) break;
    const full = path.join(dir, e.name);
    if (skip.some((s) => full === s)) continue;
    if (e.name.includes(needle)) found.push(full);
    if (e.isDirectory() && !e.isSymbolicLink() && depth > 0) found.push(...findNamed(full, needle, skip, depth - 1, budget));
  }
  return found;
}

// ---------------------------------------------------------------- the test

describe('fuzz: every route, hostile input', () => {
  let server: TestServer;
  let client: RawClient;
  let routes: RouteSpec[];
  let world: World;
  const pgDb = uniqueName('sbx_fuzz');
  const pgDb2 = uniqueName('sbx_fuzz_t');
  const myDb = uniqueName('sbx_fuzz');
  let root: string;
  let canary: string;
  let allowed: string;
  let canaryBefore: Tree;
  let tmpBefore: Set<string>;
  let passwdBefore: string;
  let logOffset = 0;
  let fuzzed = false;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-fuzz-files-'));
    canary = path.join(root, 'canary');
    allowed = path.join(root, 'allowed');
    fs.mkdirSync(path.join(canary, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(canary, 'deep/er/still'), { recursive: true });
    fs.mkdirSync(allowed);
    fs.writeFileSync(path.join(canary, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    fs.writeFileSync(path.join(canary, 'secret.txt'), 'do not touch\n');
    fs.writeFileSync(path.join(canary, 'deep/er/still/file'), 'x');

    server = await startServer({ STRONGBOX_RATE_LIMIT_PER_MINUTE: '0' }, { runner: false });
    const admin = server.token;
    const call = async (method: string, url: string, body?: unknown, token: string = admin) => {
      const r = await api(server, method, url, body, token);
      if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };

    await createDatabase('postgresql', pgDb);
    await createDatabase('postgresql', pgDb2);
    await withPgClient(pgUrl(pgDb), (c) => c.query(`create table items (id int primary key, note text); insert into items values (1, 'a'), (2, '😀')`));
    await createDatabase('mysql', myDb);
    await withMysqlConnection(mysqlUrl(myDb), (c) => c.query('create table items (id int primary key, note text)'));

    const main = await registerBranch(server, 'default', 'app', 'postgresql', 'main', pgUrl(pgDb), true);
    const dev = await registerBranch(server, 'default', 'app', 'postgresql', 'dev', pgUrl(pgDb));
    const victimBranches = ['victim-b1', 'victim-b2', 'victim-b3'];
    for (const b of victimBranches) await call('POST', '/v1/organizations/default/databases/app/branches', { name: b, connection_url: pgUrl(pgDb) });
    const mysqlMain = await registerBranch(server, 'default', 'myapp', 'mysql', 'main', mysqlUrl(myDb));

    await call('POST', '/v1/organizations', { name: 'other' });
    const token = async (org: string, name: string, accesses: string[]) => {
      const t = await call('POST', `/v1/organizations/${org}/service-tokens`, { name });
      if (accesses.length) await call('POST', `/v1/organizations/${org}/service-tokens/${t.id}/accesses`, { accesses });
      return { id: t.id as string, token: `${t.id}:${t.token}` };
    };
    const other = await token('other', 'other-all', [...ALL_ACCESSES]);
    const noAccess = await token('default', 'no-access', []);
    const reader = await token('default', 'reader', ['read_backups', 'read_databases', 'read_branches', 'read_organization']);
    const extra = await token('default', 'extra', ['read_backups']);
    const victimTokens = [await token('default', 'victim-1', []), await token('default', 'victim-2', ['read_backups']), await token('default', 'victim-3', [])];

    const destinations = ['local', 'spare'];
    await call('POST', '/v1/organizations/default/storage-destinations', { name: 'spare', provider: 'local', config: { path: path.join(allowed, 'spare') } });
    const victimDestinations = ['victim-d1', 'victim-d2'];
    for (const d of victimDestinations) await call('POST', '/v1/organizations/default/storage-destinations', { name: d, provider: 'local', config: { path: path.join(allowed, d) } });

    const policies = (await call('GET', '/v1/organizations/default/databases/app/backup-policies')).data.map((p: any) => p.id as string);
    const victimPolicies: string[] = [];
    for (const n of ['victim-p1', 'victim-p2']) {
      victimPolicies.push((await call('POST', '/v1/organizations/default/databases/app/backup-policies', { name: n, target: 'development', retention_value: 1, retention_unit: 'day', frequency_value: 1, frequency_unit: 'day', schedule_time: '03:00' })).id);
    }

    // Real backups (the runner runs only for these), a verification, then the runner stops.
    await server.runner.start();
    const take = async (branchPath: string) => waitForBackup(server, branchPath, (await call('POST', `${branchPath}/backups`, {})).id);
    const keep = await take(main);
    const victimsB = [await take(main), await take(main)];
    const devKeep = await take(dev);
    const myKeep = await take(mysqlMain);
    for (const b of [keep, ...victimsB, devKeep, myKeep]) assert.equal(b.state, 'success', `fixture backup: ${JSON.stringify(b)}`);
    const verification = await call('POST', `${main}/backups/${keep.id}/verify`, {});
    for (let k = 0; k < 300; k++) {
      const v = (await call('GET', `${main}/backups/${keep.id}/verifications`)).data.find((x: any) => x.id === verification.id);
      if (v && v.state !== 'pending' && v.state !== 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await server.runner.stop();

    const restored = await call('POST', '/v1/organizations/default/databases/app/branches', { name: `restored-${MARK}`.slice(0, 63), backup_id: devKeep.id });
    const artifacts = (await call('GET', `${main}/backups/${keep.id}/artifacts`)).data.map((a: any) => a.id as string);
    const org = await call('GET', '/v1/organizations/default');
    const branchIds = [
      ...(await call('GET', '/v1/organizations/default/databases/app/branches')).data.map((b: any) => b.id as string),
      ...(await call('GET', '/v1/organizations/default/databases/myapp/branches')).data.map((b: any) => b.id as string),
    ];
    const orgIds = (await call('GET', '/v1/organizations')).data.map((o: any) => o.id as string);

    world = {
      admin,
      adminId: admin.split(':')[0],
      others: { other: other.token, noAccess: noAccess.token, reader: reader.token },
      orgs: ['default', 'other', 'nope'],
      orgIds,
      databases: ['app', 'myapp', 'nope'],
      branches: ['main', 'dev', restored.name, 'nope'],
      victimBranches: [...victimBranches, 'nope'],
      branchIds,
      backupIds: [keep.id, devKeep.id, myKeep.id],
      victimBackupIds: victimsB.map((b) => b.id as string),
      // Not the reader's, the no-access one's or the admin's: the fuzzer could grant or delete them.
      tokenIds: [extra.id, ...victimTokens.map((t) => t.id), 'nope'],
      victimTokenIds: victimTokens.map((t) => t.id),
      policyIds: [...policies, ...victimPolicies],
      victimPolicyIds: victimPolicies,
      snapshotIds: [...new Set([keep, devKeep, myKeep].map((b) => b.schema_snapshot?.id).filter(Boolean) as string[]), 'nope'],
      destinations: [...destinations, ...victimDestinations],
      victimDestinations,
      artifactIds: [...artifacts, 'nope'],
      restoreJobIds: [restored.restore.id, 'nope'],
      recipient: org.encryption_recipients[0],
      connectionUrls: [
        pgUrl(pgDb),
        pgUrl(pgDb2),
        mysqlUrl(myDb),
        pgUrl(`${MARK}_nosuch`),
        mysqlUrl(`${MARK}_nosuch`),
        `postgresql://postgres@127.0.0.1:1/${MARK}`,
        `postgresql://postgres:${SENT_SECRETS.pg}@127.0.0.1:5432/${pgDb}`,
        `postgresql://postgres:${SENT_SECRETS.pg}@127.0.0.1:1/${pgDb}`,
        `postgresql://nobody:${SENT_SECRETS.pg}@127.0.0.1:5432/${pgDb}`,
        `mysql://nobody:${SENT_SECRETS.pg}@127.0.0.1:3306/${myDb}`,
        `postgresql://postgres:${encodeURIComponent(`p@ss'; drop${SENT_SECRETS.pg}`)}@127.0.0.1:5432/${MARK}_nosuch`,
        `postgresql://nobody_${MARK}@127.0.0.1:5432/${pgDb}`,
        `postgresql://postgres@127.0.0.1:5432/${encodeURIComponent(`../../${MARK}`)}`,
        `postgresql://postgres@127.0.0.1:5432/${encodeURIComponent(`x'; drop database ${pgDb}; --`)}`,
        `postgresql://postgres@127.0.0.1:5432/${pgDb}?sslmode=disable`,
        `postgresql://postgres@127.0.0.1:5432/${pgDb}?options=-c%20statement_timeout%3D1`,
        `postgresql://postgres@[::1]:5432/${MARK}`,
        `postgresql://postgres@localhost:5432/${pgDb}#frag`,
        `postgresql://%00@127.0.0.1:5432/${MARK}`,
        `mysql://root@127.0.0.1:3306/${encodeURIComponent('`; drop database x; --')}`,
        `mysql://root@127.0.0.1:1/${MARK}`,
        'not a url',
        `ftp://127.0.0.1/${MARK}`,
        `file:///etc/passwd`,
        `postgresql:///${MARK}`,
        `postgresql://127.0.0.1:99999/${MARK}`,
        `postgresql://postgres@127.0.0.1:5432/`,
      ],
      allowedDir: allowed,
    };

    routes = await discoverRoutes(server.url);
    client = new RawClient(server.url, { maxSockets: CONCURRENCY });

    canaryBefore = snapshotTree(canary);
    tmpBefore = new Set(fs.readdirSync(os.tmpdir()));
    const st = fs.statSync('/etc/passwd');
    passwdBefore = `${st.size}:${st.mtimeMs}`;
  });

  after(async () => {
    client?.close();
    await server?.close();
    // Whatever the fuzzer managed to create on the database servers goes too.
    const leftovers = await withPgClient(pgUrl('postgres'), async (c) => (await c.query<{ datname: string }>('select datname from pg_database where datname like $1', [`%${MARK}%`])).rows.map((r) => r.datname));
    for (const d of [pgDb, pgDb2, ...leftovers]) await dropDatabase('postgresql', d).catch(() => {});
    await dropDatabase('mysql', myDb).catch(() => {});
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test('the routes come from the server itself: at least 40, every dialect', () => {
    const keys = routes.map(routeKey);
    console.log(`fuzz: ${routes.length} routes (${routes.filter((r) => r.dialect === 'native').length} native, ${routes.filter((r) => r.dialect === 'yandex').length} Yandex, ${routes.filter((r) => r.dialect === 'backupman').length} backupman)`);
    assert.ok(routes.length >= 40, `only ${routes.length} routes found`);
    for (const prefix of ['/v1/', '/managed-postgresql/v1/', '/managed-mysql/v1/', '/api/']) assert.ok(keys.some((k) => k.split(' ')[1].startsWith(prefix)), `no route under ${prefix}`);
    const undocumented = routes.filter((r) => !r.documented).map(routeKey);
    assert.deepEqual(undocumented, [], 'every compat route is in the OpenAPI document');
  });

  test('a stored copy that vanished from its destination: the downloads answer a 4xx in their shape, not a 5xx', async () => {
    // The fuzzer gets here on its own by pointing a destination elsewhere (PATCH config);
    // this is the same state made on purpose, so that every run checks it.
    const main = '/v1/organizations/default/databases/app/branches/main/backups';
    const arts = (await api(server, 'GET', `${main}/${world.backupIds[0]}/artifacts`)).body.data as Array<{ id: string; path: string; destination: string }>;
    const local = arts.find((a) => a.destination === 'local')!;
    const file = path.join(server.dataDir, 'backups', local.path);
    fs.renameSync(file, `${file}.away`);
    try {
      const problems: string[] = [];
      for (const [dialect, url] of [['native', `${main}/${world.backupIds[0]}/download`], ['backupman', `/api/backups/${local.id}/download`]] as const) {
        const res = await client.request({ method: 'GET', path: url, headers: authHeaders(dialect, world.admin) });
        if (res.status < 400 || res.status >= 500 || [401, 403].includes(res.status)) problems.push(`GET ${url}: ${res.status} ${res.text.slice(0, 200)} (expected a 4xx such as 409, as for a corrupt copy)`);
        else if (errorShapeProblem(dialect, res.json)) problems.push(`GET ${url}: ${errorShapeProblem(dialect, res.json)}`);
      }
      assert.deepEqual(problems, []);
    } finally {
      fs.renameSync(`${file}.away`, file);
    }
  });

  test(`at least ${MIN_REQUESTS} hostile requests: never a 5xx, always the dialect's error shape, never internals`, async () => {
    const failures: Failure[] = [];
    const samples = new Map<string, { count: number; routes: Set<string>; first: string; more: string[] }>();
    const statuses = new Map<number, number>();
    const perRoute = new Map<string, number>();
    let sent = 0;
    let skipped = 0;
    let resets = 0;
    let next = 0;
    const indexes = ONLY ?? null;
    const started = Date.now();
    logOffset = fs.statSync(server.logFile).size;

    const record = (p: Planned, found: Failure[]) => {
      for (const f of found) {
        failures.push(f);
        const s = samples.get(f.key);
        const route = `${p.method} ${p.route}`;
        if (s) {
          s.count++;
          s.routes.add(route);
          if (s.more.length < 2 && !s.first.includes(route)) s.more.push(`${describeRequest(p, world)}\n    => ${f.detail}`);
        } else samples.set(f.key, { count: 1, routes: new Set([route]), first: `${describeRequest(p, world)}\n    => ${f.detail}`, more: [] });
      }
    };

    async function worker(): Promise<void> {
      for (;;) {
        let i: number;
        if (indexes) {
          if (next >= indexes.length) return;
          i = indexes[next++];
        } else {
          if (sent >= REQUESTS || next >= REQUESTS * 2) return;
          i = next++;
        }
        const p = plan(i, routes, world);
        let res: RawResponse;
        try {
          res = await client.request({ method: p.method, path: p.path, headers: p.headers, body: p.body, chunked: p.chunked, timeoutMs: 60_000 });
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          if (err.code === 'ERR_INVALID_CHAR' || err.code === 'ERR_UNESCAPED_CHARACTERS' || err.code === 'ERR_INVALID_HTTP_TOKEN' || err.code === 'ERR_HTTP_INVALID_HEADER_VALUE') {
            skipped++; // the client refused to send it: not a request
            continue;
          }
          sent++;
          if (p.mayReset && ['ECONNRESET', 'EPIPE'].includes(err.code ?? '')) {
            resets++;
            continue;
          }
          record(p, [{ kind: 'no answer', key: `no answer | ${err.code ?? err.message}`, detail: `${err.code ?? ''} ${err.message}` }]);
          continue;
        }
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (p.driven) perRoute.set(p.driven, (perRoute.get(p.driven) ?? 0) + 1);
        if (STATS) {
          const h = STATS.get(p.driven ?? 'UNKNOWN') ?? new Map<number, number>();
          h.set(res.status, (h.get(res.status) ?? 0) + 1);
          STATS.set(p.driven ?? 'UNKNOWN', h);
        }
        record(p, judge(p, res, world));
        if (sent % 2000 === 0) console.log(`fuzz: ${sent} requests, ${failures.length} problems, ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker()));
    fuzzed = true;

    const seconds = (Date.now() - started) / 1000;
    const classes = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', ');
    console.log(`fuzz seed: ${SEED}: ${sent} requests in ${seconds.toFixed(1)} s (${(sent / seconds).toFixed(0)}/s), ${skipped} not sendable, ${resets} cut off over the body limit`);
    console.log(`fuzz statuses: ${classes}`);
    if (STATS) for (const [route, h] of [...STATS.entries()].sort()) console.log(`fuzz ${route}: ${[...h.entries()].sort((a, b) => a[0] - b[0]).map(([k, n]) => `${k}x${n}`).join(' ')}`);

    if (!indexes) {
      assert.ok(sent >= MIN_REQUESTS || REQUESTS < MIN_REQUESTS, `only ${sent} requests were sent`);
      const missed = routes.filter((r) => (perRoute.get(routeKey(r)) ?? 0) < Math.min(20, REQUESTS / routes.length / 4)).map(routeKey);
      assert.deepEqual(missed, [], 'every route was driven');
    }
    if (failures.length) {
      const report = [...samples.entries()]
        .sort((a, b) => b[1].count - a[1].count)
        .map(([key, s]) => `\n[${s.count}x on ${s.routes.size} routes] ${key}\n  routes: ${[...s.routes].slice(0, 8).join('; ')}${s.routes.size > 8 ? '; ...' : ''}\n  e.g. ${[s.first, ...s.more].join('\n  e.g. ')}`)
        .join('\n');
      assert.fail(`fuzz seed ${SEED} (replay: STRONGBOX_FUZZ_SEED=${SEED}; one request: STRONGBOX_FUZZ_ONLY=<#>): ${failures.length} problems in ${samples.size} kinds:${report}`);
    }
  });

  test('protocol-level client errors (oversized headers, broken HTTP) answer in the native error shape; the server survives', async () => {
    // Before routing there is no dialect to speak: the native shape is the default. Each
    // request is written whole on its own connection and the answer read until close.
    const u = new URL(server.url);
    const send = (data: string) =>
      new Promise<string>((resolve) => {
        const sock = net.connect(Number(u.port), u.hostname, () => sock.write(data));
        let out = '';
        sock.on('data', (d) => (out += d.toString('latin1')));
        sock.on('close', () => resolve(out));
        sock.on('error', () => {});
        setTimeout(() => sock.destroy(), 5000);
      });
    const cases: Array<[string, string, number]> = [
      ['a 20 KB Authorization header', `GET /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['a 20 KB URL', `GET /v1/organizations/${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin}\r\n\r\n`, 431],
      ['a NUL in a header name', `GET /v1/organizations HTTP/1.1\r\nHost: x\r\nX-Bad\u0000: y\r\n\r\n`, 400],
      ['an unknown method token', `FROB /v1/organizations HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
      ['both Content-Length and Transfer-Encoding', `POST /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
      ['a bad chunk size', `POST /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`, 400],
      ['a request target without a leading slash', `GET v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin}\r\n\r\n`, 400],
    ];
    const problems: string[] = [];
    for (const [what, request, status] of cases) {
      const answer = await send(request);
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(answer);
      if (!m) {
        problems.push(`${what}: no HTTP answer (${JSON.stringify(answer.slice(0, 100))})`);
        continue;
      }
      if (Number(m[1]) !== status) problems.push(`${what}: status ${m[1]}, expected ${status}`);
      let body: unknown;
      try {
        body = JSON.parse(m[3]);
      } catch {
        body = m[3];
      }
      const shape = errorShapeProblem('native', body);
      if (shape) problems.push(`${what}: ${shape}; body: ${m[3].slice(0, 200)}`);
    }
    assert.equal((await client.request({ method: 'GET', path: '/health' })).status, 200, 'the server still answers');
    assert.deepEqual(problems, []);
  });

  test('odd Host headers on every GET route, with a previous and a next page to link to: never a 5xx', async () => {
    // Pagination links are built from the Host header: whatever a client sends there must not break them.
    const hosts = ['a b', '', '[::1', 'x:99999', '%zz', 'ex ample.com', '[zz]', 'xn--', 'a/b?c#d', 'evil.example', `${MARK}.example:8080`];
    const problems: string[] = [];
    for (const route of routes.filter((r) => r.method === 'GET')) {
      const rng = new Rng(SEED);
      const values = Object.fromEntries(route.pathParams.map((n) => [n, realParam(rng, route, n, world)]));
      // A hostile value cut short may end in half a surrogate pair, which encodeURIComponent
      // refuses: encodeComponent sends it as UTF-8 makes it (U+FFFD).
      const url = route.path.replace(/\{([^}]+)\}/g, (_, n: string) => encodeComponent(values[n])) + (route.query.some((q) => q.name === 'page') ? '?page=2&per_page=1' : route.query.some((q) => q.name === 'folderId') ? `?folderId=${world.orgIds[0]}&pageSize=1` : '');
      for (const host of hosts) {
        const res = await client.request({ method: 'GET', path: url, headers: { ...authHeaders(route.dialect, world.admin), host } });
        if (res.status >= 500) problems.push(`GET ${url} with Host ${JSON.stringify(host)}: ${res.status} ${res.text.slice(0, 120)}`);
        else if (res.status >= 400 && errorShapeProblem(route.dialect, res.json)) problems.push(`GET ${url} with Host ${JSON.stringify(host)}: ${errorShapeProblem(route.dialect, res.json)}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test("the same name created 6 times at once, and a deleted branch's name used again: one success, then 409; never a 5xx", async () => {
    // The fuzzer's 8 connections collide on names now and then; this makes it certain.
    const problems: string[] = [];
    const admin = (dialect: Dialect) => ({ ...authHeaders(dialect, world.admin), 'content-type': 'application/json' });
    const send = (dialect: Dialect, method: string, url: string, body: unknown) => client.request({ method, path: url, headers: admin(dialect), body: JSON.stringify(body) });
    const burst = async (what: string, dialect: Dialect, url: string, body: unknown) => {
      const all = await Promise.all(Array.from({ length: 6 }, () => send(dialect, 'POST', url, body)));
      const statuses = all.map((r) => r.status);
      const ok = statuses.filter((st) => st < 300).length;
      if (ok !== 1 || statuses.some((st) => st >= 300 && st !== 409)) problems.push(`${what}: POST ${url} 6 times at once: ${statuses.join(', ')} (expected one success and 409s); e.g. ${all.find((r) => r.status >= 500)?.text ?? ''}`);
      for (const r of all) if (r.status >= 400 && errorShapeProblem(dialect, r.json)) problems.push(`${what}: ${errorShapeProblem(dialect, r.json)}`);
    };
    const n = (s: string) => `${s}-${MARK}`;
    await burst('branch', 'native', '/v1/organizations/default/databases/app/branches', { name: n('race-b'), connection_url: pgUrl(pgDb) });
    await burst('storage destination', 'native', '/v1/organizations/default/storage-destinations', { name: n('race-d'), provider: 'local', config: { path: path.join(allowed, n('race-d')) } });
    await burst('database', 'native', '/v1/organizations/default/databases', { name: n('race-db'), kind: 'postgresql' });
    await burst('organization', 'native', '/v1/organizations', { name: n('race-o') });
    await burst('backup policy', 'native', '/v1/organizations/default/databases/app/backup-policies', { name: n('race-p'), target: 'development', retention_value: 1, retention_unit: 'day', frequency_value: 1, frequency_unit: 'day', schedule_time: '03:00' });
    await burst('Yandex restore', 'yandex', '/managed-postgresql/v1/clusters:restore', { backupId: world.backupIds[1], name: n('race-y') });

    // A deleted branch is gone (GET says 404), so its name is free again.
    const branches = '/v1/organizations/default/databases/app/branches';
    for (const [what, again] of [
      ['native', (name: string) => send('native', 'POST', branches, { name, connection_url: pgUrl(pgDb) })],
      ['Yandex restore', (name: string) => send('yandex', 'POST', '/managed-postgresql/v1/clusters:restore', { backupId: world.backupIds[1], name })],
    ] as const) {
      const name = n(`reuse-${what === 'native' ? 'n' : 'y'}`);
      const first = await send('native', 'POST', branches, { name, connection_url: pgUrl(pgDb) });
      const gone = await client.request({ method: 'DELETE', path: `${branches}/${name}`, headers: authHeaders('native', world.admin) });
      if (first.status !== 201 || gone.status !== 204) {
        problems.push(`setup of ${name}: ${first.status} ${gone.status}`);
        continue;
      }
      const r = await again(name);
      if (r.status >= 300) problems.push(`${what}: a branch named like a deleted one: ${r.status} ${r.text.slice(0, 200)} (expected ${what === 'native' ? 201 : 200})`);
    }
    assert.deepEqual(problems, []);
  });

  test('afterwards the server still answers, the admin token still works, nothing polluted Object.prototype', async () => {
    assert.ok(fuzzed, 'the fuzz ran');
    // The server runs in this process: a pollution would show here.
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), PROTOTYPE_KEYS);
    for (const k of ['superuser', 'isAdmin', 'polluted', 'x', 'name']) assert.equal(({} as Record<string, unknown>)[k], undefined, `Object.prototype.${k}`);
    const health = await client.request({ method: 'GET', path: '/health' });
    assert.equal(health.status, 200);
    assert.deepEqual((health.json as any).status, 'ok');
    const orgs = await api(server, 'GET', '/v1/organizations');
    assert.equal(orgs.status, 200, JSON.stringify(orgs.body));
    const b = await api(server, 'GET', `/v1/organizations/default/databases/app/branches/main/backups/${world.backupIds[0]}`);
    assert.equal(b.status, 200, JSON.stringify(b.body));
  });

  test('nothing was written outside the data dir; no file named after a payload exists anywhere', () => {
    assert.ok(fuzzed, 'the fuzz ran');
    assert.deepEqual([...snapshotTree(canary).entries()], [...canaryBefore.entries()], 'the canary tree is untouched');
    assert.deepEqual(fs.readdirSync(root).sort(), ['allowed', 'canary'], 'nothing new beside the canary');
    const st = fs.statSync('/etc/passwd');
    assert.equal(`${st.size}:${st.mtimeMs}`, passwdBefore, '/etc/passwd untouched');

    // Destinations may be created under `allowed` by design; their probes must not stay behind.
    const probes = [...snapshotTree(allowed).entries()].filter(([, v]) => v !== 'dir').map(([k]) => k);
    assert.deepEqual(probes, [], 'a destination probe leaves no object behind');

    const tmp = os.tmpdir();
    const fresh = fs.readdirSync(tmp).filter((n) => !tmpBefore.has(n));
    const ours = fresh.filter((n) => n.includes(MARK) || /passwd|strongbox-probe|^\.\.|%2e/i.test(n));
    assert.deepEqual(ours, [], `new entries in ${tmp} named after fuzz payloads`);
    if (fresh.length) console.log(`fuzz: new entries in ${tmp} during the run (other processes?): ${fresh.slice(0, 20).join(', ')}`);

    const named = [
      ...findNamed(tmp, MARK, [allowed, server.dataDir], 6),
      ...findNamed(REPO, MARK, [path.join(REPO, 'node_modules'), path.join(REPO, '.git')], 8),
      ...findNamed('/etc', MARK, [], 2),
    ];
    assert.deepEqual(named, [], `files named after fuzz payloads (marker ${MARK}) outside the data dir`);
  });

  test('no database was created on the test servers by a fuzzed request', async () => {
    assert.ok(fuzzed, 'the fuzz ran');
    const pgNames = await withPgClient(pgUrl('postgres'), async (c) => (await c.query<{ datname: string }>('select datname from pg_database where datname like $1', [`%${MARK}%`])).rows.map((r) => r.datname));
    const myNames = await withMysqlConnection(mysqlUrl('mysql'), async (c) => ((await c.query('show databases'))[0] as Array<Record<string, string>>).map((r) => Object.values(r)[0]).filter((n) => n.includes(MARK)));
    assert.deepEqual([...pgNames, ...myNames], []);
  });

  test('the server logged no error (an unhandled exception) from the fuzz on', () => {
    assert.ok(fuzzed, 'the fuzz ran');
    const text = fs.readFileSync(server.logFile, 'utf8').slice(logOffset);
    const errors = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      let entry: any;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (entry.level < 50) continue;
      const what = `${entry.msg} ${entry.req?.method ?? ''} ${entry.req?.url ?? ''}`.slice(0, 200) + ` | ${String(entry.err?.type ?? '')}: ${String(entry.err?.message ?? '').slice(0, 300)}`;
      errors.set(what, (errors.get(what) ?? 0) + 1);
    }
    const list = [...errors.entries()].map(([w, n]) => `[${n}x] ${redact(w, world)}`);
    assert.deepEqual(list.slice(0, 30), [], `fuzz seed ${SEED}: error-level log entries`);
  });
});
