/**
 * Helpers for the row counter tests: feeding a buffer in odd chunk sizes, running a
 * stream through a counter while hashing what goes in and what comes out, and a
 * writer of synthetic pg_dump custom-format archives (any supported layout version,
 * compressed headers, large-object blocks, huge TOC strings) that real pg_dump 15
 * cannot produce.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A deterministic PRNG (mulberry32), so a failing chunking can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `buf` as a Readable of chunks of `size` bytes. */
export function fixedChunks(buf: Buffer, size: number): Readable {
  function* gen(): Generator<Buffer> {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  }
  return Readable.from(gen(), { objectMode: false });
}

/**
 * `buf` as a Readable of random chunk sizes: mostly tiny (1–16 bytes, to land on every
 * kind of boundary), some medium, some up to `max`.
 */
export function randomChunks(buf: Buffer, seed: number, max = 256 * 1024): Readable {
  const rnd = prng(seed);
  function* gen(): Generator<Buffer> {
    let i = 0;
    while (i < buf.length) {
      const r = rnd();
      const size = r < 0.5 ? 1 + Math.floor(rnd() * 16) : r < 0.8 ? 1 + Math.floor(rnd() * 4096) : 1 + Math.floor(rnd() * max);
      yield buf.subarray(i, i + size);
      i += size;
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

export interface RunResult {
  bytesIn: number;
  bytesOut: number;
  sha256In: string;
  sha256Out: string;
  /** Everything that came out, when asked to keep it. */
  output: Buffer | null;
}

/** A pass-through that hashes and counts what flows by. */
function tap(hash: ReturnType<typeof createHash>, count: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      count.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/** Pipe `source` through `counter`, hashing the bytes before and after it. */
export async function runThrough(source: Readable, counter: Transform, keepOutput = false): Promise<RunResult> {
  const hashIn = createHash('sha256');
  const hashOut = createHash('sha256');
  const countIn = { n: 0 };
  const chunks: Buffer[] = [];
  let bytesOut = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hashOut.update(chunk);
      bytesOut += chunk.length;
      if (keepOutput) chunks.push(chunk);
      cb();
    },
  });
  await pipeline(source, tap(hashIn, countIn), counter, sink);
  return {
    bytesIn: countIn.n,
    bytesOut,
    sha256In: hashIn.digest('hex'),
    sha256Out: hashOut.digest('hex'),
    output: keepOutput ? Buffer.concat(chunks) : null,
  };
}

// ---- synthetic pg_dump custom-format archives -----------------------------------------

const INT_SIZE = 4;
const OFF_SIZE = 8;

export function pgInt(v: number): Buffer {
  const b = Buffer.alloc(1 + INT_SIZE);
  b[0] = v < 0 ? 1 : 0;
  b.writeUInt32LE(Math.abs(v), 1);
  return b;
}

export function pgStr(s: string | Buffer | null): Buffer {
  if (s === null) return pgInt(-1);
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([pgInt(bytes.length), bytes]);
}

export interface SyntheticTable {
  dumpId: number;
  schema: string;
  name: string;
  /** The COPY data (rows and, if wanted, the `\.` terminator), as it is sent in chunks (read once). */
  chunks: Iterable<Buffer>;
  /** Overrides the COPY statement (null: an --inserts style entry). */
  copyStmt?: string | null;
  /** relkind for 1.16 (default 0, as pg_dump writes for TABLE DATA). */
  relkind?: number;
}

export interface SyntheticArchive {
  version: [number, number, number];
  /** 1.15+: the compression algorithm byte; older: the zlib level int. Default 0. */
  compression?: number;
  tables: SyntheticTable[];
  /** Large objects, written as one BLOBS entry with this dumpId: oid → data chunks. */
  blobs?: { dumpId: number; objects: Array<{ oid: number; chunks: Buffer[] }> };
  /** A FUNCTION entry with a definition this long (to check long strings are skipped). */
  hugeDefinitionBytes?: number;
  /** The database encoding named in the ENCODING entry (default UTF8). */
  encoding?: string;
}

function atLeast(v: [number, number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

interface TocEntry {
  dumpId: number;
  hadDumper: boolean;
  tag: string | Buffer;
  desc: string;
  section: number;
  defn: string | Buffer;
  copyStmt: string | null;
  namespace: string | Buffer | null;
  relkind: number;
  deps: number[];
  hasData: boolean;
}

function tocEntry(a: SyntheticArchive, e: TocEntry): Buffer {
  const v = a.version;
  const parts: Buffer[] = [pgInt(e.dumpId), pgInt(e.hadDumper ? 1 : 0), pgStr('1259'), pgStr(String(16000 + e.dumpId))];
  parts.push(pgStr(e.tag), pgStr(e.desc), pgInt(e.section), pgStr(e.defn), pgStr(''), pgStr(e.copyStmt));
  parts.push(pgStr(e.namespace), pgStr(''));
  if (atLeast(v, 1, 14)) parts.push(pgStr('heap'));
  if (atLeast(v, 1, 16)) parts.push(pgInt(e.relkind));
  parts.push(pgStr('postgres'), pgStr('false'));
  for (const d of e.deps) parts.push(pgStr(String(d)));
  parts.push(pgStr(null));
  // Data offset: "not set" (as on a pipe), or "no data".
  const offset = Buffer.alloc(1 + OFF_SIZE);
  offset[0] = e.hasData ? 1 : 3;
  parts.push(offset);
  return Buffer.concat(parts);
}

/** The archive as a generator of buffers, so a large one never sits in memory whole. */
export function* pgArchive(a: SyntheticArchive): Generator<Buffer> {
  const v = a.version;
  const head: Buffer[] = [Buffer.from('PGDMP'), Buffer.from([v[0], v[1], v[2], INT_SIZE, OFF_SIZE, 1])];
  if (atLeast(v, 1, 15)) head.push(Buffer.from([a.compression ?? 0]));
  else head.push(pgInt(a.compression ?? 0));
  for (const t of [12, 30, 10, 1, 0, 124, 0]) head.push(pgInt(t));
  head.push(pgStr('synthetic'), pgStr('15.20'), pgStr('15.20'));

  const entries: TocEntry[] = [
    {
      dumpId: 9001,
      hadDumper: false,
      tag: 'ENCODING',
      desc: 'ENCODING',
      section: 2,
      defn: `SET client_encoding = '${a.encoding ?? 'UTF8'}';\n`,
      copyStmt: null,
      namespace: null,
      relkind: 0,
      deps: [],
      hasData: false,
    },
  ];
  if (a.hugeDefinitionBytes) {
    entries.push({
      dumpId: 9002,
      hadDumper: false,
      tag: 'huge()',
      desc: 'FUNCTION',
      section: 2,
      defn: Buffer.alloc(a.hugeDefinitionBytes, 0x78),
      copyStmt: null,
      namespace: 'public',
      relkind: 0,
      deps: [1, 2, 3],
      hasData: false,
    });
  }
  for (const t of a.tables) {
    entries.push({
      dumpId: 100_000 + t.dumpId,
      hadDumper: false,
      tag: t.name,
      desc: 'TABLE',
      section: 2,
      defn: `CREATE TABLE x (id integer);\n`,
      copyStmt: null,
      namespace: t.schema,
      relkind: 0x72,
      deps: [],
      hasData: false,
    });
    entries.push({
      dumpId: t.dumpId,
      hadDumper: true,
      tag: t.name,
      desc: 'TABLE DATA',
      section: 3,
      defn: '',
      copyStmt: t.copyStmt === undefined ? `COPY ${t.schema}.${t.name} (id) FROM stdin;\n` : t.copyStmt,
      namespace: t.schema,
      relkind: t.relkind ?? 0,
      deps: [100_000 + t.dumpId],
      hasData: true,
    });
  }
  if (a.blobs) {
    entries.push({
      dumpId: a.blobs.dumpId,
      hadDumper: true,
      tag: 'BLOBS',
      desc: 'BLOBS',
      section: 3,
      defn: '',
      copyStmt: null,
      namespace: null,
      relkind: 0,
      deps: [],
      hasData: true,
    });
  }
  head.push(pgInt(entries.length));
  yield Buffer.concat(head);
  for (const e of entries) yield tocEntry(a, e);

  for (const t of a.tables) {
    yield Buffer.concat([Buffer.from([1]), pgInt(t.dumpId)]);
    for (const c of t.chunks) {
      yield pgInt(c.length);
      yield c;
    }
    yield pgInt(0);
  }
  if (a.blobs) {
    yield Buffer.concat([Buffer.from([3]), pgInt(a.blobs.dumpId)]);
    for (const o of a.blobs.objects) {
      yield pgInt(o.oid);
      for (const c of o.chunks) {
        yield pgInt(c.length);
        yield c;
      }
      yield pgInt(0);
    }
    yield pgInt(0);
  }
}

/** The whole synthetic archive in one buffer. */
export function pgArchiveBuffer(a: SyntheticArchive): Buffer {
  return Buffer.concat([...pgArchive(a)]);
}

/** COPY text rows as pg_dump 15 sends them: one chunk per row, then the terminator. */
export function copyChunks(rows: string[], terminator = true): Buffer[] {
  const chunks = rows.map((r) => Buffer.from(r + '\n', 'utf8'));
  if (terminator) chunks.push(Buffer.from('\\.\n\n\n'));
  return chunks;
}
