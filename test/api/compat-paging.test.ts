/**
 * The compatible views at scale (issue 14): the Yandex list pages (Cluster.ListBackups,
 * Backup.List), read as one index walk per branch from the page token's position, are byte
 * for byte what the plain query over the organization gives (what they did before), for every
 * page size, deep pages, ties on created_at, several branches and engines, a token that sees
 * one branch, and journalSize over an archive; backupman's list, streamed in batches from a
 * merge of per-branch walks, is byte for byte the plain list. On a seeded catalog of ~2,600
 * backups (more than one backupman batch, several months, every state, deleted ones).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Insertable } from 'kysely';
import Fastify from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { api, registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { mysqlUrl, pgUrl } from '../helpers/databases.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import { artifactsOf } from '../../src/catalog/backups.js';
import type { ArchiveFilesTable, ArtifactsTable, Backup, BackupsTable } from '../../src/catalog/schema.js';
import { listedPage, listedPagePlain, type ListWhere } from '../../src/api/compat/yandex/list.js';
import { encodePageToken } from '../../src/api/compat/yandex/paging.js';
import { LISTED_STATES, presentBackup, type Engine } from '../../src/api/compat/yandex/present.js';
import { presentBackup as presentBackupman } from '../../src/api/compat/backupman/present.js';
import { BackupListBody } from '../../src/api/compat/backupman/schemas.js';
import { Backup as YandexBackup, BackupList } from '../../src/api/compat/yandex/schemas.js';
import { parseLsn, SEGMENT_RE, segmentName } from '../../src/archive/postgres/tools.js';
import { openDestinationById } from '../../src/destinations.js';

const DAY = 24 * 3_600_000;
const SEGMENT = 16 * 1024 * 1024;

/** The bytes Fastify sends for `value` under the response schema `schema` (the routes' serializer). */
async function serializer(schema: TSchema): Promise<(value: unknown) => Promise<string>> {
  const app = Fastify();
  let payload: unknown;
  app.get('/', { schema: { response: { 200: schema } } }, async () => payload);
  await app.ready();
  return async (value) => {
    payload = value;
    return (await app.inject('/')).body;
  };
}

