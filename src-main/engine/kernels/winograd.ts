/**
 * The 3×3, stride-1 convolution on the tfjs WebAssembly backend by Winograd F(4×4, 3×3)
 * (wasm/winograd.as.ts, compiled by scripts/build-wasm.mjs), registered in place of XNNPACK's Conv2D for
 * the convolutions it covers: VGG19's and PhotoWCT's, forward and, through wasm-grads.ts (which computes
 * the input gradient as a forward convolution with the rotated filter), backward; channel counts not a
 * multiple of 4 (VGG19's first layer, a decoder's last) run with zero channels padded to fours. Everything
 * else — other kernel sizes, strides, dilations, NCHW — stays on the stock kernel, which STUDIO_WINOGRAD=0
 * also restores for all.
 *
 * Why: XNNPACK's direct convolution is at WebAssembly SIMD128's ceiling (no fused multiply-add); F(4×4, 3×3)
 * needs 4× fewer multiplications, and its 36 matrix products run at that same ceiling. The kernels run
 * on the backend's own memory (as covariance-wasm.ts): inputs read where they lie, the output a tensor
 * the backend allocated, scratch from its malloc, freed before returning.
 *
 * Accuracy: the transforms' constants (up to 8 in Aᵀ, 1/24 in G) cost a few float32 roundings: measured
 * against XNNPACK in test/engine/kernels/winograd.test.ts.
 */
