/**
 * How well a look transfer did, in two numbers (the `match` report, its tests and its benchmark):
 *
 *  - look distance: the sliced Wasserstein-2 distance between the CIELAB colours of two images —
 *    project both colour sets on fixed directions, and on each take the W2 distance of the 1-D
 *    distributions (the RMS difference of their sorted values); the result is the root of the mean
 *    square over directions, in ΔE-like L*a*b* units. The directions are spread evenly over the
 *    half sphere (a Fibonacci lattice; u and −u give the same distance): 64 random directions moved
 *    the result by ~7% from one draw to the next, 64 even ones by < 0.5% (a quadrature of the
 *    integral over the sphere). The seed draws the pixels (the same draws for both images, so an
 *    image is at 0 from itself); with the defaults the distance is stable to 1% across seeds
 *    (measured 0.1–0.9% from a 32768-pixel, 2048-direction value; tested).
 *  - structure kept: the mean over 7×7 windows of SSIM's structure term (Wang et al. 2004),
 *      s = (σxy + C3) / (σx σy + C3),   C3 = (0.03 · 100)² / 2,
 *    between the L* channels of the result and the photo (every window fully inside the image,
 *    population moments). It is blind to tone changes — the look is supposed to change the tones —
 *    and falls when edges, texture or grain are lost, smeared or invented.
 */
import type { RgbImage } from '../image.ts';
import { StudioError } from '../../errors.ts';
import { mulberry32 } from '../random.ts';
import { lightness, rgbPixelToLab } from './spaces.ts';

export const LOOK_DISTANCE_DEFAULTS = { directions: 64, samples: 16384, seed: 1 } as const;

/** n unit vectors spread evenly over the upper half sphere (Fibonacci lattice). */
export function evenDirections(n: number): Float64Array {
  const out = new Float64Array(3 * n), golden = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < n; i++) {
    const z = 1 - (i + 0.5) / n, r = Math.sqrt(1 - z * z);
    out[3 * i] = r * Math.cos(golden * i);
    out[3 * i + 1] = r * Math.sin(golden * i);
    out[3 * i + 2] = z;
  }
  return out;
}

export interface LookDistanceOptions {
  directions?: number;
  /** Pixels drawn (with replacement) from each image. */
  samples?: number;
  seed?: number;
}

/** `samples` L*a*b* colours drawn uniformly from an image (seeded). */
function sampleLab(img: RgbImage, samples: number, rng: () => number): Float64Array {
  const n = img.width * img.height;
  const out = new Float64Array(samples * 3);
  for (let k = 0; k < samples; k++) {
    const p = Math.min(n - 1, Math.floor(rng() * n)) * 3;
    rgbPixelToLab(img.data[p], img.data[p + 1], img.data[p + 2], out, k * 3);
  }
  return out;
}

function checkImage(img: RgbImage, what: string): void {
  if (!img || !(img.width >= 1) || !(img.height >= 1) || img.data?.length !== img.width * img.height * 3) {
    throw new StudioError('BAD_ARGUMENT', `${what}: not a valid RGB image`);
  }
}

/** Sliced Wasserstein-2 distance between the CIELAB colour distributions of two images. */
export function lookDistance(a: RgbImage, b: RgbImage, opts: LookDistanceOptions = {}): number {
  checkImage(a, 'look distance');
  checkImage(b, 'look distance');
  const o = { ...LOOK_DISTANCE_DEFAULTS, ...opts };
  // The same pixel draws for both images: the distance of an image to itself is 0.
  const sa = sampleLab(a, o.samples, mulberry32(o.seed)), sb = sampleLab(b, o.samples, mulberry32(o.seed));
  const dirs = evenDirections(o.directions);
  const pa = new Float64Array(o.samples), pb = new Float64Array(o.samples);
  let total = 0;
  for (let k = 0; k < o.directions; k++) {
    const x = dirs[3 * k], y = dirs[3 * k + 1], z = dirs[3 * k + 2];
    for (let i = 0; i < o.samples; i++) {
      pa[i] = x * sa[3 * i] + y * sa[3 * i + 1] + z * sa[3 * i + 2];
      pb[i] = x * sb[3 * i] + y * sb[3 * i + 1] + z * sb[3 * i + 2];
    }
    pa.sort();
    pb.sort();
    let s = 0;
    for (let i = 0; i < o.samples; i++) s += (pa[i] - pb[i]) ** 2;
    total += s / o.samples;
  }
  return Math.sqrt(total / o.directions);
}

/** SSIM's C3 on the L* scale (0–100): (K2·L)²/2 with K2 = 0.03. */
export const STRUCTURE_C3 = (0.03 * 100) ** 2 / 2;

/**
 * Mean structure term over every 7×7 window (`window`) of the L* channels of `result` and `photo`
 * (same size). 1 for an image whose every window is an increasing affine function of the photo's.
 */
