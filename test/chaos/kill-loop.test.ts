/**
 * kill -9 at random points of backups and restores, then an audit of everything left.
 *
 * On the SQLite leg of the catalog matrix the victim is `serve` itself (the only process;
 * it recovers at restart); on the PostgreSQL leg it is whichever of `serve` and two workers
 * holds the job's lease (its work is recovered by another process once the lease lapses).
 * A cycle queues a backup or a restore, waits for it to run, waits a random part of a typical
 * job's duration, kills the process with SIGKILL and starts it again. The choices come from a
 * seeded generator: the seed is printed, and STRONGBOX_CHAOS_SEED=<seed> replays the choices
 * (the timing of a real machine never replays exactly). STRONGBOX_CHAOS_KILLS sets the kills
 * per leg (default 10: 20 per run of both legs).
 *
 * Afterwards, whatever the kills hit:
 * - nothing is left pending or running;
 * - no backup is `success` unless every copy is stored with the recorded size and sha256;
 *   no copy listed as `success` is missing or differs; a sample decrypts and restores row
 *   for row;
 * - storage holds nothing but committed copies and their manifests: no partial file, no
 *   unfinished multipart upload, no manifest without its dump, no dump the catalog does not
 *   list as stored;
 * - a restore that did not succeed left no database behind; one that succeeded equals its
 *   source; no dump or restore tool outlives the kills, no temporary file stays.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { api, registerBranch, until } from '../helpers/server.js';
import { catalogKind } from '../helpers/catalog.js';
import { chaosSeed, seededRandom, startCluster, type Cluster, type ClusterProcess } from '../helpers/cluster.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { dropDatabase, uniqueName } from '../helpers/databases.js';
import { describeProcess, processesMentioning } from '../helpers/processes.js';
import {
  createSource,
  databaseExists,
  fingerprintsOf,
  localObjects,
  s3DestinationConfig,
  s3Objects,
  startRestore,
  urlOf,
  waitForBackupOf,
  waitForRestoreOf,
  type StoredObject,
} from '../helpers/chaos.js';

type Kind = 'postgresql' | 'mysql';
type Db = 'shop' | 'crm';

const KILLS = Number(process.env.STRONGBOX_CHAOS_KILLS || 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Kill {
  cycle: number;
  what: string;
  /** The job's state when the process died: pending, running, or already over. */
  at: string;
  victim: string;
  delayMs: number;
}

