/**
 * Pixel affinities of a content image for PhotoWCT's smoothing step (REFERENCE §3): the matting
 * affinity of Levin et al.'s closed-form matting (what FastPhotoStyle's photo_smooth uses) and a
 * Gaussian colour affinity.
 *
 * Storage. Every non-zero w_ij joins pixels at most 2 apart in x and in y (two pixels share a 3×3
 * window only then), so W is a 5×5 stencil per pixel and needs no indices. W is symmetric, so only
 * the centre and the 12 "forward" offsets are stored (13 slots, slot = 5·dy + dx):
 *
 *   slot:   0      1      2      3       4       5      6      7      8       9       10     11     12
 *   (dy,dx) (0,0)  (0,1)  (0,2)  (1,−2)  (1,−1)  (1,0)  (1,1)  (1,2)  (2,−2)  (2,−1)  (2,0)  (2,1)  (2,2)
 *
 * `weights[s·N + i]` is w(i, i + off_s) with off_s = dy·width + dx (slot-major: one stream per
 * offset); the backward offsets are read at the other pixel, w(i, i − off_s) = weights[s·N + i − off_s].
 * Pairs that would cross the image's left or right edge are stored as exact zeros.
 *
 * Borders. The matting affinity uses only windows lying wholly inside the image it is given, as
 * closed-form matting does, so a pixel on the edge is in fewer windows (a corner in one). The
 * smoother (smooth.ts) reproduces FastPhotoStyle by default: it pads the content and the stylised
 * image by 2 pixels (edge replication, `padReplicate` below), builds the affinity and solves on the
 * padded image, and crops the padding off the result, so that every real pixel is the centre of a
 * window. (FastPhotoStyle also first crops 2 pixels off the stylised image and resizes the content
 * to match, returning an image 4 pixels smaller; we keep the input size instead.)
 */
import type { RgbImage } from '../image.ts';

/** Number of stored stencil entries per pixel. */
export const SLOTS = 13;
/** Row offset of each slot. */
export const SLOT_DY: readonly number[] = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2];
/** Column offset of each slot. */
export const SLOT_DX: readonly number[] = [0, 1, 2, -2, -1, 0, 1, 2, -2, -1, 0, 1, 2];

export interface Affinity {
  width: number;
  height: number;
  /** SLOTS·N, slot-major: weights[s·N + i] = w(i, i + SLOT_DY[s]·width + SLOT_DX[s]). */
  weights: Float64Array;
  /** d_i = Σ_j w_ij. For the matting affinity this is the number of windows holding pixel i. */
  degree: Float64Array;
}

/** Levin et al.'s regulariser, as in FastPhotoStyle. */
export const MATTING_EPS = 1e-7;
/** Default σ of the Gaussian affinity, on the [0, 1] colour scale. */
export const GAUSSIAN_SIGMA = 0.1;

/**
 * w(x, y) → (x + dx, y + dy) for any of the 25 offsets (|dx|, |dy| ≤ 2); 0 for pairs outside the
 * stencil or the image.
 */
export function affinityWeight(a: Affinity, x: number, y: number, dx: number, dy: number): number {
  const { width, height, weights } = a;
  const n = width * height;
  const x2 = x + dx;
  const y2 = y + dy;
  if (Math.abs(dx) > 2 || Math.abs(dy) > 2) return 0;
  if (x < 0 || y < 0 || x >= width || y >= height || x2 < 0 || y2 < 0 || x2 >= width || y2 >= height) return 0;
  // Forward offsets are stored at the first pixel, backward ones at the second.
  const forward = dy > 0 || (dy === 0 && dx >= 0);
  const s = forward ? 5 * dy + dx : -5 * dy - dx;
  const i = forward ? y * width + x : y2 * width + x2;
  return weights[s * n + i];
}

/**
 * Levin et al.'s matting affinity: every 3×3 window k lying inside the image contributes, for every
 * pair (i, j) of its pixels (i = j included),
 *   w_ij += (1 + (I_i − μ_k)ᵀ (Σ_k + ε/9·I₃)⁻¹ (I_j − μ_k)) / 9,
 * with μ_k, Σ_k the mean and (biased) covariance of the window's colours, through the 3×3 Cholesky
 * factor of Σ_k + ε/9·I (see below). Off-diagonal weights can be negative; each window's weights sum
 * to 1 per pixel, so d_i counts the windows holding pixel i.
 */
