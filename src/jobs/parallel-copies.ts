/**
 * A parallel backup's stored copies (parallel-parts.ts) for the readers that see a copy
 * as a whole: quick verification, download (a tar of the parts), repair (every part copied
 * from a good copy). Deletion and crash clean-up take every key from `copyKeys`.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppContext } from '../context.js';
import type { Artifact, Backup } from '../catalog/schema.js';
import { nowIso } from '../catalog/ids.js';
import { openDestinationById } from '../destinations.js';
import { HashCounter } from '../pipeline/hash.js';
import { ChecksumMismatchError, Sha256Verifier } from '../pipeline/verify.js';
import type { StorageProvider } from '../storage/provider.js';
import { cleanErrorText } from '../error-text.js';
import { manifestKey, markDamaged } from './artifacts.js';
import { partKey, partsOf, SHA256SUMS, sha256Of, sha256Sums, type BackupPart } from './parallel-parts.js';
import type { ArtifactCheck } from './verify.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function readSmall(provider: StorageProvider, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await provider.read(key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Quick verification of a parallel backup's copy: every part re-read and compared with its
 * recorded size and sha256, SHA256SUMS with the backup's sha256, the manifest with both.
 * Records the outcome on the copy as a single copy's check does.
 */
export async function checkPartsCopy(ctx: AppContext, backup: Backup, a: Artifact, signal: AbortSignal): Promise<ArtifactCheck> {
  const check: ArtifactCheck = { artifact_id: a.id, destination: a.destination_name, ok: false, damaged: false, size: null, sha256: null, error: null };
  try {
    const parts = partsOf(a)!;
    const { provider } = await openDestinationById(ctx, a.destination_id);
    const problems: string[] = [];
    let size = 0;
    for (const part of parts) {
      const key = partKey(a.path, part);
      const st = await provider.stat(key);
      if (!st) {
        problems.push(`part ${part.file} is missing from storage`);
        check.damaged = true;
        continue;
      }
      size += st.size;
      const counter = new HashCounter();
      await pipeline(await provider.read(key), counter, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
      if (st.size !== part.size) problems.push(`part ${part.file}: size ${st.size} differs from the ${part.size} bytes recorded`);
      if (counter.digest() !== part.sha256) problems.push(`part ${part.file}: sha256 ${counter.digest()} differs from the recorded ${part.sha256}`);
      if (st.size !== part.size || counter.digest() !== part.sha256) check.damaged = true;
    }
    check.size = size;
    try {
      const sums = await readSmall(provider, a.path);
      check.sha256 = sha256Of(sums);
      if (check.sha256 !== a.sha256) problems.push(`${SHA256SUMS} has sha256 ${check.sha256}, ${a.sha256} was recorded`);
      else if (sums.toString('utf8') !== sha256Sums(parts)) problems.push(`${SHA256SUMS} does not list the recorded parts`);
    } catch (e) {
      problems.push(`${SHA256SUMS} unreadable: ${messageOf(e)}`);
    }
    if (problems.length) check.damaged = true;
    try {
      const manifest = JSON.parse((await readSmall(provider, manifestKey(a.path))).toString('utf8'));
      if (manifest.backup_id !== backup.id) problems.push(`the manifest names backup ${manifest.backup_id}`);
      if (manifest.sha256 !== a.sha256) problems.push(`the manifest's sha256 ${manifest.sha256} differs from the recorded ${a.sha256}`);
      if (manifest.size !== a.size) problems.push(`the manifest's size ${manifest.size} differs from the recorded ${a.size}`);
      const listed = Array.isArray(manifest.parts) ? (manifest.parts as BackupPart[]).map((p) => `${p.sha256}  ${p.file}\n`).join('') : null;
      if (listed !== sha256Sums(parts)) problems.push('the manifest lists other parts');
    } catch (e) {
      problems.push(`manifest.json unreadable: ${messageOf(e)}`);
    }
    check.ok = problems.length === 0;
    check.error = problems.length ? problems.join('; ') : null;
  } catch (e) {
    if (signal.aborted) throw e;
    check.error = cleanErrorText(messageOf(e));
  }
  const now = nowIso(ctx.clock());
  const error = check.ok ? null : check.damaged ? `damaged: ${check.error}` : check.error;
  await ctx.db.updateTable('artifacts').set({ verified_at: now, verification: check.ok ? 'passed' : 'failed', error, updated_at: now }).where('id', '=', a.id).execute();
  return check;
}

/** The data parts a copy has: how many pg_restores a full verification runs at a time. */
export function dataPartCount(a: Artifact): number {
  return partsOf(a)?.filter((p) => p.section === 'data').length ?? 1;
}

/** A ustar header block for a regular file `name` of `size` bytes. */
function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (value: string, offset: number, length: number) => h.write(value, offset, length, 'utf8');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  field(name, 0, 100);
  field(octal(0o644, 8), 100, 8);
  field(octal(0, 8), 108, 8);
  field(octal(0, 8), 116, 8);
  field(octal(size, 12), 124, 12);
  field(octal(Math.floor(mtime / 1000), 12), 136, 12);
  field('        ', 148, 8); // checksum: spaces while it is computed
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  field(octal(sum, 7) + ' ', 148, 8);
  return h;
}

