/**
 * Deterministic weights shared with the PyTorch oracles (scripts/oracles/detweights.py: the same
 * definition, line for line), and readers for their committed fixtures (test/fixtures/parity/).
 *
 *   mix32(h)       murmur3's 32-bit finaliser
 *   key(seed, t)   mix32(mix32(seed) ^ t)                         t: the tensor's index
 *   h(seed, t, i)  mix32((key + i·0x9e3779b9) mod 2³²)           i: the element's index (PyTorch layout, OIHW)
 *   u              (h >>> 8) / 2²⁴ ∈ [0, 1), exact in float64
 *   kernel         fround((2u − 1)·a), a = sqrt(6/fan_in)·gain (float64)
 *   bias           fround((2u − 1)·0.01 + offset)
 *
 * Integer steps use Math.imul and >>> 0; every float step is one correctly rounded IEEE operation, so the
 * bits equal numpy's. `checksum` (sum of the float32 bit patterns mod 2³²) is what the fixtures record.
 * Test-side only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { biasKey, CAFFE_PREPROCESSING, kernelKey, type TensorMap, type Vgg19Weights } from '../../../src-main/engine/models/format.ts';
import { oihwToHwio } from '../../../src-main/engine/models/import-torch.ts';
import type { TorchTensor } from '../../../src-main/engine/models/tiny.ts';
import { vgg19Convs } from '../../../src-main/engine/models/vgg19.ts';

export const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'parity');

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function key(seed: number, t: number): number {
  return mix32((mix32(seed >>> 0) ^ t) >>> 0);
}

/** u ∈ [0, 1) of element i of tensor t. */
function uniformAt(k: number, i: number): number {
  return (mix32((k + Math.imul(i, 0x9e3779b9)) >>> 0) >>> 8) / 16777216;
}

/** n kernel elements (PyTorch layout order) of tensor t: He-uniform × gain. */
export function kernel(seed: number, t: number, n: number, fanIn: number, gain = 1): Float32Array {
  const a = Math.sqrt(6 / fanIn) * gain;
  const k = key(seed, t);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * uniformAt(k, i) - 1) * a;
  return out;
}

export function bias(seed: number, t: number, n: number, offset = 0): Float32Array {
  const k = key(seed, t);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * uniformAt(k, i) - 1) * 0.01 + offset;
  return out;
}

/** float32 noise in [−amplitude, amplitude) (the oracles' test inputs). */
export function deterministicNoise(seed: number, t: number, n: number, amplitude: number): Float32Array {
  const k = key(seed, t);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * uniformAt(k, i) - 1) * amplitude;
  return out;
}

/** Sum of the float32 bit patterns mod 2³² (order-independent, exact). */
export function checksum(a: Float32Array): number {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let s = 0;
  for (let i = 0; i < bits.length; i++) s = (s + bits[i]) >>> 0;
  return s;
}

export interface OihwConv {
  name: string;
  /** OIHW, as PyTorch holds it. */
  weight: TorchTensor;
  bias: TorchTensor;
}

/** VGG19's convs (conv k: kernel tensor 2k, bias 2k + 1), in PyTorch's layout, up to and including `upto`. */
export function vgg19Torch(seed: number, widths: readonly number[], upto?: string): OihwConv[] {
  const out: OihwConv[] = [];
  for (const [k, c] of vgg19Convs(widths).entries()) {
    const { inChannels: i, outChannels: o } = c;
    out.push({
      name: c.name,
      weight: { shape: [o, i, 3, 3], data: kernel(seed, 2 * k, o * i * 9, 9 * i) },
      bias: { shape: [o], data: bias(seed, 2 * k + 1, o) },
    });
    if (c.name === upto) break;
  }
  return out;
}

