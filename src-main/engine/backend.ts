/**
 * Chooses the compute backend once per process, best first:
 *   tfjs-node-gpu (CUDA) → webgpu (Dawn, a hardware adapter) → tfjs-node (libtensorflow CPU)
 *   → wasm (XNNPACK, SIMD, threads) → cpu (plain JS).
 * The two native packages are optional dependencies whose install downloads libtensorflow; where that
 * failed they are simply absent (or present without their binding) and the import throws, so we move on.
 * `--backend NAME` or STUDIO_BACKEND forces one; a forced backend that cannot start is an error, not a
 * silent fallback, so a user who asked for the GPU knows they did not get it.
 */
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core alone has none) and the CPU backend.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import os from 'node:os';
import { StudioError } from '../errors.ts';
import { registerWasmGradKernels } from './kernels/wasm-grads.ts';
import { registerWasmPoolGrad } from './kernels/pool.ts';
import { registerWinogradConv2D } from './kernels/winograd.ts';
import { startWasm, wantedWasmThreads } from './wasm-threads.ts';
import { startWebgpu, type AdapterInfo } from './webgpu.ts';

export const BACKEND_NAMES = ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** The studio's name for it (what --backend takes). */
  name: BackendName;
  /** TensorFlow.js's own backend name. */
  tfBackend: string;
  /** Human-readable device: "CUDA GPU", "CPU (libtensorflow)", "CPU (WebAssembly, SIMD, 1 thread)". */
  device: string;
  threads: number;
  /** Why each better backend was not used, in chain order. */
  skipped: { name: BackendName; reason: string }[];
  versions: Record<string, string>;
  /** The WebGPU adapter: vendor, architecture, features (shader-f16), the limits that matter. */
  adapter?: AdapterInfo;
  /** Largest single tensor the device can bind, bytes (WebGPU's storage-binding limit). */
  maxTensorBytes?: number;
}

let current: BackendInfo | undefined;

export function isBackendName(s: string): s is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(s);
}

function reasonOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0].slice(0, 200);
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<void> {
  // The native package registers a backend named 'tensorflow' on the shared tfjs-core instance.
  await import(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not initialise`);
}

async function start(name: BackendName, forced: boolean): Promise<Omit<BackendInfo, 'skipped' | 'versions'>> {
  switch (name) {
    case 'webgpu': {
      const adapter = await startWebgpu(forced);
      const kind = adapter.software ? 'software' : 'GPU';
      return {
        name, tfBackend: 'webgpu', threads: 1, adapter, maxTensorBytes: adapter.limits.maxStorageBufferBindingSize,
        device: `WebGPU ${kind}: ${[adapter.vendor, adapter.architecture, adapter.description].filter(Boolean).join(' ')}`,
      };
    }
    case 'tfjs-node-gpu': {
      await tryNative('@tensorflow/tfjs-node-gpu');
      return { name, tfBackend: 'tensorflow', device: 'CUDA GPU (libtensorflow)', threads: os.availableParallelism() };
    }
    case 'tfjs-node': {
      await tryNative('@tensorflow/tfjs-node');
      return { name, tfBackend: 'tensorflow', device: 'CPU (libtensorflow)', threads: os.availableParallelism() };
    }
    case 'wasm': {
      await startWasm(wantedWasmThreads());
      registerWasmGradKernels();
      registerWinogradConv2D();
      registerWasmPoolGrad();
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const threads = getThreadsCount();
      return { name, tfBackend: 'wasm', device: `CPU (WebAssembly${simd ? ', SIMD' : ''}, ${threads} thread${threads === 1 ? '' : 's'})`, threads };
    }
    case 'cpu': {
      await tf.setBackend('cpu');
      return { name, tfBackend: 'cpu', device: 'CPU (plain JavaScript)', threads: 1 };
    }
  }
}

function versions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const v: Record<string, string> = { node: process.versions.node, 'tfjs-core': tf.version_core };
  for (const pkg of ['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-webgpu', 'webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    try {
      v[pkg.replace('@tensorflow/', '')] = (require(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      /* not installed */
    }
  }
  if (process.versions.electron) v.electron = process.versions.electron;
  return v;
}

/**
 * Starts the backend (once; later calls return the same unless another is forced).
 * `force` wins over STUDIO_BACKEND, which wins over the automatic chain.
 */
export async function initBackend(force?: string): Promise<BackendInfo> {
  const wanted = force ?? process.env.STUDIO_BACKEND ?? undefined;
  if (wanted !== undefined && wanted !== '' && !isBackendName(wanted)) {
    throw new StudioError('BAD_ARGUMENT', `unknown backend "${wanted}"`, `choose one of: ${BACKEND_NAMES.join(', ')}`);
  }
  if (current && (!wanted || current.name === wanted)) return current;

  tf.env().set('IS_TEST', false);
  const chain: BackendName[] = wanted ? [wanted as BackendName] : [...BACKEND_NAMES];
  const skipped: BackendInfo['skipped'] = [];
  for (const name of chain) {
    try {
      const started = await start(name, Boolean(wanted));
      await tf.ready();
      current = { ...started, skipped, versions: versions() };
      return current;
    } catch (e) {
      if (wanted) {
        throw new StudioError('BACKEND_UNAVAILABLE', `backend ${name} cannot start here: ${reasonOf(e)}`,
          name.startsWith('tfjs-node') ? 'its optional package installs only where libtensorflow can be downloaded; omit --backend to use the best available' : undefined);
      }
      skipped.push({ name, reason: reasonOf(e) });
    }
  }
  throw new StudioError('INTERNAL', 'no compute backend could start');
}

export function backendInfo(): BackendInfo | undefined {
  return current;
}

/**
 * Refuses work whose largest tensor would not fit the device's binding limit (128 MiB on lavapipe),
 * with a message that names the limit, instead of letting the GPU driver fail mid-job.
 */
export function checkTensorFits(bytes: number, what: string, hint: string): void {
  const limit = current?.maxTensorBytes;
  if (limit !== undefined && bytes > limit) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    throw new StudioError('IMAGE_TOO_LARGE', `${what} needs a ${mib(bytes)} tensor, over this GPU's ${mib(limit)} storage-binding limit (${current!.device})`, hint);
  }
}