import { backend_util, Conv2D, engine, getBackend } from '@tensorflow/tfjs-core';
import type { Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { Worker } from 'node:worker_threads';
import { addressOf, instantiator, memoryOf, registerInFront, registerOwn, tapeRecords, type Instantiated, type WasmBackendInternals } from './tfjs-memory.ts';
import { WINOGRAD_WASM_BASE64, WINOGRAD_WASM_FMA_BASE64, WINOGRAD_WASM_SHARED_BASE64, WINOGRAD_WASM_SHARED_FMA_BASE64 } from './winograd-wasm.gen.ts';
import { COVARIANCE_WASM_BASE64, COVARIANCE_WASM_SHARED_BASE64 } from '../photo/covariance-wasm.gen.ts';

const BACKEND = 'wasm';

interface WinogradKernels {
  gemm(a: number, b: number, c: number, rows: number, k: number, n: number, bias: number): void;
  filterTransform(filter: number, ci: number, co: number, c0: number, c1: number, u: number, tmp: number): void;
  convBand(x: number, h: number, w: number, ci: number, padT: number, padL: number, reflect: number, u: number, co: number, y: number, ho: number, wo: number,
    tilesW: number, t0: number, count: number, v: number, m: number, bias: number, relu: number, tmp: number): void;
}

type Kernels = Instantiated<WinogradKernels>;
/**
 * Which build the products run: 'relaxed-simd' (a fused multiply-add: Node 22, Electron; Node 20 with
 * --experimental-wasm-relaxed-simd) where the runtime validates it and STUDIO_WASM_FMA is not 0, else
 * 'simd'. Measured on this project's AMD machine (Node 20 with the flag): the products 45–49 GFLOP/s a
 * core against 42–44, whole convolutions 5–8% faster; where multiplies and adds share their pipes
 * (Intel, Apple) a fused multiply-add halves the work of the products.
 */
export function winogradBuild(): 'relaxed-simd' | 'simd' {
  return process.env.STUDIO_WASM_FMA !== '0' && WebAssembly.validate(Buffer.from(WINOGRAD_WASM_FMA_BASE64, 'base64')) ? 'relaxed-simd' : 'simd';
}
const plainKernels = instantiator<WinogradKernels>(WINOGRAD_WASM_SHARED_BASE64, WINOGRAD_WASM_BASE64);
const fmaKernels = instantiator<WinogradKernels>(WINOGRAD_WASM_SHARED_FMA_BASE64, WINOGRAD_WASM_FMA_BASE64);
let build: ReturnType<typeof winogradBuild> | undefined;
const kernelsOn = (memory: WebAssembly.Memory): Kernels => ((build ??= winogradBuild()) === 'relaxed-simd' ? fmaKernels : plainKernels)(memory);

// The work of one convolution, shared out between this thread and helper threads on the same (shared)
// memory: tfjs's own threads are idle while a kernel runs, so the helpers take their cores. Two phases,
// each a list of jobs: the filter transform (shares of the input channels), then the bands of tiles.
// The control block: [0] generation (bumped to start a phase), [1] next job, [2] helpers done, [3…25]
// and [29…32] the parameters (addresses as unsigned 32-bit), [26] helpers started, [27] a helper
// failed, [28] stop.
const P = { x: 3, h: 4, w: 5, ci: 6, padT: 7, padL: 8, u: 9, co: 10, y: 11, ho: 12, wo: 13, tilesW: 14, tiles: 15, band: 16,
  jobs: 17, inImage: 18, outImage: 19, scratch: 20, slotBytes: 21, vBytes: 22, mBytes: 23, bias: 24, relu: 25,
  reflect: 29, phase: 30, filter: 31, chunk: 32 } as const;
const STARTED = 26, FAILED = 27, STOP = 28;
const CONTROL_INTS = 33;

/**
 * Runs jobs until none is left. Phase 0: job j transforms the filter's input channels j·chunk … ;
 * phase 1: job j is image ⌊j / bands⌋, tiles from (j mod bands)·band. Shared by this thread and the
 * helpers (as text).
 */
const HELPER = `
const { workerData } = require('node:worker_threads');
const { module, covariance, memory, control, slot } = workerData;
const c = new Int32Array(control);
const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
const cv = new WebAssembly.Instance(covariance, { env: { memory } }).exports;
const runJobs = ${runJobs.toString()};
let seen = Atomics.load(c, 0);
Atomics.add(c, ${STARTED}, 1);
Atomics.notify(c, ${STARTED});
for (;;) {
  Atomics.wait(c, 0, seen);
  if (Atomics.load(c, ${STOP})) break;
  seen = Atomics.load(c, 0);
  // A trap here is reported to the convolution's thread (it throws), never lost nor left waiting.
  try { runJobs(k, c, slot, cv); } catch { Atomics.store(c, ${FAILED}, 1); Atomics.store(c, 1, 1 << 30); }
  finally { Atomics.add(c, 2, 1); Atomics.notify(c, 2); }
}
`;

// No nested functions in here: its text runs in the helpers, where a bundler's helpers do not exist.
function runJobs(k: WinogradKernels, c: Int32Array, slot: number, cv: CentredGramKernel): void {
  const bandsPerImage = Math.ceil(c[15] / c[16]);
  const v = (c[20] >>> 0) + slot * (c[21] >>> 0), m = v + (c[22] >>> 0), tmp = m + (c[23] >>> 0);
  for (;;) {
    const j = Atomics.add(c, 1, 1);
    if (j >= c[17]) return;
    if (c[30] === 2) {
      // A share of a covariance's rows: x [d, ch] at c[3], d = c[15], ch = c[6], rows a share c[16],
      // the float32 mean at c[24], block rows c[25]; the share's scatter, sums and buffer at c[20] + j·c[21].
      const r0 = j * c[16], at = (c[20] >>> 0) + j * (c[21] >>> 0), ch = c[6];
      cv.centredGram((c[3] >>> 0) + r0 * ch * 4, Math.min(c[16], c[15] - r0), ch, c[24] >>> 0, c[25], at, at + 8 * ch * ch, at + 8 * ch * ch + 8 * ch);
      continue;
    }
    if (c[30] === 3) {
      // Rows c[16]·j … of y [D, n] = x [D, k] · w [k, n] (+ bias): x c[3], D c[15], k c[6], w c[9], y c[11], n c[10], bias c[24].
      const r0 = j * c[16];
      k.gemm((c[3] >>> 0) + r0 * c[6] * 4, c[9] >>> 0, (c[11] >>> 0) + r0 * c[10] * 4, Math.min(c[16], c[15] - r0), c[6], c[10], c[24] >>> 0);
      continue;
    }
    if (c[30] === 0) {
      k.filterTransform(c[31] >>> 0, c[6], c[10], j * c[32], Math.min(c[6], (j + 1) * c[32]), c[9] >>> 0, tmp);
      continue;
    }
    const n = Math.floor(j / bandsPerImage), t0 = (j % bandsPerImage) * c[16];
    k.convBand((c[3] >>> 0) + n * (c[18] >>> 0), c[4], c[5], c[6], c[7], c[8], c[29], c[9] >>> 0, c[10], (c[11] >>> 0) + n * (c[19] >>> 0), c[12], c[13], c[14],
      t0, Math.min(c[16], c[15] - t0), v, m, c[24] >>> 0, c[25], tmp);
  }
}

interface Pool { memory: WebAssembly.Memory; control: Int32Array; helpers: Worker[]; covariance: Instantiated<CentredGramKernel> }

/** photo/wasm/covariance.as.ts's centred Gram, which the helpers also run (centredGramShared). */
export interface CentredGramKernel {
  centredGram(x: number, d: number, c: number, mean: number, block: number, out: number, sums: number, buf: number): void;
}
const covarianceOn = instantiator<CentredGramKernel>(COVARIANCE_WASM_SHARED_BASE64, COVARIANCE_WASM_BASE64);
let pool: Pool | undefined;
/** Helpers that did not start: the convolutions stay on one thread for the rest of the process. */
let poolRefused = false;

/**
 * Helper threads on `memory` (threads − 1 of them), started once and kept; none where the memory is not
 * shared, or where they do not start within 10 s (the convolutions then run on this thread alone).
 */
function poolFor(memory: WebAssembly.Memory, k: Kernels, threads: number): Pool | undefined {
  if (!k.shared || threads < 2 || poolRefused) return undefined;
  if (pool && pool.memory === memory && pool.helpers.length === threads - 1) return pool;
  stopPool();
  const control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_INTS));
  const helpers = Array.from({ length: threads - 1 }, (_, i) => {
    const w = new Worker(HELPER, { eval: true, workerData: { module: k.module, covariance: covarianceOn(memory).module, memory, control: control.buffer, slot: i + 1 } });
    // A helper's own failure is reported through the control block; this keeps it from becoming uncaught.
    w.on('error', () => Atomics.store(control, FAILED, 1));
    w.unref();
    return w;
  });
  const deadline = Date.now() + 10_000;
  for (let up = Atomics.load(control, STARTED); up < helpers.length && Date.now() < deadline; up = Atomics.load(control, STARTED)) {
    Atomics.wait(control, STARTED, up, 100);
  }
  pool = { memory, control, helpers, covariance: covarianceOn(memory) };
  if (Atomics.load(control, STARTED) < helpers.length) {
    stopPool();
    poolRefused = true;
    return undefined;
  }
  return pool;
}


