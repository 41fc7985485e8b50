/**
 * How fast the dashboard's overview first shows its table in a real browser (Chromium via
 * playwright-core) on the embedded SQLite catalog with 10,000 backups, against baselines
 * measured in the same run and browser:
 *   - a blank page from the same server (what any page load costs here: connection, HTML);
 *   - the dashboard's sign-in page (its bundle, and one GET /ui/session answered 401).
 * "First render" is the page's own performance mark `strongbox:overview-rendered`, set when
 * the overview table first holds rows (ui/src/pages/Overview.tsx), measured from the start
 * of the navigation: it includes the HTML, the bundle, GET /ui/session, GET /v1/organizations
 * and GET .../overview. Each page is loaded BENCH_LOADS times in turn (after a warm-up) with
 * the browser cache on, as a returning user has it; the first, cold load is printed too.
 *
 * The catalog is the one bench/overview.ts seeds (10,000 backups over 20 branches: copies,
 * failures, deletions, drills): it runs first, briefly (BENCH_REQUESTS=1, BENCH_KEEP=1), and
 * leaves its data directory, which this opens with a token of its own.
 *
 *   node --import tsx bench/dashboard.ts
 *   BENCH_BACKUPS=50000 BENCH_BRANCHES=50 BENCH_LOADS=30 node --import tsx bench/dashboard.ts
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { buildUi } from '../ui/build.mjs';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { bootstrap } from '../src/bootstrap.js';
import { buildApp } from '../src/app.js';
import { launchBrowser } from '../test/ui/browser.js';

const LOADS = Number(process.env.BENCH_LOADS ?? 20);
const TARGET_MS = 200;

// The seeded catalog: bench/overview.ts's, kept (BENCH_BACKUPS and BENCH_BRANCHES pass through).
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'overview.ts')], {
  cwd: root,
  env: { ...process.env, BENCH_KEEP: '1', BENCH_REQUESTS: '1', BENCH_CATALOG_URL: '' },
  maxBuffer: 16 * 1024 * 1024,
});
const dataDir = /kept the data directory: (.+)/.exec(stdout)?.[1]?.trim();
if (!dataDir || !fs.existsSync(dataDir)) throw new Error(`bench/overview.ts did not leave its data directory; it printed:\n${stdout}`);
for (const l of stdout.split('\n')) if (/^seeded|^overview:/.test(l)) console.log(`(bench/overview.ts) ${l}`);
const uiDir = path.join(dataDir, 'ui');
const built = await buildUi({ outDir: uiDir, quiet: true });
// The blank baseline page, served by the same route as the dashboard's own files.
fs.writeFileSync(path.join(uiDir, 'blank.html'), '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>blank</title></head><body></body></html>\n');

const tokenId = 'benchadmin';
const tokenSecret = 'bench-secret-0123456789abcdef';
const config = loadConfig({
  STRONGBOX_DATA_DIR: dataDir,
  STRONGBOX_PORT: '0',
  STRONGBOX_BOOTSTRAP_TOKEN: `${tokenId}:${tokenSecret}`,
  STRONGBOX_RATE_LIMIT_PER_MINUTE: '0',
  STRONGBOX_UI_DIR: uiDir,
});
const ctx = await createContext(config, { log: pino({ level: 'silent' }) });
// Our own admin token in that catalog (bootstrap adds it beside the seeding run's).
await bootstrap(ctx);
const backups = Number((await ctx.db.selectFrom('backups').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
console.log(`${ctx.catalog.dialect} catalog with ${backups} backups; dashboard ${(built.gzipBytes / 1024).toFixed(1)} KiB gzip`);

const app = await buildApp(ctx);
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

const browser = await launchBrowser();
const page = await browser.context.newPage();

/** Milliseconds from the navigation's start to the load event. */
async function loadTime(url: string): Promise<number> {
  await page.goto(url, { waitUntil: 'load' });
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
    return nav.loadEventEnd > 0 ? nav.loadEventEnd : performance.now();
  });
}

