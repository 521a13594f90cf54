import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { initDecoder, LEVELS, type DecoderWeights, type Level } from '../../../src-main/engine/photo/autoencoder.ts';
import { photoWct } from '../../../src-main/engine/photo/stylize.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { CancelledError } from '../../../src-main/errors.ts';
import { testBackends } from '../../backends.ts';

import { readImage } from '../../../src-main/io/images.ts';

const w = tinyVgg19(1);
const photo = (name: string, size: number) => readImage(`assets/samples/${name}`, { maxSide: size });
const decoders = new Map<Level, DecoderWeights>(LEVELS.map((l) => [l, initDecoder(l, w.widths, mulberry32(l))]));
function image(width: number, height: number, seed: number) {
  const r = mulberry32(seed);
  return { width, height, data: Float32Array.from({ length: width * height * 3 }, (_, i) => 0.5 + 0.3 * Math.sin(i * 0.013 * seed) + 0.15 * r()) };
}

for (const backend of (await testBackends()).filter((b) => b !== 'cpu')) describe(backend, () => {
  before(() => initBackend(backend));

  test(`[${backend}] the cascade runs relu4_1 → relu1_1, reports each level, keeps the size and returns every tensor`, async () => {
    const before = tf.memory().numTensors;
    const seen: number[] = [];
        const r = await photoWct(w, decoders, await photo('content-chelsea.jpg', 128), await photo('photo-Storm.jpg', 128), { alpha: 1 }, { checkCancelled() {}, onLevel: (_d, _t, l) => seen.push(l) });
    assert.deepEqual(r.levels.map((l) => l.level), [4, 3, 2, 1]);
    assert.deepEqual(seen, [4, 3, 2, 1]);
    for (const l of r.levels) assert.ok(Number.isFinite(l.covError) && l.ms > 0);
    // Each level on the photo itself (the untrained decoders' output is no photo): the exact property
    // (< 1e-3) is wct.test.ts's; here each level reports its error, small on a 128 px photo.
    for (const level of LEVELS) {
      const one = await photoWct(w, decoders, await photo('content-chelsea.jpg', 128), await photo('photo-Storm.jpg', 128), { alpha: 1, levels: [level] }, { checkCancelled() {} });
      assert.ok(one.levels[0].covError < 1e-3, `level ${level}: covariance error ${one.levels[0].covError}`);
    }
    assert.equal(r.image.width, 128);
    assert.equal(r.image.height, 85);
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] label maps run WCT per region; a cancelled cascade returns every tensor`, async () => {
    const before = tf.memory().numTensors;
    const half = (wd: number, h: number) => ({ width: wd, height: h, channels: 1 as const, data: Uint8Array.from({ length: wd * h }, (_, i) => ((i % wd) < wd / 2 ? 0 : 255)) });
    const r = await photoWct(w, decoders, image(40, 32, 3), image(40, 32, 4), { alpha: 1, levels: [2, 1] }, { checkCancelled() {} }, { content: half(40, 32), style: half(20, 16) });
    assert.ok(r.levels.every((l) => l.regions?.filter((g) => g.used).length === 2), JSON.stringify(r.levels.map((l) => l.regions)));
    let n = 0;
    await assert.rejects(photoWct(w, decoders, image(40, 30, 1), image(40, 30, 2), { alpha: 1 }, { checkCancelled() { if (++n > 2) throw new CancelledError(); } }), CancelledError);
    assert.equal(tf.memory().numTensors, before);
  });
});
