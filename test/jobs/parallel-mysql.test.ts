/**
 * Parallel dump and restore of MariaDB (`jobs: N`, issue 14).
 *
 * - Consistency: while a jobs: 4 backup runs, a writer commits transactions that each touch
 *   two tables dumped by two different parts (a transfer between accounts, and one row into
 *   each of two ledgers). The restored copy must hold the same invariants (sums, matching
 *   rows), and no commit may have waited longer than the brief block.
 * - The nasty fixtures (helpers/nasty.ts: every type and byte, a 16 MB row, history of
 *   system-versioned tables, sequences, views, routines, triggers, events) plus tables whose
 *   names need quoting: a parallel backup restores every object and byte, its contents
 *   (per-table digests) equal a single-stream backup's, full verification passes.
 * - Without Strongbox: the README's shell commands restore a downloaded parallel backup.
 * - A dump session killed mid-way fails the backup with its part named, and no part stays.
 * - Strongbox killed -9 while parts are paused or wait at their gate: every part dies with it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, waitForVerification, type TestServer } from '../helpers/server.js';
import { createDatabase, dropDatabase, holdMysqlLock, mysqlIdent, mysqlUrl, uniqueName, withMysqlConnection } from '../helpers/databases.js';
import { assertSameLines, createMysqlAccounts, createMysqlNasty, dataDiff, dropMysqlAccounts, mysqlData, mysqlInventory } from '../helpers/nasty.js';
import { untar } from '../helpers/tar.js';
import { holdConsistentPoint, planDataParts, processTcpPorts } from '../../src/engines/mysql/parallel.js';
import { parseConnectionUrl } from '../../src/engines/index.js';
import { startPrivateMariadb, type PrivateServer } from '../helpers/private-servers.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { waitForBackupOf } from '../helpers/chaos.js';
import { allProcesses, describeProcess, isAlive, processInfo, wchanOf } from '../helpers/processes.js';

const PART_FILES = ['00-pre-data.sql.zst.age', '01-data.sql.zst.age', '02-data.sql.zst.age', '03-data.sql.zst.age', '04-data.sql.zst.age', '05-post-data.sql.zst.age', 'SHA256SUMS', 'manifest.json'];

/** CHECKSUM TABLE of every table of `database`, with its row count. */
async function checksums(database: string): Promise<Record<string, string>> {
  return withMysqlConnection(mysqlUrl(database), async (c) => {
    const [tables] = (await c.query(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY 1`, [database])) as any;
    const out: Record<string, string> = {};
    for (const { t } of tables) {
      const [[sum]] = (await c.query(`CHECKSUM TABLE ${mysqlIdent(t)} EXTENDED`)) as any;
      const [[n]] = (await c.query(`SELECT COUNT(*) AS n FROM ${mysqlIdent(t)}`)) as any;
      out[t] = `${n.n} rows, checksum ${sum.Checksum}`;
    }
    return out;
  });
}

async function backupWith(server: TestServer, branchPath: string, body: Record<string, unknown>): Promise<any> {
  const r = await api(server, 'POST', `${branchPath}/backups`, body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const b = await waitForBackup(server, branchPath, r.body.id, 240_000);
  if (b.state !== 'success') assert.fail(`backup ${b.state}: ${(await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.backup_error}`);
  return b;
}

// Parallel MariaDB backups block commits server-wide for a moment while their dumps open
// their snapshots: the same file in the other leg would share that moment and the CPU. One
// leg at a time (CI failed once on a block that outlived its 30 s limit while both ran).
let unlock: (() => Promise<void>) | undefined;
before(async () => {
  unlock = await holdMysqlLock('strongbox-test-parallel-mysql');
});
after(() => unlock?.());

test('planDataParts: largest first, each to the emptiest part, disjoint, none empty', () => {
  const t = (table: string, bytes: number) => ({ schema: 'd', table, bytes });
  const parts = planDataParts([t('a', 10), t('b', 100), t('c', 60), t('d', 50), t('e', 1)], 3);
  assert.deepEqual(parts.map((p) => p.tables.map((x) => x.table)), [['b'], ['c', 'e'], ['d', 'a']]);
  assert.deepEqual(planDataParts([t('a', 1)], 4).map((p) => p.tables.length), [1]);
  assert.deepEqual(planDataParts([], 4).map((p) => p.tables.length), [0]);
});

test('processTcpPorts finds the local port of a child process connected to MariaDB', async () => {
  const child = spawn('mariadb', ['--no-defaults', '--protocol=TCP', '-h', '127.0.0.1', '-u', 'root', '-e', 'SELECT SLEEP(2)'], { stdio: 'ignore' });
  try {
    const ports = await until('the client socket', async () => {
      const p = await processTcpPorts(child.pid!);
      return p.length ? p : undefined;
    }, 5_000, 20);
    const seen = await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
      const [rows] = (await c.query(`SELECT id FROM information_schema.processlist WHERE SUBSTRING_INDEX(host, ':', -1) IN (?) AND info LIKE 'SELECT SLEEP%'`, [ports.map(String)])) as any;
      return rows.length;
    });
    assert.equal(seen, 1);
  } finally {
    child.kill();
  }
});

test('confirm sees a snapshot opened after its first looks, by a process that held another TCP socket before it connected', async () => {
  // The process first holds a socket to another server (as one inherited from a parent would
  // be), then connects to MariaDB, and opens its snapshot only a moment later. Its ports are
  // read on every look (kept from the first look, only the other socket was looked for), and
  // INNODB_TRX is read less often than every 100 ms (read more often, InnoDB never refreshes
  // it, and the transaction was never seen): both made the block run out and the backup fail.
  const other = net.createServer((s) => s.on('error', () => undefined)).listen(0, '127.0.0.1');
  await new Promise((r) => other.once('listening', r));
  const port = (other.address() as net.AddressInfo).port;
  const point = await holdConsistentPoint(parseConnectionUrl(mysqlUrl('mysql')).info);
  const child = spawn('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}; sleep 0.5; exec mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -u root -e 'SELECT SLEEP(0.5); START TRANSACTION WITH CONSISTENT SNAPSHOT; SELECT SLEEP(20)'`], { stdio: 'ignore' });
  try {
    // Held before the look starts: the first look sees the other socket only.
    await until('the other socket', async () => ((await processTcpPorts(child.pid!)).length > 0 ? true : undefined), 5_000, 10);
    const started = Date.now();
    // A dump that never ends: only its session's snapshot can let confirm through.
    await point.confirm(child.pid!, new Promise<void>(() => undefined), AbortSignal.timeout(10_000));
    assert.ok(Date.now() - started < 5_000, `confirmed after ${Date.now() - started} ms`);
  } finally {
    child.kill('SIGKILL');
    await point.release();
    other.close();
  }
});

test('a dump session that never opens its snapshot: commits are let through after the hold limit, and confirm says what it saw', async () => {
  const db = uniqueName('sbx_hold');
  await createDatabase('mysql', db);
  await withMysqlConnection(mysqlUrl(db), (c) => c.query('CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB'));
  const point = await holdConsistentPoint(parseConnectionUrl(mysqlUrl(db)).info, { holdLimitMs: 600 });
  const child = spawn('mariadb', ['--no-defaults', '--protocol=TCP', '-h', '127.0.0.1', '-u', 'root', '-e', 'SELECT SLEEP(20)'], { stdio: 'ignore' });
  try {
    await point.block();
    await assert.rejects(point.confirm(child.pid!, new Promise<void>(() => undefined), AbortSignal.timeout(10_000)), (err: Error) => {
      assert.match(err.message, /commits were let through before this dump had opened its snapshot/);
      assert.match(err.message, /its session \d+ had no transaction yet/);
      return true;
    });
    // The limit's release marks the point released before the server has ended the block:
    // wait for it to have ended (heldUntil is set once it has).
    const heldUntil = await until('the block to end', async () => point.heldUntil ?? undefined, 5_000, 20);
    assert.ok(heldUntil - point.heldFrom < 5_000, `the block lasted ${heldUntil - point.heldFrom} ms (limit 600 ms)`);
    // Commits go through again (an error, not a hang, if they did not).
    await withMysqlConnection(mysqlUrl(db), async (c) => {
      await c.query('SET SESSION lock_wait_timeout = 5');
      await c.query('INSERT INTO t VALUES (1)');
    });
  } finally {
    child.kill('SIGKILL');
    await point.release();
    await dropDatabase('mysql', db);
  }
});

describe('MariaDB: a parallel backup is one consistent snapshot', () => {
  let server: TestServer;
  const source = uniqueName('sbx_parm_c');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/parallel-my-c';
  let branchPath: string;
  let backup: any;
  const ACCOUNTS = 200;
  const START = 1000;

  before(async () => {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`CREATE DATABASE ${mysqlIdent(source)}`));
    await withMysqlConnection(mysqlUrl(source), async (c) => {
      // accounts_a and accounts_b hold one balance each per account; a transfer moves money
      // between them in one transaction. ledger_a and ledger_b get one row each per transaction.
      // Padding makes each big enough to get a data part of its own (largest first).
      for (const t of ['accounts_a', 'accounts_b']) {
        await c.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, balance BIGINT NOT NULL, pad VARCHAR(2000) NOT NULL) ENGINE=InnoDB`);
        await c.query(`INSERT INTO ${t} SELECT seq, ${START}, REPEAT('p', 2000) FROM seq_1_to_${ACCOUNTS}`);
      }
      for (const t of ['ledger_a', 'ledger_b']) {
        await c.query(`CREATE TABLE ${t} (id BIGINT PRIMARY KEY, amount INT NOT NULL, pad VARCHAR(500) NOT NULL) ENGINE=InnoDB`);
        await c.query(`INSERT INTO ${t} SELECT seq, 1, REPEAT('l', 500) FROM seq_1_to_3000`);
      }
      // A large table that keeps one part busy while the writer runs.
      await c.query(`CREATE TABLE filler (id INT PRIMARY KEY, v VARCHAR(200) NOT NULL) ENGINE=InnoDB`);
      await c.query(`INSERT INTO filler SELECT seq, REPEAT(MD5(seq), 6) FROM seq_1_to_300000`);
      await c.query(`CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50))`);
      // A trigger (post-data) that would double the audit rows if it fired during the data load.
      await c.query(`CREATE TRIGGER ledger_a_audit AFTER INSERT ON ledger_a FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('ledger ', NEW.id))`);
      await c.query(`CREATE VIEW balances AS SELECT a.id, a.balance + b.balance AS total FROM accounts_a a JOIN accounts_b b USING (id)`);
      await c.query(`ANALYZE TABLE accounts_a, accounts_b, ledger_a, ledger_b, filler`);
    });
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'parallel-my-c', 'mysql', 'main', mysqlUrl(source));
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('mysql', name);
  });

  test('writes go on across parts during a jobs: 4 backup; the copy keeps every cross-table invariant; no commit waited long', async () => {
    let stop = false;
    let commits = 0;
    const latencies: number[] = [];
    const spans: Array<[number, number]> = [];
    const writer = withMysqlConnection(mysqlUrl(source), async (c) => {
      let next = 1_000_000;
      while (!stop) {
        const id = 1 + (commits % ACCOUNTS);
        const t0 = performance.now();
        const from = Date.now();
        await c.query('START TRANSACTION');
        await c.query('UPDATE accounts_a SET balance = balance - 7 WHERE id = ?', [id]);
        await c.query('UPDATE accounts_b SET balance = balance + 7 WHERE id = ?', [id]);
        await c.query(`INSERT INTO ledger_a VALUES (?, 7, 'w')`, [next]);
        await c.query(`INSERT INTO ledger_b VALUES (?, 7, 'w')`, [next]);
        await c.query('COMMIT');
        latencies.push(performance.now() - t0);
        spans.push([from, Date.now()]);
        next++;
        commits++;
      }
    });
    try {
      await until('the writer is going', async () => (commits > 20 ? true : undefined), 30_000, 10);
      const before = commits;
      backup = await backupWith(server, branchPath, { jobs: 4 });
      assert.ok(commits - before > 10, `the writer kept committing during the backup (${commits - before} commits)`);
    } finally {
      stop = true;
      await writer;
    }
    const arts = (await api(server, 'GET', `${branchPath}/backups/${backup.id}/artifacts`)).body.data;
    const a = arts[0];
    assert.equal(a.parts, 6, 'pre-data, four data parts, post-data');
    const folder = path.join(server.dataDir, 'backups', path.dirname(a.path));
    assert.deepEqual(fs.readdirSync(folder).sort(), PART_FILES);
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: folder });
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    // Commits waited only while the dumps opened their snapshots: no commit took much longer
    // than the block (on a loaded machine, a commit alone can take a few hundred ms).
    const blocked = manifest.consistency.commits_blocked_ms;
    assert.equal(manifest.consistency.method, 'backup stage');
    assert.ok(typeof blocked === 'number' && blocked >= 0 && blocked < 10_000, JSON.stringify(manifest.consistency));
    const max = Math.max(...latencies);
    const median = [...latencies].sort((x, y) => x - y)[Math.floor(latencies.length / 2)];
    // The transactions that were running while commits were blocked waited at most that long
    // (plus what a commit takes on this machine). Others are not slowed by the backup's block
    // at all; on a loaded machine a commit can stall on its own (fsync), which is not ours.
    const from = Date.parse(manifest.consistency.commits_blocked_at);
    // How long each took from the moment the block began (or it began, if later).
    const during = spans.filter(([s, e]) => s <= from + blocked && e >= from).map(([s, e]) => e - Math.max(s, from));
    const maxDuring = Math.max(0, ...during);
    console.log(`commits blocked ${blocked} ms; commit latency median ${median.toFixed(1)} ms, max ${max.toFixed(0)} ms over ${latencies.length} commits; ${during.length} spanning the block, the last ending ${maxDuring} ms after it began`);
    assert.ok(during.length >= 1, 'a transaction was running while commits were blocked');
    assert.ok(maxDuring <= blocked + Math.max(1_000, 20 * median), `a transaction spanning the block ended ${maxDuring} ms after the block began; commits were blocked for ${blocked} ms`);
    const partOf = (table: string) => manifest.parts.findIndex((p: any) => (p.tables ?? []).some((t: any) => t.table === table));
    // The tables written together are in different parts: the test proves something.
    assert.equal(new Set(['accounts_a', 'accounts_b', 'ledger_a', 'ledger_b', 'filler'].map(partOf)).size, 4, JSON.stringify(manifest.parts));
    assert.match(manifest.dump_format, /backup stage/);

    const name = uniqueName('sbx_parm_cr');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: backup.id, jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, dbPath, name, 240_000);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    await withMysqlConnection(mysqlUrl(name), async (c) => {
      const [[sums]] = (await c.query('SELECT (SELECT SUM(balance) FROM accounts_a) + (SELECT SUM(balance) FROM accounts_b) AS total, (SELECT COUNT(*) FROM balances WHERE total <> 2 * ?) AS off', [START])) as any;
      assert.equal(Number(sums.total), 2 * START * ACCOUNTS, 'money is neither made nor lost across parts');
      assert.equal(Number(sums.off), 0);
      const [[ledgers]] = (await c.query(
        `SELECT (SELECT COUNT(*) FROM ledger_a) AS a, (SELECT COUNT(*) FROM ledger_b) AS b,
                (SELECT COUNT(*) FROM ledger_a x LEFT JOIN ledger_b y USING (id) WHERE y.id IS NULL) AS only_a,
                (SELECT SUM(amount) FROM ledger_a WHERE id >= 1000000) AS moved,
                (SELECT SUM(balance) FROM accounts_b) - ? AS received`,
        [START * ACCOUNTS],
      )) as any;
      assert.equal(Number(ledgers.a), Number(ledgers.b), JSON.stringify(ledgers));
      assert.equal(Number(ledgers.only_a), 0);
      assert.equal(Number(ledgers.moved ?? 0), Number(ledgers.received), 'the ledgers and the balances are of one moment');
      assert.ok(Number(ledgers.a) > 3000, 'the copy holds some of the writer\'s transactions');
      // Triggers were created after the rows were loaded: audit has only the rows the source had.
      const [[audit]] = (await c.query('SELECT COUNT(*) AS n FROM audit')) as any;
      const [[srcAudit]] = (await withMysqlConnection(mysqlUrl(source), (s) => s.query('SELECT COUNT(*) AS n FROM audit WHERE id <= (SELECT MAX(id) FROM audit)'))) as any;
      assert.ok(Number(audit.n) <= Number(srcAudit.n));
      assert.equal(Number(audit.n), Number(ledgers.a) - 3000, 'one audit row per writer transaction in the copy, none from the load');
      const [trg] = (await c.query('SHOW TRIGGERS')) as any;
      assert.deepEqual(trg.map((t: any) => t.Trigger), ['ledger_a_audit']);
    });
  });

  test('full verification of the parallel backup passes (row counts and digests per table)', async () => {
    const backupPath = `${branchPath}/backups/${backup.id}`;
    const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
    assert.equal(full.status, 202, JSON.stringify(full.body));
    const v = await waitForVerification(server, backupPath, full.body.id, 240_000);
    assert.equal(v.state, 'success', JSON.stringify(v));
  });

  test('the README commands restore the downloaded backup without Strongbox', async () => {
    const res = await fetch(`${server.url}${branchPath}/backups/${backup.id}/download`, { headers: { authorization: server.token } });
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-parm-tar-'));
    const name = uniqueName('sbx_parm_hand');
    databases.push(name);
    try {
      assert.deepEqual([...untar(body).keys()].map((k) => k.split('/')[1]).sort(), PART_FILES);
      fs.writeFileSync(path.join(dir, 'b.tar'), body);
      execFileSync('tar', ['xf', 'b.tar'], { cwd: dir });
      const folder = path.join(dir, backup.id);
      const org = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
      const identity = `${server.dataDir}/age/${org.id}.key`;
      // As the README says.
      const script = `set -e
sha256sum -c --quiet SHA256SUMS
for f in *.sql.zst.age; do age -d -i '${identity}' "$f" | zstd -q -d > "\${f%.zst.age}"; done
M="mariadb --protocol=TCP -h 127.0.0.1 -u root"
$M -e 'CREATE DATABASE ${name}'
$M ${name} < 00-pre-data.sql
for f in [0-9][0-9]-data.sql; do $M ${name} < "$f" & done; wait
$M ${name} < *-post-data.sql
`;
      execFileSync('bash', ['-c', script], { cwd: folder, stdio: 'pipe' });
      const branchCopy = (await server.ctx.db.selectFrom('branches').select('conn_database').where('name', 'like', 'sbx_parm_cr%').executeTakeFirstOrThrow()).conn_database!;
      assert.deepEqual(await checksums(name), await checksums(branchCopy), 'by hand as by Strongbox');
      const [trg] = (await withMysqlConnection(mysqlUrl(name), (c) => c.query('SHOW TRIGGERS'))) as any;
      assert.equal(trg.length, 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a dump session killed mid-way fails the backup with its part named; no part stays', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, { jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await until('the dump of filler', async () => {
      const killed = await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
        const [rows] = (await c.query(`SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'SELECT /*!40001 SQL_NO_CACHE */%filler%'`, [source])) as any;
        for (const row of rows) await c.query(`KILL ${Number(row.id)}`).catch(() => undefined);
        return rows.length > 0;
      });
      return killed ? true : undefined;
    }, 60_000, 5);
    const b = await waitForBackup(server, branchPath, r.body.id, 120_000);
    assert.equal(b.state, 'failed', JSON.stringify(b));
    const why = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body;
    assert.match(why.backup_error, /part \d\d-data \(.*filler.*\) failed/, why.backup_error);
    const folder = path.join(server.dataDir, 'backups', path.dirname(why.data[0].path));
    assert.deepEqual(fs.existsSync(folder) ? fs.readdirSync(folder) : [], [], 'no part stays in storage');
  });

  test('an account without RELOAD is told what to grant', async () => {
    const user = uniqueName('sbx_parm_u');
    await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
      await c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-${user}'`);
      await c.query(`GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON ${mysqlIdent(source)}.* TO '${user}'@'%'`);
      // PROCESS (a global privilege) but not RELOAD.
      await c.query(`GRANT PROCESS ON *.* TO '${user}'@'%'`);
    });
    try {
      const url = `mysql://${user}:pw-${user}@127.0.0.1:3306/${source}`;
      const p = await registerBranch(server, 'default', 'parallel-my-c', 'mysql', 'limited', url);
      const r = await api(server, 'POST', `${p}/backups`, { jobs: 2 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const b = await waitForBackup(server, p, r.body.id, 60_000);
      assert.equal(b.state, 'failed');
      assert.match(b.error ?? (await api(server, 'GET', `${p}/backups/${b.id}/artifacts`)).body.backup_error, /RELOAD privilege/);
      assert.ok(!JSON.stringify(b).includes(`pw-${user}`), 'the password appears nowhere');
    } finally {
      await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`DROP USER IF EXISTS '${user}'@'%'`));
    }
  });
});

