/**
 * Import NVIDIA FastPhotoStyle's published `photo_wct.pth`: the state dict of its PhotoWCT module, whose
 * children are four VGG encoders `e1`…`e4` (VGGEncoder(level)) and four decoders `d1`…`d4`
 * (VGGDecoder(level)), in either torch.save serialization (readTorchStateDict reads both).
 *
 * Keys (PyTorch Conv2d, OIHW weights):
 *   eL.conv0.weight [3,3,1,1], eL.conv0.bias [3]   a 1×1 colour map: RGB in 0–1 → BGR 0–255 minus the mean
 *   eL.convB_I.weight/bias                         VGG19 (the "normalised" VGG) up to convL_1
 *   dL.convB_I.weight/bias                         the mirror: convB_I maps B_I's out → in channels, in
 *                                                  reverse order, unpooling after conv4_1, conv3_1, conv2_1;
 *                                                  no ReLU after d*.conv1_1, whose output is RGB in 0–1
 * All 3×3 convs run on reflection-padded input. That is exactly the layout of PhotoAutoencoder
 * (encoderLayers / decoderConvs), so dL.convB_I becomes our decB_I.
 *
 * The studio keeps one encoder for all levels. FastPhotoStyle's four were converted from four truncations
 * of one VGG (converter.py: vgg_normalised_convL_1_mask.t7), and it takes every level's style features from
 * e4 alone, so e1…e3 must equal e4 on the layers they have; a file where they differ is refused, since no
 * single encoder would reproduce it.
 *
 * conv0 is folded into conv1_1. Our pipeline feeds `preprocess(RGB 0–255)`. Caffe preprocessing is stored:
 * conv0 is meant to be that same map, and then the fold leaves conv1_1 as it was (zero-padded features, and
 * the WCT's feature scale, are those of the network as trained). With P that affine per-pixel map, x01 = x255/255:
 *   conv1_1(conv0(x01)) = conv1_1(G·x' + g)   where x' = P(x255), G·x' + g = conv0(P⁻¹(x')/255) (see foldConv0).
 * A per-pixel affine map commutes with reflection padding (padding only copies pixels), so
 *   conv1_1'(pad(x')) with W'[h,w,k,o] = Σ_j W[o,j,h,w]·G[j,k], b'[o] = b[o] + Σ_{j,h,w} W[o,j,h,w]·g[j]
 * is exact. The last decoder layer is scaled by 255: our decoders output RGB on the 0–255 scale.
 */
import { basename, join } from 'node:path';
import { StudioError } from '../../errors.ts';
import { decoderConvs, encoderLayers, LEVELS, type DecoderWeights, type Level } from '../photo/autoencoder.ts';
import { saveDecoder } from './decoders.ts';
import { biasKey, CAFFE_PREPROCESSING, kernelKey, type Preprocessing, type StoredDtype, type TensorMap, type Vgg19Weights } from './format.ts';
import { oihwToHwio, readTorchStateDict, torchCheckpointHas } from './import-torch.ts';
import { MODEL_FILE, saveVgg19, type DownloadRecord, type Manifest } from './store.ts';
import { CC_BY_NC_SA_4 } from './catalog.ts';
import type { ConvSpec } from './vgg19.ts';

/** The deepest feature the file's encoders reach. */
export const PHOTOWCT_DEPTH = 'relu4_1';

/** Largest relative difference between eL's and e4's copy of a layer: copies of one network are identical, this allows float rounding only. */
const SHARED_TOLERANCE = 1e-5;

/** A state dict as PyTorch's: key → OIHW tensor. */
export type StateDict = Map<string, { shape: number[]; data: Float32Array; dtype: 'F32' | 'F16' }>;

/** A photo_wct.pth on disk, or a state dict built another way (the Torch7 networks, import-photowct-t7.ts). */
export type PhotoWctSource = string | { stateDict: StateDict; origin: string };

export interface PhotoWctImport {
  /** VGG19 up to relu4_1 (depth), conv0 folded into conv1_1, Caffe preprocessing. */
  encoder: Vgg19Weights;
  /** Decoders of levels 1–4 in PhotoAutoencoder's names and layout (HWIO, output on 0–255). */
  decoders: Map<Level, DecoderWeights>;
}

/** Whether a .pth is a PhotoWCT state dict (it has an encoder's conv0), read without its tensors. */
export async function isPhotoWctPth(path: string): Promise<boolean> {
  return torchCheckpointHas(path, 'e4.conv0.weight');
}

const encConvs = (level: Level, widths?: readonly number[]): ConvSpec[] =>
  encoderLayers(level, widths).flatMap((l) => (l.kind === 'conv' ? [l.conv] : []));

