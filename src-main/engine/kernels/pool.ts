/**
 * The gradient of 2×2, stride-2 max pooling (VGG19's) on the tfjs WebAssembly backend, by
 * wasm/pool.as.ts on the backend's own memory, registered in front of tfjs-wasm's MaxPoolGrad (a general
 * window loop, one float at a time: 1.7 s of a 512² VGG19 backward pass). Other pools, and all of them
 * with STUDIO_WASM_POOL=0, stay on the stock kernel; the results are the same bits (tested).
 */
import { backend_util, getKernel, MaxPoolGrad, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { POOL_WASM_BASE64, POOL_WASM_SHARED_BASE64 } from './pool-wasm.gen.ts';
import { addressOf, instantiator, memoryOf, type WasmBackendInternals } from './tfjs-memory.ts';

const BACKEND = 'wasm';

interface PoolKernels {
  maxPoolGrad2x2(x: number, y: number, dy: number, dx: number, h: number, w: number, c: number, ho: number, wo: number): void;
}

const kernelsOn = instantiator<PoolKernels>(POOL_WASM_SHARED_BASE64, POOL_WASM_BASE64);

type KernelArgs = { inputs: NamedTensorInfoMap; backend: object; attrs?: NamedAttrMap };

let stock: KernelConfig | undefined;

function maxPoolGrad(args: KernelArgs): TensorInfo {
  const { dy, input, output } = args.inputs as { dy: TensorInfo; input: TensorInfo; output: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as { filterSize: number | [number, number]; strides: number | [number, number];
    pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
  const info = backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const b = args.backend as WasmBackendInternals;
  const memory = memoryOf(b);
  const covered = process.env.STUDIO_WASM_POOL !== '0' && memory && input.dtype === 'float32'
    && info.filterHeight === 2 && info.filterWidth === 2 && info.strideHeight === 2 && info.strideWidth === 2
    && info.padInfo.top === 0 && info.padInfo.left === 0;
  if (!covered) return stock!.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  const k = kernelsOn(memory!).exports;
  const dx = b.makeOutput(input.shape, 'float32');
  const image = (n: number) => n * 4;
  for (let n = 0; n < info.batchSize; n++) {
    k.maxPoolGrad2x2(addressOf(b, input) + image(n * info.inHeight * info.inWidth * info.inChannels), addressOf(b, output) + image(n * info.outHeight * info.outWidth * info.inChannels),
      addressOf(b, dy) + image(n * info.outHeight * info.outWidth * info.inChannels), addressOf(b, dx) + image(n * info.inHeight * info.inWidth * info.inChannels),
      info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth);
  }
  return dx;
}

let registered = false;

/** Puts the 2×2 kernel in front of the wasm backend's MaxPoolGrad (idempotent). */
export function registerWasmPoolGrad(): void {
  if (registered) return;
  const current = getKernel(MaxPoolGrad, BACKEND);
  if (current == null) throw new Error('pool: the wasm backend has no MaxPoolGrad kernel to fall back to');
  stock = current;
  unregisterKernel(MaxPoolGrad, BACKEND);
  registerKernel({ kernelName: MaxPoolGrad, backendName: BACKEND, kernelFunc: maxPoolGrad as unknown as KernelFunc, setupFunc: (backend) => current.setupFunc?.(backend) });
  registered = true;
}
