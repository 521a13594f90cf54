/**
 * Full resolution for the photorealistic methods (REFERENCE §7): the look is computed at a working
 * size; a local affine colour model from the photo's colours to the result's is fitted there (small
 * windows, small ε: the model the matting Laplacian itself assumes), its coefficient maps are
 * upsampled bilinearly, and applied to the photo decoded at the output size. The result is an
 * edge-aware function of the full photo: its own detail, grain and edges, the look's colours.
 *
 * Memory stays bounded: the photo is decoded once as integers at its own bit depth (no float copy),
 * the model is applied band by band of rows straight into the output's integer samples (16-bit when
 * the output is), and sharp encodes from those. A 45-megapixel photo: 135 MB in (8-bit), 270 MB out
 * (16-bit), the encoded file; nothing in between scales with the photo.
 */
import type { RgbImage } from '../engine/image.ts';
import { applyLocalAffineToSamples, fitLocalAffine, type AffineFit, type CarryBands } from '../engine/photo/affine-transfer.ts';
import { CARRY_KERNEL, acquirePool, smoothThreads } from '../engine/photo/smooth-pool.ts';
import { readImage, readImageRaw, probeImage, fitLongestSide, type DecodedImage, type SourceInfo } from '../io/images.ts';
import { checkMemory } from './limits.ts';
import type { MemoryCost } from '../engine/memory.ts';
import { checkOutputPath, outputBitDepth, writeImage, writeRawImage, type WriteOptions } from '../io/write.ts';
import type { CarryJob, JobEvent, OutputSize } from '../protocol.ts';
import { StudioError } from '../errors.ts';
import { labToRgbKeepL, rgbPixelToLab } from '../engine/colour/spaces.ts';

/**
 * The carry's fit, chosen by measurement (bench/fullres.ts, 24 MP from a 1024-px colour match; the
 * downscaled full result against the working result / the fine-detail correlation with the photo):
 * r 1, ε 1e-4: 45.1 dB / 0.881; r 2, ε 1e-4: 43.4 / 0.905; r 2, ε 1e-5: 45.3 / 0.909; r 3, ε 1e-5:
 * 43.9 / 0.911; r 4, ε 1e-5: 43.0 / 0.913; r 1, ε 1e-3: 41.5 / 0.704. A larger ε shrinks the slopes
 * where the photo is nearly flat, and its grain with them; a 3×3 window lets the maps vary from one
 * working pixel to the next, which their bilinear upsampling turns into detail of its own. 5×5
 * windows (r = 2 at the working size) and ε = 1e-5 (colours on [0, 1]) keep both.
 */
export const CARRY_FIT = { radius: 2, eps: 1e-5 } as const;

/** Rows per band: small enough to cancel promptly, large enough to keep the loop tight. */
const BAND_ROWS = 256;

export interface FullResReport {
  working: { width: number; height: number };
  output: { width: number; height: number; bitDepth: 8 | 16 };
  fit: { radius: number; eps: number };
  /** Threads that applied the model. */
  threads: number;
  stages: { fitMs: number; decodeMs: number; applyMs: number; writeMs: number };
  ms: number;
  /** The process's peak resident memory after the stage (bytes). */
  peakRssBytes: number;
}

/** The output size for `outputSize` and a photo of `source` size: the photo's own, or a longest side (never enlarged). */
export function outputDimensions(source: { width: number; height: number }, outputSize: 'full' | number): { width: number; height: number } {
  return outputSize === 'full' ? { width: source.width, height: source.height } : fitLongestSide(source.width, source.height, outputSize);
}

/**
 * Memory of the full-resolution stage for a photo of `sourceBits`: per output pixel the decoded photo
 * (8 or 16 bits), the output samples (16-bit at most) and the encoded file (at most about the samples).
 */
export function fullResCost(sourceBits: 8 | 16): MemoryCost {
  return { base: 64 * 2 ** 20, perPixel: 3 * (sourceBits / 8 + 2 + 2) };
}

/** Refuses an output of `target` size from a photo like `source` that the machine's memory cannot hold. */
function checkFullResFits(source: SourceInfo, target: { width: number; height: number }): void {
  checkMemory(fullResCost(source.bitDepth === 16 ? 16 : 8), target.width, target.height, `a ${target.width}×${target.height} result`, 'the full-resolution stage',
    (side) => `use --output-size ${side} (the largest that fits), or close other programs`);
}

/** Refuses, before any work, an output the machine's memory cannot hold; names the largest that fits. */
export async function checkFullResMemory(file: string, outputSize: 'full' | number, maxPixels?: number): Promise<void> {
  const info = await probeImage(file, { maxPixels });
  checkFullResFits(info, outputDimensions(info, outputSize));
}

