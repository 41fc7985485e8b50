/**
 * /metrics after real work: a real PostgreSQL backup, a failed one, a verification and a
 * backup held running; the values are checked against the catalog and the API (last
 * success = completed_at, stored bytes = the artifacts' sizes, counters moved by one). The
 * API's /metrics needs a token (and shows only what the token may read); the separate
 * listener needs none.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from './helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from './helpers/databases.js';
import { scrape, type Scrape } from './helpers/metrics.js';
import { FAILURE_CLASSES, failureClass } from '../src/metrics.js';
import { startMetricsListener, type MetricsListener } from '../src/api/metrics-route.js';
import { JobRunner } from '../src/jobs/runner.js';
import { openCatalog } from '../src/catalog/db.js';
import { Scheduler } from '../src/jobs/scheduler.js';

describe('GET /metrics', () => {
  let server: TestServer;
  const source = uniqueName('sbx_metrics');
  const broken = uniqueName('sbx_metrics_gone');
  let branchPath: string;
  let brokenPath: string;
  let backup: any;
  const labels = { organization: 'default', database: 'metricsdb', branch: 'main' };

  const get = async (): Promise<Scrape> => {
    const r = await scrape(`${server.url}/metrics`, `Bearer ${server.token}`);
    assert.equal(r.status, 200, r.body);
    return r.metrics!;
  };

  before(async () => {
    server = await startServer();
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 2000) g'));
    branchPath = await registerBranch(server, 'default', 'metricsdb', 'postgresql', 'main', pgUrl(source));
    await createDatabase('postgresql', broken);
    brokenPath = await registerBranch(server, 'default', 'metricsdb', 'postgresql', 'gone', pgUrl(broken));
    await dropDatabase('postgresql', broken);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
    await dropDatabase('postgresql', broken);
  });

  test('a real backup moves the histograms and shows up in the catalog metrics', async () => {
    const before = await get();
    const count = (m: Scrape, name: string, l: Record<string, string>) => m.value(name, l) ?? 0;
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201);
    backup = await waitForBackup(server, branchPath, r.body.id);
    assert.equal(backup.state, 'success');
    const m = await get();

    assert.equal(count(m, 'strongbox_backup_duration_seconds_count', { engine: 'postgresql', outcome: 'success' }), count(before, 'strongbox_backup_duration_seconds_count', { engine: 'postgresql', outcome: 'success' }) + 1);
    assert.ok(m.value('strongbox_backup_duration_seconds_sum', { engine: 'postgresql', outcome: 'success' })! > 0);
    assert.equal(count(m, 'strongbox_backup_size_bytes_count', { engine: 'postgresql' }), count(before, 'strongbox_backup_size_bytes_count', { engine: 'postgresql' }) + 1);
    const row = await server.ctx.db.selectFrom('backups').select(['completed_at', 'size']).where('id', '=', backup.id).executeTakeFirstOrThrow();
    assert.ok(row.size > 0);
    // The size histogram saw this backup's stored size.
    assert.equal(count(m, 'strongbox_backup_size_bytes_sum', { engine: 'postgresql' }) - count(before, 'strongbox_backup_size_bytes_sum', { engine: 'postgresql' }), Number(row.size));

    assert.equal(m.value('strongbox_last_successful_backup_timestamp_seconds', labels), Date.parse(row.completed_at!) / 1000);
    assert.equal(m.value('strongbox_last_backup_failed', labels), 0);
    // The database's required development policy covers the branch: it is not overdue.
    assert.equal(m.value('strongbox_branch_overdue', labels), 0);
    assert.ok(m.value('strongbox_branch_backup_frequency_seconds', labels)! > 0);

    const artifacts = await api(server, 'GET', `${branchPath}/backups/${backup.id}/artifacts`);
    const rows = await server.ctx.db.selectFrom('artifacts').select(['destination_name', 'size', 'state']).where('backup_id', '=', backup.id).execute();
    assert.ok(rows.length > 0 && rows.every((a) => a.state === 'success'));
    for (const a of rows) {
      assert.equal(m.value('strongbox_stored_bytes', { organization: 'default', destination: a.destination_name }), rows.filter((x) => x.destination_name === a.destination_name).reduce((n, x) => n + Number(x.size), 0));
      assert.equal(m.value('strongbox_stored_artifacts', { organization: 'default', destination: a.destination_name }), 1);
      assert.equal(m.value('strongbox_destination_last_write_failed', { organization: 'default', destination: a.destination_name }), 0);
    }
    assert.equal(m.value('strongbox_stored_bytes', { organization: 'default' }), artifacts.body.data.reduce((n: number, a: any) => n + Number(a.size), 0), 'the API shows the same sizes');
    assert.equal(m.value('strongbox_backups', { organization: 'default', state: 'success' }), 1);
    assert.equal(m.value('strongbox_catalog_up'), 1);
    assert.equal(m.value('strongbox_build_info'), 1);
    // Nothing is queued now, and the gauge says so rather than having no series.
    assert.equal(m.value('strongbox_jobs', { state: 'queued', kind: 'backup' }), 0);
    assert.equal(m.value('strongbox_jobs', { state: 'running' }), undefined);
  });

  test('a failed backup counts as a failure with its class, and marks the branch', async () => {
    const before = await get();
    const r = await api(server, 'POST', `${brokenPath}/backups`, {});
    assert.equal(r.status, 201);
    const done = await waitForBackup(server, brokenPath, r.body.id);
    assert.equal(done.state, 'failed');
    const row = await server.ctx.db.selectFrom('backups').select(['error', 'completed_at']).where('id', '=', r.body.id).executeTakeFirstOrThrow();
    const reason = failureClass(row.error);
    assert.equal(reason, 'connection', `a database that is gone is a connection problem: ${row.error}`);
    const m = await get();
    const failures = (s: Scrape) => s.value('strongbox_job_failures_total', { kind: 'backup', reason })!;
    assert.equal(failures(m), failures(before) + 1, `a backup failure of class ${reason} (${row.error})`);
    assert.equal(m.value('strongbox_job_failures_total', { kind: 'backup' }), before.value('strongbox_job_failures_total', { kind: 'backup' })! + 1, 'one failure, one class');
    assert.equal(m.value('strongbox_backup_duration_seconds_count', { engine: 'postgresql', outcome: 'failed' }), (before.value('strongbox_backup_duration_seconds_count', { engine: 'postgresql', outcome: 'failed' }) ?? 0) + 1);
    const gone = { ...labels, branch: 'gone' };
    assert.equal(m.value('strongbox_last_backup_failed', gone), 1);
    assert.equal(m.value('strongbox_last_failed_backup_timestamp_seconds', gone), Date.parse(row.completed_at!) / 1000);
    assert.equal(m.value('strongbox_last_successful_backup_timestamp_seconds', gone), undefined, 'never succeeded: no timestamp');
    assert.equal(m.value('strongbox_last_backup_failed', labels), 0, 'the other branch is unaffected');
    assert.equal(m.value('strongbox_backups', { organization: 'default', state: 'failed' }), 1);
    // The dump failed, not the destination.
    assert.equal(m.value('strongbox_destination_last_write_failed', { organization: 'default' }), 0);
  });

  test('a verification is counted and dated', async () => {
    const before = await get();
    const v = await api(server, 'POST', `${branchPath}/backups/${backup.id}/verify`, {});
    assert.equal(v.status, 202, JSON.stringify(v.body));
    await until('the verification', async () => {
      const r = await api(server, 'GET', `${branchPath}/backups/${backup.id}/verifications`);
      const s = r.body.data.find((x: any) => x.id === v.body.id)?.state;
      return s === 'success' || s === 'failed' ? s : undefined;
    });
    const m = await get();
    assert.equal(m.value('strongbox_verifications_total', { kind: 'quick', outcome: 'passed' }), before.value('strongbox_verifications_total', { kind: 'quick', outcome: 'passed' })! + 1);
    const row = await server.ctx.db.selectFrom('backups').select(['verified_at']).where('id', '=', backup.id).executeTakeFirstOrThrow();
    assert.equal(m.value('strongbox_last_verification_timestamp_seconds', labels), Date.parse(row.verified_at!) / 1000);
    assert.equal(m.value('strongbox_last_verification_failed', labels), 0);
  });

  test('a running backup shows under its worker', async () => {
    const locker = new pg.Client({ connectionString: pgUrl(source) });
    await locker.connect();
    try {
      // pg_dump waits on this lock, so the backup is surely running while we look.
      await locker.query('begin; lock table t in access exclusive mode');
      const r = await api(server, 'POST', `${branchPath}/backups`, {});
      const m = await until('the backup to run', async () => {
        const s = await get();
        return s.value('strongbox_jobs', { state: 'running', kind: 'backup' }) === 1 ? s : undefined;
      });
      assert.equal(m.value('strongbox_jobs', { state: 'running', kind: 'backup', worker: server.runner.workerId }), 1);
      assert.equal(m.value('strongbox_backups', { organization: 'default', state: 'running' }), 1);
      await locker.query('rollback');
      assert.equal((await waitForBackup(server, branchPath, r.body.id)).state, 'success');
      assert.equal((await get()).value('strongbox_jobs', { state: 'running' }), undefined);
    } finally {
      await locker.end();
    }
  });

  test('the Prometheus text format, with its content type', async () => {
    const r = await scrape(`${server.url}/metrics`, server.token);
    assert.equal(r.status, 200, 'a plain <id>:<secret> works too');
    assert.match(r.contentType ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(r.metrics!.types.get('strongbox_backup_duration_seconds'), 'histogram');
    assert.equal(r.metrics!.types.get('strongbox_job_failures_total'), 'counter');
    assert.equal(r.metrics!.types.get('strongbox_last_successful_backup_timestamp_seconds'), 'gauge');
    assert.ok(r.metrics!.types.has('process_cpu_seconds_total'), 'the process metrics too');
  });

  test('without a valid token: 401', async () => {
    const none = await scrape(`${server.url}/metrics`);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body).code, 'unauthorized');
    const [id] = server.token.split(':');
    const wrong = await scrape(`${server.url}/metrics`, `Bearer ${id}:not-the-secret-at-all`);
    assert.equal(wrong.status, 401);
    assert.doesNotMatch(wrong.body, /strongbox_/);
  });

  test("a token sees its organization's catalog metrics only with read_backups on the whole organization", async () => {
    const t = await api(server, 'POST', '/v1/organizations/default/service-tokens', { name: 'prometheus' });
    assert.equal(t.status, 201);
    const token = `${t.body.id}:${t.body.token}`;
    const grant = async (body: object) => assert.equal((await api(server, 'POST', `/v1/organizations/default/service-tokens/${t.body.id}/accesses`, body)).status, 200);

    await grant({ database: 'metricsdb', branch: 'main', accesses: ['read_backups'] });
    const narrow = await scrape(`${server.url}/metrics`, `Bearer ${token}`);
    assert.equal(narrow.status, 200);
    assert.equal(narrow.metrics!.find('strongbox_last_successful_backup_timestamp_seconds').length, 0, 'a branch-scoped token cannot read the names of the other branches');
    assert.ok(narrow.metrics!.value('strongbox_backup_duration_seconds_count')! > 0, "this process's instruments are shown");

    await grant({ accesses: ['read_backups'] });
    const wide = await scrape(`${server.url}/metrics`, `Bearer ${token}`);
    assert.equal(wide.metrics!.value('strongbox_last_successful_backup_timestamp_seconds', labels), (await get()).value('strongbox_last_successful_backup_timestamp_seconds', labels));
  });

  test('a webhook whose endpoint fails shows as failing, and its attempt is counted', async () => {
    const receiver = http.createServer((_req, res) => res.writeHead(500).end('no'));
    await new Promise<void>((res) => receiver.listen(0, '127.0.0.1', res));
    try {
      const port = (receiver.address() as AddressInfo).port;
      const before = await get();
      assert.equal(before.value('strongbox_notification_targets_failing', { organization: 'default', type: 'webhook' }), 0, 'every type shows, at 0');
      const w = await api(server, 'POST', '/v1/organizations/default/webhooks', { url: `http://127.0.0.1:${port}/hook`, events: ['backup.failed'] });
      assert.equal(w.status, 201, JSON.stringify(w.body));
      const t = await api(server, 'POST', `/v1/organizations/default/webhooks/${w.body.id}/test`, {});
      assert.equal(t.status, 200, JSON.stringify(t.body));
      assert.equal(t.body.success, false);
      const m = await get();
      assert.equal(m.value('strongbox_notification_targets_failing', { organization: 'default', type: 'webhook' }), 1);
      assert.equal(m.value('strongbox_notification_targets_disabled', { organization: 'default', type: 'webhook' }), 0);
      assert.equal(m.value('strongbox_notification_deliveries_total', { type: 'webhook', outcome: 'failure' }), before.value('strongbox_notification_deliveries_total', { type: 'webhook', outcome: 'failure' })! + 1);
      assert.equal(m.value('strongbox_notification_targets_failing', { organization: 'default', type: 'slack' }), 0);
      assert.equal(typeof m.value('strongbox_notification_deliveries_pending', { organization: 'default' }), 'number');
      assert.equal((await api(server, 'DELETE', `/v1/organizations/default/webhooks/${w.body.id}`)).status, 204);
    } finally {
      await new Promise((res) => receiver.close(res));
    }
  });

  test('the separate listener serves the same metrics without a token', async () => {
    let listener: MetricsListener | null = null;
    try {
      listener = await startMetricsListener(server.ctx, { host: '127.0.0.1', port: 0 });
      const r = await scrape(`${listener.url}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.contentType ?? '', /^text\/plain; version=0\.0\.4/);
      const viaApi = await get();
      for (const name of ['strongbox_last_successful_backup_timestamp_seconds', 'strongbox_stored_bytes', 'strongbox_backups']) {
        assert.deepEqual(r.metrics!.find(name), viaApi.find(name), name);
      }
      assert.equal((await fetch(`${listener.url}/`)).status, 404);
      assert.equal((await fetch(`${listener.url}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await listener?.close();
    }
  });
});

describe('failureClass', () => {
  test('puts the reasons Strongbox records in a small fixed set of classes', () => {
    const cases: Array<[string | null, string]> = [
      ['pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "app"', 'auth'],
      ["mariadb-dump: Got error: 1045: \"Access denied for user 'app'@'localhost' (using password: YES)\" when trying to connect", 'auth'],
      ['pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "gone" does not exist', 'connection'],
      ['pg_dump: error: connection to server at "127.0.0.1", port 1 failed: Connection refused', 'connection'],
      ['pg_dump: error: query failed: ERROR:  permission denied for table secrets', 'permission'],
      ['some destinations failed: usb (the folder /mnt/usb is not writable (read-only file system))', 'permission'],
      ['some destinations failed: offsite (AccessDenied: Access Denied)', 'permission'],
      ['some destinations failed: local (ENOSPC: no space left on device, write)', 'disk_full'],
      ['the dump produced no data for 600 s (waiting on a lock, or the server hung) and was stopped', 'timeout'],
      ['some destinations failed: offsite (NoSuchBucket: The specified bucket does not exist)', 'storage'],
      ['pg_dump: error: Dumping the contents of table "t" failed: PQgetResult() failed.', 'dump'],
      ['interrupted: the worker running this stopped before it finished', 'interrupted'],
      ['canceled by request', 'canceled'],
      ['internal error (see the server log)', 'other'],
      [null, 'other'],
    ];
    for (const [reason, cls] of cases) assert.equal(failureClass(reason), cls, String(reason));
    for (const [reason] of cases) assert.ok((FAILURE_CLASSES as readonly string[]).includes(failureClass(reason)));
  });
});

describe('lease take-overs', () => {
  let server: TestServer;
  const source = uniqueName('sbx_metrics_lease');
  before(async () => {
    server = await startServer({}, { runner: false });
    await createDatabase('postgresql', source);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('a backup whose worker stopped renewing its lease is taken over, counted, and failed as interrupted', async () => {
    const branchPath = await registerBranch(server, 'default', 'leasedb', 'postgresql', 'main', pgUrl(source));
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    assert.equal(r.status, 201);
    // A worker claims it and then dies (never renews, never runs it).
    const gone = new JobRunner(server.ctx);
    assert.equal((await gone.claim())?.id, r.body.id);
    const claimed = await server.ctx.db.selectFrom('backups').select('lease_expires_at').where('id', '=', r.body.id).executeTakeFirstOrThrow();
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(claimed.lease_expires_at!) - Date.now()) + 100));
    const get = async () => (await scrape(`${server.url}/metrics`, server.token)).metrics!;
    const before = await get();
    assert.equal(await server.runner.recoverInterrupted(false), 1);
    const m = await get();
    assert.equal(m.value('strongbox_lease_takeovers_total'), before.value('strongbox_lease_takeovers_total')! + 1);
    assert.equal(m.value('strongbox_job_failures_total', { kind: 'backup', reason: 'interrupted' }), before.value('strongbox_job_failures_total', { kind: 'backup', reason: 'interrupted' })! + 1);
    assert.equal(m.value('strongbox_last_backup_failed', { organization: 'default', database: 'leasedb', branch: 'main' }), 1);
  });
});

describe('when the catalog cannot be read', () => {
  test('the scrape still answers, with strongbox_catalog_up 0 and no catalog series', async () => {
    const server = await startServer({}, { runner: false });
    let listener: MetricsListener | null = null;
    try {
      const ok = await scrape(`${server.url}/metrics`, server.token);
      assert.equal(ok.metrics!.value('strongbox_catalog_up'), 1);
      assert.ok(ok.metrics!.find('strongbox_stored_bytes').length > 0);
      // The same catalog through a connection that is gone (the server's own stays usable for its clean-up).
      const gone = await openCatalog(server.ctx.config.catalogUrl);
      await gone.close();
      listener = await startMetricsListener({ ...server.ctx, catalog: gone, db: gone.db }, { host: '127.0.0.1', port: 0 });
      const r = await scrape(`${listener.url}/metrics`);
      assert.equal(r.status, 200, 'Prometheus still gets the process metrics');
      assert.equal(r.metrics!.value('strongbox_catalog_up'), 0);
      assert.equal(r.metrics!.find('strongbox_stored_bytes').length, 0, 'no stale or made-up values');
      assert.equal(r.metrics!.value('strongbox_build_info'), 1);
      assert.match(fs.readFileSync(server.logFile, 'utf8'), /metrics: could not read the catalog/);
    } finally {
      await listener?.close();
      await server.close();
    }
  });
});

describe('the scheduler', () => {
  let now = Date.now();
  let server: TestServer;
  const source = uniqueName('sbx_metrics_sched');
  before(async () => {
    server = await startServer({}, { runner: false, clock: () => new Date(now) });
    await createDatabase('postgresql', source);
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  test('records how late its pass enqueued a due slot, and when the pass finished', async () => {
    await registerBranch(server, 'default', 'scheddb', 'postgresql', 'main', pgUrl(source));
    // Three days on: the database's default policies are long due.
    now += 3 * 86_400_000;
    const started = Date.now() / 1000;
    const result = await new Scheduler(server.ctx).tick();
    assert.ok(result.queued.length > 0, 'the development policy queued a backup');
    const slots = await server.ctx.db.selectFrom('backup_policies').select('last_ran_at').where('last_ran_at', 'is not', null).execute();
    const lag = Math.max(...slots.map((p) => (now - Date.parse(p.last_ran_at!)) / 1000));
    const m = (await scrape(`${server.url}/metrics`, server.token)).metrics!;
    assert.equal(m.value('strongbox_scheduler_lag_seconds'), lag);
    assert.ok(m.value('strongbox_scheduler_last_pass_timestamp_seconds')! >= Math.floor(started));
    assert.equal(m.value('strongbox_jobs', { state: 'queued', kind: 'backup' }), result.queued.length, 'no runner: they wait');
    // A pass with nothing due: no lag.
    await new Scheduler(server.ctx).tick();
    assert.equal((await scrape(`${server.url}/metrics`, server.token)).metrics!.value('strongbox_scheduler_lag_seconds'), 0);
  });
});
