/**
 * Scale-out with real processes: `serve` + 2 `worker` processes on one PostgreSQL catalog
 * and one S3-compatible endpoint. 20 backups and 5 restores are queued at once while a
 * worker is killed with SIGKILL in the middle of a backup (its dump stuck on a table lock,
 * 5 MiB parts already uploaded to S3).
 *
 * What a dead worker's job becomes: it is FAILED, not retried. Once its lease lapses (5 s
 * here, STRONGBOX_LEASE_SECONDS), the next tick of any live process (every second) marks it
 * `failed` with "interrupted: ..." and removes what it had begun storing (the unfinished
 * multipart upload is aborted). A dump is not resumable, and a retry could not know how much
 * of the source changed meanwhile: a new backup is the honest answer.
 *
 * Runs on the PostgreSQL leg of the catalog matrix only: a SQLite catalog is one process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mysql2 from 'mysql2/promise';
import { api, registerBranch, until } from '../helpers/server.js';
import { catalogKind } from '../helpers/catalog.js';
import { leaseOwnerPid, startCluster, type Cluster, type ClusterProcess } from '../helpers/cluster.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { dropDatabase, mysqlUrl, uniqueName, withMysqlConnection } from '../helpers/databases.js';
import { createSource, databaseExists, fingerprintsOf, s3DestinationConfig, s3Objects, startRestore, urlOf, waitForBackupOf, waitForRestoreOf } from '../helpers/chaos.js';

const LEASE_SECONDS = 5;
const TICK_SECONDS = 1;
/** Room for a loaded 2-core machine on top of lease + tick (catalog round trips, a slow tick). */
const SLACK_SECONDS = 4;

type Kind = 'postgresql' | 'mysql';

const TITLE = "each job runs exactly once, a killed worker's backup fails within lease + one tick, the queue keeps moving, every backup restores";

