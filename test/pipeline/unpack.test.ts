/**
 * unpackStream (src/pipeline/unpack.ts): a stored copy (sha256-checked as it is read) back
 * through age -d and zstd -d into a consumer process, FIFO to FIFO (`pipeTo` given the writing
 * end of its stdin FIFO; a stream given instead is written through this process) or
 * through this process (`readable`); and what happens when the copy is damaged, a process
 * dies, the consumer stops early or the restore is aborted: the cause is reported, the
 * consumer never sees a whole stream that is not, nothing hangs and no process is left behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { unpackStream } from '../../src/pipeline/unpack.js';
import { fifosAside } from '../../src/pipeline/spawner.js';
import { ChecksumMismatchError, Sha256Verifier } from '../../src/pipeline/verify.js';
import type { Compression } from '../../src/pipeline/compress.js';
import { chunked, childProcesses, compressibleText } from './helpers.js';

let dir: string;
let identity: string;
let otherIdentity: string;
let recipient: string;
const payload = compressibleText(8 * 1024 * 1024);
const payloadSha = createHash('sha256').update(payload).digest('hex');

function keygen(file: string): string {
  const out = spawnSync('age-keygen', ['-o', file], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return /public key: (age1\S+)/.exec(out.stderr + fs.readFileSync(file, 'utf8'))![1];
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-unpack-'));
  identity = path.join(dir, 'key.txt');
  recipient = keygen(identity);
  otherIdentity = path.join(dir, 'other.txt');
  keygen(otherIdentity);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `raw` as Strongbox stores it: compressed, then encrypted when `encrypted`. */
function pack(raw: Buffer, compression: Compression, encrypted: boolean): Buffer {
  let bytes = raw;
  if (compression === 'zstd') bytes = spawnSync('zstd', ['-q', '-c', '-3'], { input: bytes, maxBuffer: 1 << 28 }).stdout;
  if (compression === 'gzip') bytes = zlib.gzipSync(bytes);
  if (encrypted) bytes = spawnSync('age', ['-r', recipient], { input: bytes, maxBuffer: 1 << 28 }).stdout;
  return bytes;
}

/** A stored copy as a restore reads it: checked against `recorded` (default: its own sha256). */
function verified(stored: Buffer, recorded?: { sha256: string; size: number }): Readable {
  const v = new Sha256Verifier(recorded?.sha256 ?? createHash('sha256').update(stored).digest('hex'), recorded?.size ?? stored.length);
  chunked(stored, 64 * 1024).pipe(v);
  return v;
}

interface Consumer {
  child: ChildProcess;
  /** The writing end of its stdin FIFO, as a restore tool's (ToolRun.stdinFd): for pipeTo, which then owns it. */
  stdinFd: number;
  result: Promise<{ code: number | null; signal: string | null; stdout: string }>;
  kill(): void;
}

/**
 * A consumer process: `sh -c script`, its stdin a FIFO as a restore tool's is (startTool with
 * stdin "fifo"), or Node's own pipe (`stream`: `child.stdin`, for `readable` and for pipeTo
 * given a stream); resolves with its exit and stdout.
 */
async function consumer(script: string, stdin: 'fifo' | 'stream' = 'fifo'): Promise<Consumer> {
  const fifo = stdin === 'fifo' ? (await fifosAside(1))[0] : null;
  const child = spawn('sh', ['-c', script], { stdio: [fifo?.readFd ?? 'pipe', 'pipe', 'ignore'] });
  if (fifo) fs.closeSync(fifo.readFd);
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  const result = new Promise<{ code: number | null; signal: string | null; stdout: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout })));
  return { child, stdinFd: fifo?.writeFd ?? -1, result, kill: () => child.kill('SIGTERM') };
}

function noChildrenLeft(): void {
  for (const name of ['age', 'zstd', 'sh', 'sha256sum']) assert.deepEqual(childProcesses(name), [], `a ${name} process was left behind`);
}

async function settled(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return null;
  } catch (e) {
    return e;
  }
}

describe('the raw bytes come out whole', () => {
  for (const compression of ['zstd', 'gzip', 'none'] as const) {
    for (const encrypted of [true, false]) {
      test(`${compression}${encrypted ? ' + age' : ''}: into a process's FIFO or stream (pipeTo) and through this one (readable)`, async () => {
        const stored = pack(payload, compression, encrypted);
        const identityFiles = encrypted ? [identity] : [];

        for (const stdin of ['fifo', 'stream'] as const) {
          const progress: number[] = [];
          const a = unpackStream(verified(stored), { compression, identityFiles, onBytes: (n) => progress.push(n), progressIntervalMs: 0 });
          const sum = await consumer('sha256sum', stdin);
          a.pipeTo(stdin === 'fifo' ? sum.stdinFd : sum.child.stdin!, sum.kill);
          await a.done;
          const r = await sum.result;
          assert.equal(r.code, 0, stdin);
          assert.equal(r.stdout.split(' ')[0], payloadSha, stdin);
          assert.equal(a.inputVerified, true);
          assert.equal(progress.at(-1), stored.length, 'progress counts the stored bytes, to the last');
        }

        const b = unpackStream(verified(stored), { compression, identityFiles });
        const chunks: Buffer[] = [];
        for await (const c of b.readable) chunks.push(c as Buffer);
        await b.done;
        assert.equal(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), payloadSha);
        noChildrenLeft();
      });
    }
  }
});