describe('MariaDB: the nasty database in parts', () => {
  let server: TestServer;
  const roles = { owner: uniqueName('sbx_parm_own'), reader: uniqueName('sbx_parm_read') };
  const source = uniqueName('sbx_parm_n');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/parallel-my-n';
  let branchPath: string;
  let inventory: string[];
  let data: Record<string, string>;
  let parallel: any;

  before(async () => {
    await createMysqlAccounts([roles.owner, roles.reader]);
    await createMysqlNasty(source, roles, { nearLimitRow: true });
    await withMysqlConnection(mysqlUrl(source), async (c) => {
      // Names a command line or a pattern could misread, of different sizes.
      for (const [i, t] of ['--dash', 'sp ace', 'back`tick', 'per%cent', 'x*?'].entries()) {
        await c.query(`CREATE TABLE ${mysqlIdent(t)} (id INT PRIMARY KEY, v TEXT)`);
        await c.query(`INSERT INTO ${mysqlIdent(t)} SELECT seq, REPEAT('v', seq % 300) FROM seq_1_to_${(i + 1) * 500}`);
      }
    });
    inventory = await mysqlInventory(mysqlUrl(source));
    data = await mysqlData(mysqlUrl(source), { history: true });
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'parallel-my-n', 'mysql', 'main', mysqlUrl(source));
    const patched = await api(server, 'PATCH', branchPath, { dump_history: true, jobs: 3 });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.jobs, 3);
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('mysql', name);
    await dropMysqlAccounts([roles.owner, roles.reader]);
  });

  test('the branch option jobs: 3 dumps in parts; restored with jobs: 3, every object and byte is there', async () => {
    parallel = await backupWith(server, branchPath, {});
    const a = (await api(server, 'GET', `${branchPath}/backups/${parallel.id}/artifacts`)).body.data[0];
    assert.equal(a.parts, 5);
    const folder = path.join(server.dataDir, 'backups', path.dirname(a.path));
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    const listed = manifest.parts.flatMap((p: any) => p.tables ?? []).map((t: any) => t.table);
    assert.equal(new Set(listed).size, listed.length, 'no table is in two parts');
    assert.ok(listed.includes('--dash') && listed.includes('back`tick'));
    assert.equal(manifest.dump_history, true);
    assert.ok(manifest.largest_statement >= 16_000_000, 'the 16 MB row is measured');
    const name = uniqueName('sbx_parm_nr');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: parallel.id, jobs: 3 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, dbPath, name, 240_000);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await mysqlInventory(mysqlUrl(name)), inventory, 'inventories of the source and the parallel copy');
    assert.deepEqual(dataDiff(data, await mysqlData(mysqlUrl(name), { history: true })), [], 'data of the source and the parallel copy');
  });

  test('a single-stream backup records the same contents and restores to the same database', async () => {
    const single = await backupWith(server, branchPath, { jobs: 1 });
    const a = (await api(server, 'GET', `${branchPath}/backups/${single.id}/artifacts`)).body.data[0];
    assert.equal(a.parts, null);
    const norm = async (id: string) => {
      const c = JSON.parse((await server.ctx.db.selectFrom('backup_contents').selectAll().where('backup_id', '=', id).executeTakeFirstOrThrow()).contents);
      const key = (x: any) => JSON.stringify(x);
      return { tables: c.tables.map(key).sort(), objects: c.objects.map(key).sort(), dump_options: c.dump_options };
    };
    assert.deepEqual(await norm(parallel.id), await norm(single.id));
    const name = uniqueName('sbx_parm_ns');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: single.id });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, dbPath, name, 240_000);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    const parallelCopy = (await server.ctx.db.selectFrom('branches').select('conn_database').where('name', 'like', 'sbx_parm_nr%').executeTakeFirstOrThrow()).conn_database!;
    assertSameLines(await mysqlInventory(mysqlUrl(name)), await mysqlInventory(mysqlUrl(parallelCopy)), 'the single-stream and the parallel copies');
    assert.deepEqual(dataDiff(await mysqlData(mysqlUrl(name), { history: true }), await mysqlData(mysqlUrl(parallelCopy), { history: true })), []);
  });

  test('full verification passes on the parallel backup', async () => {
    const backupPath = `${branchPath}/backups/${parallel.id}`;
    const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
    assert.equal(full.status, 202, JSON.stringify(full.body));
    const v = await waitForVerification(server, backupPath, full.body.id, 240_000);
    assert.equal(v.state, 'success', JSON.stringify(v));
  });
});

