import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { progressSnapshot } from '../../src/pipeline/progress.js';

const MB = 1024 * 1024;

describe('progressSnapshot', () => {
  test('rate, eta and percent with an estimate', () => {
    assert.deepEqual(progressSnapshot({ bytes: 25 * MB, startedAt: 1_000, now: 11_000, totalEstimate: 100 * MB }), {
      bytes: 25 * MB,
      rate_bytes_per_second: Math.round((25 * MB) / 10),
      eta_seconds: 30,
      percent: 25,
    });
  });

  test('no estimate: no eta and no percent', () => {
    const s = progressSnapshot({ bytes: 10 * MB, startedAt: 0, now: 5_000 });
    assert.equal(s.rate_bytes_per_second, 2 * MB);
    assert.equal(s.eta_seconds, null);
    assert.equal(s.percent, null);
    assert.equal(progressSnapshot({ bytes: 1, startedAt: 0, now: 1, totalEstimate: 0 }).percent, null);
  });

  test('at the start: rate 0 and no eta', () => {
    assert.deepEqual(progressSnapshot({ bytes: 0, startedAt: 5_000, now: 5_000, totalEstimate: MB }), {
      bytes: 0,
      rate_bytes_per_second: 0,
      eta_seconds: null,
      percent: 0,
    });
  });

  test('a clock that went backwards does not give a negative rate', () => {
    const s = progressSnapshot({ bytes: MB, startedAt: 10_000, now: 9_000, totalEstimate: 2 * MB });
    assert.equal(s.rate_bytes_per_second, 0);
    assert.equal(s.eta_seconds, null);
  });

  test('percent stays at 99 until done, even past the estimate', () => {
    assert.equal(progressSnapshot({ bytes: 999, startedAt: 0, now: 1_000, totalEstimate: 1_000 }).percent, 99);
    const over = progressSnapshot({ bytes: 5_000, startedAt: 0, now: 1_000, totalEstimate: 1_000 });
    assert.equal(over.percent, 99);
    assert.equal(over.eta_seconds, null);
    const done = progressSnapshot({ bytes: 5_000, startedAt: 0, now: 1_000, totalEstimate: 1_000, done: true });
    assert.equal(done.percent, 100);
    assert.equal(done.eta_seconds, 0);
    assert.equal(done.rate_bytes_per_second, 5_000);
  });

  test('eta rounds up to whole seconds', () => {
    assert.equal(progressSnapshot({ bytes: 3, startedAt: 0, now: 1_000, totalEstimate: 10 }).eta_seconds, 3);
  });
});
