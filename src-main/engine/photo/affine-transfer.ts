/**
 * The local affine colour model (REFERENCE §7): within each small window ω_k, out ≈ A_k·I + b_k,
 * I the guide's colour (1 or 3 channels), out any number of channels. Least squares with ridge ε:
 *
 *   A_k = cov_k(out, I) (Σ_k + ε U)⁻¹,   b_k = mean_k(out) − A_k mean_k(I),
 *
 * and each pixel takes the mean coefficients Ā, b̄ of the windows that hold it — He et al.'s guided
 * filter, with the coefficients kept instead of applied. Fitted at one size, they can be applied at
 * another (the fast guided filter, He & Sun 2015): the coefficient maps are smooth, so they are
 * upsampled bilinearly and applied to the larger guide, whose own detail then comes through.
 *
 *  - `fitLocalAffine`: the coefficient maps (Float32, per pixel cout×cin slopes then cout offsets).
 *  - `applyLocalAffine`: Ā(x)·I(x) + b̄(x) on a guide of any size, bilinear in the maps (half-pixel
 *    centres), for a band of rows at a time if wanted (full-resolution work in strips).
 *  - `boxFilter`, `downsample`: the window means (running sums, O(N) for any radius) and an integer
 *    box reduction, for fitting at a lower resolution.
 * With a grey guide the slope can be held ≥ 0 (`nonNegative`): the output's tones then never invert
 * the guide's inside a window.
 */
import { StudioError } from '../../errors.ts';

/** 1/(pixels of the clipped window) along an axis of length `len`. */
function windowInverse(len: number, r: number): Float64Array {
  return Float64Array.from({ length: len }, (_, x) => 1 / (Math.min(len - 1, x + r) - Math.max(0, x - r) + 1));
}

/**
 * Means over each pixel's (2r+1)² window of an interleaved C-channel image, windows clipped at the
 * borders (divided by the pixels inside, as He et al.'s N = boxfilter(ones)). In place when `out`
 * is `src` (the default is a new array): large fresh buffers cost more than the sums here.
 */
export function boxFilter(src: Float64Array, C: number, w: number, h: number, r: number, out: Float64Array = new Float64Array(src.length)): Float64Array {
  if (src.length !== w * h * C || out.length !== src.length) throw new StudioError('INTERNAL', `box filter: ${src.length} values are not ${w}×${h}×${C}`);
  const ix = windowInverse(w, r), iy = windowInverse(h, r);
  const W = w * C;
  // Horizontal, row by row into `out`: prefix sums of the row (flat over pixel × channel), then
  // window differences (the row is in P before its slot is written, so in place is safe).
  const P = new Float64Array(W + C);
  const x0 = Math.min(r, w), x1 = Math.max(x0, w - r); // columns x0 ≤ x < x1 see the whole window
  for (let y = 0; y < h; y++) {
    const o = y * W;
    for (let k = 0; k < W; k++) P[k + C] = P[k] + src[o + k];
    for (let x = 0; x < w; x++) {
      if (x === x0 && x1 > x0) {
        const f = ix[x0], hi = (r + 1) * C, lo = r * C;
        for (let k = x0 * C; k < x1 * C; k++) out[o + k] = (P[k + hi] - P[k - lo]) * f;
        x = x1 - 1;
        continue;
      }
      const a = Math.max(0, x - r) * C, b = Math.min(w, x + r + 1) * C, f = ix[x];
      for (let c = 0; c < C; c++) out[o + x * C + c] = (P[b + c] - P[a + c]) * f;
    }
  }
  // Vertical, in place: running column sums; a ring keeps the last r + 1 rows' horizontal sums,
  // which must still be subtracted after their slots are overwritten.
  const R = r + 1;
  const ring = new Float64Array(R * W), col = new Float64Array(W);
  for (let y = 0; y < Math.min(r, h); y++) for (let k = 0, o = y * W; k < W; k++) col[k] += out[o + k];
  for (let y = 0; y < h; y++) {
    if (y + r < h) for (let k = 0, o = (y + r) * W; k < W; k++) col[k] += out[o + k];
    const slot = (y % R) * W;
    if (y > r) for (let k = 0; k < W; k++) col[k] -= ring[slot + k];
    const f = iy[y];
    for (let k = 0, o = y * W; k < W; k++) {
      ring[slot + k] = out[o + k];
      out[o + k] = col[k] * f;
    }
  }
  return out;
}