describe('compatible views: fast pages equal the plain query', () => {
  let server: TestServer;
  let orgId: string;
  /** name -> branch id */
  const branches = new Map<string, string>();
  let oneBranch: string;
  const states = ['success', 'success', 'success', 'running', 'failed', 'canceled', 'ignored', 'pending', 'success'] as const;

  async function token(grants: Array<{ accesses: string[]; database?: string; branch?: string }>): Promise<string> {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'paging' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    for (const g of grants) assert.equal((await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, g)).status, 200);
    return `${t.body.id}:${t.body.token}`;
  }

  /** The raw body of a GET. */
  async function raw(url: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
    const res = await fetch(server.url + url, { headers });
    return { status: res.status, text: await res.text() };
  }

  let asList: (value: unknown) => Promise<string>;
  let asBackup: (value: unknown) => Promise<string>;
  let asBackupman: (value: unknown) => Promise<string>;

  before(async () => {
    asList = await serializer(BackupList);
    asBackup = await serializer(YandexBackup);
    asBackupman = await serializer(BackupListBody);
    server = await startServer({}, { runner: false });
    await registerBranch(server, 'default', 'shop', 'postgresql', 'main', pgUrl('postgres'), true);
    await registerBranch(server, 'default', 'shop', 'postgresql', 'dev', pgUrl('postgres'));
    await registerBranch(server, 'default', 'inventory', 'postgresql', 'main', pgUrl('postgres'));
    await registerBranch(server, 'default', 'orders', 'mysql', 'main', mysqlUrl('mysql'));
    const db = server.ctx.db;
    const rows = await db.selectFrom('branches as b').innerJoin('databases as d', 'd.id', 'b.database_id').select(['b.id', 'b.name', 'b.organization_id', 'b.database_id', 'd.name as db', 'd.kind']).execute();
    orgId = rows[0].organization_id;
    for (const r of rows) branches.set(`${r.db}/${r.name}`, r.id);
    oneBranch = branches.get('shop/dev')!;
    const local = await db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', orgId).executeTakeFirstOrThrow();
    const policy = await db.selectFrom('backup_policies').select('id').executeTakeFirst();

    // Backups over ~14 months on each branch (the big one ten times the others); every 40th
    // shares its created_at with the one before, across branches too (the order then goes by id).
    const start = Date.UTC(2025, 0, 1);
    const backups: Array<Insertable<BackupsTable>> = [];
    const artifacts: Array<Insertable<ArtifactsTable>> = [];
    const files: Array<Insertable<ArchiveFilesTable>> = [];
    const specs = [
      { key: 'shop/main', count: 1800, kind: 'postgresql' as const },
      { key: 'shop/dev', count: 250, kind: 'postgresql' as const },
      { key: 'inventory/main', count: 300, kind: 'postgresql' as const },
      { key: 'orders/main', count: 250, kind: 'mysql' as const },
    ];
    let previous = '';
    const mainTimes: string[] = [];
    for (const [si, spec] of specs.entries()) {
      const r = rows.find((x) => `${x.db}/${x.name}` === spec.key)!;
      for (let k = 0; k < spec.count; k++) {
        const created = nowIso(new Date(start + Math.floor(((k + si * 0.37) * 430 * DAY) / spec.count) + (k % 7) * 60_000));
        // Ties: with the backup before, and (other branches) with one of the big branch.
        const t = k % 40 === 1 && previous ? previous : si > 0 && k % 25 === 2 ? mainTimes[k * 3] : created;
        if (si === 0) mainTimes.push(t);
        previous = t;
        const state = states[(k + si) % states.length];
        const id = newId();
        // Base backups (PostgreSQL) and dumps with binlog coordinates (MySQL) start replays.
        let recoveryStart: string | null = null;
        let method: Backup['method'] = 'logical';
        if (k % 10 === 3 && state === 'success') {
          if (spec.kind === 'postgresql') {
            method = 'base';
            const pos = (k + 1) * SEGMENT + 40;
            recoveryStart = JSON.stringify({ lsn: `${Math.floor(pos / 2 ** 32).toString(16).toUpperCase()}/${(pos % 2 ** 32).toString(16).toUpperCase()}`, timeline: 1 });
          } else recoveryStart = JSON.stringify({ file: `mariadb-bin.${String(100 + k).padStart(6, '0')}`, position: 4 });
        }
        backups.push({
          id,
          organization_id: r.organization_id,
          database_id: r.database_id,
          branch_id: r.id,
          name: `${spec.key}-${k}`,
          state,
          size: k * 1000,
          backup_policy_id: k % 3 === 0 ? null : (policy?.id ?? null),
          retention_value: 2,
          retention_unit: 'day',
          created_at: t,
          updated_at: nowIso(new Date(Date.parse(t) + 90_000)),
          started_at: k % 11 === 0 ? null : nowIso(new Date(Date.parse(t) + 5_000)),
          completed_at: state === 'pending' || state === 'running' ? null : nowIso(new Date(Date.parse(t) + 60_000)),
          expires_at: nowIso(new Date(Date.parse(t) + 100 * 365 * DAY)),
          deleted_at: k % 9 === 0 ? nowIso(new Date(Date.parse(t) + DAY)) : null,
          engine: spec.kind,
          compression: 'zstd',
          required: 0,
          protected: 0,
          emergency: 0,
          method,
          recovery_start: recoveryStart,
        });
        if (state !== 'ignored' && state !== 'canceled') {
          for (const n of k % 4 === 0 ? [0, 1] : [0]) {
            artifacts.push({
              id: newId(),
              backup_id: id,
              destination_id: local.id,
              destination_name: n === 0 ? local.name : 'zz-second',
              provider: 'local',
              path: `default/${spec.key}/${id}-${n}.dump.zst`,
              size: k,
              sha256: null,
              state: state === 'failed' ? 'failed' : state === 'success' ? (k % 13 === 0 ? 'deleted' : 'success') : 'pending',
              error: null,
              created_at: t,
              updated_at: t,
            });
          }
        }
      }
      // The archive: WAL segments (two timelines) or binlog files, a few deleted.
      for (let s = 0; s < spec.count + 20; s += 3) {
        const name = spec.kind === 'postgresql' ? segmentName(s % 2 ? 2 : 1, BigInt(s) * BigInt(SEGMENT), SEGMENT) : `mariadb-bin.${String(100 + s).padStart(6, '0')}`;
        const at = nowIso(new Date(start + s * 3_600_000));
        files.push({
          id: newId(),
          organization_id: r.organization_id,
          database_id: r.database_id,
          branch_id: r.id,
          kind: spec.kind === 'postgresql' ? 'wal' : 'binlog',
          name,
          timeline: null,
          start_lsn: null,
          end_lsn: null,
          first_event_at: null,
          last_event_at: null,
          raw_size: SEGMENT,
          size: 1000 + s,
          state: s % 17 === 0 ? 'deleted' : 'success',
          created_at: at,
          deleted_at: null,
        });
      }
    }
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < backups.length; i += 200) await trx.insertInto('backups').values(backups.slice(i, i + 200)).execute();
      for (let i = 0; i < artifacts.length; i += 200) await trx.insertInto('artifacts').values(artifacts.slice(i, i + 200)).execute();
      for (let i = 0; i < files.length; i += 200) await trx.insertInto('archive_files').values(files.slice(i, i + 200)).execute();
    });
  });
  after(async () => {
    await server?.close();
  });

  /** journalSize as it was computed before issue 14 (every start of the branch against every file). */
  async function plainJournalSizes(backups: Array<Pick<Backup, 'id' | 'branch_id' | 'recovery_start'>>): Promise<Map<string, number>> {
    const db = server.ctx.db;
    const out = new Map<string, number>();
    for (const branchId of [...new Set(backups.filter((b) => b.recovery_start !== null).map((b) => b.branch_id))]) {
      const starts = await db.selectFrom('backups').select(['id', 'method', 'recovery_start']).where('branch_id', '=', branchId).where('deleted_at', 'is', null).where('state', '=', 'success').where('recovery_start', 'is not', null).execute();
      const files = await db.selectFrom('archive_files').select(['kind', 'name', 'size', 'start_lsn', 'end_lsn']).where('branch_id', '=', branchId).where('state', '=', 'success').execute();
      if (files.length === 0) continue;
      const sized = files.find((f) => f.start_lsn && f.end_lsn);
      const segmentSize = sized ? Number(parseLsn(sized.end_lsn!) - parseLsn(sized.start_lsn!)) : SEGMENT;
      const keyed = files.map((f) => ({ key: f.kind === 'wal' ? (SEGMENT_RE.test(f.name) ? f.name.slice(8) : null) : f.name, size: Number(f.size) })).filter((f): f is { key: string; size: number } => f.key !== null);
      const points: Array<{ id: string; key: string }> = [];
      for (const b of starts) {
        const rs = JSON.parse(b.recovery_start!) as Record<string, unknown>;
        if (b.method === 'base' && typeof rs.lsn === 'string') points.push({ id: b.id, key: segmentName(1, parseLsn(rs.lsn), segmentSize).slice(8) });
        else if (typeof rs.file === 'string') points.push({ id: b.id, key: rs.file });
      }
      points.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      points.forEach((p, i) => {
        const next = points.slice(i + 1).find((q) => q.key > p.key)?.key ?? null;
        out.set(p.id, keyed.filter((f) => f.key >= p.key && (next === null || f.key < next)).reduce((n, f) => n + f.size, 0));
      });
    }
    return out;
  }

  /** Every page of a Yandex list as the plain query renders it: the JSON text of each. */
  async function plainPages(where: ListWhere, size: number): Promise<string[]> {
    const all = await listedPagePlain(server.ctx.db, where, null, 1_000_000);
    const journals = await plainJournalSizes(all);
    const pages: string[] = [];
    for (let i = 0; i === 0 || i < all.length; i += size) {
      const page = all.slice(i, i + size);
      const last = page[page.length - 1];
      const body = { backups: page.map((b) => presentBackup(where.engine, b, journals.get(b.id))), ...(all.length > i + size && last ? { nextPageToken: encodePageToken({ createdAt: last.created_at, id: last.id }) } : {}) };
      pages.push(await asList(body));
    }
    return pages;
  }

  /** Every page through the API, following nextPageToken. */
  async function apiPages(url: string, size: number, tokenValue: string): Promise<string[]> {
    const pages: string[] = [];
    let pageToken = '';
    for (;;) {
      const r = await raw(`${url}${url.includes('?') ? '&' : '?'}pageSize=${size}${pageToken ? `&pageToken=${pageToken}` : ''}`, { authorization: `Bearer ${tokenValue}` });
      assert.equal(r.status, 200, r.text);
      pages.push(r.text);
      pageToken = JSON.parse(r.text).nextPageToken ?? '';
      if (!pageToken) return pages;
      assert.ok(pages.length < 10_000);
    }
  }

  function pgBranches(): string[] {
    return ['shop/main', 'shop/dev', 'inventory/main'].map((k) => branches.get(k)!);
  }

  test('Cluster.ListBackups: every page, byte for byte, for page sizes 1 to 1000', async () => {
    for (const [key, engine] of [['shop/main', 'postgresql'], ['orders/main', 'mysql']] as const) {
      const prefix = engine === 'postgresql' ? '/managed-postgresql/v1' : '/managed-mysql/v1';
      for (const size of key === 'shop/main' ? [7, 100, 1000] : [1, 13, 100]) {
        const got = await apiPages(`${prefix}/clusters/${branches.get(key)}/backups`, size, server.token);
        const want = await plainPages({ organizationId: orgId, engine, branchIds: [branches.get(key)!] }, size);
        assert.equal(got.length, want.length, `${key} pageSize=${size}: pages`);
        got.forEach((g, i) => assert.equal(g, want[i], `${key} pageSize=${size}: page ${i + 1}`));
      }
    }
  });

  test('Backup.List: every page of a folder, byte for byte, for a token that sees all and one that sees one cluster', async () => {
    const onlyDev = await token([{ accesses: ['read_backups'], database: 'shop', branch: 'dev' }]);
    for (const [tokenValue, branchIds] of [
      [server.token, pgBranches()],
      [onlyDev, [oneBranch]],
    ] as const) {
      for (const size of [9, 100, 1000]) {
        const got = await apiPages(`/managed-postgresql/v1/backups?folderId=${orgId}`, size, tokenValue);
        const want = await plainPages({ organizationId: orgId, engine: 'postgresql', branchIds: [...branchIds] }, size);
        assert.equal(got.length, want.length, `pageSize=${size}: pages`);
        got.forEach((g, i) => assert.equal(g, want[i], `pageSize=${size}: page ${i + 1}`));
      }
    }
    // The MySQL mount sees only the MySQL cluster's backups.
    const mysqlPages = await apiPages(`/managed-mysql/v1/backups?folderId=${orgId}`, 100, server.token);
    const want = await plainPages({ organizationId: orgId, engine: 'mysql', branchIds: [branches.get('orders/main')!] }, 100);
    assert.deepEqual(mysqlPages, want);
  });

  test('the fast page equals the plain query at any position, also positions between backups and past the end', async () => {
    const db = server.ctx.db;
    const wheres: ListWhere[] = [
      { organizationId: orgId, engine: 'postgresql', branchIds: [branches.get('shop/main')!] },
      { organizationId: orgId, engine: 'postgresql', branchIds: pgBranches() },
      { organizationId: orgId, engine: 'postgresql', branchIds: [] },
      { organizationId: orgId, engine: 'mysql', branchIds: [branches.get('orders/main')!] },
    ];
    const every = await db.selectFrom('backups').select(['id', 'created_at']).orderBy('created_at').execute();
    const cursors = [
      null,
      { createdAt: '2099-01-01T00:00:00.000Z', id: 'z' },
      { createdAt: '2000-01-01T00:00:00.000Z', id: '0' },
      ...every.filter((_, i) => i % 97 === 5).map((b) => ({ createdAt: b.created_at, id: b.id })),
      // Between two backups: a time no backup has, and an id that sorts between.
      ...every.filter((_, i) => i % 301 === 7).map((b) => ({ createdAt: nowIso(new Date(Date.parse(b.created_at) + 1)), id: b.id.slice(0, 5) })),
    ];
    for (const where of wheres) {
      for (const cursor of cursors) {
        for (const limit of [1, 26, 101]) {
          assert.deepEqual(await listedPage(db, where, cursor, limit), await listedPagePlain(db, where, cursor, limit), `${where.branchIds.length} branches ${where.engine} after ${JSON.stringify(cursor)} limit ${limit}`);
        }
      }
    }
  });

  test('Backup.Get: journalSize as before for every backup that starts a replay', async () => {
    const starts = await server.ctx.db.selectFrom('backups').selectAll().where('recovery_start', 'is not', null).where('deleted_at', 'is', null).execute();
    assert.ok(starts.length > 50, `${starts.length} backups start a replay`);
    const plain = await plainJournalSizes(starts);
    assert.ok([...plain.values()].some((n) => n > 0), 'the fixture gives journals');
    for (const b of starts) {
      const prefix = b.engine === 'postgresql' ? '/managed-postgresql/v1' : '/managed-mysql/v1';
      const r = await raw(`${prefix}/backups/${b.id}`, { authorization: `Bearer ${server.token}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, await asBackup(presentBackup(b.engine as Engine, b, plain.get(b.id))), b.id);
    }
  });

  test('backupman GET /api/backups: byte for byte the plain list (several batches), for a key that sees all and one that sees one branch', async () => {
    const db = server.ctx.db;
    const onlyDev = await token([{ accesses: ['read_backups'], database: 'shop', branch: 'dev' }]);
    for (const [key, branchIds] of [
      [server.token, [...branches.values()]],
      [onlyDev, [oneBranch]],
    ] as const) {
      // What the route did before issue 14: one query, every copy at once.
      const backups = await db
        .selectFrom('backups')
        .selectAll()
        .where('organization_id', '=', orgId)
        .where('branch_id', 'in', [...branchIds])
        .where('deleted_at', 'is', null)
        .where('state', '!=', 'ignored')
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .execute();
      assert.ok(branchIds.length === 1 || backups.length > 1000, 'more than one batch');
      const files = await artifactsOf(db, backups.map((b) => b.id));
      const names = new Map((await db.selectFrom('branches as b').innerJoin('databases as d', 'd.id', 'b.database_id').select(['b.id', 'b.name', 'd.name as db']).execute()).map((b) => [b.id, `${b.db}/${b.name}`]));
      const { provider } = await openDestinationById(server.ctx, files[0].destination_id);
      const want = {
        Results: backups.map((b) => {
          const own = files.filter((a) => a.backup_id === b.id);
          const good = own.find((a) => a.state === 'success' && a.provider === 'local');
          return presentBackupman(b, names.get(b.branch_id)!, own, good ? provider.localPath!(good.path) : null);
        }),
      };
      const r = await raw('/api/backups', { 'x-api-key': key });
      assert.equal(r.status, 200, r.text.slice(0, 500));
      const text = await asBackupman(want);
      assert.equal(r.text.length, text.length);
      assert.equal(r.text, text);
    }
  });
});
