/**
 * Picking the dump client that matches a server, on this machine's real installation
 * plus a directory of stand-in clients that report other versions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../src/engines/index.js';
import { parseServerVersion } from '../../src/engines/mysql/index.js';
import {
  installedPgClients,
  parseClientMajor,
  pickPgClient,
  serverMajorFromVersionNum,
} from '../../src/engines/postgres/clients.js';

describe('version parsing', () => {
  test('pg_dump --version lines', () => {
    assert.equal(parseClientMajor('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)'), 15);
    assert.equal(parseClientMajor('pg_dump (PostgreSQL) 17.0'), 17);
    assert.equal(parseClientMajor('pg_dump (PostgreSQL) 9.6.24'), 9.6);
    assert.equal(parseClientMajor('pg_dump (PostgreSQL) 18beta1'), 18);
    assert.equal(parseClientMajor('something else'), null);
  });

  test('server_version_num', () => {
    assert.equal(serverMajorFromVersionNum(150020), 15);
    assert.equal(serverMajorFromVersionNum(170000), 17);
    assert.equal(serverMajorFromVersionNum(90624), 9.6);
  });

  test('MySQL and MariaDB VERSION()', () => {
    assert.deepEqual(parseServerVersion('10.11.19-MariaDB-0+deb12u1'), { version: '10.11.19-MariaDB', major: 10 });
    assert.deepEqual(parseServerVersion('11.4.2-MariaDB'), { version: '11.4.2-MariaDB', major: 11 });
    assert.deepEqual(parseServerVersion('8.0.36'), { version: '8.0.36', major: 8 });
    assert.deepEqual(parseServerVersion('8.0.36-0ubuntu0.22.04.1'), { version: '8.0.36', major: 8 });
  });
});

describe('pickPgClient', () => {
  let fakeRoot: string;
  const savedDirs = process.env.STRONGBOX_PG_BIN_DIRS;

  /** A directory with a pg_dump/pg_restore pair that claims to be version `version`. */
  async function fakeClient(version: string): Promise<string> {
    const dir = join(fakeRoot, version);
    await mkdir(dir);
    for (const tool of ['pg_dump', 'pg_restore']) {
      const path = join(dir, tool);
      await writeFile(path, `#!${process.execPath}\nconsole.log('${tool} (PostgreSQL) ${version}');\n`);
      await chmod(path, 0o755);
    }
    return dir;
  }

  before(async () => {
    fakeRoot = await mkdtemp(join(tmpdir(), 'sbx-pgclients-'));
  });

  after(async () => {
    if (savedDirs === undefined) delete process.env.STRONGBOX_PG_BIN_DIRS;
    else process.env.STRONGBOX_PG_BIN_DIRS = savedDirs;
    await rm(fakeRoot, { recursive: true, force: true });
  });

  test('finds the real client of this machine, not the Debian wrapper', async () => {
    delete process.env.STRONGBOX_PG_BIN_DIRS;
    const clients = await installedPgClients();
    assert.ok(clients.length > 0, 'no pg_dump installed');
    for (const c of clients) assert.notEqual(c.pgDump, '/usr/bin/pg_dump');
    const chosen = await pickPgClient(clients[0].major);
    assert.equal(chosen.major, clients[0].major);
    assert.match(chosen.pgRestore, /\/pg_restore$/);
    assert.equal(chosen.pgRestore.replace(/pg_restore$/, ''), chosen.pgDump.replace(/pg_dump$/, ''));
  });

  test('names the missing version and the package to install', async () => {
    delete process.env.STRONGBOX_PG_BIN_DIRS;
    const have = [...new Set((await installedPgClients()).map((c) => c.major))].join(', ');
    const newest = Math.max(...(await installedPgClients()).map((c) => c.major));
    const wanted = newest + 1;
    await assert.rejects(pickPgClient(wanted), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.message, `no pg_dump >= ${wanted} found (have: ${have}); install postgresql-client-${wanted}`);
      return true;
    });
  });

  test('prefers the newest client that is at least the server version, from STRONGBOX_PG_BIN_DIRS too', async () => {
    const v14 = await fakeClient('14.1');
    const v99 = await fakeClient('99.3');
    process.env.STRONGBOX_PG_BIN_DIRS = `${v14}:${v99}`;
    const chosen = await pickPgClient(16);
    assert.equal(chosen.pgDump, join(v99, 'pg_dump'));
    assert.equal(chosen.pgRestore, join(v99, 'pg_restore'));
    assert.equal(chosen.versionLine, 'pg_dump (PostgreSQL) 99.3');
    // With the server unknown, the newest.
    assert.equal((await pickPgClient(null)).major, 99);
  });

  test('skips a directory without pg_restore', async () => {
    const dir = join(fakeRoot, 'dump-only');
    await mkdir(dir);
    await writeFile(join(dir, 'pg_dump'), `#!${process.execPath}\nconsole.log('pg_dump (PostgreSQL) 120.0');\n`);
    await chmod(join(dir, 'pg_dump'), 0o755);
    process.env.STRONGBOX_PG_BIN_DIRS = dir;
    const clients = await installedPgClients();
    assert.ok(clients.every((c) => !c.pgDump.startsWith(dir)));
  });
});
