import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { matrixRoot, sqrtAndInvSqrt } from '../../../src-main/engine/photo/matrix-sqrt.ts';
import { wct, featureScaleOf } from '../../../src-main/engine/photo/wct.ts';
import { wctWithLabels, labelImageToIds, contentStyleLabelIds, LabelPalette } from '../../../src-main/engine/photo/labels.ts';
import { CAFFE_PREPROCESSING, TORCH_PREPROCESSING } from '../../../src-main/engine/models/format.ts';
import { testBackends } from '../../backends.ts';

/** Values of a tensor, read asynchronously (WebGPU has no synchronous read-back). */
const values = async (t: tf.Tensor) => Float64Array.from(await t.data());

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}
/** Approximately normal (sum of uniforms). */
const normal = (r: () => number) => r() + r() + r() + r() - 2;

const C = 16;

/**
 * ReLU-like features [1,h,w,C] of a given rank: relu(Z·B + b)·scale, Z [hw, rank]. On the Caffe
 * scale (scale 300) values run ~0–1000 and channel variances are ~10⁴; on the unit scale (0.5), ~0.1.
 * For rank < C the ReLU would raise the rank again, so those are linear: Z·B·scale + offset.
 */
function features(h: number, w: number, seed: number, scale: number, rank = C): tf.Tensor4D {
  const r = rng(seed);
  const z = Array.from({ length: h * w * rank }, () => normal(r));
  const b = Array.from({ length: rank * C }, () => normal(r));
  const bias = Array.from({ length: C }, () => r());
  const data = new Float32Array(h * w * C);
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < C; c++) {
      let t = bias[c];
      for (let k = 0; k < rank; k++) t += z[p * rank + k] * b[k * C + c];
      data[p * C + c] = rank < C ? (t + 2) * scale : Math.max(0, t) * scale;
    }
  }
  return tf.tensor4d(data, [1, h, w, C]);
}

/** Mean and covariance (float64, /(n−1)) of the rows of a [n,C] matrix (optionally only some rows). */
function stats(x: Float64Array, rows?: number[]): { mean: Float64Array; cov: Float64Array } {
  const idx = rows ?? Array.from({ length: x.length / C }, (_, i) => i);
  const mean = new Float64Array(C);
  for (const p of idx) for (let c = 0; c < C; c++) mean[c] += x[p * C + c] / idx.length;
  const cov = new Float64Array(C * C);
  for (const p of idx) for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) cov[i * C + j] += ((x[p * C + i] - mean[i]) * (x[p * C + j] - mean[j])) / (idx.length - 1);
  return { mean, cov };
}
const relErr = (a: Float64Array, b: Float64Array) => {
  let d = 0;
  let n = 0;
  a.forEach((v, i) => { d += (v - b[i]) ** 2; n += b[i] ** 2; });
  return Math.sqrt(d / n);
};

/** Relative errors of the output's mean and covariance against the style's. */
async function transferErrors(out: tf.Tensor, fs: tf.Tensor, outRows?: number[], styleRows?: number[]) {
  const o = stats(await values(out), outRows);
  const s = stats(await values(fs), styleRows);
  return { mean: relErr(o.mean, s.mean), cov: relErr(o.cov, s.cov) };
}

const badArgument = (e: { code?: string }) => e.code === 'BAD_ARGUMENT';