/** Stops the helper threads (tests; a backend change; a helper that failed). */
export function stopPool(): void {
  if (!pool) return;
  Atomics.store(pool.control, STOP, 1);
  Atomics.add(pool.control, 0, 1);
  Atomics.notify(pool.control, 0);
  for (const w of pool.helpers) void w.terminate();
  pool = undefined;
}

/** Threads a convolution uses: tfjs's own count (STUDIO_WASM_THREADS), STUDIO_WINOGRAD_THREADS to override. */
function threadCount(): number {
  const env = Number(process.env.STUDIO_WINOGRAD_THREADS);
  if (Number.isInteger(env) && env >= 1) return env;
  try {
    return Math.max(1, getThreadsCount());
  } catch {
    return 1;
  }
}

export interface WinogradShape {
  batch: number; h: number; w: number; ci: number; co: number;
  padTop: number; padLeft: number; ho: number; wo: number;
  /** The border read as a reflection (FastPhotoStyle's ReflectionPad2d(1)) instead of zeros. */
  reflect?: boolean;
}

/** Whether a 1×1, stride-1, unpadded NHWC convolution runs as a product by rows (outputs in fours; not switched off). */
export function pointwiseCovers(info: backend_util.Conv2DInfo): boolean {
  return process.env.STUDIO_WINOGRAD !== '0'
    && info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1
    && info.dilationHeight === 1 && info.dilationWidth === 1 && info.dataFormat === 'channelsLast'
    && info.padInfo.top === 0 && info.padInfo.left === 0 && info.padInfo.bottom === 0 && info.padInfo.right === 0
    && info.outChannels % 4 === 0;
}

