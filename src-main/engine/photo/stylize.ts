/**
 * PhotoWCT's cascade (REFERENCE §3): relu4_1 → decode → relu3_1 → decode → relu2_1 → decode →
 * relu1_1 → decode. At each level the current image is encoded (recording the pools' switches), its
 * features are whitened and coloured towards the style's at that level, and the level's decoder
 * unpools with the content's switches, which keeps edges where the photo has them. The style is
 * encoded once for all levels (its statistics are all WCT needs of it; FastPhotoStyle too takes every
 * level's style features from one encoder).
 * Between levels the decoded image goes on unclamped, as in FastPhotoStyle; clamping there moved a
 * third of the 8-bit values by more than one level against the anchor on the same weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { imageToTensor, tensorToImage, type RgbImage } from '../image.ts';
import type { Vgg19Weights } from '../models/format.ts';
import { preprocess, Vgg19 } from '../models/vgg19-net.ts';
import { PhotoAutoencoder, disposeSwitches, type DecoderWeights, type Level } from './autoencoder.ts';
import { styleStatsOf, wct, type StyleStats } from './wct.ts';
import { contentStyleLabelIds, wctWithLabels, type LabelImage } from './labels.ts';

export interface PhotoWctParams {
  /** Stylisation strength α: α·f_cs + (1 − α)·f_c at every level. */
  alpha: number;
  /** Levels to run, deepest first (default 4, 3, 2, 1). */
  levels?: Level[];
  /**
   * The style's statistics per level, kept across calls with the same style (a batch): filled on
   * the first call, and then the style is not encoded again. Not used with label maps.
   */
  styleCache?: Map<Level, { stats?: StyleStats }>;
  /** The features' scale relative to the reference's (wct.ts); default: its automatic rule. */
  featureScale?: number;
}

export interface LevelReport {
  level: Level;
  ms: number;
  /** ‖cov(f_cs) − cov(f_s)‖_F / ‖cov(f_s)‖_F of the transformed features (the largest over labels). */
  covError: number;
  /** Labels used and skipped, when label maps were given. */
  regions?: { label: number; used: boolean; reason?: string }[];
  /** How the whitening and colouring square roots were taken ('newton-schulz/eigen'; without label maps). */
  squareRoots?: string;
}

export interface PhotoWctHooks {
  checkCancelled(): void;
  onLevel?(done: number, total: number, level: Level): void;
  /**
   * Each stage's time, for benchmarks: 'encode style' once (all levels, level undefined), then per level
   * 'encode content', 'wct', 'decode'. Given, on a GPU it also waits for each stage's result (so the
   * times are the stages').
   */
  onStage?(stage: 'encode style' | 'encode content' | 'wct' | 'decode', level: Level | undefined, ms: number): void;
}

