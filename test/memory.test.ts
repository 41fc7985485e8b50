/**
 * Memory stays flat whatever the database size: a server process backing up a database
 * whose dump is several times larger than the allowed growth, to two destinations at
 * once, grows its peak RSS by far less than the dump. (bench/backup.ts does the same on
 * gigabytes and prints the figures.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from './helpers/databases.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;

function peakRss(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('memory', () => {
  const source = uniqueName('sbx_mem');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-mem-'));
  let server: ChildProcess;
  let base = '';
  const token = `memtest1:${crypto.randomBytes(18).toString('base64url')}`;

  const call = async (method: string, url: string, body?: unknown) => {
    const r = await fetch(base + url, { method, headers: { authorization: token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json: any = await r.json();
    if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };

  before(async () => {
    await createDatabase('postgresql', source);
    // ~230 MB of COPY text that compresses about 2:1 (hex digests), built in the server.
    await withPgClient(pgUrl(source), (c) =>
      c.query("create table t as select g as id, md5(g::text) || md5((g*3)::text) || md5(random()::text) as a, md5((g*7)::text) as b from generate_series(1, 1600000) g"),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts'), 'serve'], {
      cwd: root,
      env: { ...process.env, STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token, STRONGBOX_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        if (i > 300) throw new Error('server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    await dropDatabase('postgresql', source);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('backing up a 200+ MB dump to two destinations grows peak RSS by less than 100 MB', async () => {
    await call('POST', '/v1/organizations/default/storage-destinations', { name: 'second', provider: 'local', config: { path: path.join(dataDir, 'backups', 'second') } });
    await call('POST', '/v1/organizations/default/databases', { name: 'big', kind: 'postgresql' });
    await call('PATCH', '/v1/organizations/default/databases/big', { storage_destinations: ['local', 'second'] });
    await call('POST', '/v1/organizations/default/databases/big/branches', { name: 'main', connection_url: pgUrl(source) });
    const idle = peakRss(server.pid!);
    const branch = '/v1/organizations/default/databases/big/branches/main/backups';
    const b = await call('POST', branch, {});
    let done: any;
    for (;;) {
      done = await call('GET', `${branch}/${b.id}`);
      if (done.state !== 'pending' && done.state !== 'running') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(done.state, 'success');
    const progress = await call('GET', `${branch}/${b.id}/progress`);
    const growth = peakRss(server.pid!) - idle;
    console.log(`dumped ${(progress.bytes_read / MiB).toFixed(0)} MiB, stored 2 x ${(done.size / MiB).toFixed(0)} MiB, peak RSS +${(growth / MiB).toFixed(0)} MiB`);
    assert.ok(progress.bytes_read > 200 * MiB, 'the dump is larger than the bound, so buffering it would show');
    assert.ok(growth < 100 * MiB, `peak RSS grew by ${(growth / MiB).toFixed(0)} MiB`);
  });
});
