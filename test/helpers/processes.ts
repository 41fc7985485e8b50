/**
 * What the test process's children are doing, read from Linux /proc: to check that a
 * dump tool never sees a password on its command line and that no tool outlives a kill.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** The kernel's short name for the process (at most 15 characters), e.g. "pg_dump". */
  name: string;
  /** Single-letter state: R running, S sleeping, Z zombie, ... */
  state: string;
  argv: string[];
}

/** One process, or null once it is gone (or not readable). */
export function processInfo(pid: number): ProcessInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name sits in parentheses and may itself contain spaces or ")"; the fields
    // after the LAST ")" are fixed: state, ppid, ...
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
    return { pid, ppid: Number(ppid), name, state, argv };
  } catch {
    return null;
  }
}

/** Every process on the machine that can be read. */
export function allProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = processInfo(Number(entry));
    if (info) out.push(info);
  }
  return out;
}

/** Live (not zombie) children of this test process called `name`. */
export function childrenNamed(name: string): ProcessInfo[] {
  return allProcesses().filter((p) => p.ppid === process.pid && p.name === name && p.state !== 'Z');
}

/** Whether `pid` is still a live process (a zombie waiting to be reaped does not count). */
export function isAlive(pid: number): boolean {
  const info = processInfo(pid);
  return info !== null && info.state !== 'Z';
}

/** Where a process sleeps in the kernel ('' when unreadable): "wait_for_partner" is open() of a FIFO whose other end nobody opened. */
export function wchanOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
}

/** One line for a failure message: pid, name, parent, state, where it sleeps, command line. */
export function describeProcess(p: ProcessInfo): string {
  return `${p.pid} ${p.name} (parent ${p.ppid}, ${p.state}, in ${wchanOf(p.pid) || '?'}): ${p.argv.join(' ').slice(0, 300)}`;
}

/** Live processes anywhere on the machine whose command line contains `text`. */
export function processesMentioning(text: string): ProcessInfo[] {
  return allProcesses().filter((p) => p.pid !== process.pid && p.state !== 'Z' && p.argv.some((a) => a.includes(text)));
}

/** The environment of `pid` as KEY=value strings ([] when unreadable). */
export function processEnvironment(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Poll `check` every 20 ms until it returns a value other than undefined, or fail after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
