/**
 * VGG19 feature extractor on TensorFlow.js, built from the layer table in vgg19.ts.
 *
 * Input convention for the whole engine: images are float tensors [N,H,W,3] holding RGB on the
 * 0–255 scale. The model's own preprocessing (Caffe BGR minus mean, or torchvision mean/std) is
 * applied inside `preprocess`, so optimisers, learning rates and TV weights mean the same for every
 * weight file.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { maskedGrad, reluMask } from '../kernels/mask.ts';
import { fusedConv3x3 } from '../kernels/winograd.ts';
import type { Preprocessing, Vgg19Weights } from './format.ts';
import { vgg19Layers, withinDepth, type LayerSpec } from './vgg19.ts';

export type Padding = 'zero' | 'reflect';
export type Pooling = 'max' | 'avg';

export interface FeatureOptions {
  /** 'zero' as VGG was trained (Gatys); 'reflect' as PhotoWCT's encoders. */
  padding?: Padding;
  pooling?: Pooling;
  /** Kept for callers; every layer whose pre-activation is not asked for now runs fused (convBiasRelu). */
  fused?: boolean;
  /**
   * Caffe's ceil-mode pools (neural-style's, as loadcaffe builds them): on an odd size the last window
   * covers one row or column, so the output is ⌈H/2⌉; default floor mode (PyTorch's, and PhotoWCT's).
   */
  ceilPools?: boolean;
  /** Multiplies the RGB 0–255 input before the preprocessing (neural-style feeds Caffe weights 0–256). */
  inputScale?: number;
}

/**
 * conv (3×3, stride 1) → + bias → ReLU as one differentiable op; the backward keeps only ReLU's mask,
 * as booleans: ∂x = conv2dᵀ(∂y ⊙ [y > 0]). Kept for the backward per element: 1 byte, where the unfused
 * chain kept three float tensors (the conv's output, the biased one, the ReLU's) and saving y itself
 * kept two (tfjs-wasm copies a saved tensor). tfjs's own fused gradient would also compute the
 * filter's gradient, which a gradient to the image never needs; here filter and bias get zeros.
 */
