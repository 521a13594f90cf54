/**
 * What the end-to-end suites share: `npm run serve`'s entry started with a models folder (resolving
 * with the URL it prints) and stopped, and a browser session.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { test, type Browser, type BrowserContext } from '@playwright/test';

export const SHOTS = path.resolve('test-results/e2e');
export const SAMPLES = path.resolve('assets/samples');

/** Starts the server on the WebAssembly backend; its stderr goes to `log`. */
export async function startServe(modelsDir: string, log: string[], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src-main/serve/main.ts'], {
    env: { ...process.env, STUDIO_MODELS_DIR: modelsDir, STUDIO_BACKEND: 'wasm', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  const found = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL in 120 s:\n${out.join('')}`)), 120_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out.push(d.toString());
      const m = /running at (http:\/\/127\.0\.0\.1:\d+\/[\w-]+\/)/.exec(out.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited (${code}):\n${out.join('')}`)));
  });
  return { proc, url: found };
}

export async function stopServe(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/**
 * One photographer's session: a fresh context of the browser Playwright Test launched (see
 * playwright.config.ts for which). Playwright traces it (trace: 'retain-on-failure'): a failing test
 * keeps its trace in the HTML report.
 */
export function openSession(browser: Browser, opts: { acceptDownloads?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1360, height: 860 }, ...opts });
}

/**
 * A spec file as one photographer's session: its tests run in order on one page and stop at the first
 * failure. Returns whether any test failed (for printing the server's log at the end).
 */
export function serialSession(): () => boolean {
  test.describe.configure({ mode: 'serial' });
  let failed = false;
  // eslint-disable-next-line no-empty-pattern -- Playwright reads the fixtures from this pattern: none here
  test.afterEach(({}, info) => {
    if (info.status !== info.expectedStatus) failed = true;
  });
  return () => failed;
}
