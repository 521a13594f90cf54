/**
 * `match`: the model-free photographic look transfer (REFERENCE §6 and §3's smoothing), the studio's
 * default when no network weights are installed.
 *
 *   1. both images to CIELAB (./spaces.ts);
 *   2. the linear Monge–Kantorovich map between the two colour Gaussians (./transfer.ts);
 *   3. iterative distribution transfer for the rest of the distribution, learnt on a sample of the
 *      photo's colours and carried by a colour lattice (./lattice.ts), so the result of 2–3 is one
 *      smooth function of the photo's colour;
 *   4. regrain: the closed-form smoothing (or its guided-filter approximation) with the photo as the
 *      guide makes the result an edge-aware, locally affine function of the photo: its own edges and
 *      grain, the reference's colours (../photo/smoothing.ts, as after PhotoWCT);
 *   5. controls: keep luminance (steps 2–3 on a*b* only; L* of the photo restored exactly at the end),
 *      strength α (blend with the photo in L*a*b*), label maps (steps 2–3 per region, with PhotoWCT's
 *      validity rule; regions without a partner keep the photo's colours).
 * Everything is deterministic for a seed; nothing here can produce NaN from finite input.
 */
import type { RgbImage } from '../image.ts';
import { StudioError } from '../../errors.ts';
import { mulberry32 } from '../random.ts';
import { regionRejection, type LabelRegion } from '../photo/labels.ts';
import type { SmoothingHooks, SmoothingMode, SmoothingReport } from '../photo/smoothing.ts';
import { ColourLattice } from './lattice.ts';
import { labToRgb, labToRgbKeepL, lightness, rgbPixelToLab, rgbToLab } from './spaces.ts';
import { applyTransport, gaussianOf, iterativeDistributionTransfer, transportMap, IDT_DEFAULTS, QuantileMap, type IdtReport } from './transfer.ts';
import { fitScale, regrain, regrainFast, type RegrainSettings } from './regrain.ts';
import { downsample } from '../photo/affine-transfer.ts';

export const COLOUR_SPACE = 'CIELAB (D65)';

export interface TransferOptions {
  keepLuminance?: boolean;
  /** Which classical steps run (both by default; one alone for comparisons). */
  linear?: boolean;
  idt?: boolean;
  /** IDT's iteration limit and stopping tolerance (./transfer.ts). */
  maxIterations?: number;
  tolerance?: number;
  seed?: number;
  /** At most this many colours of each image drive the distribution transfer. */
  sample?: number;
  /** Lattice nodes per axis. */
  lattice?: number;
  /** A channel the distribution transfer leaves as it is (see IdtOptions.pin). */
  pin?: number;
  /** Label ids per pixel (row-major, the images' own sizes); negative: unlabelled. */
  labels?: { content: Int32Array; style: Int32Array };
  checkCancelled?: () => void;
}

export const TRANSFER_DEFAULTS = { sample: 8192, lattice: 41, seed: 0 } as const;
/** The re-match's map is gentle (the colours are already close): a coarser lattice carries it. */
export const REMATCH_LATTICE = 33;

export interface RegionReport extends Omit<LabelRegion, 'covError' | 'meanError' | 'whitening' | 'coloring'> {
  idtIterations?: number;
}

export interface TransferReport {
  colourSpace: string;
  channels: 'L*a*b*' | 'a*b*';
  steps: { linear: boolean; idt: boolean };
  /** The whole image's (or, with labels, each used region's) transfer. */
  idt: IdtReport;
  /** Eigenvalues of the photo's colour covariance raised to the regulariser's floor (rank-deficient photos). */
  regularized: number;
  regions?: RegionReport[];
  ms: number;
}

function checkImage(img: RgbImage, what: string): void {
  if (!img || !Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1 || img.data?.length !== img.width * img.height * 3) {
    throw new StudioError('BAD_ARGUMENT', `colour match: the ${what} is not a valid RGB image`);
  }
  for (let i = 0; i < img.data.length; i++) {
    if (!Number.isFinite(img.data[i])) throw new StudioError('BAD_ARGUMENT', `colour match: the ${what} holds a non-finite value at index ${i}`);
  }
}

