// Conv gradient kernels on the wasm backend: forward Conv2D vs the stock and the new
// Conv2DBackpropInput, and the Conv2DBackpropFilter formulations.
//   node --import tsx bench/kernels.ts [--reps N] [--stride2]
// Each kernel is called directly (kernelFunc with the wasm backend), after warm-up calls
// (the first calls of a shape run ~2x slow); the table shows the median of N timed calls.
// Every call gets a fresh copy of dy, as in training: XNNPACK caches packed weights per
// tensor id, so reusing one dy would hide the packing cost of the matmul formulations.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import {
  conv2DBackpropFilterKernel,
  conv2DBackpropInputKernel,
  registerWasmGradKernels,
  type BackpropFilterMethod,
} from '../src-main/engine/kernels/wasm-grads.ts';

const args = process.argv.slice(2);
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Number(args[repsArg + 1]) : 5;
const WITH_STRIDE2 = args.includes('--stride2');

tf.env().set('IS_TEST', false);
await tf.setBackend('wasm');
await tf.ready();
registerWasmGradKernels();
const backend = tf.backend();

interface Shape { h: number; ci: number; co: number; k: number; stride: number; pad: 'same' | 'valid' }
const shapes: Shape[] = [
  { h: 128, ci: 64, co: 64, k: 3, stride: 1, pad: 'same' },
  { h: 64, ci: 256, co: 256, k: 3, stride: 1, pad: 'same' },
];
if (WITH_STRIDE2) shapes.push({ h: 128, ci: 64, co: 64, k: 3, stride: 2, pad: 'same' });

type Call = (dy: tf.Tensor) => tf.TensorInfo;
function time(fn: Call, dy: tf.Tensor, reps: number, warmup: number): number {
  const ts: number[] = [];
  for (let i = 0; i < warmup + reps; i++) {
    const fresh = tf.clone(dy);
    const t0 = performance.now();
    const out = fn(fresh);
    const t = performance.now() - t0;
    if (i >= warmup) ts.push(t);
    backend.disposeData(out.dataId);
    fresh.dispose();
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1];
}

const rows: { shape: string; kernel: string; ms: number; gflops: number }[] = [];
for (const s of shapes) {
  const x = tf.randomNormal([1, s.h, s.h, s.ci]);
  const w = tf.mul(tf.randomNormal([s.k, s.k, s.ci, s.co]), 0.05);
  const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.stride, s.pad);
  const dy = tf.randomNormal(y.shape);
  const [, ho, wo] = y.shape;
  const flop = 2 * ho * wo * s.ci * s.co * s.k * s.k;
  const label = `${s.h}x${s.h}x${s.ci}->${s.co} k${s.k} s${s.stride}`;
  const common = { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  const call = (f: tf.KernelFunc, inputs: (dy: tf.Tensor) => tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap): Call =>
    (d) => f({ inputs: inputs(d), backend, attrs }) as tf.TensorInfo;
  const conv = tf.getKernel('Conv2D', 'wasm').kernelFunc;
  const inAttrs = { ...common, inputShape: x.shape } as unknown as tf.NamedAttrMap;
  const fAttrs = { ...common, filterShape: w.shape } as unknown as tf.NamedAttrMap;
  const kernels: [string, Call, number][] = [
    ['Conv2D (forward, XNNPACK)', call(conv, () => ({ x, filter: w }), { ...common, dilations: 1 } as unknown as tf.NamedAttrMap), REPS],
    ['Conv2DBackpropInput stock', call(conv2DBackpropInputKernel('stock'), (d) => ({ dy: d, filter: w }), inAttrs), Math.min(REPS, 3)],
    ['Conv2DBackpropInput new', call(conv2DBackpropInputKernel('phases'), (d) => ({ dy: d, filter: w }), inAttrs), REPS],
  ];
  if (s.stride > 1) {
    kernels.push(['Conv2DBackpropInput new, dilate', call(conv2DBackpropInputKernel('dilate'), (d) => ({ dy: d, filter: w }), inAttrs), REPS]);
  }
  for (const m of ['im2col', 'per-tap', 'conv'] as BackpropFilterMethod[]) {
    kernels.push([`Conv2DBackpropFilter ${m}`, call(conv2DBackpropFilterKernel(m), (d) => ({ x, dy: d }), fAttrs), REPS]);
  }
  for (const [name, fn, reps] of kernels) {
    const ms = time(fn, dy, reps, reps === REPS ? 2 : 1);
    rows.push({ shape: label, kernel: name, ms, gflops: flop / ms / 1e6 });
    console.error(`${label}  ${name}: ${ms.toFixed(1)} ms`);
  }
  tf.dispose([x, w, y, dy]);
}

const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
console.log(`\nwasm backend, SIMD ${simd ? 'on' : 'off'}, ${getThreadsCount()} thread(s); median of ${REPS} (stock: ${Math.min(REPS, 3)})`);
console.log(`${'shape'.padEnd(24)} ${'kernel'.padEnd(32)} ${'ms'.padStart(9)} ${'GFLOP/s'.padStart(8)}`);
for (const r of rows) {
  console.log(`${r.shape.padEnd(24)} ${r.kernel.padEnd(32)} ${r.ms.toFixed(1).padStart(9)} ${r.gflops.toFixed(1).padStart(8)}`);
}