describe(`kill -9 loop (${catalogKind()} catalog)`, () => {
  const kind = catalogKind();
  const seed = chaosSeed();
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  let s3: S3TestServer;
  let cluster: Cluster;
  const prefix = `kill-${Date.now().toString(36)}`;
  const sources: Record<Db, { kind: Kind; name: string; path: string; fingerprints?: Awaited<ReturnType<typeof fingerprintsOf>> }> = {
    shop: { kind: 'postgresql', name: uniqueName('sbx_kl_pg'), path: '' },
    crm: { kind: 'mysql', name: uniqueName('sbx_kl_my'), path: '' },
  };
  const restoredNames: Array<{ db: Db; name: string }> = [];
  const backups: Array<{ db: Db; id: string }> = [];
  const kills: Kill[] = [];

  before(async () => {
    process.stdout.write(`chaos seed: ${seed} (replay with STRONGBOX_CHAOS_SEED=${seed})\n`);
    s3 = await startS3Server();
    cluster = await startCluster({ workers: kind === 'postgres' ? 2 : 0 });
    // A few thousand rows and 6 MiB of random bytes: a dump and a restore take a moment,
    // and a copy spans a 5 MiB S3 part boundary (multipart) once zstd and age are through.
    await createSource('postgresql', sources.shop.name, 2000, 6);
    await createSource('mysql', sources.crm.name, 2000, 6);
    const d = await api(cluster, 'POST', '/v1/organizations/default/storage-destinations', { name: 'offsite', provider: 's3', config: s3DestinationConfig(s3, prefix) });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    for (const [db, s] of Object.entries(sources)) {
      s.path = await registerBranch(cluster, 'default', db, s.kind, 'main', urlOf(s.kind, s.name));
      const p = await api(cluster, 'PATCH', `/v1/organizations/default/databases/${db}`, { storage_destinations: ['local', 'offsite'] });
      assert.equal(p.status, 200, JSON.stringify(p.body));
      s.fingerprints = await fingerprintsOf(s.kind, s.name);
    }
  });

  after(async () => {
    await cluster?.close();
    await s3?.close();
    for (const s of Object.values(sources)) await dropDatabase(s.kind, s.name).catch(() => {});
    for (const r of restoredNames) await dropDatabase(sources[r.db].kind, r.name).catch(() => {});
  });

  const dbPath = (db: Db) => `/v1/organizations/default/databases/${db}`;
  /** What every process logged about `text` (a job id), for failure messages. */
  const logsAbout = (text: string) => cluster.processes.flatMap((p) => p.logText().split('\n').filter((l) => l.includes(text)).map((l) => `${p.name}: ${l.slice(0, 400)}`)).slice(-20);
  const say = (m: string) => `[seed ${seed}] ${m}`;

  /** The state of a backup or of a restore, read through the API (null while serve is down). */
  async function stateOf(job: { backup?: { db: Db; id: string }; restore?: { db: Db; name: string } }): Promise<string | null> {
    const r = job.backup
      ? await api(cluster, 'GET', `${sources[job.backup.db].path}/backups/${job.backup.id}`).catch(() => null)
      : await api(cluster, 'GET', `${dbPath(job.restore!.db)}/branches/${job.restore!.name}`).catch(() => null);
    if (!r || r.status !== 200) return null;
    return job.backup ? r.body.state : r.body.restore?.state;
  }

  /** Who to kill: the holder of the job's lease on PostgreSQL when it is running, else any process. */
  async function victimFor(job: { backup?: { id: string }; restore?: { name: string } }): Promise<ClusterProcess> {
    if (kind === 'sqlite') return cluster.serve;
    const rows = job.backup
      ? await cluster.query<{ lease_owner: string | null }>('SELECT lease_owner FROM backups WHERE id = $1', [job.backup.id])
      : await cluster.query<{ lease_owner: string | null }>("SELECT j.lease_owner FROM jobs j JOIN branches b ON b.id = j.branch_id WHERE b.name = $1 AND j.kind = 'restore'", [job.restore!.name]);
    return cluster.ownerOf(rows[0]?.lease_owner ?? null) ?? pick(cluster.processes);
  }

  test(`${KILLS} kills at random points of backups and restores leave nothing half-done`, async (t) => {
    t.diagnostic(`chaos seed: ${seed} (replay with STRONGBOX_CHAOS_SEED=${seed})`);
    // A good backup of each source to restore from, and how long a job takes here.
    const t0 = Date.now();
    for (const db of ['shop', 'crm'] as const) {
      const id = (await api(cluster, 'POST', `${sources[db].path}/backups`, {})).body.id;
      assert.equal((await waitForBackupOf(cluster, sources[db].path, id)).state, 'success');
      backups.push({ db, id });
    }
    const typicalMs = Math.max(500, (Date.now() - t0) / 2);
    const base: Record<Db, string> = { shop: backups[0].id, crm: backups[1].id };

    for (let cycle = 1; cycle <= KILLS; cycle++) {
      const db = pick(['shop', 'crm'] as const);
      const isBackup = random() < 0.6;
      let job: { backup?: { db: Db; id: string }; restore?: { db: Db; name: string } };
      if (isBackup) {
        const r = await api(cluster, 'POST', `${sources[db].path}/backups`, {});
        assert.equal(r.status, 201, JSON.stringify(r.body));
        job = { backup: { db, id: r.body.id } };
        backups.push(job.backup!);
      } else {
        const name = uniqueName(`sbx_kl_r${db[0]}`);
        restoredNames.push({ db, name });
        await startRestore(cluster, dbPath(db), base[db], name);
        job = { restore: { db, name } };
      }
      // Mostly mid-job: wait until it runs, then a random part of a typical job; now and
      // then before it was even claimed.
      const early = random() < 0.15;
      const delayMs = Math.floor(random() * typicalMs * 0.9);
      if (!early) await until('the job to start', async () => ((await stateOf(job)) === 'pending' ? undefined : true), 60_000, 20);
      await sleep(early ? 0 : delayMs);
      const victim = await victimFor(job);
      const at = (await stateOf(job)) ?? 'unknown';
      await victim.kill9();
      kills.push({ cycle, what: isBackup ? `backup of ${db}` : `restore of ${db}`, at, victim: victim.name, delayMs: early ? 0 : delayMs });
      await victim.start();
    }
    const running = kills.filter((k) => k.at === 'running').length;
    t.diagnostic(`kills: ${kills.length}, ${running} of them mid-job; ${kills.map((k) => `${k.cycle}:${k.what}@${k.at}/${k.victim}+${k.delayMs}ms`).join(' ')}`);
    // Most kills land mid-job (each waits for its job to start); a loop where hardly any did
    // would prove nothing.
    assert.ok(running >= Math.ceil(KILLS / 5), say(`only ${running} of ${KILLS} kills landed while a job ran: the loop does not test what it claims`));

    // Everything settles: recovered at restart (SQLite) or when its lease lapses (PostgreSQL).
    const states = new Map<string, any>();
    for (const b of backups) {
      states.set(b.id, await waitForBackupOf(cluster, sources[b.db].path, b.id, 120_000));
      // Recovery fails the backup first, then removes its unfinished copies and marks them.
      await until(`the copies of ${b.id} to settle`, async () => {
        const arts = await api(cluster, 'GET', `${sources[b.db].path}/backups/${b.id}/artifacts`);
        return arts.status === 200 && arts.body.data.every((a: any) => a.state !== 'pending') ? true : undefined;
      }, 20_000, 100);
    }
    const restoreStates = new Map<string, any>();
    for (const r of restoredNames) restoreStates.set(r.name, await waitForRestoreOf(cluster, dbPath(r.db), r.name, 120_000));

    // Copies: what the catalog says is stored, is, byte for byte.
    const local = localObjects(path.join(cluster.serve.dataDir, 'backups'));
    const remote = await s3Objects(s3, prefix);
    const expected = { local: new Set<string>(), offsite: new Set<string>() };
    const goodBackups: Array<{ db: Db; id: string; artifacts: any[] }> = [];
    for (const b of backups) {
      const state = states.get(b.id).state;
      assert.ok(state === 'success' || state === 'failed', say(`backup ${b.id} ended ${state}`));
      const arts = (await api(cluster, 'GET', `${sources[b.db].path}/backups/${b.id}/artifacts`)).body.data as any[];
      for (const a of arts) {
        assert.ok(a.state === 'success' || a.state === 'failed', say(`artifact ${a.id} of ${b.id} is ${a.state}`));
        if (a.state !== 'success') continue;
        const where: StoredObject[] = a.destination === 'local' ? local : remote;
        const obj = where.find((o) => o.key === a.path);
        assert.ok(obj, say(`${a.destination} copy of ${b.id} is listed as stored but missing (${a.path})`));
        assert.equal(obj.size, a.size, say(`${a.destination} copy of ${b.id}: size`));
        assert.equal(obj.sha256, a.sha256, say(`${a.destination} copy of ${b.id}: sha256`));
        const set = expected[a.destination as 'local' | 'offsite'];
        set.add(a.path);
        set.add(`${path.posix.dirname(a.path)}/manifest.json`);
      }
      if (state === 'success') {
        assert.ok(arts.length === 2 && arts.every((a) => a.state === 'success' && a.sha256 === arts[0].sha256), say(`success backup ${b.id} has every copy stored and identical: ${JSON.stringify(arts)}`));
        goodBackups.push({ ...b, artifacts: arts });
      }
    }
    // Storage: nothing but committed copies and their manifests.
    assert.deepEqual(local.map((o) => o.key).filter((k) => !expected.local.has(k)), [], say('local destination holds only listed copies and their manifests (no partial file, no orphan)'));
    assert.deepEqual(remote.map((o) => o.key).filter((k) => !expected.offsite.has(k)), [], say('S3 holds only listed copies and their manifests'));
    for (const set of Object.values(expected)) for (const k of set) assert.ok([...local, ...remote].some((o) => o.key === k), say(`${k} is stored`));
    assert.deepEqual(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`)), [], say('no unfinished multipart upload'));

    // Restores: a success equals its source; anything else left no database.
    for (const r of restoredNames) {
      const branch = restoreStates.get(r.name);
      // Recovery fails the restore first, then drops the database it had created.
      const exists = branch.restore.state === 'success' ? true : await until('its database to be dropped', async () => ((await databaseExists(sources[r.db].kind, r.name)) ? undefined : false), 10_000, 100).catch(() => true);
      if (branch.restore.state === 'success') {
        assert.deepEqual(await fingerprintsOf(sources[r.db].kind, r.name), sources[r.db].fingerprints, say(`restored ${r.name} equals its source`));
      } else {
        assert.equal(branch.restore.state, 'failed', say(`restore ${r.name}: ${JSON.stringify(branch.restore)}`));
        assert.equal(exists, false, say(`the failed restore ${r.name} (${branch.restore.error}) left its database behind; what the processes logged about it:\n${logsAbout(branch.restore.id).join('\n')}`));
      }
    }

    // A sample of the good backups made during the kills decrypts with the stock tools and restores row for row.
    for (const db of ['shop', 'crm'] as const) {
      const made = goodBackups.filter((b) => b.db === db && b.id !== base[db]);
      const sample = made.length ? pick(made) : goodBackups.find((b) => b.db === db)!;
      const copy = sample.artifacts.find((a) => a.destination === 'local');
      const plain = execFileSync('sh', ['-c', 'age -d -i "$1" "$2" | zstd -d -c | head -c 5', 'sh', cluster.identityFile, path.join(cluster.serve.dataDir, 'backups', copy.path)]);
      assert.match(plain.toString('latin1'), db === 'shop' ? /^PGDMP$/ : /^(--|\/\*)/, say('the local copy decrypts with age and zstd'));
      const name = uniqueName(`sbx_kl_s${db[0]}`);
      restoredNames.push({ db, name });
      await startRestore(cluster, dbPath(db), sample.id, name);
      const branch = await waitForRestoreOf(cluster, dbPath(db), name, 120_000);
      assert.equal(branch.restore.state, 'success', say(`restore of ${sample.id}: ${branch.restore.error}`));
      assert.deepEqual(await fingerprintsOf(sources[db].kind, name), sources[db].fingerprints, say(`restore of ${sample.id} equals its source`));
    }

    // No tool outlives the kills, no temporary file stays.
    const names = [sources.shop.name, sources.crm.name, ...restoredNames.map((r) => r.name)];
    const survivors = () => names.flatMap((n) => processesMentioning(n)).map(describeProcess);
    await until('orphaned dump and restore tools to exit', async () => (survivors().length === 0 ? true : undefined), 60_000).catch((e) => {
      throw new Error(say(`${e.message}; still running:\n${survivors().join('\n')}`));
    });
    for (const p of cluster.processes) {
      const tmp = path.join(p.dataDir, 'tmp');
      assert.deepEqual(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], say(`no temporary file left in ${p.name}'s data dir`));
    }
  });
});
