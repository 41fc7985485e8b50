/**
 * The foundation's promise, end to end through the HTTP API: back up a real PostgreSQL
 * and a real MariaDB database, download the artifact, check its sha256, restore it with
 * the stock tools (pg_restore / mariadb) into a fresh database and compare every table.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { api, registerBranch, startServer, waitForBackup, type TestServer } from '../helpers/server.js';
import { assertMatches, createBackupSchema, listBackupsSchema } from '../helpers/reference.js';
import { recipientFingerprint } from '../../src/encryption.js';
import { createMysqlFixture, createPgFixture, dropDatabase, mysqlUrl, objectNames, pgUrl, tableFingerprints, uniqueName } from '../helpers/databases.js';

async function download(server: TestServer, branchPath: string, id: string): Promise<{ bytes: Buffer; sha: string | null }> {
  const res = await fetch(`${server.url}${branchPath}/backups/${id}/download`, { headers: { authorization: server.token } });
  assert.equal(res.status, 200);
  return { bytes: Buffer.from(await res.arrayBuffer()), sha: res.headers.get('x-checksum-sha256') };
}

function run(cmd: string, args: string[], input?: Buffer, env: Record<string, string> = {}): Buffer {
  const r = spawnSync(cmd, args, { input, env: { ...process.env, ...env }, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`);
  return r.stdout;
}

for (const kind of ['postgresql', 'mysql'] as const) {
  describe(`${kind}: backup through the API and restore with the stock tools`, () => {
    let server: TestServer;
    const source = uniqueName('sbx_rt_src');
    const target = uniqueName('sbx_rt_dst');

    before(async () => {
      server = await startServer();
      if (kind === 'postgresql') await createPgFixture(source);
      else await createMysqlFixture(source);
    });
    after(async () => {
      await server?.close();
      await dropDatabase(kind, source);
      await dropDatabase(kind, target);
    });

    test('a backup restores to identical tables, views and functions', async () => {
      const url = kind === 'postgresql' ? pgUrl(source) : mysqlUrl(source);
      const branchPath = await registerBranch(server, 'default', 'shop', kind, 'main', url, true);

      const created = await api(server, 'POST', `${branchPath}/backups`, { name: 'first', retention_value: 3, retention_unit: 'day' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assertMatches(createBackupSchema(), created.body, 'create_backup response');
      assert.equal(created.body.state, 'pending');
      assert.equal(created.body.name, 'first');
      assert.equal(created.body.required, false);
      assert.equal(created.body.database_branch.name, 'main');
      assert.ok(created.body.actor && created.body.actor.display_name === 'bootstrap');

      const done = await waitForBackup(server, branchPath, created.body.id);
      assert.equal(done.state, 'success', JSON.stringify(done));
      assert.ok(done.size > 0 && done.pvc_size > 0 && done.started_at && done.completed_at);
      assert.ok(done.estimated_storage_cost >= 0);
      // expires_at = completion + 3 days
      assert.equal(Date.parse(done.expires_at) - Date.parse(done.completed_at), 3 * 86_400_000);

      const list = await api(server, 'GET', `${branchPath}/backups`);
      assertMatches(listBackupsSchema(), list.body, 'list_backups response');

      const arts = await api(server, 'GET', `${branchPath}/backups/${done.id}/artifacts`);
      assert.equal(arts.status, 200);
      assert.equal(arts.body.data.length, 1);
      const artifact = arts.body.data[0];
      assert.equal(artifact.state, 'success');
      assert.equal(artifact.provider, 'local');
      assert.equal(artifact.size, done.size);

      const { bytes, sha } = await download(server, branchPath, done.id);
      const actual = crypto.createHash('sha256').update(bytes).digest('hex');
      assert.equal(sha, actual, 'the X-Checksum-Sha256 header matches the bytes');
      assert.equal(artifact.sha256, actual, 'the catalog sha256 matches the bytes');
      assert.equal(bytes.length, done.size);

      // Encrypted at rest, and readable with nothing but the stock tools: age, then zstd.
      assert.equal(bytes.subarray(0, 21).toString(), 'age-encryption.org/v1');
      const org = await server.ctx.db.selectFrom('organizations').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
      const identity = `${server.dataDir}/age/${org.id}.key`;
      const compressed = run('age', ['-d', '-i', identity], bytes);
      const raw = run('zstd', ['-d', '-q', '-c'], compressed);
      if (kind === 'postgresql') {
        assert.equal(raw.subarray(0, 5).toString(), 'PGDMP', 'a pg_dump custom-format archive');
        run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-c', `create database "${target}"`]);
        run('pg_restore', ['--no-owner', '--no-acl', '--exit-on-error', '-h', '127.0.0.1', '-U', 'postgres', '-d', target], raw);
      } else {
        run('mariadb', ['-h', '127.0.0.1', '-u', 'root', '-e', `create database \`${target}\``]);
        run('mariadb', ['-h', '127.0.0.1', '-u', 'root', target], raw);
      }
      const targetUrl = kind === 'postgresql' ? pgUrl(target) : mysqlUrl(target);
      const before = await tableFingerprints(kind, url);
      const afterRestore = await tableFingerprints(kind, targetUrl);
      assert.ok(Object.keys(before).length >= 3, 'the fixture has several tables');
      assert.deepEqual(afterRestore, before, 'every table has the same rows and checksums');
      assert.deepEqual(await objectNames(kind, targetUrl), await objectNames(kind, url), 'views and routines survived');

      // The manifest sits beside the dump and agrees with the catalog.
      const manifestPath = `${server.dataDir}/backups/${artifact.path.replace(/[^/]+$/, 'manifest.json')}`;
      const { readFileSync } = await import('node:fs');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
      assert.equal(manifest.backup_id, done.id);
      assert.equal(manifest.sha256, actual);
      assert.equal(manifest.size, done.size);
      assert.equal(manifest.engine, kind);
      assert.equal(manifest.encryption.format, 'age');
      assert.deepEqual(manifest.encryption.recipients, JSON.parse(org.encryption_recipients!).map((r: string) => recipientFingerprint(r)));
      assert.ok(!JSON.stringify(manifest).includes('AGE-SECRET-KEY'), 'no key in the manifest');
      assert.ok(!JSON.stringify(manifest).includes(JSON.parse(org.encryption_recipients!)[0]), 'fingerprints, not the keys themselves');
      assert.ok(manifest.server_version && manifest.client_version);
      // Row counts read off the dump stream equal an exact count(*) of every table.
      const { engineFor, parseConnectionUrl } = await import('../../src/engines/index.js');
      assert.deepEqual(manifest.table_row_counts, await engineFor(kind).tableRowCounts(parseConnectionUrl(url).info));
      assert.ok(Object.keys(manifest.table_row_counts).length >= 3);
    });
  });
}
