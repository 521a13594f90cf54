/**
 * The in-memory form of a model: named float tensors plus what a consumer needs to use them
 * (architecture, weight layout, preprocessing). Files on disk are safetensors (see ../tensors/).
 */

/** How RGB pixels in [0, 1] become the network's input: reorder, × scale, − mean, ÷ std (per channel, in the model's order). */
export interface Preprocessing {
  colorOrder: 'RGB' | 'BGR';
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** Keras / Caffe VGG: BGR, 0–255, minus the ImageNet mean (REFERENCE §1). */
export const CAFFE_PREPROCESSING: Preprocessing = {
  colorOrder: 'BGR',
  scale: 255,
  mean: [103.939, 116.779, 123.68],
  std: [1, 1, 1],
};

/** torchvision: RGB in [0, 1], minus mean, divided by std (REFERENCE §1). */
export const TORCH_PREPROCESSING: Preprocessing = {
  colorOrder: 'RGB',
  scale: 1,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

export type StoredDtype = 'F32' | 'F16';

export interface NamedTensor {
  /** Element type in the file; the data is always held as float32 in memory. */
  dtype: StoredDtype;
  shape: number[];
  data: Float32Array;
}

export type TensorMap = Map<string, NamedTensor>;

import type { Licence } from './catalog.ts';

/**
 * VGG19 weights in the project's layout: `convB_I.kernel` HWIO [3,3,in,out] and `convB_I.bias` [out],
 * whatever layout the source file had (the importers convert).
 */
export interface Vgg19Weights {
  architecture: 'vgg19';
  /** Channel width of each of the 5 blocks (64,128,256,512,512 for the real network). */
  widths: number[];
  preprocessing: Preprocessing;
  tensors: TensorMap;
  /** Where the weights came from (file name, URL, "tiny seed 1"), for `studio info`. */
  source: string;
  /**
   * The deepest feature (reluB_I) of a partial network, which has only the convs up to it (FastPhotoStyle's
   * photo_wct.pth ends at relu4_1); absent for the whole VGG19.
   */
  depth?: string;
  /** The weights' licence, where the source is known (the catalogue's downloads, FastPhotoStyle's file). */
  licence?: Licence;
}

/** Tensor names of a conv in the project's layout: `conv1_1.kernel` (HWIO) and `conv1_1.bias`. */
export function kernelKey(convName: string): string {
  return `${convName}.kernel`;
}
export function biasKey(convName: string): string {
  return `${convName}.bias`;
}

/**
 * Feature scale of a model's preprocessing relative to the Caffe/Keras VGG (0–255 input, std 1): the
 * model's input units per 0–255 intensity unit, (scale / mean std) / 255. Caffe → 1; torchvision →
 * 1/(255·0.226) ≈ 0.0173. Features of a first layer scale with it exactly; the methods tuned on Caffe
 * features (WCT's regulariser, neural-style's loss weights) divide by it to get back their units.
 */
export function featureScaleOf(p: Preprocessing): number {
  const std = (p.std[0] + p.std[1] + p.std[2]) / 3;
  return p.scale / std / 255;
}
