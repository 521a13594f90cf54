/**
 * FastPhotoStyle's converter.py, as a reader: its Google Drive models.zip holds the Torch7 networks
 * `vgg_normalised_conv{L}_1_mask.t7` (encoders) and `feature_invertor_conv{L}_1_mask.t7` (decoders),
 * L = 1…4, which converter.py copies layer by layer, by module index, into PhotoWCT's eL / dL and saves
 * as photo_wct.pth. Here the same copy builds the same state dict in memory (float32, OIHW, as
 * `weight.float()` gives), and import-photowct.ts takes it from there exactly as from the .pth.
 */
import { StudioError } from '../../errors.ts';
import type { StateDict } from './import-photowct.ts';
import { readTorch7, t7Convolution, t7Modules } from './torch7.ts';

/** converter.py's module indices (0-based, torch.legacy's Sequential.get) of each encoder layer. */
export const T7_ENCODER_INDEX: Readonly<Record<string, number>> = {
  conv0: 0, conv1_1: 2, conv1_2: 5, conv2_1: 9, conv2_2: 12, conv3_1: 16, conv3_2: 19, conv3_3: 22, conv3_4: 25, conv4_1: 29,
};

/** converter.py's module indices of each decoder's layers, per level. */
export const T7_DECODER_INDEX: Readonly<Record<1 | 2 | 3 | 4, Readonly<Record<string, number>>>> = {
  1: { conv1_1: 1 },
  2: { conv2_1: 1, conv1_2: 5, conv1_1: 8 },
  3: { conv3_1: 1, conv2_2: 5, conv2_1: 8, conv1_2: 12, conv1_1: 15 },
  4: { conv4_1: 1, conv3_4: 5, conv3_3: 8, conv3_2: 11, conv3_1: 14, conv2_2: 18, conv2_1: 21, conv1_2: 25, conv1_1: 28 },
};

const ENCODER_ORDER = Object.keys(T7_ENCODER_INDEX);

export const t7EncoderFile = (level: number) => `vgg_normalised_conv${level}_1_mask.t7`;
export const t7DecoderFile = (level: number) => `feature_invertor_conv${level}_1_mask.t7`;

/** The eight file names converter.py reads. */
export const T7_FILES: readonly string[] = [1, 2, 3, 4].flatMap((l) => [t7EncoderFile(l), t7DecoderFile(l)]);

/**
 * converter.py's weight_assign for all eight networks. `read(file)` gives a file's bytes; `origin` names
 * the archive in errors. Every listed module must be a convolution, and a network must have no other
 * convolutions (else it is not the network converter.py expects).
 */
export function photoWctStateDictFromT7(read: (file: string) => Uint8Array, origin: string): StateDict {
  const sd: StateDict = new Map();
  const take = (file: string, prefix: string, indices: Readonly<Record<string, number>>) => {
    const where = `${origin}: ${file}`;
    const modules = t7Modules(readTorch7(read(file), where), where);
    const convs = modules.filter((m) => /SpatialConvolution/.test(m.className)).length;
    const want = Object.keys(indices).length;
    if (convs !== want) {
      throw new StudioError('BAD_MODEL', `${where} has ${convs} convolutions; FastPhotoStyle's converter expects ${want} (${Object.keys(indices).join(', ')})`);
    }
    for (const [name, index] of Object.entries(indices)) {
      const mod = modules[index];
      if (!mod) throw new StudioError('BAD_MODEL', `${where} has ${modules.length} modules; ${name} should be module ${index}`);
      const { shape, weight, bias } = t7Convolution(mod, `${where} module ${index} (${name})`);
      sd.set(`${prefix}.${name}.weight`, { shape, data: weight, dtype: 'F32' });
      sd.set(`${prefix}.${name}.bias`, { shape: [shape[0]], data: bias, dtype: 'F32' });
    }
  };
  for (const level of [1, 2, 3, 4] as const) {
    const upto = ENCODER_ORDER.indexOf(`conv${level}_1`);
    const enc = Object.fromEntries(ENCODER_ORDER.slice(0, upto + 1).map((n) => [n, T7_ENCODER_INDEX[n]]));
    take(t7EncoderFile(level), `e${level}`, enc);
    take(t7DecoderFile(level), `d${level}`, T7_DECODER_INDEX[level]);
  }
  return sd;
}
