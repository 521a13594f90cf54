import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { preprocess } from '../../../src-main/engine/models/vgg19-net.ts';
import { PhotoAutoencoder, initDecoder } from '../../../src-main/engine/photo/autoencoder.ts';
import { DecoderOptimizer, decoderVariables, trainStep } from '../../../src-main/engine/train/step.ts';
import { DYNAMIC_DEFAULTS, LossScaler, PrecisionPolicy } from '../../../src-main/engine/train/precision.ts';
import { learningRate, type LrSchedule } from '../../../src-main/engine/train/schedule.ts';
import { linePlotSvg, trainingPlots } from '../../../src-main/engine/train/report.ts';
import { roundToF16 } from '../../../src-main/engine/tensors/half.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { testBackends } from '../../backends.ts';

const backends = await testBackends();
after(async () => {
  await initBackend('cpu');
});

const vgg = tinyVgg19(1);
function tinyAutoencoder(): PhotoAutoencoder {
  return new PhotoAutoencoder(1, { widths: vgg.widths, tensors: vgg.tensors, preprocess: (t) => preprocess(t, vgg.preprocessing) }, initDecoder(1, vgg.widths, mulberry32(5)));
}
const batchOf = () => tf.tidy(() => tf.mul(tf.randomUniform([2, 12, 12, 3], 0, 1, 'float32', 9), 255) as tf.Tensor4D);

test('mixed-fp16: the master weights stay float32 and take the update, computed from the unscaled gradient', async () => {
  for (const b of backends) {
    await initBackend(b);
    const start = tf.memory().numTensors;
    const ae = tinyAutoencoder();
    const vars = decoderVariables(ae);
    const before = await Promise.all(vars.map(async (v) => Float32Array.from(await v.data())));
    // Plain SGD (no momentum) with a learning rate so small that every update is far below fp16's
    // spacing of the weights: in fp16 weights nothing would change; the FP32 masters must.
    const lr = 1e-6;
    const opt = new DecoderOptimizer(vars, { kind: 'sgd', momentum: 0 });
    const policy = new PrecisionPolicy('mixed-fp16');
    const scaler = new LossScaler(DYNAMIC_DEFAULTS);
    const batch = batchOf();
    let captured: tf.Tensor[] = [];
    const v = await trainStep(ae, opt, batch, {
      lambda: 1, lr, policy, scaler, injectGrads: (g) => { captured = g.map((x) => tf.keep(x.clone())); return g; },
    });
    assert.equal(v.skipped, false);
    assert.equal(v.lossScale, 65536);
    for (const [i, w] of vars.entries()) {
      assert.equal(w.dtype, 'float32');
      const after = Float32Array.from(await w.data());
      // The optimiser's own arithmetic on this backend: w − g·lr, with g the unscaled float32 gradient.
      const expect = tf.tidy(() => tf.sub(tf.tensor(before[i], w.shape), tf.mul(captured[i], lr)));
      assert.deepEqual(Array.from(after), Array.from(await expect.data()), `${b} ${w.name}: master weights = w − lr·g`);
      expect.dispose();
      const moved = after.filter((x, k) => x !== before[i][k]).length;
      const fp16Moved = after.filter((x, k) => roundToF16(x) !== roundToF16(before[i][k])).length;
      assert.ok(moved > after.length / 2, `${b} ${w.name}: ${moved} of ${after.length} master weights moved`);
      assert.ok(fp16Moved < moved / 4, `${b} ${w.name}: in fp16 only ${fp16Moved} would have (the update is below fp16's resolution)`);
    }
    // The gradients the update used came through the fp16 cast, scaled by 2^16: unscaled, each is an
    // fp16 value divided by 2^16, i.e. a multiple of 2^-40 (fp16's subnormal quantum / 2^16).
    for (const g of captured) for (const x of await g.data()) assert.equal(Number.isInteger(x * 2 ** 40), true);
    tf.dispose([...captured, batch]);
    opt.dispose();
    policy.dispose();
    ae.dispose();
    assert.equal(tf.memory().numTensors, start, `${b}: every tensor returned`);
  }
});

