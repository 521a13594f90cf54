/**
 * PhotoWCT's auto-encoders (REFERENCE §3), one parametrised level instead of four copies:
 * the encoder of level L is VGG19 up to reluL_1 with reflection padding, recording the switches
 * (argmax positions) of each max-pool on the way; the decoder mirrors it, convolution for
 * convolution in reverse, and upsamples by max-unpooling with those switches, so that every value
 * goes back to the position its maximum came from.
 *
 * Switches are kept per 2×2 window as one of 4 positions (first maximum on ties, as PyTorch's
 * MaxPool2d), so unpooling is a one-hot product and depth-to-space: plain differentiable tensor ops on
 * every backend, which decoder training needs (tfjs has no gradient for ScatterNd).
 */
import * as tf from '@tensorflow/tfjs-core';
import { maxPoolSwitches, maxUnpoolBySwitches } from '../kernels/pool.ts';
import { fusedConv3x3 } from '../kernels/winograd.ts';
import { vgg19Layers, type ConvSpec } from '../models/vgg19.ts';
import { fillGaussian, type Rng } from '../random.ts';

export type Level = 1 | 2 | 3 | 4;
export const LEVELS: readonly Level[] = [1, 2, 3, 4];

/** Switches of one 2×2 max-pool: which of the 4 window positions held the maximum, and the size pooled. */
export interface Switches {
  /** [N, H/2, W/2, C] int32 in 0..3 (row-major within the window). */
  argmax: tf.Tensor4D;
  /** Height and width of the feature map before pooling (odd sizes lose their last row/column). */
  height: number;
  width: number;
}

/** The encoder's convolutions and pools up to reluL_1, in forward order. */
export function encoderLayers(level: Level, widths?: readonly number[]) {
  const layers = vgg19Layers(widths);
  const last = layers.findIndex((l) => l.kind === 'conv' && l.conv.name === `conv${level}_1`);
  return layers.slice(0, last + 1);
}

/** The decoder's convolutions, mirroring the encoder: conv B_I maps out→in channels, in reverse order. */
export function decoderConvs(level: Level, widths?: readonly number[]): { name: string; inChannels: number; outChannels: number; unpoolAfter: boolean; relu: boolean }[] {
  const enc = encoderLayers(level, widths);
  const out: { name: string; inChannels: number; outChannels: number; unpoolAfter: boolean; relu: boolean }[] = [];
  for (let i = enc.length - 1; i >= 0; i--) {
    const l = enc[i];
    if (l.kind !== 'conv') continue;
    const c: ConvSpec = l.conv;
    out.push({
      name: `dec${c.name.slice(4)}`, // dec4_1 … dec1_1, as FastPhotoStyle names them
      inChannels: c.outChannels,
      outChannels: c.inChannels,
      unpoolAfter: i > 0 && enc[i - 1].kind === 'pool',
      relu: c.name !== 'conv1_1', // the last layer outputs the image, linearly
    });
  }
  return out;
}

/** [N,H,W,C] → 2×2 max-pool and its switches. */
export function maxPoolWithSwitches(x: tf.Tensor4D): { pooled: tf.Tensor4D; switches: Switches } {
  const [n, h, w, c] = x.shape;
  const h2 = Math.floor(h / 2);
  const w2 = Math.floor(w / 2);
  // One pass on WebAssembly where no gradient is recorded (kernels/pool.ts): the same values.
  const fast = maxPoolSwitches(x);
  if (fast) return { pooled: fast.pooled, switches: { argmax: fast.argmax, height: h, width: w } };
  return tf.tidy(() => {
    const cropped = h2 * 2 === h && w2 * 2 === w ? x : tf.slice(x, [0, 0, 0, 0], [n, h2 * 2, w2 * 2, c]);
    // [N, h2, 2, w2, 2, C] → [N, h2, w2, C, 4]: the 4 positions of each window on the last axis.
    const windows = tf.reshape(tf.transpose(tf.reshape(cropped, [n, h2, 2, w2, 2, c]), [0, 1, 3, 5, 2, 4]), [n, h2, w2, c, 4]);
    const argmax = tf.cast(tf.argMax(windows, 4), 'int32') as tf.Tensor4D;
    const pooled = tf.max(windows, 4) as tf.Tensor4D;
    return { pooled, switches: { argmax, height: h, width: w } };
  });
}

