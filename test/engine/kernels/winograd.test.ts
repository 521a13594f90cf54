// Winograd F(4×4, 3×3) on the tfjs WebAssembly backend (engine/kernels/winograd.ts) against XNNPACK's
// direct convolution (STUDIO_WINOGRAD=0, the stock kernel): forward and both gradients on odd sizes,
// every padding, batches, bias + ReLU fused; what it does not cover goes to the stock kernel bit for bit;
// one thread and several give the same bits; both tfjs builds (threaded, single-threaded) run it; and
// nothing is left allocated.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { matMulBias, fusedConv3x3 } from '../../../src-main/engine/kernels/winograd.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

const GENERATED = fileURLToPath(new URL('../../../src-main/engine/kernels/winograd-wasm.gen.ts', import.meta.url));

before(() => initBackend('wasm'));

function random(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rng = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rng() * 2 - 1) * scale;
  return tf.tensor(data, shape);
}

/** max |a − b| / max |b|: the error against the largest value (a convolution's outputs cancel, so not elementwise). */
function relErr(a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array): number {
  let err = 0, ref = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return err / ref;
}

/** `f` with F(4×4, 3×3) switched off (STUDIO_WINOGRAD=0 is read at each call): XNNPACK's convolution. */
function stock<T>(f: () => T): T {
  process.env.STUDIO_WINOGRAD = '0';
  try {
    return f();
  } finally {
    delete process.env.STUDIO_WINOGRAD;
  }
}

test('the committed module is a fresh compile of kernels/wasm/winograd.as.ts', async () => {
  const { generate } = await import('../../../scripts/build-wasm.mjs');
  assert.ok(readFileSync(GENERATED, 'utf8') === await generate('winograd'), 'winograd-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
});

// [batch, h, w, ci, co, pad]: odd and even sizes, edge tiles of 1–3 rows/columns, 'valid', 'same' and explicit
// padding, channel counts not in fours (an RGB image in, RGB out, 1, 5, 7: zero channels padded to fours).
const CASES: [number, number, number, number, number, 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]]][] = [
  [1, 5, 7, 4, 4, 'same'],
  [1, 13, 17, 8, 12, 'same'],
  [2, 9, 11, 12, 8, 'valid'],
  [1, 33, 30, 64, 68, 'same'],
  [3, 6, 6, 4, 8, 'valid'],
  [1, 19, 23, 16, 20, [[0, 0], [2, 0], [1, 2], [0, 0]]],
  [1, 40, 37, 128, 64, 'same'],
  [1, 16, 16, 3, 64, 'same'],
  [1, 15, 17, 64, 3, 'same'],
  [2, 9, 10, 5, 7, 'valid'],
  [1, 7, 6, 1, 2, 'same'],
];

test('forward: F(4×4, 3×3) matches XNNPACK on odd sizes, every padding and batches (≤ 1e-5 of the largest output)', () => {
  const start = tf.memory();
  for (const [n, h, w, ci, co, pad] of CASES) {
    const x = random([n, h, w, ci], h * w + ci) as tf.Tensor4D;
    const f = random([3, 3, ci, co], ci + co, Math.sqrt(3 / (9 * ci))) as tf.Tensor4D;
    const ours = tf.conv2d(x, f, 1, pad);
    const ref = stock(() => tf.conv2d(x, f, 1, pad));
    assert.deepEqual(ours.shape, ref.shape);
    const e = relErr(ours.dataSync(), ref.dataSync());
    assert.ok(e <= 1e-5, `${n}×${h}×${w}×${ci}→${co} ${JSON.stringify(pad)}: error ${e.toExponential(2)}`);
    // And not by accident the stock kernel: the two differ in their last bits somewhere.
    assert.ok(e > 0, `${h}×${w}: the Winograd path ran`);
    tf.dispose([x, f, ours, ref]);
  }
  const end = tf.memory();
  assert.equal(end.numTensors, start.numTensors);
  assert.equal(end.numBytes, start.numBytes);
});

