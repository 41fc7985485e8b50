/**
 * The `strongbox` command as a newcomer meets it: `serve` on a fresh data dir prints an
 * admin token once and saves it 0600; the client commands register a database, take a
 * backup with live progress, list it and download it with its checksum verified.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createPgFixture, dropDatabase, pgUrl, uniqueName } from './helpers/databases.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const main = path.join(root, 'src/main.ts');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('strongbox CLI', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-cli-'));
  const source = uniqueName('sbx_cli');
  let server: ChildProcess;
  let out = '';
  let env: NodeJS.ProcessEnv;
  let restored = '';

  const cli = (args: string[], extraEnv: Record<string, string> = {}, input?: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { cwd: root, env: { ...env, ...extraEnv }, input, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  before(async () => {
    await createPgFixture(source);
    const port = await freePort();
    env = { ...process.env, STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_LOG_LEVEL: 'warn' };
    delete env.STRONGBOX_TOKEN;
    delete env.STRONGBOX_BOOTSTRAP_TOKEN;
    server = spawn(process.execPath, ['--import', 'tsx', main, 'serve'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (out += d));
    server.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`server did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    await dropDatabase('postgresql', source);
    if (restored) await dropDatabase('postgresql', restored);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('first start prints an admin token once and saves it with mode 0600', () => {
    const file = path.join(dataDir, 'bootstrap-token');
    const token = fs.readFileSync(file, 'utf8').trim();
    assert.match(token, /^[a-z0-9]+:sbx_[A-Za-z0-9_-]+$/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(out.includes(token), 'printed on first start');
    assert.equal(fs.statSync(path.join(dataDir, 'secret.key')).mode & 0o777, 0o600);
  });

  test('database add, branch add (URL from stdin, never argv), backup create --wait, list, download', () => {
    let r = cli(['database', 'add', 'default/shop', '--kind', 'postgresql']);
    assert.equal(r.status, 0, r.stderr);
    r = cli(['branch', 'add', 'default/shop/main'], {}, pgUrl(source));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /branch main id \w+: postgresql 1\d/);

    r = cli(['backup', 'create', 'default/shop/main', '--retention', '2w', '--wait']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /backup (\w+) queued/);
    // Progress goes to stderr (stdout is for results), as plain lines when not on a terminal.
    assert.match(r.stderr, /[\d.]+ (B|KiB|MiB) read\s+[\d.]+ (B|KiB|MiB) stored\s+[\d.]+ (B|KiB|MiB)\/s/, 'progress shows bytes and rate');
    assert.match(r.stdout, /: success, [\d.]+ (B|KiB|MiB) stored/);
    const id = /backup (\w+) queued/.exec(r.stdout)![1];

    r = cli(['backup', 'list', 'default/shop/main']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${id}\\s+\\S+\\s+success`));

    const target = path.join(dataDir, 'download.pgdump.zst');
    r = cli(['backup', 'download', 'default/shop/main', id, '-o', target]);
    assert.equal(r.status, 0, r.stderr);
    const sha = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex');
    assert.match(r.stdout, new RegExp(`sha256 ${sha}, verified`));

    r = cli(['backup', 'get', 'default/shop/main', id, '--json']);
    assert.equal(JSON.parse(r.stdout).artifacts[0].sha256, sha);

    r = cli(['backup', 'verify', 'default/shop/main', id, '--full', '--wait']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /local: ok/);
    assert.match(r.stdout, /row counts match/);
    assert.match(r.stdout, /verification passed/);

    restored = uniqueName('sbx_cli_rs');
    r = cli(['restore', `default/shop/${restored}`, '--backup', id, '--wait']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /restore succeeded/);
    assert.match(r.stderr, /of [\d.]+ (B|KiB|MiB) read/, 'restore progress shows bytes');
    assert.doesNotMatch(r.stderr, /0 B of 0 B/, 'no total before the restore knows it');

    assert.equal(cli(['backup', 'protect', 'default/shop/main', id]).status, 0);
    r = cli(['backup', 'delete', 'default/shop/main', id]);
    assert.equal(r.status, 1, 'the API refused: a failure (2 is for usage errors)');
    assert.match(r.stderr, new RegExp(`409 conflict: this backup is protected; unprotect it first \\(strongbox backup unprotect default/shop/main ${id}\\)`));
    assert.equal(cli(['backup', 'unprotect', 'default/shop/main', id]).status, 0);
    r = cli(['backup', 'delete', 'default/shop/main', id]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`backup ${id}: deleted`));
  });

  test('client errors are one readable line and a non-zero exit', () => {
    let r = cli(['backup', 'list', 'default/nope/main']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^strongbox: 404 not_found: Database "nope" not found\n$/);
    r = cli(['backup', 'list', 'default/shop/main'], { STRONGBOX_TOKEN: 'abcd:wrongwrongwrongwrong' });
    assert.match(r.stderr, /401 unauthorized/);
    r = cli(['serve'], { STRONGBOX_PORT: 'eighty' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /configuration error: STRONGBOX_PORT: must be a whole number/);
  });
});
