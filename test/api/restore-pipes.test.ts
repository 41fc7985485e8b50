/**
 * Restores through OS pipes (pipeline/unpack.ts): age -d writes into zstd -d, which writes
 * straight into pg_restore (this process only reads the stored copy, checks and counts it),
 * while the restore's progress still moves; a server stopped mid-restore leaves no process
 * behind; and copies stored without compression, or with gzip, unencrypted, still restore,
 * on both engines (MariaDB's dump still passes through the rewrite).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { createDatabase, createMysqlFixture, createPgFixture, dropDatabase, tableFingerprints, uniqueName, urlFor, withPgClient, pgUrl } from '../helpers/databases.js';
import { allProcesses } from '../helpers/processes.js';

/** What fd `fd` of process `pid` is: its /proc link, and the inode it names. */
function fdTarget(pid: number, fd: number): { link: string; ino: number } | null {
  try {
    const where = `/proc/${pid}/fd/${fd}`;
    return { link: fs.readlinkSync(where), ino: fs.statSync(where).ino };
  } catch {
    return null;
  }
}

/**
 * Whether fd `a` of one process and fd `b` of another are the two ends of one pipe: the
 * same pipe or FIFO (one inode), or (Node's spawn makes socket pairs) sockets that are each
 * other's peer.
 */
function sameChannel(a: { link: string; ino: number } | null, b: { link: string; ino: number } | null): boolean {
  if (!a || !b) return false;
  const inode = (link: string) => /^socket:\[(\d+)\]$/.exec(link)?.[1];
  const [ia, ib] = [inode(a.link), inode(b.link)];
  if (!ia || !ib) return !ia && !ib && (a.link.startsWith('pipe:') || a.link.includes('strongbox-fifo-')) && a.ino === b.ino;
  // ss -x: "u_str ESTAB 0 0 * <local inode> * <peer inode> ..."
  for (const line of execFileSync('ss', ['-xn'], { encoding: 'utf8' }).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[5] === ia) return f[7] === ib;
  }
  return false;
}

const children = (pattern: RegExp) => allProcesses().filter((p) => p.ppid === process.pid && p.state !== 'Z' && pattern.test(p.name));

describe('postgresql: zstd writes straight into pg_restore', () => {
  let server: TestServer;
  const source = uniqueName('sbx_rp_big');
  const toDrop: string[] = [source];
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-rp-'));
    const key = path.join(dir, 'key.txt');
    execFileSync('age-keygen', ['-o', key], { stdio: 'ignore' });
    const recipient = /public key: (age1\S+)/.exec(fs.readFileSync(key, 'utf8'))![1];
    server = await startServer({ STRONGBOX_AGE_IDENTITY_FILE: key });
    assert.equal((await api(server, 'PATCH', '/v1/organizations/default', { encryption_recipients: [recipient] })).status, 200);
    await createDatabase('postgresql', source);
    // Enough rows that the restore takes a few seconds: long enough to look at it mid-stream.
    await withPgClient(pgUrl(source), (c) => c.query("create table big as select g as id, md5(g::text) || md5((g * 7)::text) as v from generate_series(1, 1500000) g; alter table big add primary key (id)"));
  });
  after(async () => {
    await server?.close();
    for (const name of toDrop) await dropDatabase('postgresql', name);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the pipes are OS pipes, progress moves, the rows come back; a server stopped mid-restore leaves no process', async () => {
    const branchPath = await registerBranch(server, 'default', 'big', 'postgresql', 'main', pgUrl(source));
    const dbPath = '/v1/organizations/default/databases/big';
    const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id, 120_000);
    assert.equal(b.state, 'success', JSON.stringify(b));

    const name = uniqueName('sbx_rp_new');
    toDrop.push(name);
    assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id })).status, 201);
    // Mid-restore: age, zstd and pg_restore run, and zstd's stdout is pg_restore's stdin.
    const seen = await until('age, zstd and pg_restore running', async () => {
      const [zstd] = children(/^zstd$/);
      const [restore] = children(/^pg_restore$/);
      const [age] = children(/^age$/);
      if (!zstd || !restore || !age) {
        const r = (await api(server, 'GET', `${dbPath}/branches/${name}`)).body.restore;
        assert.ok(['pending', 'running'].includes(r.state), `the restore ended (${r.state}: ${r.error}) before it could be looked at`);
        return undefined;
      }
      return { zstd, restore, age };
    }, 60_000, 20);
    assert.ok(sameChannel(fdTarget(seen.zstd.pid, 1), fdTarget(seen.restore.pid, 0)), "zstd's stdout is pg_restore's stdin");
    assert.ok(sameChannel(fdTarget(seen.age.pid, 1), fdTarget(seen.zstd.pid, 0)), "age's stdout is zstd's stdin");
    const progress = await until('restore progress', async () => {
      const r = (await api(server, 'GET', `${dbPath}/branches/${name}`)).body.restore;
      return r.state === 'running' && r.bytes > 0 && r.rate_bytes_per_second > 0 ? r : r.state === 'running' || r.state === 'pending' ? undefined : r;
    }, 60_000, 50);
    if (progress.state === 'running') assert.ok(progress.total_bytes >= progress.bytes && progress.bytes > 0);
    const done = await waitForRestore(server, dbPath, name, 180_000);
    assert.equal(done.restore.state, 'success', JSON.stringify(done.restore));
    assert.equal(done.restore.bytes, done.restore.total_bytes);
    assert.deepEqual(await tableFingerprints('postgresql', urlFor('postgresql', name)), await tableFingerprints('postgresql', urlFor('postgresql', source)));

    // Stopped mid-restore: every process goes, and closing waits for them.
    const name2 = uniqueName('sbx_rp_stop');
    toDrop.push(name2);
    assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name: name2, backup_id: b.id })).status, 201);
    await until('pg_restore running', async () => (children(/^pg_restore$/).length ? true : undefined), 60_000, 20);
    await server.close();
    server = undefined as unknown as TestServer;
    assert.deepEqual(children(/^(age|zstd|pg_restore)$/).map((p) => p.name), [], 'no age, zstd or pg_restore left');
  });
});

