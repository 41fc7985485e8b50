/**
 * Parallel dump and restore of PostgreSQL (`jobs: N`, issue 14): a nasty database with many
 * more tables dumped with jobs: 4 (parts of one snapshot), restored with jobs: 4, and
 * compared with the source by our own queries (helpers/nasty.ts: every object, every byte,
 * sequence positions, large objects), by full verification (digests recorded per part),
 * through the tar download with stock `sha256sum`, and by hand with the README's commands.
 * A part that fails mid-way fails the backup with its reason and leaves no part behind;
 * single-stream backups stay exactly as they were.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { api, registerBranch, startServer, until, waitForBackup, waitForRestore, waitForVerification, type TestServer } from '../helpers/server.js';
import { dropDatabase, pgIdent, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { readableArtifacts } from '../../src/jobs/artifacts.js';
import { assertSameLines, createPgNasty, createPgRoles, dataDiff, dropPgRoles, pgData, pgInventory } from '../helpers/nasty.js';
import { untar } from '../helpers/tar.js';

const BIG_ROWS = 400_000;
/** A parallel backup's folder with jobs: 4 (the default organization encrypts with age). */
const PART_FILES = ['00-pre-data.pgdump.zst.age', '01-data.pgdump.zst.age', '02-data.pgdump.zst.age', '03-data.pgdump.zst.age', '04-data.pgdump.zst.age', '05-post-data.pgdump.zst.age', 'SHA256SUMS', 'manifest.json'];

