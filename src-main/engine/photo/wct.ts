/**
 * Whitening and colouring transform (Li et al., "Universal style transfer via feature transforms";
 * REFERENCE.md §3), as pure functions on feature maps.
 *
 * Features arrive as [1,H,W,C]; the paper's f ∈ R^{C×HW} is the transpose of the [HW,C] matrix X we
 * work on, so every "M f" of the paper is "X M" here (M symmetric). With X̄ = mean-centred X:
 *   cov_c = X̄cᵀX̄c/(HWc − 1) + λI,   cov_s = X̄sᵀX̄s/(HWs − 1)
 *   f_cs  = X̄c · cov_c^{-1/2} · cov_s^{1/2} + mean_s        (eigenvalues below the cut-off dropped)
 *   out   = α·f_cs + (1 − α)·Xc
 *
 * The +λI regulariser and the cut-off, across feature scales. The reference adds +I and drops
 * eigenvalues below 1e-5 on features of the Caffe/Keras VGG, whose input is 0–255. Both are absolute
 * numbers, so their effect depends on the features' scale: the output covariance is
 * cov_s^{1/2}(I − λ·cov_c^{-1})cov_s^{1/2}, off by about λ/(content eigenvalue). On Caffe-scale features
 * (channel variances of 10³–10⁵) +I costs ~1e-4; on torchvision-scale features (input ~0–1 ÷ std,
 * variances 0.1–0.5) the same +I leaves 0.2–0.6 error (REFERENCE §3). We therefore express both in
 * a "reference unit" u², the variance that 1 represents on the reference's scale:
 *   λ = u²,  cut-off = 1e-5·u².
 *  - With `featureScale` s (the model's feature units per Caffe feature unit: 1 for Caffe/Keras
 *    weights, 1/(255·mean std) ≈ 0.0173 for torchvision; `featureScaleOf(preprocessing)` computes it),
 *    u² = s²: exactly the reference's numbers on its own scale, the same relative regulariser on others
 *    (ReLU networks are positively homogeneous up to biases).
 *  - Without it (auto), u² = min(1, 1e-4 · mean eigenvalue of the content covariance): the reference's
 *    +I whenever the content's mean channel variance is ≥ 10⁴ (Caffe scale, where +I is ≤ 1e-4 of it),
 *    and otherwise a regulariser that shrinks with the features, so its relative effect never exceeds
 *    1e-4 of the mean eigenvalue — on any preprocessing. It still keeps cov_c's condition number below
 *    ~10⁴·C, which float32 whitening needs.
 * The cut-off matters for the style covariance only (the content's eigenvalues are ≥ λ = 10⁵·cut-off).
 *
 * Square roots: ./matrix-sqrt.ts. 'auto' picks, per matrix:
 *  - on the CPU backends ('cpu', 'wasm'), the float64 eigen-solver (./eigen.ts, in WebAssembly): one
 *    square-root pair at C = 512 takes 0.12–0.14 s there against 0.18–0.23 s by Newton–Schulz (8–11
 *    steps of three 512³ products), and a Newton–Schulz attempt that fails (a rank-deficient style)
 *    costs 0.47 s before the eigen path runs anyway; the whole WCT on 64×64×512 features 0.48 s against
 *    0.70 s (bench/wct.ts, 2 cores). Before the solver moved to WebAssembly (0.45–0.9 s at 512) this
 *    was the other way round on 'wasm';
 *  - on GPUs Newton–Schulz, verified, falling back to eigen (products are cheap there, read-backs
 *    are not) — except for a style covariance known to be rank-deficient (fewer than C + 1 style
 *    pixels), which goes straight to eigen.
 *
 * The Gram products XᵀX use transpose-then-matmul on WebAssembly (matmul with transposeA is ~20×
 * slower there) and transposeA elsewhere. All intermediate tensors are disposed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { featureScaleOf } from '../models/format.ts';
import { matMulBias } from '../kernels/winograd.ts';

export { featureScaleOf };
import { centreInPlace, featureStatsInPlace, inPlaceKernelsAvailable } from './covariance-wasm.ts';
import { matrixRoot, type RootResult, type SqrtMethod } from './matrix-sqrt.ts';

export interface WctOptions {
  /** Stylisation strength: α·f_cs + (1 − α)·f_c. Default 1. */
  alpha?: number;
  /** The features' scale relative to the Caffe/Keras VGG's (see the header); default: automatic. */
  featureScale?: number;
  /** How to take the matrix square roots; default 'auto' (see the header). */
  method?: 'auto' | SqrtMethod;
}