const pad = (size: number) => (512 - (size % 512)) % 512;

/**
 * A parallel backup's copy as one download: a tar (ustar, no compression of its own) of
 * the folder's manifest.json, SHA256SUMS and every part exactly as stored, under
 * `<backup id>/`. Each part is checked against its sha256 as it streams, so a damaged one
 * cuts the download short instead of completing it. Its length is known up front.
 */
export async function partsTarball(ctx: AppContext, backup: Backup, a: Artifact): Promise<{ stream: Readable; size: number; fileName: string }> {
  const parts = partsOf(a)!;
  const { provider } = await openDestinationById(ctx, a.destination_id);
  const sums = Buffer.from(sha256Sums(parts));
  const manifest = await readSmall(provider, manifestKey(a.path));
  const dir = backup.id;
  const mtime = Date.parse(backup.completed_at ?? backup.created_at);
  const entries: Array<{ name: string; size: number; open: () => Promise<Readable> }> = [
    { name: `${dir}/manifest.json`, size: manifest.length, open: async () => Readable.from([manifest]) },
    { name: `${dir}/${SHA256SUMS}`, size: sums.length, open: async () => Readable.from([sums]) },
    ...parts.map((p) => ({
      name: `${dir}/${p.file}`,
      size: p.size!,
      open: async () => {
        const verifier = new Sha256Verifier(p.sha256!, p.size);
        const raw = await provider.read(partKey(a.path, p));
        raw.on('error', (e) => verifier.destroy(e));
        verifier.on('error', (e) => {
          if (e instanceof ChecksumMismatchError) void markDamaged(ctx, a, `part ${p.file}: ${e.message}`);
        });
        return raw.pipe(verifier);
      },
    })),
  ];
  if (entries.some((e) => Buffer.byteLength(e.name) > 100)) throw new Error('a part name is too long for a tar header');
  const size = entries.reduce((n, e) => n + 512 + e.size + pad(e.size), 0) + 1024;
  async function* body(): AsyncGenerator<Buffer> {
    for (const e of entries) {
      yield tarHeader(e.name, e.size, mtime);
      for await (const chunk of await e.open()) yield chunk as Buffer;
      if (pad(e.size)) yield Buffer.alloc(pad(e.size));
    }
    yield Buffer.alloc(1024);
  }
  return { stream: Readable.from(body(), { objectMode: false }), size, fileName: `${backup.id}.tar` };
}

/**
 * Repair a parallel backup's failed copy `target` from the good copy `source`: every part,
 * checked as it streams, then SHA256SUMS and the manifest. Throws on the first failure
 * (what was written stays for the caller to abort or retry over).
 */
export async function copyParts(ctx: AppContext, source: Artifact, target: Artifact, signal: AbortSignal): Promise<void> {
  const parts = partsOf(source)!;
  const { provider: from } = await openDestinationById(ctx, source.destination_id);
  const { provider: into } = await openDestinationById(ctx, target.destination_id);
  for (const part of parts) {
    signal.throwIfAborted();
    const key = partKey(target.path, part);
    await into.removePartials(key).catch(() => {});
    const writer = await into.create(key);
    try {
      const verifier = new Sha256Verifier(part.sha256!, part.size);
      await pipeline(await from.read(partKey(source.path, part)), verifier, writer.stream, { signal });
      await writer.commit();
    } catch (e) {
      await writer.abort().catch(() => {});
      throw new Error(`part ${part.file}: ${messageOf(e)}`, { cause: e });
    }
    const st = await into.stat(key);
    if (!st || st.size !== part.size) throw new Error(`part ${part.file}: stored size ${st?.size ?? 'none'} differs from ${part.size}`);
  }
  await into.put(target.path, await readSmall(from, source.path));
  await into.put(manifestKey(target.path), await readSmall(from, manifestKey(source.path)));
}
