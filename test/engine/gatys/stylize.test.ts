import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { Vgg19 } from '../../../src-main/engine/models/vgg19-net.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { gatysObjective, gatysTargets, lossAndGradient, stylizeGatys } from '../../../src-main/engine/gatys/stylize.ts';
import { GatysParams } from '../../../src-main/protocol.ts';
import { CancelledError, StudioError } from '../../../src-main/errors.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import type { RgbImage } from '../../../src-main/engine/image.ts';

import { testBackends } from '../../backends.ts';

/** A smooth random image: blobs of colour, so that features and Grams are non-trivial. */
function image(w: number, h: number, seed: number): RgbImage {
  const r = mulberry32(seed);
  const c = Array.from({ length: 12 }, () => r());
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < 3; k++) {
    const u = x / w, v = y / h;
    data[(y * w + x) * 3 + k] = 0.5 + 0.25 * Math.sin(6 * c[k] * u + 9 * c[k + 3] * v + 6 * c[k + 6]) + 0.2 * (r() - 0.5);
  }
  return { width: w, height: h, data };
}

/** A scalar's value, asynchronously (WebGPU has no synchronous read-back); disposes it. */
async function read(t: tf.Tensor): Promise<number> {
  const v = (await t.data())[0];
  t.dispose();
  return v;
}

const params = (o: Partial<GatysParams> = {}) => GatysParams.parse({ previewEvery: 0, ...o });
const noCancel = { checkCancelled() {} };