export interface SqrtInfo {
  method: SqrtMethod;
  iterations: number;
  /** Eigenvalues dropped by the cut-off. */
  dropped: number;
  fallbackReason?: string;
}

export interface WctResult {
  out: tf.Tensor4D;
  /** ‖cov(f_cs) − cov(f_s)‖_F / ‖cov(f_s)‖_F of the transformed features, before the α blend. */
  covError: number;
  /** ‖mean(f_cs) − mean(f_s)‖ / ‖mean(f_s)‖ (absolute when the style mean is 0). */
  meanError: number;
  /** λ added to the content covariance (the reference's +I, rescaled). */
  regularizer: number;
  /** Eigenvalues below this were dropped. */
  cutoff: number;
  whitening: SqrtInfo;
  coloring: SqrtInfo;
}

/** Backends whose matrix square roots go to the eigen-solver in 'auto' (see the header). */
const CPU_BACKENDS = new Set(['cpu', 'wasm']);

/** The default cut-off of REFERENCE §3, on the reference's scale. */
export const REFERENCE_CUTOFF = 1e-5;
/** Auto scale: the regulariser is at most this fraction of the content's mean eigenvalue. */
export const AUTO_REGULARIZER_FRACTION = 1e-4;

/**
 * On WebAssembly, XᵀX of [D,C] with C ≤ this is summed over blocks of rows (see gramT). Above it the
 * batched product runs 8–15× slower there than one XNNPACK product (C = 256, 512), and D, the sum's
 * length, is 4–16× shorter at the levels that have such widths.
 */
const BLOCKED_GRAM_MAX_CHANNELS = 128;
/** Most values in the blocked product's [q,C,C] partial sums. */
const BLOCKED_GRAM_MAX_VALUES = 1 << 22;

/**
 * XᵀX of [D,C] — see the header for the per-backend formulation. On WebAssembly, XNNPACK accumulates
 * the whole length-D sum in one float32 register: for ReLU features of 10240×64 (relu1_1 of 128×80) the
 * covariance was off by 4e-5 relative (40960×64: 1.4e-4, 262144×64: 4e-4), which the whitening
 * amplifies: a level-1 PhotoWCT result then had 12% of its 8-bit values one level off FastPhotoStyle's
 * float64 result (test/engine/parity/photowct.test.ts). For C ≤ 128 it sums q ≈ √D blocks of rows
 * instead (zero rows pad the last): errors 2.6e-7 to 4.2e-7, at 0.8–1.9× the time of the plain product.
 */
export function gramT(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    if (tf.getBackend() !== 'wasm') return tf.matMul(x, x, true, false);
    const [d, c] = x.shape;
    const q = Math.min(Math.ceil(Math.sqrt(d)), Math.floor(BLOCKED_GRAM_MAX_VALUES / (c * c)));
    if (c > BLOCKED_GRAM_MAX_CHANNELS || q < 2) return tf.matMul(tf.transpose(x), x);
    const rows = Math.ceil(d / q);
    const blocks = tf.reshape(rows * q > d ? tf.pad(x, [[0, rows * q - d], [0, 0]]) : x, [q, rows, c]) as tf.Tensor3D;
    return tf.sum(tf.matMul(tf.transpose(blocks, [0, 2, 1]), blocks), 0) as tf.Tensor2D;
  });
}

export function checkFeatures(t: tf.Tensor, what: string): [number, number, number] {
  if (!(t instanceof tf.Tensor) || t.rank !== 4 || t.shape[0] !== 1) {
    throw new StudioError('BAD_ARGUMENT', `WCT: ${what} features must be a [1,H,W,C] tensor, got shape [${(t as tf.Tensor)?.shape?.join(',') ?? typeof t}]`);
  }
  if (t.dtype !== 'float32') throw new StudioError('BAD_ARGUMENT', `WCT: ${what} features must be float32, got ${t.dtype}`);
  const [, h, w, c] = t.shape as [number, number, number, number];
  if (h * w < 2) throw new StudioError('BAD_ARGUMENT', `WCT: ${what} features need at least 2 positions for a covariance, got ${h}×${w}`);
  return [h, w, c];
}