export async function photoWct(
  encoder: Vgg19Weights, decoders: Map<Level, DecoderWeights>, content: RgbImage, style: RgbImage | null,
  p: PhotoWctParams, hooks: PhotoWctHooks, labels?: { content: LabelImage; style: LabelImage },
): Promise<{ image: RgbImage; levels: LevelReport[] }> {
  const levels = p.levels ?? [4, 3, 2, 1];
  // The regulariser's scale: wct's automatic rule (the reference's +I on Caffe-scale features,
  // shrinking with the features on other preprocessing; see wct.ts) unless the caller knows it.
  const enc = { widths: encoder.widths, tensors: encoder.tensors, preprocess: (t: tf.Tensor4D) => preprocess(t, encoder.preprocessing) };
  const report: LevelReport[] = [];
  let x = imageToTensor(content);
  // style may be null only when p.styleCache holds every level's statistics.
  const s = style ? imageToTensor(style) : null;
  // On a GPU a stage's work is queued: its time needs the result. WebAssembly and CPU run each op to the
  // end before returning (reading a 134 MB result back would time the copy instead).
  const queued = !['wasm', 'cpu', 'tensorflow'].includes(tf.getBackend());
  const stage = async (name: Parameters<NonNullable<PhotoWctHooks['onStage']>>[0], level: Level | undefined, t0: number, result?: tf.Tensor) => {
    if (!hooks.onStage) return;
    if (queued) await result?.data();
    hooks.onStage(name, level, performance.now() - t0);
  };
  try {
    // The style's statistics for every level from one encoder pass (FastPhotoStyle's forward_multiple),
    // unless a batch's cache has them. With label maps each level needs the style's features themselves.
    const styleCache = labels ? undefined : (p.styleCache ?? new Map<Level, { stats?: StyleStats }>());
    if (styleCache) {
      const missing = levels.filter((l) => !styleCache.get(l)?.stats);
      if (missing.length && !s) throw new StudioError('INTERNAL', `PhotoWCT: no style image and no cached statistics for level ${missing[0]}`);
      if (missing.length) {
        hooks.checkCancelled();
        const t0 = performance.now();
        // The shared encoder as a VGG19 to relu{L}_1 with reflection padding: the ops PhotoAutoencoder.encode
        // runs, without the pools' switches, which the style never needs.
        // Only the layers up to the deepest level asked are loaded.
        const net = new Vgg19({ ...encoder, depth: `relu${Math.max(...missing)}_1` });
        let features: Map<string, tf.Tensor4D> | undefined;
        try {
          features = net.features(s!, missing.map((l) => `relu${l}_1`), { padding: 'reflect' });
          for (const level of missing) styleCache.set(level, { stats: await styleStatsOf(features.get(`relu${level}_1`)!) });
        } finally {
          if (features) tf.dispose([...features.values()]);
          net.dispose();
        }
        await stage('encode style', undefined, t0);
      }
    }
    for (const [i, level] of levels.entries()) {
      hooks.checkCancelled();
      const t0 = performance.now();
      const ae = new PhotoAutoencoder(level, enc, decoders.get(level)!);
      try {
        let t = performance.now();
        const c = ae.encode(x);
        await stage('encode content', level, t, c.features);
        const st = labels ? ae.encode(s!) : undefined;
        if (st) disposeSwitches(st.switches);
        try {
          let out: tf.Tensor4D;
          let covError: number;
          let regions: LevelReport['regions'];
          let squareRoots: string | undefined;
          t = performance.now();
          if (labels) {
            const [, hc, wc] = c.features.shape;
            const [, hs, ws] = st!.features.shape;
            const ids = contentStyleLabelIds(labels.content, labels.style, { height: hc, width: wc }, { height: hs, width: ws });
            const r = await wctWithLabels(c.features, st!.features, ids.content, ids.style, { alpha: p.alpha, featureScale: p.featureScale });
            ({ out, covError } = r);
            regions = r.regions.map((g) => ({ label: g.label, used: g.used, reason: g.reason }));
          } else {
            const r = await wct(c.features, null, { alpha: p.alpha, featureScale: p.featureScale }, styleCache!.get(level));
            ({ out, covError } = r);
            squareRoots = `${r.whitening.method}/${r.coloring.method}`;
          }
          await stage('wct', level, t, out);
          // Passed on unclamped, as FastPhotoStyle does: only the final result is clamped (tensorToImage).
          t = performance.now();
          const decoded = ae.decode(out, c.switches);
          out.dispose();
          x.dispose();
          x = decoded;
          await stage('decode', level, t, decoded);
          report.push({ level, ms: performance.now() - t0, covError, regions, ...(squareRoots ? { squareRoots } : {}) });
        } finally {
          tf.dispose(st ? [c.features, st.features] : [c.features]);
          disposeSwitches(c.switches);
        }
      } finally {
        ae.dispose();
      }
      hooks.onLevel?.(i + 1, levels.length, level);
    }
    return { image: await tensorToImage(x), levels: report };
  } finally {
    x.dispose();
    s?.dispose();
  }
}