for (const backend of await testBackends()) describe(backend, () => {
  let net: Vgg19;
  before(async () => {
    await initBackend(backend);
    net = new Vgg19(tinyVgg19(1));
  });
  after(() => net.dispose());

  test(`[${backend}] each loss's gradient matches central finite differences on the tiny network`, async () => {
    const p = params();
    const c = tf.mul(tf.tensor4d(image(32, 32, 1).data, [1, 32, 32, 3]), 255) as tf.Tensor4D;
    const s = tf.mul(tf.tensor4d(image(32, 32, 2).data, [1, 32, 32, 3]), 255) as tf.Tensor4D;
    const x = tf.mul(tf.tensor4d(image(32, 32, 3).data, [1, 32, 32, 3]), 255) as tf.Tensor4D;
    const targets = gatysTargets(net, c, [s], [1], p);
    const rng = mulberry32(9);
    const cases = [['content', 5, 0, 0], ['style', 0, 100, 0], ['tv', 0, 0, 1e-3], ['total', 5, 100, 1e-3]] as const;
    for (const [name, content, style, tv] of cases) {
      const obj = gatysObjective(net, targets, { content, style, tv, contentLayers: new Map(), styleLayers: new Map() });
      const { parts, grad } = lossAndGradient(obj, x);
      // Direction: the unit gradient plus a unit random vector. The derivative along it is large
      // against float32 rounding of the loss, and a wrong gradient (scale, sign, a missing term) shows.
      const r = tf.tensor4d(Float32Array.from({ length: 32 * 32 * 3 }, () => rng() - 0.5), [1, 32, 32, 3]);
      const v = tf.add(tf.div(grad, tf.norm(grad)), tf.div(r, tf.norm(r)));
      // Small: a ReLU network is piecewise smooth, and a wider step crosses more kinks (0.25 gave 0.8%
      // on the content part); the loss's float32 rounding stays ~1e-4 of the difference at this step.
      const eps = 0.03;
      const fPlus = await read(tf.tidy(() => obj(tf.add(x, tf.mul(v, eps)) as tf.Tensor4D).total));
      const fMinus = await read(tf.tidy(() => obj(tf.sub(x, tf.mul(v, eps)) as tf.Tensor4D).total));
      const numeric = (fPlus - fMinus) / (2 * eps);
      const analytic = await read(tf.tidy(() => tf.sum(tf.mul(grad, v))));
      const rel = Math.abs(numeric - analytic) / Math.abs(analytic);
      assert.ok(analytic > 0, `${name}: gradient is non-zero`);
      assert.ok(rel < 5e-3, `${name}: numeric ${numeric}, analytic ${analytic} (relative error ${rel})`);
      tf.dispose([r, v, grad, parts.content, parts.style, parts.tv, parts.total]);
    }
    tf.dispose([c, s, x, ...targets.content.values(), ...targets.style.values()]);
  });

  test(`[${backend}] Gatys with L-BFGS halves the total loss within 50 iterations at 64 px, and leaks no tensor`, async () => {
    const before = tf.memory().numTensors;
    const r = await stylizeGatys(net, image(64, 48, 4), [image(64, 64, 5)], params({ iters: 50, init: 'content' }), noCancel);
    const first = r.history[0].total;
    const last = r.history.at(-1)!.total;
    assert.ok(last <= first / 2, `loss ${first} → ${last}`);
    assert.equal(r.image.width, 64);
    assert.equal(r.image.height, 48);
    assert.ok(r.image.data.every((v) => v >= 0 && v <= 1));
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] Gatys with Adam lowers the loss; several styles, colour preservation and two scales run`, async () => {
    const before = tf.memory().numTensors;
    const content = image(48, 48, 6);
    const r = await stylizeGatys(net, content, [image(48, 48, 7), image(32, 40, 8)],
      params({ iters: 20, optimizer: 'adam', scales: 2, styleWeights: [0.7, 0.3], preserveColors: true, init: 'random', seed: 3 }), noCancel);
    assert.deepEqual([...new Set(r.history.map((h) => h.scale))], [24, 48]);
    const atScale2 = r.history.filter((h) => h.scale === 48);
    assert.ok(atScale2.at(-1)!.total < atScale2[0].total, 'Adam lowers the loss at the final scale');
    // Colour preservation: the result's chrominance (YIQ's I, Q) is the content's.
    const iq = (d: Float32Array, i: number) => [0.595716 * d[i] - 0.274453 * d[i + 1] - 0.321263 * d[i + 2], 0.211456 * d[i] - 0.522591 * d[i + 1] + 0.311135 * d[i + 2]];
    let worst = 0, compared = 0;
    const pixels = content.data.length / 3;
    for (let i = 0; i < content.data.length; i += 3) {
      // Clamping to [0,1] moves the colour of a pixel whose channel left the range: skip those.
      if ([0, 1, 2].some((k) => r.image.data[i + k] <= 0 || r.image.data[i + k] >= 1)) continue;
      const [a, b] = iq(r.image.data, i);
      const [c, d] = iq(content.data, i);
      worst = Math.max(worst, Math.abs(a - c), Math.abs(b - d));
      compared++;
    }
    // Most pixels must take part, or the check would pass on a result clamped nearly everywhere.
    assert.ok(compared >= 0.5 * pixels, `only ${compared} of ${pixels} pixels unclamped`);
    assert.ok(worst < 1e-4, `chrominance kept (worst ${worst} over ${compared} pixels)`);
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] the optimisation reads back from the device once per iteration (and once for the result)`, async () => {
    // Count at the engine (every data()/dataSync() of a tensor) and, on a GPU, at the device itself
    // (which also sees reads a kernel might make internally). On CPU backends, kernels touch host
    // memory through the backend's own readSync, which is no read-back.
    const targets: { read(id: object): Promise<unknown>; readSync(id: object): unknown }[] = [tf.engine() as never];
    if (backend === 'webgpu') targets.push(tf.backend() as never);
    const saved = targets.map((t) => ({ read: t.read, readSync: t.readSync }));
    const reads = targets.map(() => 0);
    targets.forEach((t, i) => {
      t.read = function (this: unknown, id: object) { reads[i]++; return saved[i].read.call(this, id); };
      t.readSync = function (this: unknown, id: object) { reads[i]++; return saved[i].readSync.call(this, id); };
    });
    try {
      for (const optimizer of ['lbfgs', 'adam'] as const) {
        reads.fill(0);
        await stylizeGatys(net, image(32, 32, 1), [image(32, 32, 2)], params({ iters: 6, optimizer }), noCancel);
        for (const n of reads) assert.equal(n, 6 + 1, `${optimizer}: ${n} read-backs for 6 iterations`);
      }
    } finally {
      targets.forEach((t, i) => Object.assign(t, saved[i]));
    }
  });

  // Only WebGPU has a binding limit.
  if (backend === 'webgpu') test(`[${backend}] an image over the device's binding limit is refused with a message naming the limit`, async () => {
    const before = tf.memory().numTensors;
    const side = 2100; // 2100² px × 8 channels × 4 bytes = 141 MB, over lavapipe's 128 MiB
    const big = { width: side, height: side, data: new Float32Array(side * side * 3) };
    await assert.rejects(stylizeGatys(net, big, [image(32, 32, 2)], params({ iters: 1 }), noCancel),
      (e: unknown) => e instanceof StudioError && e.code === 'IMAGE_TOO_LARGE' && /MiB storage-binding limit/.test(e.message) && /--size \d+/.test(e.hint ?? ''));
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] a cancelled job stops within one step and returns every tensor`, async () => {
    const before = tf.memory().numTensors;
    let calls = 0;
    await assert.rejects(
      stylizeGatys(net, image(32, 32, 1), [image(32, 32, 2)], params({ iters: 100 }), {
        checkCancelled() { if (++calls > 3) throw new CancelledError(); },
      }),
      CancelledError,
    );
    assert.equal(calls, 4);
    assert.equal(tf.memory().numTensors, before);
  });

  test(`[${backend}] a failed job (unknown layer, mismatched style weights) returns every tensor`, async () => {
    const before = tf.memory().numTensors;
    await assert.rejects(stylizeGatys(net, image(32, 32, 1), [image(32, 32, 2)], params({ styleLayers: ['relu9_9'] }), noCancel), /unknown VGG19 layer "relu9_9"/);
    await assert.rejects(stylizeGatys(net, image(32, 32, 1), [image(32, 32, 2)], params({ styleWeights: [1, 2] }), noCancel), /1 style images but 2 style weights/);
    assert.equal(tf.memory().numTensors, before);
  });
});
