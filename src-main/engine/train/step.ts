/**
 * One training step of a PhotoWCT decoder, as one unit (forward, loss, gradients, update), so that a
 * precision policy can later wrap exactly this. The loss is the WCT paper's
 *   ‖I_o − I_i‖² + λ‖Φ(I_o) − Φ(I_i)‖²,  Φ = the level's encoder, λ = 1,
 * with both terms as means (per pixel and per feature value) so that λ weighs comparable magnitudes.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PhotoAutoencoder } from '../photo/autoencoder.ts';
import { Adam } from '../gatys/optimizers.ts';

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

/** The decoder's trainable variables, in a fixed order (optimiser state is kept in the same order). */
export function decoderVariables(ae: PhotoAutoencoder): tf.Variable[] {
  return [...ae.dec.values()].flatMap((w) => [w.kernel, w.bias]);
}

/**
 * Adam over a list of variables, one moment pair per variable, with a state that can be saved and
 * restored exactly (tfjs's own Adam recomputes β^t by pow on restore but multiplies it up step by
 * step while running, so a resumed run drifts in the last bits).
 */
export class VariableAdam {
  private readonly adams: Adam[];
  constructor(private readonly vars: tf.Variable[], learningRate: number) {
    this.adams = vars.map(() => new Adam({ learningRate }));
  }

  apply(grads: tf.Tensor[]): void {
    this.vars.forEach((v, i) => {
      const { next } = this.adams[i].step(v, grads[i]);
      v.assign(next);
      next.dispose();
    });
  }

  state(): { t: number; m?: tf.Tensor; v?: tf.Tensor }[] {
    return this.adams.map((a) => a.state());
  }

  restore(states: { t: number; m?: tf.Tensor; v?: tf.Tensor }[]): void {
    states.forEach((s, i) => this.adams[i].restore(s));
  }

  dispose(): void {
    for (const a of this.adams) a.dispose();
  }
}

/** Forward, loss, gradients with respect to the decoder's variables, and the optimiser's update. */
export async function trainStep(ae: PhotoAutoencoder, optimizer: VariableAdam, batch: tf.Tensor4D, lambda = 1): Promise<StepValues> {
  const vars = decoderVariables(ae);
  let parts: ReconstructionLoss | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const l = reconstructionLoss(ae, batch, lambda);
    parts = { total: l.total, pixel: tf.keep(l.pixel), feature: tf.keep(l.feature) };
    return l.total;
  }, vars);
  optimizer.apply(vars.map((v) => grads[v.name]));
  const read = tf.stack([value, parts!.pixel, parts!.feature]);
  const [total, pixel, feature] = Array.from(await read.data());
  tf.dispose([read, value, parts!.pixel, parts!.feature, ...Object.values(grads)]);
  return { total, pixel, feature };
}