test('gradients: the input gradient (a forward convolution with the rotated filter) and the filter gradient match XNNPACK', () => {
  const start = tf.memory().numTensors;
  for (const [n, h, w, ci, co, pad] of [[1, 15, 13, 8, 12, 'same'], [2, 10, 9, 16, 8, 'valid'], [1, 27, 31, 64, 64, 'same'], [1, 18, 14, 3, 64, 'same']] as const) {
    const x = random([n, h, w, ci], 7 + h) as tf.Tensor4D;
    const f = random([3, 3, ci, co], 11 + w, Math.sqrt(3 / (9 * ci))) as tf.Tensor4D;
    const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad))));
    const grads = () => tf.grads(loss)([x, f]);
    const [dx, df] = grads();
    const [dxRef, dfRef] = stock(grads);
    const ex = relErr(dx.dataSync(), dxRef.dataSync()), ef = relErr(df.dataSync(), dfRef.dataSync());
    assert.ok(ex <= 1e-5, `${h}×${w} ${pad}: ∂x error ${ex.toExponential(2)}`);
    assert.ok(ef <= 1e-5, `${h}×${w} ${pad}: ∂filter error ${ef.toExponential(2)}`);
    tf.dispose([x, f, dx, df, dxRef, dfRef]);
  }
  assert.equal(tf.memory().numTensors, start);
});

test('what F(4×4, 3×3) and the product by rows do not cover runs on the stock kernel, bit for bit: stride 2, 1×1 with outputs not in fours or stride 2, 5×5 filters, dilation, one output row', () => {
  const cases: [number[], number[], number, number][] = [
    [[1, 16, 16, 8], [3, 3, 8, 8], 2, 1],
    [[1, 16, 16, 8], [1, 1, 8, 6], 1, 1],
    [[1, 16, 16, 8], [1, 1, 8, 8], 2, 1],
    [[1, 16, 16, 8], [5, 5, 8, 8], 1, 1],
    [[1, 1, 16, 4], [3, 3, 4, 4], 1, 1],
    [[1, 16, 16, 8], [3, 3, 8, 8], 1, 2],
  ];
  for (const [xs, fs, stride, dilation] of cases) {
    const x = random(xs, 3) as tf.Tensor4D, f = random(fs, 5) as tf.Tensor4D;
    const a = tf.conv2d(x, f, stride, 'same', 'NHWC', dilation);
    const b = stock(() => tf.conv2d(x, f, stride, 'same', 'NHWC', dilation));
    assert.deepEqual(a.dataSync(), b.dataSync(), `${xs} * ${fs} stride ${stride} dilation ${dilation}`);
    tf.dispose([x, f, a, b]);
  }
});

