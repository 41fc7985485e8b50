/**
 * Shared pieces of the chaos suite (test/chaos/): small source databases, an S3
 * destination on the test S3 server, restores compared row for row, and an audit of what
 * storage holds against what the catalog says.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { parseS3Config, s3Provider } from '../../src/storage/s3/index.js';
import { s3DestinationConfig, type S3TestServer } from './s3server.js';

export { s3DestinationConfig };
import { api, until } from './server.js';
import { createDatabase, mysqlUrl, pgUrl, tableFingerprints, withMysqlConnection, withPgClient, type TableFingerprint } from './databases.js';

type Kind = 'postgresql' | 'mysql';
type Target = { url: string; token: string };

export const urlOf = (kind: Kind, db: string) => (kind === 'postgresql' ? pgUrl(db) : mysqlUrl(db));


/**
 * A new database `name` with a table `items` of `rows` rows and, when `randomMiB` > 0, a
 * table `a_payload` holding that many MiB of random (incompressible) bytes in 1 MiB rows,
 * so that its dump takes a moment and spans several 5 MiB S3 parts.
 */
export async function createSource(kind: Kind, name: string, rows: number, randomMiB = 0): Promise<string> {
  await createDatabase(kind, name);
  const url = urlOf(kind, name);
  if (kind === 'postgresql') {
    await withPgClient(url, async (c) => {
      await c.query(`CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty integer, note text);
        INSERT INTO items SELECT g, 'item ' || g, g % 17, CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END FROM generate_series(1, ${rows}) g;
        CREATE TABLE a_payload (id integer PRIMARY KEY, data bytea NOT NULL);`);
      for (let i = 0; i < randomMiB; i++) await c.query('INSERT INTO a_payload VALUES ($1, $2)', [i + 1, randomBytes(1024 * 1024)]);
    });
  } else {
    await withMysqlConnection(url, async (c) => {
      await c.query(`CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, qty INT, note TEXT) ENGINE=InnoDB;
        CREATE TABLE a_payload (id INT PRIMARY KEY, data LONGBLOB NOT NULL) ENGINE=InnoDB;`);
      for (let start = 1; start <= rows; start += 1000) {
        const values = Array.from({ length: Math.min(1000, rows - start + 1) }, (_, i) => {
          const g = start + i;
          return [g, `item ${g}`, g % 17, g % 5 === 0 ? null : createHash('md5').update(String(g)).digest('hex')];
        });
        await c.query('INSERT INTO items VALUES ?', [values]);
      }
      for (let i = 0; i < randomMiB; i++) await c.query('INSERT INTO a_payload VALUES (?, ?)', [i + 1, randomBytes(1024 * 1024)]);
    });
  }
  return url;
}

/** Poll a branch until its restore leaves pending/running. */
export async function waitForRestoreOf(target: Target, dbPath: string, branch: string, timeoutMs = 120_000): Promise<any> {
  return until(
    `the restore of ${branch}`,
    async () => {
      const r = await api(target, 'GET', `${dbPath}/branches/${branch}`).catch(() => null);
      if (r === null || r.status >= 500) return undefined; // serve is restarting
      if (r.status !== 200) throw new Error(`GET branch ${branch}: ${r.status} ${JSON.stringify(r.body)}`);
      const state = r.body.restore?.state;
      return state === 'pending' || state === 'running' ? undefined : r.body;
    },
    timeoutMs,
    200,
  );
}

/** Poll a backup until it leaves pending/running, riding out serve restarts. */
export async function waitForBackupOf(target: Target, branchPath: string, id: string, timeoutMs = 120_000): Promise<any> {
  return until(
    `backup ${id}`,
    async () => {
      const r = await api(target, 'GET', `${branchPath}/backups/${id}`).catch(() => null);
      if (r === null || r.status >= 500) return undefined;
      if (r.status !== 200) throw new Error(`GET backup ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.state === 'pending' || r.body.state === 'running' ? undefined : r.body;
    },
    timeoutMs,
    200,
  );
}

/** Start a restore of `backupId` into a new branch (and database) `name`; returns the branch. */
export async function startRestore(target: Target, dbPath: string, backupId: string, name: string): Promise<any> {
  const r = await api(target, 'POST', `${dbPath}/branches`, { name, backup_id: backupId });
  assert.equal(r.status, 201, `restore ${backupId} into ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Fingerprints of the source's tables, to compare restores with (computed once). */
export async function fingerprintsOf(kind: Kind, db: string): Promise<Record<string, TableFingerprint>> {
  return tableFingerprints(kind, urlOf(kind, db));
}

/** Whether database `name` exists on the test server of `kind`. */
export async function databaseExists(kind: Kind, name: string): Promise<boolean> {
  if (kind === 'postgresql') return withPgClient(pgUrl('postgres'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount! > 0);
  return withMysqlConnection(mysqlUrl('mysql'), async (c) => {
    const [rows] = await c.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [name]);
    return (rows as unknown[]).length > 0;
  });
}

/** What one destination holds: every object with its size and sha256. */
export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every file under a local destination's folder (keys relative to it, hidden partial files included), or those `only` keeps. */
export function localObjects(root: string, only: (key: string) => boolean = () => true): StoredObject[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && only(path.relative(root, path.join(e.parentPath ?? (e as any).path, e.name))))
    .map((e) => {
      const file = path.join(e.parentPath ?? (e as any).path, e.name);
      return { key: path.relative(root, file), size: fs.statSync(file).size, sha256: sha256File(file) };
    })
    .sort((a, b) => a.key.localeCompare(b.key));
}

/** Every object under `prefix` of the test S3 server (or those `only` keeps), read back through the server itself (not the proxy and its faults). */
export async function s3Objects(s3: S3TestServer, prefix: string, only: (key: string) => boolean = () => true): Promise<StoredObject[]> {
  const provider = s3Provider(parseS3Config({ ...s3DestinationConfig(s3, prefix), endpoint: s3.directEndpoint }));
  const out: StoredObject[] = [];
  for await (const { key, size } of provider.list('')) {
    if (!only(key)) continue;
    const hash = createHash('sha256');
    for await (const chunk of await provider.read(key)) hash.update(chunk as Buffer);
    out.push({ key, size, sha256: hash.digest('hex') });
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}