/** Max-unpooling: [N,h2,w2,C] → [N,H,W,C], each value at its switch, zeros elsewhere. */
export function maxUnpool(y: tf.Tensor4D, s: Switches): tf.Tensor4D {
  const [n, h2, w2, c] = y.shape;
  const fast = maxUnpoolBySwitches(y, s.argmax, s.height, s.width);
  if (fast) return fast;
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.reshape(s.argmax, [-1]), 4).reshape([n, h2, w2, c, 4]);
    const spread = tf.mul(onehot, tf.expandDims(y, 4)); // [N,h2,w2,C,4]
    const up = tf.reshape(tf.transpose(tf.reshape(spread, [n, h2, w2, c, 2, 2]), [0, 1, 4, 2, 5, 3]), [n, 2 * h2, 2 * w2, c]);
    const padH = s.height - 2 * h2;
    const padW = s.width - 2 * w2;
    return (padH || padW ? tf.pad(up, [[0, 0], [0, padH], [0, padW], [0, 0]]) : up) as tf.Tensor4D;
  });
}

export function disposeSwitches(switches: Switches[]): void {
  for (const s of switches) s.argmax.dispose();
}

/** 3×3 convolution with reflection padding (as FastPhotoStyle's encoders and decoders), bias, optional ReLU. */
export function reflectConv(x: tf.Tensor4D, kernel: tf.Tensor4D, bias: tf.Tensor1D, relu: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    // Where no gradient is recorded (stylizing, not training), one kernel on WebAssembly that reads the
    // reflected border in place: the same bits as the padded copy and the chain below.
    const fused = tf.engine().state.gradientDepth === 0 ? fusedConv3x3(x, kernel, bias, 'reflect', relu) : undefined;
    if (fused) return fused;
    const padded = tf.mirrorPad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect');
    const y = tf.add(tf.conv2d(padded, kernel, 1, 'valid'), bias) as tf.Tensor4D;
    return relu ? tf.relu(y) : y;
  });
}

/**
 * An optional hook applied at every layer boundary (the input, each convolution's weights and bias,
 * each convolution's output): mixed-precision training passes an emulated fp16/bf16 cast here
 * (engine/train/precision.ts). Pooling and unpooling move values without arithmetic, so their
 * outputs are already representable and need no cast. `kind` lets the hook cache the casts of
 * weights that do not change (the encoder's).
 */
export type LayerCast = <T extends tf.Tensor>(t: T, kind?: 'weight' | 'activation') => T;
const noCast: LayerCast = (t) => t;

/** Decoder weights of one level: `decB_I.kernel` HWIO and `decB_I.bias`, as the layer table names them. */
export type DecoderWeights = Map<string, { kernel: Float32Array; bias: Float32Array }>;

/** He initialisation (zero-mean Gaussian, variance 2/(3·3·in)) of a fresh decoder, seeded. */
export function initDecoder(level: Level, widths: readonly number[], rng: Rng): DecoderWeights {
  const out: DecoderWeights = new Map();
  for (const d of decoderConvs(level, widths)) {
    const kernel = fillGaussian(new Float32Array(9 * d.inChannels * d.outChannels), rng, Math.sqrt(2 / (9 * d.inChannels)));
    out.set(d.name, { kernel, bias: new Float32Array(d.outChannels) });
  }
  return out;
}

/**
 * One level's encoder (VGG19 to reluL_1, reflection padding, switches recorded) and decoder.
 * Weights are tfjs tensors owned by this object (dispose it); the decoder's are variables so that
 * training can update them in place.
 */
export class PhotoAutoencoder {
  readonly level: Level;
  readonly widths: readonly number[];
  private readonly enc = new Map<string, { kernel: tf.Tensor4D; bias: tf.Tensor1D }>();
  readonly dec = new Map<string, { kernel: tf.Variable<tf.Rank.R4>; bias: tf.Variable<tf.Rank.R1> }>();
  private readonly preprocess: (x: tf.Tensor4D) => tf.Tensor4D;

