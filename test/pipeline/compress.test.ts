import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  compressionSuffix,
  compressor,
  decompressor,
  processDuplex,
  zstdCompress,
  zstdDecompress,
} from '../../src/pipeline/compress.js';
import { childProcesses, chunked, collector, compressibleText } from './helpers.js';

const execFileP = promisify(execFile);

async function roundTrip(input: Buffer, compress: () => NodeJS.ReadWriteStream & Writable, decompress: () => NodeJS.ReadWriteStream & Writable) {
  const compressed = collector();
  await pipeline(chunked(input), compress(), compressed);
  const restored = collector();
  await pipeline(chunked(compressed.data()), decompress(), restored);
  return { compressed: compressed.data(), restored: restored.data() };
}

async function assertNoZstdChildren(): Promise<void> {
  // The kernel may take a moment to reap; 'close' already waited for the exit.
  for (let i = 0; i < 20 && childProcesses('zstd').length > 0; i++) await sleep(50);
  assert.deepEqual(childProcesses('zstd'), [], 'a zstd child process was left behind');
}

describe('zstd', () => {
  test('round trip of incompressible data is byte-identical and readable by the zstd CLI', async () => {
    const input = randomBytes(6 * 1024 * 1024 + 123);
    const { compressed, restored } = await roundTrip(input, () => zstdCompress(3), () => zstdDecompress());
    assert.equal(restored.length, input.length);
    assert.ok(restored.equals(input));

    const dir = await mkdtemp(path.join(tmpdir(), 'strongbox-zstd-'));
    try {
      const file = path.join(dir, 'x.zst');
      await writeFile(file, compressed);
      const { stdout } = await execFileP('zstd', ['-d', '-q', '-c', file], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
      assert.ok(stdout.equals(input));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('round trip of compressible data is byte-identical and much smaller', async () => {
    const input = compressibleText(8 * 1024 * 1024);
    const { compressed, restored } = await roundTrip(input, () => zstdCompress(3, 2), () => zstdDecompress());
    assert.ok(restored.equals(input));
    assert.ok(compressed.length < input.length / 4, `compressed ${compressed.length} of ${input.length}`);
    const { stdout } = await new Promise<{ stdout: Buffer }>((resolve, reject) => {
      const child = execFile('zstd', ['-d', '-q', '-c'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
        err ? reject(err) : resolve({ stdout }),
      );
      child.stdin!.end(compressed);
    });
    assert.ok(stdout.equals(input));
    await assertNoZstdChildren();
  });

  test('empty input round-trips', async () => {
    const { restored } = await roundTrip(Buffer.alloc(0), () => zstdCompress(1), () => zstdDecompress());
    assert.equal(restored.length, 0);
  });

  test('validates the level and the thread count', () => {
    for (const level of [0, 20, 2.5, -1, Number.NaN]) assert.throws(() => zstdCompress(level), RangeError);
    assert.throws(() => zstdCompress(3, -1), RangeError);
    assert.throws(() => compressor('gzip', 10), RangeError);
    assert.deepEqual(childProcesses('zstd'), []);
  });

  test('corrupt input makes the decompressor error, not end', async () => {
    const compressed = collector();
    await pipeline(chunked(compressibleText(1024 * 1024)), zstdCompress(3), compressed);
    const bad = Buffer.from(compressed.data());
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    const out = collector();
    let ended = false;
    const d = zstdDecompress();
    d.on('end', () => (ended = true));
    await assert.rejects(pipeline(chunked(bad), d, out), /zstd exited with code \d+/);
    assert.equal(ended, false);
    await assertNoZstdChildren();
  });

  test('truncated input makes the decompressor error', async () => {
    const compressed = collector();
    await pipeline(chunked(randomBytes(512 * 1024)), zstdCompress(3), compressed);
    const truncated = compressed.data().subarray(0, compressed.data().length - 100);
    await assert.rejects(pipeline(chunked(truncated), zstdDecompress(), collector()), /zstd/);
  });

  test('destroying the stream mid-way kills the child', async () => {
    const z = zstdCompress(3) as ReturnType<typeof zstdCompress> & { pid: number };
    const pid = z.pid;
    assert.ok(pid > 0);
    z.on('data', () => {});
    z.write(randomBytes(1024 * 1024));
    await sleep(50);
    assert.deepEqual(childProcesses('zstd'), [pid]);
    const closed = new Promise((resolve) => z.once('close', resolve));
    z.destroy();
    await closed;
    await assertNoZstdChildren();
  });

  test('a failing consumer in a pipeline leaves no zstd behind', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 64 * 1024;
        this.push(randomBytes(64 * 1024));
      },
    });
    let seen = 0;
    const failing = new Writable({
      write(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        cb(seen > 2 * 1024 * 1024 ? new Error('disk full') : null);
      },
    });
    await assert.rejects(pipeline(endless, zstdCompress(3), failing), /disk full/);
    await assertNoZstdChildren();
    assert.ok(produced < 64 * 1024 * 1024, `the source kept producing: ${produced}`);
  });

  test('aborting a pipeline kills the child', async () => {
    const ac = new AbortController();
    const slow = new Readable({ read() {} });
    slow.push(randomBytes(1024));
    const p = pipeline(slow, zstdCompress(3), collector(), { signal: ac.signal });
    await sleep(50);
    assert.equal(childProcesses('zstd').length, 1);
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    await assertNoZstdChildren();
  });

  test('a missing zstd binary gives a clear error', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let z;
    try {
      z = zstdCompress(3);
    } finally {
      process.env.PATH = savedPath;
    }
    await assert.rejects(pipeline(chunked(Buffer.from('hello')), z, collector()), { message: 'zstd not found: install the zstd package' });
  });
});

