/**
 * `studio stylize --method photo` (the PhotoWCT cascade, then the smoothing step) and `studio smooth`
 * (the smoothing step alone): I/O around the engine's pure stages.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { backendInfo, initBackend } from '../engine/backend.ts';
import { loadVgg19, resolveModel, MODEL_FILE } from '../engine/models/store.ts';
import { CATALOG } from '../engine/models/catalog.ts';
import { cacheKey, cached } from './style-cache.ts';
import { existsSync } from 'node:fs';
import { decoderPath, encoderHash, loadDecoder } from '../engine/models/decoders.ts';
import { LEVELS, type DecoderWeights, type Level } from '../engine/photo/autoencoder.ts';
import { photoWct } from '../engine/photo/stylize.ts';
import { runSmoothing, type SmoothingMode, type SmoothingReport } from '../engine/photo/smoothing.ts';
import type { SmoothProgress } from '../engine/photo/smooth.ts';
import type { LabelImage } from '../engine/photo/labels.ts';
import type { RgbImage } from '../engine/image.ts';
import { readImage, type DecodedImage } from '../io/images.ts';
import { checkOutputPath } from '../io/write.ts';
import { checkFullResMemory, warmCarryThreads, writePhotoResult, type FullResReport, type WrittenResult } from './fullres.ts';
import { checkWorkingSize } from './limits.ts';
import { StudioError } from '../errors.ts';
import type { OutputSize, SmoothJob, StylizePhotoJob } from '../protocol.ts';
import type { JobContext } from './jobs.ts';

/** A label map is any-size, but must have its photo's shape: a map for another picture is an error. */
export async function readLabels(file: string, photo: DecodedImage, what: string): Promise<LabelImage> {
  const m = await readImage(file); // full size: resizing would blend region colours
  const ra = m.width / m.height;
  const rb = photo.source.width / photo.source.height;
  if (Math.abs(ra / rb - 1) > 0.02) {
    throw new StudioError('BAD_ARGUMENT', `the ${what} label map ${file} is ${m.width}×${m.height}, which does not have the shape of its photo (${photo.source.width}×${photo.source.height})`,
      'a label map must cover the same picture; any resolution of it is fine');
  }
  const data = new Uint8Array(m.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(m.data[i] * 255);
  return { width: m.width, height: m.height, data, channels: 3 };
}

/** The smoothing stage with its progress mapped onto [from, 1] of the job's bar. */
async function smoothStage(content: RgbImage, stylized: RgbImage, mode: SmoothingMode, params: StylizePhotoJob['params']['smoothing'], ctx: JobContext, elapsed: () => number, from: number, to = 1) {
  if (mode !== 'none') ctx.emit({ type: 'progress', stage: `smoothing (${mode})`, fraction: from, elapsedMs: elapsed() });
  const start = elapsed();
  return runSmoothing(content, stylized, mode, params, {
    checkCancelled: () => ctx.checkCancelled(),
    onProgress: (q: SmoothProgress) => {
      const spent = elapsed() - start;
      ctx.emit({
        type: 'progress', stage: `smoothing (${mode})`, fraction: from + (to - from) * q.fraction, iteration: q.iteration, elapsedMs: elapsed(),
        etaMs: q.fraction > 0.05 ? (spent * (1 - q.fraction)) / q.fraction : undefined,
      });
    },
  });
}

/** The write, at the working size or carried to the output size, with its progress on [0.9, 1]. */
async function writeStage(photoFile: string, content: DecodedImage, image: RgbImage, outputSize: OutputSize, job: { output: StylizePhotoJob['output']; maxPixels?: number; style?: string; stylized?: string }, ctx: JobContext, elapsed: () => number) {
  const carry = outputSize !== 'working';
  ctx.emit({ type: 'progress', stage: carry ? 'full resolution' : 'write', fraction: carry ? 0.9 : 1, elapsedMs: elapsed() });
  return writePhotoResult({
    photoFile, workingPhoto: content, workingResult: image, outputSize, maxPixels: job.maxPixels, out: job.output.out,
    write: { format: job.output.format, bitDepth: job.output.bitDepth, quality: job.output.quality, inputs: [photoFile, ...[job.style, job.stylized].filter((x): x is string => Boolean(x))] },
    checkCancelled: () => ctx.checkCancelled(),
    onProgress: (f) => ctx.emit({ type: 'progress', stage: 'full resolution', fraction: 0.9 + 0.1 * f, elapsedMs: elapsed() }),
  });
}

export interface PhotoResult extends WrittenResult {
  smoothing: SmoothingReport;
  /** Reading and decoding the inputs, encoding and writing the result. */
  ioMs: number;
}

export async function runStylizePhoto(job: StylizePhotoJob, ctx: JobContext): Promise<PhotoResult> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const p = job.params;
  await checkOutputPath(job.output.out, [job.content, job.style], job.output.format);
  if (Boolean(job.contentLabels) !== Boolean(job.styleLabels)) {
    throw new StudioError('BAD_ARGUMENT', 'label maps come in pairs: give both --content-labels and --style-labels');
  }
  await checkWorkingSize(job.content, p.size, 'photo', job.maxPixels);
  await checkWorkingSize(job.style, p.size, 'photo', job.maxPixels);
  if (p.outputSize !== 'working') {
    await checkFullResMemory(job.content, p.outputSize, job.maxPixels);
    warmCarryThreads();
  }
  const backend = await initBackend();
  ctx.emit({ type: 'progress', stage: 'load', fraction: 0, elapsedMs: elapsed() });
  // Default: FastPhotoStyle's model where it is installed (`studio models fetch photowct`), else vgg19 with trained decoders.
  const modelDir = resolveModel(job.model ?? (!job.decoders && existsSync(resolveModel(CATALOG.photowct.dir)) ? CATALOG.photowct.dir : undefined));
  const decodersDir = job.decoders ?? path.join(modelDir, 'decoders');
  const loadModel = async () => {
    const weights = await loadVgg19(modelDir);
    const hash = await encoderHash(modelDir);
    const decoders = new Map<Level, DecoderWeights>();
    for (const level of LEVELS) decoders.set(level, (await loadDecoder(decodersDir, level, hash)).weights);
    return { weights, decoders };
  };
  // The files whose change invalidates what a batch keeps (a missing one fails in loadModel, with its message).
  const modelFiles = [path.join(modelDir, MODEL_FILE), ...LEVELS.map((l) => decoderPath(decodersDir, l))].filter((f) => existsSync(f));
  const { weights, decoders } = job.cacheStyle
    ? (await cached('photowct-model', await cacheKey(modelFiles, { modelDir, decodersDir }), loadModel)).value
    : await loadModel();

  const tRead = elapsed();
  const content = await readImage(job.content, { maxSide: p.size, maxPixels: job.maxPixels });
  const withLabels = Boolean(job.contentLabels && job.styleLabels);
  // Label maps make the statistics per region: nothing to reuse across files then.
  const styleCache = job.cacheStyle && !withLabels
    ? (await cached('photowct-style', await cacheKey([...modelFiles, job.style], { size: p.size, maxPixels: job.maxPixels }), () => new Map())).value
    : undefined;
  // With every level's statistics cached (the rest of a batch), the style image is not needed at all.
  const styleDone = styleCache !== undefined && LEVELS.every((l) => styleCache.get(l)?.stats);
  const style = styleDone ? null : await readImage(job.style, { maxSide: p.size, maxPixels: job.maxPixels });
  const labels = withLabels && style
    ? { content: await readLabels(job.contentLabels!, content, 'content'), style: await readLabels(job.styleLabels!, style, 'style') }
    : undefined;
  const loadMs = elapsed();
  const readMs = loadMs - tRead;

  // Share of the progress bar for the cascade; the exact smoothing takes the rest.
  const carry = p.outputSize !== 'working';
  const wctShare = (p.smooth === 'exact' ? 0.4 : 0.95) * (carry ? 0.9 : 1);
  const stylized = await photoWct(weights, decoders, content, style, {
    alpha: p.alpha, styleCache,
    // FastPhotoStyle's own encoder: its exact +I regulariser (on its scale), as the paper's code.
    featureScale: weights.source.startsWith('FastPhotoStyle photo_wct') ? 1 : undefined,
  }, {
    checkCancelled: () => ctx.checkCancelled(),
    onLevel: (done, total, level) => ctx.emit({ type: 'progress', stage: `PhotoWCT relu${level}_1`, fraction: wctShare * done / total, iteration: done, iterations: total, elapsedMs: elapsed() }),
  }, labels);
  const wctMs = elapsed() - loadMs;
  const smoothed = await smoothStage(content, stylized.image, p.smooth, p.smoothing, ctx, elapsed, wctShare, carry ? 0.9 : 1);

  const tw = elapsed();
  const written = await writeStage(job.content, content, smoothed.image, p.outputSize, job, ctx, elapsed);
  const writeMs = elapsed() - tw;
  const totalMs = elapsed();
  if (job.report) {
    await writeFile(job.report, JSON.stringify({
      method: 'photo', params: p, backend: { name: backend.name, device: backend.device },
      model: { source: weights.source, widths: weights.widths, decoders: decodersDir },
      inputs: { content: job.content, style: job.style, contentLabels: job.contentLabels ?? null, styleLabels: job.styleLabels ?? null, width: content.width, height: content.height },
      working: { width: content.width, height: content.height }, output: { width: written.width, height: written.height }, fullResolution: written.fullResolution ?? null,
      levels: stylized.levels, smoothing: smoothed.report, stages: { loadMs, wctMs, smoothMs: smoothed.report.ms, writeMs }, totalMs,
    }, null, 2));
  }
  return {
    out: job.output.out, width: written.width, height: written.height, working: { width: content.width, height: content.height }, fullResolution: written.fullResolution,
    totalMs, backend: backend.name, smoothing: smoothed.report, report: job.report, ioMs: readMs + writeMs,
  };
}

