/**
 * MariaDB point-in-time recovery, end to end: a private MariaDB with log_bin (the machine's
 * shared one has it off), a branch switched to archiving with the ArchiveManager running its
 * binlog receiver, a dump that records its binlog coordinates, rows written in known
 * seconds, the receiver killed with -9 in the middle, and restores to times between the
 * writes into new databases: exactly the rows up to each time, DDL replayed, another
 * database's events left alone. Then an archived binlog goes missing: the recovery window
 * shows the gap and a restore across it is refused, naming the file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql2 from 'mysql2/promise';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, type TestServer } from '../helpers/server.js';
import { startPrivateMariadb, type PrivateServer } from '../helpers/private-servers.js';
import { createDatabase, dropDatabase, mysqlUrl, uniqueName } from '../helpers/databases.js';
import { ArchiveManager } from '../../src/archive/manager.js';

let server: TestServer;
let maria: PrivateServer;
let manager: ArchiveManager;
let root: mysql2.Connection;
const dbPath = '/v1/organizations/default/databases/shop';
let branchPath: string;

async function q(sql: string, values?: unknown[]): Promise<mysql2.RowDataPacket[]> {
  const [rows] = await root.query<mysql2.RowDataPacket[]>(sql, values);
  return rows;
}

/** Sleep into the next whole second (plus a margin), so a write lands in a second of its own; returns that second (ms). */
async function nextSecond(): Promise<number> {
  await sleep(1000 - (Date.now() % 1000) + 150);
  return Math.floor(Date.now() / 1000) * 1000;
}

async function currentBinlog(): Promise<string> {
  return String((await q('SHOW MASTER STATUS'))[0].File);
}

async function archivedNames(): Promise<string[]> {
  const rows = await server.ctx.db.selectFrom('archive_files').select('name').where('kind', '=', 'binlog').where('state', '=', 'success').execute();
  return rows.map((r) => r.name).sort();
}

/** Close the server's current binlog and wait until the receiver archived it. */
async function flushAndWait(): Promise<string> {
  const file = await currentBinlog();
  await q('FLUSH BINARY LOGS');
  await until(`${file} archived`, async () => ((await archivedNames()).includes(file) ? true : undefined), 30_000);
  return file;
}

async function restoreTo(name: string, restorePoint: string): Promise<any> {
  const r = await api(server, 'POST', `${dbPath}/branches`, { name, parent_branch: 'main', restore_point: restorePoint });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForRestore(server, dbPath, name, 90_000);
  assert.equal(b.restore?.state, 'success', JSON.stringify(b.restore));
  return b;
}

async function idsIn(db: string): Promise<number[]> {
  return (await q(`SELECT id FROM \`${db}\`.items ORDER BY id`)).map((r) => Number(r.id));
}

before(async () => {
  server = await startServer();
  maria = await startPrivateMariadb({ logBin: true });
  root = await mysql2.createConnection({ host: '127.0.0.1', port: maria.port, user: 'root' });
  await q('CREATE DATABASE shop');
  await q('CREATE DATABASE other');
  await q('CREATE TABLE shop.items (id INT PRIMARY KEY, v TEXT)');
  await q("INSERT INTO shop.items VALUES (0, 'before the dump')");
  // No key: a replay of its events would add rows.
  await q('CREATE TABLE other.log (v TEXT)');
  branchPath = await registerBranch(server, 'default', 'shop', 'mysql', 'main', `mysql://root@127.0.0.1:${maria.port}/shop`);
  manager = new ArchiveManager(server.ctx, { intervalMs: 200, retryDelaysMs: [300] });
  manager.start();
});

after(async () => {
  await manager?.stop();
  await root?.end();
  await maria?.stop();
  await server?.close();
});

test('a dump records its binlog coordinates and the time its snapshot was certainly taken', async () => {
  const r = await api(server, 'PATCH', branchPath, { archiving: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, {})).body.id);
  assert.equal(b.state, 'success', b.error);
  const row = await server.ctx.db.selectFrom('backups').select(['recovery_start', 'started_at', 'completed_at']).where('id', '=', b.id).executeTakeFirstOrThrow();
  const start = JSON.parse(row.recovery_start!);
  assert.match(start.file, /^binlog\.\d{6}$/);
  assert.ok(start.position >= 4);
  assert.match(start.gtid, /^\d+-\d+-\d+/);
  assert.ok(Date.parse(start.consistent_at) >= Date.parse(row.started_at!) && Date.parse(start.consistent_at) <= Date.parse(row.completed_at!));
});

