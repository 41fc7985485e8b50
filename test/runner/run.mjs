#!/usr/bin/env node
/**
 * The test command (`npm test` runs it after the type check). Runs every test file on the
 * SQLite catalog, then every file that touches the catalog again on a PostgreSQL catalog
 * (one matrix: STRONGBOX_TEST_CATALOG, see test/helpers/catalog.ts), and fails when:
 *   - any test failed, or a test file exited non-zero or kept running after its last test;
 *   - more tests started than the reporter received results for (results lost on the way).
 * Ends with one line "N passed, N failed, N skipped" (a file-level problem counts as failed).
 *
 * The two legs run at the same time (their output lines are prefixed with the leg's name;
 * each leg's own summary follows the run); --serial runs them one after the other, unprefixed.
 *
 *   node test/runner/run.mjs [--leg sqlite|postgres] [--serial] [files...]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
process.chdir(root);

const args = process.argv.slice(2);
let onlyLeg = null;
const legIndex = args.indexOf('--leg');
if (legIndex >= 0) {
  onlyLeg = args[legIndex + 1];
  args.splice(legIndex, 2);
}

function findTests(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const serialIndex = args.indexOf('--serial');
const serial = serialIndex >= 0;
if (serial) args.splice(serialIndex, 1);

const files = args.length ? args.map((f) => path.relative(root, path.resolve(f))) : findTests('test');
// A file touches the catalog when it starts a server or opens a catalog or a context itself.
const touchesCatalog = (f) => /\b(startServer|newTestCatalog|openCatalog|createContext|startCluster)\s*\(/.test(fs.readFileSync(f, 'utf8'));
const legs = [
  { name: 'sqlite', files },
  // In the opposite order: the two legs then seldom run the same heavy file at the same moment
  // (test/jobs/parallel-mysql.test.ts waits for the other leg's copy to finish).
  { name: 'postgres', files: files.filter(touchesCatalog).reverse() },
].filter((l) => (onlyLeg === null || l.name === onlyLeg) && l.files.length > 0);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-test-run-'));

function runLeg(leg, prefixed) {
  const counts = path.join(work, `${leg.name}.counts`);
  const ledger = path.join(work, `${leg.name}.ledger`);
  const nodeArgs = [
    '--import', 'tsx',
    '--import', './test/runner/register.mjs',
    '--test', '--test-concurrency=1', '--test-timeout=600000',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=./test/runner/count-reporter.mjs', `--test-reporter-destination=${counts}`,
    ...leg.files,
  ];
  process.stdout.write(`\n=== ${leg.name} catalog: ${leg.files.length} test files ===\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', prefixed ? 'pipe' : 'inherit', prefixed ? 'pipe' : 'inherit'], env: { ...process.env, STRONGBOX_TEST_CATALOG: leg.name, STRONGBOX_TEST_LEDGER: ledger } });
    const streams = prefixed ? [prefixLines(child.stdout, process.stdout, leg.name), prefixLines(child.stderr, process.stderr, leg.name)] : [];
    // Resolved once the child has exited and its output has been written out whole.
    child.on('close', async (code, signal) => {
      await Promise.all(streams);
      resolve({ leg, code: code ?? 1, signal, counts, ledger });
    });
  });
}

/** Copy a child's output line by line, each line prefixed with its leg, so two legs can share a terminal. */
function prefixLines(from, to, name) {
  const tag = `[${name}] `;
  let rest = '';
  from.setEncoding('utf8');
  from.on('data', (chunk) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    if (lines.length) to.write(lines.map((l) => tag + l).join('\n') + '\n');
  });
  return new Promise((resolve) => from.on('end', () => {
    if (rest) to.write(tag + rest + '\n');
    resolve();
  }));
}

function readLines(file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

const totals = { pass: 0, fail: 0, skip: 0 };
const problems = [];
const results = serial || legs.length < 2 ? [] : await Promise.all(legs.map((leg) => runLeg(leg, true)));
for (const leg of legs) {
  const r = results.find((x) => x.leg === leg) ?? (await runLeg(leg, false));
  const reported = new Map(readLines(r.counts).map((c) => [path.resolve(c.file), c]));
  const started = new Map(readLines(r.ledger).map((c) => [path.resolve(c.file), c]));
  // The reporter files a result under the file that defined the test, which for a shared
  // suite (test/storage/conformance.ts) is not the test file that ran it: so the started
  // and reported counts are compared for the whole leg, and the files whose own counts
  // differ are named to help find the one that lost results.
  const count = (c) => c.pass + c.fail + c.skip + c.todo;
  let startedTotal = 0;
  for (const f of leg.files) {
    const st = started.get(path.resolve(f));
    if (!st) problems.push(`${leg.name}: ${f} did not finish (no exit record)`);
    else {
      startedTotal += st.started;
      if (st.stuck) problems.push(`${leg.name}: ${f}: the test "${st.stuck}" was stuck and stopped (see its output above)`);
      else if (st.code !== 0) problems.push(`${leg.name}: ${f} exited with code ${st.code}`);
    }
  }
  const reportedTotal = [...reported.values()].reduce((n, c) => n + count(c), 0);
  if (startedTotal > reportedTotal) {
    const suspects = leg.files.filter((f) => (started.get(path.resolve(f))?.started ?? 0) > (reported.get(path.resolve(f)) ? count(reported.get(path.resolve(f))) : 0));
    problems.push(`${leg.name}: ${startedTotal} tests started but ${reportedTotal} results were reported: results were lost (files whose counts differ: ${suspects.join(', ') || 'none'})`);
  }
  for (const c of reported.values()) {
    totals.pass += c.pass;
    totals.fail += c.fail;
    totals.skip += c.skip;
  }
  if (r.code !== 0) problems.push(`${leg.name}: the test runner exited with ${r.signal ?? `code ${r.code}`}`);
  // Where the leg's time went: the ten slowest files (the run must stay well under 30 minutes).
  const slowest = [...started.values()].filter((c) => typeof c.seconds === 'number').sort((a, b) => b.seconds - a.seconds).slice(0, 10);
  if (slowest.length) process.stdout.write(`\n${leg.name}: slowest files (${Math.round([...started.values()].reduce((n, c) => n + (c.seconds ?? 0), 0))} s in all):\n${slowest.map((c) => `  ${String(c.seconds).padStart(6)} s  ${path.relative(root, c.file)}`).join('\n')}\n`);
}
fs.rmSync(work, { recursive: true, force: true });

if (problems.length) process.stdout.write(`\nthe run failed:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
// A file-level problem (lost results, a non-zero exit, a hang) counts as a failure too.
process.stdout.write(`\n${totals.pass} passed, ${totals.fail + problems.length} failed, ${totals.skip} skipped\n`);
process.exit(problems.length || totals.fail ? 1 : 0);