for (const backend of await testBackends()) describe(backend, () => {
  before(() => initBackend(backend));

  test(`[${backend}] Newton–Schulz square roots match the eigen-decomposition's; rank-deficient falls back to eigen`, async () => {
    const start = tf.memory().numTensors;
    const x = features(8, 8, 1, 1);
    const a = tf.tidy(() => {
      const m = tf.reshape(x, [64, C]);
      return tf.add(tf.div(tf.matMul(m, m, true, false), 63), tf.mul(tf.eye(C), 0.05)) as tf.Tensor2D;
    });
    const ns = await sqrtAndInvSqrt(a, { method: 'newton-schulz' });
    const eig = await sqrtAndInvSqrt(a, { method: 'eigen' });
    const auto = await sqrtAndInvSqrt(a);
    assert.equal(ns.method, 'newton-schulz');
    assert.ok(ns.iterations > 0 && ns.residual < 2e-5, `${ns.iterations} steps, residual ${ns.residual}`);
    assert.equal(eig.method, 'eigen');
    assert.equal(auto.method, 'newton-schulz');
    assert.ok(relErr(await values(ns.sqrt), await values(eig.sqrt)) < 1e-4);
    assert.ok(relErr(await values(ns.invSqrt), await values(eig.invSqrt)) < 1e-4);
    // sqrt² = A
    const sq = tf.matMul(ns.sqrt, ns.sqrt);
    assert.ok(relErr(await values(sq), await values(a)) < 1e-4);

    // Rank 6 of 16: Newton–Schulz cannot converge (and cannot drop eigenvalues): auto uses eigen.
    const low = tf.tidy(() => {
      const m = tf.reshape(features(4, 4, 2, 1, 6), [16, C]);
      const mc = tf.sub(m, tf.mean(m, 0, true));
      return tf.div(tf.matMul(mc, mc, true, false), 15) as tf.Tensor2D;
    });
    const lowAuto = await sqrtAndInvSqrt(low);
    assert.equal(lowAuto.method, 'eigen');
    assert.ok(lowAuto.fallbackReason, 'says why');
    assert.ok(lowAuto.dropped >= C - 6, `dropped ${lowAuto.dropped}`);
    const lowSq = tf.matMul(lowAuto.sqrt, lowAuto.sqrt);
    assert.ok(relErr(await values(lowSq), await values(low)) < 1e-4);
    await assert.rejects(sqrtAndInvSqrt(low, { method: 'newton-schulz' }), (e: { code?: string }) => e.code === 'INTERNAL');

    // One root alone: the eigen path's the same values as the pair's; Newton–Schulz's releases the other.
    const before = tf.memory().numTensors;
    for (const method of ['eigen', 'newton-schulz'] as const) {
      const pair = method === 'eigen' ? eig : ns;
      const [r, i] = [await matrixRoot(a, 'sqrt', { method }), await matrixRoot(a, 'invSqrt', { method })];
      assert.equal(r.method, method);
      assert.deepEqual(await values(r.root), await values(pair.sqrt), `${method}: sqrt`);
      assert.deepEqual(await values(i.root), await values(pair.invSqrt), `${method}: invSqrt`);
      tf.dispose([r.root, i.root]);
    }
    assert.equal(tf.memory().numTensors, before, 'a root alone leaves nothing behind');

    tf.dispose([x, a, sq, low, lowSq, ns.sqrt, ns.invSqrt, eig.sqrt, eig.invSqrt, auto.sqrt, auto.invSqrt, lowAuto.sqrt, lowAuto.invSqrt]);
    assert.equal(tf.memory().numTensors, start, 'no tensor leaks');
  });

  for (const [scaleName, scale] of [['Caffe-scale', 300], ['unit-scale', 0.5]] as const) {
    for (const [rankName, rank] of [['full-rank', C], ['rank-10', 10]] as const) {
      test(`[${backend}] WCT gives the style's mean and covariance: ${scaleName}, ${rankName} style`, async () => {
        const fc = features(10, 12, 3, scale);
        const fs = features(9, 11, 4, scale, rank);
        const start = tf.memory().numTensors;
        for (const method of ['auto', 'eigen'] as const) {
          const r = await wct(fc, fs, { method });
          const e = await transferErrors(r.out, fs);
          assert.ok(e.cov < 1e-3, `${method}: covariance error ${e.cov}`);
          assert.ok(e.mean < 1e-3, `${method}: mean error ${e.mean}`);
          assert.ok(Math.abs(r.covError - e.cov) < 2e-4, `reported ${r.covError} vs measured ${e.cov}`);
          if (rank < C) assert.equal(r.coloring.method, 'eigen', 'rank-deficient style: colouring by eigen');
          // The reference's +I exactly on its own scale; a smaller one on unit-scale features.
          if (scale > 1) assert.equal(r.regularizer, 1);
          else assert.ok(r.regularizer < 1e-4, `regulariser ${r.regularizer}`);
          r.out.dispose();
        }
        assert.equal(tf.memory().numTensors, start, 'no tensor leaks');
        tf.dispose([fc, fs]);
      });
    }
  }

  test(`[${backend}] WCT: the reference's absolute +I fails on unit-scale features; the model's feature scale fixes it`, async () => {
    const fc = features(10, 12, 5, 0.5);
    const fs = features(9, 11, 6, 0.5);
    const absolute = await wct(fc, fs, { featureScale: 1 }); // +I and 1e-5 as the reference has them
    assert.ok(absolute.covError > 0.1, `absolute +I: ${absolute.covError}`);
    // A model's own scale: torchvision preprocessing scales features by ≈ 1/(255·0.226).
    assert.equal(featureScaleOf(CAFFE_PREPROCESSING), 1);
    const s = featureScaleOf(TORCH_PREPROCESSING);
    assert.ok(Math.abs(s - 1 / (255 * 0.226)) < 1e-4);
    const scaled = await wct(fc, fs, { featureScale: s });
    assert.ok(Math.abs(scaled.regularizer - s * s) < 1e-12);
    assert.ok(scaled.covError < 1e-2, `model-scaled +I: ${scaled.covError}`);
    tf.dispose([fc, fs, absolute.out, scaled.out]);
  });

  test(`[${backend}] WCT: α = 0 returns f_c, α blends; bad arguments`, async () => {
    const fc = features(6, 6, 7, 300);
    const fs = features(5, 7, 8, 300);
    const start = tf.memory().numTensors;
    const zero = await wct(fc, fs, { alpha: 0 });
    assert.deepEqual(await values(zero.out), await values(fc));
    const full = await wct(fc, fs);
    const half = await wct(fc, fs, { alpha: 0.5 });
    const [h, f, c] = [await values(half.out), await values(full.out), await values(fc)];
    h.forEach((v, i) => assert.ok(Math.abs(v - (f[i] + c[i]) / 2) <= 1e-3 * (1 + Math.abs(v)), `α = 0.5 at ${i}`));
    tf.dispose([zero.out, full.out, half.out]);

    const wrongChannels = tf.zeros([1, 3, 3, 8]) as tf.Tensor4D;
    const rank3 = tf.zeros([2, 2, C]) as unknown as tf.Tensor4D;
    const onePixel = tf.zeros([1, 1, 1, C]) as tf.Tensor4D;
    await assert.rejects(wct(fc, wrongChannels), badArgument);
    await assert.rejects(wct(rank3, fs), badArgument);
    await assert.rejects(wct(fc, onePixel), badArgument);
    await assert.rejects(wct(fc, fs, { alpha: 2 }), badArgument);
    await assert.rejects(wct(fc, fs, { featureScale: 0 }), badArgument);
    tf.dispose([wrongChannels, rank3, onePixel]);
    assert.equal(tf.memory().numTensors, start, 'no tensor leaks');
    tf.dispose([fc, fs]);
  });

  test(`[${backend}] WCT with label maps: only valid labelled regions change, each towards its own style region`, async () => {
    // Content 12×12: left half label 0 (72 px), right half label 1 (72 px) except a 3×3 block of label 2 (9 px).
    // Style 10×10: top 60 px label 0, bottom 40 px label 1, and label 2 on 20 px, label 3 nowhere in the content.
    const fc = features(12, 12, 9, 300);
    const fs = features(10, 10, 10, 300);
    const cl = new Int32Array(144).map((_, i) => ((i % 12) < 6 ? 0 : 1));
    for (const y of [0, 1, 2]) for (const x of [9, 10, 11]) cl[y * 12 + x] = 2;
    const sl = new Int32Array(100).map((_, i) => (i < 60 ? 0 : 1));
    for (let i = 80; i < 100; i++) sl[i] = i < 90 ? 2 : 3;
    const big = features(30, 40, 11, 300); // 1200 px, one label
    const small = features(4, 3, 12, 300); // 12 px, same label
    const start = tf.memory().numTensors;
    const r = await wctWithLabels(fc, fs, cl, sl);
    const byLabel = (labels: Int32Array, l: number) => Array.from(labels.keys()).filter((i) => labels[i] === l);
    const region = (l: number) => r.regions.find((g) => g.label === l)!;
    assert.equal(region(0).used, true);
    assert.equal(region(1).used, true);
    assert.equal(region(2).used, false, 'label 2 has 9 content pixels (≤ 10)');
    assert.equal(region(3).used, false, 'label 3 is absent from the content');
    const out = await values(r.out);
    const orig = await values(fc);
    // Label 2's positions keep f_c exactly; labels 0 and 1 carry their style region's statistics.
    for (const p of byLabel(cl, 2)) for (let c = 0; c < C; c++) assert.equal(out[p * C + c], orig[p * C + c]);
    for (const l of [0, 1]) {
      const e = await transferErrors(r.out, fs, byLabel(cl, l), byLabel(sl, l));
      assert.ok(e.cov < 1e-3 && e.mean < 1e-3, `label ${l}: ${JSON.stringify(e)}`);
    }
    assert.ok(r.covError < 1e-3);
    r.out.dispose();

    // The size-ratio rule: a content region 100× the style's is not used; 92× is.
    const none = await wctWithLabels(big, small, new Int32Array(1200), new Int32Array(12));
    assert.equal(none.regions[0].used, false, '1200 vs 12 px: ratio 100');
    assert.deepEqual(await values(none.out), await values(big));
    assert.ok(Number.isNaN(none.covError));
    none.out.dispose();
    const ok = await wctWithLabels(big, small, new Int32Array(1200).map((_, i) => (i < 1100 ? 0 : -1)), new Int32Array(12));
    assert.equal(ok.regions[0].used, true, '1100 vs 12 px: ratio < 100');
    const o = await values(ok.out);
    const b = await values(big);
    for (let p = 1100; p < 1200; p++) for (let c = 0; c < C; c++) assert.equal(o[p * C + c], b[p * C + c], 'negative label: unstylised');
    ok.out.dispose();
    assert.equal(tf.memory().numTensors, start, 'no tensor leaks');

    await assert.rejects(wctWithLabels(fc, fs, new Int32Array(100), sl), badArgument);
    await assert.rejects(wctWithLabels(fc, fs, cl, Array.from(sl) as unknown as Int32Array), badArgument);
    await assert.rejects(wctWithLabels(fc, fs, new Int32Array(0), sl), badArgument);
    tf.dispose([fc, fs, big, small]);
  });
});

