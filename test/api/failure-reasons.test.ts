/**
 * A failed backup says why wherever a user looks (issue 10, defect 5): the reason was only
 * in the catalog, the log and the Yandex operation. Now `GET .../progress` carries `error`,
 * `GET .../artifacts` carries `backup_state` and `backup_error`, and the CLI's `backup get`,
 * `backup list` and `backup progress` print it, while the PlanetScale Backup object stays
 * field for field. Stored reasons are cleaned and capped (a MariaDB error once echoed 4 KB
 * of hex). A read-only local folder says so instead of "ENOENT ... mkdir" (defect 11).
 * Real PostgreSQL, real folders, a real tmpfs mounted read-only, the real CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { createBackup } from '../../src/catalog/backups.js';
import { cleanErrorText, MAX_ERROR_TEXT } from '../../src/error-text.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'src/main.ts');

/** Every folder under `dir` whose name contains `id`. */
function foldersNamed(dir: string, id: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[]).filter((e) => e.isDirectory() && e.name.includes(id)).map((e) => path.join(e.parentPath, e.name));
}

describe('failure reasons', () => {
  let server: TestServer;
  const source = uniqueName('sbx_why');
  const branchPath = '/v1/organizations/default/databases/why/branches/main';
  const cliPath = 'default/why/main';

  /** The real CLI against the test server (async: the server lives in this process). */
  function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const env = { ...process.env, STRONGBOX_URL: server.url, STRONGBOX_TOKEN: server.token };
      const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  /** Run `work` while table t is locked, so a dump waits (and, past the idle timeout, fails). */
  async function whileLocked<T>(work: () => Promise<T>): Promise<T> {
    const locker = new pg.Client({ connectionString: pgUrl(source) });
    await locker.connect();
    try {
      await locker.query('begin; lock table t in access exclusive mode');
      return await work();
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
    }
  }

  before(async () => {
    // A dump that produces nothing for 1 s fails: a locked table makes a real failure.
    server = await startServer({ STRONGBOX_DUMP_IDLE_TIMEOUT_SECONDS: '1' });
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query("create table t (id int primary key, v text); insert into t select g, 'row ' || g from generate_series(1, 50) g"));
    await registerBranch(server, 'default', 'why', 'postgresql', 'main', pgUrl(source));
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('cleanErrorText: long hex runs left out, a sha256 kept, control characters gone, capped with head and tail', () => {
    const sha = 'ab'.repeat(32);
    const mariadb = `mariadb failed (exit 1): ERROR 1406 (22001) at line 42: Data too long near 'INSERT INTO \`t\` VALUES (1,0x${'0f'.repeat(2048)})'\r\n\x1b[31mcheck ${sha}\x1b[0m\x07`;
    const clean = cleanErrorText(mariadb);
    assert.ok(clean.length < 300, clean);
    assert.match(clean, /VALUES \(1,0x0f0f0f0f0f0f0f…\[4082 hex digits left out\]\)/);
    assert.ok(clean.includes(sha), 'a checksum is information, not data');
    assert.doesNotMatch(clean, /[\x00-\x08\x0b-\x1f\x7f]/);
    const long = `first ${'word '.repeat(1000)} the real cause`;
    const capped = cleanErrorText(long);
    assert.ok(capped.length <= MAX_ERROR_TEXT, `${capped.length}`);
    assert.match(capped, /^first word/);
    assert.match(capped, /the real cause$/);
    assert.match(capped, /characters left out/);
    assert.equal(cleanErrorText(null), null);
  });

  test('canceled and ignored backups say why too', async () => {
    const canceled = await whileLocked(async () => {
      const created = await api(server, 'POST', `${branchPath}/backups`, {});
      const r = await api(server, 'POST', `${branchPath}/backups/${created.body.id}/cancel`, {});
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    });
    assert.equal(canceled.state, 'canceled');
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${canceled.id}/progress`)).body.error, 'canceled by request');

    // Recorded the way the scheduler records a slot that found its branch busy.
    const database = await server.ctx.db.selectFrom('databases').selectAll().where('name', '=', 'why').executeTakeFirstOrThrow();
    const branch = await server.ctx.db.selectFrom('branches').selectAll().where('database_id', '=', database.id).where('name', '=', 'main').executeTakeFirstOrThrow();
    const reason = 'ignored: branch "main" already had a backup in progress (x) when the 2030-01-01T00:00:00.000Z slot came';
    const ignored = await createBackup(server.ctx.db, { database, branch, retentionValue: 1, retentionUnit: 'day', compression: 'zstd', emergency: false, actor: null, now: new Date(), ignoredBecause: reason });
    const progress = await api(server, 'GET', `${branchPath}/backups/${ignored.id}/progress`);
    assert.equal(progress.body.state, 'ignored');
    assert.equal(progress.body.error, reason);
  });

  test('a failed backup says why in progress, artifacts and the CLI; its folder is gone; the Backup object stays PlanetScale\'s', async () => {
    const backup = await whileLocked(async () => {
      const created = await api(server, 'POST', `${branchPath}/backups`, {});
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return waitForBackup(server, branchPath, created.body.id, 30_000);
    });
    assert.equal(backup.state, 'failed');
    assert.equal('error' in backup, false, 'no field beyond the PlanetScale reference');

    const progress = await api(server, 'GET', `${branchPath}/backups/${backup.id}/progress`);
    assert.equal(progress.status, 200);
    assert.match(progress.body.error, /produced no data for 1 s \(waiting on a lock/);
    const artifacts = await api(server, 'GET', `${branchPath}/backups/${backup.id}/artifacts`);
    assert.equal(artifacts.body.backup_state, 'failed');
    assert.equal(artifacts.body.backup_error, progress.body.error);
    assert.equal(artifacts.body.data[0].state, 'failed');
    assert.match(artifacts.body.data[0].error, /produced no data/);

    // The writer had made the backup's folder before the dump stalled: nothing of it stays.
    assert.deepEqual(foldersNamed(path.join(server.dataDir, 'backups'), backup.id), []);

    const [get, list, followed] = await Promise.all([cli(['backup', 'get', cliPath, backup.id, '--json']), cli(['backup', 'list', cliPath]), cli(['backup', 'progress', cliPath, backup.id])]);
    assert.equal(get.status, 0, get.stderr);
    const shown = JSON.parse(get.stdout);
    assert.equal(shown.state, 'failed');
    assert.equal(shown.error, progress.body.error);
    assert.deepEqual(Object.keys(shown).slice(0, 4), ['id', 'name', 'state', 'error'], 'the reason sits beside the state');

    assert.equal(list.status, 0, list.stderr);
    const [header, ...rows] = list.stdout.trim().split('\n');
    assert.match(header, /STATE.*REASON/);
    // Every backup that did not succeed shows its reason (cut to one line of the table).
    const rowOf = (state: string) => rows.find((r) => new RegExp(`\\s${state}\\s`).test(r)) ?? '';
    assert.match(rowOf('failed'), new RegExp(`^${backup.id}.* failed .*the dump produced no data for 1 s`));
    assert.match(rowOf('canceled'), /canceled by request/);
    assert.match(rowOf('ignored'), /ignored: branch "main" already had a backup in progress/);

    assert.equal(followed.status, 1, `following a backup that failed exits 1: ${followed.stderr}`);
    assert.match(followed.stdout, new RegExp(`backup ${backup.id}: failed: the dump produced no data`));
  });

  test('a successful backup has no reason', async () => {
    const created = await api(server, 'POST', `${branchPath}/backups`, {});
    const done = await waitForBackup(server, branchPath, created.body.id, 30_000);
    assert.equal(done.state, 'success');
    assert.equal((await api(server, 'GET', `${branchPath}/backups/${done.id}/progress`)).body.error, null);
    const artifacts = await api(server, 'GET', `${branchPath}/backups/${done.id}/artifacts`);
    assert.deepEqual([artifacts.body.backup_state, artifacts.body.backup_error], ['success', null]);
  });

  test('a read-only destination folder says it is read-only; the stored reasons are cleaned and capped', async (t) => {
    const mountPoint = path.join(server.dataDir, 'backups', 'ro');
    fs.mkdirSync(mountPoint, { recursive: true });
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      // Root ignores file modes, so only a read-only mount makes a folder unwritable here.
      t.skip(`cannot mount a tmpfs to make read-only (${(mounted.stderr || mounted.error?.message || '').trim()})`);
      return;
    }
    try {
      // Folder names of long hex runs: the reason quotes the path, and must not be drowned by it.
      const deep = path.join(mountPoint, ...Array.from({ length: 5 }, () => crypto.randomBytes(100).toString('hex')));
      const dest = await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'ro', provider: 'local', config: { path: deep } });
      assert.equal(dest.status, 201, JSON.stringify(dest.body));
      await api(server, 'POST', '/v1/organizations/default/databases', { name: 'whyro', kind: 'postgresql' });
      const roPath = await registerBranch(server, 'default', 'whyro', 'postgresql', 'main', pgUrl(source));
      assert.equal((await api(server, 'PATCH', '/v1/organizations/default/databases/whyro', { storage_destinations: ['ro'] })).status, 200);
      assert.equal(spawnSync('mount', ['-o', 'remount,ro', mountPoint]).status, 0);

      const created = await api(server, 'POST', `${roPath}/backups`, {});
      const done = await waitForBackup(server, roPath, created.body.id, 30_000);
      assert.equal(done.state, 'failed');
      const artifacts = await api(server, 'GET', `${roPath}/backups/${done.id}/artifacts`);
      const copyError: string = artifacts.body.data[0].error;
      const backupError: string = artifacts.body.backup_error;
      for (const text of [copyError, backupError]) {
        assert.match(text, /is not writable \(read-only file system\)/);
        assert.doesNotMatch(text, /ENOENT|mkdir/);
        assert.match(text, /hex digits left out/);
        assert.doesNotMatch(text, /[0-9a-f]{65}/);
        assert.ok(text.length <= MAX_ERROR_TEXT, `${text.length} characters`);
      }
      const row = await server.ctx.db.selectFrom('backups').select('error').where('id', '=', done.id).executeTakeFirstOrThrow();
      assert.equal(row.error, backupError, 'stored as shown');
    } finally {
      await until('the tmpfs to unmount', async () => (spawnSync('umount', [mountPoint]).status === 0 ? true : undefined), 10_000);
    }
  });

  test('failed restore and verification jobs say why', async () => {
    const list = await api(server, 'GET', `${branchPath}/backups?state=success`);
    const good = list.body.data[0];
    // The copy is lost from storage behind Strongbox's back.
    const [artifact] = (await api(server, 'GET', `${branchPath}/backups/${good.id}/artifacts`)).body.data;
    fs.rmSync(path.join(server.dataDir, 'backups', artifact.path));
    const v = await api(server, 'POST', `${branchPath}/backups/${good.id}/verify`, {});
    assert.equal(v.status, 202, JSON.stringify(v.body));
    const verification = await until('the verification', async () => {
      const r = await api(server, 'GET', `${branchPath}/backups/${good.id}/verifications`);
      const cur = r.body.data.find((x: any) => x.id === v.body.id);
      return cur.state === 'pending' || cur.state === 'running' ? undefined : cur;
    });
    assert.equal(verification.state, 'failed');
    assert.match(verification.error, /missing/);
  });
});