export function checkOptions(opts: WctOptions): { alpha: number; featureScale?: number; method: 'auto' | SqrtMethod } {
  const alpha = opts.alpha ?? 1;
  if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1) throw new StudioError('BAD_ARGUMENT', `WCT: alpha must be in [0, 1], got ${opts.alpha}`);
  const fs = opts.featureScale;
  if (fs !== undefined && !(Number.isFinite(fs) && fs > 0)) throw new StudioError('BAD_ARGUMENT', `WCT: featureScale must be a positive number, got ${fs}`);
  const method = opts.method ?? 'auto';
  if (!['auto', 'eigen', 'newton-schulz'].includes(method)) throw new StudioError('BAD_ARGUMENT', `WCT: unknown method "${method}"`);
  return { alpha, featureScale: fs, method };
}

/**
 * The reference unit u² (see the header) for content features X [D,C]: featureScale², or
 * min(1, 1e-4·trace(cov_c)/C). One scalar read-back in the automatic case.
 */
export async function referenceUnit(x: tf.Tensor2D, featureScale?: number): Promise<number> {
  if (featureScale !== undefined) return featureScale * featureScale;
  const [d, c] = x.shape;
  let meanEig: number;
  if (inPlaceKernelsAvailable()) {
    meanEig = traceOf(featureStatsInPlace(x).scatter, c) / (d - 1) / c;
  } else {
    // trace(cov) = Σ per-channel variances.
    const v = tf.tidy(() => tf.mul(tf.div(tf.sum(tf.moments(x, 0).variance), c), d / (d - 1)));
    meanEig = (await v.data())[0];
    v.dispose();
  }
  return unitFromMeanEigenvalue(meanEig);
}

function traceOf(m: ArrayLike<number>, c: number): number {
  let t = 0;
  for (let i = 0; i < c; i++) t += m[i * c + i];
  return t;
}

function unitFromMeanEigenvalue(meanEig: number): number {
  const u2 = Math.min(1, AUTO_REGULARIZER_FRACTION * meanEig);
  return u2 > 0 && Number.isFinite(u2) ? u2 : 1; // constant content: nothing to whiten, any λ will do
}

/**
 * Mean [1,C], covariance Σ/(D − 1) [C,C] and the centred features of x [D,C], and the mean of the
 * centred features (~0; the report's mean error). On WebAssembly by covariance-wasm.ts's in-place
 * passes (two reads of x, one write), elsewhere by tensor ops.
 */
function moments2d(x: tf.Tensor2D, centred: boolean): { mean: tf.Tensor2D; cov: tf.Tensor2D; xcc?: tf.Tensor2D; centredMean: tf.Tensor2D } {
  const [d, c] = x.shape;
  if (inPlaceKernelsAvailable()) {
    const st = featureStatsInPlace(x);
    const out = {
      mean: tf.tensor2d(Float32Array.from(st.mean), [1, c]),
      cov: tf.tensor2d(Float32Array.from(st.scatter, (v) => v / (d - 1)), [c, c]),
      centredMean: tf.tensor2d(Float32Array.from(st.centredSum, (v) => v / d), [1, c]),
    };
    return centred ? { ...out, xcc: centreInPlace(x, st.mean) } : out;
  }
  return tf.tidy(() => {
    const mean = tf.mean(x, 0, true) as tf.Tensor2D;
    const xcc = tf.sub(x, mean) as tf.Tensor2D;
    const cov = tf.div(gramT(xcc), d - 1) as tf.Tensor2D;
    const centredMean = tf.mean(xcc, 0, true) as tf.Tensor2D;
    return centred ? { mean, cov, xcc, centredMean } : { mean, cov, centredMean };
  });
}

const info = (r: Omit<RootResult, 'root'>): SqrtInfo => ({ method: r.method, iterations: r.iterations, dropped: r.dropped, ...(r.fallbackReason ? { fallbackReason: r.fallbackReason } : {}) });

export interface Wct2dResult extends Omit<WctResult, 'out'> {
  out: tf.Tensor2D;
}

