/**
 * PostgreSQL continuous archiving, end to end, on a private server with replication (the
 * machine's shared server refuses replication connections): switching archiving on through
 * the API (refused with every reason on the shared server), WAL segments stored as the
 * server's own bytes (age -d | zstd -d gives the file in pg_wal back), the replication slot
 * holding WAL only until it is stored, base backups (pg_basebackup) that pg_verifybackup
 * accepts together with the archived WAL, the Yandex view's BASE and journalSize, WAL
 * retention that keeps exactly what the oldest kept base backup needs, and switching off
 * (the slot goes).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { postgresBinDir, startPrivatePostgres, type PrivateServer } from '../helpers/private-servers.js';
import { ArchiveManager } from '../../src/archive/manager.js';
import { openDestinationById } from '../../src/destinations.js';
import { identityFilesFor } from '../../src/encryption.js';
import { sweepArchive } from '../../src/archive/retention.js';
import type { ArchiveFile } from '../../src/catalog/schema.js';

let server: TestServer;
let pgs: PrivateServer;
let manager: ArchiveManager;
let client: pg.Client;
const dbPath = '/v1/organizations/default/databases/ledger';
let branchPath: string;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-pg-archive-'));

async function archived(): Promise<ArchiveFile[]> {
  return server.ctx.db.selectFrom('archive_files').selectAll().where('kind', '=', 'wal').where('state', '=', 'success').orderBy('name').execute();
}

/** Close the server's current segment and wait until the receiver has stored it. */
async function switchAndWait(): Promise<string> {
  const seg = (await client.query(`SELECT pg_walfile_name(pg_current_wal_lsn()) AS f`)).rows[0].f as string;
  await client.query('SELECT pg_switch_wal()');
  await until(`${seg} archived`, async () => ((await archived()).some((f) => f.name === seg) ? true : undefined), 30_000);
  return seg;
}

/** An object as the server wrote it: read from the local destination, age -d, zstd -d. */
async function storedBytes(destinationId: string, key: string): Promise<Buffer> {
  const { provider } = await openDestinationById(server.ctx, destinationId);
  const file = provider.localPath(key);
  assert.ok(file && fs.existsSync(file), `stored object ${key}`);
  const org = await server.ctx.db.selectFrom('organizations').select('id').where('name', '=', 'default').executeTakeFirstOrThrow();
  let data = fs.readFileSync(file);
  if (key.endsWith('.age')) {
    const ids = identityFilesFor(server.ctx, org.id).flatMap((f) => ['-i', f]);
    const dec = spawnSync('age', ['-d', ...ids], { input: data, maxBuffer: 1 << 30 });
    assert.equal(dec.status, 0, String(dec.stderr));
    data = dec.stdout;
  }
  const unz = spawnSync('zstd', ['-d', '-c'], { input: data, maxBuffer: 1 << 30 });
  assert.equal(unz.status, 0, String(unz.stderr));
  return unz.stdout;
}

