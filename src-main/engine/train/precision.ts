/**
 * Mixed-precision training (Micikevicius et al., REFERENCE §4) on TensorFlow.js, which has no float16
 * or bfloat16 tensors on any backend: the low-precision formats are emulated exactly inside float32.
 *
 * - `castTensor(x, format)` rounds every float32 value to the nearest value of the format (ties to
 *   even), keeps the format's subnormals, flushes what lies below them to ±0, turns what lies above its
 *   largest finite value into ±Inf, and keeps NaN, ±Inf and −0. It is plain tensor ops (abs, log,
 *   floor, gather, multiplications by powers of two, round-half-even), so it runs on every backend, and
 *   it is exact: multiplying by a power of two is exact in float32, and the power of two is looked up in
 *   a table (never computed by pow/exp2, whose accuracy shaders do not promise). The exponent comes from
 *   log2 and is then corrected by comparison, so a log that is off near a power of two does not matter.
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
 * Per-exponent lookup tables of a format: 2^e, and the scale factors 2^(m−e) and 2^(e−m) (m the
 * mantissa bits), each as a product of two float32 powers of two because bf16's range needs 2^133,
 * beyond float32. Tensors owned by the caller (a CastTables is disposed with its policy).
 */
export class CastTables {
  readonly format: HalfFormat;
  readonly pow2: tf.Tensor1D;
  readonly up: [tf.Tensor1D, tf.Tensor1D];
  readonly down: [tf.Tensor1D, tf.Tensor1D];
  /** Whether one factor suffices (fp16: every scale is within float32's normal range). */
  readonly single: boolean;

  constructor(format: HalfFormat) {
    this.format = format;
    const n = format.maxExp - format.minExp + 1;
    const m = format.mantissaBits;
    const p2 = new Float32Array(n);
    const up = [new Float32Array(n), new Float32Array(n)];
    const down = [new Float32Array(n), new Float32Array(n)];
    for (let i = 0; i < n; i++) {
      const e = format.minExp + i;
      p2[i] = 2 ** e;
      const u = m - e;
      up[0][i] = 2 ** Math.floor(u / 2);
      up[1][i] = 2 ** (u - Math.floor(u / 2));
      const d = e - m;
      down[0][i] = 2 ** Math.floor(d / 2);
      down[1][i] = 2 ** (d - Math.floor(d / 2));
    }
    this.single = Math.max(Math.abs(m - format.minExp), Math.abs(format.maxExp - m)) < 126;
    if (this.single) {
      for (let i = 0; i < n; i++) {
        up[0][i] = 2 ** (m - format.minExp - i);
        up[1][i] = 1;
        down[0][i] = 2 ** (format.minExp + i - m);
        down[1][i] = 1;
      }
    }
    this.pow2 = tf.keep(tf.tensor1d(p2));
    this.up = [tf.keep(tf.tensor1d(up[0])), tf.keep(tf.tensor1d(up[1]))];
    this.down = [tf.keep(tf.tensor1d(down[0])), tf.keep(tf.tensor1d(down[1]))];
  }

  dispose(): void {
    tf.dispose([this.pow2, ...this.up, ...this.down]);
  }
}

