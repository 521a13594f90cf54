/**
 * The gradients the engine relies on (convolution input and filter, max and average pooling, mirror
 * padding, ReLU), on every backend that starts here, against the plain CPU backend.
 * WebAssembly's convolution gradients are the studio's own kernels (wasm-grads.ts); WebGPU's are tfjs's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { testBackends } from '../../backends.ts';

interface Case { name: string; xShape: [number, number, number, number]; wShape: [number, number, number, number]; stride: 1 | 2; pad: 'same' | 'valid'; pool: 'max' | 'avg' }
const cases: Case[] = [
  { name: '7×9, 3→5, stride 1 same, max-pool', xShape: [1, 7, 9, 3], wShape: [3, 3, 3, 5], stride: 1, pad: 'same', pool: 'max' },
  { name: '8×10, 4→6, stride 2 valid, avg-pool', xShape: [2, 8, 10, 4], wShape: [3, 3, 4, 6], stride: 2, pad: 'valid', pool: 'avg' },
  { name: '11×6, 8→8, stride 2 same, max-pool', xShape: [1, 11, 6, 8], wShape: [3, 3, 8, 8], stride: 2, pad: 'same', pool: 'max' },
];

const rand = (n: number, seed: number) => { const r = mulberry32(seed); return Float32Array.from({ length: n }, () => r() * 2 - 1); };
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** d/dx and d/dw of a small network that exercises every gradient the engine uses. */
async function grads(c: Case): Promise<Float32Array[]> {
  const x = tf.tensor4d(rand(size(c.xShape), 1), c.xShape);
  const w = tf.tensor4d(rand(size(c.wShape), 2), c.wShape);
  const f = (xi: tf.Tensor, wi: tf.Tensor) => {
    const padded = tf.mirrorPad(xi as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect');
    const y = tf.relu(tf.conv2d(padded, wi as tf.Tensor4D, c.stride, c.pad));
    const p = c.pool === 'max' ? tf.maxPool(y, 2, 2, 'same') : tf.avgPool(y, 2, 2, 'same');
    return tf.sum(tf.square(p));
  };
  const g = tf.grads(f)([x, w]);
  const out = [(await g[0].data()) as Float32Array, (await g[1].data()) as Float32Array];
  tf.dispose([x, w, ...g]);
  return out;
}

const backends = (await testBackends()).filter((b) => b !== 'cpu');
await initBackend('cpu');
const reference = await Promise.all(cases.map(grads));

for (const backend of backends) {
  test(`[${backend}] convolution, pooling, mirror-pad and ReLU gradients equal the CPU backend's`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    for (const [i, c] of cases.entries()) {
      const got = await grads(c);
      for (const [k, what] of ['dx', 'dw'].entries()) {
        const ref = reference[i][k];
        const scale = Math.max(...ref.map(Math.abs));
        const worst = Math.max(...got[k].map((v, j) => Math.abs(v - ref[j])));
        assert.ok(worst <= 1e-4 * scale, `${c.name}: ${what} differs by ${worst} (scale ${scale})`);
      }
    }
    assert.equal(tf.memory().numTensors, before);
  });
}
