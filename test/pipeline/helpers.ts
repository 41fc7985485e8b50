/** Small stream helpers shared by the pipeline tests. */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';

/** A Writable that keeps everything written to it. */
export function collector(): Writable & { data(): Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  }) as Writable & { data(): Buffer };
  w.data = () => Buffer.concat(chunks);
  return w;
}

/** `total` random bytes as a Readable of `chunkSize` chunks, generated on demand. */
export function randomSource(total: number, chunkSize = 64 * 1024): Readable & { produced: number; payload: Buffer } {
  const payload = randomBytes(total);
  let offset = 0;
  const r = new Readable({
    read() {
      if (offset >= total) return void this.push(null);
      const end = Math.min(total, offset + chunkSize);
      const chunk = payload.subarray(offset, end);
      offset = end;
      r.produced = offset;
      this.push(chunk);
    },
  }) as Readable & { produced: number; payload: Buffer };
  r.produced = 0;
  r.payload = payload;
  return r;
}

/** Split a buffer into a Readable of fixed-size chunks. */
export function chunked(buf: Buffer, chunkSize = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  return Readable.from(chunks, { objectMode: false });
}

/** Compressible text: repetitive log-like lines with some variation. */
export function compressibleText(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `INSERT INTO events VALUES (${i}, 'user-${i % 977}', '2024-01-${String((i % 28) + 1).padStart(2, '0')}', ${(i * 7919) % 100000});\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** Live (or zombie) child processes of this process whose command name is `comm`. */
export function childProcesses(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Format: pid (comm) state ppid ...; comm may contain spaces and parentheses.
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const name = stat.slice(open + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (name === comm && ppid === process.pid) pids.push(Number(entry));
  }
  return pids;
}
