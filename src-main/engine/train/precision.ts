/**
 * Mixed-precision training (Micikevicius et al., REFERENCE §4) on TensorFlow.js, which has no float16
 * or bfloat16 tensors on any backend: the low-precision formats are emulated exactly inside float32.
 *
 * - `castTensor(x, format)` rounds every float32 value to the nearest value of the format (ties to
 *   even), keeps the format's subnormals, flushes what lies below them to ±0, turns what lies above its
 *   largest finite value into ±Inf, and keeps NaN, ±Inf and −0. It is a dozen plain float32 tensor ops
 *   (multiply, add, subtract, abs, maximum, compare, select), so it runs on every backend, and exact
 *   wherever float32 arithmetic rounds to nearest even as IEEE 754 requires (every tfjs backend here;
 *   the tests check it bit for bit against tensors/half.ts on each). A first version found the
 *   exponent by log2 and table look-ups; this one is 4× faster on WebAssembly (see roundCore).
 * - `castWithGrad` is the same cast with a custom gradient that casts the incoming gradient too: in the
 *   backward pass gradients pass through the format at every layer boundary, as they would in fp16.
 * - `PrecisionPolicy`: fp32 | mixed-fp16 | mixed-bf16. FP32 master weights (the tf.Variables) stay
 *   float32 and take the update; the forward and backward passes see them cast.
 * - `LossScaler`: static or dynamic loss scaling (PyTorch GradScaler's state machine).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerCast } from '../photo/autoencoder.ts';

export type Precision = 'fp32' | 'mixed-fp16' | 'mixed-bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'mixed-fp16', 'mixed-bf16'];

export interface HalfFormat {
  name: 'fp16' | 'bf16';
  /** Explicit mantissa bits. */
  mantissaBits: number;
  /** Exponent of the smallest normal number (below it: subnormals, quantum 2^(minExp − mantissaBits)). */
  minExp: number;
  /** Exponent of the largest finite numbers. */
  maxExp: number;
  /** Largest finite value; anything that rounds above it is ±Inf. */
  maxFinite: number;
}

export const FP16: HalfFormat = { name: 'fp16', mantissaBits: 10, minExp: -14, maxExp: 15, maxFinite: 65504 };
export const BF16: HalfFormat = { name: 'bf16', mantissaBits: 7, minExp: -126, maxExp: 127, maxFinite: (2 - 2 ** -7) * 2 ** 127 };

export function formatOf(p: Precision): HalfFormat | undefined {
  return p === 'mixed-fp16' ? FP16 : p === 'mixed-bf16' ? BF16 : undefined;
}

/**
 * Rounds finite x (|x| < 2^100) to the format with float32 arithmetic only, exactly:
 * - ufp(|x|), the power of two at or below |x| (Rump 2009, "unit in the first place"):
 *   q = φ·x with φ = 2^23 + 1, then |(1 − 2^-24)·q − q| = ufp(x), for round-to-nearest float32;
 * - the magic-number rounding: with M = 1.5·2^(23−m)·max(ufp, 2^minExp) the sum x + M lies in one
 *   binade whose spacing is exactly the format's quantum at x, so float32's own round-to-nearest-even
 *   rounds x there (M/quantum = 1.5·2^23 is even, so ties go to the even neighbour), and (x + M) − M
 *   is exact. Each step is a separate tfjs op, so no backend can fuse or reorder them.
 */
function roundCore(x: tf.Tensor, f: HalfFormat): tf.Tensor {
  const q = tf.mul(x, 2 ** 23 + 1);
  const d = tf.sub(tf.mul(q, 1 - 2 ** -24), q); // −sign(x)·ufp(x)
  // |d| as max(d, −d): WebAssembly's Abs is 5× slower than its Maximum and Multiply.
  const ufp = tf.maximum(d, tf.mul(d, -1));
  const M = tf.mul(tf.maximum(ufp, 2 ** f.minExp), 1.5 * 2 ** (23 - f.mantissaBits));
  return tf.sub(tf.add(x, M), M);
}

