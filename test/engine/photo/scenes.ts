// Synthetic content / stylised pairs for the smoothing solver's tests.
import type { RgbImage } from '../../../src-main/engine/image.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

/**
 * A small photo-like image: a gradient and two discs (smooth regions with edges: the solver's hard
 * modes need colour structure), optionally dark stripes along the bottom, and a little noise.
 */
export function scene(w: number, h: number, seed: number, opts: { stripes?: boolean; noise?: number } = {}): RgbImage {
  const { stripes = false, noise = 0.03 } = opts;
  const rng = mulberry32(seed);
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let c = [0.2 + 0.5 * (x / w), 0.3 + 0.4 * (y / h), 0.6 - 0.3 * (x / w)];
      if ((x - 0.3 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.2 * h) ** 2) c = [0.9, 0.3, 0.2];
      if ((x - 0.7 * w) ** 2 + (y - 0.65 * h) ** 2 < (0.15 * h) ** 2) c = [0.1, 0.5 + 0.3 * (y / h), 0.2];
      if (stripes && y > 0.8 * h && x % 4 < 2) c = [c[0] * 0.5, c[1] * 0.5, c[2] * 0.5];
      for (let k = 0; k < 3; k++) data[3 * (y * w + x) + k] = Math.min(1, Math.max(0, c[k] + noise * (rng() - 0.5)));
    }
  }
  return { width: w, height: h, data };
}

export function noisy(img: RgbImage, seed: number): RgbImage {
  const rng = mulberry32(seed);
  return { ...img, data: Float32Array.from(img.data, (v, k) => Math.min(1, Math.max(0, (k % 3 === 1 ? 0.7 * v + 0.2 : 1 - v) + 0.2 * (rng() - 0.5)))) };
}

export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}
