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
 */
import fs from 'node:fs';
import { after, beforeEach } from 'node:test';

let started = 0;
beforeEach(() => {
  started++;
});

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
    fs.appendFileSync(ledger, JSON.stringify({ file: process.argv[1], started, code, seconds: Math.round(process.uptime() * 10) / 10 }) + '\n');
  });
}