/** What carrying a working-size result to another size needs. */
export interface CarryArgs {
  photoFile: string;
  workingPhoto: RgbImage;
  workingResult: RgbImage;
  maxPixels?: number;
  out: string;
  write: Omit<WriteOptions, 'metadataFrom'>;
  checkCancelled?: () => void;
  onProgress?: (fraction: number) => void;
  /** Put back each pixel's CIE L* from the full photo (colour match's keep luminance: exact at every size). */
  keepLightness?: boolean;
}

/** What a photorealistic job returns about its result (the size written, and the size computed at). */
export interface WrittenResult {
  out: string;
  /** The written result's size. */
  width: number;
  height: number;
  /** The size the look was computed at. */
  working: { width: number; height: number };
  fullResolution?: FullResReport;
  totalMs: number;
  backend: string;
  report?: string;
}

/**
 * Writes the result at the output size: fits the model on (working photo → working result), decodes
 * the photo at the output size, applies the model band by band, writes with the photo's metadata.
 * `source` is the photo's probe when the caller has it.
 */
export async function writeFullResolution(args: CarryArgs & { outputSize: 'full' | number; source?: SourceInfo }): Promise<FullResReport> {
  const t0 = performance.now();
  const { workingPhoto: wp, workingResult: wr } = args;
  if (wp.width !== wr.width || wp.height !== wr.height) {
    throw new StudioError('INTERNAL', `full resolution: the working photo is ${wp.width}×${wp.height}, its result ${wr.width}×${wr.height}`);
  }
  const info = args.source ?? await probeImage(args.photoFile, { maxPixels: args.maxPixels });
  const target = outputDimensions(info, args.outputSize);
  checkFullResFits(info, target);
  const fit = fitLocalAffine(wp.data, wr.data, wp.width, wp.height, 3, 3, CARRY_FIT);
  const t1 = performance.now();
  args.checkCancelled?.();
  const raw = await readImageRaw(args.photoFile, { size: target, maxPixels: args.maxPixels });
  const t2 = performance.now();
  const { width: W, height: H } = raw;
  const write = { ...args.write, metadataFrom: raw.source };
  const bitDepth = await outputBitDepth(args.out, W, H, write);
  let samples: Uint8Array | Uint16Array;
  try {
    // Shared, so the smoothing pool's threads can fill their bands of it.
    const bytes = new SharedArrayBuffer(W * H * 3 * (bitDepth / 8));
    samples = bitDepth === 16 ? new Uint16Array(bytes) : new Uint8Array(bytes);
  } catch (e) {
    throw new StudioError('IMAGE_TOO_LARGE', `not enough memory for a ${W}×${H} result`, 'use a smaller --output-size', { cause: e });
  }
  const threads = applyBands(fit, raw.samples, raw.bitDepth, W, H, samples, bitDepth, args);
  const t3 = performance.now();
  await writeRawImage(args.out, { width: W, height: H, bitDepth, samples }, write);
  const t4 = performance.now();
  return {
    working: { width: wp.width, height: wp.height },
    output: { width: W, height: H, bitDepth },
    fit: { ...CARRY_FIT },
    threads,
    stages: { fitMs: t1 - t0, decodeMs: t2 - t1, applyMs: t3 - t2, writeMs: t4 - t3 },
    ms: t4 - t0,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

/** How long the carry waits for the pool's threads to load (they start when the job does). */
const POOL_READY_MS = 3000;

/**
 * Applies the model to every row, in bands of BAND_ROWS × threads rows: on the smoothing pool's
 * threads when they are (or become, within POOL_READY_MS) ready, else on this one. Checks for a
 * cancel and reports progress between bands. Returns the threads used.
 */
function applyBands(
  fit: AffineFit, src: Uint8Array | Uint16Array, srcBits: 8 | 16, W: number, H: number, dst: Uint8Array | Uint16Array, dstBits: 8 | 16,
  args: Pick<CarryArgs, 'checkCancelled' | 'onProgress' | 'keepLightness'>,
): number {
  const after = (y0: number, y1: number) => {
    if (args.keepLightness) restoreLightness(src, srcBits, dst, dstBits, y0 * W, y1 * W);
    args.onProgress?.(y1 / H);
  };
  let threads = Math.min(smoothThreads(), Math.max(1, Math.floor(H / 64)));
  const pool = threads > 1 ? acquirePool(threads) : undefined;
  if (!pool || pool.busy || !pool.waitReady(threads, POOL_READY_MS) || !(dst.buffer instanceof SharedArrayBuffer)) threads = 1;
  if (threads === 1 || !pool) {
    for (let y0 = 0; y0 < H; y0 += BAND_ROWS) {
      args.checkCancelled?.();
      const y1 = Math.min(H, y0 + BAND_ROWS);
      applyLocalAffineToSamples(fit, src, srcBits, W, H, dst, dstBits, y0, y1);
      after(y0, y1);
    }
    return 1;
  }
  // What the threads read, in shared memory (the photo's samples and the maps: one copy each).
  const share = <T extends Uint8Array | Uint16Array | Float32Array>(a: T): T => {
    const b = new (a.constructor as new (buf: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
    b.set(a as never);
    return b;
  };
  const carry: CarryBands = { fit: { ...fit, coeffs: share(fit.coeffs) }, src: share(src), srcBits, W, H, dst, dstBits };
  const parts = new Int32Array(new SharedArrayBuffer(4 * (threads + 1)));
  pool.begin(threads, { T: threads, levels: [], v: [], parts: [parts], carry, scratch: 0 });
  try {
    const rows = BAND_ROWS * threads;
    for (let y0 = 0; y0 < H; y0 += rows) {
      args.checkCancelled?.();
      const y1 = Math.min(H, y0 + rows);
      for (let t = 0; t <= threads; t++) parts[t] = y0 + Math.round((t * (y1 - y0)) / threads);
      pool.dispatch(CARRY_KERNEL, 0, threads, (blk) => applyLocalAffineToSamples(carry.fit, carry.src, srcBits, W, H, dst, dstBits, parts[blk], parts[blk + 1]));
      after(y0, y1);
    }
  } finally {
    pool.end();
  }
  return threads;
}

/** Starts the smoothing pool's threads early, so they have loaded when the carry needs them. */
export function warmCarryThreads(): void {
  const threads = smoothThreads();
  if (threads > 1) acquirePool(threads);
}

/** Pixels p0 ≤ p < p1 of `dst` get the L* of the same pixels of `src`, keeping their hue (labToRgbKeepL). */
function restoreLightness(src: Uint8Array | Uint16Array, srcBits: 8 | 16, dst: Uint8Array | Uint16Array, dstBits: 8 | 16, p0: number, p1: number): void {
  const si = 1 / (srcBits === 16 ? 65535 : 255), dmax = dstBits === 16 ? 65535 : 255;
  const lab = new Float64Array(3), rgb = new Float32Array(3);
  const photoL = new Float64Array(3);
  for (let p = p0; p < p1; p++) {
    const o = 3 * p;
    rgbPixelToLab(src[o] * si, src[o + 1] * si, src[o + 2] * si, photoL, 0);
    rgbPixelToLab(dst[o] / dmax, dst[o + 1] / dmax, dst[o + 2] / dmax, lab, 0);
    lab[0] = photoL[0];
    labToRgbKeepL(lab, rgb);
    for (let c = 0; c < 3; c++) dst[o + c] = Math.round(rgb[c] * dmax);
  }
}

/**
 * A photorealistic job's write: the working-size result as it is (`outputSize` 'working'), or carried
 * to the output size. Returns the written size and, when carried, the stage's report.
 */
export async function writePhotoResult(args: CarryArgs & { workingPhoto: DecodedImage; outputSize: OutputSize}): Promise<{ width: number; height: number; fullResolution?: FullResReport }> {
  const size = args.outputSize;
  const source = size === 'working' ? undefined : await probeImage(args.photoFile, { maxPixels: args.maxPixels });
  const target = source && size !== 'working' ? outputDimensions(source, size) : undefined;
  // Nothing to carry when the look was computed at the output size already.
  if (size === 'working' || !target || (target.width === args.workingResult.width && target.height === args.workingResult.height)) {
    await writeImage(args.out, args.workingResult, { ...args.write, metadataFrom: args.workingPhoto.source });
    return { width: args.workingResult.width, height: args.workingResult.height };
  }
  const r = await writeFullResolution({ ...args, outputSize: size, source });
  return { ...r.output, fullResolution: r };
}

/**
 * The `carry` job: a working-size result file taken to `outputSize` with its photo (decoded at the
 * result's size, as the job that made it did). The output keeps the photo's metadata.
 */
export async function runCarry(job: CarryJob, ctx: { checkCancelled(): void; emit(e: JobEvent): void }): Promise<{ out: string; width: number; height: number; fullResolution?: FullResReport }> {
  const t0 = performance.now();
  await checkOutputPath(job.output.out, [job.content, job.result], job.output.format);
  const result = await readImage(job.result, { maxPixels: job.maxPixels });
  const photo = await readImage(job.content, { size: { width: result.width, height: result.height }, maxPixels: job.maxPixels });
  const ra = photo.source.width / photo.source.height, rb = result.width / result.height;
  if (Math.abs(ra / rb - 1) > 0.02) throw new StudioError('BAD_ARGUMENT', `the result ${job.result} (${result.width}×${result.height}) is not a picture of ${job.content} (${photo.source.width}×${photo.source.height})`);
  const written = await writePhotoResult({
    photoFile: job.content, workingPhoto: photo, workingResult: result, outputSize: job.outputSize, maxPixels: job.maxPixels, out: job.output.out,
    write: { format: job.output.format, bitDepth: job.output.bitDepth, quality: job.output.quality, inputs: [job.content, job.result] },
    checkCancelled: () => ctx.checkCancelled(),
    onProgress: (f) => ctx.emit({ type: 'progress', stage: 'full resolution', fraction: f, elapsedMs: performance.now() - t0 }),
  });
  return { out: job.output.out, ...written };
}
