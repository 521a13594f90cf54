/**
 * The engine's thread. Front ends post jobs; this thread runs them one at a time, streams events
 * back, and polls the job's shared cancel flag between steps. It checks after every job, also a
 * failed or cancelled one, that tfjs memory is back where it started.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { serializeError, StudioError } from '../errors.ts';
import { initBackend } from '../engine/backend.ts';
import { Job, type FromWorker, type JobEvent, type ToWorker } from '../protocol.ts';
import { CancelFlag } from './cancel.ts';
import { info, runFeatures, runStylizeGatys } from './jobs.ts';
import { runTrainDecoder } from './train.ts';
import { runSmooth, runStylizePhoto } from './photo.ts';
import { runStylizeMatch } from './match.ts';
import { runCarry } from './fullres.ts';

const port = parentPort;
if (!port) throw new Error('engine-worker must run in a worker thread');
const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

const data = workerData as { backend?: string; wasmThreads?: number } | undefined;
const backendChoice = data?.backend;
// Several engines side by side (a batch's --jobs) share the cores: each gets its own thread count.
// A worker's process.env is its own copy, so this touches no other engine.
if (data?.wasmThreads) process.env.STUDIO_WASM_THREADS = String(data.wasmThreads);
// Started once; a backend that cannot start fails each job with its reason.
const backendReady = initBackend(backendChoice);
backendReady.catch(() => {});

async function run(id: number, rawJob: unknown, flag: CancelFlag): Promise<unknown> {
  const job = Job.parse(rawJob);
  const ctx = {
    emit: (event: JobEvent) => {
      if (event.type === 'preview') send({ type: 'event', id, event }, [event.rgb.buffer as ArrayBuffer]);
      else send({ type: 'event', id, event });
    },
    checkCancelled: () => flag.check(),
  };
  switch (job.kind) {
    case 'info':
      return info();
    case 'memory':
      return { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes };
    case 'stylize-gatys':
      return runStylizeGatys(job, ctx);
    case 'features':
      return runFeatures(job, ctx);
    case 'train-decoder':
      return runTrainDecoder(job, ctx);
    case 'stylize-photo':
      return runStylizePhoto(job, ctx);
    case 'stylize-match':
      return runStylizeMatch(job, ctx);
    case 'carry':
      return runCarry(job, ctx);
    case 'smooth':
      await backendReady;
      return runSmooth(job, ctx);
  }
}

/** Errors from libraries that have a user-facing meaning get their code and advice here. */
function asStudioError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof StudioError) return e;
  if (e.name === 'ZodError') return new StudioError('BAD_ARGUMENT', `invalid request: ${e.message}`);
  // tfjs's WebGPU backend asserts its workgroup-count limit (65535 per axis) when an op is too big.
  if (/exceeds WebGPU limits/.test(e.message)) {
    return new StudioError('IMAGE_TOO_LARGE', `the image is too large for this GPU's limits (${e.message})`, 'use a smaller --size, or --backend wasm');
  }
  return e;
}

let queue = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  if (msg.type === 'shutdown') {
    queue.finally(() => process.exit(0));
    return;
  }
  const { id, job, cancel } = msg;
  queue = queue.then(async () => {
    let before = -1;
    try {
      await backendReady;
      before = tf.memory().numTensors;
      const flag = new CancelFlag(cancel);
      // Cancelled while it waited (for the backend to start, or for the job before it): never begun.
      flag.check();
      const result = await run(id, job, flag);
      send({ type: 'done', id, result });
    } catch (e) {
      send({ type: 'failed', id, error: serializeError(asStudioError(e)) });
    } finally {
      const leaked = before < 0 ? 0 : tf.memory().numTensors - before;
      if (leaked !== 0) send({ type: 'event', id, event: { type: 'log', message: `warning: ${leaked} tensors leaked by job ${id}` } });
    }
  });
});
send({ type: 'ready' });
