/**
 * `studio train decoder`: trains (or fine-tunes, with --init) one level's PhotoWCT decoder on a folder
 * of photos, in fp32 or mixed precision, with Adam or SGD with momentum, weight decay, a warm-up and
 * decay of the learning rate, gradient clipping, a held-out validation split whose best checkpoint is
 * kept, and a JSON report with SVG plots.
 *
 * Checkpoints (every N steps, and when a run fails or is cancelled) hold everything a bit-exact
 * `--resume` needs: the FP32 master weights, the optimiser's state, the loss scaler's state and the
 * loop's history. Each step's crops come from a generator seeded by (seed, step), so a resumed run
 * sees the same data order as an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.ts';
import { loadVgg19, resolveModel } from '../engine/models/store.ts';
import { writeFileAtomic } from '../io/write.ts';
import { preprocess } from '../engine/models/vgg19-net.ts';
import { PhotoAutoencoder, initDecoder, type DecoderWeights } from '../engine/photo/autoencoder.ts';
import { encoderHash, loadDecoder, saveDecoder } from '../engine/models/decoders.ts';
import { decodeSafetensors, encodeSafetensors } from '../engine/tensors/safetensors.ts';
import { F16_MAX } from '../engine/tensors/half.ts';
import { DecoderOptimizer, decoderVariables, evaluateLoss, trainStep, type OptimizerState } from '../engine/train/step.ts';
import { LossScaler, PrecisionPolicy, type LossScaleOptions, type LossScaleState } from '../engine/train/precision.ts';
import { learningRate, type LrSchedule } from '../engine/train/schedule.ts';
import { trainingPlots, type ReportStep, type ReportValidation } from '../engine/train/report.ts';
import type { TensorMap } from '../engine/models/format.ts';
import { mulberry32 } from '../engine/random.ts';
import { loadPhotoFolder, sampleBatch, type Photo } from '../io/dataset.ts';
import { StudioError } from '../errors.ts';
import type { TrainDecoderJob } from '../protocol.ts';
import type { JobContext } from './jobs.ts';

export interface TrainResult {
  decoder: string;
  steps: number;
  firstLoss: number;
  finalLoss: number;
  /** Validation loss after the last step (NaN without a validation split), and the best one seen. */
  finalValLoss: number;
  bestValLoss: number;
  bestStep: number;
  /** The best checkpoint's decoders folder (use it with --decoders), when there is a validation split. */
  best?: string;
  skippedSteps: number;
  finalLossScale: number;
  resumedFrom: number;
  totalMs: number;
  report: string;
  plots: string[];
}

/** The options a checkpoint must agree with to be resumed bit-exactly. */
const RESUME_KEYS = ['level', 'precision', 'optimizer', 'lossScale', 'batch', 'crop', 'seed', 'lambda', 'valFraction'] as const;

interface CheckpointState {
  step: number;
  seed: number;
  level: number;
  encoderSha256: string;
  config: Record<string, unknown>;
  scaler: LossScaleState;
  history: ReportStep[];
  validation: ReportValidation[];
  bestVal: number;
  bestStep: number;
}

const slotNames = (kind: 'adam' | 'sgd') => (kind === 'adam' ? ['m', 'v'] : ['velocity']);
const key = (i: number, slot: string) => `${String(i).padStart(4, '0')}.${slot}`;

/** Decoder (FP32 master weights), optimiser state (float32, exact) and the loop's state. */
async function saveCheckpoint(dir: string, ae: PhotoAutoencoder, opt: DecoderOptimizer, state: CheckpointState): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveDecoder(dir, await ae.decoderWeights(), { level: ae.level, encoderSha256: state.encoderSha256, widths: [...ae.widths], steps: state.step });
  const tensors: TensorMap = new Map();
  const s = opt.state();
  const names = slotNames(opt.options.kind);
  try {
    for (const [i, slots] of s.slots.entries()) {
      for (const [k, t] of slots.entries()) {
        if (t) tensors.set(key(i, names[k]), { dtype: 'F32', shape: t.shape, data: Float32Array.from(await t.data()) });
      }
    }
  } finally {
    tf.dispose(s.slots.flat().filter((t): t is tf.Tensor => t !== undefined));
  }
  await writeFileAtomic(path.join(dir, 'optimizer.safetensors'), encodeSafetensors(tensors, { t: String(s.t), kind: opt.options.kind }));
  await writeFileAtomic(path.join(dir, 'state.json'), JSON.stringify(state));
}

