/**
 * The stages together, as a backup and a restore use them: source → zstd → sha256 →
 * fan-out to local storage writers → commit; then read → verify → decompress.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ChecksumMismatchError, HashCounter, Sha256Verifier, fanOut, zstdCompress, zstdDecompress } from '../../src/pipeline/index.js';
import { localProvider } from '../../src/storage/local/index.js';
import { chunked, collector, compressibleText } from './helpers.js';

describe('data path', () => {
  test('backup to two local destinations (one failing), then a verified restore', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'strongbox-datapath-'));
    try {
      const good = localProvider(path.join(dir, 'good'));
      const other = localProvider(path.join(dir, 'other'));
      const key = 'org/db/main/b1/backup.sql.zst';
      const dump = Buffer.concat([compressibleText(3 * 1024 * 1024), randomBytes(1024 * 1024)]);

      const w1 = await good.create(key);
      const w2 = await other.create(key);
      // The second destination breaks half-way, like a disk filling up.
      let seen = 0;
      const breaker = new Writable({
        write(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          if (seen > 256 * 1024) return cb(new Error('ENOSPC: no space left on device'));
          w2.stream.write(chunk, cb);
        },
      });
      const hash = new HashCounter();
      const [, results] = await Promise.all([
        pipeline(chunked(dump), zstdCompress(3), hash),
        fanOut(hash, [
          { id: 'good', stream: w1.stream },
          { id: 'other', stream: breaker },
        ]),
      ]);
      assert.deepEqual(results[0], { id: 'good', ok: true });
      assert.equal(results[1].ok, false);
      await w1.commit();
      await w2.abort();

      assert.deepEqual(await good.stat(key), { key, size: hash.bytes });
      assert.equal(await other.stat(key), null);
      // The aborted write left nothing behind, not even the folders it made.
      assert.deepEqual(await readdir(path.join(dir, 'other'), { recursive: true }).catch((e) => (e.code === 'ENOENT' ? [] : Promise.reject(e))), []);

      const restored = collector();
      await pipeline(await good.read(key), new Sha256Verifier(hash.digest(), hash.bytes), zstdDecompress(), restored);
      assert.ok(restored.data().equals(dump));

      // A restore from an artifact that does not match its recorded checksum fails.
      const wrong = hash.digest().replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await assert.rejects(
        pipeline(await good.read(key), new Sha256Verifier(wrong, hash.bytes), zstdDecompress(), collector()),
        ChecksumMismatchError,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
