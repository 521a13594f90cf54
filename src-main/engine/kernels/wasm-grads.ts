// Fast convolution gradient kernels for TensorFlow.js's WebAssembly backend.
//
// The stock wasm `Conv2DBackpropInput` is a naive C++ loop (~2 GFLOP/s, 10-13x slower
// than the XNNPACK forward conv) and `Conv2DBackpropFilter` does not exist for wasm
// at all, so `tf.grad` through a conv fails for the filter and crawls for the input.
//
// - Conv2DBackpropInput is a forward (XNNPACK) `Conv2D` of dy with the filter rotated by
//   180 degrees and its in/out channels swapped, with the zero border the transposed
//   convolution needs derived from the forward conv's padding. For stride > 1 the
//   registered kernel splits dx into its stride x stride sub-pixel phases, each a
//   stride-1 conv of dy with a sub-filter (3.3x faster at stride 2 than dilating dy
//   with zeros, which is kept as the 'dilate' formulation).
// - Conv2DBackpropFilter is an im2col matrix product (XNNPACK fully-connected):
//   windows of x laid out channel-first, [kH*kW*Ci, positions], times dy as
//   [positions, Co], which lands directly in the filter layout [kH, kW, Ci, Co];
//   positions are taken in chunks (<= 8192, <= 32 MB of im2col) and summed.
//   'per-tap' (kH*kW matmuls) and 'conv' (correlation as a conv) are kept for benchmarks.
//
// Kernels only call other registered wasm kernels (never `tf.*` ops, which would be
// recorded on gradient tapes) and write into wasm-heap views; every intermediate
// TensorInfo is released with `backend.disposeData`.
import {
  backend_util,
  BatchMatMul,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  getKernel,
  PadV2,
  registerKernel,
  Reshape,
  Reverse,
  Transpose,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
// Imported for its side effect too: the stock wasm kernels must be registered before ours.
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { registerInFront } from './tfjs-memory.ts';

const BACKEND = 'wasm';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;
type KernelArgs = { inputs: NamedTensorInfoMap; backend: object; attrs?: NamedAttrMap };

/** How Conv2DBackpropFilter is computed; 'im2col' is the registered one (fastest measured). */
export type BackpropFilterMethod = 'im2col' | 'per-tap' | 'conv';

function kernelFunc(name: string): KernelFunc {
  const config = getKernel(name, BACKEND);
  if (config == null) throw new Error(`wasm-grads: kernel ${name} is not registered for backend '${BACKEND}'`);
  return config.kernelFunc;
}

function run(backend: BackendWasm, name: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const out = kernelFunc(name)({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`wasm-grads: kernel ${name} returned several outputs`);
  return out;
}

function release(backend: BackendWasm, ...infos: (TensorInfo | null | undefined)[]): void {
  for (const info of infos) if (info != null) backend.disposeData(info.dataId);
}

/** A Float32Array view on the wasm heap; re-take it after any allocation (the heap may grow). */
function heapF32(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function checkDilations(attrs: NamedAttrMap, kernel: string): void {
  const d = attrs.dilations as number | [number, number] | undefined;
  if (d == null) return;
  const [dh, dw] = typeof d === 'number' ? [d, d] : d;
  if (dh !== 1 || dw !== 1) {
    throw new Error(`wasm-grads: ${kernel} supports dilations of 1 only (got ${String(d)})`);
  }
}

// ---------------------------------------------------------------------------------------
// Conv2DBackpropInput
// ---------------------------------------------------------------------------------------

let stockBackpropInput: KernelConfig | undefined;

/** How Conv2DBackpropInput handles stride > 1 (stride 1 is one conv either way). */
export type BackpropInputMethod = 'phases' | 'dilate';

/**
 * dx = conv2d(dilate(dy, stride) zero-padded, rot180(filter) with in/out swapped, stride 1).
 *
 * Forward: y[o] = sum_k x[o*s + k - padTop] * w[k]. So dx[i] = sum_k dyd[i + padTop - k] * w[k]
 * with dyd the zero-dilated dy (dyd[o*s] = dy[o]); substituting k' = kH-1-k gives a
 * correlation of dyd, padded by kH-1-padTop in front, with the rotated filter.
 */
function backpropInputDilate(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { inHeight: h, inWidth: w, outHeight: ho, outWidth: wo } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  // Zero border around the (dilated) dy so that a 'valid' kh x kw conv yields h x w.
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = h + kh - 1 - top - ((ho - 1) * sh + 1);
  const right = w + kw - 1 - left - ((wo - 1) * sw + 1);

  const rotated = rotatedFilter(backend, filter);
  return correlate(backend, dy, rotated, sh, sw, top, bottom, left, right);
}

/**
 * rot180 + swap in/out, [kh, kw, ci, co] -> [kh, kw, co, ci], cached per filter. A network's
 * weights are the same tensors on every backward pass; reusing the rotated copy saves the
 * transform and, more, lets XNNPACK keep its packed weights (it caches them per filter data id).
 * Measured on VGG19 at 256 px, 2 threads: the backward pass's input gradients 1.43 s → see README.
 * A cached copy is freed when its source filter's data is (the backend's disposeData is wrapped).
 */
const rotatedCache = new WeakMap<BackendWasm, Map<object, TensorInfo>>();

function rotatedFilter(backend: BackendWasm, filter: TensorInfo): TensorInfo {
  let cache = rotatedCache.get(backend);
  if (!cache) {
    const map = new Map<object, TensorInfo>();
    cache = map;
    rotatedCache.set(backend, map);
    const dispose = backend.disposeData.bind(backend);
    backend.disposeData = (dataId: object, force?: boolean): boolean => {
      const released = dispose(dataId, force);
      const cached = map.get(dataId);
      if (cached && !backend.dataIdMap.has(dataId)) {
        map.delete(dataId);
        dispose(cached.dataId, true);
      }
      return released;
    };
  }
  const hit = cache.get(filter.dataId);
  if (hit) return hit;
  const reversed = run(backend, Reverse, { x: filter }, { dims: [0, 1] });
  const rotated = run(backend, Transpose, { x: reversed }, { perm: [0, 1, 3, 2] });
  release(backend, reversed);
  cache.set(filter.dataId, rotated);
  return rotated;
}

/**
 * Stride-1 conv of dy (dilated by sh x sw, then bordered by top/bottom/left/right zeros, a
 * negative border cropping) with `filter`: explicit padding when it can, else a padded copy.
 */
function correlate(
  backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, sh: number, sw: number,
  top: number, bottom: number, left: number, right: number,
): TensorInfo {
  let x = dy;
  let pad: backend_util.ExplicitPadding | 'valid' = [[0, 0], [top, bottom], [left, right], [0, 0]];
  let padded: TensorInfo | null = null;
  if (sh !== 1 || sw !== 1 || top < 0 || bottom < 0 || left < 0 || right < 0) {
    const hp = top + (dy.shape[1] - 1) * sh + 1 + bottom;
    const wp = left + (dy.shape[2] - 1) * sw + 1 + right;
    padded = dilateAndPad(backend, dy, sh, sw, top, left, hp, wp);
    x = padded;
    pad = 'valid';
  }
  const out = run(backend, Conv2D, { x, filter }, {
    strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
  release(backend, padded);
  return out;
}

/** One axis of the sub-pixel split: output rows i = q*s + r (q < count) use taps c, c+s, ... */
interface Phase { r: number; count: number; c: number; taps: number; before: number; after: number }

function phasesOf(size: number, outSize: number, k: number, s: number, padBefore: number): Phase[] {
  const phases: Phase[] = [];
  for (let r = 0; r < s; r++) {
    const count = Math.ceil((size - r) / s);
    if (count <= 0) continue;
    const c = (r + padBefore) % s;
    const e = Math.floor((r + padBefore) / s);
    const taps = c < k ? Math.ceil((k - c) / s) : 0;
    const before = taps - 1 - e;
    phases.push({ r, count, c, taps, before, after: count + taps - 1 - before - outSize });
  }
  return phases;
}

/**
 * Sub-pixel form for stride > 1, no multiplications by inserted zeros: the rows i = q*s + r of
 * dx only meet the filter taps k = c + m*s with c = (r + padTop) mod s, as
 * dx[q*s + r] = sum_m dy[q + e - m] * w[c + m*s], e = floor((r + padTop) / s);
 * so each of the sh*sw phases is a stride-1 conv of dy with a small rotated sub-filter,
 * and the phase outputs are interleaved into dx.
 */
function backpropInputPhases(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const rowPhases = phasesOf(h, info.outHeight, kh, sh, info.padInfo.top);
  const colPhases = phasesOf(w, info.outWidth, kw, sw, info.padInfo.left);
  const dx = backend.makeOutput([n, h, w, ci], 'float32');
  if (rowPhases.some((p) => p.taps === 0) || colPhases.some((p) => p.taps === 0)) heapF32(backend, dx).fill(0);
  for (const ph of rowPhases) {
    for (const pw of colPhases) {
      if (ph.taps === 0 || pw.taps === 0) continue;
      // Sub-filter [taps_h, taps_w, co, ci]: rotated, in/out swapped.
      const sub = backend.makeOutput([ph.taps, pw.taps, co, ci], 'float32');
      const src = heapF32(backend, filter);
      const dst = heapF32(backend, sub);
      for (let a = 0; a < ph.taps; a++) {
        const i = ph.c + (ph.taps - 1 - a) * sh;
        for (let b = 0; b < pw.taps; b++) {
          const j = pw.c + (pw.taps - 1 - b) * sw;
          const f0 = (i * kw + j) * ci * co;
          const d0 = (a * pw.taps + b) * co * ci;
          for (let o = 0; o < co; o++) {
            for (let c = 0; c < ci; c++) dst[d0 + o * ci + c] = src[f0 + c * co + o];
          }
        }
      }
      const part = correlate(backend, dy, sub, 1, 1, ph.before, ph.after, pw.before, pw.after);
      release(backend, sub);
      // Interleave: dx[b, q*sh + r_h, p*sw + r_w, :] = part[b, q, p, :].
      const pv = heapF32(backend, part);
      const dv = heapF32(backend, dx);
      let s0 = 0;
      for (let b = 0; b < n; b++) {
        for (let q = 0; q < ph.count; q++) {
          const rowBase = ((b * h + q * sh + ph.r) * w + pw.r) * ci;
          for (let p = 0; p < pw.count; p++, s0 += ci) {
            const d = rowBase + p * sw * ci;
            if (ci >= 16) dv.set(pv.subarray(s0, s0 + ci), d);
            else for (let c = 0; c < ci; c++) dv[d + c] = pv[s0 + c];
          }
        }
      }
      release(backend, part);
    }
  }
  return dx;
}

function backpropInputKernel(method: BackpropInputMethod): KernelFunc {
  return ((args: KernelArgs): TensorInfo => {
    const backend = args.backend as BackendWasm;
    const attrs = args.attrs ?? {};
    const dy = args.inputs.dy as TensorInfo;
    const filter = args.inputs.filter as TensorInfo;
    checkDilations(attrs, Conv2DBackpropInput);
    const dataFormat = backend_util.convertConv2DDataFormat((attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC');
    if (dataFormat !== 'channelsLast' || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
      return stockBackpropInputFunc()(args) as TensorInfo;
    }
    const info = backend_util.computeConv2DInfo(
      attrs.inputShape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides as number | [number, number],
      1,
      attrs.pad as Pad,
      attrs.dimRoundingMode as Rounding,
      false,
      dataFormat,
    );
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: ho, outWidth: wo, outChannels: co } = info;
    if (dy.shape[0] !== n || dy.shape[1] !== ho || dy.shape[2] !== wo || dy.shape[3] !== co) {
      throw new Error(`wasm-grads: ${Conv2DBackpropInput} dy shape [${dy.shape}] does not match [${[n, ho, wo, co]}]`);
    }
    const size = n * h * w * ci;
    if (size === 0 || n * ho * wo * co === 0) return backend.makeOutput([n, h, w, ci], 'float32', undefined, new Float32Array(size));
    const strided = info.strideHeight !== 1 || info.strideWidth !== 1;
    return method === 'phases' && strided ? backpropInputPhases(backend, dy, filter, info) : backpropInputDilate(backend, dy, filter, info);
  }) as KernelFunc;
}

const conv2DBackpropInputFast = backpropInputKernel('phases');

/**
 * [n, ho, wo, c] -> [n, hp, wp, c], zero-filled, with dy[o] placed at (top + oh*sh, left + ow*sw);
 * positions outside [0, hp) x [0, wp) are dropped (they can only meet padding).
 */
function dilateAndPad(
  backend: BackendWasm, dy: TensorInfo, sh: number, sw: number, top: number, left: number, hp: number, wp: number,
): TensorInfo {
  const [n, ho, wo, c] = dy.shape;
  const out = backend.makeOutput([n, hp, wp, c], 'float32');
  const dst = heapF32(backend, out);
  const src = heapF32(backend, dy);
  dst.fill(0);
  const owLo = Math.max(0, Math.ceil(-left / sw));
  const owHi = Math.min(wo - 1, Math.floor((wp - 1 - left) / sw));
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < ho; oh++) {
      const r = top + oh * sh;
      if (r < 0 || r >= hp) continue;
      const srcRow = ((b * ho + oh) * wo) * c;
      const dstRow = ((b * hp + r) * wp) * c;
      if (sw === 1) {
        dst.set(src.subarray(srcRow + owLo * c, srcRow + (owHi + 1) * c), dstRow + (left + owLo) * c);
      } else {
        for (let ow = owLo; ow <= owHi; ow++) {
          const s = srcRow + ow * c;
          dst.set(src.subarray(s, s + c), dstRow + (left + ow * sw) * c);
        }
      }
    }
  }
  return out;
}

function stockBackpropInputFunc(): KernelFunc {
  if (stockBackpropInput == null) {
    throw new Error(`wasm-grads: the stock wasm ${Conv2DBackpropInput} kernel is not available`);
  }
  return stockBackpropInput.kernelFunc;
}

// ---------------------------------------------------------------------------------------
// Conv2DBackpropFilter
// ---------------------------------------------------------------------------------------

interface FilterGradGeometry {
  n: number; h: number; w: number; ci: number; co: number; ho: number; wo: number;
  kh: number; kw: number; sh: number; sw: number; padTop: number; padLeft: number;
  /** Extent of the zero-padded input that the windows read: (ho-1)*sh + kh etc. (at least h+padTop). */
  hp: number; wp: number;
}

function filterGradGeometry(x: TensorInfo, dy: TensorInfo, attrs: NamedAttrMap): FilterGradGeometry {
  const filterShape = attrs.filterShape as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    attrs.strides as number | [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding,
    false,
    'channelsLast',
  );
  const g = {
    n: info.batchSize, h: info.inHeight, w: info.inWidth, ci: info.inChannels, co: info.outChannels,
    ho: info.outHeight, wo: info.outWidth, kh: info.filterHeight, kw: info.filterWidth,
    sh: info.strideHeight, sw: info.strideWidth, padTop: info.padInfo.top, padLeft: info.padInfo.left,
    hp: 0, wp: 0,
  };
  if (dy.shape[0] !== g.n || dy.shape[1] !== g.ho || dy.shape[2] !== g.wo || dy.shape[3] !== g.co) {
    throw new Error(`wasm-grads: ${Conv2DBackpropFilter} dy shape [${dy.shape}] does not match [${[g.n, g.ho, g.wo, g.co]}]`);
  }
  g.hp = Math.max((g.ho - 1) * g.sh + g.kh, g.h + g.padTop);
  g.wp = Math.max((g.wo - 1) * g.sw + g.kw, g.w + g.padLeft);
  return g;
}

/** x [n,h,w,ci] -> zero-padded, channel-first [ci, n, hp, wp]. */
function padChannelFirst(backend: BackendWasm, x: TensorInfo, g: FilterGradGeometry): TensorInfo {
  const paddings = [[0, 0], [g.padTop, g.hp - g.h - g.padTop], [g.padLeft, g.wp - g.w - g.padLeft], [0, 0]];
  const padded = run(backend, PadV2, { x }, { paddings, constantValue: 0 } as unknown as NamedAttrMap);
  const t = run(backend, Transpose, { x: padded }, { perm: [3, 0, 1, 2] });
  release(backend, padded);
  return t;
}

/**
 * Copies the (strided) window of tap (i, j) of xt [ci, n, hp, wp], for the output rows
 * r = b*ho + oh in [r0, r1), into dst as [ci, (r1 - r0) * wo] starting at dstOffset.
 */
function copyWindow(
  src: Float32Array, dst: Float32Array, dstOffset: number, g: FilterGradGeometry, i: number, j: number, r0: number, r1: number,
): void {
  const { ci, ho, wo, hp, wp, sh, sw } = g;
  let d = dstOffset;
  for (let c = 0; c < ci; c++) {
    for (let r = r0; r < r1; r++) {
      const b = Math.floor(r / ho);
      const oh = r - b * ho;
      const s = ((c * g.n + b) * hp + oh * sh + i) * wp + j;
      if (sw === 1) {
        dst.set(src.subarray(s, s + wo), d);
      } else {
        for (let ow = 0; ow < wo; ow++) dst[d + ow] = src[s + ow * sw];
      }
      d += wo;
    }
  }
}

/**
 * Output rows (of wo positions each) per im2col matmul: at most 8192 dy positions (a longer
 * inner dimension runs ~30% slower in XNNPACK: 256x256x64 took 314 ms in one matmul vs
 * 225 ms in chunks) and at most IM2COL_BUDGET floats of im2col, whatever the image size.
 */
function im2colRowsPerChunk(g: FilterGradGeometry): number {
  const positions = Math.min(IM2COL_MAX_POSITIONS, Math.floor(IM2COL_BUDGET / (g.kh * g.kw * g.ci)));
  return Math.max(1, Math.floor(positions / g.wo));
}
const IM2COL_MAX_POSITIONS = 8192;
const IM2COL_BUDGET = 8 * 1024 * 1024;

/**
 * im2col [kh*kw*ci, mc] x dy rows [mc, co], summed over chunks of mc dy positions,
 * = dW [kh, kw, ci, co] (the im2col rows are (i, j, c), so the product is the filter layout).
 */
function backpropFilterIm2col(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, g: FilterGradGeometry): TensorInfo {
  const rows = g.n * g.ho;
  const taps = g.kh * g.kw;
  const chunkRows = Math.min(rows, im2colRowsPerChunk(g));
  const xt = padChannelFirst(backend, x, g);
  let out: TensorInfo | null = null;
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const r1 = Math.min(rows, r0 + chunkRows);
    const mc = (r1 - r0) * g.wo;
    const cols = backend.makeOutput([1, taps * g.ci, mc], 'float32');
    let dyPart: TensorInfo;
    if (r0 === 0 && r1 === rows) {
      dyPart = run(backend, Reshape, { x: dy }, { shape: [1, mc, g.co] });
    } else {
      dyPart = backend.makeOutput([1, mc, g.co], 'float32');
      heapF32(backend, dyPart).set(heapF32(backend, dy).subarray(r0 * g.wo * g.co, r1 * g.wo * g.co));
    }
    const src = heapF32(backend, xt);
    const dst = heapF32(backend, cols);
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) copyWindow(src, dst, (i * g.kw + j) * g.ci * mc, g, i, j, r0, r1);
    }
    const prod = run(backend, BatchMatMul, { a: cols, b: dyPart }, { transposeA: false, transposeB: false });
    release(backend, cols, dyPart);
    if (out == null) {
      out = prod;
    } else {
      const acc = heapF32(backend, out);
      const add = heapF32(backend, prod);
      for (let k = 0; k < acc.length; k++) acc[k] += add[k];
      release(backend, prod);
    }
  }
  release(backend, xt);
  const result = run(backend, Reshape, { x: out as TensorInfo }, { shape: [g.kh, g.kw, g.ci, g.co] });
  release(backend, out);
  return result;
}

/** kh*kw matmuls: window [ci, m] x dy [m, co] = dW[i, j] (dy is packed once by XNNPACK). */
function backpropFilterPerTap(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, g: FilterGradGeometry): TensorInfo {
  const m = g.n * g.ho * g.wo;
  const xt = padChannelFirst(backend, x, g);
  const dy2 = run(backend, Reshape, { x: dy }, { shape: [1, m, g.co] });
  const win = backend.makeOutput([1, g.ci, m], 'float32');
  const out = backend.makeOutput([g.kh, g.kw, g.ci, g.co], 'float32');
  const tap = g.ci * g.co;
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      copyWindow(heapF32(backend, xt), heapF32(backend, win), 0, g, i, j, 0, g.n * g.ho);
      const prod = run(backend, BatchMatMul, { a: win, b: dy2 }, { transposeA: false, transposeB: false });
      heapF32(backend, out).set(heapF32(backend, prod), (i * g.kw + j) * tap);
      release(backend, prod);
    }
  }
  release(backend, xt, dy2, win);
  return out;
}