/** The `strongbox` CLI against the test server (async: the server answers from this process). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, STRONGBOX_URL: server.url, STRONGBOX_TOKEN: server.token };
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { env, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e: any) {
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function copyOf(file: ArchiveFile) {
  return server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', file.id).where('state', '=', 'success').executeTakeFirstOrThrow();
}

before(async () => {
  server = await startServer();
  pgs = await startPrivatePostgres({ replication: true });
  client = new pg.Client({ connectionString: pgs.url });
  await client.connect();
  manager = new ArchiveManager(server.ctx, { intervalMs: 300, retryDelaysMs: [500, 1000], healthyAfterMs: 1000 });
  manager.start();
});

after(async () => {
  await manager?.stop();
  await client?.end().catch(() => {});
  await pgs?.stop();
  await server?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

test('the shared server, which admits no replication connection, is refused with the reason and the fix', async () => {
  const path = await registerBranch(server, 'default', 'shared', 'postgresql', 'main', 'postgresql://postgres@127.0.0.1:5432/postgres');
  const r = await api(server, 'PATCH', path, { archiving: true });
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.match(r.body.message, /cannot archive this branch/);
  assert.match(r.body.message, /pg_hba\.conf/);
  assert.match(r.body.message, /host replication postgres/);
  const g = await api(server, 'GET', path);
  assert.equal(g.body.archiving, false);
  assert.equal(g.body.archive, null);
  // Nothing half-made: no archiver row.
  assert.equal((await server.ctx.db.selectFrom('archivers').selectAll().execute()).length, 0);
});

test('a role without REPLICATION is refused naming the ALTER ROLE to run, its password nowhere', async () => {
  await client.query(`CREATE ROLE plain LOGIN PASSWORD 'plain-secret-pw'`);
  const r = await api(server, 'POST', '/v1/organizations/default/databases', { name: 'plainrole', kind: 'postgresql' });
  assert.equal(r.status, 201);
  const b = await api(server, 'POST', '/v1/organizations/default/databases/plainrole/branches', { name: 'main', connection_url: `postgresql://plain:plain-secret-pw@127.0.0.1:${pgs.port}/postgres`, archiving: true });
  assert.equal(b.status, 422, JSON.stringify(b.body));
  assert.match(b.body.message, /may not replicate: give it the REPLICATION attribute \(ALTER ROLE "plain" REPLICATION\)/);
  assert.doesNotMatch(b.body.message, /plain-secret-pw/);
  assert.equal((await api(server, 'GET', '/v1/organizations/default/databases/plainrole/branches/main')).status, 404, 'the branch was not made');
});

test('archiving streams every WAL segment, byte for byte, and the slot only moves past stored ones', async () => {
  branchPath = await registerBranch(server, 'default', 'ledger', 'postgresql', 'main', pgs.url);
  const on = await api(server, 'PATCH', branchPath, { archiving: true });
  assert.equal(on.status, 200, JSON.stringify(on.body));
  assert.equal(on.body.archiving, true);
  assert.equal(on.body.archive.enabled, true);
  assert.match(on.body.archive.slot_name, /^strongbox_/);
  await until('streaming', async () => ((await api(server, 'GET', branchPath)).body.archive?.state === 'streaming' ? true : undefined), 30_000);

  await client.query('CREATE TABLE entries (id serial PRIMARY KEY, note text)');
  await client.query(`INSERT INTO entries (note) SELECT md5(g::text) FROM generate_series(1, 5000) g`);
  const before = Date.now();
  const first = await switchAndWait();
  await client.query(`INSERT INTO entries (note) VALUES ('second')`);
  const second = await switchAndWait();

  const files = await archived();
  const row = files.find((f) => f.name === second)!;
  assert.equal(row.timeline, 1);
  assert.match(row.start_lsn!, /^[0-9A-F]+\/[0-9A-F]+$/);
  // The commit of 'second' is in it, and its time is recorded.
  assert.ok(row.last_event_at && Date.parse(row.last_event_at) >= before - 1000 && Date.parse(row.last_event_at) <= Date.now(), JSON.stringify(row));
  assert.ok(files.find((f) => f.name === first)!.first_event_at !== null);

  // The stored object is the server's own segment (still in pg_wal: no checkpoint since).
  const copy = await copyOf(row);
  assert.match(copy.path, new RegExp(`^default/ledger/main/archive/wal/00000001/${second}\\.zst\\.age$`));
  const bytes = await storedBytes(copy.destination_id, copy.path);
  const own = spawnSync('cat', [path.join(pgs.dataDir, 'pg_wal', second)], { maxBuffer: 1 << 30 }).stdout;
  assert.equal(bytes.length, 16 * 1024 * 1024);
  assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), crypto.createHash('sha256').update(own).digest('hex'));
  // The manifest beside it.
  const { provider } = await openDestinationById(server.ctx, copy.destination_id);
  const manifest = JSON.parse(fs.readFileSync(provider.localPath(`${copy.path}.manifest.json`)!, 'utf8'));
  assert.equal(manifest.format, 'strongbox-archive/1');
  assert.equal(manifest.name, second);
  assert.equal(manifest.sha256, copy.sha256);

  // The slot holds WAL from the end of the newest stored segment on, not before. It is moved
  // once the segment is stored everywhere, a moment after the catalog says so: wait for it.
  const readSlot = async () => (await client.query(`SELECT restart_lsn::text AS lsn, active FROM pg_replication_slots WHERE slot_name = $1`, [on.body.archive.slot_name])).rows[0];
  const { slot, newest } = await until('the slot to move past the newest stored segment', async () => {
    const newest = (await archived()).at(-1)!;
    const s = await readSlot();
    return s.lsn === newest.end_lsn ? { slot: s, newest } : undefined;
  }, 15_000, 100);
  assert.equal(slot.lsn, newest.end_lsn);
  assert.equal(slot.active, false, 'pg_receivewal streams without the slot: Strongbox moves it');
  const g = await api(server, 'GET', branchPath);
  assert.ok(g.body.archive.last_shipped_at);
  assert.equal(g.body.archive.error, null);
  // No secret anywhere in the log.
  assert.doesNotMatch(fs.readFileSync(server.logFile, 'utf8'), /plain-secret-pw/);

  // The CLI says the same.
  const st = await cli('branch', 'archiving', 'default/ledger/main', 'status');
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^branch main: archiving on, streaming, last file stored \S+, replication slot strongbox_\w+$/m);
  const bad = await cli('branch', 'archiving', 'default/shared/main', 'on');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /cannot archive this branch: .*pg_hba\.conf/);
});

test('a base backup: pg_basebackup tar, recovery_start recorded, verified with the archived WAL', async () => {
  const r = await api(server, 'POST', `${branchPath}/backups`, {});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const done = await waitForBackup(server, branchPath, r.body.id, 90_000);
  const row = await server.ctx.db.selectFrom('backups').selectAll().where('id', '=', r.body.id).executeTakeFirstOrThrow();
  assert.equal(done.state, 'success', row.error ?? '');
  assert.equal(row.method, 'base');
  const rs = JSON.parse(row.recovery_start!);
  assert.equal(rs.timeline, 1);
  assert.match(rs.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.match(rs.stop_lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.ok(Date.parse(rs.stop_time) <= Date.parse(row.completed_at!));

  // Unpack it and fetch the WAL it needs from the archive by hand; pg_verifybackup checks
  // every file against the backup's manifest and parses the WAL from start to end.
  const art = await server.ctx.db.selectFrom('artifacts').selectAll().where('backup_id', '=', row.id).where('state', '=', 'success').executeTakeFirstOrThrow();
  assert.match(art.path, /\/base\.tar\.zst\.age$/);
  const dir = path.join(scratch, 'base');
  fs.mkdirSync(dir, { mode: 0o700 });
  const tar = spawnSync('tar', ['-x', '-f', '-', '-C', dir], { input: await storedBytes(art.destination_id, art.path), maxBuffer: 1 << 30 });
  assert.equal(tar.status, 0, String(tar.stderr));
  assert.ok(fs.existsSync(path.join(dir, 'backup_manifest')) && fs.existsSync(path.join(dir, 'PG_VERSION')));
  assert.ok(!fs.readdirSync(path.join(dir, 'pg_wal')).some((n) => /^[0-9A-F]{24}$/.test(n)), 'no WAL in the tar (-X none)');
  // The backup's last segment is closed by the server at the backup's end; wait for it.
  const stopSeg = (await client.query(`SELECT pg_walfile_name($1::pg_lsn) AS f`, [rs.stop_lsn])).rows[0].f as string;
  await until(`${stopSeg} archived`, async () => ((await archived()).some((f) => f.name === stopSeg) ? true : undefined), 30_000);
  const wal = path.join(scratch, 'wal');
  fs.mkdirSync(wal);
  for (const f of await archived()) {
    if (f.name.slice(8) < stopSeg.slice(8) && f.end_lsn && parseLsn(f.end_lsn) <= parseLsn(rs.lsn)) continue;
    const c = await copyOf(f);
    fs.writeFileSync(path.join(wal, f.name), await storedBytes(c.destination_id, c.path));
  }
  const verify = spawnSync(path.join(postgresBinDir(Number(pgs.version.split('.')[0])), 'pg_verifybackup'), ['--wal-directory', wal, dir], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr + verify.stdout);
  assert.match(verify.stdout, /successfully verified/);

  // The Yandex view: BASE, and the WAL archived since it.
  const y = await api(server, 'GET', `/managed-postgresql/v1/backups/${row.id}`, undefined, null, { authorization: `Bearer ${server.token}` });
  assert.equal(y.status, 200, JSON.stringify(y.body));
  assert.equal(y.body.method, 'BASE');
  const since = (await archived()).filter((f) => f.name.slice(8) >= (spawnSegment(rs.lsn)));
  assert.equal(Number(y.body.journalSize), since.reduce((n, f) => n + Number(f.size), 0));
  assert.ok(Number(y.body.journalSize) > 0);
});

function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
}

/** The segment-number part of the name of the segment holding `lsn` (16 MB segments). */
function spawnSegment(lsn: string): string {
  const segno = parseLsn(lsn) / (16n * 1024n * 1024n);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(segno / 256n) + hex(segno % 256n);
}

