/**
 * Reads the jobs make of the whole catalog, made cheap at 100,000 backups (issue 14), against
 * what they did before:
 * - branchFreshness (overview, metrics, backup.overdue): the newest success of each covered
 *   branch as a seek per branch equals the max grouped over every successful backup;
 * - retention's retry of deleted backups that still have a stored copy: every one at the first
 *   pass (and whenever the clock moved back), then the ones deleted since and the ones whose
 *   removal failed last time, without reading every deleted backup at every pass.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Insertable } from 'kysely';
import { registerBranch, startServer, type TestServer } from '../helpers/server.js';
import { pgUrl } from '../helpers/databases.js';
import { newId, nowIso } from '../../src/catalog/ids.js';
import type { BackupsTable } from '../../src/catalog/schema.js';
import { branchFreshness } from '../../src/jobs/overdue.js';
import { sweepExpired } from '../../src/jobs/retention.js';

const DAY = 24 * 3_600_000;

describe('job reads at scale', () => {
  let server: TestServer;
  let now = new Date();
  const branchIds: string[] = [];

  function backup(branch: { id: string; organization_id: string; database_id: string }, k: number, over: Partial<Insertable<BackupsTable>> = {}): Insertable<BackupsTable> {
    const t = nowIso(new Date(now.getTime() - (k + 1) * 3_600_000));
    return {
      id: newId(),
      organization_id: branch.organization_id,
      database_id: branch.database_id,
      branch_id: branch.id,
      name: `b${k}`,
      state: 'success',
      retention_value: 100,
      retention_unit: 'year',
      created_at: t,
      updated_at: t,
      started_at: t,
      completed_at: nowIso(new Date(Date.parse(t) + (k % 17) * 60_000)),
      expires_at: nowIso(new Date(now.getTime() + 100 * 365 * DAY)),
      deleted_at: null,
      engine: 'postgresql',
      compression: 'zstd',
      required: 0,
      protected: 0,
      emergency: 0,
      ...over,
    };
  }

  before(async () => {
    server = await startServer({}, { runner: false, clock: () => now });
    for (const [db, branch, production] of [
      ['shop', 'main', true],
      ['shop', 'dev', false],
      ['stock', 'main', true],
      ['stock', 'idle', true],
    ] as const) {
      await registerBranch(server, 'default', db, 'postgresql', branch, pgUrl('postgres'), production);
    }
    const branches = await server.ctx.db.selectFrom('branches').select(['id', 'organization_id', 'database_id', 'name']).orderBy('created_at').execute();
    branchIds.push(...branches.map((b) => b.id));
    const rows: Array<Insertable<BackupsTable>> = [];
    const states = ['success', 'failed', 'success', 'canceled', 'success', 'ignored', 'running'] as const;
    for (const [i, b] of branches.entries()) {
      if (b.name === 'idle') continue;
      for (let k = 0; k < 400 * (i + 1); k++) {
        // The newest success of some branches is deleted (it still happened), some failures are newer.
        const state = states[(k + i) % states.length];
        rows.push(backup(b, k, { state, deleted_at: k % 5 === i ? nowIso(now) : null, ...(state === 'running' ? { completed_at: null } : {}) }));
      }
    }
    const db = server.ctx.db;
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += 200) await trx.insertInto('backups').values(rows.slice(i, i + 200)).execute();
    });
  });
  after(async () => {
    await server?.close();
  });

  test('branchFreshness: the newest success per branch as a seek equals the grouped max over all backups', async () => {
    const db = server.ctx.db;
    const orgId = (await db.selectFrom('organizations').select('id').where('name', '=', 'default').executeTakeFirstOrThrow()).id;
    // What it read before: the max grouped by branch over every successful backup.
    const grouped = new Map((await db.selectFrom('backups').select(['branch_id', (eb) => eb.fn.max('completed_at').as('m')]).where('state', '=', 'success').groupBy('branch_id').execute()).map((r) => [r.branch_id, r.m as string | null]));
    for (const opts of [{}, { organizationId: orgId }]) {
      const fresh = await branchFreshness(server.ctx, opts);
      assert.ok(fresh.length >= 3, JSON.stringify(fresh));
      for (const f of fresh) assert.equal(f.last_success_at, grouped.get(f.branch_id) ?? null, f.branch_id);
      assert.ok(fresh.some((f) => f.last_success_at === null), 'a covered branch without any backup');
    }
    assert.deepEqual(await branchFreshness(server.ctx, { organizationId: 'nonexistent' }), []);
  });

  test('retention retries deleted backups that still have a stored copy: all at the first pass, then the new ones and the failed ones', async () => {
    const db = server.ctx.db;
    const branch = await db.selectFrom('branches').select(['id', 'organization_id', 'database_id']).where('id', '=', branchIds[0]).executeTakeFirstOrThrow();
    const local = await db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', branch.organization_id).executeTakeFirstOrThrow();
    // A destination that cannot be reached: removals from it fail.
    const unreachable = newId();
    await db
      .insertInto('storage_destinations')
      .values({
        id: unreachable,
        organization_id: branch.organization_id,
        name: 'unreachable',
        provider: 's3',
        config_enc: server.ctx.secrets.seal(JSON.stringify({ bucket: 'b', region: 'us-east-1', endpoint: 'http://127.0.0.1:9', force_path_style: true, access_key_id: 'x', secret_access_key: 'y', max_attempts: 1 })),
        is_default: 0,
        created_at: nowIso(now),
        updated_at: nowIso(now),
      })
      .execute();
    /** A deleted backup with one stored copy (its file already gone: removing it succeeds). */
    async function leftover(deletedAt: Date, destinationId = local.id): Promise<{ backup: string; artifact: string }> {
      const b = backup(branch, 5000 + Math.floor(Math.random() * 1e6), { deleted_at: nowIso(deletedAt) });
      await db.insertInto('backups').values(b).execute();
      const artifact = newId();
      await db
        .insertInto('artifacts')
        .values({ id: artifact, backup_id: b.id!, destination_id: destinationId, destination_name: destinationId === local.id ? local.name : 'unreachable', provider: destinationId === local.id ? 'local' : 's3', path: `left/${b.id}.dump.zst`, size: 1, sha256: null, state: 'success', error: null, created_at: nowIso(now), updated_at: nowIso(now) })
        .execute();
      return { backup: b.id!, artifact };
    }
    const stateOf = async (artifact: string) => (await db.selectFrom('artifacts').select('state').where('id', '=', artifact).executeTakeFirstOrThrow()).state;

    const old = await leftover(new Date(now.getTime() - 30 * DAY));
    await sweepExpired(server.ctx);
    assert.equal(await stateOf(old.artifact), 'deleted', 'the first pass looks at every deleted backup');

    // Deleted since the previous pass: the next pass retries it.
    now = new Date(now.getTime() + 60_000);
    const recent = await leftover(now);
    // One whose removal fails, then keeps failing, then works.
    const failing = await leftover(now, unreachable);
    await sweepExpired(server.ctx);
    assert.equal(await stateOf(recent.artifact), 'deleted', 'deleted since the previous pass');
    assert.equal(await stateOf(failing.artifact), 'success', 'its removal failed');
    // Moved far into the past: only "failed last time" can bring it back; now its copy is removable.
    await db.updateTable('backups').set({ deleted_at: nowIso(new Date(now.getTime() - 30 * DAY)) }).where('id', '=', failing.backup).execute();
    await db.updateTable('artifacts').set({ destination_id: local.id, destination_name: local.name, provider: 'local' }).where('id', '=', failing.artifact).execute();
    now = new Date(now.getTime() + 60_000);
    await sweepExpired(server.ctx);
    assert.equal(await stateOf(failing.artifact), 'deleted', 'retried because it failed at the previous pass');

    // Deleted long before the previous pass and never seen: left to the next full pass (hourly,
    // or when the clock moves back, as here).
    const missed = await leftover(new Date(now.getTime() - 30 * DAY));
    now = new Date(now.getTime() + 60_000);
    await sweepExpired(server.ctx);
    assert.equal(await stateOf(missed.artifact), 'success', 'an incremental pass does not read every deleted backup');
    now = new Date(now.getTime() - 3_600_000);
    await sweepExpired(server.ctx);
    assert.equal(await stateOf(missed.artifact), 'deleted', 'a full pass does');
  });
});
