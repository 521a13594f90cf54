/**
 * Jobs: what the worker runs for a request. Each job is the pipeline's I/O around an engine call
 * (decode → engine → encode → report); the engine itself touches no files.
 */
import * as tf from '@tensorflow/tfjs-core';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../engine/backend.ts';
import { Vgg19 } from '../engine/models/vgg19-net.ts';
import { featureScaleOf } from '../engine/models/format.ts';
import { loadVgg19, resolveModel, listModels, modelsDir, MODEL_FILE } from '../engine/models/store.ts';
import { stylizeGatys } from '../engine/gatys/stylize.ts';
import { ACCEPTED_FORMATS, readImage } from '../io/images.ts';
import { cacheKey, cached } from './style-cache.ts';
import { writeImage, checkOutputPath } from '../io/write.ts';
import { checkWorkingSize, memoryLimit } from './limits.ts';
import { budgetFor, type MemoryBudget } from '../engine/memory.ts';
import type { FeaturesJob, JobEvent, StylizeGatysJob } from '../protocol.ts';
import { writeNpy } from '../engine/tensors/npy.ts';
import { imageToTensor } from '../engine/image.ts';
import { isFeatureName } from '../engine/models/vgg19.ts';
import { StudioError } from '../errors.ts';
import { mkdir } from 'node:fs/promises';

export interface JobContext {
  emit(e: JobEvent): void;
  checkCancelled(): void;
}

export interface StylizeResult {
  out: string;
  width: number;
  height: number;
  iterations?: number;
  finalLoss?: number;
  totalMs: number;
  backend: string;
  report?: string;
  notes: string[];
  /** Time spent reading and decoding the inputs, and encoding and writing the result (the batch's overhead). */
  ioMs?: number;
}

export async function info(): Promise<{ backend: BackendInfo; imageIo: Record<string, string>; modelsDir: string; models: unknown[]; memory: MemoryBudget }> {
  const backend = await initBackend();
  const sharp = (await import('sharp')).default;
  const imageIo = { sharp: sharp.versions.sharp ?? '', libvips: sharp.versions.vips, formats: ACCEPTED_FORMATS.join(', ') };
  // What a job may plan on here: the window warns beside its size field from the same estimate.
  return { backend, imageIo, modelsDir: modelsDir(), models: await listModels().catch(() => []), memory: budgetFor(backend.name, memoryLimit()) };
}