describe('MariaDB with log_bin: a parallel backup records where binlog replay starts', () => {
  let private_: PrivateServer;
  let server: TestServer;

  before(async () => {
    private_ = await startPrivateMariadb({ logBin: true });
    const url = (db: string) => private_.url.replace(/\/[^/]*$/, `/${db}`);
    await withMysqlConnection(private_.url, (c) => c.query('CREATE DATABASE shop'));
    await withMysqlConnection(url('shop'), async (c) => {
      await c.query('CREATE TABLE a (id INT PRIMARY KEY, v INT)');
      await c.query('CREATE TABLE b (id INT PRIMARY KEY, v INT)');
      await c.query('INSERT INTO a SELECT seq, seq FROM seq_1_to_1000');
      await c.query('INSERT INTO b SELECT seq, seq FROM seq_1_to_500');
    });
    server = await startServer();
  });
  after(async () => {
    await server?.close();
    await private_?.stop();
  });

  test('the same binlog position and GTID as a single-stream dump of the same moment', async () => {
    const branchPath = await registerBranch(server, 'default', 'binlog-my', 'mysql', 'main', private_.url.replace(/\/[^/]*$/, '/shop'));
    const parallel = await backupWith(server, branchPath, { jobs: 2 });
    const single = await backupWith(server, branchPath, { jobs: 1 });
    const start = async (id: string) => {
      const row = await server.ctx.db.selectFrom('backups').select('recovery_start').where('id', '=', id).executeTakeFirstOrThrow();
      const r = JSON.parse(row.recovery_start!);
      return { file: r.file, position: r.position, gtid: r.gtid };
    };
    const p = await start(parallel.id);
    assert.match(p.file, /\S/);
    assert.ok(p.position > 0);
    assert.deepEqual(p, await start(single.id), 'no writes between the two backups: the same coordinates');
  });
});

