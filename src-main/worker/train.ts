/**
 * `studio train decoder`: trains one level's PhotoWCT decoder on a folder of photos with Adam,
 * checkpointing every N steps (decoder, optimiser moments, step) so `--resume` continues after an
 * interruption. Each step's crops come from a generator seeded by (seed, step), so a resumed run
 * sees the same data order as an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.ts';
import { loadVgg19, resolveModel } from '../engine/models/store.ts';
import { writeFileAtomic } from '../io/write.ts';
import { preprocess } from '../engine/models/vgg19-net.ts';
import { PhotoAutoencoder, initDecoder } from '../engine/photo/autoencoder.ts';
import { encoderHash, loadDecoder, saveDecoder } from '../engine/models/decoders.ts';
import { decodeSafetensors, encodeSafetensors } from '../engine/tensors/safetensors.ts';
import { decoderVariables, trainStep, VariableAdam, type StepValues } from '../engine/train/step.ts';
import type { TensorMap } from '../engine/models/format.ts';
import { mulberry32 } from '../engine/random.ts';
import { loadPhotoFolder, sampleBatch } from '../io/dataset.ts';
import { StudioError } from '../errors.ts';
import type { TrainDecoderJob } from '../protocol.ts';
import type { JobContext } from './jobs.ts';

export interface TrainResult {
  decoder: string;
  steps: number;
  firstLoss: number;
  finalLoss: number;
  resumedFrom: number;
  totalMs: number;
  report?: string;
}

interface CheckpointState { step: number; seed: number; level: number; encoderSha256: string; history: (StepValues & { step: number })[] }

/** Decoder, optimiser moments (float32, exact) and the loop state: everything a bit-exact resume needs. */
async function saveCheckpoint(dir: string, ae: PhotoAutoencoder, opt: VariableAdam, state: CheckpointState): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveDecoder(dir, await ae.decoderWeights(), { level: ae.level, encoderSha256: state.encoderSha256, widths: [...ae.widths], steps: state.step });
  const tensors: TensorMap = new Map();
  const states = opt.state();
  for (const [i, s] of states.entries()) {
    for (const k of ['m', 'v'] as const) {
      const t = s[k];
      if (t) tensors.set(`${String(i).padStart(4, '0')}.${k}`, { dtype: 'F32', shape: t.shape, data: Float32Array.from(await t.data()) });
    }
  }
  tf.dispose(states.flatMap((s) => [s.m, s.v].filter((t): t is tf.Tensor => t !== undefined)));
  await writeFileAtomic(path.join(dir, 'optimizer.safetensors'), encodeSafetensors(tensors, { t: JSON.stringify(states.map((s) => s.t)) }));
  await writeFileAtomic(path.join(dir, 'state.json'), JSON.stringify(state));
}

export async function runTrainDecoder(job: TrainDecoderJob, ctx: JobContext): Promise<TrainResult> {
  const t0 = performance.now();
  await initBackend();
  const modelDir = resolveModel(job.model);
  const weights = await loadVgg19(modelDir);
  const encSha = await encoderHash(modelDir);
  const out = job.out ?? path.join(modelDir, 'decoders');
  const ckptDir = path.join(out, `level${job.level}.checkpoint`);

  ctx.emit({ type: 'progress', stage: 'load photos', fraction: 0, elapsedMs: 0 });
  const photos = await loadPhotoFolder(job.images, job.crop, { onSkip: (f, why) => ctx.emit({ type: 'log', message: `skipped ${f}: ${why}` }) });
  ctx.emit({ type: 'log', message: `${photos.length} photos, ${job.crop}px crops, batch ${job.batch}` });

  let state: CheckpointState = { step: 0, seed: job.seed, level: job.level, encoderSha256: encSha, history: [] };
  let decoder = initDecoder(job.level, weights.widths, mulberry32(job.seed + 7919 * job.level));
  let optimizerState: { t: number[]; tensors: TensorMap } | undefined;
  if (job.resume) {
    try {
      state = JSON.parse(await readFile(path.join(ckptDir, 'state.json'), 'utf8')) as CheckpointState;
    } catch {
      throw new StudioError('FILE_NOT_FOUND', `nothing to resume: no checkpoint in ${ckptDir}`, 'start without --resume');
    }
    if (state.level !== job.level || state.encoderSha256 !== encSha) throw new StudioError('BAD_ARGUMENT', `the checkpoint in ${ckptDir} is for another level or encoder`);
    decoder = (await loadDecoder(ckptDir, job.level, encSha)).weights;
    const opt = decodeSafetensors(await readFile(path.join(ckptDir, 'optimizer.safetensors')));
    optimizerState = { t: JSON.parse(opt.metadata.t) as number[], tensors: opt.tensors };
  }

  const ae = new PhotoAutoencoder(job.level, { widths: weights.widths, tensors: weights.tensors, preprocess: (t) => preprocess(t, weights.preprocessing) }, decoder);
  const optimizer = new VariableAdam(decoderVariables(ae), job.lr);
  try {
    if (optimizerState) {
      const os = optimizerState;
      const get = (key: string) => { const t = os.tensors.get(key); return t ? tf.tensor(t.data, t.shape) : undefined; };
      optimizer.restore(os.t.map((t, i) => ({ t, m: get(`${String(i).padStart(4, '0')}.m`), v: get(`${String(i).padStart(4, '0')}.v`) })));
    }
    const resumedFrom = state.step;
    const tLoop = performance.now();
    for (let step = state.step + 1; step <= job.steps; step++) {
      ctx.checkCancelled();
      const batch = tf.tensor4d(sampleBatch(photos, job.batch, job.crop, mulberry32(job.seed * 1000003 + step)), [job.batch, job.crop, job.crop, 3]);
      let v: StepValues;
      try {
        v = await trainStep(ae, optimizer, batch, job.lambda);
      } finally {
        batch.dispose();
      }
      if (!Number.isFinite(v.total)) throw new StudioError('INTERNAL', `the loss became ${v.total} at step ${step}`, 'lower --lr');
      state.history.push({ step, ...v });
      state.step = step;
      const done = step - resumedFrom;
      const msPerStep = (performance.now() - tLoop) / done;
      ctx.emit({
        type: 'progress', stage: `train decoder level ${job.level}`, fraction: step / job.steps, iteration: step, iterations: job.steps,
        losses: { content: v.pixel, style: v.feature, tv: 0, total: v.total }, elapsedMs: performance.now() - t0, etaMs: msPerStep * (job.steps - step),
      });
      if (step % job.checkpointEvery === 0 && step < job.steps) await saveCheckpoint(ckptDir, ae, optimizer, state);
    }
    const last = state.history.at(-1);
    const decoderFile = await saveDecoder(out, await ae.decoderWeights(), { level: job.level, encoderSha256: encSha, widths: weights.widths, steps: state.step, loss: last?.total });
    await rm(ckptDir, { recursive: true, force: true });
    if (job.report) await writeFile(job.report, JSON.stringify({ job, photos: photos.length, history: state.history, resumedFrom }, null, 2));
    return {
      decoder: decoderFile, steps: state.step, firstLoss: state.history[0]?.total ?? NaN, finalLoss: last?.total ?? NaN,
      resumedFrom, totalMs: performance.now() - t0, report: job.report,
    };
  } catch (e) {
    // Keep what was learnt: a cancelled or failed run leaves a checkpoint to --resume from.
    if (state.step > 0) await saveCheckpoint(ckptDir, ae, optimizer, state).catch(() => {});
    throw e;
  } finally {
    optimizer.dispose();
    ae.dispose();
  }
}