/**
 * Correlation trick: dW[i,j,c,o] = sum_{b,p,q} x[b, p*sh+i, q*sw+j, c] dy[b,p,q,o] is a conv of
 * x laid out [ci, hp, wp, n] (batch = ci, channels = n) with dy laid out [ho, wo, n, co] as the
 * filter, dilated by the stride; the output [ci, kh', kw', co] is cropped and transposed.
 */
function backpropFilterConv(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, g: FilterGradGeometry): TensorInfo {
  const paddings = [[0, 0], [g.padTop, g.hp - g.h - g.padTop], [g.padLeft, g.wp - g.w - g.padLeft], [0, 0]];
  const padded = run(backend, PadV2, { x }, { paddings, constantValue: 0 } as unknown as NamedAttrMap);
  const xt = run(backend, Transpose, { x: padded }, { perm: [3, 1, 2, 0] });
  const dyt = run(backend, Transpose, { x: dy }, { perm: [1, 2, 0, 3] });
  release(backend, padded);
  const corr = run(backend, Conv2D, { x: xt, filter: dyt }, {
    strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [g.sh, g.sw], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
  release(backend, xt, dyt);
  let cropped = corr;
  if (corr.shape[1] !== g.kh || corr.shape[2] !== g.kw) {
    // Only when the padded input is longer than the windows need; small tensor, crop in JS.
    cropped = backend.makeOutput([g.ci, g.kh, g.kw, g.co], 'float32');
    const src = heapF32(backend, corr);
    const dst = heapF32(backend, cropped);
    const [, ch, cw] = corr.shape;
    for (let c = 0; c < g.ci; c++) {
      for (let i = 0; i < g.kh; i++) {
        const s = ((c * ch + i) * cw) * g.co;
        dst.set(src.subarray(s, s + g.kw * g.co), ((c * g.kh + i) * g.kw) * g.co);
      }
    }
    release(backend, corr);
  }
  const out = run(backend, Transpose, { x: cropped }, { perm: [1, 2, 0, 3] });
  release(backend, cropped);
  return out;
}

const filterMethods: Record<BackpropFilterMethod, typeof backpropFilterIm2col> = {
  im2col: backpropFilterIm2col,
  'per-tap': backpropFilterPerTap,
  conv: backpropFilterConv,
};

/** The Conv2DBackpropFilter kernel function for one formulation (exported for benchmarks). */
export function conv2DBackpropFilterKernel(method: BackpropFilterMethod = 'im2col'): KernelFunc {
  const impl = filterMethods[method];
  return (args: KernelArgs): TensorInfo => {
    const backend = args.backend as BackendWasm;
    const attrs = args.attrs ?? {};
    const x = args.inputs.x as TensorInfo;
    const dy = args.inputs.dy as TensorInfo;
    checkDilations(attrs, Conv2DBackpropFilter);
    const dataFormat = backend_util.convertConv2DDataFormat((attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC');
    if (dataFormat !== 'channelsLast') {
      throw new Error(`wasm-grads: ${Conv2DBackpropFilter} supports dataFormat 'NHWC' only`);
    }
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
      throw new Error(`wasm-grads: ${Conv2DBackpropFilter} supports float32 only`);
    }
    const g = filterGradGeometry(x, dy, attrs);
    const size = g.kh * g.kw * g.ci * g.co;
    if (g.n * g.ho * g.wo === 0 || size === 0) {
      return backend.makeOutput([g.kh, g.kw, g.ci, g.co], 'float32', undefined, new Float32Array(size));
    }
    return impl(backend, x, dy, g);
  };
}

/**
 * A Conv2DBackpropInput kernel function (exported for benchmarks): 'phases' (the registered
 * one), 'dilate' (zero-dilated dy, one conv), or the 'stock' wasm kernel.
 */
export function conv2DBackpropInputKernel(which: BackpropInputMethod | 'stock' = 'phases'): KernelFunc {
  if (which === 'stock') {
    return (args: KernelArgs) => stockBackpropInputFunc()(args);
  }
  return which === 'phases' ? conv2DBackpropInputFast : backpropInputKernel(which);
}

const conv2DBackpropFilterFast = conv2DBackpropFilterKernel('im2col');

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

let registered = false;
let previousBackpropFilter: KernelConfig | undefined;

/**
 * Registers the fast Conv2DBackpropInput (replacing the stock one) and Conv2DBackpropFilter
 * for the 'wasm' backend. Idempotent; works before or after the backend is initialised.
 */
export function registerWasmGradKernels(): void {
  if (registered) return;
  // The stock input gradient stays the fallback (NCHW).
  stockBackpropInput = registerInFront(Conv2DBackpropInput, conv2DBackpropInputFast);
  previousBackpropFilter = registerInFront(Conv2DBackpropFilter, conv2DBackpropFilterFast);
  registered = true;
}

/** Restores the kernels that were registered before `registerWasmGradKernels` (stock wasm ones). */
export function unregisterWasmGradKernels(): void {
  if (!registered) return;
  unregisterKernel(Conv2DBackpropInput, BACKEND);
  unregisterKernel(Conv2DBackpropFilter, BACKEND);
  if (stockBackpropInput != null) registerKernel(stockBackpropInput);
  if (previousBackpropFilter != null) registerKernel(previousBackpropFilter);
  registered = false;
}