describe('PostgreSQL: parallel dump and restore (jobs: 4)', () => {
  let server: TestServer;
  const roles = { owner: uniqueName('sbx_par_own'), reader: uniqueName('sbx_par_read') };
  const source = uniqueName('sbx_par_pg');
  const databases: string[] = [source];
  const dbPath = '/v1/organizations/default/databases/parallel-pg';
  let branchPath: string;
  let inventory: string[];
  let data: Record<string, string>;
  let parallel: any;

  before(async () => {
    await createPgRoles([roles.owner, roles.reader]);
    await createPgNasty(source, roles);
    // Many more tables of very different sizes, in several schemas, with serials, identities,
    // foreign keys across parts and names that need quoting in pg_dump's --table patterns.
    await withPgClient(pgUrl(source), async (c) => {
      await c.query('SET search_path = public');
      await c.query(`CREATE SCHEMA "Part*Schema?"`);
      await c.query(`CREATE TABLE public.big (id bigserial PRIMARY KEY, payload text NOT NULL, n int)`);
      await c.query(`INSERT INTO public.big (payload, n) SELECT md5(g::text) || repeat('x', g % 50), g FROM generate_series(1, ${BIG_ROWS}) g`);
      await c.query(`CREATE INDEX big_n ON public.big (n)`);
      for (let i = 0; i < 30; i++) {
        const schema = i % 3 === 0 ? '"Part*Schema?"' : 'public';
        const name = pgIdent(i % 5 === 0 ? `t.${i} "q" *` : `t${i}`);
        await c.query(`CREATE TABLE ${schema}.${name} (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, big_id bigint REFERENCES public.big (id), v text, s serial)`);
        await c.query(`INSERT INTO ${schema}.${name} (big_id, v) SELECT g, 'row ' || g || ' of ${i}' FROM generate_series(1, ${(i + 1) * 97}) g`);
      }
    });
    inventory = await pgInventory(pgUrl(source));
    data = await pgData(pgUrl(source));
    server = await startServer();
    branchPath = await registerBranch(server, 'default', 'parallel-pg', 'postgresql', 'main', pgUrl(source));
  });
  after(async () => {
    await server?.close();
    for (const name of databases) await dropDatabase('postgresql', name);
    await dropPgRoles([roles.owner, roles.reader]);
  });

  test('jobs: 4 stores pre-data, the data parts and post-data of one snapshot; the copy lists its parts', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, { jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    parallel = await waitForBackup(server, branchPath, r.body.id, 180_000);
    assert.equal(parallel.state, 'success', JSON.stringify(parallel));
    const arts = await api(server, 'GET', `${branchPath}/backups/${parallel.id}/artifacts`);
    assert.equal(arts.body.data.length, 1);
    const a = arts.body.data[0];
    assert.equal(a.state, 'success');
    assert.match(a.path, /\/SHA256SUMS$/);
    assert.equal(a.parts, 6, 'pre-data, four data parts, post-data');
    const folder = path.join(server.dataDir, 'backups', path.dirname(a.path));
    const files = fs.readdirSync(folder).sort();
    assert.deepEqual(files, PART_FILES);
    // Stock tools check the parts against SHA256SUMS, whose sha256 is the backup's.
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: folder });
    const sums = fs.readFileSync(path.join(folder, 'SHA256SUMS'));
    assert.equal(execFileSync('sha256sum', { input: sums }).toString().split(' ')[0], a.sha256);
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    assert.equal(manifest.jobs, 4);
    assert.equal(manifest.parts.length, 6);
    // Every table's rows are in exactly one data part, counted.
    const listed = manifest.parts.flatMap((p: any) => p.tables ?? []);
    const keys = listed.map((t: any) => JSON.stringify([t.schema, t.table]));
    assert.equal(new Set(keys).size, keys.length, 'no table is in two parts');
    assert.equal(listed.find((t: any) => t.table === 'big').rows, BIG_ROWS);
    assert.equal(listed.find((t: any) => t.table === 't.10 "q" *').rows, 11 * 97);
    assert.ok(manifest.parts.filter((p: any) => p.rest).length === 1, 'one part holds sequence values and large objects');
  });

  test('restore with jobs: 4 into a new branch: every object, every byte, as in the source', async () => {
    const name = uniqueName('sbx_par_r');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: parallel.id, jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.jobs, 4);
    const branch = await waitForRestore(server, dbPath, name, 180_000);
    assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
    assertSameLines(await pgInventory(pgUrl(name)), inventory, 'inventories of the source and the parallel copy');
    assert.deepEqual(dataDiff(data, await pgData(pgUrl(name))), [], 'data of the source and the parallel copy');
  });

  test('restore with jobs: 4 and an identity that is not a recipient: fails saying it cannot decrypt, the copy stays good', async () => {
    const keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-par-key-')), 'key.txt');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    const wrong = fs.readFileSync(keyFile, 'utf8');
    fs.rmSync(path.dirname(keyFile), { recursive: true, force: true });
    const name = uniqueName('sbx_par_w');
    databases.push(name);
    const r = await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: parallel.id, jobs: 4, age_identity: wrong });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const branch = await waitForRestore(server, dbPath, name, 180_000);
    assert.equal(branch.restore.state, 'failed');
    assert.match(branch.restore.error, /cannot decrypt the backup: no identity matches .*is intact/);
    assert.ok(!branch.restore.error.includes('AGE-SECRET-KEY'), branch.restore.error);
    const arts = (await api(server, 'GET', `${branchPath}/backups/${parallel.id}/artifacts`)).body.data;
    assert.deepEqual(arts.map((a: any) => a.state), ['success'], 'the copy is not taken for damaged');
  });

  test('full and quick verification pass: digests recorded per part match a restored copy', async () => {
    const backupPath = `${branchPath}/backups/${parallel.id}`;
    const quick = await api(server, 'POST', `${backupPath}/verify`, {});
    assert.equal(quick.status, 202, JSON.stringify(quick.body));
    assert.equal((await waitForVerification(server, backupPath, quick.body.id, 180_000)).state, 'success');
    const full = await api(server, 'POST', `${backupPath}/verify`, { restore: true });
    assert.equal(full.status, 202, JSON.stringify(full.body));
    const v = await waitForVerification(server, backupPath, full.body.id, 180_000);
    assert.equal(v.state, 'success', JSON.stringify(v));
  });

  test('the download is a tar of the parts, SHA256SUMS and the manifest; the README commands restore it without Strongbox', async () => {
    const res = await fetch(`${server.url}${branchPath}/backups/${parallel.id}/download`, { headers: { authorization: server.token } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-tar');
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, Number(res.headers.get('content-length')));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-par-tar-'));
    const name = uniqueName('sbx_par_hand');
    databases.push(name);
    try {
      const files = untar(body);
      assert.deepEqual([...files.keys()].map((k) => k.split('/')[1]).sort(), PART_FILES);
      // As the README says: tar xf, sha256sum -c, zstd -d, then pg_restore part by part.
      fs.writeFileSync(path.join(dir, 'b.tar'), body);
      execFileSync('tar', ['xf', 'b.tar'], { cwd: dir });
      const folder = path.join(dir, parallel.id);
      execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: folder });
      const org = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
      const identity = `${server.dataDir}/age/${org.id}.key`;
      const script = `set -e
for f in *.pgdump.zst.age; do age -d -i '${identity}' "$f" | zstd -q -d > "\${f%.zst.age}"; done
createdb -h 127.0.0.1 -U postgres ${name}
pg_restore -h 127.0.0.1 -U postgres -d ${name} --no-owner --no-acl --exit-on-error 00-pre-data.pgdump
for f in [0-9][0-9]-data.pgdump; do pg_restore -h 127.0.0.1 -U postgres -d ${name} --data-only --exit-on-error "$f" & done; wait
pg_restore -h 127.0.0.1 -U postgres -d ${name} --no-owner --no-acl --exit-on-error -j 4 *-post-data.pgdump
`;
      execFileSync('bash', ['-c', script], { cwd: folder, stdio: 'pipe' });
      assert.deepEqual(dataDiff(data, await pgData(pgUrl(name))), ['"public"."word_order"', '"public"."words"'], 'by hand, only the sort order of the server default collation differs (as for the stock tools)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a single-stream backup is unchanged: one dump object, no parts', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const b = await waitForBackup(server, branchPath, r.body.id, 180_000);
    assert.equal(b.state, 'success', JSON.stringify(b));
    const a = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data[0];
    assert.match(a.path, /\/dump\.pgdump\.zst\.age$/);
    assert.equal(a.parts, null);
    // The same database in parts or in one stream: the same contents (digests per table, objects).
    const single = await server.ctx.db.selectFrom('backup_contents').selectAll().where('backup_id', '=', b.id).executeTakeFirstOrThrow();
    const parts = await server.ctx.db.selectFrom('backup_contents').selectAll().where('backup_id', '=', parallel.id).executeTakeFirstOrThrow();
    const norm = (json: string) => {
      const c = JSON.parse(json);
      const key = (x: any) => JSON.stringify(x);
      return { tables: c.tables.map(key).sort(), objects: c.objects.map(key).sort(), large_objects: c.large_objects };
    };
    assert.deepEqual(norm(parts.contents), norm(single.contents));
  });

  test('the branch option: jobs on PATCH makes its backups parallel; bad values are 4xx', async () => {
    for (const jobs of [0, 17, 2.5, 'four']) {
      const bad = await api(server, 'PATCH', branchPath, { jobs });
      assert.ok(bad.status >= 400 && bad.status < 500, `${jobs}: ${bad.status}`);
      const badBackup = await api(server, 'POST', `${branchPath}/backups`, { jobs });
      assert.ok(badBackup.status >= 400 && badBackup.status < 500, `${jobs}: ${badBackup.status}`);
    }
    const p = await api(server, 'PATCH', branchPath, { jobs: 2 });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.jobs, 2);
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    const b = await waitForBackup(server, branchPath, r.body.id, 180_000);
    assert.equal(b.state, 'success', JSON.stringify(b));
    const a = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data[0];
    assert.equal(a.parts, 4, 'pre-data, two data parts, post-data');
    // Overwrite of an existing database is refused for a parallel backup (not one transaction).
    const target = uniqueName('sbx_par_ow');
    databases.push(target);
    await withPgClient(pgUrl('postgres'), (c) => c.query(`CREATE DATABASE ${pgIdent(target)}`));
    const ow = await api(server, 'POST', `${dbPath}/branches`, { name: 'ow', backup_id: b.id, connection_url: pgUrl(target), overwrite: true });
    assert.equal(ow.status, 409, JSON.stringify(ow.body));
    assert.match(ow.body.message, /parallel/);
    // Deleting it removes every part.
    const folder = path.join(server.dataDir, 'backups', path.dirname(a.path));
    assert.equal((await api(server, 'DELETE', `${branchPath}/backups/${b.id}`)).status, 204);
    assert.deepEqual(fs.existsSync(folder) ? fs.readdirSync(folder) : [], []);
    await api(server, 'PATCH', branchPath, { jobs: 1 });
  });

  test('two destinations: one that fails keeps no part, repair copies every part, a damaged part falls back to the other copy, rebuild from storage lists the parts', async () => {
    const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-par-dest-'));
    const flaky = path.join(extra, 'flaky');
    try {
      assert.equal((await api(server, 'POST', '/v1/organizations/default/storage-destinations', { name: 'flaky', provider: 'local', config: { path: flaky } })).status, 201);
      assert.equal((await api(server, 'PATCH', dbPath, { storage_destinations: ['local', 'flaky'] })).status, 200);
      // The destination goes away: its folder becomes a file, so nothing can be written there.
      fs.rmSync(flaky, { recursive: true, force: true });
      fs.writeFileSync(flaky, 'not a folder');
      const b = await waitForBackup(server, branchPath, (await api(server, 'POST', `${branchPath}/backups`, { jobs: 2 })).body.id, 180_000);
      assert.equal(b.state, 'failed');
      let arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
      assert.equal(arts.find((a: any) => a.destination === 'local').state, 'success', 'the good copy is kept');
      assert.equal(arts.find((a: any) => a.destination === 'flaky').state, 'failed');

      fs.rmSync(flaky);
      const r = await api(server, 'POST', `${branchPath}/backups/${b.id}/repair`);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      await until('repair', async () => {
        const j = await server.ctx.db.selectFrom('jobs').select(['state', 'error']).where('id', '=', r.body.id).executeTakeFirstOrThrow();
        return ['pending', 'running'].includes(j.state) ? undefined : j;
      });
      arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
      assert.deepEqual(arts.map((a: any) => [a.state, a.parts]), [['success', 4], ['success', 4]], JSON.stringify(arts));
      assert.equal((await api(server, 'GET', `${branchPath}/backups/${b.id}`)).body.state, 'success');
      const local = arts.find((a: any) => a.destination === 'local');
      const copied = path.join(flaky, path.dirname(local.path));
      execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: copied });

      // A byte of a data part of the copy a restore reads first changes: it takes the other copy.
      const [first, second] = await readableArtifacts(server.ctx, b.id);
      const folderOf = (a: { destination_name: string; path: string }) => path.join(a.destination_name === 'flaky' ? flaky : path.join(server.dataDir, 'backups'), path.dirname(a.path));
      const part = path.join(folderOf(first), '01-data.pgdump.zst.age');
      const bytes = fs.readFileSync(part);
      bytes[bytes.length - 100] ^= 0xff;
      fs.writeFileSync(part, bytes);
      const name = uniqueName('sbx_par_fb');
      databases.push(name);
      assert.equal((await api(server, 'POST', `${dbPath}/branches`, { name, backup_id: b.id, jobs: 2 })).status, 201);
      const branch = await waitForRestore(server, dbPath, name, 180_000);
      assert.equal(branch.restore.state, 'success', JSON.stringify(branch.restore));
      const job = await server.ctx.db.selectFrom('jobs').select('result').where('id', '=', branch.restore.id).executeTakeFirstOrThrow();
      assert.equal(JSON.parse(job.result!).destination, second.destination_name);
      assert.match(JSON.parse(job.result!).problems[0], /01-data/);
      assert.deepEqual(dataDiff(data, await pgData(pgUrl(name))), []);
      // Quick verification names the damaged part.
      const backupPath = `${branchPath}/backups/${b.id}`;
      const quick = await api(server, 'POST', `${backupPath}/verify`, {});
      const v = await waitForVerification(server, backupPath, quick.body.id, 180_000);
      assert.equal(v.state, 'failed');
      assert.match(JSON.stringify(v), /part 01-data\.pgdump\.zst\.age: sha256/);

      // Another catalog, rebuilt from the intact copy's folder alone, knows the backup and its parts.
      const other = await startServer();
      try {
        assert.equal((await api(other, 'POST', '/v1/organizations/default/storage-destinations', { name: 'found', provider: 'local', config: { path: second.destination_name === 'flaky' ? flaky : path.join(server.dataDir, 'backups') } })).status, 201);
        const rb = await api(other, 'POST', '/v1/organizations/default/storage-destinations/found/rebuild');
        assert.equal(rb.status, 200, JSON.stringify(rb.body));
        assert.deepEqual(rb.body.problems, []);
        assert.ok(rb.body.backups_added >= 1, JSON.stringify(rb.body));
        const otherPath = `${dbPath}/branches/main/backups/${b.id}`;
        const found = (await api(other, 'GET', `${otherPath}/artifacts`)).body.data;
        assert.deepEqual(found.map((a: any) => [a.state, a.parts, a.sha256]), [['success', 4, local.sha256]]);
        const q = await api(other, 'POST', `${otherPath}/verify`, {});
        assert.equal((await waitForVerification(other, otherPath, q.body.id, 180_000)).state, 'success');
      } finally {
        await other.close();
      }
    } finally {
      await api(server, 'PATCH', dbPath, { storage_destinations: null });
      fs.rmSync(extra, { recursive: true, force: true });
    }
  });

  test('canceling a parallel backup stops every dump and leaves no part stored', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, { jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await until('the COPY of public.big', async () => {
      const busy = await withPgClient(pgUrl('postgres'), async (c) => {
        const res = await c.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'strongbox' AND query LIKE 'COPY public.big %'`, [source]);
        return res.rows.length > 0;
      });
      return busy ? true : undefined;
    }, 60_000, 10);
    const c = await api(server, 'POST', `${branchPath}/backups/${r.body.id}/cancel`, {});
    assert.equal(c.status, 200, JSON.stringify(c.body));
    const b = await waitForBackup(server, branchPath, r.body.id, 60_000);
    assert.equal(b.state, 'canceled', JSON.stringify(b));
    const arts = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body.data;
    assert.ok(arts.every((a: any) => a.state === 'failed'), JSON.stringify(arts));
    const folder = path.join(server.dataDir, 'backups', path.dirname(arts[0].path));
    assert.deepEqual(fs.existsSync(folder) ? fs.readdirSync(folder) : [], [], 'no part stays in storage');
    await until('no dump left running', async () => {
      const left = await withPgClient(pgUrl('postgres'), async (cl) => (await cl.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'strongbox'`, [source])).rows.length);
      return left === 0 ? true : undefined;
    }, 30_000);
  });

  test('a part that fails mid-way fails the backup with its reason, stops the others and leaves no part stored', async () => {
    const r = await api(server, 'POST', `${branchPath}/backups`, { jobs: 4 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // The pg_dump copying the big table is ended by the server while it streams.
    await until('the COPY of public.big', async () => {
      const killed = await withPgClient(pgUrl('postgres'), async (c) => {
        const res = await c.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
            WHERE datname = $1 AND application_name = 'strongbox' AND query LIKE 'COPY public.big %'`,
          [source],
        );
        return res.rows.some((x) => x.ok);
      });
      return killed ? true : undefined;
    }, 60_000, 10);
    const b = await waitForBackup(server, branchPath, r.body.id, 180_000);
    assert.equal(b.state, 'failed', JSON.stringify(b));
    const why = (await api(server, 'GET', `${branchPath}/backups/${b.id}/artifacts`)).body;
    assert.match(why.backup_error, /part \d\d-data \(public\.big.*\) failed: pg_dump \(data\)/, why.backup_error);
    assert.ok(why.data.every((a: any) => a.state === 'failed'), JSON.stringify(why.data));
    const folder = path.join(server.dataDir, 'backups', path.dirname(why.data[0].path));
    assert.deepEqual(fs.existsSync(folder) ? fs.readdirSync(folder) : [], [], 'no part stays in storage');
    const restore = await api(server, 'POST', `${dbPath}/branches`, { name: 'from-failed', backup_id: b.id });
    assert.equal(restore.status, 409, 'nothing of it can be restored');
  });
});