test('1×1 convolutions and WCT\'s product with a bias by rows on the helper threads: within 1e-5 of XNNPACK (odd row counts, inputs not in fours, batches); not where a tape records or outputs are not in fours', () => {
  const start = tf.memory().numTensors;
  for (const [n, h, w, ci, co] of [[1, 37, 29, 64, 64], [2, 9, 7, 3, 8], [1, 64, 64, 128, 128], [1, 5, 3, 512, 4]] as const) {
    const x = random([n, h, w, ci], h + ci) as tf.Tensor4D, f = random([1, 1, ci, co], co, Math.sqrt(1 / ci)) as tf.Tensor4D;
    const ours = tf.conv2d(x, f, 1, 'same');
    const ref = stock(() => tf.conv2d(x, f, 1, 'same'));
    const e = relErr(ours.dataSync(), ref.dataSync());
    assert.ok(e <= 1e-5, `1×1 ${[n, h, w, ci, co]}: error ${e.toExponential(2)}`);
    tf.dispose([x, f, ours, ref]);
  }
  for (const [d, k, nOut] of [[8191, 512, 512], [1001, 64, 64], [3, 7, 12]] as const) {
    const a = random([d, k], d) as tf.Tensor2D, b = random([k, nOut], k, Math.sqrt(1 / k)) as tf.Tensor2D, bias = random([nOut], nOut) as tf.Tensor1D;
    const ours = matMulBias(a, b, bias)!;
    assert.ok(ours, `${d}×${k}·${k}×${nOut}: covered`);
    const ref = tf.fused.matMul({ a, b, bias });
    const e = relErr(ours.dataSync(), ref.dataSync());
    assert.ok(e <= 1e-5, `${d}×${k}·${k}×${nOut} + bias: error ${e.toExponential(2)}`);
    tf.dispose([a, b, bias, ours, ref]);
  }
  const a = random([10, 8], 1) as tf.Tensor2D, b6 = random([8, 6], 2) as tf.Tensor2D, b6bias = random([6], 3) as tf.Tensor1D, b8 = random([8, 8], 4) as tf.Tensor2D, b8bias = random([8], 5) as tf.Tensor1D;
  assert.equal(matMulBias(a, b6, b6bias), undefined, 'outputs not in fours');
  tf.grad((v: tf.Tensor) => { assert.equal(matMulBias(v as tf.Tensor2D, b8, b8bias), undefined, 'a tape records'); return tf.sum(v); })(a).dispose();
  tf.dispose([a, b6, b6bias, b8, b8bias]);
  assert.equal(tf.memory().numTensors, start);
});

test('bias and ReLU fused into the output transform: the same bits as conv, add and relu, and within 1e-5 of XNNPACK', () => {
  const start = tf.memory().numTensors;
  const x = random([2, 21, 18, 16], 1) as tf.Tensor4D, f = random([3, 3, 16, 24], 2, 0.2) as tf.Tensor4D, bias = random([24], 3) as tf.Tensor1D;
  for (const [pad, relu] of [['same', true], ['valid', false]] as const) {
    const y = fusedConv3x3(x, f, bias, pad, relu)!;
    assert.ok(y, 'covered');
    const chain = tf.tidy(() => { const z = tf.add(tf.conv2d(x, f, 1, pad), bias); return relu ? tf.relu(z) : z; });
    assert.deepEqual(y.dataSync(), chain.dataSync(), `${pad}: bit for bit`);
    const ref = stock(() => tf.tidy(() => { const z = tf.add(tf.conv2d(x, f, 1, pad), bias); return relu ? tf.relu(z) : z; }));
    assert.ok(relErr(y.dataSync(), ref.dataSync()) <= 1e-5);
    if (relu) assert.ok(y.dataSync().some((v) => v === 0) && y.dataSync().every((v) => v >= 0), 'ReLU applied');
    else assert.ok(y.dataSync().some((v) => v < 0), 'no ReLU');
    tf.dispose([y, chain, ref]);
  }
  // Outputs not in fours: the padded channels are dropped, the bias read as far as it goes.
  const f6 = random([3, 3, 16, 6], 4) as tf.Tensor4D, b6 = random([6], 5) as tf.Tensor1D;
  const y6 = fusedConv3x3(x, f6, b6, 'same', true)!;
  const chain6 = tf.tidy(() => tf.relu(tf.add(tf.conv2d(x, f6, 1, 'same'), b6)));
  assert.deepEqual(y6.dataSync(), chain6.dataSync(), '6 outputs: bit for bit');
  // One output row: not covered, the caller chains.
  const row = tf.slice(x, [0, 0, 0, 0], [1, 1, 18, 16]) as tf.Tensor4D;
  assert.equal(fusedConv3x3(row, f, bias, 'same', true), undefined, 'one row: not covered');
  tf.dispose([x, f, bias, f6, b6, y6, chain6, row]);
  assert.equal(tf.memory().numTensors, start);
});