export async function runStylizeGatys(job: StylizeGatysJob, ctx: JobContext): Promise<StylizeResult> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const p = job.params;
  // Fail on a bad output path now, not after a long optimisation.
  await checkOutputPath(job.output.out, [job.content, ...job.styles], job.output.format);
  await checkWorkingSize(job.content, p.size, 'gatys', job.maxPixels);
  for (const s of job.styles) await checkWorkingSize(s, Math.round(p.size * p.styleScale), 'gatys', job.maxPixels);
  const backend = await initBackend();

  ctx.emit({ type: 'progress', stage: 'load', fraction: 0, elapsedMs: elapsed() });
  const modelDir = resolveModel(job.model);
  const weights = job.cacheStyle
    ? (await cached('vgg19', await cacheKey([path.join(modelDir, MODEL_FILE)], modelDir), () => loadVgg19(modelDir))).value
    : await loadVgg19(modelDir);
  const tRead = elapsed();
  const content = await readImage(job.content, { maxSide: p.size, maxPixels: job.maxPixels });
  const styles = await Promise.all(job.styles.map((s) =>
    readImage(s, { maxSide: Math.round(p.size * p.styleScale), maxPixels: job.maxPixels })));
  const notes = [content, ...styles].flatMap((im) => im.source.notes.map((n) => `${path.basename(im.source.path)}: ${n}`));
  for (const n of notes) ctx.emit({ type: 'log', message: n });
  const loadMs = elapsed();
  const readMs = loadMs - tRead;

  const net = new Vgg19(weights);
  const fs = featureScaleOf(weights.preprocessing);
  if (fs !== 1) {
    const n = `features taken in Caffe units: this model's are ×${fs.toPrecision(4)} of them (its preprocessing), so the loss weights mean what they mean in neural-style`;
    notes.push(n);
    ctx.emit({ type: 'log', message: n });
  }
  let result;
  try {
    const styleGrams = job.cacheStyle
      ? (await cached('gatys-grams', await cacheKey([path.join(modelDir, MODEL_FILE), ...job.styles], {
        size: p.size, styleScale: p.styleScale, scales: p.scales, styleLayers: p.styleLayers, pooling: p.pooling, styleWeights: p.styleWeights, maxPixels: job.maxPixels,
      }), () => new Map())).value
      : undefined;
    result = await stylizeGatys(net, content, styles, p, {
      styleGrams,
      checkCancelled: () => ctx.checkCancelled(),
      onProgress: (e) => ctx.emit({ type: 'progress', ...e, elapsedMs: elapsed() }),
      onPreview: (e) => ctx.emit({ type: 'preview', iteration: e.iteration, width: e.width, height: e.height, rgb: e.rgb }),
    });
  } finally {
    net.dispose();
  }

  ctx.emit({ type: 'progress', stage: 'write', fraction: 1, elapsedMs: elapsed() });
  const tw = performance.now();
  await writeImage(job.output.out, result.image, {
    format: job.output.format, bitDepth: job.output.bitDepth, quality: job.output.quality,
    metadataFrom: content.source, inputs: [job.content, ...job.styles],
  });
  const writeMs = performance.now() - tw;
  const totalMs = elapsed();
  const last = result.history.at(-1);

  if (job.report) {
    const report = {
      method: 'gatys',
      params: p,
      backend: { name: backend.name, device: backend.device, threads: backend.threads, versions: backend.versions },
      model: { source: weights.source, widths: weights.widths, preprocessing: weights.preprocessing },
      // Losses are taken on features divided by this (Caffe units), so the weights mean what they mean in neural-style.
      featureScale: result.featureScale,
      inputs: {
        content: { path: job.content, width: content.width, height: content.height, original: [content.source.width, content.source.height] },
        styles: styles.map((s, i) => ({ path: job.styles[i], width: s.width, height: s.height })),
      },
      output: { path: job.output.out, width: result.image.width, height: result.image.height },
      iterations: result.history,
      stoppedEarly: result.stoppedEarly ?? null,
      stages: { loadMs, ...Object.fromEntries(Object.entries(result.stageMs).map(([k, v]) => [`${k} ms`, v])), writeMs },
      totalMs,
      peakMemory: { tensorBytes: result.peakTensorBytes, rssBytes: process.resourceUsage().maxRSS * 1024 },
      notes,
    };
    await writeFile(job.report, JSON.stringify(report, null, 2));
  }
  return {
    out: job.output.out, width: result.image.width, height: result.image.height, iterations: result.history.length,
    finalLoss: last?.total, totalMs, backend: backend.name, report: job.report, notes, ioMs: readMs + writeMs,
  };
}

/**
 * Writes `<outDir>/input.npy` (the RGB 0–255 image the network saw) and `<outDir>/<layer>.npy` for
 * each layer, float32 NHWC [1,H,W,C] (PyTorch's NCHW is a transpose(0,3,1,2) away).
 */
export async function runFeatures(job: FeaturesJob, ctx: JobContext): Promise<{ files: { layer: string; path: string; shape: number[] }[] }> {
  for (const l of job.layers) {
    if (!isFeatureName(l)) throw new StudioError('BAD_ARGUMENT', `unknown VGG19 layer "${l}"`, 'use names such as relu1_1 … relu5_4, conv4_2 or pool3');
  }
  await initBackend();
  const weights = await loadVgg19(resolveModel(job.model));
  const img = await readImage(job.image, { maxSide: job.size, maxPixels: job.maxPixels });
  await mkdir(job.outDir, { recursive: true });
  ctx.checkCancelled();
  const net = new Vgg19(weights);
  const x = imageToTensor(img);
  const files: { layer: string; path: string; shape: number[] }[] = [];
  try {
    const feats = net.features(x, job.layers, { padding: job.padding, pooling: job.pooling });
    try {
      for (const [layer, t] of [['input', x] as const, ...feats]) {
        const file = path.join(job.outDir, `${layer}.npy`);
        await writeNpy(file, (await t.data()) as Float32Array, t.shape);
        files.push({ layer, path: file, shape: t.shape });
      }
    } finally {
      tf.dispose([...feats.values()]);
    }
  } finally {
    x.dispose();
    net.dispose();
  }
  return { files };
}

/** tfjs memory in use now, for the leak checks around every job. */
export function tensorCount(): number {
  return tf.memory().numTensors;
}