export function mattingAffinity(img: RgbImage, opts: { eps?: number } = {}): Affinity {
  const { width: w, height: h, data } = img;
  const n = w * h;
  const weights = new Float64Array(SLOTS * n);
  const epsd = (opts.eps ?? MATTING_EPS) / 9;
  const dev = new Float64Array(27); // colour minus window mean, 9 pixels × RGB
  const md = new Float64Array(27); // L⁻¹ (I − μ) with L Lᵀ = Σ + ε/9 I, 9 pixels × RGB
  const idx = new Int32Array(9);
  for (let cy = 1; cy < h - 1; cy++) {
    for (let cx = 1; cx < w - 1; cx++) {
      let mr = 0, mg = 0, mb = 0;
      for (let k = 0; k < 9; k++) {
        const p = (cy - 1 + ((k / 3) | 0)) * w + cx - 1 + (k % 3);
        idx[k] = p;
        mr += data[3 * p];
        mg += data[3 * p + 1];
        mb += data[3 * p + 2];
      }
      mr /= 9; mg /= 9; mb /= 9;
      let srr = 0, srg = 0, srb = 0, sgg = 0, sgb = 0, sbb = 0;
      for (let k = 0; k < 9; k++) {
        const p = 3 * idx[k];
        const r = data[p] - mr, g = data[p + 1] - mg, b = data[p + 2] - mb;
        dev[3 * k] = r; dev[3 * k + 1] = g; dev[3 * k + 2] = b;
        srr += r * r; srg += r * g; srb += r * b; sgg += g * g; sgb += g * b; sbb += b * b;
      }
      // Σ + ε/9·I = L Lᵀ (Cholesky, closed form for 3×3), then (I_k − μ)ᵀ(Σ + ε/9·I)⁻¹(I_l − μ) =
      // (L⁻¹(I_k − μ))·(L⁻¹(I_l − μ)). The adjugate/determinant inverse is not used: replicate
      // padding makes rank-deficient windows (repeated rows), where it loses ~7 digits (weights off
      // by ~2e-7, solutions by ~3e-5 at α = 0.9999); Cholesky is backward stable, as the LU-based
      // np.linalg.inv of the reference.
      const l00 = Math.sqrt(srr / 9 + epsd);
      const l10 = srg / 9 / l00, l20 = srb / 9 / l00;
      const l11 = Math.sqrt(sgg / 9 + epsd - l10 * l10);
      const l21 = (sgb / 9 - l20 * l10) / l11;
      const l22 = Math.sqrt(sbb / 9 + epsd - l20 * l20 - l21 * l21);
      for (let k = 0; k < 9; k++) {
        const y0 = dev[3 * k] / l00;
        const y1 = (dev[3 * k + 1] - l10 * y0) / l11;
        const y2 = (dev[3 * k + 2] - l20 * y0 - l21 * y1) / l22;
        md[3 * k] = y0; md[3 * k + 1] = y1; md[3 * k + 2] = y2;
      }
      // Pairs k ≤ l in raster order: l is at a forward offset from k (or is k).
      for (let k = 0; k < 9; k++) {
        const ky = (k / 3) | 0, kx = k % 3;
        const xr = md[3 * k], xg = md[3 * k + 1], xb = md[3 * k + 2];
        const base = idx[k];
        for (let l = k; l < 9; l++) {
          const v = (1 + xr * md[3 * l] + xg * md[3 * l + 1] + xb * md[3 * l + 2]) / 9;
          const s = 5 * (((l / 3) | 0) - ky) + (l % 3) - kx;
          weights[s * n + base] += v;
        }
      }
    }
  }
  return { width: w, height: h, weights, degree: degrees(w, h, weights) };
}

/**
 * Gaussian colour affinity w_ij = exp(−‖I_i − I_j‖² / σ²) between 8-connected neighbours (the 3×3
 * neighbourhood, the usual grid graph of manifold ranking; a 5×5 one would smooth across thin
 * edges), with w_ii = 0 as in Zhou et al.'s manifold ranking. Colours on the [0, 1] scale.
 */
export function gaussianAffinity(img: RgbImage, opts: { sigma?: number } = {}): Affinity {
  const { width: w, height: h, data } = img;
  const n = w * h;
  const weights = new Float64Array(SLOTS * n);
  const sigma = opts.sigma ?? GAUSSIAN_SIGMA;
  const inv = 1 / (sigma * sigma);
  const slots = [1, 4, 5, 6]; // (0,1) (1,−1) (1,0) (1,1)
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      for (const s of slots) {
        const x2 = x + SLOT_DX[s], y2 = y + SLOT_DY[s];
        if (x2 < 0 || x2 >= w || y2 >= h) continue;
        const j = y2 * w + x2;
        const dr = data[3 * i] - data[3 * j], dg = data[3 * i + 1] - data[3 * j + 1], db = data[3 * i + 2] - data[3 * j + 2];
        weights[s * n + i] = Math.exp(-(dr * dr + dg * dg + db * db) * inv);
      }
    }
  }
  return { width: w, height: h, weights, degree: degrees(w, h, weights) };
}

/** Row sums of the symmetric stencil. */
export function degrees(w: number, h: number, weights: Float64Array): Float64Array {
  const n = w * h;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = weights[i];
  for (let s = 1; s < SLOTS; s++) {
    const off = SLOT_DY[s] * w + SLOT_DX[s];
    const base = s * n;
    for (let i = 0; i < n; i++) {
      const v = weights[base + i];
      if (v === 0) continue;
      d[i] += v;
      d[i + off] += v;
    }
  }
  return d;
}

/** Edge replication by `pad` pixels on every side (numpy's mode='edge', FastPhotoStyle's padding). */
export function padReplicate(img: RgbImage, pad: number): RgbImage {
  if (pad === 0) return img;
  const { width: w, height: h, data } = img;
  const W = w + 2 * pad, H = h + 2 * pad;
  const out = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(h - 1, Math.max(0, y - pad));
    for (let x = 0; x < W; x++) {
      const sx = Math.min(w - 1, Math.max(0, x - pad));
      const o = 3 * (y * W + x), p = 3 * (sy * w + sx);
      out[o] = data[p]; out[o + 1] = data[p + 1]; out[o + 2] = data[p + 2];
    }
  }
  return { width: W, height: H, data: out };
}
