/**
 * Label maps for WCT (REFERENCE.md §3): the content and the style image each come with a map that
 * paints every region one grey value or colour; WCT then runs separately between the content and
 * style pixels that carry the same label.
 *
 *  - `labelImageToIds` turns a map (any size; grey, RGB or RGBA; 8-bit or float in [0, 1]) into one
 *    label id per feature position, resized by nearest neighbour (half-pixel centres, so no colour
 *    that is not in the map appears at region borders). A shared `LabelPalette` gives the same colour
 *    the same id in every map: colours are compared on 8 bits (floats are rounded from [0, 1]), grey
 *    g equals RGB (g, g, g), and alpha is ignored. `contentStyleLabelIds` does both maps at once.
 *  - `wctWithLabels` runs WCT per label. A label is used only where its content and style regions
 *    both have more than 10 positions and the larger is less than 100× the smaller (REFERENCE);
 *    content positions whose label is absent from the style, fails that rule, or is negative
 *    ("unlabelled") keep their features f_c. The regulariser's scale u² (./wct.ts) is taken once from
 *    the whole content, as it belongs to the model's feature scale, not to a region.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { checkFeatures, checkOptions, referenceUnit, REFERENCE_CUTOFF, wct2d, type SqrtInfo, type WctOptions } from './wct.ts';

export interface LabelImage {
  width: number;
  height: number;
  /** Row-major pixels, 1 (grey), 3 (RGB) or 4 (RGBA) channels; 8-bit 0–255 or float 0–1. */
  data: Uint8Array | Uint8ClampedArray | Float32Array | Float64Array;
  /** Channels per pixel; by default inferred from data.length / (width·height). */
  channels?: 1 | 3 | 4;
}

/** REFERENCE §3: a region needs more than this many positions in both images. */
export const MIN_REGION_PIXELS = 10;
/** REFERENCE §3: the larger of the two regions must be less than this many times the smaller. */
export const MAX_REGION_RATIO = 100;

/** Colour → label id, shared between maps so the same colour means the same label. */
export class LabelPalette {
  private readonly ids = new Map<number, number>();
  /** colors[id] = [r, g, b] on 0–255. */
  readonly colors: [number, number, number][] = [];

  idOf(r: number, g: number, b: number): number {
    const key = (r << 16) | (g << 8) | b;
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.colors.length;
      this.ids.set(key, id);
      this.colors.push([r, g, b]);
    }
    return id;
  }

  get size(): number {
    return this.colors.length;
  }
}

const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

function checkLabelImage(img: LabelImage, what: string): number {
  if (img === null || typeof img !== 'object') throw new StudioError('BAD_ARGUMENT', `${what}: expected a label image {width, height, data}, got ${img === null ? 'null' : typeof img}`);
  const { width, height, data } = img;
  if (!positiveInt(width) || !positiveInt(height)) throw new StudioError('BAD_ARGUMENT', `${what}: width and height must be positive integers, got ${width}×${height}`);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray || data instanceof Float32Array || data instanceof Float64Array)) {
    throw new StudioError('BAD_ARGUMENT', `${what}: pixel data must be a Uint8Array, Uint8ClampedArray, Float32Array or Float64Array, got ${Object.prototype.toString.call(data).slice(8, -1)}`);
  }
  if (data.length === 0) throw new StudioError('BAD_ARGUMENT', `${what}: the label map is empty`);
  const channels = img.channels ?? data.length / (width * height);
  if (![1, 3, 4].includes(channels) || data.length !== width * height * channels) {
    throw new StudioError('BAD_ARGUMENT', `${what}: ${data.length} values do not make a ${width}×${height} map with 1, 3 or 4 channels`);
  }
  return channels;
}

/**
 * Label ids of a label map at a feature size (height × width positions), nearest-neighbour resized.
 * Pass the same palette for the content's and the style's map.
 */
export function labelImageToIds(img: LabelImage, height: number, width: number, palette: LabelPalette = new LabelPalette(), what = 'label map'): Int32Array {
  const channels = checkLabelImage(img, what);
  if (!positiveInt(height) || !positiveInt(width)) throw new StudioError('BAD_ARGUMENT', `${what}: the feature size must be positive integers, got ${height}×${width}`);
  const { data } = img;
  const isFloat = data instanceof Float32Array || data instanceof Float64Array;
  const q = (v: number): number => {
    if (!Number.isFinite(v)) throw new StudioError('BAD_ARGUMENT', `${what}: the label map holds a non-finite value (${v})`);
    return isFloat ? Math.min(255, Math.max(0, Math.round(v * 255))) : v;
  };
  const ids = new Int32Array(height * width);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
      const p = (sy * img.width + sx) * channels;
      const r = q(data[p]);
      ids[y * width + x] = channels === 1 ? palette.idOf(r, r, r) : palette.idOf(r, q(data[p + 1]), q(data[p + 2]));
    }
  }
  return ids;
}

/** Label ids of a content and a style map at their feature sizes, with one palette. */
export function contentStyleLabelIds(
  content: LabelImage, style: LabelImage,
  contentSize: { height: number; width: number }, styleSize: { height: number; width: number },
): { content: Int32Array; style: Int32Array; palette: LabelPalette } {
  const palette = new LabelPalette();
  return {
    content: labelImageToIds(content, contentSize.height, contentSize.width, palette, 'content label map'),
    style: labelImageToIds(style, styleSize.height, styleSize.width, palette, 'style label map'),
    palette,
  };
}

export interface LabelRegion {
  label: number;
  contentPixels: number;
  stylePixels: number;
  /** Whether WCT ran for this label. */
  used: boolean;
  /** Why not, when it did not. */
  reason?: string;
  covError?: number;
  meanError?: number;
  whitening?: SqrtInfo;
  coloring?: SqrtInfo;
}

