/**
 * TensorFlow.js's WebGPU backend in Node, through Dawn (the npm package `webgpu`, a Node-API addon
 * prebuilt for Linux, macOS and Windows; it also loads in Electron's Node). Dawn reaches the GPU
 * through Vulkan, Metal or D3D12, so this covers NVIDIA, AMD, Intel and Apple GPUs alike.
 *
 * A software adapter (Mesa's lavapipe on a machine without a GPU) is correct but slow (~4 GFLOP/s),
 * so the automatic chain takes only hardware adapters; `--backend webgpu` takes any, which is how
 * CI proves the GPU path on a machine with no GPU.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readdirSync } from 'node:fs';

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Software rasteriser (lavapipe, SwiftShader, WARP) rather than a GPU. */
  software: boolean;
  features: string[];
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

let gpu: GPU | undefined;

/** Loads Dawn and installs navigator.gpu (Node 20 has no navigator; later Nodes have one without gpu). */
async function dawn(): Promise<GPU> {
  if (gpu) return gpu;
  const { create, globals } = (await import('webgpu')) as { create(o: string[]): GPU; globals: object };
  Object.assign(globalThis, globals);
  const g = create([]);
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: g, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: g }, configurable: true, writable: true });
  gpu = g;
  return g;
}

/** The adapter tfjs will get (it asks for high performance), described for `studio info`. */
export async function probeAdapter(): Promise<AdapterInfo> {
  const g = await dawn();
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (no GPU driver for Vulkan, Metal or D3D12 was found)');
  const info = adapter.info;
  const description = info.description || info.device || '';
  const software = info.architecture === 'software' || /lavapipe|llvmpipe|swiftshader|warp/i.test(`${description} ${info.vendor}`)
    || Boolean((adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  return {
    vendor: info.vendor, architecture: info.architecture, device: info.device, description, software,
    features: [...adapter.features].sort(),
    limits: { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize },
  };
}

/**
 * Linux without a GPU device node (/dev/dri/renderD*: Mesa's drivers for AMD, Intel, nouveau…;
 * /dev/nvidia*: NVIDIA's driver; /dev/dxg: WSL2) has at most a software Vulkan, which the automatic chain refuses
 * anyway. Telling so without loading Dawn matters: Dawn prints two warnings on stderr whenever it
 * opens lavapipe, which every command showed while it used another backend. Undefined: there may be one.
 */
export function noGpuDevice(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const has = (dir: string, re: RegExp) => {
    try {
      return readdirSync(dir).some((n) => re.test(n));
    } catch {
      return false;
    }
  };
  // /dev/dxg: WSL2's GPU (through Windows' driver), which has no render node.
  if (has('/dev/dri', /^renderD\d+$/) || has('/dev', /^(nvidia\d+|dxg)$/)) return undefined;
  return 'no GPU device here (no /dev/dri/renderD*, /dev/nvidia* or /dev/dxg); a software adapter can be forced with --backend webgpu';
}

/** Starts the tfjs WebGPU backend; a software adapter only when `allowSoftware`. */
export async function startWebgpu(allowSoftware: boolean): Promise<AdapterInfo> {
  const noDevice = allowSoftware ? undefined : noGpuDevice();
  if (noDevice) throw new Error(noDevice);
  const adapter = await probeAdapter();
  if (adapter.software && !allowSoftware) {
    throw new Error(`only a software adapter (${adapter.vendor} ${adapter.architecture}${adapter.description ? `, ${adapter.description}` : ''}) is available; force it with --backend webgpu`);
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('the WebGPU backend did not initialise');
  return adapter;
}