/**
 * `studio smooth`: the stylised image at its own size (or --size), the content photo resized to
 * exactly that size as its guide (FastPhotoStyle does the same); the output keeps the content
 * photo's metadata.
 */
export async function runSmooth(job: SmoothJob, ctx: JobContext): Promise<{ out: string; width: number; height: number; working: { width: number; height: number }; fullResolution?: FullResReport; smoothing: SmoothingReport; totalMs: number; report?: string }> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  await checkOutputPath(job.output.out, [job.content, job.stylized], job.output.format);
  await checkWorkingSize(job.stylized, job.size, 'smooth', job.maxPixels);
  if (job.outputSize !== 'working') {
    await checkFullResMemory(job.content, job.outputSize, job.maxPixels);
    warmCarryThreads();
  }
  ctx.emit({ type: 'progress', stage: 'load', fraction: 0, elapsedMs: elapsed() });
  const stylized = await readImage(job.stylized, { maxSide: job.size, maxPixels: job.maxPixels });
  const probe = await readImage(job.content, { maxSide: 64, maxPixels: job.maxPixels });
  const ra = probe.source.width / probe.source.height, rb = stylized.width / stylized.height;
  if (Math.abs(ra / rb - 1) > 0.02) {
    throw new StudioError('BAD_ARGUMENT', `the content photo ${job.content} is ${probe.source.width}×${probe.source.height} but the stylised image ${job.stylized} is ${stylized.source.width}×${stylized.source.height}: not the same picture`,
      'give the photo that was stylised (any resolution of it) as --content');
  }
  const content = await readImage(job.content, { size: { width: stylized.width, height: stylized.height }, maxPixels: job.maxPixels });
  const loadMs = elapsed();
  const { image, report } = await smoothStage(content, stylized, job.params.mode, job.params, ctx, elapsed, 0, job.outputSize === 'working' ? 1 : 0.9);
  const written = await writeStage(job.content, content, image, job.outputSize, job, ctx, elapsed);
  const totalMs = elapsed();
  if (job.report) {
    await writeFile(job.report, JSON.stringify({
      method: 'smooth', params: job.params, backend: backendInfo()?.name ?? null,
      inputs: { content: job.content, stylized: job.stylized, width: stylized.width, height: stylized.height },
      working: { width: image.width, height: image.height }, output: { width: written.width, height: written.height }, fullResolution: written.fullResolution ?? null,
      smoothing: report, stages: { loadMs, smoothMs: report.ms }, totalMs,
    }, null, 2));
  }
  return { out: job.output.out, width: written.width, height: written.height, working: { width: image.width, height: image.height }, fullResolution: written.fullResolution, smoothing: report, totalMs, report: job.report };
}