/** Whether F(4×4, 3×3) here covers a convolution (and is not switched off); else the stock kernel runs. */
export function winogradCovers(info: backend_util.Conv2DInfo): boolean {
  return process.env.STUDIO_WINOGRAD !== '0'
    && info.filterHeight === 3 && info.filterWidth === 3
    && info.strideHeight === 1 && info.strideWidth === 1
    && info.dilationHeight === 1 && info.dilationWidth === 1
    && info.dataFormat === 'channelsLast'
    && info.outHeight >= 2 && info.outWidth >= 2;
}

/**
 * Tiles a band. Its transformed tiles (v and m, 36·count·(ci + co) floats) about BAND_BYTES, so that the
 * 36 products read them from a core's second-level cache; but at least REUSE_ROWS tiles where the image
 * has them, since each product streams its [ci, co] plane of u from memory once a band (at 512 channels a
 * 1 MB plane: with 7-tile bands the deep layers ran at half speed); at least two bands a thread where that
 * leaves enough rows, and never fewer bands than threads.
 */
const BAND_KB = Number(process.env.STUDIO_WINOGRAD_BAND_KB);
const BAND_BYTES = (Number.isFinite(BAND_KB) && BAND_KB >= 16 ? BAND_KB : 1024) * 1024;
const REUSE_ROWS = Number(process.env.STUDIO_WINOGRAD_REUSE) || 32;
export function bandTiles(ci: number, co: number, tiles: number, threads: number): number {
  const cached = Math.floor(BAND_BYTES / (36 * 4 * (ci + co)));
  const balanced = threads > 1 ? Math.ceil(tiles / (2 * threads)) : tiles;
  const reuse = Math.min(REUSE_ROWS, Math.ceil(tiles / threads));
  return Math.max(4, Math.min(tiles, Math.max(Math.min(cached, balanced), reuse)));
}

/**
 * y = conv(x, filter) (+ bias, ReLU) by F(4×4, 3×3), x [n, h, w, ci], filter [3, 3, ci, co], into a
 * new float32 tensor of the backend's [n, ho, wo, co]. The caller checked winogradCovers.
 */
