/**
 * 2×2, stride-2 max pooling kernels on the tfjs WebAssembly backend, by wasm/pool.as.ts on the
 * backend's own memory:
 *  - the gradient of VGG19's pooling, registered in front of tfjs-wasm's MaxPoolGrad (a general window
 *    loop, one float at a time: 1.7 s of a 512² VGG19 backward pass). Other pools, and all of them with
 *    STUDIO_WASM_POOL=0, stay on the stock kernel; the results are the same bits (tested);
 *  - PhotoWCT's pooling with switches and its unpooling (photo/autoencoder.ts), one pass each where the
 *    chain of tfjs ops took a 6-D transpose, argMax, max and cast, or a one-hot product and a transpose.
 *    Kernels without gradients: undefined where a tape would record them (training), or off WebAssembly,
 *    or with STUDIO_WASM_POOL=0; the caller then runs the chain. Same values (tested).
 */
import { backend_util, engine, getBackend, MaxPoolGrad } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, Tensor4D, TensorInfo } from '@tensorflow/tfjs-core';
import { POOL_WASM_BASE64, POOL_WASM_SHARED_BASE64 } from './pool-wasm.gen.ts';
import { addressOf, instantiator, memoryOf, registerInFront, registerOwn, tapeRecords, type WasmBackendInternals } from './tfjs-memory.ts';

const BACKEND = 'wasm';
const SWITCHES = 'StudioMaxPoolSwitches', UNPOOL = 'StudioMaxUnpool';

interface PoolKernels {
  maxPoolGrad2x2(x: number, y: number, dy: number, dx: number, h: number, w: number, c: number, ho: number, wo: number): void;
  maxPoolSwitches2x2(x: number, h: number, w: number, c: number, y: number, s: number): void;
  maxUnpool2x2(y: number, s: number, h2: number, w2: number, c: number, out: number, h: number, w: number): void;
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

function switchesKernel({ inputs, backend }: KernelArgs): TensorInfo[] {
  const b = backend as WasmBackendInternals;
  const x = inputs.x as TensorInfo;
  const [n, h, w, c] = x.shape;
  const shape = [n, h >> 1, w >> 1, c];
  const pooled = b.makeOutput(shape, 'float32');
  const argmax = (b.makeOutput as (shape: number[], dtype: string) => TensorInfo)(shape, 'int32');
  const k = kernelsOn(memoryOf(b)!).exports;
  const inImage = h * w * c * 4, outImage = (h >> 1) * (w >> 1) * c * 4;
  for (let i = 0; i < n; i++) k.maxPoolSwitches2x2(addressOf(b, x) + i * inImage, h, w, c, addressOf(b, pooled) + i * outImage, addressOf(b, argmax) + i * outImage);
  return [pooled, argmax];
}

function unpoolKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as WasmBackendInternals;
  const { y, argmax } = inputs as { y: TensorInfo; argmax: TensorInfo };
  const { height, width } = attrs as unknown as { height: number; width: number };
  const [n, h2, w2, c] = y.shape;
  const out = b.makeOutput([n, height, width, c], 'float32');
  const k = kernelsOn(memoryOf(b)!).exports;
  const inImage = h2 * w2 * c * 4, outImage = height * width * c * 4;
  for (let i = 0; i < n; i++) k.maxUnpool2x2(addressOf(b, y) + i * inImage, addressOf(b, argmax) + i * inImage, h2, w2, c, addressOf(b, out) + i * outImage, height, width);
  return out;
}

/** Whether the PhotoWCT kernels run here and now (WebAssembly, not switched off, no tape recording). */
function photoKernelsHere(): boolean {
  if (getBackend() !== BACKEND || process.env.STUDIO_WASM_POOL === '0' || tapeRecords()) return false;
  if (!memoryOf(engine().backend as unknown as WasmBackendInternals)) return false;
  registerOwn(SWITCHES, switchesKernel as unknown as KernelFunc);
  registerOwn(UNPOOL, unpoolKernel as unknown as KernelFunc);
  return true;
}

/** 2×2 max pooling of x [N,H,W,C] and its switches (int32, 2·row + column of each maximum), one pass; undefined where not covered. */
export function maxPoolSwitches(x: Tensor4D): { pooled: Tensor4D; argmax: Tensor4D } | undefined {
  const [, h, w] = x.shape;
  if (x.dtype !== 'float32' || h < 2 || w < 2 || !photoKernelsHere()) return undefined;
  const [pooled, argmax] = engine().runKernel(SWITCHES, { x }) as Tensor4D[];
  return { pooled, argmax };
}

/** Max-unpooling of y [N,h2,w2,C] by switches of the same shape into [N,height,width,C], one pass; undefined where not covered. */
export function maxUnpoolBySwitches(y: Tensor4D, argmax: Tensor4D, height: number, width: number): Tensor4D | undefined {
  // The kernel zeroes at most one odd row and column past the windows, and reads switches of y's shape.
  const [, h2, w2] = y.shape;
  if (y.dtype !== 'float32' || argmax.dtype !== 'int32' || argmax.shape.some((n, i) => n !== y.shape[i])
    || height < 2 * h2 || height > 2 * h2 + 1 || width < 2 * w2 || width > 2 * w2 + 1 || !photoKernelsHere()) return undefined;
  return engine().runKernel(UNPOOL, { y, argmax }, { height, width } as unknown as NamedAttrMap) as Tensor4D;
}

let registered = false;

/** Puts the 2×2 kernel in front of the wasm backend's MaxPoolGrad (idempotent). */
export function registerWasmPoolGrad(): void {
  if (registered) return;
  stock = registerInFront(MaxPoolGrad, maxPoolGrad as unknown as KernelFunc);
  if (stock == null) throw new Error('pool: the wasm backend has no MaxPoolGrad kernel to fall back to');
  registered = true;
}
