/**
 * The WAL receiver survives kill -9 of the process running it, with no segment missing:
 * real `strongbox serve` / `strongbox worker` processes (helpers/cluster.ts) and a private
 * PostgreSQL with replication. The process holding the branch's lease is killed with -9 in
 * the middle of a segment (its pg_receivewal outlives it, as after a real crash); on the
 * PostgreSQL catalog another process takes the branch over once the lease lapses, on SQLite
 * the restarted serve ships what the dead one left in its spool. Afterwards the archive
 * holds every segment from the first to the last, and only one stream is left on the server.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { api, registerBranch, until } from '../helpers/server.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { catalogKind } from '../helpers/catalog.js';
import { startPrivatePostgres, type PrivateServer } from '../helpers/private-servers.js';

let cluster: Cluster | undefined;
let pgs: PrivateServer | undefined;
let client: pg.Client | undefined;

after(async () => {
  await client?.end().catch(() => {});
  await cluster?.close();
  await pgs?.stop();
});

interface ArchiverRow {
  state: string;
  worker_id: string | null;
  error: string | null;
}

async function archiver(): Promise<ArchiverRow> {
  const [row] = await cluster!.query<ArchiverRow>('SELECT state, worker_id, error FROM archivers');
  return row;
}

async function names(): Promise<string[]> {
  const rows = await cluster!.query<{ name: string }>("SELECT name FROM archive_files WHERE kind = 'wal' AND state = 'success'");
  return rows.map((r) => r.name).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
}

async function switchAndWait(): Promise<string> {
  const seg = (await client!.query(`SELECT pg_walfile_name(pg_current_wal_lsn()) AS f`)).rows[0].f as string;
  await client!.query('SELECT pg_switch_wal()');
  await until(`${seg} archived`, async () => ((await names()).includes(seg) ? true : undefined), 60_000, 250);
  return seg;
}

function segno(name: string): number {
  return parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16);
}

test('kill -9 of the process running the WAL receiver, mid-segment: taken over, and no segment is missing', async () => {
  cluster = await startCluster({ workers: catalogKind() === 'postgres' ? 1 : 0 });
  pgs = await startPrivatePostgres({ replication: true });
  client = new pg.Client({ connectionString: pgs.url });
  await client.connect();
  const server = { url: cluster.url, token: cluster.token };
  const branchPath = await registerBranch(server, 'default', 'ledger', 'postgresql', 'main', pgs.url);
  const on = await api(server, 'PATCH', branchPath, { archiving: true });
  assert.equal(on.status, 200, JSON.stringify(on.body));
  await until('streaming', async () => ((await archiver())?.state === 'streaming' ? true : undefined), 60_000, 250);

  await client.query('CREATE TABLE entries (id serial PRIMARY KEY, note text)');
  await client.query(`INSERT INTO entries (note) SELECT md5(g::text) FROM generate_series(1, 2000) g`);
  await switchAndWait();
  await switchAndWait();

  // Mid-segment: the receiver has part of the current segment in its .partial file.
  await client.query(`INSERT INTO entries (note) SELECT md5(g::text) FROM generate_series(1, 2000) g`);
  const owner = (await archiver()).worker_id;
  const victim = cluster.ownerOf(owner);
  assert.ok(victim, `the lease owner ${owner} is one of the processes`);
  const killedPid = victim.pid;
  await victim.kill9();
  // Writes go on while nobody archives; they must all arrive.
  await client.query(`INSERT INTO entries (note) SELECT md5(g::text) FROM generate_series(1, 2000) g`);
  await client.query('SELECT pg_switch_wal()');
  await client.query(`INSERT INTO entries (note) VALUES ('while down')`);
  await client.query('SELECT pg_switch_wal()');

  if (cluster.kind === 'sqlite') {
    // One process per SQLite catalog: it comes back, finds its spool and the lapsed lease.
    await victim.start();
  }
  await until(
    'another process (or the restarted one) streaming',
    async () => {
      const a = await archiver();
      const p = cluster!.ownerOf(a.worker_id);
      return a.state === 'streaming' && p && p.pid !== killedPid ? true : undefined;
    },
    90_000,
    250,
  );
  if (cluster.kind === 'postgres') assert.notEqual(cluster.ownerOf((await archiver()).worker_id), victim, 'the other process took it over');

  await client.query(`INSERT INTO entries (note) VALUES ('after')`);
  const last = await switchAndWait();
  const all = await names();
  const first = all[0];
  assert.equal(all.at(-1), last);
  const expected = Array.from({ length: segno(last) - segno(first) + 1 }, (_, i) => segno(first) + i);
  assert.deepEqual(
    all.map(segno),
    expected,
    `contiguous from ${first} to ${last}: ${all.join(' ')}`,
  );
  // The dead receiver's pg_receivewal was ended through the server: one stream is left.
  const streams = await client.query(`SELECT application_name FROM pg_stat_replication WHERE application_name LIKE 'strongbox_wal_%'`);
  assert.equal(streams.rowCount, 1, JSON.stringify(streams.rows));
  // The slot holds WAL from the newest stored segment's end.
  const [file] = await cluster.query<{ end_lsn: string }>(`SELECT end_lsn FROM archive_files WHERE name = '${last}'`);
  await until('slot moved', async () => {
    const slot = (await client!.query(`SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name LIKE 'strongbox_%'`)).rows[0];
    return slot.lsn === file.end_lsn ? true : undefined;
  }, 10_000);
});