/** Integer box reduction by `s` (blocks at the right and bottom borders may be partial). */
export function downsample(src: ArrayLike<number>, C: number, w: number, h: number, s: number): { data: Float64Array; width: number; height: number } {
  const wl = Math.ceil(w / s), hl = Math.ceil(h / s);
  const sum = new Float64Array(wl * hl * C), count = new Float64Array(wl * hl);
  for (let y = 0; y < h; y++) {
    const yl = Math.floor(y / s);
    for (let x = 0; x < w; x++) {
      const l = yl * wl + Math.floor(x / s), i = (y * w + x) * C;
      count[l]++;
      for (let c = 0; c < C; c++) sum[l * C + c] += src[i + c];
    }
  }
  for (let l = 0; l < wl * hl; l++) for (let c = 0; c < C; c++) sum[l * C + c] /= count[l];
  return { data: sum, width: wl, height: hl };
}

export interface AffineFit {
  width: number;
  height: number;
  /** Guide channels (1 grey, 3 colour). */
  cin: 1 | 3;
  /** Output channels. */
  cout: number;
  /** Per pixel: cout·cin slopes (row per output channel), then cout offsets. */
  coeffs: Float32Array;
}

export interface FitOptions {
  radius: number;
  /** Ridge ε, in guide units². */
  eps: number;
  /** Grey guide only: slopes below 0 are set to 0 (before averaging). */
  nonNegative?: boolean;
}

/**
 * Fits the local affine model from `guide` (cin channels) to `src` (cout channels), both w×h
 * interleaved, and returns the window-averaged coefficient maps.
 */
