import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, readFile, cp, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeTinyFixtures } from '../../src-main/engine/models/tiny.ts';

let dir = '';
let model = '';
let photos = '';

function studio(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, STUDIO_MODELS_DIR: path.join(dir, 'models'), STUDIO_BACKEND: 'wasm' } },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-cli-train-'));
  model = (await writeTinyFixtures(path.join(dir, 'tiny'))).modelDir;
  photos = path.join(dir, 'photos');
  await cp(path.resolve('assets/samples'), photos, { recursive: true, filter: (f) => !/large-|CREDITS/.test(f) });
});
after(() => rm(dir, { recursive: true, force: true }));

test('studio train decoder --precision mixed-bf16 --save-dtype fp16 prints the decoder, validation, report and plot paths', async () => {
  const out = path.join(dir, 'dec');
  const r = await studio(['train', 'decoder', '--level', '1', '--images', photos, '--model', model, '--out', out, '--steps', '4', '--crop', '24', '--batch', '2',
    '--precision', 'mixed-bf16', '--optimizer', 'sgd', '--lr', '1e-2', '--warmup', '2', '--decay', 'cosine', '--clip-norm', '10', '--save-dtype', 'fp16', '--val-every', '2', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /decoder level 1: .*level1\.safetensors \(4 steps/);
  assert.match(r.stdout, /validation loss .* best .* at step \d: .*best/);
  assert.match(r.stdout, /loss scale 65536; 0 step\(s\) skipped/);
  const report = /report: (.*)/.exec(r.stdout)![1];
  const plots = [...r.stdout.matchAll(/plot: (.*)/g)].map((m) => m[1]);
  assert.equal(plots.length, 3);
  for (const p of plots) assert.match(await readFile(p, 'utf8'), /^<svg/);
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.equal(rep.history.length, 4);
  assert.equal(rep.job.precision, 'mixed-bf16');
  assert.deepEqual(rep.history.map((h: { lr: number }) => h.lr.toPrecision(6)), ['0.00500000', '0.0100000', '0.00500000', '0.00000']);
  assert.ok((await stat(path.join(out, 'best', 'level1.safetensors'))).size > 0, 'the best checkpoint is kept');
  const bad = await studio(['train', 'decoder', '--level', '1', '--images', photos, '--model', model, '--precision', 'fp8']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--precision must be one of fp32, mixed-fp16, mixed-bf16/);
});