test('retention removes the WAL before the oldest kept base backup, and nothing it needs', async () => {
  const base = await server.ctx.db.selectFrom('backups').selectAll().where('method', '=', 'base').where('state', '=', 'success').executeTakeFirstOrThrow();
  const startSeg = spawnSegment(JSON.parse(base.recovery_start!).lsn);
  const beforeSweep = await archived();
  const older = beforeSweep.filter((f) => f.name.slice(8) < startSeg);
  assert.ok(older.length > 0, 'segments from before the base backup exist');
  const removed = await sweepArchive(server.ctx);
  assert.deepEqual(removed.sort(), older.map((f) => f.name).sort());
  const left = await archived();
  assert.ok(left.every((f) => f.name.slice(8) >= startSeg));
  assert.ok(left.some((f) => f.name.slice(8) === startSeg), 'the segment the base backup starts in stays');
  for (const f of older) {
    const copies = await server.ctx.db.selectFrom('archive_copies').selectAll().where('archive_file_id', '=', f.id).execute();
    assert.ok(copies.every((c) => c.state === 'deleted'));
    const { provider } = await openDestinationById(server.ctx, copies[0].destination_id);
    assert.equal(fs.existsSync(provider.localPath(copies[0].path)!), false);
    assert.equal(fs.existsSync(provider.localPath(`${copies[0].path}.manifest.json`)!), false);
  }
  assert.deepEqual(await sweepArchive(server.ctx), [], 'a second pass removes nothing');
});

test('switching archiving off stops the receiver and drops the slot', async () => {
  const slot = (await api(server, 'GET', branchPath)).body.archive.slot_name;
  const off = await api(server, 'PATCH', branchPath, { archiving: false });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.archiving, false);
  assert.equal(off.body.archive.state, 'stopped');
  await until('slot dropped', async () => ((await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount === 0 ? true : undefined), 20_000);
  await until('stream ended', async () => ((await client.query(`SELECT 1 FROM pg_stat_replication WHERE application_name LIKE 'strongbox_wal_%'`)).rowCount === 0 ? true : undefined), 20_000);
  assert.deepEqual(manager.running, []);
  // A backup of a branch no longer archived is a dump again.
  const r = await api(server, 'POST', `${branchPath}/backups`, {});
  const done = await waitForBackup(server, branchPath, r.body.id, 60_000);
  assert.equal(done.state, 'success');
  const row = await server.ctx.db.selectFrom('backups').select(['method', 'recovery_start']).where('id', '=', r.body.id).executeTakeFirstOrThrow();
  assert.equal(row.method, 'logical');
  assert.equal(row.recovery_start, null);
});