/**
 * What WCT needs of the style, and all it needs: its mean, covariance and (per cut-off) the
 * covariance's square root, as plain arrays. A batch computes these once per style and level and
 * hands them to every file (REFERENCE §3's style side does not depend on the content, except the
 * cut-off through the regulariser's unit, hence one square root per cut-off seen).
 */
export interface StyleStats {
  /** Style positions (pixels at this level). */
  ds: number;
  channels: number;
  mean: Float32Array;
  cov: Float32Array;
  color: Map<number, { sqrt: Float32Array; info: SqrtInfo }>;
}

/** The style statistics WCT needs, from style features [1,H,W,C] (what `cache.stats` holds). */
export async function styleStatsOf(fs: tf.Tensor4D): Promise<StyleStats> {
  const [h, w, c] = checkFeatures(fs, 'style');
  const xs = tf.reshape(fs, [h * w, c]) as tf.Tensor2D;
  const m = moments2d(xs, false);
  try {
    return { ds: h * w, channels: c, mean: (await m.mean.data()) as Float32Array, cov: (await m.cov.data()) as Float32Array, color: new Map() };
  } finally {
    tf.dispose([xs, m.mean, m.cov, m.centredMean]);
  }
}

/**
 * WCT on [D,C] matrices (positions × channels), given the reference unit u² ('auto': from this
 * content's covariance, as referenceUnit). The building block of `wct` and of the per-label transform.
 * The style is its features, or their cached statistics (`style.stats`), which are filled in when
 * given empty so that the next call can skip the style.
 */
export async function wct2d(
  xc: tf.Tensor2D, xs: tf.Tensor2D | null, unit: number | 'auto', alpha: number, method: 'auto' | SqrtMethod, cache?: { stats?: StyleStats },
): Promise<Wct2dResult> {
  const c = xc.shape[1];
  const cached = cache?.stats;
  if (!xs && !cached) throw new StudioError('INTERNAL', 'WCT needs the style features or their statistics');
  if (cached && cached.channels !== c) throw new StudioError('BAD_ARGUMENT', `WCT: the cached style statistics have ${cached.channels} channels, the content ${c}`);
  const ds = cached ? cached.ds : xs!.shape[0];

  const keep: tf.Tensor[] = [];
  try {
    const content = moments2d(xc, true);
    const { cov: covRawC, centredMean } = content;
    const xcc = content.xcc!;
    keep.push(content.mean, covRawC, xcc, centredMean);
    const u2 = unit === 'auto' ? unitFromMeanEigenvalue(traceOf(await covRawC.data(), c) / c) : unit;
    const regularizer = u2;
    const cutoff = REFERENCE_CUTOFF * u2;
    const pick = (rankDeficient: boolean): 'auto' | SqrtMethod =>
      method !== 'auto' ? method : CPU_BACKENDS.has(tf.getBackend()) || rankDeficient ? 'eigen' : 'auto';
    const covC = tf.tidy(() => tf.add(covRawC, tf.mul(tf.eye(c), regularizer)) as tf.Tensor2D);
    keep.push(covC);
    let meanS: tf.Tensor2D;
    let covS: tf.Tensor2D;
    if (cached) {
      [meanS, covS] = [tf.tensor2d(cached.mean, [1, c]), tf.tensor2d(cached.cov, [c, c])];
    } else {
      const style = moments2d(xs!, false);
      style.centredMean.dispose();
      [meanS, covS] = [style.mean, style.cov];
    }
    keep.push(meanS, covS);

    // The style's square root (unless cached) on the eigen-solver's helper thread while this one takes
    // the content's: the two are independent.
    const hit = cached?.color.get(cutoff);
    // Whitening needs only the content's cov^−½, colouring only the style's cov^½.
    const colorPending = hit ? undefined : matrixRoot(covS, 'sqrt', { method: pick(ds - 1 < c), cutoff, background: true });
    // Handled now (it is awaited, and its error thrown, below): a rejection that came while the content's
    // root still awaited a GPU read-back would otherwise be an unhandled rejection.
    colorPending?.catch(() => {});
    let white: RootResult;
    try {
      white = await matrixRoot(covC, 'invSqrt', { method: pick(false), cutoff });
    } catch (e) {
      // Nothing may be left behind: the style's result is released once it comes.
      void colorPending?.then((r) => r.root.dispose(), () => {});
      throw e;
    }
    keep.push(white.root);
    let colorSqrt: tf.Tensor2D;
    let colorInfo: SqrtInfo;
    if (hit) {
      colorSqrt = tf.tensor2d(hit.sqrt, [c, c]);
      colorInfo = hit.info;
      keep.push(colorSqrt);
    } else {
      const color = await colorPending!;
      keep.push(color.root);
      colorSqrt = color.root;
      colorInfo = info(color);
      if (cache) {
        const stats = cache.stats ?? (cache.stats = {
          ds, channels: c, mean: (await meanS.data()) as Float32Array, cov: (await covS.data()) as Float32Array, color: new Map(),
        });
        stats.color.set(cutoff, { sqrt: (await color.root.data()) as Float32Array, info: colorInfo });
      }
    }

    const [out, errors] = tf.tidy(() => {
      const m = tf.matMul(white.root, colorSqrt) as tf.Tensor2D;
      // X̄c·M + mean_s as one product with a bias (one pass over the D×C output). The bias must be a
      // rank-1 tensor of its own on WebAssembly (a reshape keeps its buffer's recorded shape): an op, not a view.
      const bias = tf.add(tf.reshape(meanS, [c]), 0) as tf.Tensor1D;
      // On WebAssembly the product by rows of the convolution kernels, on both threads (kernels/winograd.ts).
      const fcs = (matMulBias(xcc, m, bias) ?? tf.fused.matMul({ a: xcc, b: m, bias })) as tf.Tensor2D;
      // The output's covariance and mean from M instead of from the D×C output (a D·C² product and a
      // pass over it saved): centredᵀcentred/(dc − 1) = Mᵀ·covRawC·M, mean(fcs) = mean(xcc)·M + meanS.
      // (An explicit transpose: matMul with transposeA is far slower on WebAssembly.)
      const covOut = tf.matMul(tf.matMul(tf.transpose(m), covRawC), m);
      const covErr = tf.div(tf.norm(tf.sub(covOut, covS)), tf.maximum(tf.norm(covS), 1e-30));
      const meanOut = tf.add(tf.matMul(centredMean, m), meanS);
      const meanNorm = tf.norm(meanS);
      const meanErr = tf.div(tf.norm(tf.sub(meanOut, meanS)), tf.where(tf.greater(meanNorm, 0), meanNorm, tf.onesLike(meanNorm)));
      const blended = alpha === 1 ? fcs : tf.add(tf.mul(fcs, alpha), tf.mul(xc, 1 - alpha));
      return [blended as tf.Tensor2D, tf.stack([covErr, meanErr])] as const;
    });
    const [covError, meanError] = await errors.data();
    errors.dispose();
    return { out, covError, meanError, regularizer, cutoff, whitening: info(white), coloring: colorInfo };
  } finally {
    tf.dispose(keep);
  }
}