/** At most `max` of `indices` (all of them when there are no more), drawn with a seeded RNG. */
function sampleIndices(indices: Int32Array, max: number, rng: () => number): Int32Array {
  if (indices.length <= max) return indices;
  const out = new Int32Array(max);
  for (let k = 0; k < max; k++) out[k] = indices[Math.floor(rng() * indices.length)];
  return out;
}

/** Channels `channels` of the listed pixels of an interleaved 3-channel array, as d-channel points. */
function gather(lab: Float32Array | Float64Array, idx: ArrayLike<number>, channels: readonly number[]): Float64Array {
  const d = channels.length;
  const out = new Float64Array(idx.length * d);
  for (let k = 0; k < idx.length; k++) for (let c = 0; c < d; c++) out[k * d + c] = lab[idx[k] * 3 + channels[c]];
  return out;
}

const allIndices = (n: number) => {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
};
const ALL = [0, 1, 2] as const, CHROMA = [1, 2] as const;

/** The pixel indices of every label (≥ 0). */
function byLabel(labels: Int32Array): Map<number, Int32Array> {
  const counts = new Map<number, number>();
  for (const id of labels) if (id >= 0) counts.set(id, (counts.get(id) ?? 0) + 1);
  const out = new Map<number, Int32Array>();
  for (const [id, n] of counts) out.set(id, new Int32Array(n));
  const fill = new Map<number, number>();
  labels.forEach((id, i) => {
    if (id < 0) return;
    const k = fill.get(id) ?? 0;
    out.get(id)![k] = i;
    fill.set(id, k + 1);
  });
  return out;
}

/** One photo region and its partner in the reference. */
interface Pair {
  /** The photo's pixels. */
  ci: Int32Array;
  /** L*a*b* of a sample (≤ `sample`) of the reference region's pixels: all the transfer needs of it. */
  target: Float64Array;
  report?: RegionReport;
}

interface Regions {
  pairs: Pair[];
  report?: RegionReport[];
  /** Photo pixels no used region covers (they keep the photo's values). */
  untouched?: Int32Array;
}

/** The regions (one, every pixel, without labels), with the reference's side sampled and converted. */
function regionsOf(style: RgbImage, nc: number, sample: number, rng: () => number, labels?: { content: Int32Array; style: Int32Array }): Regions {
  const ns = style.width * style.height;
  const targetOf = (si: Int32Array) => {
    const idx = sampleIndices(si, sample, rng);
    const out = new Float64Array(idx.length * 3);
    for (let k = 0; k < idx.length; k++) rgbPixelToLab(style.data[3 * idx[k]], style.data[3 * idx[k] + 1], style.data[3 * idx[k] + 2], out, 3 * k);
    return out;
  };
  if (!labels) return { pairs: [{ ci: allIndices(nc), target: targetOf(allIndices(ns)) }] };
  const { content: lc, style: ls } = labels;
  if (!(lc instanceof Int32Array) || lc.length !== nc) throw new StudioError('BAD_ARGUMENT', `colour match: the photo's labels must be an Int32Array of ${nc} ids (one per pixel)`);
  if (!(ls instanceof Int32Array) || ls.length !== ns) throw new StudioError('BAD_ARGUMENT', `colour match: the reference's labels must be an Int32Array of ${ns} ids (one per pixel)`);
  const byC = byLabel(lc), byS = byLabel(ls);
  const report: RegionReport[] = [...new Set([...byC.keys(), ...byS.keys()])].sort((a, b) => a - b).map((label) => {
    const contentPixels = byC.get(label)?.length ?? 0, stylePixels = byS.get(label)?.length ?? 0;
    const reason = contentPixels === 0 ? 'absent from the photo' : regionRejection(contentPixels, stylePixels);
    return { label, contentPixels, stylePixels, used: reason === undefined, ...(reason ? { reason } : {}) };
  });
  const used = report.filter((r) => r.used);
  const covered = new Uint8Array(nc);
  for (const r of used) for (const i of byC.get(r.label)!) covered[i] = 1;
  const untouched: number[] = [];
  covered.forEach((v, i) => { if (!v) untouched.push(i); });
  return { pairs: used.map((r) => ({ ci: byC.get(r.label)!, target: targetOf(byS.get(r.label)!), report: r })), report, untouched: Int32Array.from(untouched) };
}