export function fitLocalAffine(guide: ArrayLike<number>, src: ArrayLike<number>, w: number, h: number, cin: 1 | 3, cout: number, opts: FitOptions): AffineFit {
  const n = w * h;
  const { radius: r, eps } = opts;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new StudioError('BAD_ARGUMENT', `local affine fit: bad size ${w}×${h}`);
  if (guide.length !== n * cin || src.length !== n * cout) throw new StudioError('BAD_ARGUMENT', `local affine fit: expected ${n * cin} guide and ${n * cout} source values for ${w}×${h}, got ${guide.length} and ${src.length}`);
  if (!Number.isInteger(r) || r < 0) throw new StudioError('BAD_ARGUMENT', `radius must be a non-negative integer, got ${r}`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new StudioError('BAD_ARGUMENT', `eps must be a non-negative number, got ${eps}`);
  // Per pixel: I (cin), I Iᵀ (upper triangle), p (cout), p Iᵀ (cout·cin).
  const nII = (cin * (cin + 1)) / 2;
  const C1 = cin + nII + cout + cout * cin;
  const m = new Float64Array(n * C1);
  for (let i = 0; i < n; i++) {
    const o = i * C1, g = i * cin, q = i * cout;
    let k = o;
    for (let a = 0; a < cin; a++) m[k++] = guide[g + a];
    for (let a = 0; a < cin; a++) for (let b = a; b < cin; b++) m[k++] = guide[g + a] * guide[g + b];
    for (let c = 0; c < cout; c++) m[k++] = src[q + c];
    for (let c = 0; c < cout; c++) for (let a = 0; a < cin; a++) m[k++] = src[q + c] * guide[g + a];
  }
  const mean = boxFilter(m, C1, w, h, r, m);
  const C2 = cout * cin + cout;
  const ab = new Float64Array(n * C2);
  const cov = new Float64Array(cout * cin);
  for (let i = 0; i < n; i++) {
    const o = i * C1, t = i * C2;
    // Offsets of the means of I, I Iᵀ, p and p Iᵀ in this pixel's record.
    const oII = o + cin, op = oII + nII, opI = op + cout;
    for (let c = 0; c < cout; c++) for (let a = 0; a < cin; a++) cov[c * cin + a] = mean[opI + c * cin + a] - mean[op + c] * mean[o + a];
    if (cin === 1) {
      const mI0 = mean[o];
      const v = mean[oII] - mI0 * mI0 + eps;
      for (let c = 0; c < cout; c++) {
        let s = v > 0 ? cov[c] / v : 0;
        if (opts.nonNegative && !(s > 0)) s = 0;
        ab[t + c] = s;
        ab[t + cout + c] = mean[op + c] - s * mI0;
      }
      continue;
    }
    const mI0 = mean[o], mI1 = mean[o + 1], mI2 = mean[o + 2];
    // Σ + εU, symmetric 3×3; its inverse in closed form (a zero or non-finite determinant: slopes 0).
    const s00 = mean[oII] - mI0 * mI0 + eps, s01 = mean[oII + 1] - mI0 * mI1, s02 = mean[oII + 2] - mI0 * mI2;
    const s11 = mean[oII + 3] - mI1 * mI1 + eps, s12 = mean[oII + 4] - mI1 * mI2, s22 = mean[oII + 5] - mI2 * mI2 + eps;
    const c00 = s11 * s22 - s12 * s12, c01 = s02 * s12 - s01 * s22, c02 = s01 * s12 - s02 * s11;
    const det = s00 * c00 + s01 * c01 + s02 * c02;
    const inv = det > 0 && det < Infinity ? 1 / det : 0;
    const i00 = c00 * inv, i01 = c01 * inv, i02 = c02 * inv;
    const i11 = (s00 * s22 - s02 * s02) * inv, i12 = (s01 * s02 - s00 * s12) * inv, i22 = (s00 * s11 - s01 * s01) * inv;
    for (let c = 0; c < cout; c++) {
      const x = cov[3 * c], y = cov[3 * c + 1], z = cov[3 * c + 2];
      const a0 = x * i00 + y * i01 + z * i02, a1 = x * i01 + y * i11 + z * i12, a2 = x * i02 + y * i12 + z * i22;
      ab[t + 3 * c] = a0; ab[t + 3 * c + 1] = a1; ab[t + 3 * c + 2] = a2;
      ab[t + cout * 3 + c] = mean[op + c] - a0 * mI0 - a1 * mI1 - a2 * mI2;
    }
  }
  return { width: w, height: h, cin, cout, coeffs: Float32Array.from(boxFilter(ab, C2, w, h, r, ab)) };
}

/**
 * Applies the fitted model to a guide of W×H (cin channels, interleaved): rows y0 ≤ y < y1 only
 * (default all), written to `out` (cout channels per pixel, rows from y0). Coefficients are
 * interpolated bilinearly with half-pixel centres: guide pixel (x, y) reads the maps at
 * ((x + ½)·w/W − ½, (y + ½)·h/H − ½), clamped to the maps.
 */
export function applyLocalAffine(fit: AffineFit, guide: ArrayLike<number>, W: number, H: number, y0 = 0, y1 = H, out?: Float32Array): Float32Array {
  const { width: w, height: h, cin, cout, coeffs } = fit;
  const rows = y1 - y0;
  if (!(y0 >= 0 && y1 <= H && rows >= 0)) throw new StudioError('INTERNAL', `apply: rows ${y0}..${y1} of ${H}`);
  if (guide.length < rows * W * cin) throw new StudioError('INTERNAL', `apply: the guide band has ${guide.length} values, ${rows * W * cin} needed`);
  const dst = out ?? new Float32Array(rows * W * cout);
  const C2 = cout * cin + cout;
  const sx = w / W, sy = h / H;
  // Per column: the two map columns and the weight of the right one.
  const xl = new Int32Array(W), xr = new Int32Array(W), fx = new Float64Array(W);
  for (let x = 0; x < W; x++) {
    const u = Math.min(w - 1, Math.max(0, (x + 0.5) * sx - 0.5));
    xl[x] = Math.floor(u);
    xr[x] = Math.min(w - 1, xl[x] + 1);
    fx[x] = u - xl[x];
  }
  const row = new Float64Array(w * C2); // the maps interpolated vertically for this output row
  for (let y = y0; y < y1; y++) {
    const v = Math.min(h - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const yt = Math.floor(v), yb = Math.min(h - 1, yt + 1), fy = v - yt;
    const ot = yt * w * C2, ob = yb * w * C2;
    for (let k = 0; k < w * C2; k++) row[k] = coeffs[ot + k] + fy * (coeffs[ob + k] - coeffs[ot + k]);
    const g0 = (y - y0) * W * cin, d0 = (y - y0) * W * cout;
    for (let x = 0; x < W; x++) {
      const l = xl[x] * C2, r = xr[x] * C2, f = fx[x], g = g0 + x * cin, d = d0 + x * cout;
      for (let c = 0; c < cout; c++) {
        let v2 = row[l + cout * cin + c] + f * (row[r + cout * cin + c] - row[l + cout * cin + c]);
        for (let a = 0; a < cin; a++) {
          const k = c * cin + a;
          v2 += (row[l + k] + f * (row[r + k] - row[l + k])) * guide[g + a];
        }
        dst[d + c] = v2;
      }
    }
  }
  return dst;
}

/**
 * `applyLocalAffine` from integer samples to integer samples (a colour fit, cin = cout = 3): rows
 * y0 ≤ y < y1 of a W×H guide at `srcBits` (8 or 16) into `dst` at `dstBits`, clamped to the range
 * and rounded. Full-resolution results go this way, with no float copy of the photo.
 */
export function applyLocalAffineToSamples(
  fit: AffineFit, src: Uint8Array | Uint16Array, srcBits: 8 | 16, W: number, H: number, dst: Uint8Array | Uint16Array, dstBits: 8 | 16, y0 = 0, y1 = H,
): void {
  const { width: w, height: h, cin, cout, coeffs } = fit;
  if (cin !== 3 || cout !== 3) throw new StudioError('INTERNAL', `applyLocalAffineToSamples: a colour fit is needed, got ${cin} → ${cout}`);
  if (src.length !== W * H * 3 || dst.length !== W * H * 3) throw new StudioError('INTERNAL', `applyLocalAffineToSamples: ${W}×${H}×3 samples expected`);
  const inScale = 1 / (srcBits === 16 ? 65535 : 255), outMax = dstBits === 16 ? 65535 : 255;
  const C2 = 12;
  const sx = w / W, sy = h / H;
  const xl = new Int32Array(W), xr = new Int32Array(W), fx = new Float64Array(W);
  for (let x = 0; x < W; x++) {
    const u = Math.min(w - 1, Math.max(0, (x + 0.5) * sx - 0.5));
    xl[x] = Math.floor(u) * C2;
    xr[x] = Math.min(w - 1, Math.floor(u) + 1) * C2;
    fx[x] = u - Math.floor(u);
  }
  const row = new Float64Array(w * C2);
  for (let y = y0; y < y1; y++) {
    const v = Math.min(h - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const yt = Math.floor(v), yb = Math.min(h - 1, yt + 1), fy = v - yt;
    const ot = yt * w * C2, ob = yb * w * C2;
    // The maps scaled to integer output units, so each pixel is one lerp and a dot product.
    for (let k = 0; k < w * C2; k++) row[k] = (coeffs[ot + k] + fy * (coeffs[ob + k] - coeffs[ot + k])) * outMax;
    for (let x = 0, p = y * W * 3; x < W; x++, p += 3) {
      const l = xl[x], r = xr[x], f = fx[x], g = 1 - f;
      const R = src[p] * inScale, G = src[p + 1] * inScale, B = src[p + 2] * inScale;
      // Each output channel: its three slopes and offset, lerped between the two map columns.
      const q0 = (g * row[l] + f * row[r]) * R + (g * row[l + 1] + f * row[r + 1]) * G + (g * row[l + 2] + f * row[r + 2]) * B + g * row[l + 9] + f * row[r + 9];
      const q1 = (g * row[l + 3] + f * row[r + 3]) * R + (g * row[l + 4] + f * row[r + 4]) * G + (g * row[l + 5] + f * row[r + 5]) * B + g * row[l + 10] + f * row[r + 10];
      const q2 = (g * row[l + 6] + f * row[r + 6]) * R + (g * row[l + 7] + f * row[r + 7]) * G + (g * row[l + 8] + f * row[r + 8]) * B + g * row[l + 11] + f * row[r + 11];
      dst[p] = q0 > 0 ? (q0 < outMax ? (q0 + 0.5) | 0 : outMax) : 0;
      dst[p + 1] = q1 > 0 ? (q1 < outMax ? (q1 + 0.5) | 0 : outMax) : 0;
      dst[p + 2] = q2 > 0 ? (q2 < outMax ? (q2 + 0.5) | 0 : outMax) : 0;
    }
  }
}

/** One carry as the smoothing pool's threads share it (every array on a SharedArrayBuffer). */
export interface CarryBands {
  fit: AffineFit;
  src: Uint8Array | Uint16Array;
  srcBits: 8 | 16;
  W: number;
  H: number;
  dst: Uint8Array | Uint16Array;
  dstBits: 8 | 16;
}
