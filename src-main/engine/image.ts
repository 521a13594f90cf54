/**
 * The engine's image currency: RGB, HWC, float32 in [0, 1] (what io/images.ts decodes and
 * io/write.ts encodes), and its conversions to the tensors the networks take (RGB on 0–255).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface RgbImage {
  width: number;
  height: number;
  /** RGB, row-major HWC, values in [0, 1]. */
  data: Float32Array;
}

export function imageToTensor(img: RgbImage): tf.Tensor4D {
  return tf.tidy(() => tf.mul(tf.tensor4d(img.data, [1, img.height, img.width, 3]), 255));
}

/** Reads a [1,H,W,3] 0–255 tensor back into an image, clamping to the valid range. */
export async function tensorToImage(t: tf.Tensor4D): Promise<RgbImage> {
  const [, height, width] = t.shape;
  const scaled = tf.tidy(() => tf.clipByValue(tf.div(t, 255), 0, 1));
  const data = (await scaled.data()) as Float32Array;
  scaled.dispose();
  return { width, height, data };
}

/** 8-bit RGB of a [1,H,W,3] 0–255 tensor: what previews send to a UI. */
export async function tensorToRgb8(t: tf.Tensor4D): Promise<{ width: number; height: number; data: Uint8Array }> {
  const [, height, width] = t.shape;
  const q = tf.tidy(() => tf.cast(tf.round(tf.clipByValue(t, 0, 255)), 'int32'));
  const data = Uint8Array.from((await q.data()) as Int32Array);
  q.dispose();
  return { width, height, data };
}

/** Longest side `size`, keeping the aspect ratio. */
export function fitSize(width: number, height: number, size: number): { width: number; height: number } {
  const s = size / Math.max(width, height);
  return { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
}

/** Bilinear resize of a [1,H,W,C] tensor (half-pixel centres, so a 2× reduction is a 2×2 mean). */
export function resizeTo(t: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  if (t.shape[1] === height && t.shape[2] === width) return t.clone();
  return tf.image.resizeBilinear(t, [height, width], false, true);
}