  constructor(
    level: Level,
    encoder: { widths: readonly number[]; tensors: Map<string, { data: Float32Array }>; preprocess: (x: tf.Tensor4D) => tf.Tensor4D },
    decoder: DecoderWeights,
  ) {
    this.level = level;
    this.widths = encoder.widths;
    this.preprocess = encoder.preprocess;
    for (const l of encoderLayers(level, encoder.widths)) {
      if (l.kind !== 'conv') continue;
      const { name, inChannels, outChannels } = l.conv;
      const k = encoder.tensors.get(`${name}.kernel`);
      const b = encoder.tensors.get(`${name}.bias`);
      if (!k || !b) throw new Error(`encoder weights lack ${name}`);
      this.enc.set(name, { kernel: tf.keep(tf.tensor4d(k.data, [3, 3, inChannels, outChannels])), bias: tf.keep(tf.tensor1d(b.data)) });
    }
    for (const d of decoderConvs(level, encoder.widths)) {
      const w = decoder.get(d.name);
      if (!w) throw new Error(`decoder of level ${level} lacks ${d.name}`);
      if (w.kernel.length !== 9 * d.inChannels * d.outChannels || w.bias.length !== d.outChannels) {
        throw new Error(`decoder layer ${d.name} has the wrong shape for level ${level} (expected 3×3×${d.inChannels}×${d.outChannels})`);
      }
      // Variables outlive tidy; their initial tensors do not.
      this.dec.set(d.name, tf.tidy(() => ({
        kernel: tf.variable(tf.tensor4d(w.kernel, [3, 3, d.inChannels, d.outChannels]), true),
        bias: tf.variable(tf.tensor1d(w.bias), true),
      })));
    }
  }

  /** RGB 0–255 [N,H,W,3] → reluL_1 features and the switches of each pool (outermost first). */
  encode(rgb255: tf.Tensor4D, cast: LayerCast = noCast): { features: tf.Tensor4D; switches: Switches[] } {
    const switches: Switches[] = [];
    const features = tf.tidy(() => {
      let x = cast(this.preprocess(rgb255));
      for (const l of encoderLayers(this.level, this.widths)) {
        if (l.kind === 'pool') {
          const { pooled, switches: s } = maxPoolWithSwitches(x);
          switches.push({ ...s, argmax: tf.keep(s.argmax) });
          x = pooled;
        } else {
          const w = this.enc.get(l.conv.name)!;
          x = cast(reflectConv(x, cast(w.kernel, 'weight'), cast(w.bias, 'weight'), true));
        }
      }
      return x;
    });
    return { features, switches };
  }

  /**
   * Features → RGB on the 0–255 scale (the decoder learns to undo the encoder's preprocessing too, as
   * FastPhotoStyle's do). `switches` are the encoder's, outermost first, as `encode` returns them.
   */
  decode(features: tf.Tensor4D, switches: Switches[], cast: LayerCast = noCast): tf.Tensor4D {
    return tf.tidy(() => {
      let x = features;
      let s = switches.length;
      for (const d of decoderConvs(this.level, this.widths)) {
        const w = this.dec.get(d.name)!;
        x = cast(reflectConv(x, cast(w.kernel, 'weight'), cast(w.bias, 'weight'), d.relu));
        if (d.unpoolAfter) x = maxUnpool(x, switches[--s]);
      }
      return x;
    });
  }

  async decoderWeights(): Promise<DecoderWeights> {
    const out: DecoderWeights = new Map();
    for (const [name, w] of this.dec) out.set(name, { kernel: (await w.kernel.data()) as Float32Array, bias: (await w.bias.data()) as Float32Array });
    return out;
  }

  dispose(): void {
    for (const w of this.enc.values()) tf.dispose([w.kernel, w.bias]);
    for (const w of this.dec.values()) tf.dispose([w.kernel, w.bias]);
    this.enc.clear();
    this.dec.clear();
  }
}
