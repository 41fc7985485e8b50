/**
 * Preloaded (--import) in every test process by run.mjs. Each process runs one test file.
 *
 * - Counts the tests that start (a root-level beforeEach runs before every test, nested
 *   ones included, and not for skipped ones) and writes the count to the ledger when the
 *   process exits. The runner compares it with what its reporter received, so a file whose
 *   last results were lost fails the run instead of passing with fewer tests.
 * - A file whose tests are done but whose process does not end (a pool, a server or a
 *   timer left open) would hang the run until the timeout: after a grace period it names
 *   what is still open and exits 97. The timer is unref'd, so it never keeps the process up.
 * - A test that hangs would hold the run until node's file timeout (10 minutes), which
 *   then says only which file: once a test has run STRONGBOX_TEST_STUCK_MS (default 4
 *   minutes; the slowest whole file takes about one) it names the test, what is open and
 *   the processes it started (with their state and what they wait in), and exits 98.
 */
import fs from 'node:fs';
import { after, afterEach, beforeEach } from 'node:test';

let started = 0;
/** The tests running now (a suite's test and its subtests), and since when. */
const running = new Map();
let stuck = null;
beforeEach((t) => {
  started++;
  running.set(t, { name: t.name, since: Date.now() });
});
afterEach((t) => {
  running.delete(t);
});

const STUCK_MS = Number(process.env.STRONGBOX_TEST_STUCK_MS ?? 240_000);
setInterval(() => {
  const now = Date.now();
  const hung = [...running.values()].filter((r) => now - r.since >= STUCK_MS);
  if (!hung.length) return;
  stuck = hung.map((r) => r.name).join(' › ');
  const processes = descendants(process.pid);
  process.stderr.write(
    `\n${process.argv[1]}: the test "${stuck}" has run ${Math.round((now - hung[0].since) / 1000)} s; stopped as stuck.\n` +
      `  open: ${process.getActiveResourcesInfo().join(', ')}\n` +
      `  processes it started:\n${processes.map((p) => `    ${p.line}`).join('\n') || '    none'}\n`,
  );
  // They would outlive this process and could stall the files after it.
  for (const p of processes) {
    try {
      process.kill(Number(p.pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  process.exit(98);
}, 5000).unref();

/** Every live process under `pid`, each with a line "pid state wchan: command line", from /proc (Linux). */
function descendants(pid) {
  const out = [];
  let all;
  try {
    all = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  const read = (p, f) => {
    try {
      return fs.readFileSync(`/proc/${p}/${f}`, 'utf8');
    } catch {
      return '';
    }
  };
  const parent = new Map();
  for (const p of all) {
    // stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const stat = read(p, 'stat');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    parent.set(p, { ppid: rest[1], state: rest[0] });
  }
  const walk = (of, depth) => {
    for (const [p, info] of parent) {
      if (info.ppid !== String(of)) continue;
      out.push({ pid: p, line: `${'  '.repeat(depth)}${p} ${info.state} ${read(p, 'wchan') || '-'}: ${read(p, 'cmdline').split('\0').join(' ').trim()}` });
      walk(p, depth + 1);
    }
  };
  walk(pid, 0);
  return out;
}

const LINGER_MS = Number(process.env.STRONGBOX_TEST_LINGER_MS ?? 20_000);
after(() => {
  setTimeout(() => {
    process.stderr.write(`\n${process.argv[1]}: still running ${LINGER_MS / 1000} s after its last test; open: ${process.getActiveResourcesInfo().join(', ')}\n`);
    process.exit(97);
  }, LINGER_MS).unref();
});

const ledger = process.env.STRONGBOX_TEST_LEDGER;
if (ledger) {
  process.on('exit', (code) => {
    fs.appendFileSync(ledger, JSON.stringify({ file: process.argv[1], started, code, stuck, seconds: Math.round(process.uptime() * 10) / 10 }) + '\n');
  });
}
