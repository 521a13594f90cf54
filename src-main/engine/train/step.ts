/**
 * One training step of a PhotoWCT decoder, as one unit (forward, loss, gradients, update), so that a
 * precision policy can later wrap exactly this. The loss is the WCT paper's
 *   ‖I_o − I_i‖² + λ‖Φ(I_o) − Φ(I_i)‖²,  Φ = the level's encoder, λ = 1,
 * with both terms as means (per pixel and per feature value) so that λ weighs comparable magnitudes.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PhotoAutoencoder } from '../photo/autoencoder.ts';

export interface ReconstructionLoss {
  total: tf.Scalar;
  pixel: tf.Scalar;
  feature: tf.Scalar;
}

/** The loss of reconstructing `batch` (RGB 0–255, [N,H,W,3]) through the level's encoder and decoder. */
export function reconstructionLoss(ae: PhotoAutoencoder, batch: tf.Tensor4D, lambda = 1): ReconstructionLoss {
  const { features, switches } = ae.encode(batch);
  const out = ae.decode(features, switches);
  const pixel = tf.mean(tf.squaredDifference(out, batch)) as tf.Scalar;
  const { features: fo, switches: so } = ae.encode(out);
  const feature = tf.mean(tf.squaredDifference(fo, features)) as tf.Scalar;
  for (const s of [...switches, ...so]) s.argmax.dispose();
  return { total: tf.add(pixel, tf.mul(feature, lambda)) as tf.Scalar, pixel, feature };
}

export interface StepValues {
  total: number;
  pixel: number;
  feature: number;
}

/** Forward, loss, gradients with respect to the decoder's variables, and the optimiser's update. */
export async function trainStep(ae: PhotoAutoencoder, optimizer: tf.Optimizer, batch: tf.Tensor4D, lambda = 1): Promise<StepValues> {
  const vars = [...ae.dec.values()].flatMap((w) => [w.kernel, w.bias]);
  let parts: ReconstructionLoss | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const l = reconstructionLoss(ae, batch, lambda);
    parts = { total: l.total, pixel: tf.keep(l.pixel), feature: tf.keep(l.feature) };
    return l.total;
  }, vars);
  optimizer.applyGradients(grads);
  const read = tf.stack([value, parts!.pixel, parts!.feature]);
  const [total, pixel, feature] = Array.from(await read.data());
  tf.dispose([read, value, parts!.pixel, parts!.feature, ...Object.values(grads)]);
  return { total, pixel, feature };
}
