/**
 * WCT's passes over [D, C] features on the tfjs WebAssembly backend, in place: the kernels of
 * wasm/covariance.as.ts (compiled by scripts/build-wasm.mjs) are instantiated on that backend's own
 * linear memory, so they read its tensors where they lie and write into tensors it allocated.
 *
 * Why: tfjs-wasm reduces over rows by transposing the whole matrix first, and XᵀX either transposes
 * or sums D products in one float32 register. Measured on 524288×64 features (relu1_1 of 1024×512,
 * 2 cores): the column mean 430 ms through tfjs; see bench/photowct.ts for the whole WCT.
 *
 * The module has no data segment, no globals and no start function (checked by its test), so
 * instantiating it writes nothing into the backend's memory; it writes only where it is told: scratch
 * and outputs from the backend's own malloc. Used when the backend is 'wasm' and STUDIO_WCT_WASM is not 0.
 */
import * as tf from '@tensorflow/tfjs-core';
import { COVARIANCE_WASM_BASE64, COVARIANCE_WASM_SHARED_BASE64 } from './covariance-wasm.gen.ts';
import { centredGramShared } from '../kernels/winograd.ts';
import { instantiator, memoryOf, type WasmBackendInternals } from '../kernels/tfjs-memory.ts';

interface CovarianceKernels {
  columnSums(x: number, d: number, c: number, out: number): void;
  centredGram(x: number, d: number, c: number, mean: number, block: number, out: number, sums: number, buf: number): void;
  centre(x: number, d: number, c: number, mean: number, out: number): void;
}

const instantiate = instantiator<CovarianceKernels>(COVARIANCE_WASM_SHARED_BASE64, COVARIANCE_WASM_BASE64);
const kernelsOn = (memory: WebAssembly.Memory): CovarianceKernels => instantiate(memory).exports;

function backendInternals(): { b: WasmBackendInternals; memory: WebAssembly.Memory } | undefined {
  if (tf.getBackend() !== 'wasm' || process.env.STUDIO_WCT_WASM === '0') return undefined;
  const b = tf.backend() as unknown as WasmBackendInternals;
  const memory = memoryOf(b);
  return memory && b.dataIdMap ? { b, memory } : undefined;
}

/** Whether featureStatsInPlace / centreInPlace run here (the wasm backend, with its memory reachable). */
export function inPlaceKernelsAvailable(): boolean {
  return backendInternals() !== undefined;
}

/** Gram rows summed in float32 before each float64 addition: 64–128 KB of centred rows in cache. */
function blockRows(c: number): number {
  return Math.max(16, Math.min(256, Math.floor(32768 / Math.max(c, 1))));
}

export interface FeatureStats {
  /** Column means (float64). */
  mean: Float64Array;
  /** Σ_r (x_r − mean)ᵀ(x_r − mean), [C, C] row-major, symmetric (float64; not yet divided by D − 1). */
  scatter: Float64Array;
  /** Σ_r (x_r − mean) with the mean as float32: ~0, measured (the report's mean error). */
  centredSum: Float64Array;
}

