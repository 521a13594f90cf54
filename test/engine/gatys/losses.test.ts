import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import { contentLoss, gram, normalizedGram, styleLoss, tvLoss, blendGrams, totalLoss } from '../../../src-main/engine/gatys/losses.ts';

await tf.setBackend('cpu');

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

// Positions × channels [[1,2],[3,4]]: F (N×D) = [[1,3],[2,4]], so F Fᵀ = [[10,14],[14,20]].
const f = () => tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]);

test('Gram matrix is F Fᵀ, normalised by N·D', () => {
  assert.deepEqual(Array.from(gram(tf.tensor2d([1, 2, 3, 4], [2, 2])).dataSync()), [10, 14, 14, 20]);
  assert.deepEqual(Array.from(normalizedGram(f()).dataSync()), [2.5, 3.5, 3.5, 5]);
});

test('content loss is 1/(2ND) Σ (F[x] − F[c])²', () => {
  close(contentLoss(f(), tf.zeros([1, 1, 2, 2])).dataSync()[0], 30 / 8);
  close(contentLoss(f(), f()).dataSync()[0], 0);
});

test('style loss is 1/(2N²) Σ (G[x] − G[s])²', () => {
  close(styleLoss(normalizedGram(f()), tf.zeros([2, 2])).dataSync()[0], (2.5 ** 2 + 2 * 3.5 ** 2 + 5 ** 2) / 8);
});

test('total variation is ½ Σ of squared neighbour differences', () => {
  const x = tf.tensor4d([1, 2, 4, 8], [1, 2, 2, 1]);
  close(tvLoss(x).dataSync()[0], 0.5 * (1 + 16 + 9 + 36));
});

test('the Gram custom gradient equals the autodiff gradient of F Fᵀ', () => {
  const F = tf.randomNormal([6, 3], 0, 1, 'float32', 7) as tf.Tensor2D;
  const W = tf.randomNormal([3, 3], 0, 1, 'float32', 8);
  const ours = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(gram(x as tf.Tensor2D), W)))(F);
  const ref = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, x as tf.Tensor2D, true, false), W)))(F);
  const d = tf.max(tf.abs(tf.sub(ours, ref))).dataSync()[0];
  assert.ok(d < 1e-5, `max difference ${d}`);
});

test('blended Grams weigh each style', () => {
  const g = blendGrams([tf.ones([2, 2]), tf.fill([2, 2], 3)], [0.25, 0.75]);
  assert.deepEqual(Array.from(g.dataSync()), [2.5, 2.5, 2.5, 2.5]);
});

test('the total loss weighs its parts and sums them', () => {
  const x = tf.tensor4d([1, 2, 4, 8], [1, 2, 2, 1]);
  const feats = new Map([['relu1_1', f()]]);
  const targets = { content: new Map([['relu1_1', tf.zeros([1, 1, 2, 2]) as tf.Tensor4D]]), style: new Map([['relu1_1', tf.zeros([2, 2]) as tf.Tensor2D]]) };
  const w = { content: 2, style: 3, tv: 0.5, contentLayers: new Map(), styleLayers: new Map([['relu1_1', 10]]) };
  const p = totalLoss(x, feats, targets, w);
  close(p.content.dataSync()[0], 2 * 3.75);
  close(p.style.dataSync()[0], 3 * 10 * 6.96875);
  close(p.tv.dataSync()[0], 0.5 * 31);
  close(p.total.dataSync()[0], 2 * 3.75 + 30 * 6.96875 + 15.5);
});