// A skipped test, not a skipped suite: the runner counts tests, and a file must report one.
if (catalogKind() === 'sqlite') test(TITLE, { skip: 'needs a PostgreSQL catalog shared by several processes: runs on the postgres leg of the matrix' }, () => {});
else describe('scale-out: serve + 2 workers, one PostgreSQL catalog, one S3 endpoint', () => {
  let s3: S3TestServer;
  let cluster: Cluster;
  const prefix = `scale-${Date.now().toString(36)}`;
  const sources: Record<'shop' | 'crm' | 'ledger', { kind: Kind; name: string; path: string; fingerprints?: Awaited<ReturnType<typeof fingerprintsOf>> }> = {
    shop: { kind: 'postgresql', name: uniqueName('sbx_so_pg'), path: '' },
    crm: { kind: 'mysql', name: uniqueName('sbx_so_my'), path: '' },
    ledger: { kind: 'mysql', name: uniqueName('sbx_so_slow'), path: '' },
  };
  const toDrop: Array<[Kind, string]> = Object.values(sources).map((s) => [s.kind, s.name]);
  let locker: mysql2.Connection | null = null;

  before(async () => {
    s3 = await startS3Server();
    cluster = await startCluster({ workers: 2, catalog: 'postgres' });
    await createSource('postgresql', sources.shop.name, 3000);
    await createSource('mysql', sources.crm.name, 3000);
    // The slow one: 20 MiB of random bytes dumped first (zstd holds up to ~8 MiB in its own
    // buffers, the rest reaches S3 as 5 MiB parts), then a table the test holds a write lock
    // on, so the dump stops mid-way for as long as needed.
    await createSource('mysql', sources.ledger.name, 1000, 20);
    await withMysqlConnection(mysqlUrl(sources.ledger.name), (c) => c.query('CREATE TABLE z_locked (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO z_locked VALUES (1)'));
    const d = await api(cluster, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3DestinationConfig(s3, prefix) });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    for (const [db, s] of Object.entries(sources)) {
      s.path = await registerBranch(cluster, 'default', db, s.kind, 'main', urlOf(s.kind, s.name));
      const p = await api(cluster, 'PATCH', `/v1/organizations/default/databases/${db}`, { storage_destinations: ['offsite'] });
      assert.equal(p.status, 200, JSON.stringify(p.body));
    }
    sources.shop.fingerprints = await fingerprintsOf('postgresql', sources.shop.name);
    sources.crm.fingerprints = await fingerprintsOf('mysql', sources.crm.name);
  });

  after(async () => {
    await locker?.end().catch(() => {});
    await cluster?.close();
    await s3?.close();
    for (const [kind, name] of toDrop) await dropDatabase(kind, name).catch(() => {});
  });

  const dbPath = (db: string) => `/v1/organizations/default/databases/${db}`;
  const backup = async (db: keyof typeof sources): Promise<string> => {
    const r = await api(cluster, 'POST', `${sources[db].path}/backups`, {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  };
  /** Every "started" line for `id` in every process's log: who ran it, how often. */
  const startsOf = (id: string) => cluster.processes.flatMap((p) => p.logs().filter((l) => l.msg === 'started' && l.id === id).map((l) => ({ process: p.name, pid: l.pid as number })));

  test(TITLE, async (t) => {
    // Backups to restore from while the queue is busy.
    const base = { shop: await backup('shop'), crm: await backup('crm') };
    for (const [db, id] of Object.entries(base)) assert.equal((await waitForBackupOf(cluster, sources[db as 'shop'].path, id)).state, 'success');

    // Stick slow backups on the lock until a worker holds one (serve may take the first two).
    locker = await mysql2.createConnection({ uri: mysqlUrl(sources.ledger.name) });
    await locker.query('LOCK TABLES z_locked WRITE');
    const slow: string[] = [];
    let victim: ClusterProcess | undefined;
    let killedId = '';
    for (let i = 0; i < 5 && !victim; i++) {
      const id = await backup('ledger');
      slow.push(id);
      const row = await until(`slow backup ${id} to wait on the lock`, async () => {
        const [b] = await cluster.query<{ state: string; lease_owner: string | null }>('SELECT state, lease_owner FROM backups WHERE id = $1', [id]);
        if (b.state !== 'running') return undefined;
        const waiting = await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
          const [rows] = await c.query("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ? AND state = 'Waiting for table metadata lock'", [sources.ledger.name]);
          return Number((rows as Array<{ n: number }>)[0].n);
        });
        return waiting >= slow.length ? b : undefined;
      }, 90_000);
      const owner = cluster.ownerOf(row.lease_owner);
      assert.ok(owner, `the lease owner ${row.lease_owner} is one of the cluster's processes`);
      if (owner.role === 'worker') {
        victim = owner;
        killedId = id;
      }
    }
    assert.ok(victim, 'a worker took one of the slow backups');
    const [{ path: killedPath }] = await cluster.query<{ path: string }>('SELECT path FROM artifacts WHERE backup_id = $1', [killedId]);
    await until('the stuck backup to have stored parts in S3', async () => (s3.openUploads().some((u) => u.key === `${prefix}/${killedPath}` && u.parts >= 1) ? true : undefined), 60_000);

    // 20 backups and 5 restores at once, then the kill.
    const posted = await Promise.all([
      ...Array.from({ length: 10 }, () => backup('shop').then((id) => ({ db: 'shop' as const, id }))),
      ...Array.from({ length: 10 }, () => backup('crm').then((id) => ({ db: 'crm' as const, id }))),
    ]);
    const restores = await Promise.all(
      (['shop', 'shop', 'shop', 'crm', 'crm'] as const).map(async (db) => {
        const name = uniqueName(`sbx_so_r${db === 'shop' ? 'p' : 'm'}`);
        toDrop.push([sources[db].kind, name]);
        await startRestore(cluster, dbPath(db), base[db], name);
        return { db, name };
      }),
    );
    const killedPid = victim.pid!;
    const killedAt = Date.now();
    await victim.kill9();

    const failedAfter = await until('the killed worker\'s backup to be failed', async () => {
      const [b] = await cluster.query<{ state: string; error: string | null }>('SELECT state, error FROM backups WHERE id = $1', [killedId]);
      return b.state === 'running' ? undefined : { ...b, ms: Date.now() - killedAt };
    }, 60_000, 50);
    t.diagnostic(`killed ${victim.name}; its backup was ${failedAfter.state} ${failedAfter.ms} ms later: ${failedAfter.error}`);
    assert.equal(failedAfter.state, 'failed');
    assert.match(failedAfter.error ?? '', /interrupted/);
    assert.ok(failedAfter.ms <= (LEASE_SECONDS + TICK_SECONDS + SLACK_SECONDS) * 1000, `failed ${failedAfter.ms} ms after the kill: more than lease + one tick (+${SLACK_SECONDS} s)`);
    await victim.start();
    await locker.query('UNLOCK TABLES');

    // Everything the killed worker was running is failed as interrupted; everything else
    // succeeds, each exactly once.
    // Ran by the victim: it logged the start, or it was killed between claiming the item (the
    // claim committed in the catalog) and logging it, and a survivor took the item over from it.
    const victimOwner = (owner: unknown) => typeof owner === 'string' && leaseOwnerPid(owner) === killedPid;
    const takeOversOf = (id: string) => cluster.processes.flatMap((p) => p.logs().filter((l) => (l.backup === id || l.job === id) && /^marked an interrupted/.test(String(l.msg))).map((l) => ({ by: p.name, from: l.owner })));
    const takenOverFromVictim = (id: string) => takeOversOf(id).some((o) => victimOwner(o.from));
    const startedByVictim = (id: string) => startsOf(id).some((s) => s.pid === killedPid) || takenOverFromVictim(id);
    const queued = [...posted, ...slow.filter((id) => id !== killedId).map((id) => ({ db: 'ledger' as const, id }))];
    const others: typeof queued = [];
    const interrupted = [killedId];
    for (const { db, id } of queued) {
      const b = await waitForBackupOf(cluster, sources[db].path, id, 240_000);
      const [row] = await cluster.query<{ error: string | null }>('SELECT error FROM backups WHERE id = $1', [id]);
      if (b.state === 'failed' && /interrupted/.test(row.error ?? '') && startedByVictim(id)) interrupted.push(id);
      else if (b.state === 'success') others.push({ db, id });
      else assert.fail(`backup ${id} of ${db} is ${b.state}: ${row.error}; started ${JSON.stringify(startsOf(id))}, taken over ${JSON.stringify(takeOversOf(id))}, victim pid ${killedPid}`);
    }
    const restored: typeof restores = [];
    for (const r of restores) {
      const branch = await waitForRestoreOf(cluster, dbPath(r.db), r.name, 240_000);
      const [job] = await cluster.query<{ id: string }>("SELECT j.id FROM jobs j JOIN branches b ON b.id = j.branch_id WHERE b.name = $1 AND j.kind = 'restore'", [r.name]);
      if (branch.restore.state === 'failed' && /interrupted/.test(branch.restore.error ?? '') && startedByVictim(job.id)) {
        assert.equal(await databaseExists(sources[r.db].kind, r.name), false, `the database of the interrupted restore ${r.name} was dropped`);
      } else {
        assert.equal(branch.restore.state, 'success', `restore into ${r.name}: ${branch.restore.error}; started ${JSON.stringify(startsOf(job.id))}, taken over ${JSON.stringify(takeOversOf(job.id))}, victim pid ${killedPid}`);
        restored.push(r);
      }
    }
    t.diagnostic(`interrupted with ${victim.name}: ${interrupted.length} backups, ${restores.length - restored.length} restores`);
    assert.ok(others.length >= 18 && restored.length >= 3, 'a worker runs at most 2 backups and 2 restores at once: everything else succeeded');
    const ids = [...interrupted, ...others.map((o) => o.id)];
    // One start line each, but none for an item the victim claimed and died before logging.
    const expectedStarts = (id: string) => (startsOf(id).length === 0 && takenOverFromVictim(id) ? 0 : 1);
    const attempts = await cluster.query<{ id: string; attempts: number; lease_owner: string | null }>('SELECT id, attempts, lease_owner FROM backups WHERE id = ANY($1)', [ids]);
    assert.equal(attempts.length, ids.length);
    for (const a of attempts) {
      assert.equal(Number(a.attempts), 1, `backup ${a.id} was claimed ${a.attempts} times`);
      assert.equal(a.lease_owner, null, `backup ${a.id} still has a lease`);
      assert.equal(startsOf(a.id).length, expectedStarts(a.id), `backup ${a.id} started ${JSON.stringify(startsOf(a.id))}`);
    }
    assert.equal(startsOf(killedId)[0].process, victim.name);
    assert.ok(takenOverFromVictim(killedId), `the takeover of ${killedId} names the dead worker: ${JSON.stringify(takeOversOf(killedId))}`);
    const jobs = await cluster.query<{ id: string; attempts: number }>("SELECT j.id, j.attempts FROM jobs j JOIN branches b ON b.id = j.branch_id WHERE j.kind = 'restore' AND b.name = ANY($1)", [restores.map((r) => r.name)]);
    assert.equal(jobs.length, restores.length);
    for (const j of jobs) {
      assert.equal(Number(j.attempts), 1, `restore job ${j.id} was claimed ${j.attempts} times`);
      assert.equal(startsOf(j.id).length, expectedStarts(j.id), `restore job ${j.id} started ${JSON.stringify(startsOf(j.id))}`);
    }
    const ranBy = new Set(posted.flatMap(({ id }) => startsOf(id).map((s) => s.process)));
    t.diagnostic(`the 20 backups ran on: ${[...ranBy].join(', ')}`);

    // Every process takes work, the restarted one included. Which process ran the 20 above
    // depends on timing (one free worker may drain them all while the others are held by the
    // lock or restarting), so this is shown where it does not: six backups stuck on the lock
    // again, and a process runs at most two backups at once, so all three must hold two each.
    await locker.query('LOCK TABLES z_locked WRITE');
    const stuck = await Promise.all(Array.from({ length: 6 }, () => backup('ledger')));
    const owners = await until('six stuck backups to be held by the three processes', async () => {
      const rows = await cluster.query<{ state: string; lease_owner: string | null }>('SELECT state, lease_owner FROM backups WHERE id = ANY($1)', [stuck]);
      if (rows.some((r) => r.state !== 'running' || r.lease_owner === null)) return undefined;
      return rows.map((r) => cluster.ownerOf(r.lease_owner)?.name ?? `unknown ${r.lease_owner}`);
    }, 120_000);
    const perProcess = new Map<string, number>();
    for (const o of owners) perProcess.set(o, (perProcess.get(o) ?? 0) + 1);
    t.diagnostic(`six stuck backups held by: ${JSON.stringify(Object.fromEntries(perProcess))}`);
    assert.deepEqual([...perProcess.keys()].sort(), cluster.processes.map((p) => p.name).sort(), 'every process (serve, the restarted worker, the other worker) holds stuck backups');
    await locker.query('UNLOCK TABLES');
    for (const id of stuck) assert.equal((await waitForBackupOf(cluster, sources.ledger.path, id, 240_000)).state, 'success', `stuck backup ${id}`);

    // Nothing of the killed backup is left in S3: no unfinished upload, no object.
    assert.deepEqual(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`)), [], 'no unfinished multipart upload');
    const stored = await s3Objects(s3, prefix, (key) => interrupted.some((id) => key.includes(id)));
    for (const id of interrupted) assert.deepEqual(stored.filter((o) => o.key.includes(id)), [], `nothing stored for the interrupted backup ${id}`);

    // Every successful backup restores, row for row.
    const checks = await Promise.all(
      others.map(async ({ db, id }) => {
        const name = uniqueName(`sbx_so_v${db[0]}`);
        toDrop.push([sources[db].kind, name]);
        await startRestore(cluster, dbPath(db), id, name);
        return { db, id, name };
      }),
    );
    for (const { db, id, name } of checks) {
      const branch = await waitForRestoreOf(cluster, dbPath(db), name, 240_000);
      assert.equal(branch.restore.state, 'success', `restore of ${id}: ${branch.restore.error}`);
    }
    sources.ledger.fingerprints = await fingerprintsOf('mysql', sources.ledger.name);
    for (const { db, name } of [...restored, ...checks]) {
      assert.deepEqual(await fingerprintsOf(sources[db].kind, name), sources[db].fingerprints, `${name} equals its source`);
      await dropDatabase(sources[db].kind, name);
    }
  });
});
