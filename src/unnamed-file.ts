/**
 * Files with no name, for what must never outlive this process on disk (an age identity
 * given with a request) or is only scratch (the table of contents and post-data section a
 * parallel restore hands to pg_restore). The file is created in a private folder, opened and
 * unlinked at once, and only then written: its content never has a name. Other processes
 * of ours (age, pg_restore and the workers it forks) open it as `/proc/<our pid>/fd/<fd>`,
 * each with its own offset, for as long as we hold the descriptor. Whatever ends this
 * process, kill -9 included, the kernel frees the file with it. (What a killed process can
 * still leave in the folder, the job runner removes when it starts: sweepLeftovers.)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface UnnamedFile {
  /** Our descriptor, open for reading and writing. */
  readonly fd: number;
  /** The path other processes open it by, while it is open. */
  readonly path: string;
  /** Close it (the file is gone then). Safe to call twice. */
  close(): void;
}

export function unnamedFile(dir: string, content?: string | Buffer): UnnamedFile {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = path.join(dir, `.unnamed-${process.pid}-${crypto.randomBytes(8).toString('hex')}`);
  const fd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    fs.closeSync(fd);
  };
  try {
    fs.unlinkSync(name);
    if (content !== undefined) {
      const bytes = typeof content === 'string' ? Buffer.from(content) : content;
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off, off);
    }
  } catch (e) {
    close();
    fs.rmSync(name, { force: true });
    throw e;
  }
  return { fd, path: `/proc/${process.pid}/fd/${fd}`, close };
}

/** Whether process `pid` (of this machine) is alive. */
function alive(pid: number): boolean {
  return pid === process.pid || fs.existsSync(`/proc/${pid}`);
}

/**
 * Remove from `dir` (the data dir's `tmp/`) what a killed process left there: the name of an
 * unnamed file whose process died between its create and unlink (a microsecond, but
 * possible); the private folder of a parallel MariaDB dump's start gate (`gate-<pid>-…`, a
 * FIFO); both only once the process that made them is gone, so processes sharing a data dir
 * never sweep each other's. And the named identity files (`identity-*.key`) earlier versions
 * wrote for a request's key and left behind when killed, once a minute old (those versions
 * read them when a job starts). Returns the names removed. Never throws.
 */
export function sweepLeftovers(dir: string, now = Date.now()): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const file = path.join(dir, entry);
    const owner = /^(?:\.unnamed|gate)-(\d+)-[0-9A-Za-z]+$/.exec(entry);
    let stale = false;
    if (owner) stale = !alive(Number(owner[1]));
    else if (/^identity-[0-9a-f]+\.key$/.test(entry)) {
      try {
        stale = now - fs.statSync(file).mtimeMs > 60_000;
      } catch {
        stale = false;
      }
    }
    if (!stale) continue;
    try {
      fs.rmSync(file, { recursive: true, force: true });
      removed.push(entry);
    } catch {
      // another process swept it first, or it is not ours to remove: leave it
    }
  }
  return removed;
}
