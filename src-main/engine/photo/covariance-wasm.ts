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
  const xp = b.dataIdMap.get(x.dataId)!.memoryOffset;
  return withScratch(b, 8 * c + 4 * c + 16, (at) => {
    const mean64 = at, mean32 = mean64 + 8 * c;
    kernelsOn(memory).columnSums(xp, d, c, mean64);
    const mean = new Float64Array(memory.buffer).slice(mean64 / 8, mean64 / 8 + c).map((v) => v / d);
    new Float32Array(memory.buffer, mean32, c).set(mean);
    const { scatter, sums } = scatterOf(b, memory, xp, d, c, mean32);
    return { mean, scatter, centredSum: sums };
  });
}

/** `f` with `bytes` of 16-aligned scratch from the backend's malloc, freed after. */
function withScratch<T>(b: WasmBackendInternals, bytes: number, f: (at: number) => T): T {
  const base = b.wasm._malloc(bytes + 16) >>> 0;
  if (base === 0) throw new Error(`the WebAssembly heap has no ${(bytes / 1e6).toFixed(1)} MB left for the covariance's scratch`);
  try {
    return f(((base + 15) & ~15) >>> 0); // unsigned: the heap may pass 2 GiB
  } finally {
    b.wasm._free(base);
  }
}

/**
 * Σ_r (x_r − mean)ᵀ(x_r − mean) (full, symmetric) and Σ_r (x_r − mean) of x [d, c] at `xp`, the mean
 * as float32 at `mean32`, in float64. In shares of rows, one a thread (kernels/winograd.ts's helpers):
 * each share its own scatter, sums and row buffer, added up here.
 */
function scatterOf(b: WasmBackendInternals, memory: WebAssembly.Memory, xp: number, d: number, c: number, mean32: number): { scatter: Float64Array; sums: Float64Array } {
  const shareBytes = (8 * c * c + 8 * c + 4 * blockRows(c) * c + 15) & ~15;
  return withScratch(b, MAX_SHARES * shareBytes, (at) => {
    const shares = centredGramShared(memory, xp, d, c, mean32, blockRows(c), at, shareBytes, MAX_SHARES);
    const h = new Float64Array(memory.buffer);
    const scatter = h.slice(at / 8, at / 8 + c * c);
    const sums = h.slice(at / 8 + c * c, at / 8 + c * c + c);
    for (let j = 1; j < shares; j++) {
      const o = (at + j * shareBytes) / 8;
      for (let i = 0; i < c * c; i++) scatter[i] += h[o + i];
      for (let i = 0; i < c; i++) sums[i] += h[o + c * c + i];
    }
    for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) scatter[i * c + j] = scatter[j * c + i];
    return { scatter, sums };
  });
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
  return withScratch(b, 4 * c, (zero) => {
    new Float32Array(memory.buffer, zero, c).fill(0);
    const { scatter } = scatterOf(b, memory, b.dataIdMap.get(x.dataId)!.memoryOffset, d, c, zero);
    return tf.tensor2d(Float32Array.from(scatter), [c, c]);
  });
}