describe('label maps to label ids', () => {
  test('nearest-neighbour resize, one id per colour across maps, 8-bit and float agree', () => {
    // Content 4×2 RGB (8-bit): red left, blue right. Style 2×2 float RGB: blue top, green bottom.
    const content = { width: 4, height: 2, data: Uint8Array.from([255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255]) };
    const style = { width: 2, height: 2, data: Float32Array.from([0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0]) };
    const ids = contentStyleLabelIds(content, style, { height: 4, width: 8 }, { height: 3, width: 3 });
    assert.deepEqual(Array.from(ids.content.subarray(0, 8)), [0, 0, 0, 0, 1, 1, 1, 1]);
    assert.deepEqual(Array.from(ids.content.subarray(24, 32)), [0, 0, 0, 0, 1, 1, 1, 1]);
    // 2 rows → 3: source rows 0, 1, 1.
    assert.deepEqual(Array.from(ids.style), [1, 1, 1, 2, 2, 2, 2, 2, 2], 'blue is id 1 in both maps');
    assert.deepEqual(ids.palette.colors, [[255, 0, 0], [0, 0, 255], [0, 255, 0]]);
    // Grey equals (g, g, g); RGBA ignores alpha; downsizing picks the nearest source pixel.
    const palette = new LabelPalette();
    const grey = labelImageToIds({ width: 2, height: 1, data: Uint8Array.from([128, 0]) }, 1, 2, palette);
    const rgba = labelImageToIds({ width: 1, height: 1, data: Uint8Array.from([128, 128, 128, 7]) }, 1, 1, palette);
    assert.deepEqual([...grey, ...rgba], [0, 1, 0]);
    const downPalette = new LabelPalette();
    const down = labelImageToIds({ width: 4, height: 1, data: Uint8Array.from([1, 2, 3, 4]) }, 1, 2, downPalette);
    assert.deepEqual(downPalette.colors, [[2, 2, 2], [4, 4, 4]]);
    assert.deepEqual(Array.from(down), [0, 1], 'samples the source pixels 1 and 3 (values 2 and 4)');
  });

  test('bad label maps are a BAD_ARGUMENT', () => {
    const bad = (f: () => unknown) => assert.throws(f, badArgument);
    bad(() => labelImageToIds({ width: 2, height: 2, data: new Uint8Array(0) }, 2, 2));
    bad(() => labelImageToIds({ width: 2, height: 2, data: new Uint8Array(5) }, 2, 2));
    bad(() => labelImageToIds({ width: 2, height: 2, data: [1, 2, 3, 4] as unknown as Uint8Array }, 2, 2));
    bad(() => labelImageToIds({ width: 0, height: 2, data: new Uint8Array(0) }, 2, 2));
    bad(() => labelImageToIds(null as unknown as { width: number; height: number; data: Uint8Array }, 2, 2));
    bad(() => labelImageToIds({ width: 1, height: 1, data: Float32Array.from([NaN]) }, 1, 1));
    bad(() => labelImageToIds({ width: 1, height: 1, data: new Uint8Array(1) }, 0, 1));
  });
});
