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
import { createDatabase, dropDatabase, pgUrl, uniqueName } from './databases.js';

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

/** A new, empty catalog of `kind` (default: the matrix's). */
export async function newTestCatalog(kind: CatalogKind = catalogKind()): Promise<TestCatalog> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-catalog-'));
    return { kind, url: `sqlite:${path.join(dir, 'catalog.sqlite')}`, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const name = uniqueName('sbx_catalog');
  await createDatabase('postgresql', name);
  const url = pgUrl(name).replace(/^postgresql:/, 'postgres:');
  return { kind, url, drop: () => dropDatabase('postgresql', name) };
}
