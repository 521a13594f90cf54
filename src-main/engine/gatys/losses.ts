/**
 * The losses of Gatys et al. (REFERENCE.md §2) as pure tensor functions.
 *
 * Feature maps arrive as [1,H,W,N] (N filters, D = H·W positions); the papers' F ∈ R^{N×D} is its
 * transpose. Every normalisation is neural-style's (jcjohnson/neural-style, the anchor), so that its
 * published default weights (content 5, style 100, TV 1e-3) keep their balance:
 *  - content: mean((F − P)²) over N·D values (nn.MSECriterion);
 *  - style: Grams divided by N·D, then mean((G − A)²) over N² values;
 *  - TV: ½·Σ(dx² + dy²) over the image without its last row and column (the gradient its TVLoss
 *    module writes; it has no forward value there, this is the loss whose gradient that is).
 * REFERENCE §2's 1/2 factors on content and style are not used: at the same weights they made TV
 * pull twice as hard as in neural-style.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gramInPlace, inPlaceKernelsAvailable } from '../photo/covariance-wasm.ts';

/**
 * Gram matrix F Fᵀ (N×N, unnormalised) of a [1,H,W,N] feature map, whose positions × channels
 * matrix is Fᵀ. Measured choices:
 *  - forward on WebAssembly: in place on the backend's memory (photo/covariance-wasm.ts: one triangle,
 *    float64 across row blocks, no transpose of the [D, N] matrix; else transpose, then matmul, as
 *    matmul with transposeA is 8–40× slower there); elsewhere matmul with transposeA (fastest on WebGPU, and WebGPU's 2-D transpose dispatches
 *    D/16 workgroups on one axis, over its 65535 limit past about a megapixel);
 *  - backward dF = F·(dG + dGᵀ) as a 1×1 convolution, which spreads the work over the image's two
 *    axes on every backend (a [D,N] matmul output hits the same WebGPU limit).
 */
export const gram: (f: tf.Tensor4D) => tf.Tensor2D = tf.customGrad(((f: tf.Tensor, save: tf.GradSaveFunc) => {
  const F = f as tf.Tensor4D;
  const [, h, w, n] = F.shape;
  save([F]);
  const m = tf.reshape(F, [h * w, n]);
  return {
    value: tf.getBackend() === 'wasm' ? (inPlaceKernelsAvailable() ? gramInPlace(m as tf.Tensor2D) : tf.matMul(tf.transpose(m), m)) : tf.matMul(m, m, true, false),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [Fs] = saved as [tf.Tensor4D];
      const dG = dy as tf.Tensor2D;
      return tf.conv2d(Fs, tf.reshape(tf.add(dG, tf.transpose(dG)), [1, 1, n, n]) as tf.Tensor4D, 1, 'valid');
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (f: tf.Tensor4D) => tf.Tensor2D;

/** G / (N·D) of a [1,H,W,N] feature map. */
export function normalizedGram(f: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const [, h, w, n] = f.shape;
    return tf.div(gram(f), n * h * w);
  });
}

/**
 * Σ of all values of `t` as a sum of row sums (rows of `cols` values). tfjs-wasm reduces a whole tensor
 * in one float32 running sum, which loses ~1e-4 relative on the losses' sizes (measured: 512² values
 * 4e-5, 4096×512 1.2e-3, 256²×64 3e-3; by rows 2.5e-7, 1.3e-6, 2.7e-6); cpu and webgpu are accurate
 * either way. Only the loss values change: the gradient of a sum is the same either way.
 */
function sumByRows(t: tf.Tensor, cols: number): tf.Scalar {
  return tf.sum(tf.sum(tf.reshape(t, [-1, cols]), 1));
}

/** L_c = 1/(N·D) · Σ (F[x] − F[c])² (neural-style's ContentLoss: an MSE). */
export function contentLoss(fx: tf.Tensor4D, fc: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => tf.div(sumByRows(tf.squaredDifference(fx, fc), fx.shape[3]), fx.size) as tf.Scalar);
}

/** L_s = 1/N² · Σ (G[x] − G[s])² on normalised Grams (neural-style's StyleLoss: an MSE). */
export function styleLoss(gx: tf.Tensor2D, gs: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.div(sumByRows(tf.squaredDifference(gx, gs), gx.shape[1]), gx.size) as tf.Scalar);
}

/**
 * neural-style's total variation on [1,H,W,C]: ½·Σ over i < H−1, j < W−1 and all channels of
 * (x[i,j] − x[i,j+1])² + (x[i,j] − x[i+1,j])². Its TVLoss takes both differences from the same
 * (H−1)×(W−1) corner, so the last row's horizontal and the last column's vertical steps are not counted.
 */
export function tvLoss(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [, h, w, c] = x.shape;
    if (h < 2 || w < 2) return tf.scalar(0);
    // As rows of w·c values: the same slices in two dimensions, which tfjs-wasm copies a row at a time
    // (in four it copies c = 3 values at a time: 27 ms a slice at 512², against 1 ms).
    const rows = tf.reshape(x, [h, w * c]);
    const cols = (w - 1) * c;
    const corner = tf.slice(rows, [0, 0], [h - 1, cols]);
    const dx = tf.sub(corner, tf.slice(rows, [0, c], [h - 1, cols]));
    const dy = tf.sub(corner, tf.slice(rows, [1, 0], [h - 1, cols]));
    return tf.mul(0.5, tf.add(sumByRows(tf.square(dx), cols), sumByRows(tf.square(dy), cols)));
  });
}

/** Weighted Gram blend of several styles (neural-style's multi-style target). */
export function blendGrams(grams: tf.Tensor2D[], weights: number[]): tf.Tensor2D {
  return tf.tidy(() => tf.addN(grams.map((g, i) => tf.mul(g, weights[i]))) as tf.Tensor2D);
}

export interface LossTargets {
  /** Content features per content layer. */
  content: Map<string, tf.Tensor4D>;
  /** Blended normalised Grams per style layer. */
  style: Map<string, tf.Tensor2D>;
}

export interface LossWeights {
  content: number;
  style: number;
  tv: number;
  /** Per-layer multipliers w_ℓ; missing layers weigh 1. */
  contentLayers: Map<string, number>;
  styleLayers: Map<string, number>;
}

/** Each part already carries its weight, so total = content + style + tv. */
export interface LossParts {
  content: tf.Scalar;
  style: tf.Scalar;
  tv: tf.Scalar;
  total: tf.Scalar;
}

/** L = α Σ_ℓ L_c^ℓ + β Σ_ℓ w_ℓ L_s^ℓ + tv·L_tv, given the features of x. */
export function totalLoss(x: tf.Tensor4D, feats: Map<string, tf.Tensor4D>, targets: LossTargets, w: LossWeights): LossParts {
  const sum = (terms: tf.Scalar[]): tf.Scalar => (terms.length ? (tf.addN(terms) as tf.Scalar) : tf.scalar(0));
  const content = tf.mul(w.content, sum([...targets.content].map(([name, fc]) =>
    tf.mul(contentLoss(feats.get(name)!, fc), w.contentLayers.get(name) ?? 1)))) as tf.Scalar;
  const style = tf.mul(w.style, sum([...targets.style].map(([name, gs]) =>
    tf.mul(styleLoss(normalizedGram(feats.get(name)!), gs), w.styleLayers.get(name) ?? 1)))) as tf.Scalar;
  const tv = w.tv > 0 ? tf.mul(w.tv, tvLoss(x)) as tf.Scalar : tf.scalar(0);
  const total = tf.addN([content, style, tv]) as tf.Scalar;
  return { content, style, tv, total };
}