export async function importPhotoWct(source: PhotoWctSource): Promise<PhotoWctImport> {
  if (typeof source !== 'string') return photoWctFromStateDict(source.stateDict, source.origin);
  const path = source;
  const origin = basename(path);
  let sd: StateDict;
  try {
    sd = await readTorchStateDict(path, 'e4.conv0.weight');
  } catch (e) {
    if (e instanceof StudioError && e.code === 'BAD_MODEL') {
      throw new StudioError('BAD_MODEL', `${origin}: e4.conv0.weight is missing: not FastPhotoStyle's photo_wct.pth`,
        'expected the state dict of PhotoWCT (encoders e1…e4 with conv0, decoders d1…d4), as FastPhotoStyle publishes it', { cause: e });
    }
    throw e;
  }
  return photoWctFromStateDict(sd, origin);
}

/** PhotoWCT's state dict (FastPhotoStyle's keys) → one encoder and four decoders, every key and shape checked. */
export function photoWctFromStateDict(sd: StateDict, origin: string): PhotoWctImport {
  const get = (key: string, want: number[], what: string): Float32Array => {
    const t = sd.get(key);
    if (!t) throw new StudioError('BAD_MODEL', `${origin}: ${key} is missing (${what}); not a complete photo_wct.pth`);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new StudioError('BAD_MODEL', `${origin}: ${key} (${what}) has shape [${t.shape.join(',')}], expected [${want.join(',')}]`);
    }
    return t.data;
  };

  // Block widths from e4's first conv of each block; everything else is checked against them.
  const widthOf = (conv: string): number => {
    const t = sd.get(`e4.${conv}.weight`);
    if (!t || t.shape.length !== 4) throw new StudioError('BAD_MODEL', `${origin}: e4.${conv}.weight is ${t ? `of shape [${t.shape.join(',')}]` : 'missing'} (level-4 encoder)`);
    return t.shape[0];
  };
  const w4 = widthOf('conv4_1');
  const widths = [widthOf('conv1_1'), widthOf('conv2_1'), widthOf('conv3_1'), w4, w4]; // block 5 absent: its width is nominal

  // The shared encoder: e4, with every lower level's copy compared against it.
  const conv0 = { w: get('e4.conv0.weight', [3, 3, 1, 1], 'level-4 encoder'), b: get('e4.conv0.bias', [3], 'level-4 encoder') };
  const enc = new Map<string, { w: Float32Array; b: Float32Array; spec: ConvSpec }>();
  for (const c of encConvs(4, widths)) {
    const what = `level-4 encoder ${c.name}`;
    enc.set(c.name, { spec: c, w: get(`e4.${c.name}.weight`, [c.outChannels, c.inChannels, 3, 3], what), b: get(`e4.${c.name}.bias`, [c.outChannels], what) });
  }
  for (const level of [1, 2, 3] as const) {
    const what = `level-${level} encoder`;
    const pairs: Array<[string, Float32Array, Float32Array]> = [
      [`e${level}.conv0.weight`, get(`e${level}.conv0.weight`, [3, 3, 1, 1], what), conv0.w],
      [`e${level}.conv0.bias`, get(`e${level}.conv0.bias`, [3], what), conv0.b],
    ];
    for (const c of encConvs(level, widths)) {
      const e = enc.get(c.name)!;
      pairs.push([`e${level}.${c.name}.weight`, get(`e${level}.${c.name}.weight`, [c.outChannels, c.inChannels, 3, 3], `${what} ${c.name}`), e.w]);
      pairs.push([`e${level}.${c.name}.bias`, get(`e${level}.${c.name}.bias`, [c.outChannels], `${what} ${c.name}`), e.b]);
    }
    for (const [key, a, b] of pairs) {
      let diff = 0;
      let mag = 0;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        mag = Math.max(mag, Math.abs(b[i]));
      }
      if (diff > SHARED_TOLERANCE * Math.max(mag, 1e-30)) {
        throw new StudioError('BAD_MODEL', `${origin}: ${key} differs from e4's (largest difference ${diff.toExponential(3)}, relative ${(diff / Math.max(mag, 1e-30)).toExponential(3)})`,
          'the studio uses one encoder for all four levels, as FastPhotoStyle\'s published weights do; this file has different ones');
      }
    }
  }

  const preprocessing: Preprocessing = { ...CAFFE_PREPROCESSING, mean: [...CAFFE_PREPROCESSING.mean], std: [...CAFFE_PREPROCESSING.std] };
  const tensors: TensorMap = new Map();
  for (const [name, { w, b, spec }] of enc) {
    const { outChannels: o, inChannels: i } = spec;
    if (name === 'conv1_1') {
      const folded = foldConv0(w, b, o, conv0.w, conv0.b, preprocessing);
      tensors.set(kernelKey(name), { dtype: 'F32', shape: [3, 3, 3, o], data: folded.kernel });
      tensors.set(biasKey(name), { dtype: 'F32', shape: [o], data: folded.bias });
    } else {
      tensors.set(kernelKey(name), { dtype: 'F32', shape: [3, 3, i, o], data: oihwToHwio(w, o, i, 3, 3) });
      tensors.set(biasKey(name), { dtype: 'F32', shape: [o], data: Float32Array.from(b) });
    }
  }

  const decoders = new Map<Level, DecoderWeights>();
  for (const level of LEVELS) {
    const dec: DecoderWeights = new Map();
    for (const d of decoderConvs(level, widths)) {
      const key = `d${level}.conv${d.name.slice(3)}`; // decB_I ← dL.convB_I
      const what = `level-${level} decoder`;
      const w = get(`${key}.weight`, [d.outChannels, d.inChannels, 3, 3], what);
      const kernel = oihwToHwio(w, d.outChannels, d.inChannels, 3, 3);
      const bias = Float32Array.from(get(`${key}.bias`, [d.outChannels], what));
      if (!d.relu) {
        // The image layer: FastPhotoStyle's output is RGB in 0–1, ours on 0–255; a linear layer scales exactly.
        for (let k = 0; k < kernel.length; k++) kernel[k] *= 255;
        for (let k = 0; k < bias.length; k++) bias[k] *= 255;
      }
      dec.set(d.name, { kernel, bias });
    }
    decoders.set(level, dec);
  }

  return {
    // NVIDIA publishes these weights under CC BY-NC-SA 4.0, whichever way the file arrived.
    encoder: { architecture: 'vgg19', widths, preprocessing, tensors, source: `FastPhotoStyle photo_wct (${origin})`, depth: PHOTOWCT_DEPTH, licence: { ...CC_BY_NC_SA_4 } },
    decoders,
  };
}