describe('processDuplex', () => {
  test('a non-zero exit is an error carrying the end of stderr', async () => {
    const p = processDuplex('sh', ['-c', 'cat >/dev/null; echo "it went wrong" >&2; exit 3'], { name: 'filter' });
    await assert.rejects(pipeline(chunked(randomBytes(300 * 1024)), p, collector()), {
      message: 'filter exited with code 3: it went wrong',
    });
  });

  test('a child that dies early (EPIPE on its stdin) is an error, not a crash', async () => {
    const p = processDuplex('sh', ['-c', 'head -c 10 >/dev/null; exit 1'], { name: 'filter' });
    await assert.rejects(pipeline(chunked(randomBytes(4 * 1024 * 1024)), p, collector()), /filter exited with code 1/);
  });

  test('a child that exits 0 without reading all its input is an error', async () => {
    const p = processDuplex('sh', ['-c', 'head -c 10 >/dev/null; exit 0'], { name: 'filter' });
    await assert.rejects(pipeline(chunked(randomBytes(4 * 1024 * 1024)), p, collector()), /filter exited before reading all of its input/);
  });

  test('a command that does not exist gives the not-found message', async () => {
    const p = processDuplex('strongbox-no-such-command', [], { notFoundMessage: 'nope not installed' });
    await assert.rejects(pipeline(chunked(Buffer.alloc(10)), p, collector()), { message: 'nope not installed' });
  });

  test('backpressure: a consumer that does not read stops the child and the writer', async () => {
    const p = processDuplex('cat', []);
    let accepted = 0;
    const chunk = Buffer.alloc(64 * 1024);
    // Write until the Duplex says stop; with no reader that must happen after a bounded
    // amount (pipe buffers + our high water marks), not after everything.
    for (let i = 0; i < 1000; i++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!p.write(chunk)) break;
      accepted += chunk.length;
    }
    await sleep(100);
    assert.ok(accepted > 0);
    assert.ok(accepted < 8 * 1024 * 1024, `accepted ${accepted} bytes with nobody reading`);
    const closed = new Promise((resolve) => p.once('close', resolve));
    p.destroy();
    await closed;
    assert.deepEqual(childProcesses('cat'), []);
  });
});

describe('compressor / decompressor', () => {
  test('gzip round trip', async () => {
    const input = Buffer.concat([compressibleText(2 * 1024 * 1024), randomBytes(1024 * 1024)]);
    const { compressed, restored } = await roundTrip(input, () => compressor('gzip', 6), () => decompressor('gzip'));
    assert.ok(restored.equals(input));
    assert.equal(compressed[0], 0x1f);
    assert.equal(compressed[1], 0x8b);
  });

  test('zstd through compressor()', async () => {
    const input = compressibleText(1024 * 1024);
    const { compressed, restored } = await roundTrip(input, () => compressor('zstd'), () => decompressor('zstd'));
    assert.ok(restored.equals(input));
    assert.equal(compressed.readUInt32LE(0), 0xfd2fb528);
  });

  test('none passes bytes through', async () => {
    const input = randomBytes(100_000);
    const { compressed, restored } = await roundTrip(input, () => compressor('none'), () => decompressor('none'));
    assert.ok(compressed.equals(input));
    assert.ok(restored.equals(input));
  });

  test('suffixes', () => {
    assert.equal(compressionSuffix('zstd'), '.zst');
    assert.equal(compressionSuffix('gzip'), '.gz');
    assert.equal(compressionSuffix('none'), '');
  });
});
