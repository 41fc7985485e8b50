import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { localProvider } from '../../src/storage/local/index.js';
import { StorageError } from '../../src/storage/provider.js';
import { listAll, readAll, storageConformance } from './conformance.js';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'strongbox-local-'));
}

storageConformance('local', async () => {
  const dir = await tempDir();
  return { provider: localProvider(path.join(dir, 'root')), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

/** Every file and directory under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  return ((await readdir(dir, { recursive: true })) as string[]).sort();
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('local storage', () => {
  test('files are 0600 and directories (root included) 0700', () =>
    withDir(async (dir) => {
      const root = path.join(dir, 'root');
      const provider = localProvider(root);
      await provider.put('org/db/obj', Buffer.from('secret'));
      const writer = await provider.create('org/db/streamed');
      writer.stream.end(Buffer.from('more'));
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      await writer.commit();
      for (const d of [root, path.join(root, 'org'), path.join(root, 'org/db')]) {
        assert.equal((await stat(d)).mode & 0o777, 0o700, d);
      }
      for (const f of ['org/db/obj', 'org/db/streamed']) assert.equal((await stat(path.join(root, f))).mode & 0o777, 0o600, f);
    }));

  test('chunks written faster than the disk takes them (one writev each time) arrive whole and in order', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      const writer = await provider.create('burst.bin');
      // A thousand chunks of odd sizes in one burst: all but the first queue up behind it.
      const chunks = Array.from({ length: 1000 }, (_, i) => randomBytes(1 + ((i * 7919) % 9000)));
      let calls = 0;
      const writev = writer.stream._writev!.bind(writer.stream);
      writer.stream._writev = (batch, cb) => {
        calls++;
        writev(batch, cb);
      };
      for (const c of chunks) writer.stream.write(c);
      writer.stream.end();
      await new Promise((resolve, reject) => {
        writer.stream.once('finish', resolve);
        writer.stream.once('error', reject);
      });
      await writer.commit();
      assert.ok(calls > 0 && calls < 100, `queued chunks went out in a few writev calls (${calls})`);
      assert.ok((await readFile(path.join(root, 'burst.bin'))).equals(Buffer.concat(chunks)));
    }));

  test('a write in progress is a hidden partial file that list() skips, and abort removes it', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      const writer = await provider.create('a/b.bin');
      writer.stream.write(randomBytes(1000));
      const names = await readdir(path.join(root, 'a'));
      assert.equal(names.length, 1);
      assert.match(names[0], /^\.b\.bin\.partial-[0-9a-f]{16}$/);
      assert.deepEqual(await listAll(provider, ''), []);
      await writer.abort();
      assert.deepEqual(await readdir(root), [], 'the folder the write made is gone with it');
    }));

  test('partial files left by a crash are not listed and their names are not valid keys', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await mkdir(path.join(root, 'x'), { recursive: true });
      await writeFile(path.join(root, 'x', '.obj.partial-0123456789abcdef'), 'half');
      await provider.put('x/obj', Buffer.from('whole'));
      assert.deepEqual(await listAll(provider, ''), [['x/obj', 5]]);
      await assert.rejects(provider.read('x/.obj.partial-0123456789abcdef'), (e) => e instanceof StorageError && e.permanent);
    }));

  test('removePartials deletes the partial files of that key only, and empty folders', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await mkdir(path.join(root, 'x', 'y'), { recursive: true });
      await writeFile(path.join(root, 'x', 'y', '.obj.partial-0123456789abcdef'), 'half');
      await writeFile(path.join(root, 'x', 'y', '.other.partial-0123456789abcdef'), 'half');
      await provider.removePartials('x/y/obj');
      assert.deepEqual(await tree(path.join(root, 'x')), ['y', 'y/.other.partial-0123456789abcdef']);
      await provider.removePartials('x/y/other');
      assert.deepEqual(await readdir(root), [], 'emptied folders are removed up to the root');
    }));

  test('no partial file survives a failed or aborted write', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      const failed = await provider.create('f/one');
      failed.stream.write(randomBytes(10_000));
      failed.stream.on('error', () => {});
      failed.stream.destroy(new Error('boom'));
      await new Promise((resolve) => failed.stream.once('close', resolve));
      const aborted = await provider.create('f/two');
      aborted.stream.end(randomBytes(10_000));
      await new Promise((resolve) => aborted.stream.once('finish', resolve));
      await aborted.abort();
      await failed.abort();
      assert.deepEqual(await tree(root), [], 'nor the folder they made');
    }));

  test('traversal keys write nothing outside the root', () =>
    withDir(async (dir) => {
      const root = path.join(dir, 'root');
      const provider = localProvider(root);
      await provider.put('inside', Buffer.from('ok'));
      for (const key of ['../outside', '../../outside', 'a/../../outside', `/${dir}/abs`, '..\\outside']) {
        await assert.rejects(provider.put(key, Buffer.from('bad')), StorageError);
        await assert.rejects(provider.create(key), StorageError);
        await assert.rejects(provider.delete(key), StorageError);
      }
      assert.deepEqual(await tree(dir), ['root', 'root/inside']);
    }));

  test('delete removes emptied directories up to, not including, the root', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await provider.put('o/d/b/1/dump', Buffer.from('1'));
      await provider.put('o/d/b/1/manifest.json', Buffer.from('{}'));
      await provider.put('o/d/b/2/dump', Buffer.from('2'));
      await provider.delete('o/d/b/1/dump');
      assert.deepEqual(await tree(root), ['o', 'o/d', 'o/d/b', 'o/d/b/1', 'o/d/b/1/manifest.json', 'o/d/b/2', 'o/d/b/2/dump']);
      await provider.delete('o/d/b/1/manifest.json');
      assert.deepEqual(await tree(root), ['o', 'o/d', 'o/d/b', 'o/d/b/2', 'o/d/b/2/dump']);
      await provider.delete('o/d/b/2/dump');
      assert.deepEqual(await tree(root), []);
      assert.ok((await stat(root)).isDirectory());
    }));

  test('a directory is not an object', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await provider.put('dir/obj', Buffer.from('x'));
      assert.equal(await provider.stat('dir'), null);
      await assert.rejects(provider.read('dir'), (e) => e instanceof StorageError && e.notFound);
      await provider.delete('dir');
      assert.deepEqual(await listAll(provider, ''), [['dir/obj', 1]]);
    }));

  test('a missing root lists nothing and reads notFound', async () => {
    const provider = localProvider('/nonexistent/strongbox-test-root');
    assert.deepEqual(await listAll(provider, ''), []);
    await assert.rejects(provider.read('a'), (e) => e instanceof StorageError && e.notFound);
  });

  test('localPath and describe', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await provider.put('a/b', Buffer.from('content'));
      assert.equal(provider.localPath('a/b'), path.join(root, 'a/b'));
      assert.equal(await readFile(provider.localPath('a/b')!, 'utf8'), 'content');
      assert.throws(() => provider.localPath('../x'), StorageError);
      assert.deepEqual(provider.describe(), { provider: 'local', path: root });
      assert.deepEqual(provider.capabilities, { localPath: true, listPartials: true });
    }));

  test('a relative root is refused', () => {
    assert.throws(() => localProvider('backups'), (e) => e instanceof StorageError && e.permanent);
  });

  test('committing twice is refused and keeps the object', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      const writer = await provider.create('k');
      writer.stream.end(Buffer.from('v'));
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      await writer.commit();
      await assert.rejects(writer.commit(), StorageError);
      await writer.abort();
      assert.equal((await readAll(await provider.read('k'))).toString(), 'v');
    }));

  test('concurrent writers of different keys in one directory, with deletes racing', () =>
    withDir(async (root) => {
      const provider = localProvider(root);
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          await provider.put(`race/${i}`, Buffer.from(String(i)));
          if (i % 2 === 0) await provider.delete(`race/${i}`);
        }),
      );
      assert.deepEqual(
        (await listAll(provider, 'race/')).map(([k]) => k),
        Array.from({ length: 10 }, (_, i) => `race/${2 * i + 1}`).sort(),
      );
    }));
});
