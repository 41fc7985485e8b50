/**
 * The spawner thread (src/pipeline/spawner.ts): processes started off the event loop behave
 * as Node's own child processes do for a pipeline, and a missing tool is named.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fifosAside, spawnAside, type PipelineProcess } from '../../src/pipeline/spawner.js';
import { StoreError, storeStream } from '../../src/pipeline/store.js';
import { childProcesses, collector } from './helpers.js';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-spawner-test-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Everything a child said on a stream of ours, and how it ended ('close' comes last, as Node's). */
function finish(child: PipelineProcess): Promise<{ out: string; err: string; code: number | null; signal: string | null; events: string[] }> {
  const events: string[] = [];
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout?.on('close', () => events.push('stdout closed'));
  child.on('exit', () => events.push('exit'));
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ out, err, code, signal, events: [...events, 'close'] })));
}

describe('spawnAside', () => {
  test('stdin, stdout and stderr are FIFOs read and written here; the exit code and "close" after the output', async () => {
    const [a, b, c] = await fifosAside(3);
    const child = await spawnAside('sh', ['-c', 'tr a-z A-Z; echo oops >&2; exit 3'], [{ fifo: a }, { fifo: b }, { fifo: c }]);
    assert.ok(child.pid! > 0);
    const ended = finish(child);
    child.stdin!.end('hello\n');
    const r = await ended;
    assert.deepEqual([r.out, r.err, r.code, r.signal], ['HELLO\n', 'oops\n', 3, null]);
    assert.equal(r.events.at(-1), 'close');
    assert.ok(r.events.indexOf('exit') < r.events.indexOf('close'));
  });

  test('a descriptor of ours as stdio: the child writes into it, and it stays ours', async () => {
    const [link, err] = await fifosAside(2);
    const child = await spawnAside('sh', ['-c', 'printf linked'], ['ignore', link.writeFd, { fifo: err }]);
    fs.closeSync(link.writeFd);
    await finish(child);
    const buf = Buffer.alloc(64);
    const n = fs.readSync(link.readFd, buf);
    fs.closeSync(link.readFd);
    assert.equal(buf.subarray(0, n).toString(), 'linked');
  });

  test('a command that does not exist: "error" with ENOENT and no pid, then "close", as Node says it', async () => {
    const [o, e] = await fifosAside(2);
    const child = await spawnAside(path.join(dir, 'no-such-tool'), [], ['ignore', { fifo: o }, { fifo: e }]);
    assert.equal(child.pid, undefined);
    // Its streams are there, as Node gives them: the output ends at once.
    child.stdout!.resume();
    const ended = new Promise((resolve) => child.stdout!.once('end', resolve));
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
    await ended;
    assert.equal(error.code, 'ENOENT');
    await new Promise((resolve) => child.once('close', resolve));
  });

  test('kill: the signal reaches it and is its end', async () => {
    const [o, e] = await fifosAside(2);
    const child = await spawnAside('sleep', ['30'], ['ignore', { fifo: o }, { fifo: e }]);
    const ended = finish(child);
    assert.equal(child.kill('SIGTERM'), true);
    const r = await ended;
    assert.deepEqual([r.code, r.signal], [null, 'SIGTERM']);
    assert.equal(child.kill('SIGTERM'), false, 'nothing to signal once it exited');
  });

  test('the thread keeps the process alive while a child runs, not after; no FIFO name is left behind', () => {
    const tmp = fs.mkdtempSync(path.join(dir, 'tmp-'));
    const url = new URL('../../src/pipeline/spawner.ts', import.meta.url).href;
    const script = `
      const { fifosAside, spawnAside } = await import(${JSON.stringify(url)});
      const [o, e] = await fifosAside(2);
      const child = await spawnAside('sh', ['-c', 'sleep 0.3; echo done'], ['ignore', { fifo: o }, { fifo: e }]);
      child.stdout.on('data', (c) => process.stdout.write(c));
      child.on('close', (code) => process.stdout.write('closed ' + code + '\\n'));`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    // It waited for the child (it printed its output), then ended without being told to.
    assert.equal(r.stdout, 'done\nclosed 0\n');
    assert.ok(Date.now() - t0 < 30_000);
    // (tsx keeps its cache there too.)
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('strongbox-')), []);
  });
});

describe('storeStream on the spawner thread', () => {
  test('zstd missing from PATH: the backup fails saying so, and nothing it started is left', async () => {
    // A PATH with everything storeStream needs but zstd.
    const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
    for (const tool of ['mkfifo', 'age']) {
      const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      fs.symlinkSync(where, path.join(bin, tool));
    }
    const keyFile = path.join(dir, 'key.txt');
    const keygen = spawnSync('age-keygen', ['-o', keyFile], { encoding: 'utf8' });
    const recipient = /(age1\S+)/.exec(keygen.stderr)![1];
    const saved = process.env.PATH;
    process.env.PATH = bin;
    try {
      const err = await storeStream({ readable: Readable.from([Buffer.from('some rows\n')]) }, { compression: 'zstd', recipients: [recipient], targets: [{ id: 'x', stream: collector() }] }).then(
        () => assert.fail('must not succeed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StoreError);
      assert.equal(err.message, 'zstd not found: install the zstd package');
      assert.equal(err.targets[0].ok, false);
    } finally {
      process.env.PATH = saved;
    }
    // age was started first (the last stage is started first): stopped with the stream.
    for (let i = 0; i < 100 && childProcesses('age').length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(childProcesses('age'), []);
  });
});
