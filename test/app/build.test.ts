/**
 * The desktop app's build: electron-vite bundles main (with the engine worker as its own entry),
 * preload and renderer, and the bundled engine worker runs in plain Node (Electron's Node runs the
 * same file). Launching the window itself needs the Electron binary: that is the e2e suite's part.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { EngineClient } from '../../src-main/worker/client.ts';

const run = promisify(execFile);

test('electron-vite builds main, engine worker, preload and renderer; the bundled worker serves jobs', async () => {
  await run(process.execPath, [path.resolve('node_modules/electron-vite/bin/electron-vite.js'), 'build'], { env: { ...process.env, NODE_ENV: 'production' } });
  for (const f of ['out/main/index.js', 'out/main/engine-worker.js', 'out/preload/index.cjs', 'out/renderer/index.html']) {
    assert.ok((await stat(f)).size > 0, `${f} was built`);
  }
  const main = await readFile('out/main/index.js', 'utf8');
  for (const setting of ['contextIsolation: true', 'nodeIntegration: false', 'sandbox: true']) assert.ok(main.includes(setting), setting);
  const html = await readFile('out/renderer/index.html', 'utf8');
  assert.match(html, /Content-Security-Policy/);

  const engine = new EngineClient({ entry: new URL('../../out/main/engine-worker.js', import.meta.url), backend: 'wasm' });
  try {
    const info = await engine.run<{ backend: { name: string } }>({ kind: 'info' }).result;
    assert.equal(info.backend.name, 'wasm');
  } finally {
    await engine.close();
  }
});