type Resolved = TransferOptions & { sample: number; lattice: number; seed: number };

/**
 * Steps 2–3 on one region and the given channels: the photo's pixels take the look of the
 * reference's sample, written into `out` (L*a*b*, changed in place on those channels).
 */
function transferRegion(lab: Float32Array, pair: Pair, channels: readonly number[], out: Float32Array, o: Resolved, rng: () => number) {
  const d = channels.length;
  const lattice = ColourLattice.around(lab, 3, channels[0], d, o.lattice, pair.ci);
  const nodes = lattice.nodes();
  const source = gather(lab, sampleIndices(pair.ci, o.sample, rng), channels);
  const target = gather(pair.target, allIndices(pair.target.length / 3), channels);
  let regularized = 0;
  if (o.linear !== false) {
    const map = transportMap(gaussianOf(source, d), gaussianOf(target, d));
    regularized = map.regularized;
    applyTransport(map, source);
    applyTransport(map, nodes);
  }
  const idt: IdtReport = o.idt !== false
    ? iterativeDistributionTransfer(source, target, d, [nodes], {
      maxIterations: o.maxIterations ?? IDT_DEFAULTS.maxIterations, tolerance: o.tolerance ?? IDT_DEFAULTS.tolerance, seed: o.seed, checkCancelled: o.checkCancelled, pin: o.pin,
    })
    : { iterations: 0, converged: true, changes: [] };
  lattice.apply(nodes, lab, out, 3, channels[0], pair.ci);
  return { idt, regularized };
}

/** Steps 2–3 over every region, from L*a*b* to a new L*a*b*. */
function transferLab(lab: Float32Array, regions: Regions, channels: readonly number[], o: Resolved, rng: () => number): { lab: Float32Array; idt: IdtReport; regularized: number } {
  const out = Float32Array.from(lab);
  let idt: IdtReport | undefined;
  let regularized = 0;
  for (const pair of regions.pairs) {
    const res = transferRegion(lab, pair, channels, out, o, rng);
    if (pair.report) pair.report.idtIterations = res.idt.iterations;
    regularized += res.regularized;
    idt = !idt ? res.idt : { iterations: Math.max(idt.iterations, res.idt.iterations), converged: idt.converged && res.idt.converged, changes: [] };
  }
  return { lab: out, idt: idt ?? { iterations: 0, converged: true, changes: [] }, regularized };
}

/** L*a*b* → sRGB; pixels outside every used region get the photo's own values back exactly. */
function toRgb(lab: Float32Array, keepLuminance: boolean, photo: RgbImage, regions: Regions): RgbImage {
  const data = keepLuminance ? labToRgbKeepL(lab) : labToRgb(lab);
  for (const i of regions.untouched ?? []) {
    data[3 * i] = photo.data[3 * i]; data[3 * i + 1] = photo.data[3 * i + 1]; data[3 * i + 2] = photo.data[3 * i + 2];
  }
  return { width: photo.width, height: photo.height, data };
}

function prepare(content: RgbImage, style: RgbImage, opts: TransferOptions) {
  checkImage(content, 'photo');
  checkImage(style, 'reference');
  const o = { ...TRANSFER_DEFAULTS, ...opts };
  if (!Number.isInteger(o.sample) || o.sample < 2) throw new StudioError('BAD_ARGUMENT', `colour match: sample must be an integer ≥ 2, got ${o.sample}`);
  if (!Number.isInteger(o.lattice) || o.lattice < 2 || o.lattice > 129) throw new StudioError('BAD_ARGUMENT', `colour match: lattice must be an integer in [2, 129], got ${o.lattice}`);
  const rng = mulberry32(o.seed);
  const regions = regionsOf(style, content.width * content.height, o.sample, rng, opts.labels);
  let labC: Float32Array | undefined;
  return { o, rng, regions, photoLab: () => (labC ??= rgbToLab(content.data) as Float32Array) };
}