export function structureKept(result: RgbImage, photo: RgbImage, window = 7): number {
  checkImage(result, 'structure');
  checkImage(photo, 'structure');
  const { width: w, height: h } = photo;
  if (result.width !== w || result.height !== h) {
    throw new StudioError('BAD_ARGUMENT', `structure: the result is ${result.width}×${result.height} but the photo ${w}×${h}`);
  }
  if (w < window || h < window) throw new StudioError('BAD_ARGUMENT', `structure: the images (${w}×${h}) are smaller than one ${window}×${window} window`);
  const x = lightness(result.data), y = lightness(photo.data);
  // Running column sums over `window` rows of x, y, x², y², xy; then a horizontal window per row.
  const cols = [new Float64Array(w), new Float64Array(w), new Float64Array(w), new Float64Array(w), new Float64Array(w)];
  const add = (row: number, sign: number) => {
    const o = row * w;
    for (let i = 0; i < w; i++) {
      const a = x[o + i], b = y[o + i];
      cols[0][i] += sign * a; cols[1][i] += sign * b; cols[2][i] += sign * a * a; cols[3][i] += sign * b * b; cols[4][i] += sign * a * b;
    }
  };
  const n = window * window;
  let total = 0, count = 0;
  for (let r = 0; r < h; r++) {
    add(r, 1);
    if (r >= window) add(r - window, -1);
    if (r < window - 1) continue;
    const s = [0, 0, 0, 0, 0];
    for (let i = 0; i < w; i++) {
      for (let k = 0; k < 5; k++) s[k] += cols[k][i];
      if (i >= window) for (let k = 0; k < 5; k++) s[k] -= cols[k][i - window];
      if (i < window - 1) continue;
      const mx = s[0] / n, my = s[1] / n;
      const vx = Math.max(0, s[2] / n - mx * mx), vy = Math.max(0, s[3] / n - my * my);
      const cxy = s[4] / n - mx * my;
      total += (cxy + STRUCTURE_C3) / (Math.sqrt(vx * vy) + STRUCTURE_C3);
      count++;
    }
  }
  return total / count;
}

/** Separable Gaussian blur of a single-channel image (σ in px, kernel ±3σ, clamped borders). */
function gaussianBlur(src: Float32Array, w: number, h: number, sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float32Array(w * h), out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const o = y * w;
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += k[i + r] * src[o + Math.min(w - 1, Math.max(0, x + i))];
      tmp[o + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += k[i + r] * tmp[Math.min(h - 1, Math.max(0, y + i)) * w + x];
      out[y * w + x] = s;
    }
  }
  return out;
}

/**
 * Fine detail shared by two images of one size: the correlation between the difference-of-Gaussians
 * bands (σ ½ and 1 px: periods of about 3–6 px, the finest detail a full-resolution photo has and
 * finer than any working size 3× or more smaller can hold) of their L* channels. 1: the same detail
 * (up to a positive scale); near 0 for an image with none of the other's (a plain upscale).
 */
export function detailCorrelation(a: RgbImage, b: RgbImage, sigma1 = 0.5, sigma2 = 1): number {
  checkImage(a, 'detail');
  checkImage(b, 'detail');
  if (a.width !== b.width || a.height !== b.height) throw new StudioError('BAD_ARGUMENT', `detail: ${a.width}×${a.height} and ${b.width}×${b.height} differ`);
  const { width: w, height: h } = a;
  const band = (img: RgbImage) => {
    const L = lightness(img.data);
    const g1 = gaussianBlur(L, w, h, sigma1), g2 = gaussianBlur(L, w, h, sigma2);
    for (let i = 0; i < g1.length; i++) g1[i] -= g2[i];
    return g1;
  };
  const x = band(a), y = band(b);
  let sx = 0, sy = 0;
  for (let i = 0; i < x.length; i++) { sx += x[i]; sy += y[i]; }
  const mx = sx / x.length, my = sy / y.length;
  let cxy = 0, cxx = 0, cyy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    cxy += dx * dy; cxx += dx * dx; cyy += dy * dy;
  }
  return cxx > 0 && cyy > 0 ? cxy / Math.sqrt(cxx * cyy) : 0;
}

/** PSNR (dB) between two images of one size on the [0, 1] scale. */
export function psnr(a: RgbImage, b: RgbImage): number {
  checkImage(a, 'PSNR');
  checkImage(b, 'PSNR');
  if (a.width !== b.width || a.height !== b.height) throw new StudioError('BAD_ARGUMENT', `PSNR: ${a.width}×${a.height} and ${b.width}×${b.height} differ`);
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += (a.data[i] - b.data[i]) ** 2;
  return s > 0 ? 10 * Math.log10(a.data.length / s) : Infinity;
}
