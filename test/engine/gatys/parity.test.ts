/**
 * The GPU path gives the CPU path's numbers: Gatys on the tiny network, 20 Adam iterations at 64 px
 * from the same seed, per-iteration total losses on WebGPU within 1e-3 (relative) of WebAssembly's
 * with the same (direct) convolution, XNNPACK's (STUDIO_WINOGRAD=0). WebAssembly's default F(4×4, 3×3)
 * convolution rounds differently (within 1e-5 of XNNPACK a convolution: test/engine/kernels/winograd.test.ts),
 * and Adam turns the sign of a near-zero gradient into a whole step: its losses stay within 1e-2 of the
 * direct convolution's over the 20 iterations (measured: 5.5e-3 at most) and descend as far.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { Vgg19 } from '../../../src-main/engine/models/vgg19-net.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { stylizeGatys } from '../../../src-main/engine/gatys/stylize.ts';
import { GatysParams } from '../../../src-main/protocol.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { hasBackend } from '../../backends.ts';

function image(w: number, h: number, seed: number) {
  const r = mulberry32(seed);
  return { width: w, height: h, data: Float32Array.from({ length: w * h * 3 }, (_, i) => 0.5 + 0.3 * Math.sin(i * 0.01 + seed) + 0.1 * r()) };
}

async function losses(backend: 'wasm' | 'webgpu', winograd = true): Promise<number[]> {
  await initBackend(backend);
  if (!winograd) process.env.STUDIO_WINOGRAD = '0';
  const net = new Vgg19(tinyVgg19(1));
  try {
    const r = await stylizeGatys(net, image(64, 64, 1), [image(64, 64, 2)],
      GatysParams.parse({ iters: 20, optimizer: 'adam', init: 'random', seed: 7, previewEvery: 0 }), { checkCancelled() {} });
    return r.history.map((h) => h.total);
  } finally {
    net.dispose();
    delete process.env.STUDIO_WINOGRAD;
  }
}

const both = (await hasBackend('webgpu')) && (await hasBackend('wasm'));
if (!both) console.log('# SKIPPED: WebGPU/WebAssembly parity, because WebGPU cannot start here (see the backend notes above)');

test('Gatys losses on WebGPU match WebAssembly per iteration (20 Adam iterations, 64 px, same seed)', { skip: !both && 'WebGPU is not available here' }, async () => {
  const wasm = await losses('wasm', false);
  const gpu = await losses('webgpu');
  const winograd = await losses('wasm');
  assert.equal(gpu.length, 20);
  assert.ok(wasm[19] < wasm[0], 'the optimisation made progress');
  gpu.forEach((g, i) => {
    const rel = Math.abs(g - wasm[i]) / Math.abs(wasm[i]);
    assert.ok(rel < 1e-3, `iteration ${i + 1}: WebGPU ${g}, WebAssembly ${wasm[i]} (relative ${rel.toExponential(2)})`);
  });
  winograd.forEach((w, i) => {
    const rel = Math.abs(w - wasm[i]) / Math.abs(wasm[i]);
    assert.ok(rel < 1e-2, `iteration ${i + 1}: F(4×4, 3×3) ${w}, direct ${wasm[i]} (relative ${rel.toExponential(2)})`);
  });
  assert.ok(winograd[19] <= wasm[19] * 1.01, 'F(4×4, 3×3) descends as far as the direct convolution');
});
