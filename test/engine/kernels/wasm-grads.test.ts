// The wasm conv gradient kernels against the plain-JS CPU backend's kernels.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers the gradient functions (tfjs-core's Node bundle has none).
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  conv2DBackpropFilterKernel,
  conv2DBackpropInputKernel,
  registerWasmGradKernels,
  unregisterWasmGradKernels,
  type BackpropFilterMethod,
} from '../../../src-main/engine/kernels/wasm-grads.ts';

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
type Shape4 = [number, number, number, number];

const TOL = 1e-4;

/** Deterministic values in [-1, 1). */
function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, 'sizes differ');
  let err = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return err / (scale || 1);
}

/** tf.engine().runKernel with a plain attrs object (on the current backend). */
function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

function wasm(): BackendWasm {
  return tf.findBackend('wasm') as BackendWasm;
}

/** Runs a kernel function on the wasm backend and reads its output back (disposing it). */
function runWasm(fn: tf.KernelFunc, inputs: Record<string, tf.Tensor>, attrs: object): { values: Float32Array; shape: number[] } {
  const backend = wasm();
  const out = fn({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
  const vals = backend.readSync(out.dataId) as Float32Array;
  backend.disposeData(out.dataId);
  return { values: vals, shape: out.shape };
}

interface Case { n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: Pad }

function label(c: Case): string {
  return `N${c.n} ${c.h}x${c.w}x${c.ci}->${c.co} k${c.k} s${c.s} ${JSON.stringify(c.pad)}`;
}

/** Inputs for one case, plus the CPU backend's dx and dW as reference (memoised). */
const references = new Map<string, ReturnType<typeof computeReference>>();
function reference(c: Case) {
  let r = references.get(label(c));
  if (r == null) references.set(label(c), (r = computeReference(c)));
  return r;
}

function computeReference(c: Case) {
  const xShape: Shape4 = [c.n, c.h, c.w, c.ci];
  const fShape: Shape4 = [c.k, c.k, c.ci, c.co];
  const info = tf.backend_util.computeConv2DInfo(xShape, fShape, c.s, 1, c.pad);
  const dyShape = info.outShape as Shape4;
  const xv = values(c.n * c.h * c.w * c.ci, 1 + c.h * 7 + c.ci);
  const fv = values(c.k * c.k * c.ci * c.co, 2 + c.k * 3 + c.co);
  const dyv = values(dyShape.reduce((a, b) => a * b), 3 + c.s);
  const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  tf.setBackend('cpu');
  const [x, f, dy] = [tf.tensor4d(xv, xShape), tf.tensor4d(fv, fShape), tf.tensor4d(dyv, dyShape)];
  const dx = runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: xShape });
  const dw = runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: fShape });
  const ref = { dx: dx.dataSync().slice(), dw: dw.dataSync().slice() };
  tf.dispose([x, f, dy, dx, dw]);
  tf.setBackend('wasm');
  return { xv, fv, dyv, xShape, fShape, dyShape, attrs, ref };
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const s of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      for (const k of [1, 2, 3]) {
        for (const n of [1, 2]) {
          for (const [ci, co] of [[3, 5], [8, 4], [1, 16]]) out.push({ n, h: 7, w: 9, ci, co, k, s, pad });
        }
      }
    }
  }
  // Even sizes, stride 3, a 5x5 kernel, explicit (also asymmetric, and larger than the kernel) padding.
  out.push({ n: 1, h: 8, w: 8, ci: 4, co: 6, k: 3, s: 2, pad: 'same' });
  out.push({ n: 2, h: 8, w: 10, ci: 4, co: 6, k: 3, s: 2, pad: 'valid' });
  out.push({ n: 2, h: 9, w: 11, ci: 3, co: 4, k: 3, s: 3, pad: 'same' });
  out.push({ n: 1, h: 10, w: 7, ci: 5, co: 3, k: 5, s: 2, pad: 'same' });
  out.push({ n: 1, h: 9, w: 7, ci: 3, co: 2, k: 3, s: 2, pad: [[0, 0], [2, 0], [1, 3], [0, 0]] });
  out.push({ n: 1, h: 6, w: 6, ci: 2, co: 2, k: 2, s: 1, pad: [[0, 0], [3, 1], [0, 2], [0, 0]] });
  out.push({ n: 1, h: 20, w: 14, ci: 16, co: 24, k: 3, s: 1, pad: 'same' });
  out.push({ n: 1, h: 33, w: 25, ci: 24, co: 16, k: 3, s: 2, pad: 'same' });
  return out;
}

before(async () => {
  tf.env().set('IS_TEST', false);
  await tf.setBackend('wasm');
  await tf.ready();
  await tf.setBackend('cpu');
  await tf.ready();
  await tf.setBackend('wasm');
  registerWasmGradKernels();
});

