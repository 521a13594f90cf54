/**
 * PhotoWCT decoders, stored beside the encoder they were trained for:
 *   <model>/decoders/level<L>.safetensors   decB_I.kernel (HWIO) / decB_I.bias
 * with metadata naming the level and the sha256 of the encoder's weight file. A decoder only inverts
 * the encoder it was trained with, so loading one made for another encoder is a clear error.
 */
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StudioError } from '../../errors.ts';
import { decodeSafetensors, encodeSafetensors } from '../tensors/safetensors.ts';
import { decoderConvs, type DecoderWeights, type Level } from '../photo/autoencoder.ts';
import { readManifest, MODEL_FILE } from './store.ts';
import { writeFileAtomic } from '../../io/write.ts';
import type { StoredDtype, TensorMap } from './format.ts';

export function decoderPath(decodersDir: string, level: Level): string {
  return join(decodersDir, `level${level}.safetensors`);
}

/** The sha256 of a model folder's weight file, from its manifest. */
export async function encoderHash(modelDir: string): Promise<string> {
  const m = await readManifest(modelDir);
  const f = m.files.find((x) => x.path === MODEL_FILE);
  if (!f) throw new StudioError('BAD_MODEL', `${modelDir}: manifest lists no ${MODEL_FILE}`);
  return f.sha256;
}

export interface DecoderMeta {
  level: Level;
  encoderSha256: string;
  widths: number[];
  steps?: number;
  loss?: number;
}

export async function saveDecoder(decodersDir: string, weights: DecoderWeights, meta: DecoderMeta, dtype: StoredDtype = 'F32'): Promise<string> {
  const tensors: TensorMap = new Map();
  for (const d of decoderConvs(meta.level, meta.widths)) {
    const w = weights.get(d.name);
    if (!w) throw new Error(`decoder weights lack ${d.name}`);
    tensors.set(`${d.name}.kernel`, { dtype, shape: [3, 3, d.inChannels, d.outChannels], data: w.kernel });
    tensors.set(`${d.name}.bias`, { dtype, shape: [d.outChannels], data: w.bias });
  }
  await mkdir(decodersDir, { recursive: true });
  const path = decoderPath(decodersDir, meta.level);
  await writeFileAtomic(path, encodeSafetensors(tensors, {
    architecture: 'photowct-decoder', layout: 'HWIO', level: String(meta.level), encoder_sha256: meta.encoderSha256,
    widths: JSON.stringify(meta.widths), steps: String(meta.steps ?? 0), loss: String(meta.loss ?? ''),
  }, dtype));
  return path;
}

/** Loads a level's decoder, checking it was made for this encoder. */
export async function loadDecoder(decodersDir: string, level: Level, encoderSha256: string): Promise<{ weights: DecoderWeights; meta: DecoderMeta }> {
  const path = decoderPath(decodersDir, level);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch {
    throw new StudioError('MODEL_MISSING', `no decoder for level ${level} at ${path}`,
      `fetch FastPhotoStyle's model (studio models fetch photowct, then use --model photowct), or train one: studio train decoder --level ${level} --images DIR`);
  }
  const { tensors, metadata } = decodeSafetensors(buf, path);
  if (metadata.architecture !== 'photowct-decoder' || Number(metadata.level) !== level) {
    throw new StudioError('BAD_MODEL', `${path} is not a level-${level} PhotoWCT decoder`);
  }
  if (metadata.encoder_sha256 !== encoderSha256) {
    throw new StudioError('BAD_MODEL', `${path} was trained for another encoder (sha256 ${metadata.encoder_sha256?.slice(0, 12)}…, this one is ${encoderSha256.slice(0, 12)}…)`,
      'use the decoders that came with this model, or train new ones for it');
  }
  const widths = JSON.parse(metadata.widths ?? '[]') as number[];
  const weights: DecoderWeights = new Map();
  for (const d of decoderConvs(level, widths)) {
    const k = tensors.get(`${d.name}.kernel`);
    const b = tensors.get(`${d.name}.bias`);
    if (!k || !b || k.data.length !== 9 * d.inChannels * d.outChannels || b.data.length !== d.outChannels) {
      throw new StudioError('BAD_MODEL', `${path}: layer ${d.name} is missing or has the wrong shape`);
    }
    weights.set(d.name, { kernel: k.data, bias: b.data });
  }
  return { weights, meta: { level, encoderSha256, widths, steps: Number(metadata.steps), loss: Number(metadata.loss) } };
}
