/** src/gc.ts: the full collection after a job frees what the job left in the old generation, at most once per interval. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AFTER_JOB_MIN_INTERVAL_MS, collectAfterJob, collector } from '../src/gc.js';

const MiB = 1024 * 1024;

test('after a job, Buffers that outlived two scavenges are freed; a second job ending soon after does not collect again', async () => {
  const gc = collector();
  assert.ok(gc, 'gc can be had without a node flag');
  // 32 MiB of chunks held across two scavenges (promoted to the old generation, as chunks
  // waiting in a pipe are), then dropped: only a full collection frees them.
  gc();
  const base = process.memoryUsage().arrayBuffers;
  let held: Buffer[] = [];
  for (let i = 0; i < 512; i++) held.push(Buffer.allocUnsafeSlow(64 * 1024));
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  held = [];
  gc({ type: 'minor' });
  const before = process.memoryUsage().arrayBuffers;
  assert.ok(before >= base + 30 * MiB, `the dropped chunks are still held after scavenges (${(base / MiB).toFixed(1)} → ${(before / MiB).toFixed(1)} MiB)`);

  const now = performance.now() + 10 * AFTER_JOB_MIN_INTERVAL_MS;
  assert.equal(collectAfterJob(now), true);
  await new Promise((r) => setImmediate(r));
  // The backing stores are freed by V8's sweeper threads just after the collection; without
  // a collection nothing frees them, however long this waits.
  let after = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 100 && after >= base + 4 * MiB; i++) {
    await new Promise((r) => setTimeout(r, 10));
    after = process.memoryUsage().arrayBuffers;
  }
  // Back near where it was before the chunks (what else the process holds may move a little).
  assert.ok(after < base + 4 * MiB, `${(base / MiB).toFixed(1)} → ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB`);

  assert.equal(collectAfterJob(now + AFTER_JOB_MIN_INTERVAL_MS / 2), false, 'not again within the interval');
  assert.equal(collectAfterJob(now + AFTER_JOB_MIN_INTERVAL_MS), true, 'again once the interval has passed');
  await new Promise((r) => setImmediate(r));
});
