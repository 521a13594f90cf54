/**
 * One training step of a PhotoWCT decoder, as one unit (forward, loss, gradients, update), wrapped by
 * a precision policy (precision.ts). The loss is the WCT paper's
 *   ‖I_o − I_i‖² + λ‖Φ(I_o) − Φ(I_i)‖²,  Φ = the level's encoder, λ = 1,
 * with both terms as means (per pixel and per feature value) so that λ weighs comparable magnitudes,
 * and both measured on the [0, 1] image scale (divided by 255²), as FastPhotoStyle trains in PyTorch:
 * the gradients then have the small magnitudes for which mixed precision's loss scaling was designed
 * (on the 0–255 scale they were 65025× larger, so fp16 never underflowed and a 2^16 loss scale only
 * overflowed). Adam's steps do not depend on the loss's units.
 *
 * Mixed precision (Micikevicius et al.): the decoder's tf.Variables are the FP32 master weights; the
 * forward and backward passes see them (and every activation and gradient) cast to fp16/bf16 by the
 * policy's hook; the loss and its sums stay float32; the loss is multiplied by the loss scale before
 * the backward pass and the gradients divided by it in float32; a step whose gradients hold Inf or NaN
 * is skipped, and the update otherwise goes to the master weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerCast, PhotoAutoencoder } from '../photo/autoencoder.ts';
import type { LossScaler, PrecisionPolicy } from './precision.ts';

export interface ReconstructionLoss {
  total: tf.Scalar;
  pixel: tf.Scalar;
  feature: tf.Scalar;
}

/** 255²: the loss is on the [0, 1] image scale while images and features are on the 0–255 one. */
const UNIT2 = 255 * 255;

/** The loss of reconstructing `batch` (RGB 0–255, [N,H,W,3]) through the level's encoder and decoder. */
export function reconstructionLoss(ae: PhotoAutoencoder, batch: tf.Tensor4D, lambda = 1, cast?: LayerCast): ReconstructionLoss {
  const { features, switches } = ae.encode(batch, cast);
  const out = ae.decode(features, switches, cast);
  // Reductions in float32 (REFERENCE §4): the means read the cast values but accumulate in float32.
  const pixel = tf.div(tf.mean(tf.squaredDifference(out, batch)), UNIT2) as tf.Scalar;
  const { features: fo, switches: so } = ae.encode(out, cast);
  const feature = tf.div(tf.mean(tf.squaredDifference(fo, features)), UNIT2) as tf.Scalar;
  for (const s of [...switches, ...so]) s.argmax.dispose();
  return { total: tf.add(pixel, tf.mul(feature, lambda)) as tf.Scalar, pixel, feature };
}

/** The loss of a batch without gradients (validation), in float32. */
export async function evaluateLoss(ae: PhotoAutoencoder, batch: tf.Tensor4D, lambda = 1): Promise<{ total: number; pixel: number; feature: number }> {
  const read = tf.tidy(() => {
    const l = reconstructionLoss(ae, batch, lambda);
    return tf.stack([l.total, l.pixel, l.feature]);
  });
  const [total, pixel, feature] = Array.from(await read.data());
  read.dispose();
  return { total, pixel, feature };
}

export interface StepValues {
  total: number;
  pixel: number;
  feature: number;
  /** The loss scale this step used. */
  lossScale: number;
  /** Whether the update was skipped (Inf/NaN in the gradients). */
  skipped: boolean;
  /** Weight-gradient values zero after the cast to the low-precision format (fp32: after an fp16 cast, as a measure). */
  zeroFraction: number;
  /** Weight-gradient values nonzero before that cast and zero after it: the underflow. */
  underflowFraction: number;
  /** Global norm of the unscaled float32 gradient (before clipping). */
  gradNorm: number;
  lr: number;
}

/** The decoder's trainable variables, in a fixed order (optimiser state is kept in the same order). */
export function decoderVariables(ae: PhotoAutoencoder): tf.Variable[] {
  return [...ae.dec.values()].flatMap((w) => [w.kernel, w.bias]);
}

export type OptimizerKind = 'adam' | 'sgd';

export interface OptimizerOptions {
  kind: OptimizerKind;
  /** SGD's momentum (0: plain SGD). */
  momentum: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** L2 weight decay: a·w is added to the gradient (REFERENCE §5). */
  weightDecay: number;
}

export const OPTIMIZER_DEFAULTS: OptimizerOptions = { kind: 'adam', momentum: 0.9, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };

/** Optimiser state: the count of applied updates and each variable's slots (Adam: m, v; SGD: velocity). */
export interface OptimizerState {
  t: number;
  slots: (tf.Tensor | undefined)[][];
}

/**
 * Adam or SGD with momentum over the FP32 master weights, with a state that can be saved and restored
 * exactly: Adam's bias correction is recomputed from t each step (never multiplied up), so a resumed
 * run takes bit-identical steps.
 */
export class DecoderOptimizer {
  readonly options: OptimizerOptions;
  private t = 0;
  private slots: (tf.Tensor | undefined)[][];

  constructor(private readonly vars: tf.Variable[], options: Partial<OptimizerOptions> = {}) {
    this.options = { ...OPTIMIZER_DEFAULTS, ...options };
    this.slots = vars.map(() => (this.options.kind === 'adam' ? [undefined, undefined] : [undefined]));
  }

  get steps(): number {
    return this.t;
  }