/**
 * Steps 1–3 alone (the classical transfer, before the regrain): the photo with the reference's
 * colour distribution. Returns the image (sRGB, clipped; with keepLuminance the photo's L* kept
 * exactly), its L*a*b* and the photo's.
 */
export function transferColours(content: RgbImage, style: RgbImage, opts: TransferOptions = {}): { image: RgbImage; lab: Float32Array; photoLab: Float32Array; report: TransferReport } {
  const t0 = performance.now();
  const { o, rng, regions, photoLab } = prepare(content, style, opts);
  const labC = photoLab();
  const { lab, idt, regularized } = transferLab(labC, regions, o.keepLuminance ? CHROMA : ALL, o, rng);
  return {
    image: toRgb(lab, o.keepLuminance === true, content, regions), lab, photoLab: labC,
    report: {
      colourSpace: COLOUR_SPACE, channels: o.keepLuminance ? 'a*b*' : 'L*a*b*', steps: { linear: o.linear !== false, idt: o.idt !== false },
      idt, regularized, ...(regions.report ? { regions: regions.report } : {}), ms: performance.now() - t0,
    },
  };
}

export interface MatchOptions extends TransferOptions {
  /** Strength: the result blended with the photo in L*a*b* (1: all the look, 0: the photo). */
  alpha?: number;
  /** Step 4: the regrain. */
  regrain?: SmoothingMode;
  smoothing?: RegrainSettings;
  /** Step 5: pull the regrained tones and colours back to the reference's (default on). */
  rematch?: boolean;
  hooks?: SmoothingHooks;
  /** Called as each stage starts, with the share of the work done before it (0–1). */
  onStage?: (stage: string, fraction: number) => void;
}

export interface MatchReport extends TransferReport {
  alpha: number;
  keepLuminance: boolean;
  regrain: SmoothingReport;
  /** The re-match after the regrain: its distribution transfer (a*b*). */
  rematch?: { idt: IdtReport };
  stageMs: { transfer: number; regrain: number; rematch: number; finish: number };
}

/**
 * Step 5: after the regrain, tones and colours are pulled back to the reference's by pointwise maps
 * — L* by a monotone tone curve (1-D quantile matching), a*b* by the 2-D transfer of steps 2–3 —
 * which change no pixel's neighbourhood order, so the regrain's structure stays while the look
 * distance the regrain's averaging added is taken back.
 */
function rematch(lab: Float32Array, regions: Regions, o: Resolved, rng: () => number): { lab: Float32Array; idt: IdtReport } {
  const toned = Float32Array.from(lab);
  if (!o.keepLuminance) {
    for (const { ci, target } of regions.pairs) {
      const Lc = Float64Array.from(sampleIndices(ci, o.sample, rng), (i) => lab[3 * i]).sort();
      const Ls = Float64Array.from({ length: target.length / 3 }, (_, k) => target[3 * k]).sort();
      const curve = new QuantileMap(Lc, Ls, IDT_DEFAULTS.knots);
      for (const i of ci) toned[3 * i] = curve.map(lab[3 * i]);
    }
  }
  // a*b* conditioned on L*: a 3-D transfer whose L* stays the tone curve's (with keepLuminance, a*b* alone).
  const r = { ...o, lattice: Math.min(o.lattice, REMATCH_LATTICE) };
  const chroma = o.keepLuminance ? transferLab(toned, regions, CHROMA, r, rng) : transferLab(toned, regions, ALL, { ...r, linear: false, pin: 0 }, rng);
  return { lab: chroma.lab, idt: chroma.idt };
}