/** The float32 values of `x` rounded to the format, exactly (see the file's comment and roundCore). */
export function castTensor<T extends tf.Tensor>(x: T, f: HalfFormat): T {
  return tf.tidy(() => {
    let r: tf.Tensor;
    if (f.maxExp < 100) {
      r = roundCore(x, f);
    } else {
      // bf16's range: φ·x and M would overflow float32 above 2^100, so values of magnitude ≥ 1 are
      // rounded at 2^-64 their size (exact both ways: they stay far above the format's subnormals).
      const big = tf.cast(tf.greaterEqual(tf.square(x), 1), 'float32');
      const small = tf.sub(1, big);
      const down = tf.add(tf.mul(big, 2 ** -64), small);
      const up = tf.add(tf.mul(big, 2 ** 64), small);
      r = tf.mul(roundCore(tf.mul(x, down), f), up);
    }
    // A result of zero takes x's sign (x·0 is −0 for negative x and −0; x + M − M gives +0).
    const withZero = tf.where(tf.equal(r, 0), tf.mul(x, 0), r);
    // Beyond the largest finite value (the rounded value is then larger, or NaN where φ·x overflowed,
    // or x was ±Inf or NaN) the result is x·Inf: ±Inf, and NaN stays NaN.
    const finite = tf.logicalAnd(tf.lessEqual(r, f.maxFinite), tf.greaterEqual(r, -f.maxFinite));
    return tf.where(finite, withZero, tf.mul(x as tf.Tensor, Infinity)) as T;
  });
}

/** Counts of one backward cast, for the report: values zero after the cast, and of them nonzero before. */
export interface CastCounts {
  zero: tf.Scalar;
  underflow: tf.Scalar;
  total: number;
}

/**
 * `castTensor` with a custom gradient: the forward value is cast, and so is the incoming gradient
 * (straight through otherwise, as a real fp16 cast's gradient is the identity). `onGrad`, when given,
 * receives counts of the cast gradient (for the weight gradients' underflow statistics).
 */
export function castWithGrad<T extends tf.Tensor>(x: T, format: HalfFormat, onGrad?: (c: CastCounts) => void): T {
  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: castTensor(args[0] as tf.Tensor, format),
    gradFunc: (dy: tf.Tensor) => {
      const g = castTensor(dy, format);
      if (onGrad) {
        const zeroMask = tf.equal(g, 0);
        const zero = tf.keep(tf.sum(tf.cast(zeroMask, 'float32'))) as tf.Scalar;
        const underflow = tf.keep(tf.sum(tf.cast(tf.logicalAnd(zeroMask, tf.notEqual(dy, 0)), 'float32'))) as tf.Scalar;
        onGrad({ zero, underflow, total: dy.size });
      }
      return g;
    },
  }));
  return fn(x) as T;
}

/** Per-step gradient statistics, read back with the loss. */
export interface GradStats {
  /** Weight-gradient values that are zero after the cast to the format (for fp32: the fp16 cast is applied to measure). */
  zeroFraction: number;
  /** Of all weight-gradient values, the share that was nonzero in float32 and became zero in the format. */
  underflowFraction: number;
}

/**
 * A precision policy for one training run: the casts the autoencoder's layers apply (activations and
 * their gradients at every layer boundary, the weights and their gradients), and the format in which
 * the weight gradients' statistics are taken. Owns the casts of frozen weights it caches: dispose it.
 */
export class PrecisionPolicy {
  readonly precision: Precision;
  readonly format: HalfFormat | undefined;
  /** fp32 training has no cast; its statistics say what an fp16 cast would have done to its gradients. */
  readonly statFormat: HalfFormat;
  private counts: CastCounts[] = [];
  private readonly variableIds = new Set<number>();
  private readonly constants = new Map<number, tf.Tensor>();

  constructor(precision: Precision) {
    this.precision = precision;
    this.format = formatOf(precision);
    this.statFormat = this.format ?? FP16;
  }

  get mixed(): boolean {
    return this.format !== undefined;
  }

  /** The FP32 master weights: casts of these record their gradients' statistics. */
  setMasterWeights(vars: readonly tf.Variable[]): void {
    this.variableIds.clear();
    for (const v of vars) this.variableIds.add(v.id);
  }

  /**
   * The autoencoder's hook: identity for fp32, otherwise the cast with its gradient cast too. Weights
   * that are not master weights (the frozen encoder's) are cast once and kept until dispose.
   */
  readonly cast: LayerCast = <T extends tf.Tensor>(t: T, kind?: 'weight' | 'activation'): T => {
    if (!this.format) return t;
    const master = this.variableIds.has(t.id);
    if (kind === 'weight' && !master) {
      let c = this.constants.get(t.id);
      if (!c) {
        c = tf.keep(castTensor(t, this.format));
        this.constants.set(t.id, c);
      }
      return c as T;
    }
    return castWithGrad(t, this.format, master ? (c: CastCounts) => this.counts.push(c) : undefined);
  };