describe('Conv2DBackpropInput on wasm', () => {
  test('the registered kernel matches the CPU backend (strides 1-3, same/valid/explicit, odd sizes, batch 1-2, k 1/2/3/5)', () => {
    for (const c of cases()) {
      const r = reference(c);
      const dy = tf.tensor4d(r.dyv, r.dyShape);
      const f = tf.tensor4d(r.fv, r.fShape);
      const dx = runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...r.attrs, inputShape: r.xShape });
      assert.deepEqual(dx.shape, r.xShape, label(c));
      const err = relErr(dx.dataSync(), r.ref.dx);
      assert.ok(err < TOL, `${label(c)}: relative error ${err}`);
      tf.dispose([dy, f, dx]);
    }
  });

  test('the zero-dilation formulation matches too', () => {
    const fn = conv2DBackpropInputKernel('dilate');
    for (const c of cases().filter((c) => c.s > 1)) {
      const r = reference(c);
      const dy = tf.tensor4d(r.dyv, r.dyShape);
      const f = tf.tensor4d(r.fv, r.fShape);
      const err = relErr(runWasm(fn, { dy, filter: f }, { ...r.attrs, inputShape: r.xShape }).values, r.ref.dx);
      assert.ok(err < TOL, `${label(c)}: relative error ${err}`);
      tf.dispose([dy, f]);
    }
  });

  test('NCHW falls back to the stock kernel', () => {
    const xShape: Shape4 = [1, 3, 7, 9];
    const fShape: Shape4 = [3, 3, 3, 4];
    const dyv = values(1 * 4 * 4 * 5, 9);
    const fv = values(3 * 3 * 3 * 4, 10);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW', inputShape: xShape };
    const results = ['cpu', 'wasm'].map((b) => {
      tf.setBackend(b);
      const dy = tf.tensor4d(dyv, [1, 4, 4, 5]);
      const f = tf.tensor4d(fv, fShape);
      const dx = runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs);
      const v = dx.dataSync().slice();
      tf.dispose([dy, f, dx]);
      return v;
    });
    tf.setBackend('wasm');
    assert.ok(relErr(results[1], results[0]) < TOL);
  });

  test('dilations other than 1 are refused with a clear error', () => {
    const dy = tf.zeros([1, 5, 5, 2]);
    const f = tf.zeros([3, 3, 2, 2]);
    assert.throws(
      () => runWasm(conv2DBackpropInputKernel(), { dy, filter: f }, { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 2, inputShape: [1, 5, 5, 2] }),
      /dilations of 1 only/,
    );
    tf.dispose([dy, f]);
  });
});

describe('Conv2DBackpropFilter on wasm', () => {
  test('the registered kernel matches the CPU backend', () => {
    for (const c of cases()) {
      const r = reference(c);
      const x = tf.tensor4d(r.xv, r.xShape);
      const dy = tf.tensor4d(r.dyv, r.dyShape);
      const dw = runKernel('Conv2DBackpropFilter', { x, dy }, { ...r.attrs, filterShape: r.fShape });
      assert.deepEqual(dw.shape, r.fShape, label(c));
      const err = relErr(dw.dataSync(), r.ref.dw);
      assert.ok(err < TOL, `${label(c)}: relative error ${err}`);
      tf.dispose([x, dy, dw]);
    }
  });

  test('every formulation matches', () => {
    for (const method of ['im2col', 'per-tap', 'conv'] as BackpropFilterMethod[]) {
      const fn = conv2DBackpropFilterKernel(method);
      for (const c of cases()) {
        const r = reference(c);
        const x = tf.tensor4d(r.xv, r.xShape);
        const dy = tf.tensor4d(r.dyv, r.dyShape);
        const out = runWasm(fn, { x, dy }, { ...r.attrs, filterShape: r.fShape });
        assert.deepEqual(out.shape, r.fShape);
        const err = relErr(out.values, r.ref.dw);
        assert.ok(err < TOL, `${method} ${label(c)}: relative error ${err}`);
        tf.dispose([x, dy]);
      }
    }
  });

  test('im2col in several chunks (a tall image) matches', () => {
    // 8192 positions per chunk at most: 2 x 96 x 64 output positions make 2 chunks.
    const c: Case = { n: 2, h: 96, w: 64, ci: 2, co: 3, k: 3, s: 1, pad: 'same' };
    const r = reference(c);
    const x = tf.tensor4d(r.xv, r.xShape);
    const dy = tf.tensor4d(r.dyv, r.dyShape);
    const err = relErr(runWasm(conv2DBackpropFilterKernel('im2col'), { x, dy }, { ...r.attrs, filterShape: r.fShape }).values, r.ref.dw);
    assert.ok(err < TOL, `relative error ${err}`);
    tf.dispose([x, dy]);
  });
});

