/**
 * The contract documents the tests read are kept in the repository (reference/), so that a
 * clone anywhere passes. Where the team's shared folder sits beside the checkout, the
 * copies must be exactly its documents: a contract that changed there must be copied here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REFERENCE_DIR, SHARED_REFERENCE_DIR } from './helpers/reference.js';

const list = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.md')).sort();

test('the repository holds the contract documents', () => {
  const files = list(REFERENCE_DIR);
  for (const f of ['planetscale-create-backup.md', 'planetscale-list-backups.md', 'yandex-mdb-postgresql-list-backups.md', 'yandex-mdb-mysql-list-backups.md', 'backupman-list-backups.md']) {
    assert.ok(files.includes(f), `reference/${f} is missing`);
  }
});

test('the copies equal ../shared/reference where it exists', { skip: fs.existsSync(SHARED_REFERENCE_DIR) ? false : `no ${SHARED_REFERENCE_DIR} beside this checkout` }, () => {
  assert.deepEqual(list(REFERENCE_DIR), list(SHARED_REFERENCE_DIR), 'the same documents');
  for (const f of list(SHARED_REFERENCE_DIR)) {
    assert.ok(fs.readFileSync(path.join(REFERENCE_DIR, f)).equals(fs.readFileSync(path.join(SHARED_REFERENCE_DIR, f))), `reference/${f} differs from ${path.join(SHARED_REFERENCE_DIR, f)}: copy it again`);
  }
});