/**
 * WCT of content features `fc` [1,H,W,C] towards style features `fs` [1,H',W',C] (any size):
 * REFERENCE §3 with the scale-aware regulariser of the header. The caller owns `out`. With `cache`,
 * the style's statistics are taken from it (fs may then be null) or stored in it.
 */
export async function wct(fc: tf.Tensor4D, fs: tf.Tensor4D | null, opts: WctOptions = {}, cache?: { stats?: StyleStats }): Promise<WctResult> {
  const [hc, wc, c] = checkFeatures(fc, 'content');
  const styleShape = fs ? checkFeatures(fs, 'style') : undefined;
  if (styleShape && styleShape[2] !== c) throw new StudioError('BAD_ARGUMENT', `WCT: content and style features have different channel counts (${c} and ${styleShape[2]})`);
  const o = checkOptions(opts);
  // Every check is done: from here on, what is made is released in `finally`.
  const xs = fs && styleShape ? tf.reshape(fs, [styleShape[0] * styleShape[1], c]) as tf.Tensor2D : null;
  const xc = tf.reshape(fc, [hc * wc, c]) as tf.Tensor2D;
  try {
    const r = await wct2d(xc, xs, o.featureScale === undefined ? 'auto' : o.featureScale * o.featureScale, o.alpha, o.method, cache);
    const out = tf.reshape(r.out, [1, hc, wc, c]) as tf.Tensor4D;
    r.out.dispose();
    return { ...r, out };
  } finally {
    tf.dispose(xs ? [xc, xs] : [xc]);
  }
}
