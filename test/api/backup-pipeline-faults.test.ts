/**
 * A backup's compressor or encryptor dying while the backup runs (the dump tool writes
 * straight into tee → zstd → age, pipeline/store.ts): the backup fails with that process's
 * own reason, no copy is reported good or left in storage, nothing is left running, and the
 * next backup of the branch succeeds with its row counts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from '../helpers/server.js';
import { addLargeTable, dropDatabase, pgUrl, uniqueName } from '../helpers/databases.js';
import { childProcesses } from '../pipeline/helpers.js';

const waitUntil = (what: string, fn: () => Promise<boolean> | boolean, ms = 20_000) => until(what, async () => ((await fn()) ? true : undefined), ms, 20);

function filesNamed(dir: string, id: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[]).filter((e) => e.name.includes(id) || e.parentPath.includes(id)).map((e) => path.join(e.parentPath, e.name));
}

/** Children of this process (the server runs in it) still alive, zombies aside. */
function alive(comm: string): number[] {
  return childProcesses(comm).filter((pid) => {
    try {
      return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  });
}

describe('a compressor or encryptor dying mid-backup', () => {
  let server: TestServer;
  const source = uniqueName('sbx_pipefault');
  let branchPath: string;
  let admin: pg.Client;
  let locker: pg.Client;

  before(async () => {
    server = await startServer();
    admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`create database "${source}"`);
    await addLargeTable('postgresql', pgUrl(source), 50_000);
    locker = new pg.Client({ connectionString: pgUrl(source) });
    await locker.connect();
    branchPath = await registerBranch(server, 'default', 'faults', 'postgresql', 'main', pgUrl(source));
    // Encrypted, so that age is in the pipeline too.
    const key = (await import('node:child_process')).spawnSync('age-keygen', { encoding: 'utf8' });
    const recipient = /public key: (age1\S+)/.exec(key.stdout + key.stderr)![1];
    const r = await api(server, 'PATCH', '/v1/organizations/default', { encryption_recipients: [recipient] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    await locker?.end().catch(() => {});
    await admin?.end().catch(() => {});
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  for (const comm of ['zstd', 'age'] as const) {
    test(`${comm} killed while the backup runs: failed with ${comm}'s reason, no copy good or left, nothing running`, async () => {
      // pg_dump waits on this lock with the whole pipeline started behind it.
      await locker.query('begin; lock table big in access exclusive mode');
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      assert.equal(r.status, 201, JSON.stringify(r.body));
      try {
        await waitUntil(`pg_dump to wait on the lock, with ${comm} running`, async () => {
          const q = await admin.query("select 1 from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'", [source]);
          return q.rowCount! > 0 && alive(comm).length > 0;
        });
        for (const pid of alive(comm)) process.kill(pid, 'SIGKILL');
      } finally {
        await locker.query('rollback');
      }
      const done = await waitForBackup(server, branchPath, r.body.id);
      assert.equal(done.state, 'failed');
      assert.equal(done.size, 0);
      const progress = await api(server, 'GET', `${branchPath}/backups/${r.body.id}/progress`);
      assert.match(progress.body.error, new RegExp(`^backup failed: ${comm} was killed by SIGKILL`));
      const artifacts = await api(server, 'GET', `${branchPath}/backups/${r.body.id}/artifacts`);
      assert.ok(artifacts.body.data.length > 0);
      for (const a of artifacts.body.data) {
        assert.equal(a.state, 'failed');
        assert.match(a.error, new RegExp(`not stored: ${comm} was killed by SIGKILL`));
        assert.equal(a.sha256 ?? null, null);
      }
      assert.deepEqual(filesNamed(path.join(server.dataDir, 'backups'), r.body.id), [], 'nothing of it stays in storage');
      await waitUntil('every process of the pipeline to be gone', () => ['pg_dump', 'tee', 'zstd', 'age'].every((c) => alive(c).length === 0), 10_000);
    });
  }

  test('the next backup of the branch succeeds, with exact row counts', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    const done = await waitForBackup(server, branchPath, r.body.id);
    assert.equal(done.state, 'success');
    const row = await server.ctx.db.selectFrom('backups').select(['table_row_counts', 'raw_size', 'size']).where('id', '=', r.body.id).executeTakeFirstOrThrow();
    assert.deepEqual(JSON.parse(row.table_row_counts!), { 'public.big': 50_000 });
    assert.ok(row.raw_size! > row.size!, 'compressed');
  });
});
