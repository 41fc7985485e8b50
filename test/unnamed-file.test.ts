/**
 * Files with no name (src/unnamed-file.ts): a request's age identity, and the table of
 * contents a parallel restore hands to pg_restore, never have a name on disk while they
 * hold their content, other processes read them through /proc while we hold them, and a
 * process killed with -9 leaves nothing behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { sweepLeftovers, unnamedFile } from '../src/unnamed-file.js';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-unnamed-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function keygen(): { identity: string; recipient: string } {
  const out = spawnSync('age-keygen', { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return { identity: out.stdout.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!, recipient: /public key: (age1\S+)/.exec(out.stdout + out.stderr)![1] };
}

test('age decrypts with an identity that has no name on disk, and the file is gone once closed', () => {
  const key = keygen();
  const tmp = path.join(dir, 'tmp-age');
  const secret = Buffer.from('the rows of a backup\n'.repeat(1000));
  const sealed = spawnSync('age', ['-r', key.recipient], { input: secret });
  assert.equal(sealed.status, 0, String(sealed.stderr));

  const file = unnamedFile(tmp, key.identity + '\n');
  assert.match(file.path, new RegExp(`^/proc/${process.pid}/fd/\\d+$`));
  assert.deepEqual(fs.readdirSync(tmp), [], 'no name in the folder while the key is in use');
  for (const round of [1, 2]) {
    // Each reader opens it afresh, from the start (a parallel restore runs one age per part).
    const plain = spawnSync('age', ['-d', '-i', file.path], { input: sealed.stdout });
    assert.equal(plain.status, 0, `round ${round}: ${String(plain.stderr)}`);
    assert.ok(Buffer.from(plain.stdout).equals(secret));
  }
  const target = fs.readlinkSync(file.path);
  assert.match(target, /\(deleted\)$/, 'the kernel knows it as a deleted file');
  file.close();
  file.close(); // twice is harmless
  assert.deepEqual(fs.readdirSync(tmp), []);
});

test('a process killed with -9 while it holds an unnamed file leaves nothing in the folder', async () => {
  const tmp = path.join(dir, 'tmp-kill');
  const script = `
    const { unnamedFile } = await import(${JSON.stringify(path.resolve(import.meta.dirname, '../src/unnamed-file.ts'))});
    const f = unnamedFile(${JSON.stringify(tmp)}, 'AGE-SECRET-KEY-1VICTIM\\n');
    process.stdout.write(f.path + '\\n');
    setInterval(() => {}, 1000);
  `;
  const victim = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => victim.once('exit', r));
  const proc = await new Promise<string>((resolve, reject) => {
    let out = '';
    victim.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    victim.once('exit', (code) => reject(new Error(`the victim exited (${code}) before it made its file`)));
  });
  assert.equal(fs.readFileSync(proc, 'utf8'), 'AGE-SECRET-KEY-1VICTIM\n', 'another process reads it while its holder lives');
  assert.deepEqual(fs.readdirSync(tmp), []);
  victim.kill('SIGKILL');
  await exited;
  assert.deepEqual(fs.readdirSync(tmp), [], 'nothing left after kill -9');
  assert.throws(() => fs.readFileSync(proc), /ENOENT/);
});

test('the sweep at start removes what dead processes left (names, gate folders) and old named identity files, nothing else', () => {
  const tmp = path.join(dir, 'tmp-sweep');
  fs.mkdirSync(tmp);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  assert.ok(!fs.existsSync(`/proc/${deadPid}`));
  const files = {
    deadUnnamed: `.unnamed-${deadPid}-0123abcd`,
    liveUnnamed: `.unnamed-${process.ppid}-0123abcd`, // our parent: alive, maybe mid-create
    ownUnnamed: `.unnamed-${process.pid}-0123abcd`,
    oldIdentity: 'identity-00112233aabbccdd.key',
    youngIdentity: 'identity-44556677aabbccdd.key',
    other: 'restore-something.dat',
  };
  for (const name of Object.values(files)) fs.writeFileSync(path.join(tmp, name), 'x', { mode: 0o600 });
  // A parallel MariaDB dump's start gate: a private folder holding a FIFO.
  const deadGate = `gate-${deadPid}-Ab12Cd`;
  const liveGate = `gate-${process.ppid}-Ef34Gh`;
  for (const g of [deadGate, liveGate]) {
    fs.mkdirSync(path.join(tmp, g));
    assert.equal(spawnSync('mkfifo', [path.join(tmp, g, 'options.cnf')]).status, 0);
  }
  const old = new Date(Date.now() - 5 * 60_000);
  fs.utimesSync(path.join(tmp, files.oldIdentity), old, old);
  fs.utimesSync(path.join(tmp, files.other), old, old);
  assert.deepEqual(sweepLeftovers(tmp).sort(), [files.deadUnnamed, files.oldIdentity, deadGate].sort());
  assert.deepEqual(fs.readdirSync(tmp).sort(), [files.liveUnnamed, files.ownUnnamed, files.youngIdentity, files.other, liveGate].sort());
  assert.deepEqual(sweepLeftovers(path.join(dir, 'no-such-folder')), []);
});
