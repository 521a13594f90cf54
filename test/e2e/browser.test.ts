/**
 * Which Chromium the end-to-end suite drives (e2e/browser.ts), on machines of other kinds: the
 * system's where there is one; else Playwright's own; where neither is there and it cannot be
 * installed, the one command that fixes it. Each case in its own process, with its own environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { closedLoopbackPort } from '../loopback.ts';

function choose(env: Record<string, string>): Promise<{ code: number; out: string }> {
  const script = "import('./e2e/browser.ts').then((m) => { const c = m.ensureChromium(); console.log('CHOSE ' + c.which); }).catch((e) => { console.log('FAILED ' + e.message); process.exit(3); })";
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, out: stdout + stderr }));
  });
}

test('the system\'s Chromium where there is one, said by path', async () => {
  const r = await choose({ STUDIO_CHROMIUM_CANDIDATES: `/nonexistent/chrome:${process.execPath}` });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`CHOSE the system's Chromium \\(${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
});

test('no browser at all and no way to install one: the run stops with the one command that fixes it', async () => {
  const empty = await mkdtemp(path.join(os.tmpdir(), 'no-browsers-'));
  try {
    // No system browser, an empty Playwright browser folder, and a download host that refuses.
    const port = await closedLoopbackPort();
    const r = await choose({ STUDIO_CHROMIUM_CANDIDATES: '', PLAYWRIGHT_BROWSERS_PATH: empty, PLAYWRIGHT_DOWNLOAD_HOST: `http://127.0.0.1:${port}` });
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, /installing Playwright's own \(npx playwright install chromium\)/, 'it tried');
    assert.match(r.out, /FAILED No Chromium for the end-to-end tests.*Fix: npx playwright install chromium/);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('a STUDIO_CHROMIUM that does not exist is an error naming it', async () => {
  const r = await choose({ STUDIO_CHROMIUM: '/nonexistent/chromium' });
  assert.equal(r.code, 3);
  assert.match(r.out, /STUDIO_CHROMIUM=\/nonexistent\/chromium does not exist/);
});