let s1 = 0;
let s2 = 0;

test('rows written in known seconds are archived without a gap, though the receiver is killed with -9 in between', async () => {
  await until('the receiver streaming', async () => {
    const a = await server.ctx.db.selectFrom('archivers').select(['state', 'position']).executeTakeFirst();
    return a?.position ? true : undefined;
  }, 30_000);
  // A second of its own after the dump's, so that half a second before row 1 is restorable.
  await nextSecond();
  s1 = await nextSecond();
  await q("INSERT INTO shop.items VALUES (1, 'one')");
  await q("INSERT INTO other.log VALUES ('not shop')");
  s2 = await nextSecond();
  // DDL on the default database, unqualified: replayed into the new name.
  await root.query('USE shop');
  await q('ALTER TABLE items ADD COLUMN note TEXT');
  await q("INSERT INTO items VALUES (2, 'two', 'with a note')");
  await flushAndWait();

  // kill -9 of the binlog reader in the middle of a file: the manager starts the receiver
  // again, which resumes after the newest archived file.
  const spool = path.join(server.dataDir, 'archive-spool');
  const pidFile = await until('the receiver pid', async () => {
    for (const branch of fs.existsSync(spool) ? fs.readdirSync(spool) : []) {
      for (const run of fs.readdirSync(path.join(spool, branch))) {
        const f = path.join(spool, branch, run, 'receiver.pid');
        if (fs.existsSync(f) && fs.readFileSync(f, 'utf8')) return f;
      }
    }
    return undefined;
  });
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  // What a process killed with -9 leaves: its reader still running, writing into its spool.
  // The next run ends it (by the pid it recorded) and removes that spool.
  const branchSpool = path.dirname(path.dirname(pidFile));
  const orphanDir = path.join(branchSpool, 'orphan-run');
  fs.mkdirSync(orphanDir);
  const orphan = spawn('mariadb-binlog', ['--no-defaults', '--protocol=TCP', '--host=127.0.0.1', `--port=${maria.port}`, '--user=root', '--read-from-remote-server', '--raw', '--stop-never', '--stop-never-slave-server-id=4242', `--result-file=${orphanDir}/`, await currentBinlog()], { stdio: 'ignore' });
  const orphanGone = new Promise<string | null>((resolve) => orphan.once('exit', (_code, signal) => resolve(signal)));
  fs.writeFileSync(path.join(orphanDir, 'receiver.pid'), String(orphan.pid));
  await nextSecond();
  await q("INSERT INTO shop.items VALUES (3, 'three', null)");
  process.kill(pid, 'SIGKILL');
  await q("INSERT INTO shop.items VALUES (4, 'four, while no receiver runs', null)");
  await q('FLUSH BINARY LOGS');
  await q("INSERT INTO shop.items VALUES (5, 'five', null)");
  await until('a new receiver', async () => {
    const runs = fs.readdirSync(branchSpool).map((r) => path.join(branchSpool, r));
    return runs.find((r) => r !== path.dirname(pidFile) && r !== orphanDir && fs.existsSync(path.join(r, 'receiver.pid')));
  }, 30_000);
  assert.equal(await orphanGone, 'SIGKILL');
  assert.equal(fs.existsSync(orphanDir), false);
  assert.equal(fs.existsSync(path.dirname(pidFile)), false);
  const last = await flushAndWait();

  const names = await archivedNames();
  const seqs = names.map((n) => Number(n.split('.').pop()));
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `no gap: ${names.join(', ')}`);
  assert.ok(names.includes(last));
  const files = await server.ctx.db.selectFrom('archive_files').selectAll().where('kind', '=', 'binlog').execute();
  for (const f of files) assert.ok(f.first_event_at && f.last_event_at && f.size > 0, JSON.stringify(f));

  const w = await api(server, 'GET', `${branchPath}/recovery-window`);
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.ok(Date.parse(w.body.earliest) < s1, JSON.stringify(w.body));
  // Up to the end of the second before the last archived event (events of that second may be
  // in the binlog being written): at least through the second of row 2.
  assert.ok(Date.parse(w.body.latest) >= s2 + 999, JSON.stringify(w.body));
  assert.deepEqual(w.body.gaps, []);
});

