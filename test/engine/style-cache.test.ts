// A batch computes the style's features once: the cached statistics (PhotoWCT) and Grams (Gatys)
// give the results of the full computation, and once cached, the style image is not looked at again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src-main/engine/backend.ts';
import { tinyVgg19 } from '../../src-main/engine/models/tiny.ts';
import { Vgg19 } from '../../src-main/engine/models/vgg19-net.ts';
import { initDecoder, LEVELS, type DecoderWeights, type Level } from '../../src-main/engine/photo/autoencoder.ts';
import { photoWct } from '../../src-main/engine/photo/stylize.ts';
import type { StyleStats } from '../../src-main/engine/photo/wct.ts';
import { stylizeGatys } from '../../src-main/engine/gatys/stylize.ts';
import { mulberry32 } from '../../src-main/engine/random.ts';
import { readImage } from '../../src-main/io/images.ts';
import { GatysParams } from '../../src-main/protocol.ts';

const w = tinyVgg19(1);
const decoders = new Map<Level, DecoderWeights>(LEVELS.map((l) => [l, initDecoder(l, w.widths, mulberry32(l))]));
const photo = (name: string, size: number) => readImage(`assets/samples/${name}`, { maxSide: size });
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k])), 0);

test('PhotoWCT: the cached style statistics give the uncached result, and the style is not encoded again', async () => {
  await initBackend('wasm');
  const before = tf.memory().numTensors;
  const content = await photo('content-chelsea.jpg', 96);
  const other = await photo('content-coffee.jpg', 96);
  const style = await photo('photo-Storm.jpg', 96);
  const hooks = { checkCancelled() {} };
  const plain = await photoWct(w, decoders, content, style, { alpha: 1 }, hooks);
  const styleCache = new Map<Level, { stats?: StyleStats }>();
  const first = await photoWct(w, decoders, content, style, { alpha: 1, styleCache }, hooks);
  assert.deepEqual([...styleCache.keys()].sort(), [1, 2, 3, 4]);
  for (const e of styleCache.values()) assert.ok(e.stats && e.stats.color.size >= 1, 'statistics and a colouring matrix per level');
  assert.ok(maxDiff(first.image.data, plain.image.data) < 1e-4, 'filling the cache changes nothing');
  // Another content with the cache: the same as uncached.
  const second = await photoWct(w, decoders, other, style, { alpha: 1, styleCache }, hooks);
  const secondPlain = await photoWct(w, decoders, other, style, { alpha: 1 }, hooks);
  assert.ok(maxDiff(second.image.data, secondPlain.image.data) < 2e-3, `cached = uncached (${maxDiff(second.image.data, secondPlain.image.data)})`);
  // Proof that the style is not looked at: a different "style" image with a full cache gives the cached style's result.
  const astronaut = await photo('content-astronaut.jpg', 96);
  const ignored = await photoWct(w, decoders, other, astronaut, { alpha: 1, styleCache }, hooks);
  assert.ok(maxDiff(ignored.image.data, second.image.data) < 1e-6, 'the style image was not encoded again');
  // Control: used without the cache, that other image does change the result (so the check above can fail).
  const astronautPlain = await photoWct(w, decoders, other, astronaut, { alpha: 1 }, hooks);
  assert.ok(maxDiff(astronautPlain.image.data, second.image.data) > 0.02, `the other style changes the result (${maxDiff(astronautPlain.image.data, second.image.data)})`);
  assert.equal(tf.memory().numTensors, before, 'the cache holds arrays, not tensors');
});

test('Gatys: the cached style Grams give the uncached result, and the styles are not run through VGG again', async () => {
  await initBackend('wasm');
  const before = tf.memory().numTensors;
  const net = new Vgg19(w);
  try {
    const content = await photo('content-chelsea.jpg', 48);
    const style = await photo('art-the_scream.jpg', 48);
    const p = GatysParams.parse({ size: 48, iters: 4, previewEvery: 0, scales: 2 });
    const hooks = { checkCancelled() {} };
    const plain = await stylizeGatys(net, content, [style], p, hooks);
    const styleGrams = new Map();
    const cached = await stylizeGatys(net, content, [style], p, { ...hooks, styleGrams });
    assert.equal(styleGrams.size, 2, 'one set of Grams per scale');
    const shipwreck = await photo('art-shipwreck.jpg', 48);
    const again = await stylizeGatys(net, content, [shipwreck], p, { ...hooks, styleGrams });
    assert.ok(maxDiff(cached.image.data, plain.image.data) < 1e-5);
    assert.ok(maxDiff(again.image.data, plain.image.data) < 1e-5, 'another style image with the cache: the cached Grams were used');
    // Control: used without the cache, that other painting does change the result.
    const shipwreckPlain = await stylizeGatys(net, content, [shipwreck], p, hooks);
    assert.ok(maxDiff(shipwreckPlain.image.data, plain.image.data) > 1e-3, `the other style changes the result (${maxDiff(shipwreckPlain.image.data, plain.image.data)})`);
  } finally {
    net.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});
