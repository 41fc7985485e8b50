/**
 * Response serialization (issue 14): what writing a backups list page costs with the response
 * schema as declared (what fast-json-stringify was given before, `anyOf` per nullable field,
 * checked with Ajv per value), with the schema src/api/serializer.ts hands it, and with plain
 * JSON.stringify (the baseline, same run). Pages of realistic backups (ended and running,
 * policy and snapshot set or null), medians of interleaved rounds.
 *
 *   node --import tsx bench/serialize.ts
 *   BENCH_ROUNDS=9 BENCH_PAGES=2000 node --import tsx bench/serialize.ts
 */
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import fastJsonStringify from 'fast-json-stringify';
import { serializableSchema } from '../src/api/serializer.js';
import { Backup, ListEnvelope } from '../src/api/v1/schemas.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const PAGES = Number(process.env.BENCH_PAGES ?? 1000);

function backup(i: number): Record<string, unknown> {
  const ended = i % 5 !== 0;
  const at = new Date(Date.UTC(2026, 10, 1) + i * 3_600_000).toISOString();
  return {
    id: `bk_${i.toString(36).padStart(12, '0')}`,
    name: `2026-11-01 ${String(i % 24).padStart(2, '0')}:00 nightly`,
    state: ended ? 'success' : 'running',
    size: ended ? 1_234_567_890 + i : 0,
    estimated_storage_cost: ended ? 0.0234 : 0,
    created_at: at,
    updated_at: at,
    started_at: at,
    expires_at: ended ? at : null,
    completed_at: ended ? at : null,
    deleted_at: null,
    pvc_size: 0,
    protected: i % 7 === 0,
    required: false,
    restored_branches: i % 11 === 0 ? [{ id: 'br_restored', name: 'restore-1', created_at: at, updated_at: at, deleted_at: null }] : [],
    actor: i % 3 === 0 ? { id: 'tok_1', display_name: 'ci token', avatar_url: '' } : null,
    backup_policy: i % 3 === 0 ? null : { id: 'pol_daily', display_name: 'Daily', name: 'daily', created_at: at, updated_at: at, frequency_unit: 'day', frequency_value: 1, retention_unit: 'week', retention_value: 2, target: 'production', next_run_at: at, last_ran_at: at, schedule_day: null, schedule_week: null, schedule_time: '02:00', required: false },
    schema_snapshot: i % 4 === 0 ? { id: 'ss_1', name: 'snapshot', created_at: at, updated_at: at, linted_at: null, url: 'https://example.test/ss_1' } : null,
    database_branch: { id: 'br_main', name: 'main', created_at: at, updated_at: at, deleted_at: null },
  };
}

function page(size: number) {
  const data = Array.from({ length: size }, (_, i) => backup(i));
  return { type: 'list', current_page: 1, next_page: 2, next_page_url: 'https://strongbox.test/v1/organizations/acme/databases/shop/branches/main/backups?page=2', prev_page: null, prev_page_url: null, data, total_count: 100_000, total_pages: Math.ceil(100_000 / size) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const declaredSchema = ListEnvelope(Backup);
const writers = {
  declared: fastJsonStringify(declaredSchema as never),
  rewritten: fastJsonStringify(serializableSchema(declaredSchema) as never),
  'JSON.stringify': (v: unknown) => JSON.stringify(v),
};

for (const size of [25, 100]) {
  const value = page(size);
  // The backup schema allows more fields than this page sets: the writers must still agree.
  const outputs = Object.values(writers).map((w) => w(value));
  if (!outputs.every((o) => isDeepStrictEqual(JSON.parse(o), JSON.parse(outputs[2])))) throw new Error('the writers disagree on the page');
  if (outputs[0] !== outputs[1]) throw new Error('the rewritten schema writes other bytes than the declared one');
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(writers).map((k) => [k, []]));
  // One round unmeasured: the compiled writers are optimized by the time they are timed.
  for (let r = -1; r < ROUNDS; r++) {
    for (const [name, write] of Object.entries(writers)) {
      const t0 = performance.now();
      for (let p = 0; p < PAGES; p++) write(value);
      if (r >= 0) times[name].push(((performance.now() - t0) * 1000) / PAGES);
    }
  }
  const base = median(times['JSON.stringify']);
  console.log(`\npage of ${size} backups (${outputs[0].length} bytes), µs per page, median of ${ROUNDS} rounds of ${PAGES}:`);
  for (const [name, ts] of Object.entries(times)) {
    console.log(`  ${name.padEnd(15)} ${median(ts).toFixed(1).padStart(8)} µs   ${(median(ts) / base).toFixed(2)}× JSON.stringify   ${(median(ts) / median(times.declared)).toFixed(2)}× declared`);
  }
}
