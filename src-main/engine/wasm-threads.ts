/**
 * Starts TensorFlow.js's threaded WebAssembly build in Node, which it does not do as shipped:
 *  - the package reports no thread support when running in Node (tfjs issue 3830), so we set the flag;
 *  - Emscripten spawns its pthread workers from blob: URLs, which Node's Worker rejects; a Worker
 *    subclass runs the package's own worker script through `eval` instead, and hands the 'load'
 *    message the path of the threaded module rather than a Blob;
 *  - the C++ side uses min(8, cores / 2) threads, which is 1 on a 2-core machine; during start-up we
 *    report twice the cores, so the thread count is the one asked for.
 * Measured on this 2-core machine: a 3×3 convolution goes from ~30 to ~45–60 GFLOP/s with 2 threads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Worker as NodeWorker, type WorkerOptions } from 'node:worker_threads';

const requireCjs = createRequire(import.meta.url);

/** Threads to use: STUDIO_WASM_THREADS if set, else the core count (at most 8, the build's maximum). */
export function wantedWasmThreads(): number {
  const env = process.env.STUDIO_WASM_THREADS;
  const n = env !== undefined && env !== '' ? Number(env) : os.availableParallelism();
  return Number.isFinite(n) ? Math.max(1, Math.min(8, Math.floor(n))) : 1;
}

let installed = false;

function installWorkerShim(): void {
  if (installed) return;
  installed = true;
  const dir = path.dirname(requireCjs.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const { wasmWorkerContents } = requireCjs(path.join(dir, 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const mainJs = path.join(dir, 'wasm-out/tfjs-backend-wasm-threaded-simd.js');
  class BlobWorker extends NodeWorker {
    constructor(url: string | URL, opts?: WorkerOptions) {
      if (String(url).startsWith('blob:')) super(wasmWorkerContents.replace(/\n/g, '\\n'), { ...opts, eval: true });
      else super(url, opts);
      this.unref();
    }
    // Emscripten ref()s a worker while it runs a pthread; XNNPACK's pool threads run for ever, so
    // they would keep the process alive. The engine's calls into them are synchronous, so no
    // pending work depends on the ref.
    override ref(): void {}
    override postMessage(msg: unknown, transfer?: readonly import('node:worker_threads').TransferListItem[]): void {
      const m = msg as { cmd?: string; urlOrBlob?: unknown } | null;
      super.postMessage(m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string' ? { ...m, urlOrBlob: mainJs } : msg, transfer);
    }
  }
  // Emscripten assigns global.Worker = worker_threads.Worker when it loads; keep ours.
  Object.defineProperty(globalThis, 'Worker', { configurable: true, get: () => BlobWorker, set: () => {} });
}

/**
 * Initialises the wasm backend with `threads` threads (1 = the single-threaded SIMD build).
 * Returns the thread count in use; throws if the backend does not start.
 */
export async function startWasm(threads: number): Promise<void> {
  // Emscripten's Node glue adds process-wide uncaughtException/unhandledRejection handlers that
  // rethrow, so any later uncaught error prints the whole minified module as its source line.
  // Those handlers serve only Emscripten's exit(), which tfjs never calls: take them off again.
  const before = { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') };
  try {
    await startWasmBuild(threads);
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!before.uncaughtException.includes(l)) process.off('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!before.unhandledRejection.includes(l)) process.off('unhandledRejection', l);
  }
}

async function startWasmBuild(threads: number): Promise<void> {
  if (threads > 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    installWorkerShim();
    setThreadsCount(threads);
    const cpus = os.cpus;
    os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus()[i % Math.max(1, cpus().length)]);
    try {
      if (await tf.setBackend('wasm')) return;
    } finally {
      os.cpus = cpus;
    }
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  }
  setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('the WebAssembly backend did not initialise');
}
