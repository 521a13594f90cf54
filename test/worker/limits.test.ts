/**
 * Memory: a job whose estimated peak does not fit is refused before it starts, naming the largest
 * size that does (the machine's budget, and on the WebAssembly backend its 4 GiB heap). On a
 * machine with 8 GB: the artistic method at 4096 px, PhotoWCT at 4096 px and the exact smoothing at
 * 8192 px are refused; the sizes they name fit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { budgetFor, memoryFit, WASM_HEAP_BYTES, WORKING_MEMORY } from '../../src-main/engine/memory.ts';
import { writeTinyFixtures } from '../../src-main/engine/models/tiny.ts';

/** What an 8 GB machine lets a job plan on (80%, as memoryLimit()). */
const EIGHT_GB = 0.8 * 8 * 2 ** 30;
let dir = '';
let model = '';

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-limits-'));
  model = (await writeTinyFixtures(path.join(dir, 'tiny'))).modelDir;
  // Big photos, quick to make (flat colour): 4096×2731 and 8192×5461.
  for (const [w, h] of [[4096, 2731], [8192, 5461]]) {
    await sharp({ create: { width: w, height: h, channels: 3, background: { r: 120, g: 90, b: 60 } } }).jpeg().toFile(path.join(dir, `photo-${w}.jpg`));
  }
});
after(() => rm(dir, { recursive: true, force: true }));

function studio(args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, ...env }, timeout: 120_000 },
      (err, _stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }));
  });
}

test('the estimate: what does not fit names a side that fits, and a little more does not', () => {
  for (const backend of ['wasm', 'webgpu']) {
    const budget = budgetFor(backend, EIGHT_GB);
    for (const [method, w, h] of [['gatys', 4096, 2731], ['photo', 4096, 2731], ['smooth', 8192, 5461]] as const) {
      const fit = memoryFit(WORKING_MEMORY[method], w, h, budget);
      assert.equal(fit.ok, false, `${method} at ${w}×${h} on ${backend}`);
      assert.ok(fit.side >= 16 && fit.side < w, `${method}: ${fit.side}`);
      const sw = fit.side, sh = Math.round((h * fit.side) / w);
      assert.equal(memoryFit(WORKING_MEMORY[method], sw, sh, budget).ok, true, `${method} fits at ${sw}×${sh}`);
      const bigger = Math.ceil(fit.side * 1.02);
      assert.equal(memoryFit(WORKING_MEMORY[method], bigger, Math.round((h * bigger) / w), budget).ok, false, `${method}: 2% more does not fit`);
    }
  }
  // The WebAssembly heap binds the artistic method before an 8 GB machine does; a GPU backend is held to the machine only.
  const wasm = memoryFit(WORKING_MEMORY.gatys, 4096, 2731, budgetFor('wasm', EIGHT_GB));
  const gpu = memoryFit(WORKING_MEMORY.gatys, 4096, 2731, budgetFor('webgpu', EIGHT_GB));
  assert.equal(wasm.by, 'heap');
  assert.equal(wasm.limit, 0.9 * WASM_HEAP_BYTES);
  assert.equal(gpu.by, 'machine');
  assert.ok(gpu.side > wasm.side);
  // The smoothing runs outside the heap: only the machine binds it.
  assert.equal(memoryFit(WORKING_MEMORY.smooth, 8192, 5461, budgetFor('wasm', EIGHT_GB)).by, 'machine');
});

test('on an 8 GB machine: artistic and PhotoWCT at 4096 px, the exact smoothing at 8192 px are refused before any work, naming the size that fits', async () => {
  const env = { STUDIO_MEMORY_LIMIT: String(EIGHT_GB), STUDIO_MODELS_DIR: path.join(dir, 'models') };
  const big = path.join(dir, 'photo-4096.jpg'), huge = path.join(dir, 'photo-8192.jpg');
  const cases = [
    { what: 'artistic', args: ['stylize', '--method', 'gatys', '--content', big, '--style', big, '--size', '4096', '--model', model, '--backend', 'wasm', '--out', path.join(dir, 'a.png')], re: /4096×2731 px needs about [\d.]+ GB of memory for the artistic method, more than the 3\.6 GB a WebAssembly engine can use \(of its 4 GB\)/ },
    { what: 'PhotoWCT', args: ['stylize', '--method', 'photo', '--content', big, '--style', big, '--size', '4096', '--model', model, '--backend', 'wasm', '--out', path.join(dir, 'p.png')], re: /4096×2731 px needs about [\d.]+ GB of memory for PhotoWCT/ },
    { what: 'exact smoothing', args: ['smooth', '--mode', 'exact', '--content', huge, '--stylized', huge, '--size', '8192', '--backend', 'wasm', '--out', path.join(dir, 's.png')], re: /8192×5461 px needs about [\d.]+ GB of memory for the smoothing step, more than the 6\.4 GB this machine can give/ },
  ];
  for (const c of cases) {
    const t = Date.now();
    const r = await studio(c.args, env);
    assert.equal(r.code, 2, `${c.what}: ${r.stderr}`);
    assert.match(r.stderr, c.re, c.what);
    const side = Number(/use --size (\d+) or less \(the largest that fits/.exec(r.stderr)?.[1]);
    assert.ok(side >= 16 && side < (c.what === 'exact smoothing' ? 8192 : 4096), `${c.what}: names a size that fits (${side})`);
    assert.ok(Date.now() - t < 60_000, `${c.what}: refused before any work`);
  }
  for (const f of ['a.png', 'p.png', 's.png']) assert.equal(await stat(path.join(dir, f)).then(() => true, () => false), false, `${f} not written`);
});
