/**
 * The catalog a test runs on: one matrix for the whole suite, not copies of tests.
 *
 * `STRONGBOX_TEST_CATALOG` picks it: `sqlite` (the default: a file in a temporary folder)
 * or `postgres` (a fresh database on the test PostgreSQL server, dropped afterwards). The
 * test runner (`test/run.ts`) runs every file that touches the catalog once per value.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { openCatalog } from '../../src/catalog/db.js';
import { createDatabase, dropDatabase, pgIdent, pgUrl, uniqueName, withPgClient } from './databases.js';

export type CatalogKind = 'sqlite' | 'postgres';

/** The catalog kind this test process runs on. */
export function catalogKind(): CatalogKind {
  const v = process.env.STRONGBOX_TEST_CATALOG ?? 'sqlite';
  if (v !== 'sqlite' && v !== 'postgres') throw new Error(`STRONGBOX_TEST_CATALOG must be sqlite or postgres, got "${v}"`);
  return v;
}

export interface TestCatalog {
  kind: CatalogKind;
  /** A value for STRONGBOX_CATALOG_URL. */
  url: string;
  /** Remove the catalog (the SQLite folder, or DROP DATABASE ... WITH (FORCE)). */
  drop(): Promise<void>;
}

/**
 * A new, empty catalog of `kind` (default: the matrix's). On PostgreSQL it is a copy of a
 * template database that the migrations already ran on (made once per set of migrations,
 * and kept for the next run), which saves a couple of seconds on each of the many servers
 * the suite starts. `fresh: true` runs the migrations on an empty database instead.
 */
export async function newTestCatalog(kind: CatalogKind = catalogKind(), opts: { fresh?: boolean } = {}): Promise<TestCatalog> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-catalog-'));
    return { kind, url: `sqlite:${path.join(dir, 'catalog.sqlite')}`, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const name = uniqueName('sbx_catalog');
  if (opts.fresh) await createDatabase('postgresql', name);
  else {
    const template = await migratedTemplate();
    await withPgClient(pgUrl('postgres'), (c) => c.query(`CREATE DATABASE ${pgIdent(name)} TEMPLATE ${pgIdent(template)}`));
  }
  const url = pgUrl(name).replace(/^postgresql:/, 'postgres:');
  return { kind, url, drop: () => dropDatabase('postgresql', name) };
}

let template: Promise<string> | null = null;

/** The name of a PostgreSQL catalog template for the current migrations, made if missing. */
function migratedTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = fileURLToPath(new URL('../../src/catalog/migrations/', import.meta.url));
    const hash = createHash('sha256');
    for (const f of fs.readdirSync(dir).sort()) hash.update(f).update(fs.readFileSync(path.join(dir, f)));
    const name = `sbx_catalog_tpl_${hash.digest('hex').slice(0, 16)}`;
    // One maker at a time across processes; the others find it made.
    await withPgClient(pgUrl('postgres'), async (c) => {
      await c.query('SELECT pg_advisory_lock(74210501)');
      try {
        const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (exists.rowCount) return;
        // Templates of older migrations are of no more use.
        const old = await c.query(`SELECT datname FROM pg_database WHERE datname LIKE 'sbx\\_catalog\\_tpl\\_%'`);
        for (const r of old.rows) await c.query(`DROP DATABASE IF EXISTS ${pgIdent(r.datname)} WITH (FORCE)`);
        const building = `${name}_building`;
        await c.query(`DROP DATABASE IF EXISTS ${pgIdent(building)} WITH (FORCE)`);
        await c.query(`CREATE DATABASE ${pgIdent(building)} TEMPLATE template0`);
        const catalog = await openCatalog(pgUrl(building).replace(/^postgresql:/, 'postgres:'));
        await catalog.close();
        // Renamed only once whole, so a run killed half-way never leaves a half-made template.
        await c.query(`ALTER DATABASE ${pgIdent(building)} RENAME TO ${pgIdent(name)}`);
      } finally {
        await c.query('SELECT pg_advisory_unlock(74210501)');
      }
    });
    return name;
  })();
  return template;
}