/** Mean and centred scatter of x [D, C] in two passes over it. Throws where inPlaceKernelsAvailable() is false. */
export function featureStatsInPlace(x: tf.Tensor2D): FeatureStats {
  const internals = backendInternals();
  if (!internals) throw new Error('featureStatsInPlace needs the wasm backend');
  const { b, memory } = internals;
  const [d, c] = x.shape;
  const k = kernelsOn(memory);
  // Scratch from the backend's allocator (it may grow the memory: offsets stay valid, views do not).
  // The scatter in shares of rows, one a thread (kernels/winograd.ts's helpers): each share its own
  // float64 scatter, sums and row buffer, added up here.
  const shareBytes = (8 * c * c + 8 * c + 4 * blockRows(c) * c + 15) & ~15;
  const bytes = 8 * c + 4 * c + 8 + MAX_SHARES * shareBytes;
  const base = b.wasm._malloc(bytes + 16) >>> 0;
  if (base === 0) throw new Error(`the WebAssembly heap has no ${(bytes / 1e6).toFixed(1)} MB left for the covariance's scratch`);
  try {
    const at = ((base + 15) & ~15) >>> 0; // unsigned: the heap may pass 2 GiB
    const mean64 = at;
    const mean32 = mean64 + 8 * c;
    const shares0 = (mean32 + 4 * c + 15) & ~15;
    const xp = b.dataIdMap.get(x.dataId)!.memoryOffset;
    k.columnSums(xp, d, c, mean64);
    const heap64 = () => new Float64Array(memory.buffer);
    const mean = heap64().slice(mean64 / 8, mean64 / 8 + c).map((s) => s / d);
    new Float32Array(memory.buffer, mean32, c).set(mean);
    const shares = centredGramShared(memory, xp, d, c, mean32, blockRows(c), shares0, shareBytes, MAX_SHARES);
    const h = heap64();
    const s = h.slice(shares0 / 8, shares0 / 8 + c * c);
    const centredSum = h.slice(shares0 / 8 + c * c, shares0 / 8 + c * c + c);
    for (let j = 1; j < shares; j++) {
      const o = (shares0 + j * shareBytes) / 8;
      for (let i = 0; i < c * c; i++) s[i] += h[o + i];
      for (let i = 0; i < c; i++) centredSum[i] += h[o + c * c + i];
    }
    for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) s[i * c + j] = s[j * c + i];
    return { mean, scatter: s, centredSum };
  } finally {
    b.wasm._free(base);
  }
}

/** Shares of the scatter at most (one a thread, up to this). */
const MAX_SHARES = 4;

/** x − mean (mean as float32) into a new tensor, in one pass. Throws where inPlaceKernelsAvailable() is false. */
export function centreInPlace(x: tf.Tensor2D, mean: Float64Array | Float32Array): tf.Tensor2D {
  const internals = backendInternals();
  if (!internals) throw new Error('centreInPlace needs the wasm backend');
  const { b, memory } = internals;
  const [d, c] = x.shape;
  const k = kernelsOn(memory);
  const info = b.makeOutput([d, c], 'float32');
  const out = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
  const m = b.wasm._malloc(4 * c) >>> 0;
  if (m === 0) {
    out.dispose();
    throw new Error('the WebAssembly heap is full');
  }
  try {
    new Float32Array(memory.buffer, m, c).set(mean);
    k.centre(b.dataIdMap.get(x.dataId)!.memoryOffset, d, c, m, b.dataIdMap.get(out.dataId)!.memoryOffset);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    b.wasm._free(m);
  }
  return out;
}

/**
 * XᵀX of x [D, C] as a float32 [C, C] tensor: the centred Gram's kernel with a zero mean (float32
 * products over ≤ 256-row blocks, float64 across blocks, one triangle). The Gatys losses' Gram on
 * WebAssembly, where tfjs would transpose all of x first. Throws where inPlaceKernelsAvailable() is false.
 */
export function gramInPlace(x: tf.Tensor2D): tf.Tensor2D {
  const internals = backendInternals();
  if (!internals) throw new Error('gramInPlace needs the wasm backend');
  const { b, memory } = internals;
  const [d, c] = x.shape;
  const k = kernelsOn(memory);
  const bytes = 4 * c + 8 * c * c + 8 * c + 4 * blockRows(c) * c;
  const base = b.wasm._malloc(bytes + 16) >>> 0;
  if (base === 0) throw new Error(`the WebAssembly heap has no ${(bytes / 1e6).toFixed(1)} MB left for the covariance's scratch`);
  try {
    const zero = ((base + 7) & ~7) >>> 0; // unsigned: the heap may pass 2 GiB
    const scatter = zero + 4 * c + ((4 * c) % 8);
    const sums = scatter + 8 * c * c;
    const buf = sums + 8 * c;
    new Float32Array(memory.buffer, zero, c).fill(0);
    k.centredGram(b.dataIdMap.get(x.dataId)!.memoryOffset, d, c, zero, blockRows(c), scatter, sums, buf);
    const s = new Float64Array(memory.buffer, scatter, c * c);
    const g = new Float32Array(c * c);
    for (let i = 0; i < c; i++) for (let j = i; j < c; j++) g[i * c + j] = g[j * c + i] = s[i * c + j];
    return tf.tensor2d(g, [c, c]);
  } finally {
    b.wasm._free(base);
  }
}