test('an injected Inf in the gradients skips the update, halves the loss scale and leaves the optimiser untouched', async () => {
  for (const b of backends) {
    await initBackend(b);
    const start = tf.memory().numTensors;
    const ae = tinyAutoencoder();
    const vars = decoderVariables(ae);
    const opt = new DecoderOptimizer(vars, { kind: 'adam' });
    const policy = new PrecisionPolicy('mixed-fp16');
    const scaler = new LossScaler({ ...DYNAMIC_DEFAULTS, growthInterval: 2 });
    const batch = batchOf();
    const o = { lambda: 1, lr: 1e-3, policy, scaler };
    assert.equal((await trainStep(ae, opt, batch, o)).skipped, false);
    assert.equal(opt.steps, 1);
    const before = await Promise.all(vars.map(async (v) => Array.from(await v.data())));
    const inf = (g: tf.Tensor[]) => g.map((x, i) => (i === 1 ? tf.keep(tf.fill(x.shape, Infinity)) : x));
    const v = await trainStep(ae, opt, batch, { ...o, injectGrads: inf });
    assert.equal(v.skipped, true);
    assert.equal(v.lossScale, 65536, 'the step ran at the old scale');
    assert.equal(scaler.scale, 32768, 'and the scale was halved');
    assert.equal(opt.steps, 1, 'no update counted');
    for (const [i, w] of vars.entries()) assert.deepEqual(Array.from(await w.data()), before[i], `${b}: ${w.name} unchanged`);
    await trainStep(ae, opt, batch, o);
    await trainStep(ae, opt, batch, o);
    assert.equal(scaler.scale, 65536, 'grown again after 2 clean steps');
    assert.equal(opt.steps, 3);
    batch.dispose();
    opt.dispose();
    policy.dispose();
    ae.dispose();
    assert.equal(tf.memory().numTensors, start, `${b}: every tensor returned`);
  }
});

test('learning-rate schedules: linear warm-up, then step or cosine decay', () => {
  const s: LrSchedule = { lr: 1, steps: 110, warmup: 10, decay: 'none', every: 50, factor: 0.1, minLr: 0 };
  assert.equal(learningRate(s, 1), 0.1);
  assert.equal(learningRate(s, 10), 1);
  assert.equal(learningRate(s, 100), 1);
  const st = { ...s, decay: 'step' as const };
  assert.equal(learningRate(st, 60), 1);
  assert.equal(learningRate(st, 61), 0.1);
  assert.ok(Math.abs(learningRate(st, 111) - 0.01) < 1e-15);
  const cos = { ...s, decay: 'cosine' as const, minLr: 0.1 };
  assert.ok(Math.abs(learningRate(cos, 60) - 0.55) < 1e-12, 'half-way between lr and minLr in the middle');
  assert.ok(Math.abs(learningRate(cos, 110) - 0.1) < 1e-12, 'minLr at the last step');
});

test('report plots are SVG with the series drawn (log axes drop non-positive values and say so)', () => {
  const hist = Array.from({ length: 20 }, (_, i) => ({
    step: i + 1, total: 1 / (i + 1), pixel: 0, feature: 0, lossScale: i === 5 ? 32768 : 65536, skipped: i === 5,
    zeroFraction: 0.1, underflowFraction: 0.01, gradNorm: 1, lr: 1e-3, ms: 10,
  }));
  const p = trainingPlots(hist, [{ step: 10, total: 0.2, pixel: 0, feature: 0 }, { step: 20, total: 0.1, pixel: 0, feature: 0 }], 'mixed-fp16');
  for (const svg of Object.values(p)) {
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>$/);
  }
  assert.equal((p.loss.match(/<circle/g) ?? []).length, 2, 'two validation points');
  assert.match(p.loss, /<path d="M/);
  assert.equal((p.scale.match(/<circle/g) ?? []).length, 1, 'one skipped step marked');
  const dropped = linePlotSvg([{ name: 'l', color: 'red', points: [[1, 1], [2, 0], [3, -1]] }], { title: 't', xLabel: 'x', yLabel: 'y', logY: true });
  assert.match(dropped, /2 not shown/);
});
