import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { StorageError } from '../../src/storage/provider.js';
import { openStorage, parseStorageUrl, redactStorageConfig } from '../../src/storage/registry.js';

const permanent = (e: unknown): boolean => e instanceof StorageError && e.permanent;

describe('storage registry', () => {
  test('file:// URLs open a local provider', () => {
    const spec = parseStorageUrl('file:///srv/strongbox/backups/');
    assert.deepEqual(spec, { provider: 'local', config: { path: '/srv/strongbox/backups' } });
    const provider = openStorage(spec);
    assert.equal(provider.provider, 'local');
    assert.deepEqual(provider.describe(), { provider: 'local', path: '/srv/strongbox/backups' });
    assert.deepEqual(parseStorageUrl('file://localhost/srv/x%20y'), { provider: 'local', config: { path: '/srv/x y' } });
  });

  test('bad file URLs and unknown schemes are refused', () => {
    assert.throws(() => parseStorageUrl('file://otherhost/srv'), permanent);
    assert.throws(() => parseStorageUrl('file:///srv?x=1'), permanent);
    assert.throws(() => parseStorageUrl('ftp://host/x'), /unsupported storage URL scheme "ftp:"/);
    assert.throws(() => parseStorageUrl('not a url'), permanent);
  });

  test('s3 and google_drive URLs and configurations', () => {
    assert.deepEqual(parseStorageUrl('s3://bucket/some/prefix/'), { provider: 's3', config: { bucket: 'bucket', prefix: 'some/prefix' } });
    assert.deepEqual(parseStorageUrl('gdrive://folder-id'), { provider: 'google_drive', config: { folder_id: 'folder-id' } });
    assert.throws(() => parseStorageUrl('s3://key:secret@bucket/x'), (e: unknown) => e instanceof StorageError && e.permanent && !e.message.includes('secret'));
    assert.throws(() => openStorage({ provider: 's3', config: {} }), /bucket/);
    assert.throws(() => openStorage({ provider: 'google_drive', config: {} }), /folder_id/);
    const s3 = openStorage({ provider: 's3', config: { bucket: 'b', region: 'eu-west-1', access_key_id: 'AKIAEXAMPLE', secret_access_key: 'topsecretvalue' } });
    assert.equal(s3.provider, 's3');
    assert.ok(!JSON.stringify(s3.describe()).includes('topsecretvalue'));
    assert.equal(redactStorageConfig({ provider: 's3', config: { bucket: 'b', secret_access_key: 'topsecretvalue' } }).secret_access_key, '[redacted]');
  });

  test('local configuration is validated with the field name', () => {
    assert.throws(() => openStorage({ provider: 'local', config: {} }), /local storage configuration: path must be a non-empty string/);
    assert.throws(() => openStorage({ provider: 'local', config: { path: 'relative/dir' } }), /path must be an absolute path/);
  });

  test('a malformed URL is not echoed back (it may hold credentials)', () => {
    assert.throws(
      () => parseStorageUrl('s3:// key:secret@'),
      (e: unknown) => e instanceof StorageError && !e.message.includes('secret'),
    );
  });
});