export function winogradConv2d(backend: object, x: TensorInfo, filter: TensorInfo, s: WinogradShape, bias?: TensorInfo, relu = false): TensorInfo {
  const b = backend as WasmBackendInternals;
  const memory = memoryOf(b);
  if (!memory) throw new Error('winograd: the wasm backend\'s memory is not reachable');
  const k = kernelsOn(memory);
  const tilesH = Math.ceil(s.ho / 4), tilesW = Math.ceil(s.wo / 4), tiles = tilesH * tilesW;
  // Small convolutions stay on one thread: waking the helpers costs more than they save.
  const work = s.batch * s.ho * s.wo * s.ci * s.co;
  const p = work >= 1 << 22 ? poolFor(memory, k, threadCount()) : undefined;
  const threads = p ? p.helpers.length + 1 : 1;
  // Channels in fours (the padded ones zero), 36 planes each, a plane padded by a cache line: planeBytes in wasm/winograd.as.ts.
  const ci4 = (s.ci + 3) & ~3, co4 = (s.co + 3) & ~3;
  const band = bandTiles(ci4, co4, tiles, threads);
  const uBytes = 36 * (ci4 * co4 * 4 + 64), vBytes = 36 * (band * ci4 * 4 + 64), mBytes = 36 * (band * co4 * 4 + 64);
  const slotBytes = vBytes + mBytes + 36 * 16;
  const out = b.makeOutput([s.batch, s.ho, s.wo, s.co], 'float32');
  const base = b.wasm._malloc(uBytes + threads * slotBytes + 64) >>> 0;
  if (base === 0) {
    b.disposeData(out.dataId);
    throw new Error(`winograd: the WebAssembly heap has no ${((uBytes + threads * slotBytes) / 1e6).toFixed(0)} MB left for scratch`);
  }
  try {
    const u = ((base + 15) & ~15) >>> 0;
    const scratch = u + uBytes;
    const ptr = (t: TensorInfo) => addressOf(b, t);
    const c = p ? p.control : new Int32Array(CONTROL_INTS);
    const set = (i: number, value: number) => { c[i] = value | 0; };
    set(P.x, ptr(x)); set(P.h, s.h); set(P.w, s.w); set(P.ci, s.ci); set(P.padT, s.padTop); set(P.padL, s.padLeft);
    set(P.u, u); set(P.co, s.co); set(P.y, ptr(out)); set(P.ho, s.ho); set(P.wo, s.wo); set(P.tilesW, tilesW); set(P.tiles, tiles);
    set(P.band, band); set(P.inImage, s.h * s.w * s.ci * 4); set(P.outImage, s.ho * s.wo * s.co * 4);
    set(P.scratch, scratch); set(P.slotBytes, slotBytes); set(P.vBytes, vBytes); set(P.mBytes, mBytes); set(P.bias, bias ? ptr(bias) : 0); set(P.relu, relu ? 1 : 0);
    set(P.reflect, s.reflect ? 1 : 0); set(P.filter, ptr(filter));
    // The filter transform in shares of about 64 input × 512 output channels (8 at 512 × 512), all in one alone.
    const chunk = p ? Math.max(1, Math.min(s.ci, Math.ceil((64 * 512) / co4))) : s.ci;
    const cv = covarianceOn(memory).exports;
    runPhase(k.exports, cv, c, p, 0, Math.ceil(s.ci / chunk), chunk);
    runPhase(k.exports, cv, c, p, 1, s.batch * Math.ceil(tiles / band), 0);
  } catch (e) {
    b.disposeData(out.dataId);
    throw e;
  } finally {
    b.wasm._free(base);
  }
  return out;
}

/** One phase's jobs on this thread and the helpers; throws what failed on either. */
function runPhase(k: WinogradKernels, cv: CentredGramKernel, c: Int32Array, p: Pool | undefined, phase: number, jobs: number, chunk: number): void {
  c[P.phase] = phase;
  c[P.jobs] = jobs;
  c[P.chunk] = chunk;
  c[1] = 0;
  c[2] = 0;
  if (p) {
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
  }
  let failure: unknown;
  try {
    runJobs(k, c, 0, cv);
  } catch (e) {
    failure = e;
    Atomics.store(c, 1, 1 << 30); // the helpers take no further job
  }
  if (p) {
    for (let done = Atomics.load(c, 2); done < p.helpers.length; done = Atomics.load(c, 2)) Atomics.wait(c, 2, done, 1000);
    // A helper that failed leaves its flag set: the pool goes whatever else failed, so that no later job sees it.
    if (Atomics.load(c, FAILED)) {
      stopPool();
      failure ??= new Error('winograd: a helper thread failed during a convolution');
    }
  }
  if (failure) throw failure;
}

/**
 * y [D, n] = x [D, k] · w [k, n] (+ bias [n]) on the backend's memory, in shares of rows on this thread
 * and the helpers: the 4×8 register-tile product of the Winograd kernels (39–42 GFLOP/s a core against
 * XNNPACK's ~29 for these shapes). n a multiple of 4; the caller checked it.
 */
