/**
 * `--preserve-colors` (neural-style's original_colors): keep the content's chrominance and take only
 * the luminance from the stylised result, in YIQ (BT.601) space.
 */
import * as tf from '@tensorflow/tfjs-core';

const RGB_TO_YIQ = [
  [0.299, 0.587, 0.114],
  [0.595716, -0.274453, -0.321263],
  [0.211456, -0.522591, 0.311135],
];

function toYiq(rgb: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w] = rgb.shape;
    const m = tf.transpose(tf.tensor2d(RGB_TO_YIQ)); // [3,3] so that [P,3]·M = YIQ rows
    return tf.reshape(tf.matMul(tf.reshape(rgb, [n * h * w, 3]), m), [n, h, w, 3]);
  });
}

function fromYiq(yiq: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w] = yiq.shape;
    const inv = tf.transpose(tf.tensor2d(invert3(RGB_TO_YIQ)));
    return tf.reshape(tf.matMul(tf.reshape(yiq, [n * h * w, 3]), inv), [n, h, w, 3]);
  });
}

function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

/** Luminance of `stylized`, chrominance of `content` (both [1,H,W,3], same size, any common scale). */
export function preserveColors(stylized: tf.Tensor4D, content: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const s = toYiq(stylized);
    const c = toYiq(content);
    const y = tf.slice(s, [0, 0, 0, 0], [-1, -1, -1, 1]);
    const iq = tf.slice(c, [0, 0, 0, 1], [-1, -1, -1, 2]);
    return fromYiq(tf.concat([y, iq], 3));
  });
}
