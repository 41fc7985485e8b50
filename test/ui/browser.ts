/**
 * Chromium from Debian's package, driven by playwright-core (which downloads no browser),
 * in a fresh profile that is deleted afterwards, and what every browser test of the dashboard
 * checks or keeps: labelled controls, no script errors or CSP refusals, screenshots under
 * test-results/ (a CI artifact). Shared by the dashboard's browser tests and bench/dashboard.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.STRONGBOX_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Flags that keep a headless Chromium from phoning home or waiting on anything outside the test. */
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: options.viewport ?? { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where screenshots go: CI keeps the folder as an artifact (and git ignores it). */
export const SCREENSHOTS = path.resolve('test-results');

/** Save the whole page as test-results/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Every form control on the page has a label (a <label>, aria-label or aria-labelledby). */
export async function assertLabelled(page: Page): Promise<void> {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll<HTMLInputElement>('input, select, textarea')]
      .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length > 0) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 160)),
  );
  assert.deepEqual(unlabelled, [], 'form controls without a label');
}

/**
 * Collect what a page reports that a test should never see: uncaught script errors and
 * Content-Security-Policy refusals (an inline script or style would be one). The returned
 * array fills as the page runs; assert it is empty at the end.
 */
export function watchForProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return problems;
}
