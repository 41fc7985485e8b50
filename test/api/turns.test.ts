/**
 * API requests take turns on the event loop (src/api/turns.ts): a burst of expensive
 * requests that arrive together does not hold back an event that comes meanwhile for longer
 * than a slice and one request, and the requests still run in the order they came.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { SLICE_MS, takeTurn } from '../../src/api/turns.js';

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* a synchronous catalog read */
  }
}

async function request(order: number[], i: number): Promise<void> {
  const turn = takeTurn();
  if (turn !== null) await turn;
  order.push(i);
  busy(1);
}

test('a burst of 40 one-millisecond requests leaves the loop free every slice, in order', async () => {
  const order: number[] = [];
  const start = performance.now();
  let heardAfter = -1;
  // Another event (a pipe of a running backup, a /health request) ready right after the burst arrived.
  setTimeout(() => (heardAfter = order.length), 0);
  await Promise.all(Array.from({ length: 40 }, (_, i) => request(order, i)));
  const total = performance.now() - start;
  assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => i), 'first come, first served');
  assert.ok(total >= 40, `all the work was done (${total.toFixed(1)} ms)`);
  // Counted in requests, not milliseconds: this machine's clock is shared. A slice holds
  // SLICE_MS of them and the one that overruns it.
  assert.ok(heardAfter >= 0 && heardAfter <= SLICE_MS + 3, `the other event was heard after ${heardAfter} of the 40 requests, not after all of them`);
});

test('requests that come one at a time are never deferred', async () => {
  await new Promise((r) => setImmediate(r)); // the loop goes round after the burst above
  for (let i = 0; i < 5; i++) {
    busy(1);
    assert.equal(takeTurn(), null);
    await new Promise((r) => setImmediate(r));
  }
});