  /**
   * Weight-gradient statistics of the step that just ran, as tensors [zero, underflow, total] (the
   * caller reads them with its other scalars). For fp32, counts are taken by casting its gradients to fp16.
   */
  takeStats(grads: readonly tf.Tensor[]): tf.Tensor1D {
    return tf.tidy(() => {
      if (this.mixed) {
        const c = this.counts;
        this.counts = [];
        const total = c.reduce((s, x) => s + x.total, 0);
        const zero = c.length ? tf.addN(c.map((x) => x.zero)) : tf.scalar(0);
        const under = c.length ? tf.addN(c.map((x) => x.underflow)) : tf.scalar(0);
        tf.dispose(c.flatMap((x) => [x.zero, x.underflow]));
        return tf.stack([zero, under, tf.scalar(total)]) as tf.Tensor1D;
      }
      let zero: tf.Scalar = tf.scalar(0);
      let under: tf.Scalar = tf.scalar(0);
      let total = 0;
      for (const g of grads) {
        const z = tf.equal(castTensor(g, this.statFormat), 0);
        zero = tf.add(zero, tf.sum(tf.cast(z, 'float32')));
        under = tf.add(under, tf.sum(tf.cast(tf.logicalAnd(z, tf.notEqual(g, 0)), 'float32')));
        total += g.size;
      }
      return tf.stack([zero, under, tf.scalar(total)]) as tf.Tensor1D;
    });
  }

  /** Drops statistics of a step that failed half-way. */
  clearStats(): void {
    tf.dispose(this.counts.flatMap((x) => [x.zero, x.underflow]));
    this.counts = [];
  }

  dispose(): void {
    this.clearStats();
    tf.dispose([...this.constants.values()]);
    this.constants.clear();
  }
}

export interface LossScaleOptions {
  /** 'dynamic' (default for mixed precision), or a fixed scale ('static'); fp32 uses static 1. */
  mode: 'dynamic' | 'static';
  /** The static scale, or the dynamic scaler's initial one (2^16). */
  scale: number;
  /** ×growthFactor after growthInterval clean steps in a row (2, 2000). */
  growthFactor: number;
  growthInterval: number;
  /** ×backoffFactor on a step whose gradients hold Inf or NaN (0.5). */
  backoffFactor: number;
}

export const DYNAMIC_DEFAULTS: LossScaleOptions = { mode: 'dynamic', scale: 2 ** 16, growthFactor: 2, growthInterval: 2000, backoffFactor: 0.5 };

export interface LossScaleState {
  scale: number;
  /** Clean (finite-gradient) steps since the last change of scale. */
  cleanSteps: number;
}

/**
 * Loss scaling: the loss is multiplied by `scale` before the backward pass so that small gradients
 * stay representable in the low-precision format, and the gradients are divided by it (in float32)
 * before the update. A step whose gradients hold Inf or NaN is skipped; the dynamic scaler then halves
 * the scale, and doubles it after `growthInterval` clean steps in a row (PyTorch's GradScaler).
 */
export class LossScaler {
  readonly options: LossScaleOptions;
  private s: LossScaleState;

  constructor(options: LossScaleOptions, state?: LossScaleState) {
    this.options = options;
    this.s = state ? { ...state } : { scale: options.scale, cleanSteps: 0 };
  }

  get scale(): number {
    return this.s.scale;
  }

  /** Records a step's outcome; returns whether its update is to be applied. */
  update(finite: boolean): boolean {
    const o = this.options;
    if (!finite) {
      if (o.mode === 'dynamic') this.s.scale *= o.backoffFactor;
      this.s.cleanSteps = 0;
      return false;
    }
    this.s.cleanSteps++;
    if (o.mode === 'dynamic' && this.s.cleanSteps >= o.growthInterval) {
      const grown = this.s.scale * o.growthFactor;
      if (Number.isFinite(grown)) this.s.scale = grown;
      this.s.cleanSteps = 0;
    }
    return true;
  }

  state(): LossScaleState {
    return { ...this.s };
  }
}
