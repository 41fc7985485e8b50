/**
 * The process running a backup's pipeline (src/pipeline/store.ts) is killed with SIGKILL at
 * any moment, from the instant the process writing the raw channel exists (the dump tool,
 * which writes straight to the reader thread; or tee, for a shared reader thread), usually
 * before the reader thread has begun to read, to mid-stream: nothing it started (the dump
 * tool, tee, zstd, age) outlives it. A tool left blocked keeps a database connection and its
 * snapshot open for good.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { allProcesses, describeProcess, isAlive, processInfo } from '../helpers/processes.js';

let dir: string;
let recipient: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-store-kill-'));
  const out = spawnSync('age-keygen', ['-o', path.join(dir, 'key.txt')], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  recipient = /public key: (age1\S+)/.exec(out.stderr + fs.readFileSync(path.join(dir, 'key.txt'), 'utf8'))![1];
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const victimScript = path.join(import.meta.dirname, 'fixtures', 'store-victim.ts');

/** Every live descendant of `pid`. */
function descendants(pid: number): number[] {
  const all = allProcesses().filter((p) => p.state !== 'Z');
  const out: number[] = [];
  const walk = (parent: number): void => {
    for (const p of all) if (p.ppid === parent) {
      out.push(p.pid);
      walk(p.pid);
    }
  };
  walk(pid);
  return out;
}

const describeAll = (pids: number[]): string =>
  pids
    .map(processInfo)
    .filter((p) => p !== null && p.state !== 'Z')
    .map((p) => describeProcess(p!))
    .join('\n');

// pass: the dump tool writes the FIFO the reader thread reads and passes on to zstd; tee:
// tee copies the dump into a FIFO for a shared reader thread (the parts of a parallel backup).
const cases: Array<[mode: 'pass' | 'tee', afterMs: number]> = [['pass', 0], ['pass', 0], ['pass', 0], ['pass', 30], ['pass', 300], ['tee', 0], ['tee', 0], ['tee', 30], ['tee', 300]];
for (const [mode, afterMs] of cases) {
  const writer = mode === 'pass' ? 'the source' : 'tee';
  test(`${mode}: killed ${afterMs} ms after ${writer} started: every tool it started exits`, async () => {
    const victim = spawn(process.execPath, ['--import', 'tsx', victimScript, path.join(dir, `out-${Date.now()}`), recipient, mode], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    victim.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise((r) => victim.once('exit', r));
    // Poll /proc tightly for the writer among the victim's children: the moment it exists, the
    // reader thread (started at the same time, in a new isolate) has usually not begun to read.
    const isWriter = (p: { ppid: number; name: string; argv: string[] }): boolean =>
      p.ppid === victim.pid && (mode === 'tee' ? p.name === 'tee' : p.argv.includes('strongbox-victim-source'));
    const deadline = Date.now() + 30_000;
    let first: number | undefined;
    while (first === undefined) {
      assert.ok(Date.now() < deadline && victim.exitCode === null, `${writer} never started: ${stderr}`);
      first = allProcesses().find(isWriter)?.pid;
      if (first === undefined) await new Promise((r) => setImmediate(r));
    }
    if (afterMs) await new Promise((r) => setTimeout(r, afterMs));
    const started = descendants(victim.pid!);
    assert.ok(started.includes(first), `${writer} is among what it started`);
    if (mode === 'pass') assert.ok(!allProcesses().some((p) => p.ppid === victim.pid && p.name === 'tee'), 'no tee when the reader thread passes the dump on');
    victim.kill('SIGKILL');
    await exited;
    const until = Date.now() + 15_000;
    while (started.some(isAlive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const left = started.filter(isAlive);
    const story = describeAll(left);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    assert.deepEqual(left, [], `still running 15 s after the kill:\n${story}`);
  });
}