describe('failures', () => {
  test('a damaged copy: the consumer is stopped before it could see an end, and the checksum says why', async () => {
    const stored = pack(payload, 'zstd', true);
    const recorded = { sha256: createHash('sha256').update(stored).digest('hex'), size: stored.length };
    const damaged = Buffer.from(stored);
    // Near the end: everything before it decrypts and decompresses fine.
    damaged[damaged.length - 100] ^= 0x01;
    for (const mode of ['pipeTo', 'readable'] as const) {
      const u = unpackStream(verified(damaged, recorded), { compression: 'zstd', identityFiles: [identity] });
      // The consumer reports an end of its input only as "eof"; killed, it says nothing.
      const c = await consumer('cat > /dev/null && echo eof', mode === 'pipeTo' ? 'fifo' : 'stream');
      if (mode === 'pipeTo') u.pipeTo(c.stdinFd, c.kill);
      else u.readable.pipe(c.child.stdin!).on('error', () => {});
      u.readable.on('error', () => c.kill());
      const err = await settled(u.done);
      assert.ok(err instanceof ChecksumMismatchError, `${mode}: ${String(err)}`);
      const r = await c.result;
      assert.notEqual(r.stdout.trim(), 'eof', `${mode}: the consumer read an end of file`);
    }
    noChildrenLeft();
  });

  test('zstd fails on bytes that pass the checksum: the error names zstd, the copy counts as intact, the consumer is stopped', async () => {
    const stored = pack(Buffer.concat([pack(payload, 'zstd', false).subarray(0, 200_000), Buffer.from('not zstd at all')]), 'none', true);
    const u = unpackStream(verified(stored), { compression: 'zstd', identityFiles: [identity] });
    const c = await consumer('cat > /dev/null && echo eof');
    u.pipeTo(c.stdinFd, c.kill);
    const err = await settled(u.done);
    assert.match(String(err), /zstd exited with code \d+: .+/);
    assert.equal(u.inputVerified, true);
    assert.notEqual((await c.result).stdout.trim(), 'eof');
    noChildrenLeft();
  });

  test('no identity matches: age says so, and the copy was still read whole', async () => {
    const stored = pack(payload, 'zstd', true);
    const u = unpackStream(verified(stored), { compression: 'zstd', identityFiles: [otherIdentity] });
    const c = await consumer('cat > /dev/null');
    u.pipeTo(c.stdinFd, c.kill);
    const err = await settled(u.done);
    assert.match(String(err), /age exited with code 1: .*no identity matched any of the recipients/);
    assert.equal(u.inputVerified, true);
    await c.result;
    noChildrenLeft();
  });

  test('a consumer that needs only the start and exits 0: no hang, the rest is read for its checksum', async () => {
    const stored = pack(payload, 'zstd', true);
    for (const mode of ['pipeTo', 'readable'] as const) {
      const u = unpackStream(verified(stored), { compression: 'zstd', identityFiles: [identity] });
      const c = await consumer('head -c 1000 > /dev/null', mode === 'pipeTo' ? 'fifo' : 'stream');
      if (mode === 'pipeTo') u.pipeTo(c.stdinFd, c.kill);
      else {
        // As feedTool (engines/process.ts) does: once the consumer exited, the rest is read
        // and dropped. Waiting for an EPIPE instead hung now and then: Node closes a child's
        // stdin when the child exits, without an error, if no write failed before.
        u.readable.pipe(c.child.stdin!).on('error', () => {});
        c.child.once('exit', () => {
          u.readable.unpipe();
          u.readable.resume();
        });
      }
      await u.done;
      assert.equal(u.inputVerified, true);
      assert.equal((await c.result).code, 0);
    }
    noChildrenLeft();
  });

  test('a consumer that fails at once: nothing hangs, and done still tells whether the copy is intact', async () => {
    const stored = pack(payload, 'zstd', true);
    const u = unpackStream(verified(stored), { compression: 'zstd', identityFiles: [identity] });
    const c = await consumer('exit 3');
    u.pipeTo(c.stdinFd, c.kill);
    await u.done;
    assert.equal(u.inputVerified, true);
    assert.equal((await c.result).code, 3);
    noChildrenLeft();
  });

  test('aborted mid-stream: every process is gone when done settles, with the reason', async () => {
    const stored = pack(payload, 'zstd', true);
    const ac = new AbortController();
    const u = unpackStream(verified(stored), { compression: 'zstd', identityFiles: [identity], signal: ac.signal });
    // A slow consumer, so the abort lands mid-stream.
    const c = await consumer('while dd bs=4096 count=1 status=none > /dev/null; do sleep 0.01; done');
    u.pipeTo(c.stdinFd, c.kill);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(childProcesses('zstd').length + childProcesses('age').length > 0, 'the processes run');
    ac.abort(new Error('canceled by a test'));
    const err = await settled(u.done);
    assert.match(String(err), /canceled by a test/);
    await c.result;
    noChildrenLeft();
  });

  test('a consumer that never starts: abandon settles done and reads nothing', async () => {
    const stored = pack(payload, 'zstd', true);
    const input = verified(stored);
    const u = unpackStream(input, { compression: 'zstd', identityFiles: [identity] });
    u.abandon();
    assert.ok((await settled(u.done)) instanceof Error);
    assert.equal(u.started, false);
    assert.equal(input.destroyed, true);
    noChildrenLeft();
  });
});
