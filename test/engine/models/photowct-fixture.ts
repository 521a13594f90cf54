/**
 * FastPhotoStyle's photo_wct.pth in its real layout (PhotoWCT.state_dict(): e1, d1, … e4, d4 with their
 * exact key names, OIHW) at tiny widths, for the importer's and the fetcher's tests.
 */
import { fillGaussian, mulberry32 } from '../../../src-main/engine/random.ts';
import type { TorchTensor } from '../../../src-main/engine/models/tiny.ts';

export const WIDTHS = [4, 6, 8, 10, 10];

/** FastPhotoStyle's layer order (models.py), written out independently of our layer table. */
export const FPS_ENCODER = ['conv1_1', 'conv1_2', 'pool', 'conv2_1', 'conv2_2', 'pool', 'conv3_1', 'conv3_2', 'conv3_3', 'conv3_4', 'pool', 'conv4_1'];
export const FPS_DECODER = ['conv4_1', 'unpool3', 'conv3_4', 'conv3_3', 'conv3_2', 'conv3_1', 'unpool2', 'conv2_2', 'conv2_1', 'unpool1', 'conv1_2', 'conv1_1'];
export const CHANNELS: Record<string, [number, number]> = (() => {
  const [a, b, c, d] = WIDTHS;
  return {
    conv1_1: [3, a], conv1_2: [a, a], conv2_1: [a, b], conv2_2: [b, b],
    conv3_1: [b, c], conv3_2: [c, c], conv3_3: [c, c], conv3_4: [c, c], conv4_1: [c, d],
  };
})();
export const encLayers = (level: number) => FPS_ENCODER.slice(0, FPS_ENCODER.indexOf(`conv${level}_1`) + 1);
export const decLayers = (level: number) => FPS_DECODER.slice(FPS_DECODER.indexOf(`conv${level}_1`));

export type Named = Array<[string, TorchTensor]>;

/**
 * PhotoWCT.state_dict() at WIDTHS: random He kernels and nonzero biases, one VGG shared by e1…e4 (as
 * the published file), a conv0 that is a general affine colour map unless `conv0` is given.
 */
export function photoWctStateDict(seed = 1, conv0?: { a: number[]; c: number[] }): Named {
  const rng = mulberry32(seed);
  const gauss = (n: number, std: number) => fillGaussian(new Float32Array(n), rng, std);
  const conv = (i: number, o: number, k = 3): [TorchTensor, TorchTensor] =>
    [{ shape: [o, i, k, k], data: gauss(o * i * k * k, Math.sqrt(2 / (k * k * i))) }, { shape: [o], data: gauss(o, 0.1) }];
  // Caffe-like colour map (×255, RGB→BGR, −mean) plus a general mixing part, so the fold is really tested.
  const a = conv0?.a ?? [0, 0, 255, 0, 255, 0, 255, 0, 0].map((v) => v + 60 * (rng() - 0.5));
  const c = conv0?.c ?? [-103.939, -116.779, -123.68].map((v) => v + 20 * (rng() - 0.5));
  const vgg = new Map<string, [TorchTensor, TorchTensor]>([['conv0', [{ shape: [3, 3, 1, 1], data: Float32Array.from(a) }, { shape: [3], data: Float32Array.from(c) }]]]);
  for (const [name, [i, o]] of Object.entries(CHANNELS)) vgg.set(name, conv(i, o));
  const out: Named = [];
  for (const level of [1, 2, 3, 4]) {
    for (const name of ['conv0', ...encLayers(level).filter((l) => l !== 'pool')]) {
      const [w, b] = vgg.get(name)!;
      // Copies, as four modules loaded from four files would hold.
      out.push([`e${level}.${name}.weight`, { shape: w.shape, data: Float32Array.from(w.data) }], [`e${level}.${name}.bias`, { shape: b.shape, data: Float32Array.from(b.data) }]);
    }
    for (const name of decLayers(level).filter((l) => l.startsWith('conv'))) {
      const [i, o] = CHANNELS[name];
      const [w, b] = conv(o, i); // the mirror: out → in channels
      out.push([`d${level}.${name}.weight`, w], [`d${level}.${name}.bias`, b]);
    }
  }
  return out;
}
