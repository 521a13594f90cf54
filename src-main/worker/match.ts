/**
 * `studio stylize --method match`: the model-free look transfer (engine/colour/match.ts) with its
 * I/O: decode, label maps, the method, the write, and a report with the look distance and the
 * structure kept (engine/colour/metrics.ts).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { backendInfo } from '../engine/backend.ts';
import { colourMatch, type MatchReport } from '../engine/colour/match.ts';
import { lookDistance, structureKept } from '../engine/colour/metrics.ts';
import { LabelPalette, labelImageToIds } from '../engine/photo/labels.ts';
import { readImage } from '../io/images.ts';
import { checkOutputPath } from '../io/write.ts';
import { checkFullResMemory, warmCarryThreads, writePhotoResult, type WrittenResult } from './fullres.ts';
import { checkWorkingSize } from './limits.ts';
import { StudioError } from '../errors.ts';
import type { MatchParams, StylizeMatchJob } from '../protocol.ts';
import type { JobContext } from './jobs.ts';
import { readLabels } from './photo.ts';
import { cacheKey, cached } from './style-cache.ts';

/** The fast regrain's default radius at a working size: ≈ 35 px (FastPhotoStyle's) at 512 px. */
export function defaultRegrainRadius(width: number, height: number): number {
  return Math.max(2, Math.round(Math.max(width, height) / 15));
}

export interface MatchMeasures {
  /** Look distance (sliced W2 in L*a*b*) from the photo to the reference, and from the result. */
  before: number;
  after: number;
  /** after / before. */
  remaining: number;
  /** Mean SSIM structure term between the result's and the photo's L* (NaN when narrower than its 7×7 window). */
  structure: number;
  ms: number;
}

export interface MatchResult extends WrittenResult {
  match: Omit<MatchReport, 'regions'>;
  measures?: MatchMeasures;
  notes: string[];
  /** Reading and decoding the inputs, encoding and writing the result. */
  ioMs: number;
}

