/**
 * Gatys style transfer: the optimisation loop around the losses, coarse to fine.
 *
 * The image x is optimised in RGB on the 0–255 scale; the network applies its own preprocessing.
 * Per iteration: one forward and backward pass (tf.valueAndGrad), one optimiser step on the device,
 * and one read-back of a few scalars (the loss parts and L-BFGS's g·d) for progress and stopping.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import type { GatysParams, LossValues } from '../../protocol.ts';
import type { FeatureOptions, Vgg19 } from '../models/vgg19-net.ts';
import { isFeatureName } from '../models/vgg19.ts';
import { featureScaleOf, type Preprocessing } from '../models/format.ts';
import { backendInfo, checkTensorFits } from '../backend.ts';
import { gaussian, mulberry32 } from '../random.ts';
import { fitSize, imageToTensor, resizeTo, tensorToImage, tensorToRgb8, type RgbImage } from '../image.ts';
import { preserveColors } from './colors.ts';
import { blendGrams, normalizedGram, totalLoss, type LossParts, type LossTargets, type LossWeights } from './losses.ts';
import { Adam, Lbfgs, type Optimizer } from './optimizers.ts';

export interface IterationRecord extends LossValues {
  scale: number;
  iteration: number;
  ms: number;
}

export interface GatysHooks {
  /** Throws CancelledError when the job was cancelled; called before every iteration. */
  checkCancelled(): void;
  onProgress?(p: { stage: string; fraction: number; iteration: number; iterations: number; losses?: LossValues; etaMs?: number }): void;
  onPreview?(p: { iteration: number; width: number; height: number; rgb: Uint8Array }): void;
  /**
   * The blended style Grams per scale size and layer, kept across runs with the same styles and
   * settings (a batch): filled on the first run; later runs skip the styles' forward passes.
   */
  styleGrams?: Map<number, Map<string, { data: Float32Array; channels: number }>>;
}

export interface GatysResult {
  image: RgbImage;
  history: IterationRecord[];
  stageMs: Record<string, number>;
  /** Largest tfjs memory in use during the run, bytes. */
  peakTensorBytes: number;
  /** Why the last scale stopped before its iteration budget, if it did. */
  stoppedEarly?: string;
  /** The model's feature units per Caffe feature unit (featureScaleOf); the losses are taken in Caffe units. */
  featureScale: number;
}

/** ImageNet mean colour (RGB, 0–255): the centre of random initialisation, as neural-style's. */
const MEAN_RGB = [123.68, 116.779, 103.939];
const PREVIEW_SIDE = 384;

export function validateLayers(p: GatysParams): void {
  for (const name of [...p.contentLayers, ...p.styleLayers]) {
    if (!isFeatureName(name)) {
      throw new StudioError('BAD_ARGUMENT', `unknown VGG19 layer "${name}"`, 'use names such as relu1_1 … relu5_4, conv4_2 or pool3');
    }
  }
  if (p.styleWeights && p.styleWeights.reduce((a, b) => a + b, 0) <= 0) {
    throw new StudioError('BAD_ARGUMENT', 'style weights must not all be zero');
  }
}

/** The k result sizes, coarse to fine (each half the next). */
export function scaleSizes(size: number, scales: number): number[] {
  return Array.from({ length: scales }, (_, i) => Math.max(16, Math.round(size / 2 ** (scales - 1 - i))));
}

function styleTargets(net: Vgg19, styles: tf.Tensor4D[], weights: number[], layers: string[], pooling: GatysParams['pooling']): Map<string, tf.Tensor2D> {
  const perStyle = styles.map((s) => {
    const feats = net.features(s, layers, { ...neuralStyleView(net, pooling), fused: true });
    const grams = new Map(layers.map((l) => [l, normalizedGram(feats.get(l)!)] as const));
    for (const f of feats.values()) f.dispose();
    return grams;
  });
  const out = new Map(layers.map((l) => [l, blendGrams(perStyle.map((g) => g.get(l)!), weights)] as const));
  for (const g of perStyle) for (const t of g.values()) t.dispose();
  return out;
}