async function loadOptimizerState(dir: string, kind: 'adam' | 'sgd', count: number): Promise<OptimizerState> {
  const { tensors, metadata } = decodeSafetensors(await readFile(path.join(dir, 'optimizer.safetensors')));
  if (metadata.kind !== kind) throw new StudioError('BAD_ARGUMENT', `the checkpoint in ${dir} was made with another optimiser (${metadata.kind ?? 'adam, by an older version'})`, 'resume with the same options, or start afresh');
  const get = (k: string) => { const t = tensors.get(k); return t ? tf.tensor(t.data, t.shape) : undefined; };
  return { t: Number(metadata.t), slots: Array.from({ length: count }, (_, i) => slotNames(kind).map((n) => get(key(i, n)))) };
}

/** Held-out photos: a seeded choice, so a resumed run holds out the same ones. */
function splitPhotos(photos: Photo[], fraction: number, seed: number): { train: Photo[]; val: Photo[] } {
  const n = photos.length;
  const k = fraction > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(fraction * n))) : 0;
  const order = photos.map((_, i) => i);
  const rng = mulberry32(seed ^ 0x7a11da7e);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const valSet = new Set(order.slice(0, k));
  return { train: photos.filter((_, i) => !valSet.has(i)), val: photos.filter((_, i) => valSet.has(i)) };
}

async function saveModel(dir: string, weights: DecoderWeights, job: TrainDecoderJob, meta: { encoderSha256: string; widths: number[]; steps: number; loss?: number }): Promise<string> {
  if (job.saveDtype === 'fp16') {
    for (const [name, w] of weights) {
      for (const a of [w.kernel, w.bias]) {
        if (a.some((v) => Math.abs(v) > F16_MAX)) throw new StudioError('BAD_ARGUMENT', `decoder layer ${name} has weights beyond fp16's range (65504)`, 'save with --save-dtype fp32');
      }
    }
  }
  return saveDecoder(dir, weights, { level: job.level, ...meta }, job.saveDtype === 'fp16' ? 'F16' : 'F32');
}

export function reportPaths(job: TrainDecoderJob, out: string): { report: string; plots: Record<'loss' | 'scale' | 'underflow', string> } {
  const report = job.report ?? path.join(out, `level${job.level}-report.json`);
  const base = report.replace(/\.json$/i, '');
  return { report, plots: { loss: `${base}-loss.svg`, scale: `${base}-loss-scale.svg`, underflow: `${base}-underflow.svg` } };
}