export function rowsMatMul(backend: object, x: TensorInfo, w: TensorInfo, d: number, kDim: number, n: number, outShape: number[], bias?: TensorInfo): TensorInfo {
  const b = backend as WasmBackendInternals;
  const memory = memoryOf(b);
  if (!memory) throw new Error('winograd: the wasm backend\'s memory is not reachable');
  const k = kernelsOn(memory);
  const p = d * kDim * n >= 1 << 22 ? poolFor(memory, k, threadCount()) : undefined;
  const out = b.makeOutput(outShape, 'float32');
  try {
    // Rows a share: a share's rows of x (R·k floats) stay in the second-level cache across w's panels.
    const rows = Math.max(16, Math.min(256, Math.floor(32768 / Math.max(kDim, 1)) & ~3));
    const c = p ? p.control : new Int32Array(CONTROL_INTS);
    const ptr = (t: TensorInfo) => addressOf(b, t);
    c[P.x] = ptr(x) | 0; c[P.tiles] = d; c[P.ci] = kDim; c[P.u] = ptr(w) | 0; c[P.y] = ptr(out) | 0; c[P.co] = n;
    c[P.band] = rows; c[P.bias] = bias ? ptr(bias) | 0 : 0;
    runPhase(k.exports, covarianceOn(memory).exports, c, p, 3, Math.ceil(d / rows), 0);
  } catch (e) {
    b.disposeData(out.dataId);
    throw e;
  }
  return out;
}

/**
 * photo/wasm/covariance.as.ts's centredGram of x [d, ch] (at `x` in the backend's memory) in shares of
 * rows, one a thread (this one and the helpers): each share's float64 scatter, sums and row buffer at
 * scratch + j·shareBytes (8·ch² + 8·ch + 4·block·ch bytes). Returns the number of shares; the caller
 * adds them up. One share where there are no helpers.
 */
export function centredGramShared(memory: WebAssembly.Memory, x: number, d: number, ch: number, mean: number, block: number, scratch: number, shareBytes: number, maxShares: number): number {
  const k = kernelsOn(memory);
  const p = d * ch * ch >= 1 << 22 ? poolFor(memory, k, threadCount()) : undefined;
  const shares = Math.max(1, Math.min(maxShares, p ? p.helpers.length + 1 : 1));
  const c = p ? p.control : new Int32Array(CONTROL_INTS);
  c[P.x] = x | 0; c[P.ci] = ch; c[P.tiles] = d; c[P.band] = Math.ceil(d / shares);
  c[P.scratch] = scratch | 0; c[P.slotBytes] = shareBytes | 0; c[P.bias] = mean | 0; c[P.relu] = block;
  runPhase(k.exports, covarianceOn(memory).exports, c, p, 2, Math.ceil(d / Math.ceil(d / shares)), 0);
  return Math.ceil(d / Math.ceil(d / shares));
}

function shapeOf(info: backend_util.Conv2DInfo): WinogradShape {
  return {
    batch: info.batchSize, h: info.inHeight, w: info.inWidth, ci: info.inChannels, co: info.outChannels,
    padTop: info.padInfo.top, padLeft: info.padInfo.left, ho: info.outHeight, wo: info.outWidth,
  };
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: object; attrs?: NamedAttrMap };

let stockConv2D: KernelConfig | undefined;

/** The Conv2D kernel: F(4×4, 3×3) where it covers the convolution, the stock (XNNPACK) kernel elsewhere. */
function conv2DKernel(args: KernelArgs): TensorInfo {
  const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
  const a = args.attrs as unknown as { strides: [number, number] | number; pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW'; dilations: [number, number] | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
  const info = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    a.strides, a.dilations, a.pad, a.dimRoundingMode, false, backend_util.convertConv2DDataFormat(a.dataFormat));
  if (x.dtype === 'float32' && winogradCovers(info)) return winogradConv2d(args.backend, x, filter, shapeOf(info));
  if (x.dtype === 'float32' && pointwiseCovers(info)) {
    return rowsMatMul(args.backend, x, filter, info.batchSize * info.inHeight * info.inWidth, info.inChannels, info.outChannels, [info.batchSize, info.outHeight, info.outWidth, info.outChannels]);
  }
  return (stockConv2D!.kernelFunc as KernelFunc)(args) as TensorInfo;
}

/** conv + bias (+ ReLU) in one kernel: the output transform adds the bias and clamps, one pass fewer each. */
const FUSED = 'StudioWinogradConv2DBiasRelu';