/**
 * conv1_1 (OIHW weight W [o,3,3,3], bias b) after conv0 (1×1: A [3,3,1,1], c) on x01 = x255/255, as one 3×3
 * conv (HWIO) on our preprocessed input x' = P(x255) (see the header). Sums in float64.
 */
export function foldConv0(
  w: Float32Array, b: Float32Array, outChannels: number, a: Float32Array, c: Float32Array, p: Preprocessing,
): { kernel: Float32Array; bias: Float32Array } {
  // x'[k] = (x255[ord(k)]·scale/255 − mean[k]) / std[k], so x01[ord(k)] = (x'[k]·std[k] + mean[k]) / scale.
  const ord = (k: number) => (p.colorOrder === 'BGR' ? 2 - k : k);
  const G = [0, 1, 2].map((j) => [0, 1, 2].map((k) => (a[j * 3 + ord(k)] * p.std[k]) / p.scale));
  const g = [0, 1, 2].map((j) => c[j] + [0, 1, 2].reduce((s, k) => s + (a[j * 3 + ord(k)] * p.mean[k]) / p.scale, 0));
  const kernel = new Float32Array(9 * 3 * outChannels);
  const bias = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let bo = b[o];
    for (let h = 0; h < 3; h++) {
      for (let x = 0; x < 3; x++) {
        const wj = (j: number) => w[((o * 3 + j) * 3 + h) * 3 + x];
        for (let k = 0; k < 3; k++) kernel[((h * 3 + x) * 3 + k) * outChannels + o] = wj(0) * G[0][k] + wj(1) * G[1][k] + wj(2) * G[2][k];
        bo += wj(0) * g[0] + wj(1) * g[1] + wj(2) * g[2];
      }
    }
    bias[o] = bo;
  }
  return { kernel, bias };
}

/**
 * Import photo_wct.pth (or the same state dict from the Torch7 networks) into a model folder: the encoder as model.safetensors (+ manifest, depth relu4_1)
 * and the four decoders as decoders/level{1..4}.safetensors, recording the encoder's sha256.
 */
export async function importPhotoWctInto(source: PhotoWctSource, dir: string, opts: { dtype?: StoredDtype; download?: DownloadRecord } = {}): Promise<{ manifest: Manifest; decoders: string[] }> {
  const { encoder, decoders } = await importPhotoWct(source);
  const manifest = await saveVgg19(dir, encoder, { dtype: opts.dtype, download: opts.download });
  const hash = manifest.files.find((f) => f.path === MODEL_FILE)?.sha256;
  if (!hash) throw new Error(`saveVgg19 wrote no ${MODEL_FILE}`);
  const paths: string[] = [];
  for (const [level, weights] of decoders) {
    paths.push(await saveDecoder(join(dir, 'decoders'), weights, { level, encoderSha256: hash, widths: encoder.widths }, opts.dtype));
  }
  return { manifest, decoders: paths };
}