/** The same weights as the studio's in-memory VGG19 (HWIO kernels), Caffe preprocessing. */
export function vgg19Weights(seed: number, widths: readonly number[]): { weights: Vgg19Weights; torch: OihwConv[] } {
  const torch = vgg19Torch(seed, widths);
  const tensors: TensorMap = new Map();
  for (const c of torch) {
    const [o, i] = c.weight.shape;
    tensors.set(kernelKey(c.name), { dtype: 'F32', shape: [3, 3, i, o], data: oihwToHwio(c.weight.data, o, i, 3, 3) });
    tensors.set(biasKey(c.name), { dtype: 'F32', shape: [o], data: c.bias.data });
  }
  const p = CAFFE_PREPROCESSING;
  return {
    weights: {
      architecture: 'vgg19', widths: [...widths], preprocessing: { ...p, mean: [...p.mean], std: [...p.std] }, tensors,
      source: `parity weights seed ${seed} [${widths.join(',')}]`,
    },
    torch,
  };
}

// PhotoWCT (FastPhotoStyle's photo_wct.pth): e1…e4 share conv0 and VGG19's convs to conv4_1; the decoder
// of level L mirrors its encoder (layer convB_I maps B_I's out → in channels); its last layer (conv1_1)
// outputs RGB in [0, 1], with a gain and an offset that keep the untrained decoders' output in range.
const PHOTO_ENCODER = ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3', 'conv3_4', 'conv4_1'];
const DECODER_OUT_GAIN = 1 / 255;
const DECODER_OUT_OFFSET = 0.5;
const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68];

const encoderConvs = (level: number) => PHOTO_ENCODER.slice(0, PHOTO_ENCODER.indexOf(`conv${level}_1`) + 1);

/** PhotoWCT.state_dict() of FastPhotoStyle (e1, d1, …, e4, d4 in its key names and order), OIHW. */
export function photoWctStateDict(seed: number, widths: readonly number[]): Array<[string, TorchTensor]> {
  const vgg = new Map(vgg19Torch(seed, widths, 'conv4_1').map((c) => [c.name, c] as const));
  const convIndex = new Map(vgg19Convs(widths).map((c, k) => [c.name, { k, i: c.inChannels, o: c.outChannels }] as const));
  const conv0w = new Float32Array(9);
  for (let o = 0; o < 3; o++) conv0w[o * 3 + (2 - o)] = 255;
  const conv0: OihwConv = { name: 'conv0', weight: { shape: [3, 3, 1, 1], data: conv0w }, bias: { shape: [3], data: Float32Array.from(CAFFE_MEAN_BGR, (m) => -m) } };
  const out: Array<[string, TorchTensor]> = [];
  for (const level of [1, 2, 3, 4]) {
    for (const c of [conv0, ...encoderConvs(level).map((n) => vgg.get(n)!)]) {
      out.push([`e${level}.${c.name}.weight`, c.weight], [`e${level}.${c.name}.bias`, c.bias]);
    }
    for (const name of [...encoderConvs(level)].reverse()) {
      const { k, i, o } = convIndex.get(name)!;
      const last = name === 'conv1_1';
      // Mirror: o → i channels.
      out.push([`d${level}.${name}.weight`, { shape: [i, o, 3, 3], data: kernel(seed, 1000 * level + 2 * k, i * o * 9, 9 * o, last ? DECODER_OUT_GAIN : 1) }]);
      out.push([`d${level}.${name}.bias`, { shape: [i], data: bias(seed, 1000 * level + 2 * k + 1, i, last ? DECODER_OUT_OFFSET : 0) }]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

export function readJson<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;
}

/** A float32 little-endian .bin. */
export function readBin(name: string): Float32Array {
  const b = readFileSync(join(FIXTURES, name));
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(4 * i);
  return out;
}

/** An 8-bit RGB PNG: HWC samples. */
export async function readPng(name: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { data, info } = await sharp(join(FIXTURES, name)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${name}: ${info.channels} channels`);
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Float [0, 1] → 8 bits as the studio's writer quantises (io/write.ts: clamp, round half to even). */
export function toRgb8(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length);
  const clamped = new Uint8ClampedArray(out.buffer);
  for (let i = 0; i < data.length; i++) clamped[i] = data[i] * 255;
  return out;
}

/** max, mean |a − b| and the fraction off by more than one level. */
export function levelStats(a: Uint8Array, b: Uint8Array): { max: number; mean: number; fracOver1: number } {
  if (a.length !== b.length) throw new Error(`sizes differ: ${a.length} and ${b.length}`);
  let max = 0, sum = 0, over = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
    if (d > 1) over++;
  }
  return { max, mean: sum / a.length, fracOver1: over / a.length };
}
