/**
 * `studio stylize --method photo`: the PhotoWCT cascade, I/O around the engine's pure stages.
 * The smoothing step that follows it in FastPhotoStyle is not built yet.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.ts';
import { loadVgg19, resolveModel } from '../engine/models/store.ts';
import { encoderHash, loadDecoder } from '../engine/models/decoders.ts';
import { LEVELS, type DecoderWeights, type Level } from '../engine/photo/autoencoder.ts';
import { photoWct } from '../engine/photo/stylize.ts';
import type { LabelImage } from '../engine/photo/labels.ts';
import { readImage, type DecodedImage } from '../io/images.ts';
import { checkOutputPath, writeImage } from '../io/write.ts';
import { StudioError } from '../errors.ts';
import type { StylizePhotoJob } from '../protocol.ts';
import type { JobContext } from './jobs.ts';

/** A label map is any-size, but must have its photo's shape: a map for another picture is an error. */
async function readLabels(file: string, photo: DecodedImage, what: string): Promise<LabelImage> {
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

export async function runStylizePhoto(job: StylizePhotoJob, ctx: JobContext): Promise<{ out: string; width: number; height: number; totalMs: number; backend: string; report?: string }> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const p = job.params;
  await checkOutputPath(job.output.out, [job.content, job.style], job.output.format);
  if (Boolean(job.contentLabels) !== Boolean(job.styleLabels)) {
    throw new StudioError('BAD_ARGUMENT', 'label maps come in pairs: give both --content-labels and --style-labels');
  }
  const backend = await initBackend();
  ctx.emit({ type: 'progress', stage: 'load', fraction: 0, elapsedMs: elapsed() });
  const modelDir = resolveModel(job.model);
  const weights = await loadVgg19(modelDir);
  const hash = await encoderHash(modelDir);
  const decodersDir = job.decoders ?? path.join(modelDir, 'decoders');
  const decoders = new Map<Level, DecoderWeights>();
  for (const level of LEVELS) decoders.set(level, (await loadDecoder(decodersDir, level, hash)).weights);

  const content = await readImage(job.content, { maxSide: p.size, maxPixels: job.maxPixels });
  const style = await readImage(job.style, { maxSide: p.size, maxPixels: job.maxPixels });
  const labels = job.contentLabels && job.styleLabels
    ? { content: await readLabels(job.contentLabels, content, 'content'), style: await readLabels(job.styleLabels, style, 'style') }
    : undefined;
  const loadMs = elapsed();

  const stylized = await photoWct(weights, decoders, content, style, { alpha: p.alpha }, {
    checkCancelled: () => ctx.checkCancelled(),
    onLevel: (done, total, level) => ctx.emit({ type: 'progress', stage: `PhotoWCT relu${level}_1`, fraction: done / total, iteration: done, iterations: total, elapsedMs: elapsed() }),
  }, labels);
  const smoothed = { image: stylized.image };

  ctx.emit({ type: 'progress', stage: 'write', fraction: 1, elapsedMs: elapsed() });
  await writeImage(job.output.out, smoothed.image, {
    format: job.output.format, bitDepth: job.output.bitDepth, quality: job.output.quality, metadataFrom: content.source, inputs: [job.content, job.style],
  });
  const totalMs = elapsed();
  if (job.report) {
    await writeFile(job.report, JSON.stringify({
      method: 'photo', params: p, backend: { name: backend.name, device: backend.device },
      model: { source: weights.source, widths: weights.widths, decoders: decodersDir },
      inputs: { content: job.content, style: job.style, contentLabels: job.contentLabels ?? null, styleLabels: job.styleLabels ?? null, width: content.width, height: content.height },
      levels: stylized.levels, smoothing: null, stages: { loadMs }, totalMs,
    }, null, 2));
  }
  return { out: job.output.out, width: content.width, height: content.height, totalMs, backend: backend.name, report: job.report };
}
