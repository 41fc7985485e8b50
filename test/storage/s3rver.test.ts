/**
 * The S3 provider against s3rver (https://github.com/jamhall/s3rver), a widely used S3
 * server that we did not write, so that our S3 code is not only proven against our own
 * reading of the protocol (helpers/s3server.ts).
 *
 * What s3rver 3.7.1 cannot do, and so is proven only against helpers/s3server.ts:
 * - ListMultipartUploads (GET ?uploads answers 501 NotImplemented): removePartials() after a
 *   crash cannot be run here (its conformance test is reported as skipped);
 * - AbortMultipartUpload (DELETE ?uploadId answers 405 MethodNotAllowed): here we only prove
 *   that abort() then rejects instead of pretending the upload is gone;
 * - Signature V4 is not checked at all (any signature passes), and no faults can be injected;
 * - a second page of ListObjectsV2: its continuation tokens are DES-encrypted, which the
 *   OpenSSL 3 of Node 17+ refuses (ERR_OSSL_EVP_UNSUPPORTED), so it answers 500.
 * Everything else the provider uses (PutObject, GetObject, HeadObject, DeleteObject,
 * ListObjectsV2, CreateMultipartUpload, UploadPart, CompleteMultipartUpload) runs through the
 * conformance suite and a multipart round trip.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';

import { parseS3Config, s3Provider } from '../../src/storage/s3/index.js';
import type { StorageProvider } from '../../src/storage/provider.js';
import { listAll, readAll, storageConformance } from './conformance.js';

/** The part of s3rver's API used here (the package ships no types). */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

const MiB = 1024 * 1024;
const BUCKET = 'strongbox-s3rver';

let running: Promise<{ endpoint: string; instance: S3rverInstance; dir: string }> | null = null;
/** One s3rver for the whole file, on a free port, storing under a temporary folder. */
function s3rver() {
  running ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-s3rver-'));
    const instance = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, vhostBuckets: false, configureBuckets: [{ name: BUCKET }] });
    const { port } = await instance.run();
    return { endpoint: `http://127.0.0.1:${port}`, instance, dir };
  })();
  return running;
}

after(async () => {
  if (!running) return;
  const { instance, dir } = await running;
  await instance.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

let prefixes = 0;
async function providerUnderFreshPrefix(extra: Record<string, unknown> = {}): Promise<{ provider: StorageProvider; prefix: string }> {
  const { endpoint } = await s3rver();
  const prefix = `t${process.pid}-${++prefixes}-${randomBytes(3).toString('hex')}`;
  // s3rver's one account; it does not check Signature V4, so the secret only has to be there.
  const config = parseS3Config({ endpoint, bucket: BUCKET, prefix, force_path_style: true, access_key_id: 'S3RVER', secret_access_key: 'S3RVER', part_size_mb: 5, queue_size: 2, max_attempts: 2 });
  return { provider: s3Provider(config), prefix };
}

async function removeAll(provider: StorageProvider): Promise<void> {
  for await (const { key } of provider.list('')) await provider.delete(key);
}

storageConformance(
  's3 against s3rver',
  async () => {
    const { provider } = await providerUnderFreshPrefix();
    return { provider, cleanup: () => removeAll(provider) };
  },
  // The suite's aborts are of objects under one part, which never start a multipart upload.
  {
    unsupported: {
      'removePartials clears what a dead writer left, and nothing committed': 's3rver 3.7.1 has no ListMultipartUploads (501)',
      'listPartials names what a dead writer left, by key and start time, until removePartials': 's3rver 3.7.1 has no ListMultipartUploads (501)',
    },
  },
);

describe('s3 provider against s3rver', () => {
  before(async () => {
    await s3rver();
  });

  test('a 23 MB multipart upload (5 MB parts, 2 in flight) reads back identical, and is listed once', async () => {
    const { provider } = await providerUnderFreshPrefix();
    const payload = randomBytes(23 * MiB + 17);
    const writer = await provider.create('org/db/main/b1/dump.pgdump.zst.age');
    await pipeline(Readable.from((function* () {
      for (let i = 0; i < payload.length; i += 300_007) yield payload.subarray(i, i + 300_007);
    })()), writer.stream);
    assert.equal(await provider.stat('org/db/main/b1/dump.pgdump.zst.age'), null, 'nothing visible before commit');
    await writer.commit();
    assert.deepEqual(await provider.stat('org/db/main/b1/dump.pgdump.zst.age'), { key: 'org/db/main/b1/dump.pgdump.zst.age', size: payload.length });
    const back = createHash('sha256').update(await readAll(await provider.read('org/db/main/b1/dump.pgdump.zst.age'))).digest('hex');
    assert.equal(back, createHash('sha256').update(payload).digest('hex'));
    assert.deepEqual(await listAll(provider, 'org/'), [['org/db/main/b1/dump.pgdump.zst.age', payload.length]]);
    await removeAll(provider);
  });

  test('a store that cannot abort a multipart upload makes abort() reject, never pretend', async () => {
    const { provider } = await providerUnderFreshPrefix();
    const writer = await provider.create('aborted/dump');
    // More than one part: the first is cut and its multipart upload started on the server.
    await new Promise<void>((resolve, reject) => writer.stream.write(randomBytes(6 * MiB), (e) => (e ? reject(e) : resolve())));
    writer.stream.on('error', () => {});
    await assert.rejects(writer.abort(), /MethodNotAllowed|405/);
    assert.deepEqual(await listAll(provider, ''), [], 'and nothing is visible');
  });
});

