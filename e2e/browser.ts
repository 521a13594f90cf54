/**
 * Which Chromium the end-to-end tests drive, said plainly: STUDIO_CHROMIUM if set, else the system's
 * (Debian's /usr/bin/chromium and the usual names elsewhere), else Playwright's own build, installed
 * on first need with `npx playwright install chromium` (which needs the internet). Where none can be
 * had, the run stops with the one command that fixes it.
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from '@playwright/test';

const SYSTEM = [
  '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable', '/snap/bin/chromium',
  '/Applications/Chromium.app/Contents/MacOS/Chromium', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
  'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe',
];

export interface ChosenBrowser {
  /** Undefined: Playwright's own build (its default executable). */
  executablePath?: string;
  which: string;
}

/** The browser to use, without installing anything (the config calls this in every process). */
export function systemOrBundledChromium(): ChosenBrowser | undefined {
  const env = process.env.STUDIO_CHROMIUM;
  if (env) return existsSync(env) ? { executablePath: env, which: `STUDIO_CHROMIUM (${env})` } : undefined;
  // STUDIO_CHROMIUM_CANDIDATES (':'-separated) replaces the usual places: the suite's own test of this choice uses it.
  const candidates = process.env.STUDIO_CHROMIUM_CANDIDATES !== undefined ? process.env.STUDIO_CHROMIUM_CANDIDATES.split(':').filter(Boolean) : SYSTEM;
  const sys = candidates.find((p) => existsSync(p));
  if (sys) return { executablePath: sys, which: `the system's Chromium (${sys})` };
  const own = chromium.executablePath();
  if (own && existsSync(own)) return { which: `Playwright's own Chromium (${own})` };
  return undefined;
}

/** As above, installing Playwright's Chromium when there is no browser at all; throws with the fix when that fails. */
export function ensureChromium(): ChosenBrowser {
  if (process.env.STUDIO_CHROMIUM && !existsSync(process.env.STUDIO_CHROMIUM)) {
    throw new Error(`STUDIO_CHROMIUM=${process.env.STUDIO_CHROMIUM} does not exist; unset it or point it at a Chromium or Chrome binary`);
  }
  const found = systemOrBundledChromium();
  if (found) return found;
  process.stdout.write('No Chromium on this machine: installing Playwright\'s own (npx playwright install chromium)…\n');
  const r = spawnSync(process.execPath, [playwrightCli(), 'install', 'chromium'], { stdio: 'inherit' });
  const after = systemOrBundledChromium();
  if (r.status === 0 && after) return after;
  throw new Error('No Chromium for the end-to-end tests, and Playwright\'s could not be installed (no internet?). Fix: npx playwright install chromium'
    + ' (or install your system\'s chromium, or set STUDIO_CHROMIUM to a Chromium binary)');
}

/** Playwright's command-line entry (the same package the tests use). */
function playwrightCli(): string {
  return path.join(path.dirname(createRequire(import.meta.url).resolve('@playwright/test/package.json')), 'cli.js');
}