  /** Applies float32 gradients (already unscaled and clipped) with learning rate `lr`. */
  apply(grads: tf.Tensor[], lr: number): void {
    const o = this.options;
    this.t++;
    const t = this.t;
    this.vars.forEach((w, i) => {
      const s = this.slots[i];
      const [next, ...slots] = tf.tidy(() => {
        const g = o.weightDecay > 0 ? tf.add(grads[i], tf.mul(w, o.weightDecay)) : grads[i];
        if (o.kind === 'adam') {
          const m = s[0] ? tf.add(tf.mul(s[0], o.beta1), tf.mul(g, 1 - o.beta1)) : tf.mul(g, 1 - o.beta1);
          const v = s[1] ? tf.add(tf.mul(s[1], o.beta2), tf.mul(tf.square(g), 1 - o.beta2)) : tf.mul(tf.square(g), 1 - o.beta2);
          const stepSize = (lr * Math.sqrt(1 - o.beta2 ** t)) / (1 - o.beta1 ** t);
          return [tf.sub(w, tf.mul(stepSize, tf.div(m, tf.add(tf.sqrt(v), o.epsilon)))), m, v];
        }
        // SGD with momentum as PyTorch: velocity = μ·velocity + g; w −= lr·velocity.
        const vel = s[0] ? tf.add(tf.mul(s[0], o.momentum), g) : tf.clone(g);
        return [tf.sub(w, tf.mul(vel, lr)), vel];
      });
      w.assign(next);
      next.dispose();
      tf.dispose(s.filter((x): x is tf.Tensor => x !== undefined));
      this.slots[i] = slots;
    });
  }

  /** Copies of the state, to checkpoint. */
  state(): OptimizerState {
    return { t: this.t, slots: this.slots.map((s) => s.map((x) => x?.clone())) };
  }

  /** Restores a state from `state()` (or a checkpoint); takes ownership of the tensors. */
  restore(s: OptimizerState): void {
    this.dispose();
    this.t = s.t;
    this.slots = s.slots;
  }

  dispose(): void {
    for (const s of this.slots) tf.dispose(s.filter((x): x is tf.Tensor => x !== undefined));
    this.slots = this.vars.map(() => (this.options.kind === 'adam' ? [undefined, undefined] : [undefined]));
  }
}

export interface StepOptions {
  lambda: number;
  lr: number;
  policy: PrecisionPolicy;
  scaler: LossScaler;
  /** Clip the float32 gradient to this global norm (none: no clipping). */
  clipNorm?: number;
  /** Tests: replaces the unscaled gradients before the finiteness check (to inject an Inf). */
  injectGrads?: (grads: tf.Tensor[]) => tf.Tensor[];
}

/** Forward, loss, gradients of the decoder's weights, loss scaling and the optimiser's update (or a skip). */
export async function trainStep(ae: PhotoAutoencoder, optimizer: DecoderOptimizer, batch: tf.Tensor4D, o: StepOptions): Promise<StepValues> {
  const vars = decoderVariables(ae);
  o.policy.setMasterWeights(vars);
  const lossScale = o.scaler.scale;
  let parts: ReconstructionLoss | undefined;
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap = {};
  let unscaled: tf.Tensor[] = [];
  let read: tf.Tensor | undefined;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      const l = reconstructionLoss(ae, batch, o.lambda, o.policy.cast);
      parts = { total: tf.keep(l.total), pixel: tf.keep(l.pixel), feature: tf.keep(l.feature) };
      // The loss scale multiplies the float32 loss; its gradient carries it into the fp16 backward pass.
      return lossScale === 1 ? l.total : tf.mul(l.total, lossScale);
    }, vars));
    // Unscale in float32 (1/scale is a power of two for the dynamic scaler: exact).
    unscaled = tf.tidy(() => vars.map((v) => (lossScale === 1 ? tf.clone(grads[v.name]) : tf.div(grads[v.name], lossScale))));
    if (o.injectGrads) {
      const injected = o.injectGrads(unscaled);
      tf.dispose(unscaled.filter((g) => !injected.includes(g)));
      unscaled = injected;
    }
    read = tf.tidy(() => {
      const stats = o.policy.takeStats(vars.map((v) => grads[v.name]));
      const sq = tf.addN(unscaled.map((g) => tf.sum(tf.square(g))));
      // isFinite of the sum of squares: Inf or NaN anywhere makes it non-finite (float32 sums of a
      // finite gradient can overflow too, and such a step is as unusable).
      const finite = tf.cast(tf.isFinite(sq), 'float32');
      return tf.concat([tf.stack([parts!.total, parts!.pixel, parts!.feature, finite, tf.sqrt(sq)]), stats]);
    });
    const [total, pixel, feature, finite, gradNorm, zero, under, count] = Array.from(await read.data());
    const apply = o.scaler.update(finite === 1);
    if (apply) {
      let g = unscaled;
      if (o.clipNorm !== undefined && gradNorm > o.clipNorm) {
        const factor = o.clipNorm / gradNorm;
        g = unscaled.map((x) => tf.mul(x, factor));
        tf.dispose(unscaled);
        unscaled = g;
      }
      optimizer.apply(g, o.lr);
    }
    return {
      total, pixel, feature, lossScale, skipped: !apply, lr: o.lr, gradNorm,
      zeroFraction: count ? zero / count : 0, underflowFraction: count ? under / count : 0,
    };
  } finally {
    o.policy.clearStats();
    tf.dispose([...(read ? [read] : []), ...(value ? [value] : []), ...Object.values(grads), ...unscaled]);
    if (parts) tf.dispose([parts.total, parts.pixel, parts.feature]);
  }
}