export async function runTrainDecoder(job: TrainDecoderJob, ctx: JobContext): Promise<TrainResult> {
  const t0 = performance.now();
  const backend = await initBackend();
  const modelDir = resolveModel(job.model);
  const weights = await loadVgg19(modelDir);
  const encSha = await encoderHash(modelDir);
  const out = job.out ?? path.join(modelDir, 'decoders');
  const ckptDir = path.join(out, `level${job.level}.checkpoint`);
  const bestDir = path.join(out, 'best');
  const paths = reportPaths(job, out);

  ctx.emit({ type: 'progress', stage: 'load photos', fraction: 0, elapsedMs: 0 });
  const photos = await loadPhotoFolder(job.images, job.crop, { onSkip: (f, why) => ctx.emit({ type: 'log', message: `skipped ${f}: ${why}` }) });
  const { train, val } = splitPhotos(photos, job.valFraction, job.seed);
  ctx.emit({ type: 'log', message: `${train.length} training and ${val.length} validation photos, ${job.crop}px crops, batch ${job.batch}, ${job.precision} on ${backend.name}` });
  // Validation crops are fixed for the run (seeded), so validation losses compare across steps and runs.
  const valData = val.length ? Array.from({ length: job.valBatches }, (_, b) => sampleBatch(val, job.batch, job.crop, mulberry32(job.seed * 7919 + 104729 + b))) : [];

  const config = Object.fromEntries(RESUME_KEYS.map((k) => [k, job[k]]));
  const scaleOptions: LossScaleOptions = job.precision === 'fp32' && job.lossScale === 'dynamic'
    ? { mode: 'static', scale: 1, growthFactor: 1, growthInterval: 1, backoffFactor: 1 }
    : {
      mode: job.lossScale === 'dynamic' ? 'dynamic' : 'static', scale: job.lossScale === 'dynamic' ? job.lossScaleInit : job.lossScale,
      growthFactor: job.lossScaleGrowth, growthInterval: job.lossScaleInterval, backoffFactor: job.lossScaleBackoff,
    };
  let state: CheckpointState = {
    step: 0, seed: job.seed, level: job.level, encoderSha256: encSha, config, scaler: { scale: scaleOptions.scale, cleanSteps: 0 },
    history: [], validation: [], bestVal: Infinity, bestStep: 0,
  };
  let decoder: DecoderWeights;
  if (job.resume) {
    try {
      state = JSON.parse(await readFile(path.join(ckptDir, 'state.json'), 'utf8')) as CheckpointState;
    } catch {
      throw new StudioError('FILE_NOT_FOUND', `nothing to resume: no checkpoint in ${ckptDir}`, 'start without --resume');
    }
    if (state.level !== job.level || state.encoderSha256 !== encSha) throw new StudioError('BAD_ARGUMENT', `the checkpoint in ${ckptDir} is for another level or encoder`);
    const differ = RESUME_KEYS.filter((k) => JSON.stringify(state.config?.[k]) !== JSON.stringify(config[k]));
    if (differ.length) throw new StudioError('BAD_ARGUMENT', `the checkpoint in ${ckptDir} was made with other ${differ.map((k) => `--${k}`).join(', ')}`, 'resume with the same options');
    state.bestVal ??= Infinity; // JSON has no Infinity
    decoder = (await loadDecoder(ckptDir, job.level, encSha)).weights;
  } else if (job.init) {
    decoder = (await loadDecoder(job.init, job.level, encSha)).weights;
    ctx.emit({ type: 'log', message: `fine-tuning the decoder from ${job.init}` });
  } else {
    decoder = initDecoder(job.level, weights.widths, mulberry32(job.seed + 7919 * job.level)); // He initialisation
  }

  const ae = new PhotoAutoencoder(job.level, { widths: weights.widths, tensors: weights.tensors, preprocess: (t) => preprocess(t, weights.preprocessing) }, decoder);
  const optimizer = new DecoderOptimizer(decoderVariables(ae), { kind: job.optimizer, momentum: job.momentum, weightDecay: job.weightDecay });
  const policy = new PrecisionPolicy(job.precision);
  const scaler = new LossScaler(scaleOptions, state.scaler);
  const schedule: LrSchedule = { lr: job.lr, steps: job.steps, warmup: job.warmup, decay: job.decay, every: job.decayEvery, factor: job.decayFactor, minLr: job.minLr };

  const validate = async (step: number): Promise<void> => {
    if (!valData.length) return;
    // Validation runs the FP32 master weights in float32: the model as it will be used.
    const sums = { total: 0, pixel: 0, feature: 0 };
    for (const d of valData) {
      const b = tf.tensor4d(d, [job.batch, job.crop, job.crop, 3]);
      try {
        const l = await evaluateLoss(ae, b, job.lambda);
        sums.total += l.total / valData.length;
        sums.pixel += l.pixel / valData.length;
        sums.feature += l.feature / valData.length;
      } finally {
        b.dispose();
      }
    }
    state.validation.push({ step, ...sums });
    ctx.emit({ type: 'log', message: `step ${step}: validation loss ${sums.total.toExponential(4)}` });
    if (sums.total < state.bestVal) {
      state.bestVal = sums.total;
      state.bestStep = step;
      await saveModel(bestDir, await ae.decoderWeights(), job, { encoderSha256: encSha, widths: [...weights.widths], steps: step, loss: sums.total });
    }
  };

  try {
    if (job.resume) optimizer.restore(await loadOptimizerState(ckptDir, job.optimizer, decoderVariables(ae).length));
    const resumedFrom = state.step;
    if (state.step === 0) await validate(0);
    const tLoop = performance.now();
    for (let step = state.step + 1; step <= job.steps; step++) {
      ctx.checkCancelled();
      const batch = tf.tensor4d(sampleBatch(train, job.batch, job.crop, mulberry32(job.seed * 1000003 + step)), [job.batch, job.crop, job.crop, 3]);
      const ts = performance.now();
      let v;
      try {
        v = await trainStep(ae, optimizer, batch, { lambda: job.lambda, lr: learningRate(schedule, step), policy, scaler, clipNorm: job.clipNorm });
      } finally {
        batch.dispose();
      }
      if (!Number.isFinite(v.total)) {
        const hint = job.precision === 'mixed-fp16' ? 'activations overflow fp16 (65504): use --precision mixed-bf16 or fp32, or lower --lr' : 'lower --lr';
        throw new StudioError('INTERNAL', `the loss became ${v.total} at step ${step}`, hint);
      }
      if (scaler.scale < 2 ** -24) throw new StudioError('INTERNAL', `the loss scale fell to ${scaler.scale} at step ${step}: the gradients keep overflowing`, 'lower --lr or use --clip-norm');
      state.history.push({ step, ...v, ms: Math.round((performance.now() - ts) * 10) / 10 });
      state.step = step;
      state.scaler = scaler.state();
      const done = step - resumedFrom;
      const msPerStep = (performance.now() - tLoop) / done;
      ctx.emit({
        type: 'progress', stage: `train decoder level ${job.level} (${job.precision}${v.skipped ? `, step skipped, loss scale → ${scaler.scale}` : ''})`,
        fraction: step / job.steps, iteration: step, iterations: job.steps,
        losses: { content: v.pixel, style: v.feature, tv: 0, total: v.total }, elapsedMs: performance.now() - t0, etaMs: msPerStep * (job.steps - step),
      });
      if (step % job.valEvery === 0 || step === job.steps) await validate(step);
      if (step % job.checkpointEvery === 0 && step < job.steps) await saveCheckpoint(ckptDir, ae, optimizer, state);
    }
    const last = state.history.at(-1);
    const decoderFile = await saveModel(out, await ae.decoderWeights(), job, { encoderSha256: encSha, widths: [...weights.widths], steps: state.step, loss: last?.total });
    await rm(ckptDir, { recursive: true, force: true });

    const svgs = trainingPlots(state.history, state.validation, job.precision);
    await mkdir(path.dirname(paths.report), { recursive: true });
    for (const k of ['loss', 'scale', 'underflow'] as const) await writeFile(paths.plots[k], svgs[k]);
    const skippedSteps = state.history.filter((h) => h.skipped).length;
    const finalVal = state.validation.at(-1);
    await writeFile(paths.report, JSON.stringify({
      job, backend: { name: backend.name, device: backend.device, threads: backend.threads },
      emulated: job.precision === 'fp32' ? [] : ['fp16/bf16 casts are float32 tensor ops (TensorFlow.js has no half-precision tensors)'],
      photos: { train: train.map((p) => p.path), validation: val.map((p) => p.path) },
      resumedFrom, skippedSteps, finalLossScale: scaler.scale, best: state.bestStep ? { step: state.bestStep, loss: state.bestVal, dir: bestDir } : undefined,
      plots: paths.plots, validation: state.validation, history: state.history,
    }, null, 2));
    return {
      decoder: decoderFile, steps: state.step, firstLoss: state.history[0]?.total ?? NaN, finalLoss: last?.total ?? NaN,
      finalValLoss: finalVal?.total ?? NaN, bestValLoss: Number.isFinite(state.bestVal) ? state.bestVal : NaN, bestStep: state.bestStep,
      best: valData.length ? bestDir : undefined, skippedSteps, finalLossScale: scaler.scale,
      resumedFrom, totalMs: performance.now() - t0, report: paths.report, plots: Object.values(paths.plots),
    };
  } catch (e) {
    // Keep what was learnt: a cancelled or failed run leaves a checkpoint to --resume from.
    if (state.step > 0) await saveCheckpoint(ckptDir, ae, optimizer, state).catch(() => {});
    throw e;
  } finally {
    policy.dispose();
    optimizer.dispose();
    ae.dispose();
  }
}
