import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.js';

test('defaults are the embedded ones', () => {
  const c = loadConfig({});
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.dataDir, path.resolve('./data'));
  assert.equal(c.catalogUrl, `sqlite:${path.resolve('./data/catalog.sqlite')}`);
  assert.equal(c.bootstrapToken, null);
  assert.equal(c.maxConcurrentBackups, 2);
  assert.equal(c.storagePricePerGbMonth, 0.023);
});

test('a bad value stops with the variable named, and a secret is never echoed', () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ STRONGBOX_PORT: 'eighty' }, 'STRONGBOX_PORT'],
    [{ STRONGBOX_PORT: '70000' }, 'STRONGBOX_PORT'],
    [{ STRONGBOX_HOST: 'bad host!' }, 'STRONGBOX_HOST'],
    [{ STRONGBOX_CATALOG_URL: 'mysql://x' }, 'STRONGBOX_CATALOG_URL'],
    [{ STRONGBOX_BOOTSTRAP_TOKEN: 'no-colon-here-at-all' }, 'STRONGBOX_BOOTSTRAP_TOKEN'],
    [{ STRONGBOX_BOOTSTRAP_TOKEN: 'id01:short' }, 'STRONGBOX_BOOTSTRAP_TOKEN'],
    [{ STRONGBOX_SECRET_KEY: 'abc' }, 'STRONGBOX_SECRET_KEY'],
    [{ STRONGBOX_ZSTD_LEVEL: '25' }, 'STRONGBOX_ZSTD_LEVEL'],
    [{ STRONGBOX_MAX_CONCURRENT_BACKUPS: '0' }, 'STRONGBOX_MAX_CONCURRENT_BACKUPS'],
    [{ STRONGBOX_STORAGE_PRICE_PER_GB_MONTH: '-1' }, 'STRONGBOX_STORAGE_PRICE_PER_GB_MONTH'],
    [{ STRONGBOX_LOG_LEVEL: 'loud' }, 'STRONGBOX_LOG_LEVEL'],
  ];
  for (const [env, variable] of cases) {
    assert.throws(
      () => loadConfig(env),
      (e: unknown) => e instanceof ConfigError && e.variable === variable && e.message.startsWith(variable),
      JSON.stringify(env),
    );
  }
  try {
    loadConfig({ STRONGBOX_BOOTSTRAP_TOKEN: 'bad id!:supersecretvalue123456' });
    assert.fail('accepted');
  } catch (e) {
    assert.ok(!(e as Error).message.includes('supersecretvalue123456'));
  }
  const ok = loadConfig({ STRONGBOX_BOOTSTRAP_TOKEN: 'admin01:0123456789abcdef0123' });
  assert.deepEqual(ok.bootstrapToken, { id: 'admin01', secret: '0123456789abcdef0123' });
});

test('STRONGBOX_LOCAL_ROOTS: absolute folders, after the data dir\'s backups folder, which is always one', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-config-'));
  try {
    assert.deepEqual(loadConfig({ STRONGBOX_DATA_DIR: '/srv/sb' }).localRoots, ['/srv/sb/backups']);
    assert.deepEqual(loadConfig({ STRONGBOX_DATA_DIR: '/srv/sb', STRONGBOX_LOCAL_ROOTS: `/mnt/nas/${path.delimiter}${path.delimiter}/srv/sb/backups${path.delimiter}/mnt/usb/x/..` }).localRoots, ['/srv/sb/backups', '/mnt/nas', '/mnt/usb']);
    fs.writeFileSync(path.join(dir, 'file'), '');
    for (const [value, why] of [
      ['relative/dir', /STRONGBOX_LOCAL_ROOTS: "relative\/dir" is not an absolute path/],
      [path.join(dir, 'file'), /STRONGBOX_LOCAL_ROOTS: ".*file" is not a directory/],
    ] as const) {
      assert.throws(() => loadConfig({ STRONGBOX_LOCAL_ROOTS: value }), (e: unknown) => e instanceof ConfigError && e.variable === 'STRONGBOX_LOCAL_ROOTS' && why.test(e.message));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