export async function runStylizeMatch(job: StylizeMatchJob, ctx: JobContext): Promise<MatchResult> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const p: MatchParams = job.params;
  await checkOutputPath(job.output.out, [job.content, job.style], job.output.format);
  if (Boolean(job.contentLabels) !== Boolean(job.styleLabels)) {
    throw new StudioError('BAD_ARGUMENT', 'label maps come in pairs: give both --content-labels and --style-labels');
  }
  if (p.outputSize !== 'working') {
    await checkFullResMemory(job.content, p.outputSize, job.maxPixels);
    warmCarryThreads();
  }
  await checkWorkingSize(job.content, p.size, 'match', job.maxPixels);
  ctx.emit({ type: 'progress', stage: 'load', fraction: 0, elapsedMs: elapsed() });
  const content = await readImage(job.content, { maxSide: p.size, maxPixels: job.maxPixels });
  const readStyle = () => readImage(job.style, { maxSide: p.size, maxPixels: job.maxPixels });
  // A batch decodes its reference once.
  const style = job.cacheStyle
    ? (await cached('match-style', await cacheKey([job.style], { size: p.size, maxPixels: job.maxPixels }), readStyle)).value
    : await readStyle();
  const notes = [content, style].flatMap((im) => im.source.notes.map((n) => `${path.basename(im.source.path)}: ${n}`));
  for (const n of notes) ctx.emit({ type: 'log', message: n });
  let labels: { content: Int32Array; style: Int32Array } | undefined;
  if (job.contentLabels && job.styleLabels) {
    const palette = new LabelPalette();
    labels = {
      content: labelImageToIds(await readLabels(job.contentLabels, content, 'content'), content.height, content.width, palette, 'content label map'),
      style: labelImageToIds(await readLabels(job.styleLabels, style, 'style'), style.height, style.width, palette, 'style label map'),
    };
  }
  const readMs = elapsed();

  const radius = p.smoothing.radius ?? defaultRegrainRadius(content.width, content.height);
  const stageStart = { at: 0 };
  const { image, report } = await colourMatch(content, style, {
    alpha: p.alpha, keepLuminance: p.keepLuminance, regrain: p.smooth, seed: p.seed, maxIterations: p.maxIterations, labels,
    smoothing: { ...p.smoothing, radius },
    onStage: (stage, fraction) => {
      stageStart.at = fraction;
      ctx.emit({ type: 'progress', stage, fraction: 0.05 + 0.9 * fraction, elapsedMs: elapsed() });
    },
    hooks: {
      checkCancelled: () => ctx.checkCancelled(),
      onProgress: (q) => ctx.emit({ type: 'progress', stage: `regrain (${p.smooth})`, fraction: 0.05 + 0.9 * (stageStart.at + (0.9 - stageStart.at) * q.fraction), iteration: q.iteration, elapsedMs: elapsed() }),
    },
  });
  const matchMs = elapsed() - readMs;

  const carry = p.outputSize !== 'working';
  ctx.emit({ type: 'progress', stage: carry ? 'full resolution' : 'write', fraction: 0.9, elapsedMs: elapsed() });
  const tw = elapsed();
  const written = await writePhotoResult({
    photoFile: job.content, workingPhoto: content, workingResult: image, outputSize: p.outputSize, maxPixels: job.maxPixels, out: job.output.out,
    write: { format: job.output.format, bitDepth: job.output.bitDepth, quality: job.output.quality, inputs: [job.content, job.style] },
    checkCancelled: () => ctx.checkCancelled(),
    onProgress: (f) => ctx.emit({ type: 'progress', stage: 'full resolution', fraction: 0.9 + 0.08 * f, elapsedMs: elapsed() }),
    keepLightness: p.keepLuminance,
  });
  const writeMs = elapsed() - tw;

  let measures: MatchMeasures | undefined;
  if (job.measure || job.report) {
    const tm = performance.now();
    const before = lookDistance(content, style), after = lookDistance(image, style);
    // Structure needs one 7×7 window: a narrower picture (a panorama strip) has none to compare (NaN).
    const structure = Math.min(image.width, image.height) >= 7 ? structureKept(image, content) : NaN;
    measures = { before, after, remaining: before > 0 ? after / before : 0, structure, ms: performance.now() - tm };
  }
  const totalMs = elapsed();
  const { regions, ...match } = report;
  if (job.report) {
    await writeFile(job.report, JSON.stringify({
      method: 'match', params: { ...p, smoothing: { ...p.smoothing, radius } },
      inputs: { content: job.content, style: job.style, contentLabels: job.contentLabels ?? null, styleLabels: job.styleLabels ?? null, width: content.width, height: content.height, styleWidth: style.width, styleHeight: style.height },
      working: { width: content.width, height: content.height }, output: { width: written.width, height: written.height },
      fullResolution: written.fullResolution ?? null,
      colourSpace: report.colourSpace, channels: report.channels, iterations: { transfer: report.idt.iterations, rematch: report.rematch?.idt.iterations ?? 0 },
      converged: report.idt.converged, regularized: report.regularized, regions: regions ?? null, regrain: report.regrain,
      lookDistance: { photoToReference: measures!.before, resultToReference: measures!.after, remaining: measures!.remaining },
      structureKept: Number.isNaN(measures!.structure) ? null : measures!.structure,
      stages: { readMs, ...Object.fromEntries(Object.entries(report.stageMs).map(([k, v]) => [`${k}Ms`, v])), matchMs, writeMs, measureMs: measures!.ms },
      totalMs, notes,
    }, null, 2));
  }
  return {
    out: job.output.out, width: written.width, height: written.height, working: { width: content.width, height: content.height }, fullResolution: written.fullResolution, totalMs, backend: backendInfo()?.name ?? 'none', match, measures, report: job.report, notes, ioMs: readMs + writeMs,
  };
}