/** Store a copy of `b` compressed with `compression` instead (unencrypted), as an older server could have. */
async function recompress(server: TestServer, branchPath: string, backupId: string, compression: 'none' | 'gzip'): Promise<void> {
  const [artifact] = (await api(server, 'GET', `${branchPath}/backups/${backupId}/artifacts`)).body.data;
  const file = path.join(server.dataDir, 'backups', artifact.path);
  // Test servers encrypt to a key of their own, made for the organization (data/age/<org id>.key).
  const keys = fs.readdirSync(path.join(server.dataDir, 'age')).map((f) => path.join(server.dataDir, 'age', f));
  const decrypted = execFileSync('age', ['-d', ...keys.flatMap((k) => ['-i', k]), file], { maxBuffer: 1 << 28 });
  const raw = execFileSync('zstd', ['-d', '-q', '-c'], { input: decrypted, maxBuffer: 1 << 28 });
  const bytes = compression === 'gzip' ? zlib.gzipSync(raw) : raw;
  fs.writeFileSync(file, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await server.ctx.db.updateTable('artifacts').set({ sha256, size: bytes.length }).where('id', '=', artifact.id).execute();
  await server.ctx.db.updateTable('backups').set({ sha256, compression, encryption: null }).where('id', '=', backupId).execute();
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: copies stored without compression or with gzip, unencrypted, still restore`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_rp_src');
    const toDrop: string[] = [source];
    const dbPath = '/v1/organizations/default/databases/plain';
    let branchPath: string;

    before(async () => {
      server = await startServer();
      if (kind === 'postgresql') await createPgFixture(source);
      else await createMysqlFixture(source);
      branchPath = await registerBranch(server, 'default', 'plain', kind, 'main', urlFor(kind, source));
    });
    after(async () => {
      await server?.close();
      for (const name of toDrop) await dropDatabase(kind, name);
    });

    for (const compression of ['none', 'gzip'] as const) {
      test(`compression ${compression}`, async () => {
        const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
        assert.equal(b.state, 'success', JSON.stringify(b));
        await recompress(server, branchPath, b.id, compression);
        const name = uniqueName('sbx_rp_new');
        toDrop.push(name);
        assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id })).status, 201);
        const branch = await waitForRestore(server, dbPath, name);
        assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
        assert.deepEqual(await tableFingerprints(kind, urlFor(kind, name)), await tableFingerprints(kind, urlFor(kind, source)));
      });
    }
  });
}