function makeConvBiasRelu(pad: 'same' | 'valid') {
  return tf.customGrad(((x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D, save: tf.GradSaveFunc) => {
    // Unfused, as tf.fused.conv2d itself runs while a gradient is recorded: XNNPACK's fused kernel sums in
    // another order, and on the odd-size parity case (a max-pool window with a near tie) that moved the
    // style gradient to cosine 0.999986 of neural-style's (target ≥ 0.99999). The two intermediates
    // are released when this op returns.
    // On WebAssembly, one kernel (F(4×4, 3×3) with the bias and ReLU in its output transform), same bits.
    const y = fusedConv3x3(x, filter, bias, pad, true) ?? tf.relu(tf.add(tf.conv2d(x, filter, 1, pad), bias)) as tf.Tensor4D;
    // The mask only when a gradient is being recorded (tfjs saves nothing otherwise): a forward pass alone
    // (targets, PhotoWCT's encoders) does not pay for it.
    if (tf.engine().state.gradientDepth > 0) save([reluMask(y) ?? tf.greater(y, 0)]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // tfjs runs a custom gradient outside any tidy and keeps every tensor of the backward pass to its
        // end: the masked gradient is released here, and so is dy, the gradient of this layer's output,
        // which nothing reads once this layer's input gradient exists (the tape is walked in reverse).
        const grads = tf.tidy(() => {
          const masked = (maskedGrad(dy, saved[0]) ?? tf.mul(dy, tf.cast(saved[0], 'float32'))) as tf.Tensor4D;
          return [tf.conv2dTranspose(masked, filter, x.shape, 1, pad), tf.zerosLike(filter), tf.zerosLike(bias)];
        });
        dy.dispose();
        return grads;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D) => tf.Tensor4D;
}
const convBiasRelu = { same: makeConvBiasRelu('same'), valid: makeConvBiasRelu('valid') };

/**
 * 2×2 pooling, stride 2, as a differentiable op whose gradient releases the incoming gradient once it
 * is used (tfjs's own keeps it to the end of the backward pass, see makeConvBiasRelu).
 */
function makePool(kind: Pooling, pad: 'same' | 'valid') {
  return tf.customGrad(((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const y = kind === 'max' ? tf.maxPool(x, 2, 2, pad) : tf.avgPool(x, 2, 2, pad);
    save(kind === 'max' ? [x, y] : [x]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const attrs = { filterSize: 2, strides: 2, pad } as unknown as tf.NamedAttrMap;
        const dx = kind === 'max'
          ? tf.engine().runKernel('MaxPoolGrad', { dy, input: saved[0], output: saved[1] }, attrs)
          : tf.engine().runKernel('AvgPoolGrad', { dy, input: saved[0] }, attrs);
        dy.dispose();
        return dx as tf.Tensor4D;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;
}
const pools = {
  max: { same: makePool('max', 'same'), valid: makePool('max', 'valid') },
  avg: { same: makePool('avg', 'same'), valid: makePool('avg', 'valid') },
};
/** STUDIO_FUSED_GRAD=0: the unfused chain (conv, add, relu), kept to compare against. */
const fusedLayers = () => process.env.STUDIO_FUSED_GRAD !== '0';

/** Maps RGB 0–255 to the network's input: reorder, ÷255·scale, −mean, ÷std. */
export function preprocess(rgb255: tf.Tensor4D, p: Preprocessing): tf.Tensor4D {
  return tf.tidy(() => {
    const k = p.scale / 255;
    if (p.colorOrder === 'BGR' && tf.getBackend() === 'wasm') {
      // The reorder and the scales as one [D, 3]·[3, 3] product (one non-zero a column: the same bits),
      // as is its gradient: tfjs-wasm's Reverse took 49 ms each way on a 512² image.
      const [n, h, w] = rgb255.shape;
      const m = tf.tensor2d([0, 0, k / p.std[2], 0, k / p.std[1], 0, k / p.std[0], 0, 0], [3, 3]);
      const scaled = tf.reshape(tf.matMul(tf.reshape(rgb255, [n * h * w, 3]), m), [n, h, w, 3]);
      return tf.sub(scaled, tf.tensor1d(p.mean.map((mean, i) => mean / p.std[i]))) as tf.Tensor4D;
    }
    let x = rgb255;
    if (p.colorOrder === 'BGR') x = tf.reverse(x, 3);
    const mul = tf.tensor1d(p.std.map((s) => k / s));
    const sub = tf.tensor1d(p.mean.map((m, i) => m / p.std[i]));
    return tf.sub(tf.mul(x, mul), sub) as tf.Tensor4D;
  });
}

export class Vgg19 {
  readonly widths: number[];
  readonly preprocessing: Preprocessing;
  readonly layers: LayerSpec[];
  /** A partial network's deepest feature (see Vgg19Weights.depth). */
  readonly depth?: string;
  private readonly source: string;
  private readonly kernels = new Map<string, tf.Tensor4D>();
  private readonly biases = new Map<string, tf.Tensor1D>();

  constructor(weights: Vgg19Weights) {
    this.widths = weights.widths;
    this.preprocessing = weights.preprocessing;
    this.layers = vgg19Layers(weights.widths);
    this.depth = weights.depth;
    this.source = weights.source;
    for (const l of this.layers) {
      if (l.kind !== 'conv' || !withinDepth(l.conv.name, this.depth)) continue;
      const { name, inChannels, outChannels } = l.conv;
      const k = weights.tensors.get(`${name}.kernel`);
      const b = weights.tensors.get(`${name}.bias`);
      if (!k || !b) throw new Error(`weights lack ${name}`);
      this.kernels.set(name, tf.keep(tf.tensor4d(k.data, [3, 3, inChannels, outChannels])));
      this.biases.set(name, tf.keep(tf.tensor1d(b.data)));
    }
  }

  /** Index in `layers` after which a feature name is available. */
  private depthOf(name: string): number {
    const i = this.layers.findIndex((l) =>
      l.kind === 'pool' ? l.name === name : l.conv.name === name || `relu${l.conv.name.slice(4)}` === name);
    if (i < 0) throw new Error(`unknown VGG19 feature "${name}"`);
    if (!withinDepth(name, this.depth)) {
      throw new StudioError('BAD_ARGUMENT', `${name} is deeper than this model, which has VGG19's layers only up to ${this.depth} (${this.source})`,
        `ask only for layers up to ${this.depth} (for Gatys: --content-layers relu4_1 --style-layers relu1_1,relu2_1,relu3_1,relu4_1), or use a whole VGG19 (--model vgg19)`);
    }
    return i;
  }

  /**
   * Runs the network on RGB 0–255 input up to the deepest requested feature and returns the
   * requested ones (reluB_I, convB_I = before its ReLU, poolB). Intermediates are disposed.
   */
  features(rgb255: tf.Tensor4D, names: readonly string[], opts: FeatureOptions = {}): Map<string, tf.Tensor4D> {
    const { padding = 'zero', pooling = 'max', ceilPools = false, inputScale = 1 } = opts;
    const poolPad = ceilPools ? 'same' : 'valid'; // 'same' with a 2×2 window, stride 2: pads only the end, ⌈H/2⌉ out
    const last = Math.max(...names.map((n) => this.depthOf(n)));
    const wanted = new Set(names);
    // Returned from tidy (not tf.keep'd), so an enclosing tidy or gradient scope still owns them.
    const out = tf.tidy(() => {
      const kept: Record<string, tf.Tensor4D> = {};
      let x = preprocess(inputScale === 1 ? rgb255 : tf.mul(rgb255, inputScale) as tf.Tensor4D, this.preprocessing);
      for (let i = 0; i <= last; i++) {
        const l = this.layers[i];
        if (l.kind === 'pool') {
          x = fusedLayers() ? pools[pooling][poolPad](x) : pooling === 'max' ? tf.maxPool(x, 2, 2, poolPad) : tf.avgPool(x, 2, 2, poolPad);
          if (wanted.has(l.name)) kept[l.name] = x;
          continue;
        }
        const name = l.conv.name;
        const relu = `relu${name.slice(4)}`;
        const kernel = this.kernels.get(name)!;
        const bias = this.biases.get(name)!;
        // Reflection padding where nothing is recorded (PhotoWCT's style encoding): one kernel on
        // WebAssembly reads the reflected border in place, the same bits as the padded copy.
        const inPlace = padding === 'reflect' && !wanted.has(name) && tf.engine().state.gradientDepth === 0 ? fusedConv3x3(x, kernel, bias, 'reflect', true) : undefined;
        const input = padding === 'reflect' && !inPlace ? tf.mirrorPad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect') : x;
        const pad = padding === 'reflect' ? 'valid' : 'same';
        if (inPlace) {
          x = inPlace;
        } else if (!wanted.has(name) && fusedLayers()) {
          x = convBiasRelu[pad](input, kernel, bias);
        } else {
          const pre = tf.add(tf.conv2d(input, kernel, 1, pad), bias) as tf.Tensor4D;
          if (wanted.has(name)) kept[name] = pre;
          x = tf.relu(pre);
        }
        if (wanted.has(relu)) kept[relu] = x;
      }
      return kept;
    });
    return new Map(names.map((n) => [n, out[n]]));
  }

  /** FLOPs of one forward pass up to `name` at H×W (multiply-adds count 2), for benchmarks. */
  forwardFlops(height: number, width: number, name: string): number {
    const last = this.depthOf(name);
    let h = height;
    let w = width;
    let flops = 0;
    for (let i = 0; i <= last; i++) {
      const l = this.layers[i];
      if (l.kind === 'pool') {
        h = Math.floor(h / 2);
        w = Math.floor(w / 2);
      } else {
        flops += 2 * 9 * h * w * l.conv.inChannels * l.conv.outChannels;
      }
    }
    return flops;
  }

  dispose(): void {
    for (const t of this.kernels.values()) t.dispose();
    for (const t of this.biases.values()) t.dispose();
    this.kernels.clear();
    this.biases.clear();
  }
}