export interface LabelWctResult {
  out: tf.Tensor4D;
  /** The largest covariance error over the labels used; NaN when none was. */
  covError: number;
  regions: LabelRegion[];
  regularizer: number;
  cutoff: number;
}

function checkLabels(labels: Int32Array, n: number, what: string, h: number, w: number): void {
  if (!(labels instanceof Int32Array)) {
    throw new StudioError('BAD_ARGUMENT', `WCT: ${what} labels must be an Int32Array (one id per feature position), got ${labels === null ? 'null' : Object.prototype.toString.call(labels).slice(8, -1)}`);
  }
  if (labels.length !== n) {
    throw new StudioError('BAD_ARGUMENT', `WCT: ${what} labels have ${labels.length} entries but the ${what} features have ${h}×${w} = ${n} positions`, 'make the label ids at the feature size (labelImageToIds)');
  }
}

function positionsByLabel(labels: Int32Array): Map<number, number[]> {
  const m = new Map<number, number[]>();
  labels.forEach((id, i) => {
    if (id < 0) return;
    let list = m.get(id);
    if (!list) m.set(id, (list = []));
    list.push(i);
  });
  return m;
}

/** Why a label pair is not used, or undefined if it is (REFERENCE §3's rule). */
export function regionRejection(contentPixels: number, stylePixels: number): string | undefined {
  if (stylePixels === 0) return 'absent from the style';
  if (contentPixels <= MIN_REGION_PIXELS || stylePixels <= MIN_REGION_PIXELS) return `a region has ${MIN_REGION_PIXELS} positions or fewer`;
  if (Math.max(contentPixels, stylePixels) >= MAX_REGION_RATIO * Math.min(contentPixels, stylePixels)) return `region sizes differ ${MAX_REGION_RATIO}× or more`;
  return undefined;
}

/**
 * WCT per label: content positions with label L take the WCT of the content's L-region towards the
 * style's L-region; the rest keep f_c. Labels are ids per feature position (row-major H×W), e.g. from
 * `contentStyleLabelIds`. The caller owns `out`.
 */
export async function wctWithLabels(fc: tf.Tensor4D, fs: tf.Tensor4D, contentLabels: Int32Array, styleLabels: Int32Array, opts: WctOptions = {}): Promise<LabelWctResult> {
  const [hc, wc, c] = checkFeatures(fc, 'content');
  const [hs, ws, cs] = checkFeatures(fs, 'style');
  if (cs !== c) throw new StudioError('BAD_ARGUMENT', `WCT: content and style features have different channel counts (${c} and ${cs})`);
  checkLabels(contentLabels, hc * wc, 'content', hc, wc);
  checkLabels(styleLabels, hs * ws, 'style', hs, ws);
  const o = checkOptions(opts);

  const byC = positionsByLabel(contentLabels);
  const byS = positionsByLabel(styleLabels);
  const regions: LabelRegion[] = [...new Set([...byC.keys(), ...byS.keys()])].sort((a, b) => a - b).map((label) => {
    const contentPixels = byC.get(label)?.length ?? 0;
    const stylePixels = byS.get(label)?.length ?? 0;
    const reason = contentPixels === 0 ? 'absent from the content' : regionRejection(contentPixels, stylePixels);
    return { label, contentPixels, stylePixels, used: reason === undefined, ...(reason ? { reason } : {}) };
  });

  const xc = tf.reshape(fc, [hc * wc, c]) as tf.Tensor2D;
  const xs = tf.reshape(fs, [hs * ws, c]) as tf.Tensor2D;
  const parts: tf.Tensor2D[] = [];
  try {
    const u2 = await referenceUnit(xc, o.featureScale);
    const order: number[] = [];
    let covError = NaN;
    for (const region of regions) {
      if (!region.used) continue;
      const ic = byC.get(region.label)!;
      const is = byS.get(region.label)!;
      const [subC, subS] = tf.tidy(() => [tf.gather(xc, tf.tensor1d(ic, 'int32')), tf.gather(xs, tf.tensor1d(is, 'int32'))] as [tf.Tensor2D, tf.Tensor2D]);
      try {
        const r = await wct2d(subC, subS, u2, o.alpha, o.method);
        parts.push(r.out);
        order.push(...ic);
        Object.assign(region, { covError: r.covError, meanError: r.meanError, whitening: r.whitening, coloring: r.coloring });
        covError = Number.isNaN(covError) ? r.covError : Math.max(covError, r.covError);
      } finally {
        tf.dispose([subC, subS]);
      }
    }
    const cutoff = REFERENCE_CUTOFF * u2;
    if (parts.length === 0) return { out: fc.clone(), covError, regions, regularizer: u2, cutoff };

    // Positions left as they are, then one gather that puts every row back in place.
    const stylised = new Uint8Array(hc * wc);
    for (const i of order) stylised[i] = 1;
    const rest: number[] = [];
    stylised.forEach((s, i) => { if (!s) rest.push(i); });
    const inverse = new Int32Array(hc * wc);
    [...order, ...rest].forEach((pos, row) => { inverse[pos] = row; });
    const out = tf.tidy(() => {
      const all = rest.length ? [...parts, tf.gather(xc, tf.tensor1d(rest, 'int32'))] : parts;
      return tf.reshape(tf.gather(tf.concat(all, 0), tf.tensor1d(inverse, 'int32')), [1, hc, wc, c]) as tf.Tensor4D;
    });
    return { out, covError, regions, regularizer: u2, cutoff };
  } finally {
    tf.dispose([xc, xs, ...parts]);
  }
}