describe('MariaDB: Strongbox killed -9 while parallel parts are paused or at their gate', () => {
  let cluster: Cluster;
  const source = uniqueName('sbx_parm_k');
  let branchPath: string;

  before(async () => {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`CREATE DATABASE ${mysqlIdent(source)}`));
    await withMysqlConnection(mysqlUrl(source), async (c) => {
      for (const t of ['a', 'b', 'c', 'd']) {
        await c.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, v VARCHAR(200) NOT NULL) ENGINE=InnoDB`);
        await c.query(`INSERT INTO ${t} SELECT seq, REPEAT(MD5(seq), 6) FROM seq_1_to_50000`);
      }
      await c.query('ANALYZE TABLE a, b, c, d');
    });
    cluster = await startCluster();
    branchPath = await registerBranch(cluster, 'default', 'parallel-my-k', 'mysql', 'main', mysqlUrl(source));
  });
  after(async () => {
    await cluster?.close();
    await dropDatabase('mysql', source);
  });

  test('every part dies with it: no mariadb-dump left stopped or waiting, no session left open on the server', async () => {
    const r = await api(cluster, 'POST', `${branchPath}/backups`, { jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // The moment a part is paused (SIGSTOP, state T) with its snapshot open, or else waits at its
    // gate (a FIFO): nothing but this process would ever let it go on.
    const parts = () => allProcesses().filter((p) => p.name === 'mariadb-dump' && p.argv.includes(source));
    const held = await until('a part paused or at its gate', async () => {
      const p = parts().find((x) => x.state === 'T') ?? parts().find((x) => wchanOf(x.pid) === 'wait_for_partner');
      return p ?? undefined;
    }, 60_000, 2);
    const seen = parts();
    await cluster.serve.kill9();
    await until('every part to exit', async () => (seen.some((p) => isAlive(p.pid)) ? undefined : true), 15_000, 50).catch((e) => {
      const left = seen.filter((p) => isAlive(p.pid)).map((p) => describeProcess(processInfo(p.pid) ?? p));
      for (const p of seen) if (isAlive(p.pid)) process.kill(p.pid, 'SIGKILL');
      throw new Error(`${e.message} (killed while part ${held.pid} was ${held.state === 'T' ? 'paused' : 'at its gate'}): ${left.join('; ')}`);
    });
    await until('their sessions to end on the server', async () => {
      const [rows] = await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query('SELECT id FROM information_schema.processlist WHERE db = ?', [source])) as any;
      return rows.length === 0 ? true : undefined;
    }, 15_000, 100);
    // The parts' gates (FIFOs in private folders) were in the data dir's tmp/, named after the
    // killed process; the restart sweeps them.
    const tmp = path.join(cluster.serve.dataDir, 'tmp');
    const gates = () => fs.readdirSync(tmp).filter((e) => e.startsWith('gate-'));
    assert.ok(gates().length > 0, 'the killed process left its gates behind');
    // At restart the backup is recovered as failed, with a reason.
    await cluster.serve.start();
    const b = await waitForBackupOf(cluster, branchPath, r.body.id, 60_000);
    assert.equal(b.state, 'failed', JSON.stringify(b));
    assert.deepEqual(gates(), [], 'swept at restart');
  });
});
