/**
 * Mixed-precision decoder training end to end, through the engine worker (WebAssembly, as the CLI
 * runs it), on the tiny network with small crops.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, cp, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EngineClient } from '../../../src-main/worker/client.ts';
import { writeTinyFixtures } from '../../../src-main/engine/models/tiny.ts';
import { loadVgg19 } from '../../../src-main/engine/models/store.ts';
import { encoderHash, loadDecoder, decoderPath } from '../../../src-main/engine/models/decoders.ts';
import { photoWct } from '../../../src-main/engine/photo/stylize.ts';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { loadPhotoFolder } from '../../../src-main/io/dataset.ts';
import { decodeSafetensors } from '../../../src-main/engine/tensors/safetensors.ts';
import { TrainDecoderJob, type Job, type JobEvent } from '../../../src-main/protocol.ts';
import { CancelledError } from '../../../src-main/errors.ts';
import type { TrainResult } from '../../../src-main/worker/train.ts';

let dir = '';
let model = '';
let photos = '';
let client: EngineClient;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-mixed-'));
  model = (await writeTinyFixtures(dir)).modelDir;
  photos = path.join(dir, 'photos');
  await cp(path.resolve('assets/samples'), photos, { recursive: true, filter: (f) => !/large-|CREDITS/.test(f) });
  client = new EngineClient({ backend: 'wasm' });
});
after(async () => {
  await client.close();
  await rm(dir, { recursive: true, force: true });
});

const job = (o: Partial<TrainDecoderJob>): Job => TrainDecoderJob.parse({ kind: 'train-decoder', level: 2, images: photos, model, crop: 32, batch: 4, lr: 1e-3, ...o });
const memory = () => client.run<{ numTensors: number }>({ kind: 'memory' }).result;
interface Report { history: { zeroFraction: number; underflowFraction: number; skipped: boolean; lossScale: number }[] }

test('mixed-fp16 with dynamic loss scaling matches fp32\'s validation loss (within 5%); without scaling more gradient values are zero', async () => {
  // The decoder's loss is on the [0, 1] image scale (as FastPhotoStyle's PyTorch training), so its
  // gradients are small: at the decoder's output each is 2·error/N (N = 4·32·32·3 values, divided by
  // 255²), around 1e-8…1e-6, and the smallest fall below fp16's 2^-24 in the backward casts unless the
  // loss is scaled. Same seed, same data order, same steps for all three runs.
  const start = await memory();
  const run = (name: string, o: Partial<TrainDecoderJob>) => client.run<TrainResult>(job({ steps: 20, valEvery: 20, out: path.join(dir, name), ...o })).result;
  const fp32 = await run('fp32', { precision: 'fp32' });
  const dynamic = await run('dyn', { precision: 'mixed-fp16' });
  const unscaled = await run('none', { precision: 'mixed-fp16', lossScale: 1 });
  assert.ok(fp32.finalValLoss < fp32.firstLoss * 0.8, `fp32 learnt: ${fp32.firstLoss} → val ${fp32.finalValLoss}`);
  const rel = Math.abs(dynamic.finalValLoss - fp32.finalValLoss) / fp32.finalValLoss;
  assert.ok(rel < 0.05, `validation loss fp32 ${fp32.finalValLoss}, mixed-fp16 ${dynamic.finalValLoss} (${(100 * rel).toFixed(2)}%)`);
  const rep = async (r: TrainResult) => JSON.parse(await readFile(r.report, 'utf8')) as Report;
  const mean = (r: Report, f: (h: Report['history'][number]) => number) => r.history.reduce((s, h) => s + f(h), 0) / r.history.length;
  const [d, n] = [await rep(dynamic), await rep(unscaled)];
  const zd = mean(d, (h) => h.zeroFraction);
  const zn = mean(n, (h) => h.zeroFraction);
  console.log(`# zero fraction ${zn} without scaling, ${zd} dynamic; validation fp32 ${fp32.finalValLoss}, mixed-fp16 ${dynamic.finalValLoss}`);
  assert.ok(zn > zd, `zero-gradient fraction without scaling ${zn} > with dynamic scaling ${zd}`);
  const [ud, un] = [mean(d, (h) => h.underflowFraction), mean(n, (h) => h.underflowFraction)];
  assert.ok(un > 10 * ud, `weight-gradient values that underflow: ${un} without scaling, ${ud} with a 2^16 loss scale`);
  assert.ok(d.history.every((h) => h.lossScale === 65536 && !h.skipped), 'no overflow at 2^16 here');
  for (const r of [fp32, dynamic, unscaled]) {
    for (const p of r.plots) assert.match(await readFile(p, 'utf8'), /^<svg[\s\S]*<\/svg>$/);
  }
  assert.deepEqual(await memory(), start, 'every tensor returned');
});

test('--resume after an interrupted mixed-precision run (dynamic scaling, Adam) ends with the uninterrupted run\'s weights exactly', async () => {
  const start = await memory();
  // A huge initial scale overflows fp16 at first: the scaler backs off (skipped steps), then grows
  // every 4 clean steps, so its state changes across the interruption.
  const o = { precision: 'mixed-fp16' as const, steps: 24, checkpointEvery: 5, lossScaleInit: 2 ** 40, lossScaleInterval: 4, valEvery: 8, warmup: 4, decay: 'cosine' as const, weightDecay: 1e-4 };
  const whole = await client.run<TrainResult>(job({ ...o, out: path.join(dir, 'whole') })).result;
  let seen = 0;
  const running = client.run<TrainResult>(job({ ...o, out: path.join(dir, 'cut') }), (e: JobEvent) => {
    if (e.type === 'progress' && e.iteration && ++seen === 13) running.cancel();
  });
  await assert.rejects(running.result, CancelledError);
  const resumed = await client.run<TrainResult>(job({ ...o, out: path.join(dir, 'cut'), resume: true })).result;
  assert.ok(resumed.resumedFrom >= 13 && resumed.resumedFrom <= 14, `resumed from ${resumed.resumedFrom}`);
  assert.ok(whole.skippedSteps > 0, 'the scaler did back off');
  const hash = await encoderHash(model);
  const a = (await loadDecoder(path.join(dir, 'whole'), 2, hash)).weights;
  const b = (await loadDecoder(path.join(dir, 'cut'), 2, hash)).weights;
  for (const [name, w] of a) {
    assert.deepEqual(Array.from(b.get(name)!.kernel), Array.from(w.kernel), `${name} kernel`);
    assert.deepEqual(Array.from(b.get(name)!.bias), Array.from(w.bias), `${name} bias`);
  }
  assert.equal(resumed.finalLoss, whole.finalLoss);
  assert.equal(resumed.finalLossScale, whole.finalLossScale);
  assert.equal(resumed.skippedSteps, whole.skippedSteps);
  assert.equal(resumed.finalValLoss, whole.finalValLoss);
  assert.deepEqual(await memory(), start, 'training, cancelling and resuming return every tensor');
});

test('--save-dtype fp16 writes F16 safetensors of about half the size that load and stylise as the fp32 file does, within fp16 tolerance', async () => {
  const o = { level: 1 as const, steps: 6, valFraction: 0, optimizer: 'sgd' as const, lr: 1e-2 };
  await client.run(job({ ...o, out: path.join(dir, 's32') })).result;
  const r16 = await client.run<TrainResult>(job({ ...o, out: path.join(dir, 's16'), saveDtype: 'fp16' })).result;
  const f32File = decoderPath(path.join(dir, 's32'), 1);
  const f16File = decoderPath(path.join(dir, 's16'), 1);
  assert.equal(r16.decoder, f16File);
  const header = decodeSafetensors(await readFile(f16File));
  assert.ok([...header.tensors.values()].length > 0);
  assert.match((await readFile(f16File)).subarray(8, 400).toString('latin1'), /"dtype":"F16"/);
  const ratio = (await stat(f16File)).size / (await stat(f32File)).size;
  assert.ok(ratio > 0.45 && ratio < 0.8, `size ratio ${ratio}`); // the JSON header does not halve

  await initBackend('wasm');
  const hash = await encoderHash(model);
  const d32 = (await loadDecoder(path.join(dir, 's32'), 1, hash)).weights;
  const d16 = (await loadDecoder(path.join(dir, 's16'), 1, hash)).weights;
  let differ = 0;
  for (const [name, w] of d32) {
    w.kernel.forEach((x, i) => {
      const y = d16.get(name)!.kernel[i];
      assert.ok(Math.abs(x - y) <= Math.abs(x) * 2 ** -11 + 2 ** -25, `${name}[${i}] ${x} vs ${y}: the fp16 rounding of the same weight`);
      if (x !== y) differ++;
    });
  }
  assert.ok(differ > 0, 'the fp16 file really holds rounded weights');
  const vgg = await loadVgg19(model);
  const [content, style] = (await loadPhotoFolder(photos, 48)).slice(0, 2).map((p) => ({ width: p.width, height: p.height, data: p.data }));
  const hooks = { checkCancelled: () => {} };
  const a = await photoWct(vgg, new Map([[1, d32]]), content, style, { alpha: 1, levels: [1] }, hooks);
  const b = await photoWct(vgg, new Map([[1, d16]]), content, style, { alpha: 1, levels: [1] }, hooks);
  let max = 0;
  a.image.data.forEach((x, i) => { max = Math.max(max, Math.abs(x - b.image.data[i])); });
  // Weights within 2^-11 relative give outputs within a fraction of one 8-bit level.
  assert.ok(max < 1 / 255, `largest pixel difference ${max * 255} of 255`);
});
