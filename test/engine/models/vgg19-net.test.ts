import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { preprocess, Vgg19 } from '../../../src-main/engine/models/vgg19-net.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { TORCH_PREPROCESSING } from '../../../src-main/engine/models/format.ts';
import { withEnv } from '../../env.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

await initBackend('cpu');

/** relu1_1 at (y, x) by hand: preprocessing, 3×3 HWIO kernel, bias, zero or reflect padding, ReLU. */
function relu11At(img: Float32Array, h: number, w: number, y: number, x: number, weights: ReturnType<typeof tinyVgg19>, reflect: boolean): number[] {
  const p = weights.preprocessing;
  const k = weights.tensors.get('conv1_1.kernel')!.data;
  const b = weights.tensors.get('conv1_1.bias')!.data;
  const co = b.length;
  const out = Array.from(b);
  const refl = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    let yy = y + dy, xx = x + dx;
    if (reflect) { yy = refl(yy, h); xx = refl(xx, w); } else if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
    for (let c = 0; c < 3; c++) {
      const src = p.colorOrder === 'BGR' ? 2 - c : c; // network channel c reads this RGB channel
      const v = (img[(yy * w + xx) * 3 + src] * p.scale / 255 - p.mean[c]) / p.std[c];
      for (let o = 0; o < co; o++) out[o] += v * k[(((dy + 1) * 3 + (dx + 1)) * 3 + c) * co + o];
    }
  }
  return out.map((v) => Math.max(0, v));
}

for (const [label, weights] of [['Keras/Caffe preprocessing', tinyVgg19(3)], ['torchvision preprocessing', { ...tinyVgg19(4), preprocessing: TORCH_PREPROCESSING }]] as const) {
  for (const padding of ['zero', 'reflect'] as const) {
    test(`relu1_1 equals a hand computation (${label}, ${padding} padding)`, () => {
      const h = 7, w = 9;
      const r = mulberry32(5);
      const img = Float32Array.from({ length: h * w * 3 }, () => 255 * r());
      const net = new Vgg19(weights);
      const f = net.features(tf.tensor4d(img, [1, h, w, 3]), ['relu1_1', 'pool1'], { padding }).get('relu1_1')!;
      const got = f.arraySync()[0];
      for (const [y, x] of [[0, 0], [3, 4], [6, 8], [0, 5]]) {
        const want = relu11At(img, h, w, y, x, weights, padding === 'reflect');
        want.forEach((v, o) => assert.ok(Math.abs(got[y][x][o] - v) <= 1e-3 * Math.max(1, Math.abs(v)), `(${y},${x},${o}): ${got[y][x][o]} vs ${v}`));
      }
      net.dispose();
    });
  }
}

test('features stop at the deepest requested layer and have the right shapes', () => {
  const net = new Vgg19(tinyVgg19(1));
  const x = tf.zeros([1, 32, 48, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const f = net.features(x, ['relu1_1', 'pool2', 'relu4_2', 'conv5_1']);
  assert.deepEqual(f.get('relu1_1')!.shape, [1, 32, 48, 8]);
  assert.deepEqual(f.get('pool2')!.shape, [1, 8, 12, 16]);
  assert.deepEqual(f.get('relu4_2')!.shape, [1, 4, 6, 64]);
  assert.deepEqual(f.get('conv5_1')!.shape, [1, 2, 3, 64]);
  assert.equal(tf.memory().numTensors, before + 4, 'only the requested features survive');
  tf.dispose([...f.values(), x]);
  assert.throws(() => net.features(x, ['relu6_1']), /unknown VGG19 feature/);
  net.dispose();
});

for (const backend of ['cpu', 'wasm'] as const) {
  test(`[${backend}] the fused conv+bias+ReLU layers give the unfused chain's features and image gradient, both paddings`, async () => {
    await initBackend(backend);
    const net = new Vgg19(tinyVgg19(6));
    const r = mulberry32(8);
    const x = tf.tensor4d(Float32Array.from({ length: 70 * 50 * 3 }, () => 255 * r()), [1, 70, 50, 3]);
    const w = tf.tensor4d(Float32Array.from({ length: 4 * 3 * 64 }, () => r() - 0.5), [1, 4, 3, 64]);
    const run = (padding: 'zero' | 'reflect') => {
      const f = net.features(x, ['relu5_1', 'relu2_1'], { padding });
      const value = tf.tidy(() => Array.from(f.get('relu2_1')!.dataSync()));
      tf.dispose([...f.values()]);
      const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(net.features(xi as tf.Tensor4D, ['relu5_1'], { padding }).get('relu5_1')!, w)))(x);
      const grad = Array.from(g.dataSync());
      g.dispose();
      return { value, grad };
    };
    try {
      for (const padding of ['zero', 'reflect'] as const) {
        const before = tf.memory().numTensors;
        const fused = await withEnv({ STUDIO_FUSED_GRAD: '1' }, () => run(padding));
        const plain = await withEnv({ STUDIO_FUSED_GRAD: '0' }, () => run(padding));
        assert.equal(tf.memory().numTensors, before, 'no tensor kept');
        const scale = Math.max(...plain.grad.map(Math.abs));
        assert.ok(scale > 0, 'the gradient is not zero');
        fused.value.forEach((v, i) => assert.ok(Math.abs(v - plain.value[i]) <= 1e-4 * Math.max(1, Math.abs(plain.value[i])), `${padding} feature ${i}: ${v} vs ${plain.value[i]}`));
        fused.grad.forEach((v, i) => assert.ok(Math.abs(v - plain.grad[i]) <= 1e-5 * scale, `${padding} gradient ${i}: ${v} vs ${plain.grad[i]}`));
      }
    } finally {
      tf.dispose([x, w]);
      net.dispose();
    }
  });
}

test('BGR preprocessing on WebAssembly (one product by a 3×3 matrix) gives the reorder-and-scale chain\'s bits, and its gradient', async () => {
  await initBackend('wasm');
  const rng = mulberry32(5);
  const x = tf.tensor4d(Float32Array.from({ length: 2 * 37 * 29 * 3 }, () => rng() * 255), [2, 37, 29, 3]);
  const p = { colorOrder: 'BGR' as const, scale: 1, mean: [0.406, 0.456, 0.485] as [number, number, number], std: [0.225, 0.224, 0.229] as [number, number, number] };
  const chain = (t: tf.Tensor4D) => tf.tidy(() => tf.sub(tf.mul(tf.reverse(t, 3), tf.tensor1d(p.std.map((s) => p.scale / 255 / s))), tf.tensor1d(p.mean.map((m, i) => m / p.std[i]))));
  const ours = preprocess(x, p);
  const ref = chain(x);
  assert.deepEqual(ours.dataSync(), ref.dataSync());
  const w = tf.tensor4d(Float32Array.from({ length: x.size }, () => rng() - 0.5), x.shape);
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(preprocess(t as tf.Tensor4D, p), w)))(x);
  const gRef = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(chain(t as tf.Tensor4D), w)))(x);
  assert.deepEqual(g.dataSync(), gRef.dataSync());
  tf.dispose([x, ours, ref, w, g, gRef]);
});