/** The whole method (steps 1–5). */
export async function colourMatch(content: RgbImage, style: RgbImage, opts: MatchOptions): Promise<{ image: RgbImage; report: MatchReport }> {
  const t0 = performance.now();
  const alpha = opts.alpha ?? 1;
  if (!(alpha >= 0 && alpha <= 1)) throw new StudioError('BAD_ARGUMENT', `colour match: alpha must be in [0, 1], got ${opts.alpha}`);
  const mode = opts.regrain ?? 'fast';
  if (mode !== 'none' && !opts.smoothing) throw new StudioError('INTERNAL', 'colour match: the regrain needs its smoothing settings');
  const keepLuminance = opts.keepLuminance === true;
  const { o, rng, regions, photoLab } = prepare(content, style, { ...opts, checkCancelled: opts.checkCancelled ?? (() => void opts.hooks?.checkCancelled?.()) });
  const { width, height } = content;
  const base = {
    colourSpace: COLOUR_SPACE, channels: keepLuminance ? 'a*b*' as const : 'L*a*b*' as const, steps: { linear: o.linear !== false, idt: o.idt !== false },
    ...(regions.report ? { regions: regions.report } : {}), alpha, keepLuminance,
  };
  if (alpha === 0) {
    // Nothing of the look: the photo itself, exactly.
    return {
      image: { width, height, data: Float32Array.from(content.data) },
      report: { ...base, idt: { iterations: 0, converged: true, changes: [] }, regularized: 0, regrain: { mode: 'none', width, height, ms: 0 }, ms: 0, stageMs: { transfer: 0, regrain: 0, rematch: 0, finish: 0 } },
    };
  }
  const channels = keepLuminance ? CHROMA : ALL;
  opts.onStage?.('colour transfer', 0);
  // The fast regrain fits at 1/s of the size: steps 2–3 then run on the reduced photo alone (the
  // full-size transferred image would only be reduced again), unless label maps need every pixel.
  const s2 = mode === 'fast' && !opts.labels ? fitScale(width, height) : 1;
  let transferred: ReturnType<typeof transferLab>;
  let grained: Awaited<ReturnType<typeof regrain>>;
  let t1: number;
  if (s2 > 1) {
    const small = downsample(content.data, 3, width, height, s2);
    const smallRgb = Float32Array.from(small.data);
    const labSmall = rgbToLab(smallRgb) as Float32Array;
    const pairs = [{ ci: allIndices(small.width * small.height), target: regions.pairs[0].target }];
    transferred = transferLab(labSmall, { pairs }, channels, o, rng);
    t1 = performance.now();
    opts.onStage?.('regrain (fast)', 0.4);
    opts.hooks?.checkCancelled?.();
    const photoL = lightness(content.data);
    grained = regrainFast(content, photoL, {
      rgb: smallRgb, L: Float32Array.from({ length: small.width * small.height }, (_, k) => labSmall[3 * k]), lab: transferred.lab, width: small.width, height: small.height,
    }, opts.smoothing!, keepLuminance);
  } else {
    transferred = transferLab(photoLab(), regions, channels, o, rng);
    t1 = performance.now();
    if (mode !== 'none') opts.onStage?.(`regrain (${mode})`, mode === 'exact' ? 0.1 : 0.4);
    grained = await regrain(content, photoLab(), transferred.lab, mode, opts.smoothing!, keepLuminance, opts.hooks);
  }
  const tTransfer = t1 - t0;
  const t2 = performance.now();
  if (mode !== 'none' && opts.rematch !== false) opts.onStage?.('re-match', mode === 'exact' ? 0.9 : 0.7);
  const again = mode !== 'none' && opts.rematch !== false ? rematch(grained.lab, regions, o, rng) : undefined;
  const lab = again?.lab ?? grained.lab;
  const t3 = performance.now();
  if (alpha < 1 || keepLuminance) {
    const labC = photoLab();
    for (let i = 0; i < lab.length; i += 3) {
      lab[i] = keepLuminance ? labC[i] : alpha * lab[i] + (1 - alpha) * labC[i];
      lab[i + 1] = alpha * lab[i + 1] + (1 - alpha) * labC[i + 1];
      lab[i + 2] = alpha * lab[i + 2] + (1 - alpha) * labC[i + 2];
    }
  }
  const image = toRgb(lab, keepLuminance, content, regions);
  const ms = performance.now() - t0;
  return {
    image,
    report: {
      ...base, idt: transferred.idt, regularized: transferred.regularized, regrain: grained.report,
      ...(again ? { rematch: { idt: again.idt } } : {}), ms,
      stageMs: { transfer: tTransfer, regrain: grained.report.ms, rematch: t3 - t2, finish: performance.now() - t3 },
    },
  };
}
