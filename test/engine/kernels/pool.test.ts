// The 2×2, stride-2 max pooling gradient on the tfjs WebAssembly backend (engine/kernels/pool.ts): PyTorch's
// and Torch7's rule (each window's gradient to the first position, row by row, holding its maximum) bit for
// bit, ties included (quantised inputs make many), odd sizes with 'valid' and 'same' pooling, channels not a
// multiple of 4, batches; without ties and with positive values, the same bits as tfjs-wasm's own MaxPoolGrad (STUDIO_WASM_POOL=0),
// which breaks ties otherwise (see wasm/pool.as.ts); nothing left allocated.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { maxPoolWithSwitches, maxUnpool } from '../../../src-main/engine/photo/autoencoder.ts';

before(() => initBackend('wasm'));

test('the committed module is a fresh compile of kernels/wasm/pool.as.ts', async () => {
  const { generate } = await import('../../../scripts/build-wasm.mjs');
  const generated = fileURLToPath(new URL('../../../src-main/engine/kernels/pool-wasm.gen.ts', import.meta.url));
  assert.ok(readFileSync(generated, 'utf8') === await generate('pool'), 'pool-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
});

function grad(x: tf.Tensor4D, dy: tf.Tensor4D, pad: 'valid' | 'same', stockKernel: boolean): Float32Array {
  if (stockKernel) process.env.STUDIO_WASM_POOL = '0';
  try {
    return tf.tidy(() => {
      const y = tf.maxPool(x, 2, 2, pad);
      const dx = tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: 2, strides: 2, pad } as unknown as tf.NamedAttrMap) as tf.Tensor;
      return dx.dataSync() as Float32Array;
    });
  } finally {
    delete process.env.STUDIO_WASM_POOL;
  }
}

/** PyTorch's max_pool2d backward (first maximum of each window, row by row), in plain JavaScript. */
function reference(x: Float32Array, dy: Float32Array, [n, h, w, c]: readonly number[], ho: number, wo: number): Float32Array {
  const dx = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let oy = 0; oy < ho; oy++) for (let ox = 0; ox < wo; ox++) for (let k = 0; k < c; k++) {
    let best = -Infinity, at = -1;
    for (let dyy = 0; dyy < 2; dyy++) for (let dxx = 0; dxx < 2; dxx++) {
      const iy = 2 * oy + dyy, ix = 2 * ox + dxx;
      if (iy >= h || ix >= w) continue;
      const i = ((b * h + iy) * w + ix) * c + k;
      if (x[i] > best) { best = x[i]; at = i; }
    }
    dx[at] += dy[((b * ho + oy) * wo + ox) * c + k];
  }
  return dx;
}

test('max pooling 2×2 stride 2: PyTorch\'s rule bit for bit, ties and odd sizes included; without ties or maxima ≤ 0, tfjs-wasm\'s own kernel\'s bits', () => {
  const start = tf.memory().numTensors;
  for (const [n, h, w, c, pad] of [[1, 8, 8, 4, 'valid'], [2, 7, 9, 8, 'valid'], [1, 7, 9, 8, 'same'], [1, 33, 31, 6, 'same'], [1, 64, 64, 64, 'valid'], [1, 5, 5, 3, 'valid']] as const) {
    const [ho, wo] = pad === 'valid' ? [Math.floor(h / 2), Math.floor(w / 2)] : [Math.ceil(h / 2), Math.ceil(w / 2)];
    for (const quantised of [true, false]) {
      const rng = mulberry32(h * w + c + (quantised ? 0 : 1));
      // Quantised: values from 4 levels around zero, so most windows hold ties and many a maximum ≤ 0.
      const values = Float32Array.from({ length: n * h * w * c }, () => (quantised ? Math.floor(rng() * 4) - 1 : rng() + 1e-3));
      const x = tf.tensor4d(values, [n, h, w, c]);
      const dy = tf.tensor4d(Float32Array.from({ length: n * ho * wo * c }, () => rng() - 0.5), [n, ho, wo, c]);
      const ours = grad(x, dy, pad, false);
      assert.deepEqual(ours, reference(values, dy.dataSync() as Float32Array, [n, h, w, c], ho, wo), `${n}×${h}×${w}×${c} ${pad}${quantised ? ' quantised' : ''}`);
      if (!quantised) assert.deepEqual(ours, grad(x, dy, pad, true), `${n}×${h}×${w}×${c} ${pad}: as tfjs-wasm's own`);
      tf.dispose([x, dy]);
    }
  }
  assert.equal(tf.memory().numTensors, start);
});

/** autoencoder's pooling with switches and unpooling through the tfjs chain (STUDIO_WASM_POOL=0) or the kernels. */
function photoPool(x: tf.Tensor4D, chain: boolean): { pooled: Float32Array; argmax: Int32Array; unpooled: Float32Array } {
  if (chain) process.env.STUDIO_WASM_POOL = '0';
  try {
    const { pooled, switches } = maxPoolWithSwitches(x);
    const up = maxUnpool(pooled, switches);
    const r = { pooled: pooled.dataSync() as Float32Array, argmax: switches.argmax.dataSync() as Int32Array, unpooled: up.dataSync() as Float32Array };
    tf.dispose([pooled, switches.argmax, up]);
    return r;
  } finally {
    delete process.env.STUDIO_WASM_POOL;
  }
}

test('PhotoWCT\'s pooling with switches and unpooling: the kernels give the tfjs chain\'s values (ties, odd sizes, channels not in fours, batches), PyTorch\'s NaN rule, nothing left allocated', () => {
  const rand = mulberry32(11);
  for (const [n, h, w, c] of [[1, 8, 8, 4], [2, 7, 9, 6], [1, 5, 6, 3], [1, 33, 31, 64]] as const) {
    // Quantised values: many ties, which the first maximum (row by row) must win.
    const x = tf.tensor4d(Float32Array.from({ length: n * h * w * c }, () => Math.round(rand() * 3) - 1), [n, h, w, c]);
    const before = tf.memory().numTensors;
    const fast = photoPool(x, false);
    assert.equal(tf.memory().numTensors, before);
    const chain = photoPool(x, true);
    assert.deepEqual([...fast.argmax], [...chain.argmax], `switches at ${[n, h, w, c]}`);
    assert.deepEqual([...fast.pooled], [...chain.pooled], `pooled at ${[n, h, w, c]}`);
    // The chain's one-hot product writes −0 for a negative value's unpicked positions; equal as values.
    assert.ok(fast.unpooled.every((v, i) => v === chain.unpooled[i]), `unpooled at ${[n, h, w, c]}`);
    assert.ok(fast.argmax.some((v) => v !== 0), 'switches other than the first position occur');
    x.dispose();
  }
  // A NaN is taken as PyTorch takes it (val > max || isnan(val)): the window [1, NaN; 3, 2] pools to NaN at position 1.
  // Rows [1, NaN, 5, 6] and [3, 2, 7, 8], each value in 5 channels.
  const x = tf.tensor4d([1, NaN, 5, 6, 3, 2, 7, 8].flatMap((v) => [v, v, v, v, v]), [1, 2, 4, 5]);
  const r = photoPool(x, false);
  for (let k = 0; k < 5; k++) {
    assert.ok(Number.isNaN(r.pooled[k]) && r.argmax[k] === 1, `NaN window, channel ${k}: ${r.pooled[k]} at ${r.argmax[k]}`);
    assert.ok(r.pooled[5 + k] === 8 && r.argmax[5 + k] === 3);
  }
  x.dispose();
});
