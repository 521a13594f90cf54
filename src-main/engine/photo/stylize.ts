/**
 * PhotoWCT's cascade (REFERENCE §3): relu4_1 → decode → relu3_1 → decode → relu2_1 → decode →
 * relu1_1 → decode. At each level the current image is encoded (recording the pools' switches), its
 * features are whitened and coloured towards the style's at that level, and the level's decoder
 * unpools with the content's switches, which keeps edges where the photo has them.
 * Between levels the decoded image goes on unclamped, as in FastPhotoStyle; clamping there moved a
 * third of the 8-bit values by more than one level against the anchor on the same weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { imageToTensor, tensorToImage, type RgbImage } from '../image.ts';
import type { Vgg19Weights } from '../models/format.ts';
import { preprocess } from '../models/vgg19-net.ts';
import { PhotoAutoencoder, disposeSwitches, type DecoderWeights, type Level } from './autoencoder.ts';
import { wct, type StyleStats } from './wct.ts';
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
}

export interface PhotoWctHooks {
  checkCancelled(): void;
  onLevel?(done: number, total: number, level: Level): void;
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
  try {
    for (const [i, level] of levels.entries()) {
      hooks.checkCancelled();
      const t0 = performance.now();
      const ae = new PhotoAutoencoder(level, enc, decoders.get(level)!);
      try {
        const c = ae.encode(x);
        const cache = labels ? undefined : p.styleCache && (p.styleCache.get(level) ?? p.styleCache.set(level, {}).get(level));
        if (!cache?.stats && !s) throw new StudioError('INTERNAL', `PhotoWCT: no style image and no cached statistics for level ${level}`);
        const st = cache?.stats ? undefined : ae.encode(s!);
        if (st) disposeSwitches(st.switches);
        try {
          let out: tf.Tensor4D;
          let covError: number;
          let regions: LevelReport['regions'];
          if (labels) {
            const [, hc, wc] = c.features.shape;
            const [, hs, ws] = st!.features.shape;
            const ids = contentStyleLabelIds(labels.content, labels.style, { height: hc, width: wc }, { height: hs, width: ws });
            const r = await wctWithLabels(c.features, st!.features, ids.content, ids.style, { alpha: p.alpha, featureScale: p.featureScale });
            ({ out, covError } = r);
            regions = r.regions.map((g) => ({ label: g.label, used: g.used, reason: g.reason }));
          } else {
            const r = await wct(c.features, st?.features ?? null, { alpha: p.alpha, featureScale: p.featureScale }, cache);
            ({ out, covError } = r);
          }
          // Passed on unclamped, as FastPhotoStyle does: only the final result is clamped (tensorToImage).
          const decoded = ae.decode(out, c.switches);
          out.dispose();
          x.dispose();
          x = decoded;
          report.push({ level, ms: performance.now() - t0, covError, regions });
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