describe('tf.grad through conv2d -> relu -> maxPool -> conv2d -> square -> sum', () => {
  test('wasm equals cpu for the image and the filters (strides 1 and 2, same and valid)', () => {
    const xShape: Shape4 = [2, 15, 13, 3];
    const xv = values(2 * 15 * 13 * 3, 21);
    const f1v = values(3 * 3 * 3 * 8, 22);
    const f2v = values(3 * 3 * 8 * 6, 23);
    for (const [s, pad] of [[1, 'same'], [2, 'same'], [1, 'valid'], [2, 'valid']] as const) {
      const results = ['cpu', 'wasm'].map((b) => {
        tf.setBackend(b);
        const x = tf.tensor4d(xv, xShape);
        const f1 = tf.tensor4d(f1v, [3, 3, 3, 8]);
        const f2 = tf.tensor4d(f2v, [3, 3, 8, 6]);
        const loss = (xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => {
          const h = tf.relu(tf.conv2d(xx as tf.Tensor4D, a as tf.Tensor4D, s, pad));
          const p = tf.maxPool(h as tf.Tensor4D, 2, 2, 'same');
          return tf.sum(tf.square(tf.conv2d(p, b as tf.Tensor4D, 1, 'same')));
        };
        const before = tf.memory().numTensors;
        const grads = tf.grads(loss)([x, f1, f2]);
        const vals = grads.map((g) => g.dataSync().slice());
        tf.dispose(grads);
        assert.equal(tf.memory().numTensors, before, `${b}: tensors leaked by tf.grads`);
        tf.dispose([x, f1, f2]);
        return vals;
      });
      tf.setBackend('wasm');
      for (let i = 0; i < 3; i++) {
        const err = relErr(results[1][i], results[0][i]);
        assert.ok(err < TOL, `s${s} ${pad} grad ${['x', 'f1', 'f2'][i]}: relative error ${err}`);
      }
    }
  });
});

describe('registration and memory', () => {
  test('registerWasmGradKernels is idempotent and unregister restores the stock kernels', () => {
    const fast = tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc;
    const filter = tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc;
    registerWasmGradKernels();
    registerWasmGradKernels();
    assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc, fast);
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc, filter);
    unregisterWasmGradKernels();
    assert.notEqual(tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc, fast);
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined);
    registerWasmGradKernels();
    assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc, fast);
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc, filter);
  });

  test('no intermediate wasm buffers or tensors are left behind', () => {
    const backend = wasm();
    for (const c of [cases()[0], ...cases().filter((c) => c.s > 1 || typeof c.pad !== 'string').slice(-6)]) {
      const r = reference(c);
      const idsBefore = backend.numDataIds();
      const x = tf.tensor4d(r.xv, r.xShape);
      const f = tf.tensor4d(r.fv, r.fShape);
      const dy = tf.tensor4d(r.dyv, r.dyShape);
      const ids = backend.numDataIds();
      const tensors = tf.memory().numTensors;
      const fns: [tf.KernelFunc, Record<string, tf.Tensor>, object][] = [
        [conv2DBackpropInputKernel('phases'), { dy, filter: f }, { ...r.attrs, inputShape: r.xShape }],
        [conv2DBackpropInputKernel('dilate'), { dy, filter: f }, { ...r.attrs, inputShape: r.xShape }],
        ...(['im2col', 'per-tap', 'conv'] as BackpropFilterMethod[]).map(
          (m) => [conv2DBackpropFilterKernel(m), { x, dy }, { ...r.attrs, filterShape: r.fShape }] as [tf.KernelFunc, Record<string, tf.Tensor>, object],
        ),
      ];
      // At most one buffer may stay while f lives: its rotated copy, cached for the next pass.
      for (const [fn, inputs, attrs] of fns) {
        runWasm(fn, inputs, attrs);
        assert.ok(backend.numDataIds() - ids <= 1, `${label(c)}: wasm data ids leaked (${backend.numDataIds() - ids})`);
      }
      const dx = runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...r.attrs, inputShape: r.xShape });
      const dw = runKernel('Conv2DBackpropFilter', { x, dy }, { ...r.attrs, filterShape: r.fShape });
      tf.dispose([dx, dw]);
      assert.equal(tf.memory().numTensors, tensors);
      assert.ok(backend.numDataIds() - ids <= 1);
      tf.dispose([x, f, dy]);
      assert.equal(backend.numDataIds(), idsBefore, `${label(c)}: the cached rotated filter is freed with its filter`);
    }
  });
});