function fusedKernel(args: KernelArgs): TensorInfo {
  const { x, filter, bias } = args.inputs as { x: TensorInfo; filter: TensorInfo; bias: TensorInfo };
  const { pad, relu } = args.attrs as unknown as { pad: 'same' | 'valid' | 'reflect'; relu: boolean };
  const info = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], 1, 1, pad === 'reflect' ? 'same' : pad);
  return winogradConv2d(args.backend, x, filter, { ...shapeOf(info), reflect: pad === 'reflect' }, bias, relu);
}

/**
 * relu?(conv(x, filter, stride 1, pad) + bias) as one kernel where F(4×4, 3×3) covers it on the wasm
 * backend ('reflect': 'same' with the border reflected, as mirrorPad 'reflect' by 1 then 'valid', read in
 * place); undefined elsewhere (the caller runs its chain of ops). The bits equal the chain's on
 * F(4×4, 3×3): one rounding for the bias either way, and max(·, 0) is exact. The kernel has no
 * gradient: callers use it where no tape records (inside a custom gradient's forward, or outside tf.grad).
 */
export function fusedConv3x3(x: Tensor4D, filter: Tensor4D, bias: Tensor1D, pad: 'same' | 'valid' | 'reflect', relu: boolean): Tensor4D | undefined {
  if (!registered || getBackend() !== BACKEND || x.dtype !== 'float32') return undefined;
  // Reflection by one needs two rows and columns to reflect.
  if (pad === 'reflect' && (x.shape[1] < 2 || x.shape[2] < 2)) return undefined;
  // Never where a tape would record it (it has no gradient): inside a kernel's or custom gradient's forward, or outside tf.grad.
  if (tapeRecords()) return undefined;
  const info = backend_util.computeConv2DInfo(x.shape, filter.shape as [number, number, number, number], 1, 1, pad === 'reflect' ? 'same' : pad);
  if (!winogradCovers(info) || bias.shape[0] !== info.outChannels) return undefined;
  return engine().runKernel(FUSED, { x, filter, bias }, { pad, relu } as unknown as NamedAttrMap) as Tensor4D;
}

/** a [D, k] · b [k, n] + bias [n] as one kernel (the product by rows). */
const MATMUL_BIAS = 'StudioMatMulBias';

function matMulBiasKernel(args: KernelArgs): TensorInfo {
  const { a, b, bias } = args.inputs as { a: TensorInfo; b: TensorInfo; bias: TensorInfo };
  return rowsMatMul(args.backend, a, b, a.shape[0], a.shape[1], b.shape[1], [a.shape[0], b.shape[1]], bias);
}

/**
 * a · b + bias (a [D, k], b [k, n], bias [n]) by the product by rows on WebAssembly, in shares of rows on
 * the helper threads; undefined elsewhere, where n is not a multiple of 4, or where a tape would record
 * it (it has no gradient): the caller runs tf.fused.matMul. Within float32 rounding of it (the same sums,
 * started from the bias as XNNPACK's are; the order of the k terms the same).
 */
export function matMulBias(a: Tensor2D, b: Tensor2D, bias: Tensor1D): Tensor2D | undefined {
  if (!registered || getBackend() !== BACKEND || a.dtype !== 'float32' || b.dtype !== 'float32' || process.env.STUDIO_WINOGRAD === '0' || tapeRecords()) return undefined;
  const [, k] = a.shape, [k2, n] = b.shape;
  if (k !== k2 || n % 4 !== 0 || bias.shape[0] !== n || bias.dtype !== 'float32') return undefined;
  return engine().runKernel(MATMUL_BIAS, { a, b, bias }) as Tensor2D;
}

let registered = false;

/** Puts F(4×4, 3×3) in front of the wasm backend's Conv2D (idempotent; before or after its initialisation). */
export function registerWinogradConv2D(): void {
  if (registered) return;
  registerOwn(FUSED, fusedKernel as unknown as KernelFunc);
  registerOwn(MATMUL_BIAS, matMulBiasKernel as unknown as KernelFunc);
  stockConv2D = registerInFront(Conv2D, conv2DKernel as unknown as KernelFunc);
  if (stockConv2D == null) throw new Error('winograd: the wasm backend has no Conv2D kernel to fall back to');
  registered = true;
}
