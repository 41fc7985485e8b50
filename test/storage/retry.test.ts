import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { localProvider } from '../../src/storage/local/index.js';
import { StorageError } from '../../src/storage/provider.js';
import { isPermanent, retryingProvider, withRetry } from '../../src/storage/retry.js';
import { storageConformance } from './conformance.js';

describe('withRetry', () => {
  test('retries transient errors with growing delays, then succeeds', async () => {
    const delays: number[] = [];
    let calls = 0;
    const value = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new StorageError('503 slow down');
        return 'done';
      },
      { baseMs: 10, onRetry: (_e, _a, d) => delays.push(d) },
    );
    assert.equal(value, 'done');
    assert.equal(calls, 3);
    assert.equal(delays.length, 2);
    assert.ok(delays[0] >= 5 && delays[0] <= 10, `first delay ${delays[0]}`);
    assert.ok(delays[1] >= 10 && delays[1] <= 20, `second delay ${delays[1]}`);
  });

  test('gives up after `attempts` with the last error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw new Error(`failure ${calls}`);
        },
        { attempts: 3, baseMs: 1 },
      ),
      /failure 3/,
    );
    assert.equal(calls, 3);
  });

  test('does not retry permanent or notFound errors', async () => {
    for (const err of [new StorageError('denied', true), new StorageError('gone', false, true)]) {
      let calls = 0;
      await assert.rejects(
        withRetry(async () => {
          calls++;
          throw err;
        }, { baseMs: 1 }),
        err,
      );
      assert.equal(calls, 1);
    }
    assert.equal(isPermanent(new Error('ECONNRESET')), false);
    assert.equal(isPermanent(Object.assign(new Error('x'), { name: 'AbortError' })), true);
  });

  test('an abort during the backoff stops at once', async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(
      withRetry(async () => {
        throw new Error('transient');
      }, { baseMs: 5_000, signal: ac.signal }),
      { name: 'AbortError' },
    );
    assert.ok(Date.now() - started < 2_000);
  });

  test('delays are capped by maxMs', async () => {
    const delays: number[] = [];
    await assert.rejects(
      withRetry(async () => {
        throw new Error('transient');
      }, { attempts: 6, baseMs: 4, maxMs: 8, onRetry: (_e, _a, d) => delays.push(d) }),
    );
    assert.ok(delays.every((d) => d <= 8));
  });
});

storageConformance('local behind retryingProvider', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'strongbox-retry-'));
  return {
    provider: retryingProvider(localProvider(dir), { baseMs: 1 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
