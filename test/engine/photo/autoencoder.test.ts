import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { decoderConvs, encoderLayers, maxPoolWithSwitches, maxUnpool } from '../../../src-main/engine/photo/autoencoder.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { testBackends } from '../../backends.ts';

test('encoders stop at reluL_1 and decoders mirror them with unpooling where the encoder pooled', () => {
  assert.deepEqual(encoderLayers(1).map((l) => (l.kind === 'conv' ? l.conv.name : l.name)), ['conv1_1']);
  assert.deepEqual(encoderLayers(3).map((l) => (l.kind === 'conv' ? l.conv.name : l.name)),
    ['conv1_1', 'conv1_2', 'pool1', 'conv2_1', 'conv2_2', 'pool2', 'conv3_1']);
  const d4 = decoderConvs(4);
  assert.deepEqual(d4.map((d) => d.name), ['dec4_1', 'dec3_4', 'dec3_3', 'dec3_2', 'dec3_1', 'dec2_2', 'dec2_1', 'dec1_2', 'dec1_1']);
  assert.deepEqual(d4.map((d) => `${d.inChannels}>${d.outChannels}`), ['512>256', '256>256', '256>256', '256>256', '256>128', '128>128', '128>64', '64>64', '64>3']);
  assert.deepEqual(d4.filter((d) => d.unpoolAfter).map((d) => d.name), ['dec4_1', 'dec3_1', 'dec2_1']);
  assert.equal(d4.at(-1)!.relu, false);
});

for (const backend of await testBackends()) describe(backend, () => {
  before(() => initBackend(backend));

  test(`[${backend}] unpooling puts every maximum back at its switch, zeros elsewhere (odd sizes too)`, async () => {
    const before = tf.memory().numTensors;
    for (const [h, w, c] of [[4, 6, 3], [7, 5, 2]]) {
      const r = mulberry32(h * 10 + w);
      const data = Float32Array.from({ length: h * w * c }, () => Math.round(r() * 1000) / 10);
      data[0] = data[1] = 99; // a tie in the first window: the first position wins
      const x = tf.tensor4d(data, [1, h, w, c]);
      const { pooled, switches } = maxPoolWithSwitches(x);
      const ref = tf.maxPool(x, 2, 2, 'valid');
      assert.deepEqual(Array.from(await pooled.data()), Array.from(await ref.data()), 'pooled values are the max-pool');
      const un = maxUnpool(pooled, switches);
      assert.deepEqual(un.shape, [1, h, w, c]);
      const u = await un.data();
      const h2 = Math.floor(h / 2), w2 = Math.floor(w / 2);
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let k = 0; k < c; k++) {
        const i = (y * w + xx) * c + k;
        if (y >= 2 * h2 || xx >= 2 * w2) { assert.equal(u[i], 0); continue; }
        // First position in the window holding the window's maximum.
        const wy = y - (y % 2), wx = xx - (xx % 2);
        const cells = [[wy, wx], [wy, wx + 1], [wy + 1, wx], [wy + 1, wx + 1]].map(([a, b]) => data[(a * w + b) * c + k]);
        const first = cells.indexOf(Math.max(...cells));
        const pos = (y % 2) * 2 + (xx % 2);
        assert.equal(u[i], pos === first ? data[i] : 0, `(${y},${xx},${k})`);
      }
      tf.dispose([x, pooled, ref, un, switches.argmax]);
    }
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] gradients flow through unpooling to the unpooled values`, async () => {
    const x = tf.tensor4d(Float32Array.from({ length: 16 }, (_, i) => (i * 7) % 16), [1, 4, 4, 1]);
    const { pooled, switches } = maxPoolWithSwitches(x);
    const g = tf.grad((y: tf.Tensor) => tf.sum(tf.mul(maxUnpool(y as tf.Tensor4D, switches), tf.range(0, 16).reshape([1, 4, 4, 1]))))(pooled);
    // d/dy of Σ unpool(y)·r = r at each window's switch position.
    const sw = await switches.argmax.data();
    const expect = Array.from(sw).map((p, i) => { const wy = Math.floor(i / 2) * 2, wx = (i % 2) * 2; return (wy + (p >> 1)) * 4 + wx + (p & 1); });
    assert.deepEqual(Array.from(await g.data()), expect);
    tf.dispose([x, pooled, g, switches.argmax]);
  });
});

describe('PhotoAutoencoder', () => {
  test('encodes to reluL_1 at every level and decodes back to an RGB image of the input size', async () => {
    await initBackend('wasm');
    const { tinyVgg19 } = await import('../../../src-main/engine/models/tiny.ts');
    const { preprocess } = await import('../../../src-main/engine/models/vgg19-net.ts');
    const { PhotoAutoencoder, initDecoder } = await import('../../../src-main/engine/photo/autoencoder.ts');
    const w = tinyVgg19(1);
    const before = tf.memory().numTensors;
    const x = tf.randomUniform([1, 37, 50, 3], 0, 255, 'float32', 3) as tf.Tensor4D;
    for (const level of [1, 2, 3, 4] as const) {
      const ae = new PhotoAutoencoder(level, { widths: w.widths, tensors: w.tensors, preprocess: (t) => preprocess(t, w.preprocessing) }, initDecoder(level, w.widths, mulberry32(level)));
      const { features, switches } = ae.encode(x);
      const side = (n: number) => Array.from({ length: level - 1 }).reduce<number>((a) => Math.floor(a / 2), n);
      assert.deepEqual(features.shape, [1, side(37), side(50), w.widths[level - 1]]);
      assert.equal(switches.length, level - 1);
      const y = ae.decode(features, switches);
      assert.deepEqual(y.shape, [1, 37, 50, 3]);
      // The decoder's weights are trainable: the reconstruction loss has a gradient for each.
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.squaredDifference(ae.decode(features, switches), x)) as tf.Scalar);
      assert.equal(Object.keys(grads).length, 2 * ae.dec.size);
      tf.dispose([value, ...Object.values(grads)]);
      tf.dispose([features, y, ...switches.map((s) => s.argmax)]);
      ae.dispose();
    }
    x.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