/** The float32 values of `x` rounded to the format, exactly (see the file's comment). */
export function castTensor<T extends tf.Tensor>(x: T, tables: CastTables): T {
  const f = tables.format;
  return tf.tidy(() => {
    const special = tf.logicalOr(tf.isNaN(x), tf.isInf(x));
    const a = tf.where(special, tf.onesLike(x), tf.abs(x));
    const top = f.maxExp - f.minExp;
    // Exponent estimate from log2 (a = 0 gives −Inf, clipped to the subnormal range's index 0).
    const est = tf.clipByValue(tf.sub(tf.floor(tf.mul(tf.log(a), Math.LOG2E)), f.minExp), 0, top);
    const p = tf.gather(tables.pow2, tf.cast(est, 'int32'));
    // Exact correction: 2^e ≤ a < 2^(e+1) must hold (below 2^minExp index 0 is right: subnormals).
    // Index arithmetic stays in float32 (small integers, exact): wasm's clip is wrong on int32.
    const fixed = tf.add(tf.sub(est, tf.cast(tf.less(a, p), 'float32')), tf.cast(tf.greaterEqual(a, tf.mul(p, 2)), 'float32'));
    const idx = tf.cast(tf.clipByValue(fixed, 0, top), 'int32');
    let scaled = tf.mul(a, tf.gather(tables.up[0], idx));
    if (!tables.single) scaled = tf.mul(scaled, tf.gather(tables.up[1], idx));
    // round() is round-half-to-even on every tfjs backend (tested); the scaled value is < 2^(m+2).
    let r = tf.mul(tf.round(scaled), tf.gather(tables.down[0], idx));
    if (!tables.single) r = tf.mul(r, tf.gather(tables.down[1], idx));
    r = tf.where(tf.greater(r, f.maxFinite), tf.fill(x.shape, Infinity), r);
    const signed = tf.where(tf.less(x, 0), tf.neg(r), r);
    // Results of zero take x's sign (x·0 is −0 for negative x and for −0): the format keeps −0.
    const withZero = tf.where(tf.equal(r, 0), tf.mul(x, 0), signed);
    return tf.where(special, x, withZero) as T;
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
export function castWithGrad<T extends tf.Tensor>(x: T, tables: CastTables, onGrad?: (c: CastCounts) => void): T {
  const fn = tf.customGrad((xi: tf.Tensor) => ({
    value: castTensor(xi, tables),
    gradFunc: (dy: tf.Tensor) => {
      const g = castTensor(dy, tables);
      if (onGrad) {
        const zeroMask = tf.equal(g, 0);
        const zero = tf.keep(tf.sum(tf.cast(zeroMask, 'float32')));
        const underflow = tf.keep(tf.sum(tf.cast(tf.logicalAnd(zeroMask, tf.notEqual(dy, 0)), 'float32')));
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
 * the weight gradients' statistics are taken. Owns its tables: dispose it.
 */
export class PrecisionPolicy {
  readonly precision: Precision;
  readonly tables: CastTables | undefined;
  /** fp32 training has no cast; its statistics say what an fp16 cast would have done to its gradients. */
  readonly statTables: CastTables;
  private counts: CastCounts[] = [];
  private readonly variableIds = new Set<number>();

  constructor(precision: Precision) {
    this.precision = precision;
    const f = formatOf(precision);
    this.tables = f ? new CastTables(f) : undefined;
    this.statTables = this.tables ?? new CastTables(FP16);
  }

  get mixed(): boolean {
    return this.tables !== undefined;
  }

  /** The FP32 master weights: casts of these record their gradients' statistics. */
  setMasterWeights(vars: readonly tf.Variable[]): void {
    this.variableIds.clear();
    for (const v of vars) this.variableIds.add(v.id);
  }

  /** The autoencoder's hook: identity for fp32, otherwise the cast with its gradient cast too. */
  readonly cast: LayerCast = <T extends tf.Tensor>(t: T): T => {
    if (!this.tables) return t;
    const onGrad = this.variableIds.has(t.id) ? (c: CastCounts) => this.counts.push(c) : undefined;
    return castWithGrad(t, this.tables, onGrad);
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
        const z = tf.equal(castTensor(g, this.statTables), 0);
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
    this.tables?.dispose();
    if (this.statTables !== this.tables) this.statTables.dispose();
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

/** What runs natively and what is emulated, for `studio info` and the README. */
export function precisionSupport(backend: string, hasShaderF16 = false): { native: string[]; emulated: string[] } {
  return {
    native: ['fp32 training (every op in float32)', 'reductions in float32 (losses, sums, norms)', 'storing decoders as fp16 safetensors (F16) and loading them'],
    emulated: [
      `fp16 and bf16 tensors on ${backend}: TensorFlow.js has no half-precision tensor type, so mixed-fp16/mixed-bf16 compute in float32 and round every layer's weights, activations and gradients to the format exactly (tensor ops)`
      + (hasShaderF16 ? '; the adapter has shader-f16, but TensorFlow.js does not use it' : ''),
      'no speed or memory gain from mixed precision: the emulation costs time',
    ],
  };
}
