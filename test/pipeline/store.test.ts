/**
 * storeStream (src/pipeline/store.ts): the processes piped into each other (source → the
 * reader thread → zstd → age; or source → tee → zstd → age with a shared reader thread), the
 * raw bytes read in a worker, the final bytes hashed and fanned out; and
 * what happens when any of them dies mid-stream: the first cause is reported, nothing is
 * good, and no process is left behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable, type Writable as WritableType } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { StoreError, storeStream, type SourceProcess } from '../../src/pipeline/store.js';
import { chunked, childProcesses, collector, compressibleText } from './helpers.js';

let dir: string;
let identity: string;
let recipient: string;
let payloadFile: string;
const payload = compressibleText(6 * 1024 * 1024);

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-store-'));
  identity = path.join(dir, 'key.txt');
  const out = spawnSync('age-keygen', ['-o', identity], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  recipient = /public key: (age1\S+)/.exec(out.stderr + fs.readFileSync(identity, 'utf8'))![1];
  payloadFile = path.join(dir, 'payload');
  fs.writeFileSync(payloadFile, payload);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * A source process like a dump tool: writes the payload file to `output` in small pieces,
 * `delayMs` apart (so that a test can act mid-stream), then exits with `exitCode`.
 */
function slowSource(opts: { delayMs?: number; exitCode?: number; stopAfter?: number } = {}): { start(output: WritableType | number): Promise<SourceProcess> } {
  const script = `
    const fs = require('fs');
    const data = fs.readFileSync(process.argv[1]);
    const stopAfter = Number(process.argv[4]);
    let pos = 0;
    const step = () => {
      if (pos >= Math.min(data.length, stopAfter)) { process.stderr.write(pos < data.length ? 'source: lost the connection' : ''); process.exitCode = Number(process.argv[3]); return; }
      fs.writeSync(1, data.subarray(pos, pos + 65536));
      pos += 65536;
      setTimeout(step, Number(process.argv[2]));
    };
    step();`;
  return {
    async start(output) {
      const child = spawn(process.execPath, ['-e', script, payloadFile, String(opts.delayMs ?? 0), String(opts.exitCode ?? 0), String(opts.stopAfter ?? Infinity)], { stdio: ['ignore', output, 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const done = new Promise<void>((resolve, reject) => {
        child.on('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`source failed (${code ?? signal}): ${stderr}`))));
      });
      done.catch(() => {});
      return { stdout: null as never, done, kill: () => child.kill('SIGTERM') };
    },
  };
}

function decrypt(file: string): Buffer {
  const age = spawnSync('age', ['-d', '-i', identity, file], { maxBuffer: 1 << 30 });
  assert.equal(age.status, 0, age.stderr?.toString());
  const zstd = spawnSync('zstd', ['-d', '-q', '-c'], { input: age.stdout, maxBuffer: 1 << 30 });
  assert.equal(zstd.status, 0, zstd.stderr?.toString());
  return zstd.stdout;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Kill the first child process called `comm` once it exists and the stream is under way. */
async function killWhenRunning(comm: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const pids = childProcesses(comm);
    if (pids.length) {
      await new Promise((r) => setTimeout(r, 150));
      process.kill(pids[0], signal);
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${comm} process appeared`);
}

function noneLeft(): void {
  for (const comm of ['tee', 'zstd', 'age', 'node']) {
    const alive = childProcesses(comm).filter((pid) => {
      try {
        return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, [], `${comm} processes left behind`);
  }
}

describe('storeStream', () => {
  test('a process source: passed on by the reader thread (no tee) through zstd and age into two files; sha256, sizes and raw bytes exact', async () => {
    const files = [path.join(dir, 'a'), path.join(dir, 'b')];
    const targets = files.map((f, i) => ({ id: String(i), stream: fs.createWriteStream(f) }));
    const reports: number[] = [];
    const seen = new Set<string>();
    const onProgress = (p: { rawBytes: number }): void => {
      reports.push(p.rawBytes);
      for (const comm of ['tee', 'zstd', 'age']) if (childProcesses(comm).length) seen.add(comm);
    };
    const r = await storeStream(slowSource(), { compression: 'zstd', recipients: [recipient], targets, inspect: {}, onProgress, progressIntervalMs: 20 });
    assert.deepEqual([...seen].sort(), ['age', 'zstd'], 'zstd and age ran, tee did not');
    assert.equal(r.rawBytes, payload.length);
    assert.equal(r.inspection.rawBytes, payload.length);
    assert.ok(r.targets.every((t) => t.ok));
    for (const f of files) {
      const stored = fs.readFileSync(f);
      assert.equal(stored.length, r.size);
      assert.equal(sha(stored), r.sha256);
      assert.ok(decrypt(f).equals(payload), 'decrypts and decompresses to the payload');
    }
    assert.equal(reports.at(-1), payload.length, 'the last progress report has every raw byte');
    noneLeft();
  });

  test('three streams at once on a shared reader thread (one of them paused a while): every raw byte read, each copy exact', async () => {
    const run = async (i: number) => {
      const out = collector();
      const r = await storeStream(slowSource({ delayMs: i === 0 ? 30 : 0 }), { compression: 'zstd', recipients: [recipient], targets: [{ id: String(i), stream: out }], inspect: { statements: true }, sharedReader: true });
      assert.equal(r.rawBytes, payload.length);
      assert.equal(r.inspection.rawBytes, payload.length);
      assert.ok((r.inspection.largestStatement ?? 0) > 50, 'the statement sizer ran');
      assert.equal(sha(out.data()), r.sha256);
      const file = path.join(dir, `shared-${i}`);
      fs.writeFileSync(file, out.data());
      assert.ok(decrypt(file).equals(payload), 'decrypts and decompresses to the payload');
    };
    await Promise.all([0, 1, 2].map(run));
    noneLeft();
  });

  test('a readable source and gzip, without encryption: the same bytes come back', async () => {
    const out = collector();
    const r = await storeStream({ readable: chunked(payload, 10_000) }, { compression: 'gzip', recipients: [], targets: [{ id: 'x', stream: out }], inspect: { statements: true } });
    assert.equal(r.rawBytes, payload.length);
    assert.equal(sha(out.data()), r.sha256);
    const back = spawnSync('gzip', ['-d', '-c'], { input: out.data(), maxBuffer: 1 << 30 });
    assert.ok(back.stdout.equals(payload));
    assert.ok((r.inspection.largestStatement ?? 0) > 50, 'the statement sizer ran');
  });

  test('statement sizes and coordinates from the worker match the readers run in this thread', async () => {
    const sql = Buffer.from("-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003', MASTER_LOG_POS=1234;\n" + payload.toString('latin1') + '\n-- Dump completed on 2025-01-01\n', 'latin1');
    fs.writeFileSync(path.join(dir, 'dump.sql'), sql);
    const here = await storeStream({ readable: chunked(sql) }, { compression: 'none', recipients: [], targets: [{ id: 'x', stream: collector() }], inspect: { rows: 'mysql', statements: true, coordinates: true } });
    const viaWorker = await storeStream(
      {
        async start(output) {
          const child = spawn('cat', [path.join(dir, 'dump.sql')], { stdio: ['ignore', output, 'ignore'] });
          const done = new Promise<void>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cat ${code}`)))));
          return { stdout: null as never, done, kill: () => child.kill() };
        },
      },
      { compression: 'zstd', recipients: [], targets: [{ id: 'x', stream: collector() }], inspect: { rows: 'mysql', statements: true, coordinates: true } },
    );
    assert.equal(viaWorker.rawBytes, sql.length);
    assert.equal(viaWorker.inspection.largestStatement, here.inspection.largestStatement);
    assert.equal(viaWorker.inspection.coordinates?.file, 'binlog.000003');
    assert.equal(viaWorker.inspection.coordinates?.position, 1234);
    assert.ok(viaWorker.inspection.coordinates?.consistent_at, 'stamped when the position went by');
    assert.equal(viaWorker.inspection.reason, here.inspection.reason);
  });

  // zstd killed while the reader thread writes into it: the thread's broken pipe is an echo.
  // tee runs only for a shared reader thread.
  for (const [comm, sharedReader] of [['zstd', false], ['age', false], ['zstd', true], ['tee', true]] as const) {
    test(`${comm} killed mid-stream${sharedReader ? ' (shared reader, tee)' : ''}: rejected with ${comm}'s own failure, no target good, nothing left running`, async () => {
      const files = [path.join(dir, `${comm}-${sharedReader}-1`), path.join(dir, `${comm}-${sharedReader}-2`)];
      const targets = files.map((f, i) => ({ id: String(i), stream: fs.createWriteStream(f) }));
      const store = storeStream(slowSource({ delayMs: 5 }), { compression: 'zstd', recipients: [recipient], targets, inspect: { rows: 'postgresql' }, sharedReader });
      await killWhenRunning(comm);
      const err = await store.then(
        () => assert.fail('must not succeed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StoreError, String(err));
      assert.match(err.message, new RegExp(`^${comm} was killed by SIGKILL`));
      assert.ok(err.targets.every((t) => !t.ok), 'no target reported good');
      noneLeft();
    });
  }

  test('the source fails mid-stream: its own error, not the broken pipes after it', async () => {
    const out = collector();
    const err = await storeStream(slowSource({ stopAfter: 1024 * 1024, exitCode: 3 }), { compression: 'zstd', recipients: [recipient], targets: [{ id: 'x', stream: out }], inspect: {} }).then(
      () => assert.fail('must not succeed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoreError);
    assert.match(err.message, /source failed \(3\): source: lost the connection/);
    noneLeft();
  });

  test('aborted mid-stream: rejected with the reason, every process stopped', async () => {
    const ac = new AbortController();
    const store = storeStream(slowSource({ delayMs: 20 }), { compression: 'zstd', recipients: [recipient], targets: [{ id: 'x', stream: collector() }], signal: ac.signal });
    setTimeout(() => ac.abort(new Error('canceled by the user')), 300);
    const err = await store.then(
      () => assert.fail('must not succeed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoreError);
    assert.equal(err.message, 'canceled by the user');
    noneLeft();
  });

  test('one destination fails: the other stores everything; both fail: "every destination failed"', async () => {
    const broken = (): WritableType =>
      new Writable({
        write(_c, _e, cb) {
          cb(new Error('ENOSPC: no space left on device'));
        },
      });
    const good = collector();
    const r = await storeStream(slowSource(), { compression: 'zstd', recipients: [], targets: [{ id: 'good', stream: good }, { id: 'bad', stream: broken() }] });
    assert.deepEqual(r.targets.map((t) => t.ok), [true, false]);
    assert.match(String(r.targets[1].error?.message), /ENOSPC/);
    assert.equal(sha(good.data()), r.sha256);

    const err = await storeStream(slowSource({ delayMs: 5 }), { compression: 'zstd', recipients: [], targets: [{ id: 'a', stream: broken() }, { id: 'b', stream: broken() }] }).then(
      () => assert.fail('must not succeed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoreError);
    assert.match(err.message, /^every destination failed/);
    assert.ok(err.targets.every((t) => !t.ok && /ENOSPC/.test(String(t.error?.message))));
    noneLeft();
  });

  test('no descriptor is left open: after a stored stream, a killed zstd, an abort, a source that cannot start', async () => {
    const openFds = (): string[] => fs.readdirSync('/proc/self/fd').sort((a, b) => Number(a) - Number(b));
    const describeFds = (fds: string[]): string =>
      fds.map((fd) => {
        try {
          return `${fd} → ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`;
        } catch {
          return fd;
        }
      }).join(', ');
    const opts = () => ({ compression: 'zstd' as const, recipients: [recipient], targets: [{ id: 'x', stream: collector() }], inspect: { rows: 'postgresql' as const } });
    const settle = (p: Promise<unknown>): Promise<unknown> => p.then((v) => v, (e: unknown) => e);
    // The reader thread's own event loop opens descriptors once; a first stream starts it.
    await storeStream(slowSource(), opts());
    await new Promise((r) => setTimeout(r, 100));
    const before = openFds();

    await storeStream(slowSource(), opts());
    const killed = storeStream(slowSource({ delayMs: 5 }), opts());
    await killWhenRunning('zstd');
    assert.ok((await settle(killed)) instanceof StoreError);
    const ac = new AbortController();
    const aborted = storeStream(slowSource({ delayMs: 5 }), { ...opts(), signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 200);
    assert.ok((await settle(aborted)) instanceof StoreError);
    const cannot = storeStream({ start: async () => Promise.reject(new Error('no pg_dump')) }, opts());
    assert.ok((await settle(cannot)) instanceof StoreError);
    const early = new AbortController();
    early.abort(new Error('stopped before it began'));
    assert.ok((await settle(storeStream(slowSource(), { ...opts(), signal: early.signal }))) instanceof StoreError);

    // Descriptors of exited children's pipes close as their handles do: give them a moment.
    let after = openFds();
    for (let i = 0; i < 50 && after.length > before.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = openFds();
    }
    const extra = after.filter((fd) => !before.includes(fd));
    assert.deepEqual(extra, [], `left open: ${describeFds(extra)}`);
    noneLeft();
  });

  test('a source that cannot start: its error, and the stages started for it are stopped', async () => {
    const err = await storeStream(
      {
        start: async () => {
          throw new Error('pg_dump not found for server 99');
        },
      },
      { compression: 'zstd', recipients: [recipient], targets: [{ id: 'x', stream: collector() }], inspect: { rows: 'postgresql' } },
    ).then(
      () => assert.fail('must not succeed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoreError);
    assert.equal(err.message, 'pg_dump not found for server 99');
    noneLeft();
  });
});