test('a restore to a time between two writes holds exactly the rows up to it, in a database of the new name', async () => {
  const atS1 = uniqueName('pitr_a');
  await restoreTo(atS1, new Date(s1 + 500).toISOString());
  assert.deepEqual(await idsIn(atS1), [0, 1]);

  const atS2 = uniqueName('pitr_b');
  await restoreTo(atS2, new Date(s2 + 500).toISOString());
  assert.deepEqual(await idsIn(atS2), [0, 1, 2]);
  assert.deepEqual((await q(`SELECT note FROM \`${atS2}\`.items WHERE id = 2`))[0].note, 'with a note');

  const beforeS1 = uniqueName('pitr_c');
  await restoreTo(beforeS1, new Date(s1 - 500).toISOString());
  assert.deepEqual(await idsIn(beforeS1), [0]);

  const latest = uniqueName('pitr_d');
  await restoreTo(latest, 'latest');
  assert.deepEqual(await idsIn(latest), [0, 1, 2, 3, 4, 5]);

  // The source and the other database were not touched by any replay.
  assert.deepEqual(await idsIn('shop'), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual((await q('SELECT COUNT(*) AS n FROM other.log'))[0].n, 1);
});

test('a statement that names the source database explicitly is not replayed into the source: the restore stops before it, saying why', async () => {
  await nextSecond();
  // Run on the source as written; replayed as written it would create and drop shop.scratch
  // in the source again (--rewrite-db renames only row events and the default database).
  await root.query('USE shop');
  await q('CREATE TABLE shop.scratch (i INT)');
  await q('DROP TABLE shop.scratch');
  await flushAndWait();
  const name = uniqueName('pitr_qualified');
  const r = await api(server, 'POST', `${dbPath}/branches`, { name, parent_branch: 'main', restore_point: 'latest' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForRestore(server, dbPath, name, 90_000);
  assert.equal(b.restore?.state, 'failed');
  assert.match(b.restore.error, /names the source database "shop" explicitly .*CREATE TABLE shop\.scratch/i);
  // The database it created is dropped again.
  assert.equal((await q('SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = ?', [name]))[0].n, 0);
});

test('a binlog missing from the archive: the window shows the gap and a restore across it is refused, naming the file', async () => {
  const names = await archivedNames();
  assert.ok(names.length >= 3, names.join(', '));
  const gone = names[names.length - 2];
  const row = await server.ctx.db.selectFrom('archive_files').select('id').where('name', '=', gone).executeTakeFirstOrThrow();
  await server.ctx.db.deleteFrom('archive_copies').where('archive_file_id', '=', row.id).execute();
  await server.ctx.db.deleteFrom('archive_files').where('id', '=', row.id).execute();

  const w = await api(server, 'GET', `${branchPath}/recovery-window`);
  assert.equal(w.status, 200);
  assert.equal(w.body.gaps.length, 1, JSON.stringify(w.body));
  assert.deepEqual(w.body.gaps[0].missing, [gone]);

  const r = await api(server, 'POST', `${dbPath}/branches`, { name: uniqueName('pitr_gap'), parent_branch: 'main', restore_point: 'latest' });
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.match(JSON.stringify(r.body), new RegExp(gone.replace('.', '\\.')));
});

test('switching archiving on: a server with log_bin off, an account without replication privileges: 422 naming each', async () => {
  const plain = uniqueName('pitr_nolog');
  await createDatabase('mysql', plain);
  try {
    // The machine's shared MariaDB writes no binlog; its dumps then record no position.
    const p = await registerBranch(server, 'default', 'nolog', 'mysql', 'main', mysqlUrl(plain));
    const r = await api(server, 'PATCH', p, { archiving: true });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.match(r.body.message, /log_bin is off/);
    const b = await waitForBackup(server, p, (await api(server, 'POST', `${p}/backups`, {})).body.id);
    assert.equal(b.state, 'success', b.error);
    const row = await server.ctx.db.selectFrom('backups').select('recovery_start').where('id', '=', b.id).executeTakeFirstOrThrow();
    assert.equal(row.recovery_start, null);
  } finally {
    await dropDatabase('mysql', plain);
  }

  await q("CREATE USER 'plain'@'%' IDENTIFIED BY 'pl41n-s3cret'");
  await q("GRANT ALL ON shop.* TO 'plain'@'%'");
  const p = await registerBranch(server, 'default', 'limited', 'mysql', 'main', `mysql://plain:pl41n-s3cret@127.0.0.1:${maria.port}/shop`);
  const r = await api(server, 'PATCH', p, { archiving: true });
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.match(r.body.message, /REPLICATION SLAVE/);
  assert.match(r.body.message, /BINLOG MONITOR/);
  assert.doesNotMatch(JSON.stringify(r.body), /pl41n-s3cret/);
});
