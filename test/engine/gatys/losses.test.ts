import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { contentLoss, gram, normalizedGram, styleLoss, tvLoss, blendGrams, totalLoss } from '../../../src-main/engine/gatys/losses.ts';
import { testBackends } from '../../backends.ts';

/** Values of a tensor, read asynchronously (WebGPU has no synchronous read-back). */
const values = async (t: tf.Tensor) => Array.from(await t.data());
const one = async (t: tf.Tensor) => (await t.data())[0];
const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
const allClose = (a: number[], b: number[]) => { assert.equal(a.length, b.length); a.forEach((v, i) => close(v, b[i])); };

// Positions × channels [[1,2],[3,4]]: F (N×D) = [[1,3],[2,4]], so F Fᵀ = [[10,14],[14,20]].
const f = () => tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]);

for (const backend of await testBackends()) describe(backend, () => {
  before(() => initBackend(backend));

  test(`[${backend}] Gram matrix is F Fᵀ, normalised by N·D`, async () => {
    allClose(await values(gram(f())), [10, 14, 14, 20]);
    allClose(await values(normalizedGram(f())), [2.5, 3.5, 3.5, 5]);
  });

  test(`[${backend}] content loss is neural-style's MSE, 1/(ND) Σ (F[x] − F[c])²`, async () => {
    close(await one(contentLoss(f(), tf.zeros([1, 1, 2, 2]))), 30 / 4);
    close(await one(contentLoss(f(), f())), 0);
  });

  test(`[${backend}] style loss is neural-style's MSE of normalised Grams, 1/N² Σ (G[x] − G[s])²`, async () => {
    close(await one(styleLoss(normalizedGram(f()), tf.zeros([2, 2]))), (2.5 ** 2 + 2 * 3.5 ** 2 + 5 ** 2) / 4);
  });

  test(`[${backend}] total variation is neural-style's: ½ Σ of both steps from the (H−1)×(W−1) corner`, async () => {
    // 2×2: only pixel (0,0) has both neighbours; its steps are 1 → 2 and 1 → 4.
    close(await one(tvLoss(tf.tensor4d([1, 2, 4, 8], [1, 2, 2, 1]))), 0.5 * (1 + 9));
    // 3×3, two channels (the second doubled): the last row's and last column's own steps are left out.
    const v = [0, 1, 3, 6, 10, 15, 21, 28, 36];
    const x = tf.tensor4d(v.flatMap((a) => [a, 2 * a]), [1, 3, 3, 2]);
    let want = 0;
    for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) want += (v[i * 3 + j + 1] - v[i * 3 + j]) ** 2 + (v[(i + 1) * 3 + j] - v[i * 3 + j]) ** 2;
    close(await one(tvLoss(x)), 0.5 * want * 5);
    close(await one(tvLoss(tf.ones([1, 1, 5, 3]))), 0);
  });

  test(`[${backend}] the Gram custom gradient equals the autodiff gradient of F Fᵀ`, async () => {
    const F = tf.tensor4d(Array.from({ length: 18 }, (_, i) => Math.sin(i * 1.7)), [1, 2, 3, 3]);
    const W = tf.tensor2d(Array.from({ length: 9 }, (_, i) => Math.cos(i * 0.9)), [3, 3]);
    const ours = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(gram(x as tf.Tensor4D), W)))(F);
    const ref = tf.grad((x: tf.Tensor) => {
      const m = tf.reshape(x, [6, 3]) as tf.Tensor2D;
      return tf.sum(tf.mul(tf.matMul(m, m, true, false), W));
    })(F);
    allClose(await values(ours), await values(ref));
  });

  test(`[${backend}] blended Grams weigh each style`, async () => {
    allClose(await values(blendGrams([tf.ones([2, 2]), tf.fill([2, 2], 3)], [0.25, 0.75])), [2.5, 2.5, 2.5, 2.5]);
  });

  test(`[${backend}] the total loss weighs its parts and sums them`, async () => {
    const x = tf.tensor4d([1, 2, 4, 8], [1, 2, 2, 1]);
    const feats = new Map([['relu1_1', f()]]);
    const targets = { content: new Map([['relu1_1', tf.zeros([1, 1, 2, 2]) as tf.Tensor4D]]), style: new Map([['relu1_1', tf.zeros([2, 2]) as tf.Tensor2D]]) };
    const w = { content: 2, style: 3, tv: 0.5, contentLayers: new Map(), styleLayers: new Map([['relu1_1', 10]]) };
    const p = totalLoss(x, feats, targets, w);
    close(await one(p.content), 2 * 7.5);
    close(await one(p.style), 3 * 10 * 13.9375);
    close(await one(p.tv), 0.5 * 5);
    close(await one(p.total), 2 * 7.5 + 30 * 13.9375 + 2.5);
  });
});
