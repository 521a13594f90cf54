/**
 * ReLU's mask for the backward pass of VGG19's layers (models/vgg19-net.ts) on the tfjs WebAssembly
 * backend, by wasm/mask.as.ts on the backend's own memory: `reluMask(y)` is y > 0 as a bool tensor,
 * `maskedGrad(dy, mask)` is dy where the mask is set, 0 elsewhere. Each is one pass; tfjs-wasm's Greater
 * against a scalar broadcasts a float at a time and its Multiply needs the mask cast to float32 first.
 * Both return undefined off WebAssembly (or with STUDIO_WASM_MASK=0): the caller runs tfjs's ops.
 * Same values either way for finite dy (tested); where the mask is unset the gradient is 0, as PyTorch's
 * threshold_backward gives, not 0·dy (NaN for an infinite dy). Kernels without gradients: used inside a custom gradient only.
 */
import { engine, getBackend, getKernel, registerKernel } from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import { MASK_WASM_BASE64, MASK_WASM_SHARED_BASE64 } from './mask-wasm.gen.ts';
import { addressOf, instantiator, memoryOf, type WasmBackendInternals } from './tfjs-memory.ts';

const BACKEND = 'wasm';
const RELU_MASK = 'StudioReluMask', MASKED_GRAD = 'StudioMaskedGrad';

interface MaskKernels {
  reluMask(y: number, n: number, mask: number): void;
  maskedGrad(dy: number, mask: number, n: number, out: number): void;
}

const kernelsOn = instantiator<MaskKernels>(MASK_WASM_SHARED_BASE64, MASK_WASM_BASE64);

type KernelArgs = { inputs: NamedTensorInfoMap; backend: object; attrs?: NamedAttrMap };
const size = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

function reluMaskKernel({ inputs, backend }: KernelArgs): TensorInfo {
  const b = backend as WasmBackendInternals;
  const y = inputs.y as TensorInfo;
  const out = (b.makeOutput as (shape: number[], dtype: string) => TensorInfo)(y.shape, 'bool');
  kernelsOn(memoryOf(b)!).exports.reluMask(addressOf(b, y), size(y), addressOf(b, out));
  return out;
}

function maskedGradKernel({ inputs, backend }: KernelArgs): TensorInfo {
  const b = backend as WasmBackendInternals;
  const { dy, mask } = inputs as { dy: TensorInfo; mask: TensorInfo };
  const out = b.makeOutput(dy.shape, 'float32');
  kernelsOn(memoryOf(b)!).exports.maskedGrad(addressOf(b, dy), addressOf(b, mask), size(dy), addressOf(b, out));
  return out;
}

function available(): boolean {
  if (getBackend() !== BACKEND || process.env.STUDIO_WASM_MASK === '0') return false;
  if (getKernel(RELU_MASK, BACKEND) == null) {
    registerKernel({ kernelName: RELU_MASK, backendName: BACKEND, kernelFunc: reluMaskKernel as unknown as KernelFunc });
    registerKernel({ kernelName: MASKED_GRAD, backendName: BACKEND, kernelFunc: maskedGradKernel as unknown as KernelFunc });
  }
  return memoryOf(engine().backend as unknown as WasmBackendInternals) !== undefined;
}

/** y > 0 as bool, one pass on WebAssembly; undefined elsewhere. */
export function reluMask(y: Tensor): Tensor | undefined {
  if (y.dtype !== 'float32' || !available()) return undefined;
  return engine().runKernel(RELU_MASK, { y }) as Tensor;
}

/** dy where mask (bool, dy's shape) is set, else 0, one pass on WebAssembly; undefined elsewhere. */
export function maskedGrad(dy: Tensor, mask: Tensor): Tensor | undefined {
  if (dy.dtype !== 'float32' || mask.dtype !== 'bool' || dy.size !== mask.size || !available()) return undefined;
  return engine().runKernel(MASKED_GRAD, { dy, mask }) as Tensor;
}
