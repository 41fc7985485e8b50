/**
 * STRONGBOX_METRICS_LISTEN in real `strongbox serve` and `strongbox worker` processes: each
 * serves /metrics without a token on its own address (a worker has no API, so this is how
 * it is scraped), and the catalog's metrics agree whichever process is asked. The variable
 * itself is validated like every setting.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from '../src/config.js';
import { api, registerBranch, waitForBackup } from './helpers/server.js';
import { startCluster, type Cluster, type ClusterProcess } from './helpers/cluster.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from './helpers/databases.js';
import { catalogKind } from './helpers/catalog.js';
import { scrape } from './helpers/metrics.js';

describe('STRONGBOX_METRICS_LISTEN', () => {
  test('is host:port, [ipv6]:port or :port, and anything else stops the start with its name', () => {
    assert.equal(loadConfig({}).metricsListen, null);
    assert.deepEqual(loadConfig({ STRONGBOX_METRICS_LISTEN: '127.0.0.1:9464' }).metricsListen, { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(loadConfig({ STRONGBOX_METRICS_LISTEN: '[::1]:9464' }).metricsListen, { host: '::1', port: 9464 });
    assert.deepEqual(loadConfig({ STRONGBOX_METRICS_LISTEN: ':9464' }).metricsListen, { host: '0.0.0.0', port: 9464 });
    assert.deepEqual(loadConfig({ STRONGBOX_METRICS_LISTEN: 'metrics.internal:0' }).metricsListen, { host: 'metrics.internal', port: 0 });
    for (const bad of ['9464', '127.0.0.1', '127.0.0.1:99999', 'http://127.0.0.1:9464', '127.0.0.1:94x', 'a b:1']) {
      assert.throws(() => loadConfig({ STRONGBOX_METRICS_LISTEN: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'STRONGBOX_METRICS_LISTEN' && /host:port/.test(e.message), bad);
    }
  });

  describe('in serve and worker processes', () => {
    let cluster: Cluster;
    const source = uniqueName('sbx_metrics_listen');

    /** The address a process logged for its metrics listener. */
    const metricsUrl = (p: ClusterProcess): string => {
      const line = p.logs().find((l) => typeof l.metrics === 'string');
      assert.ok(line, `${p.name} logged no metrics address:\n${p.logText().slice(-2000)}`);
      return line.metrics as string;
    };

    before(async () => {
      // Port 0: each process picks a free port and logs it.
      cluster = await startCluster({ workers: catalogKind() === 'postgres' ? 1 : 0, env: { STRONGBOX_METRICS_LISTEN: '127.0.0.1:0' } });
      await createDatabase('postgresql', source);
      await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key); insert into t select generate_series(1, 100)'));
    });
    after(async () => {
      await cluster?.close();
      await dropDatabase('postgresql', source);
    });

    test('every process serves /metrics without a token; the API still asks for one', async () => {
      for (const p of cluster.processes) {
        const r = await scrape(`${metricsUrl(p)}/metrics`);
        assert.equal(r.status, 200, `${p.name}: ${r.body.slice(0, 300)}`);
        assert.match(r.contentType ?? '', /^text\/plain; version=0\.0\.4/);
        assert.equal(r.metrics!.value('strongbox_catalog_up'), 1, p.name);
        assert.equal(r.metrics!.find('strongbox_build_info').length, 1, p.name);
        assert.ok(r.metrics!.types.has('strongbox_scheduler_lag_seconds'), p.name);
      }
      assert.equal((await scrape(`${cluster.url}/metrics`)).status, 401);
      assert.equal((await scrape(`${cluster.url}/metrics`, `Bearer ${cluster.token}`)).status, 200);
    });

    test('every process reports the same last successful backup, whoever took it', async () => {
      const branchPath = await registerBranch(cluster, 'default', 'listendb', 'postgresql', 'main', pgUrl(source));
      const r = await api(cluster, 'POST', `${branchPath}/backups`, {});
      assert.equal(r.status, 201);
      const done = await waitForBackup(cluster as any, branchPath, r.body.id);
      assert.equal(done.state, 'success');
      const labels = { organization: 'default', database: 'listendb', branch: 'main' };
      for (const p of cluster.processes) {
        const m = (await scrape(`${metricsUrl(p)}/metrics`)).metrics!;
        assert.equal(m.value('strongbox_last_successful_backup_timestamp_seconds', labels), Date.parse(done.completed_at) / 1000, p.name);
        assert.equal(m.value('strongbox_backups', { organization: 'default', state: 'success' }), 1, p.name);
      }
      // The process that ran it recorded its duration; the others did not.
      const counts = await Promise.all(cluster.processes.map(async (p) => (await scrape(`${metricsUrl(p)}/metrics`)).metrics!.value('strongbox_backup_duration_seconds_count', { outcome: 'success' }) ?? 0));
      assert.equal(counts.reduce((a, b) => a + b, 0), 1);
    });

    test('the listener stops with its process', async () => {
      const p = cluster.processes.at(-1)!;
      const url = metricsUrl(p);
      assert.equal(await p.stop(), 0);
      await assert.rejects(fetch(`${url}/metrics`));
    });
  });
});
