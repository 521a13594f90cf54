/**
 * The desktop window through Playwright's Electron launcher: the built app starts, its security
 * settings hold in the running window, the renderer reaches the engine through the preload, and a
 * run completes. Where no Electron binary is installed (ELECTRON_SKIP_BINARY_DOWNLOAD=1, as in CI
 * here) it is skipped with that reason: the same renderer and handlers are covered by studio.spec.ts.
 */
import { test } from '@playwright/test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { _electron as electron } from '@playwright/test';
import { writeTinyFixtures } from '../src-main/engine/models/tiny.ts';

/** The binary electron's own index.js would run, found without it (requiring it tries a download). */
function electronBinary(): { path?: string; why: string } {
  const override = process.env.ELECTRON_OVERRIDE_DIST_PATH;
  if (override) {
    const p = path.join(override, process.platform === 'win32' ? 'electron.exe' : 'electron');
    return existsSync(p) ? { path: p, why: '' } : { why: `ELECTRON_OVERRIDE_DIST_PATH has no binary at ${p}` };
  }
  const pathFile = path.resolve('node_modules/electron/path.txt');
  if (!existsSync(pathFile)) return { why: 'node_modules/electron has no downloaded binary (installed with ELECTRON_SKIP_BINARY_DOWNLOAD=1)' };
  const p = path.resolve('node_modules/electron/dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(p) ? { path: p, why: '' } : { why: `the Electron binary ${p} is missing` };
}

const bin = electronBinary();

test('desktop app: window, security settings, engine through the preload, a preview run', async () => {
  // Skipped with its reason, in the report and the list: the same renderer and handlers are covered
  // through npm run serve (studio.spec.ts).
  if (!bin.path) process.stdout.write(`SKIPPED: no Electron binary — ${bin.why}\n`);
  test.skip(!bin.path, `no Electron binary — ${bin.why}. The desktop window was not tested; its renderer and handlers were, through npm run serve (e2e/studio.spec.ts).`);
  if (!bin.path) return;
  await promisify(execFile)(process.execPath, [path.resolve('node_modules/electron-vite/bin/electron-vite.js'), 'build'], { env: { ...process.env, NODE_ENV: 'production' } });
  const tmp = await mkdtemp(path.join(tmpdir(), 'studio-electron-'));
  await writeTinyFixtures(path.join(tmp, 'models'));
  await mkdir(path.join(tmp, 'user-data'));
  const args = [path.resolve('out/main/index.js'), `--user-data-dir=${path.join(tmp, 'user-data')}`];
  // Without a display server, Chromium's headless Ozone platform (Linux).
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) args.push('--ozone-platform=headless');
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  const app = await electron.launch({
    executablePath: bin.path, args,
    env: { ...process.env, STUDIO_MODELS_DIR: path.join(tmp, 'models'), STUDIO_BACKEND: 'wasm' } as Record<string, string>,
  });
  try {
    const page = await app.firstWindow();
    await page.getByTestId('backend').filter({ hasText: 'wasm' }).waitFor({ timeout: 60_000 });
    assert.equal(await page.title(), 'Style Studio');
    // The renderer has the bridge and nothing of Node (context isolation, no Node integration, sandbox).
    assert.deepEqual(await page.evaluate(() => ({
      bridge: typeof (window as unknown as { studio?: unknown }).studio,
      require: typeof (window as unknown as { require?: unknown }).require,
      process: typeof (window as unknown as { process?: unknown }).process,
    })), { bridge: 'object', require: 'undefined', process: 'undefined' });
    // Navigation and new windows are blocked.
    await page.evaluate(() => { window.open('https://example.com'); window.location.href = 'https://example.com'; });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await app.evaluate(({ BrowserWindow }) => BrowserWindow.getAllWindows().length), 1);
    assert.match(page.url(), /^file:/);
    const menu = await app.evaluate(({ Menu }) => Menu.getApplicationMenu()?.items.map((i) => i.label));
    assert.ok(menu?.includes('File') && menu.includes('Edit') && menu.includes('View'), `menu: ${menu}`);

    // A second launch with the same profile focuses this window and quits (single-instance lock):
    // two studios would write the same settings and outputs.
    const second = await promisify(execFile)(bin.path, args, { env: { ...process.env, STUDIO_MODELS_DIR: path.join(tmp, 'models') }, timeout: 30_000 })
      .then(() => 0, (e: { code?: number }) => e.code ?? 1);
    assert.equal(second, 0, 'the second instance quits cleanly');
    assert.equal(await app.evaluate(({ BrowserWindow }) => BrowserWindow.getAllWindows().length), 1, 'still one window');

    // Drag-and-drop and the file input send the bytes, as in the browser; then a short preview.
    await page.getByTestId('pick-content-input').setInputFiles(path.resolve('assets/samples/content-chelsea.jpg'));
    await page.getByTestId('pick-style-input').setInputFiles(path.resolve('assets/samples/art-starry_night.jpg'));
    await page.getByTestId('size').fill('128');
    await page.getByTestId('iters').fill('10');
    await page.getByTestId('preview').click();
    await page.getByTestId('viewer-caption').filter({ hasText: 'Preview · 128×85 px' }).waitFor({ timeout: 120_000 });
    await mkdir('test-results/e2e', { recursive: true });
    await page.screenshot({ path: 'test-results/e2e/electron-preview.png' });
  } finally {
    await app.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