test('reflection read in place: the same bits as mirrorPad \'reflect\' by 1 then the \'valid\' convolution, RGB and odd sizes included', () => {
  const start = tf.memory().numTensors;
  for (const [n, h, w, ci, co] of [[1, 2, 2, 4, 8], [1, 9, 7, 3, 64], [2, 13, 16, 64, 3], [1, 21, 19, 32, 32]] as const) {
    const x = random([n, h, w, ci], h + w) as tf.Tensor4D, f = random([3, 3, ci, co], ci, Math.sqrt(3 / (9 * ci))) as tf.Tensor4D, b = random([co], co) as tf.Tensor1D;
    for (const relu of [true, false]) {
      const y = fusedConv3x3(x, f, b, 'reflect', relu)!;
      assert.ok(y, 'covered');
      const chain = tf.tidy(() => {
        const z = tf.add(tf.conv2d(tf.mirrorPad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect'), f, 1, 'valid'), b);
        return relu ? tf.relu(z) : z;
      });
      assert.deepEqual(y.shape, [n, h, w, co]);
      assert.deepEqual(y.dataSync(), chain.dataSync(), `${[n, h, w, ci, co]} relu ${relu}: bit for bit`);
      tf.dispose([y, chain]);
    }
    tf.dispose([x, f, b]);
  }
  const row = [random([1, 1, 5, 4], 1) as tf.Tensor4D, random([3, 3, 4, 4], 2) as tf.Tensor4D, random([4], 3) as tf.Tensor1D] as const;
  assert.equal(fusedConv3x3(row[0], row[1], row[2], 'reflect', true), undefined, 'one row cannot be reflected');
  tf.dispose([...row]);
  assert.equal(tf.memory().numTensors, start);
});

test('one thread or two, and either tfjs build (threaded, single-threaded): the same bits', () => {
  const child = fileURLToPath(new URL('./winograd-child.ts', import.meta.url));
  const run = (env: Record<string, string>, flags: string[] = []) => {
    const r = spawnSync(process.execPath, [...flags, '--import', 'tsx', child], { encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { threads: number; build: string; hash: number; error: number };
  };
  const single = run({ STUDIO_WASM_THREADS: '1' });
  const pooled = run({ STUDIO_WASM_THREADS: '2' });
  const oneThread = run({ STUDIO_WASM_THREADS: '2', STUDIO_WINOGRAD_THREADS: '1' });
  const xnnpack = run({ STUDIO_WASM_THREADS: '2', STUDIO_WINOGRAD: '0' });
  assert.deepEqual([single.threads, pooled.threads], [1, 2]);
  assert.equal(pooled.hash, single.hash, 'two threads and the single-threaded build: bit for bit');
  assert.equal(oneThread.hash, single.hash, 'one thread on the threaded build: bit for bit');
  assert.notEqual(xnnpack.hash, single.hash, 'and XNNPACK gives other bits: the children ran F(4×4, 3×3)');
  assert.equal(single.build, 'simd', 'Node 20 without a flag has no relaxed SIMD');
  assert.ok(single.error <= 1e-5 && single.error > 0, `plain build: error ${single.error}`);
});

test('the relaxed-SIMD build (fused multiply-add) where the runtime has it: within 1e-5 of XNNPACK; STUDIO_WASM_FMA=0 keeps the plain build', () => {
  const child = fileURLToPath(new URL('./winograd-child.ts', import.meta.url));
  const run = (env: Record<string, string>) => {
    // Node 20 has relaxed SIMD behind a flag; Node 22 and Electron have it on.
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', child], { encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { threads: number; build: string; hash: number; error: number };
  };
  const fma = run({ STUDIO_WASM_THREADS: '2' });
  const fmaOne = run({ STUDIO_WASM_THREADS: '2', STUDIO_WINOGRAD_THREADS: '1' });
  const plain = run({ STUDIO_WASM_THREADS: '2', STUDIO_WASM_FMA: '0' });
  assert.equal(fma.build, 'relaxed-simd');
  assert.equal(plain.build, 'simd');
  assert.ok(fma.error <= 1e-5, `relaxed-SIMD build: error ${fma.error}`);
  assert.equal(fmaOne.hash, fma.hash, 'one thread or two: the same bits');
  assert.ok(plain.error <= 1e-5);
});
