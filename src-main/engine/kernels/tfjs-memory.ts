/**
 * Our WebAssembly kernels run on the tfjs WebAssembly backend's own linear memory: instantiated on it,
 * they read its tensors where they lie and write into tensors it allocated (see winograd.ts, pool.ts).
 * Each module has a shared-memory build (tfjs-wasm threaded) and a plain one (its single-threaded build).
 */
import { engine, getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's backend the kernels use (not in its public types). */
export interface WasmBackendInternals {
  // The threaded build exposes its (shared) memory as wasmMemory, the single-threaded one as asm.memory.
  wasm: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory }; _malloc(n: number): number; _free(p: number): void };
  dataIdMap: { get(id: unknown): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: object): void;
}

export function memoryOf(b: WasmBackendInternals): WebAssembly.Memory | undefined {
  const memory = b.wasm?.wasmMemory ?? b.wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/** A tensor's byte offset in the backend's memory. */
export function addressOf(b: WasmBackendInternals, t: TensorInfo): number {
  return b.dataIdMap.get(t.dataId)!.memoryOffset;
}

export interface Instantiated<T> {
  exports: T;
  module: WebAssembly.Module;
  shared: boolean;
}

/** Instantiates (once per memory) the build of a module that fits `memory`: shared or plain. */
export function instantiator<T>(sharedBase64: string, plainBase64: string): (memory: WebAssembly.Memory) => Instantiated<T> {
  const instances = new WeakMap<WebAssembly.Memory, Instantiated<T>>();
  return (memory) => {
    let k = instances.get(memory);
    if (!k) {
      const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
      const module = new WebAssembly.Module(Buffer.from(shared ? sharedBase64 : plainBase64, 'base64'));
      k = { exports: new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as T, module, shared };
      instances.set(memory, k);
    }
    return k;
  };
}

/**
 * Registers `kernelFunc` as the wasm backend's `kernelName`, in front of the kernel registered now
 * (tfjs-wasm's stock one), which it returns for the cases ours does not cover; the stock kernel's
 * setup (its WebAssembly binding) still runs. Undefined where there was none.
 */
export function registerInFront(kernelName: string, kernelFunc: KernelFunc): KernelConfig | undefined {
  const stock = getKernel(kernelName, 'wasm');
  if (stock != null) unregisterKernel(kernelName, 'wasm');
  registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc: (backend) => stock?.setupFunc?.(backend) });
  return stock;
}

/** Registers a kernel of our own on the wasm backend once (kernels with no stock counterpart). */
export function registerOwn(kernelName: string, kernelFunc: KernelFunc): void {
  if (getKernel(kernelName, 'wasm') == null) registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
}

/**
 * Whether a tape would record a kernel run now: inside tf.grad and not inside another kernel or a
 * custom gradient's forward. Our kernels without gradients are used only where it would not.
 */
export function tapeRecords(): boolean {
  const state = engine().state as unknown as { gradientDepth: number; kernelDepth: number };
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}
