import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import type { RgbImage } from '../../../src-main/engine/image.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { CancelledError } from '../../../src-main/errors.ts';
import { mattingAffinity, padReplicate } from '../../../src-main/engine/photo/affinity.ts';
import { buildSystem, smooth } from '../../../src-main/engine/photo/smooth.ts';
import { smoothWithTensors, stencilCoefficients, stencilProduct } from '../../../src-main/engine/photo/smooth-tensor.ts';
import { runSmoothing } from '../../../src-main/engine/photo/smoothing.ts';
import { SmoothParams } from '../../../src-main/protocol.ts';
import { testBackends } from '../../backends.ts';

function pair(w: number, h: number, seed: number): { content: RgbImage; stylized: RgbImage } {
  const rng = mulberry32(seed);
  const content = { width: w, height: h, data: Float32Array.from({ length: w * h * 3 }, (_, k) => 0.5 + 0.3 * Math.sin(k / 37) + 0.1 * rng()) };
  const stylized = { width: w, height: h, data: Float32Array.from(content.data, (v) => Math.min(1, Math.max(0, 0.8 * v + 0.2 * rng()))) };
  return { content, stylized };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k])), 0);

test('the 25-coefficient stencil and the float64 product equal the 13-slot system applied densely', () => {
  const { content } = pair(9, 7, 1);
  const sys = buildSystem(mattingAffinity(padReplicate(content, 2)), 0.9999);
  const { w, h, n } = sys;
  const coeff = stencilCoefficients(sys);
  const rng = mulberry32(5);
  const x = Float64Array.from({ length: 3 * n }, () => rng() - 0.5);
  const y = new Float64Array(3 * n);
  stencilProduct(sys, x, y);
  // Dense product from the 25 coefficients, and symmetry: A(i, j) = A(j, i).
  for (let py = 0; py < h; py++) {
    for (let px = 0; px < w; px++) {
      const i = py * w + px;
      const acc = [0, 0, 0];
      for (let t = 0; t < 25; t++) {
        const dy = Math.floor(t / 5) - 2, dx = (t % 5) - 2;
        const qx = px + dx, qy = py + dy;
        if (qx < 0 || qy < 0 || qx >= w || qy >= h) {
          assert.equal(coeff[25 * i + t], 0, 'no coupling outside the image');
          continue;
        }
        const j = qy * w + qx;
        assert.ok(Math.abs(coeff[25 * i + t] - coeff[25 * j + 24 - t]) < 1e-7, `A(${i},${j}) = A(${j},${i})`);
        for (let c = 0; c < 3; c++) acc[c] += coeff[25 * i + t] * x[3 * j + c];
      }
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(acc[c] - y[3 * i + c]) < 1e-6, `pixel ${i} channel ${c}`);
    }
  }
});

describe('the smoothing solve as tensor ops (mixed-precision refinement) on every backend', async () => {
  for (const name of await testBackends()) {
    test(`${name}: equals the CPU multigrid solve of the same system and frees its tensors`, async () => {
      await initBackend(name);
      const { content, stylized } = pair(24, 20, 3);
      const before = tf.memory().numTensors;
      const ref = smooth(content, stylized, { alpha: 0.99, tol: 1e-10 });
      const seen: number[] = [];
      const r = await smoothWithTensors(content, stylized, { alpha: 0.99, onProgress: (p) => seen.push(p.residual) });
      assert.ok(r.converged && r.residual <= 1e-7, `converged (residual ${r.residual})`);
      // Float32 alone stalls near 1e-3 relative; the refinement rounds must get below 1e-7.
      assert.ok(seen.length >= 2 && seen.at(-1)! < seen[0], `several refinement rounds (${seen.length})`);
      assert.ok(maxDiff(r.image.data, ref.image.data) < 1e-6, `max |Δ| ${maxDiff(r.image.data, ref.image.data)}`);
      assert.equal(tf.memory().numTensors, before);
    });

    test(`${name}: cancelling mid-solve throws CancelledError and frees its tensors`, async () => {
      await initBackend(name);
      const { content, stylized } = pair(20, 16, 4);
      const before = tf.memory().numTensors;
      let calls = 0;
      await assert.rejects(smoothWithTensors(content, stylized, { checkCancelled: () => ++calls > 5 }), CancelledError);
      assert.equal(calls, 6);
      assert.equal(tf.memory().numTensors, before);
    });
  }
});

test('runSmoothing: none passes through, fast is the guided filter, exact reports its solve', async () => {
  await initBackend('cpu');
  const { content, stylized } = pair(40, 30, 7);
  const p = SmoothParams.parse({});
  const none = await runSmoothing(content, stylized, 'none', p);
  assert.equal(none.image, stylized);
  const fast = await runSmoothing(content, stylized, 'fast', { ...p, radius: 3, eps: 1e-4 });
  assert.equal(fast.report.radius, 3);
  assert.ok(maxDiff(fast.image.data, stylized.data) > 0.01, 'the guided filter changes the image');
  const exact = await runSmoothing(content, stylized, 'exact', { ...p, solver: 'auto' });
  assert.equal(exact.report.solver, 'cpu', 'auto picks the CPU solver without a hardware GPU');
  assert.ok(exact.report.converged && exact.report.iterations! > 0 && exact.report.residual! <= 1e-7);
  const direct = smooth(content, stylized);
  assert.ok(maxDiff(exact.image.data, direct.image.data) < 1e-6);
  await assert.rejects(runSmoothing(content, { ...stylized, width: 30, height: 40 }, 'exact', p), /stylised image is 30×40 but the content image is 40×30/);
});