function initialImage(init: GatysParams['init'], content: tf.Tensor4D, style: tf.Tensor4D, seed: number): tf.Tensor4D {
  const [, h, w] = content.shape;
  if (init === 'content') return content.clone();
  if (init === 'style') return resizeTo(style, h, w);
  const rng = mulberry32(seed);
  const noise = new Float32Array(h * w * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = MEAN_RGB[i % 3] + 10 * gaussian(rng);
  return tf.tensor4d(noise, [1, h, w, 3]);
}

/**
 * neural-style's weights (content 5, style 100, TV 1e-3) are tuned for Caffe-scale features (VGG19 on
 * 0–255 input). A model whose preprocessing makes features s times that size (torchvision: s ≈ 1/58) would
 * see its content loss scale by s² and its style loss by s⁴ while TV does not scale: TV would win and wash
 * the result out. Taking the losses of the features divided by s is, exactly, weights w_c/s² and w_s/s⁴.
 */
export function caffeUnitWeights(p: Pick<GatysParams, 'contentWeight' | 'styleWeight' | 'tvWeight'>, pre: Preprocessing): LossWeights {
  const s = featureScaleOf(pre);
  // TV is taken on the image x (0–255); neural-style takes it on its own input, x·k.
  const k = neuralStyleInputScale(pre);
  return {
    content: p.contentWeight / (s * s), style: p.styleWeight / (s * s * s * s), tv: p.tvWeight * k * k,
    contentLayers: new Map(), styleLayers: new Map(),
  };
}

/**
 * neural-style's preprocess scales the [0, 1] image by 256, not 255, before the Caffe mean is taken
 * off: with Caffe weights its network sees x·256/255 (features ~0.4% larger than on 0–255). Kept, so
 * that the same weights give its losses exactly; other preprocessing has no neural-style definition.
 */
export function neuralStyleInputScale(pre: Preprocessing): number {
  const caffe = pre.colorOrder === 'BGR' && pre.scale === 255 && pre.std.every((v) => v === 1);
  return caffe ? 256 / 255 : 1;
}

/**
 * How neural-style runs the network: its input scale, loadcaffe's ceil-mode max pools (its average
 * pools, nn.SpatialAveragePooling swapped in by -pooling avg, round down).
 */
function neuralStyleView(net: Vgg19, pooling: GatysParams['pooling']): FeatureOptions {
  return { pooling, ceilPools: pooling === 'max', inputScale: neuralStyleInputScale(net.preprocessing) };
}

/** The loss of an image x given fixed targets: features of x, then REFERENCE §2's total. */
export type Objective = (x: tf.Tensor4D) => LossParts;

export function gatysObjective(net: Vgg19, targets: LossTargets, weights: LossWeights, pooling: GatysParams['pooling'] = 'max'): Objective {
  const layers = [...new Set([...targets.content.keys(), ...targets.style.keys()])];
  const view = neuralStyleView(net, pooling);
  return (x) => totalLoss(x, net.features(x, layers, view), targets, weights);
}

/** One forward and backward pass: the loss parts (kept, caller disposes) and ∂total/∂x. */
export function lossAndGradient(objective: Objective, x: tf.Tensor4D): { parts: LossParts; grad: tf.Tensor4D } {
  let parts: LossParts | undefined;
  const { grad } = tf.valueAndGrad((xi: tf.Tensor) => {
    const lp = objective(xi as tf.Tensor4D);
    parts = { content: tf.keep(lp.content), style: tf.keep(lp.style), tv: tf.keep(lp.tv), total: tf.keep(lp.total) };
    return lp.total;
  })(x);
  return { parts: parts!, grad: grad as tf.Tensor4D };
}

/** Content features and blended style Grams for one scale. */
export function gatysTargets(net: Vgg19, content: tf.Tensor4D, styles: tf.Tensor4D[], styleWeights: number[], p: Pick<GatysParams, 'contentLayers' | 'styleLayers' | 'pooling'>): LossTargets {
  return {
    content: net.features(content, p.contentLayers, { ...neuralStyleView(net, p.pooling), fused: true }),
    style: styleTargets(net, styles, styleWeights, p.styleLayers, p.pooling),
  };
}

/**
 * Stylises `content` (already at the result size) with `styles` (at their working sizes).
 * Every tensor it creates is disposed before it returns or throws.
 */
export async function stylizeGatys(net: Vgg19, content: RgbImage, styles: RgbImage[], p: GatysParams, hooks: GatysHooks): Promise<GatysResult> {
  validateLayers(p);
  const styleWeightsRaw = p.styleWeights ?? styles.map(() => 1);
  if (styleWeightsRaw.length !== styles.length) {
    throw new StudioError('BAD_ARGUMENT', `${styles.length} style images but ${styleWeightsRaw.length} style weights`);
  }
  const wsum = styleWeightsRaw.reduce((a, b) => a + b, 0);
  const styleWeights = styleWeightsRaw.map((w) => w / wsum);
  const weights = caffeUnitWeights(p, net.preprocessing);
  const sizes = scaleSizes(Math.max(content.width, content.height), p.scales);
  // The largest tensor is a first-block activation at full size (forward and backward alike).
  const largest = (w: number, h: number) => w * h * net.widths[0] * 4;
  const fitSide = Math.floor(Math.max(content.width, content.height) * Math.sqrt((backendInfo()?.maxTensorBytes ?? Infinity) / largest(content.width, content.height)));
  checkTensorFits(largest(content.width, content.height), `a ${content.width}×${content.height} optimisation`, `use --size ${fitSide} or smaller, or another backend (--backend wasm)`);
  for (const s of styles) checkTensorFits(largest(s.width, s.height), `a ${s.width}×${s.height} style image`, 'use a smaller --style-scale or --size');
  const work = sizes.map((s) => s * s * p.iters);
  const totalWork = work.reduce((a, b) => a + b, 0);
  let doneWork = 0;

  const history: IterationRecord[] = [];
  const stageMs: Record<string, number> = {};
  let peak = tf.memory().numBytes;
  let stoppedEarly: string | undefined;
  const track = () => { peak = Math.max(peak, tf.memory().numBytes); };

  const contentFull = imageToTensor(content);
  const styleFull = styles.map(imageToTensor);
  let x: tf.Tensor4D | undefined;
  let optimizer: Optimizer | undefined;
  let targets: LossTargets | undefined;
  const disposeTargets = () => {
    if (targets) for (const t of [...targets.content.values(), ...targets.style.values()]) t.dispose();
    targets = undefined;
  };
  const t0 = performance.now();
  let msPerWork: number;
  try {
    for (let si = 0; si < sizes.length; si++) {
      const stage = `optimise ${sizes[si]} px`;
      const tScale = performance.now();
      const { width, height } = fitSize(content.width, content.height, sizes[si]);
      const c = resizeTo(contentFull, height, width);
      const scaledStyles = styleFull.map((s) => {
        const f = fitSize(s.shape[2], s.shape[1], Math.max(16, Math.round(Math.max(s.shape[1], s.shape[2]) * sizes[si] / sizes.at(-1)!)));
        return resizeTo(s, f.height, f.width);
      });
      disposeTargets();
      const cachedGrams = hooks.styleGrams?.get(sizes[si]);
      if (cachedGrams) {
        targets = {
          content: net.features(c, p.contentLayers, { ...neuralStyleView(net, p.pooling), fused: true }),
          style: new Map([...cachedGrams].map(([l, g]) => [l, tf.tensor2d(g.data, [g.channels, g.channels])] as const)),
        };
      } else {
        targets = gatysTargets(net, c, scaledStyles, styleWeights, p);
        if (hooks.styleGrams) {
          const grams = new Map<string, { data: Float32Array; channels: number }>();
          for (const [l, g] of targets.style) grams.set(l, { data: (await g.data()) as Float32Array, channels: g.shape[0] });
          hooks.styleGrams.set(sizes[si], grams);
        }
      }
      stageMs[`targets ${sizes[si]} px`] = performance.now() - tScale;

      const next = x ? resizeTo(x, height, width) : initialImage(p.init, c, scaledStyles[0], p.seed);
      x?.dispose();
      x = next;
      for (const s of scaledStyles) s.dispose();
      c.dispose();
      optimizer?.dispose();
      optimizer = p.optimizer === 'adam'
        ? new Adam({ learningRate: p.learningRate ?? 10 })
        : new Lbfgs({ learningRate: p.learningRate ?? 1, history: p.lbfgsHistory });

      const objective = gatysObjective(net, targets, weights, p.pooling);
      const tOpt = performance.now();
      for (let it = 1; it <= p.iters; it++) {
        hooks.checkCancelled();
        const tIt = performance.now();
        const { parts, grad } = lossAndGradient(objective, x);
        const step = optimizer.step(x, grad);
        const gtdT = step.gtd ?? tf.scalar(-1);
        const readback = tf.stack([parts.content, parts.style, parts.tv, parts.total, gtdT]);
        const [lc, ls, ltv, ltot, gtd] = Array.from(await readback.data());
        track();
        tf.dispose([readback, grad, parts.content, parts.style, parts.tv, parts.total, gtdT]);
        if (!Number.isFinite(ltot)) {
          step.next.dispose();
          throw new StudioError('INTERNAL', `the loss became ${ltot} at iteration ${it}`, 'lower the learning rate or the style weight');
        }
        const ms = performance.now() - tIt;
        const losses = { content: lc, style: ls, tv: ltv, total: ltot };
        history.push({ scale: sizes[si], iteration: it, ms, ...losses });
        doneWork += sizes[si] ** 2;
        msPerWork = (performance.now() - t0) / doneWork;
        if (gtd >= 0) {
          // L-BFGS found no descent direction: x is a stationary point (torch's tolX check).
          step.next.dispose();
          stoppedEarly = `converged at iteration ${it} of the ${sizes[si]} px scale`;
          doneWork += (p.iters - it) * sizes[si] ** 2;
          break;
        }
        x.dispose();
        x = step.next as tf.Tensor4D;
        hooks.onProgress?.({
          stage, fraction: doneWork / totalWork, iteration: it, iterations: p.iters, losses,
          etaMs: msPerWork * (totalWork - doneWork),
        });
        if (hooks.onPreview && p.previewEvery > 0 && (it % p.previewEvery === 0 || it === p.iters)) {
          const f = fitSize(width, height, Math.min(PREVIEW_SIDE, Math.max(width, height)));
          const small = resizeTo(x, f.height, f.width);
          const rgb = await tensorToRgb8(small);
          small.dispose();
          hooks.onPreview({ iteration: it, width: rgb.width, height: rgb.height, rgb: rgb.data });
        }
      }
      stageMs[stage] = performance.now() - tOpt;
    }
    const final = p.preserveColors ? preserveColors(x!, contentFull) : x!.clone();
    const image = await tensorToImage(final);
    final.dispose();
    return { image, history, stageMs, peakTensorBytes: peak, stoppedEarly, featureScale: featureScaleOf(net.preprocessing) };
  } finally {
    disposeTargets();
    optimizer?.dispose();
    x?.dispose();
    contentFull.dispose();
    for (const s of styleFull) s.dispose();
  }
}