/** Milliseconds from the navigation's start to the performance mark `name`. */
async function markTime(url: string, name: string): Promise<number> {
  await page.goto(url, { waitUntil: 'commit' });
  const handle = await page.waitForFunction((n) => performance.getEntriesByName(n)[0]?.startTime, name, { timeout: 30_000, polling: 5 });
  return (await handle.jsonValue()) as number;
}

/** The sign-in page is on screen: the token field exists (measured by polling every frame). */
async function signInTime(url: string): Promise<number> {
  await page.goto(url, { waitUntil: 'commit' });
  const handle = await page.waitForFunction(() => (document.getElementById('token') ? performance.now() : 0), undefined, { timeout: 30_000, polling: 'raf' });
  return (await handle.jsonValue()) as number;
}

const blankUrl = `${base}/ui/blank.html`;
const overviewUrl = (tag: string) => `${base}/?${tag}#/`;

// Signed out first (the sign-in page baseline), then signed in through the browser's own
// cookie jar, as the dashboard does it.
const coldSignIn = await signInTime(overviewUrl('cold'));
const signIn: number[] = [];
for (let i = 0; i < LOADS; i++) signIn.push(await signInTime(overviewUrl(`s${i}`)));
const res = await browser.context.request.post(`${base}/ui/session`, { data: { token: `${tokenId}:${tokenSecret}` } });
if (res.status() !== 200) throw new Error(`sign-in: ${res.status()} ${await res.text()}`);

const coldOverview = await markTime(overviewUrl('first'), 'strongbox:overview-rendered');
const rows = await page.locator('#overview-table tbody tr').count();
const blank: number[] = [];
const overview: number[] = [];
for (let i = 0; i < 3; i++) {
  await loadTime(blankUrl);
  await markTime(overviewUrl(`w${i}`), 'strongbox:overview-rendered');
}
// Interleaved, so that a slow moment of the machine falls on both alike.
for (let i = 0; i < LOADS; i++) {
  blank.push(await loadTime(`${blankUrl}?n=${i}`));
  overview.push(await markTime(overviewUrl(`n${i}`), 'strongbox:overview-rendered'));
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const line = (name: string, xs: number[]) =>
  `${name.padEnd(34)} p50 ${pct(xs, 50).toFixed(1).padStart(7)} ms  p95 ${pct(xs, 95).toFixed(1).padStart(7)} ms   vs blank page p50 ×${(pct(xs, 50) / pct(blank, 50)).toFixed(1)}`;
console.log(`\n${LOADS} loads each in Chromium, from the start of the navigation (overview: ${rows} branches in the table):`);
console.log(line('blank page (load event)', blank));
console.log(line('sign-in page shown', signIn));
console.log(line('overview table rendered', overview));
console.log(`first, cold loads: sign-in page ${coldSignIn.toFixed(1)} ms, overview ${coldOverview.toFixed(1)} ms (bundle already cached by the sign-in page)`);
// Where one load's time goes: the document, the bundle and each API call, from the navigation's start.
await markTime(overviewUrl('breakdown'), 'strongbox:overview-rendered');
const entries = await page.evaluate(() =>
  [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')].map((e) => {
    const r = e as PerformanceResourceTiming;
    return { name: new URL(r.name).pathname, start: r.startTime, end: r.responseEnd };
  }),
);
const mark = await page.evaluate(() => performance.getEntriesByName('strongbox:overview-rendered')[0].startTime);
console.log('\none load, ms from the navigation start:');
for (const e of entries) console.log(`  ${e.start.toFixed(1).padStart(7)} – ${e.end.toFixed(1).padStart(7)}  ${e.name}`);
console.log(`  ${mark.toFixed(1).padStart(17)}  overview table rendered`);

const p95 = pct(overview, 95);
console.log(`\noverview first-render target (< ${TARGET_MS} ms): p95 ${p95.toFixed(1)} ms ${p95 < TARGET_MS ? 'ok' : 'NOT MET'}`);

await browser.close();
await app.close();
await ctx.catalog.close();
if (process.env.BENCH_KEEP) console.log(`kept the data directory: ${dataDir}`);
else fs.rmSync(dataDir, { recursive: true, force: true });
