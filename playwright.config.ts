/**
 * The end-to-end suite (`npm run e2e`, part of `npm test`): Playwright Test drives the studio window
 * served by `npm run serve` in Chromium (the system's where there is one, else Playwright's own:
 * e2e/browser.ts), and the Electron app where its binary is installed (skipped with the reason
 * otherwise). One worker, tests in file order: each file is one photographer's session.
 * On failure: the HTML report (test-results/e2e-report: `npx playwright show-report test-results/e2e-report`)
 * with each failed test's trace and screenshot.
 */
import { defineConfig } from '@playwright/test';
import { systemOrBundledChromium } from './e2e/browser.ts';

const chosen = systemOrBundledChromium();

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  globalSetup: './e2e/global-setup.ts',
  // A session runs models, batches and downloads: minutes, not Playwright's 30 s default.
  timeout: 300_000,
  expect: {
    timeout: 60_000,
    // Layout regressions fail; font hinting and anti-aliasing between machines do not.
    toHaveScreenshot: { maxDiffPixelRatio: 0.02, threshold: 0.25, animations: 'disabled', caret: 'hide' },
  },
  // A new platform (no baseline for it yet) writes its baselines and passes; existing ones compare.
  updateSnapshots: 'missing',
  fullyParallel: false,
  workers: 1,
  forbidOnly: Boolean(process.env.CI),
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'test-results/e2e-report' }]],
  outputDir: 'test-results/e2e-artifacts',
  use: {
    headless: true,
    viewport: { width: 1360, height: 860 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: chosen?.executablePath,
      // Keep Chromium off the network (closed here anyway) and out of the sandbox where it cannot have one.
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
    },
  },
  projects: [
    { name: 'browser', testMatch: ['studio.spec.ts', 'batch.spec.ts'] },
    { name: 'electron', testMatch: 'electron.spec.ts' },
  ],
});
