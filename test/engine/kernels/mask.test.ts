// ReLU's mask on the tfjs WebAssembly backend (engine/kernels/mask.ts): the same values as tfjs's
// Greater and Multiply-by-cast (zeros, −0, negatives, NaN; lengths not a multiple of 16); nothing left allocated.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { maskedGrad, reluMask } from '../../../src-main/engine/kernels/mask.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

before(() => initBackend('wasm'));

test('the committed module is a fresh compile of kernels/wasm/mask.as.ts', async () => {
  const { generate } = await import('../../../scripts/build-wasm.mjs');
  const generated = fileURLToPath(new URL('../../../src-main/engine/kernels/mask-wasm.gen.ts', import.meta.url));
  assert.ok(readFileSync(generated, 'utf8') === await generate('mask'), 'mask-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
});

test('reluMask and maskedGrad give tfjs\'s Greater and Multiply-by-cast values', () => {
  const start = tf.memory().numTensors;
  for (const n of [1, 15, 16, 17, 1000, 4099]) {
    const rng = mulberry32(n);
    const y = tf.tensor1d(Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : i % 11 === 0 ? -0 : i % 13 === 0 ? NaN : rng() - 0.5)));
    const dy = tf.tensor1d(Float32Array.from({ length: n }, () => rng() - 0.5));
    const mask = reluMask(y)!;
    assert.equal(mask.dtype, 'bool');
    const ref = tf.greater(y, 0);
    assert.deepEqual(mask.dataSync(), ref.dataSync(), `mask, n = ${n}`);
    const g = maskedGrad(dy, mask)!;
    const gRef = tf.tidy(() => tf.mul(dy, tf.cast(ref, 'float32')));
    assert.deepEqual(Array.from(g.dataSync()).map((v) => v + 0), Array.from(gRef.dataSync()).map((v) => v + 0), `masked gradient, n = ${n}`);
    tf.dispose([y, dy, mask, ref, g, gRef]);
  }
  assert.equal(tf.memory().numTensors, start);
  process.env.STUDIO_WASM_MASK = '0';
  try {
    const y = tf.tensor1d([1, -1]);
    assert.equal(reluMask(y), undefined, 'switched off: the caller runs tfjs\'s ops');
    y.dispose();
  } finally {
    delete process.env.STUDIO_WASM_MASK;
  }
});
