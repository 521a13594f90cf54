/**
 * He et al.'s guided image filter with a colour guide (ECCV 2010 / TPAMI 2013, Algorithm 1 with the
 * 3×3 covariance of §3.5): in every (2r+1)×(2r+1) window k, q = a_kᵀ I + b_k with
 *
 *   a_k = (Σ_k + ε I₃)⁻¹ cov_k(I, p),   b_k = mean_k(p) − a_kᵀ mean_k(I),
 *
 * and the output averages the coefficients of all windows holding a pixel: q_i = ā_iᵀ I_i + b̄_i.
 * Every mean is a box filter computed with running sums, so the cost is O(N) whatever the radius.
 * Windows are clipped at the image border and means divide by the pixels actually inside (He et
 * al.'s reference code, N = boxfilter(ones)); OpenCV instead reflects the border.
 *
 * This is FastPhotoStyle's fast approximation of the smoothing step (`--fast`: photo_gif.py,
 * GIFSmoothing(r=35, eps=1e-3) through cv2.ximgproc.guidedFilter on 8-bit images). OpenCV converts
 * 8-bit images to float without rescaling, so that ε is on the 0–255 scale: 1e-3/255² ≈ 1.5e-8 on the
 * [0, 1] scale used here. He et al.'s own settings are r = 4–8 with ε = 0.1²–0.4² for edge-aware
 * smoothing and r = 60, ε = 1e-6 for feathering; FastPhotoStyle's use is the feathering kind (a
 * large window and a tiny ε make the output a local colour-affine function of the content image,
 * like the matting affinity of the exact smoothing), so `GUIDED_FILTER_DEFAULTS` keeps its values.
 * The radius is in pixels of the image filtered; FastPhotoStyle applies it at full resolution.
 */
import type { RgbImage } from '../image.ts';
import { StudioError } from '../../errors.ts';
import { GUIDED_KERNEL, acquirePool, smoothThreads } from './smooth-pool.ts';

/** FastPhotoStyle's `--fast` settings, ε moved to the [0, 1] colour scale. */
export const GUIDED_FILTER_DEFAULTS = { radius: 35, eps: 1e-3 / (255 * 255) } as const;

export interface GuidedFilterOptions {
  /** Window radius r in pixels (windows are (2r+1)²); 0 returns src unchanged. */
  radius: number;
  /** Regulariser ε on the [0, 1] colour scale (variance units). */
  eps: number;
  /**
   * Threads (default as the smoothing solver's: STUDIO_SMOOTH_THREADS, else the core count). Each
   * takes a band of output rows and restarts the running sums 2r rows above it, so the extra work is
   * 2r rows per band: worth it from a few hundred rows. 1024×640 at r = 35 on this 2-core machine,
   * quiet: 1 thread 0.23–0.29 s, 2 threads 0.14–0.19 s (the first call, while the pool starts, runs
   * on one).
   */
  threads?: number;
}

/** Below this many output rows per thread the bands' 2r-row restarts cost more than they save. */
const MIN_ROWS_PER_THREAD = 128;

/**
 * Filters each channel of `src` guided by the colour image `guide` (same size). The output is
 * clamped to [0, 1] (the local linear model can overshoot slightly at strong edges).
 */
export function guidedFilter(guide: RgbImage, src: RgbImage, opts: GuidedFilterOptions): RgbImage {
  const { width: w, height: h } = guide;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || guide.data.length !== w * h * 3) {
    throw new StudioError('BAD_ARGUMENT', `the guide image is not a valid ${w}×${h} RGB image`);
  }
  if (src.width !== w || src.height !== h || src.data.length !== w * h * 3) {
    throw new StudioError(
      'BAD_ARGUMENT',
      `the image to filter is ${src.width}×${src.height} but the guide is ${w}×${h}`,
      'filter an image of the guide’s size (resize one of them first)',
    );
  }
  const { radius: r, eps } = opts;
  if (!Number.isInteger(r) || r < 0) throw new StudioError('BAD_ARGUMENT', `radius must be a non-negative integer, got ${r}`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new StudioError('BAD_ARGUMENT', `eps must be a non-negative number, got ${eps}`);
  if (r === 0) {
    // One-pixel windows: cov(I, p) = 0, so a = 0, b = p and q = p.
    return { width: w, height: h, data: Float32Array.from(src.data, (v) => Math.min(1, Math.max(0, v))) };
  }
  let threads = Math.min(smoothThreads(opts.threads), Math.floor(h / Math.max(MIN_ROWS_PER_THREAD, 4 * r)));
  const pool = threads > 1 ? acquirePool(threads) : undefined;
  if (!pool || pool.busy || !pool.waitReady(threads, 0)) threads = 1;
  if (threads === 1 || !pool) {
    const q = new Float32Array(w * h * 3);
    guidedRows({ I: guide.data, p: src.data, q, w, h, r, eps }, 0, h);
    return { width: w, height: h, data: q };
  }
  // Bands of output rows on the smoothing pool, the images in shared memory.
  const shared = (a: Float32Array) => {
    const b = new Float32Array(new SharedArrayBuffer(4 * a.length));
    b.set(a);
    return b;
  };
  const job: GuidedJob = { I: shared(guide.data), p: shared(src.data), q: new Float32Array(new SharedArrayBuffer(4 * w * h * 3)), w, h, r, eps };
  const parts = new Int32Array(new SharedArrayBuffer(4 * (threads + 1)));
  for (let t = 1; t <= threads; t++) parts[t] = Math.round((t * h) / threads);
  pool.begin(threads, { T: threads, levels: [], v: [], parts: [parts], guided: job, scratch: 0 });
  try {
    pool.dispatch(GUIDED_KERNEL, 0, threads, (blk) => guidedRows(job, parts[blk], parts[blk + 1]));
  } finally {
    pool.end();
  }
  // A plain array for the caller (a shared one cannot be transferred to another thread).
  return { width: w, height: h, data: job.q.slice() };
}

/** One guided filtering: guide I, source p, output q (interleaved RGB). */
export interface GuidedJob {
  I: Float32Array; p: Float32Array; q: Float32Array;
  w: number; h: number; r: number; eps: number;
}

/**
 * Output rows y0 ≤ y < y1 of the guided filter (r > 0). Streaming, row by row: each box filter keeps
 * running column sums of its input rows (stage 1 recomputes the products of a row leaving the window
 * from the inputs; stage 2 keeps its rows in a ring of 2r + 2), and takes horizontal window sums of
 * the column sums for each output row. A band starts its sums r rows above it in stage 2 and 2r in
 * stage 1; the whole image (0, h) is the single-thread path.
 */
export function guidedRows(job: GuidedJob, y0: number, y1: number): void {
  const { I, p, q, w, h, r, eps } = job;
  const W1 = w * C1, W2 = w * C2;
  const R = Math.min(h, 2 * r + 2);
  const invx = new Float64Array(w);
  for (let x = 0; x < w; x++) invx[x] = 1 / (Math.min(w - 1, x + r) - Math.max(0, x - r) + 1);
  const st: State = {
    I, p, q, w, h, r, eps, R,
    col1: new Float64Array(W1), hs1: new Float64Array(W1),
    ring2: new Float64Array(R * W2), col2: new Float64Array(W2), hs2: new Float64Array(W2),
    P: new Float64Array(W1 + C1), invx,
  };
  // Stage-1 rows the band needs, and the first input row summed.
  const s1lo = Math.max(0, y0 - r), s1hi = Math.min(h, y1 + r), in0 = Math.max(0, s1lo - r);
  let next = in0;
  for (let y = s1lo; y < s1hi; y++) {
    while (next <= Math.min(h - 1, y + r)) products(st, next++, 1);
    if (y - r - 1 >= in0) products(st, y - r - 1, -1);
    emit1(st, y);
    const y2 = y - r;
    if (y2 >= y0 && y2 < y1) {
      if (y2 - r - 1 >= s1lo) sub(st.ring2, st.col2, W2, ((y2 - r - 1) % R) * W2);
      emit2(st, y2);
    }
  }
  for (let y2 = Math.max(y0, s1hi - r); y2 < y1; y2++) {
    if (y2 - r - 1 >= s1lo) sub(st.ring2, st.col2, W2, ((y2 - r - 1) % R) * W2);
    emit2(st, y2);
  }
}

/** Channels of stage 1 (I, I Iᵀ, p, I p) and stage 2 (a per channel of p, b). */
const C1 = 21, C2 = 12;

interface State {
  I: Float32Array; p: Float32Array; q: Float32Array;
  w: number; h: number; r: number; eps: number; R: number;
  col1: Float64Array; hs1: Float64Array;
  ring2: Float64Array; col2: Float64Array; hs2: Float64Array;
  P: Float64Array; invx: Float64Array;
}

function invy(st: State, y: number): number {
  return 1 / (Math.min(st.h - 1, y + st.r) - Math.max(0, y - st.r) + 1);
}

function sub(ring: Float64Array, col: Float64Array, W: number, slot: number): void {
  for (let k = 0; k < W; k++) col[k] -= ring[slot + k];
}

/** Adds (sign 1) or removes (sign −1) input row y's I (3), I Iᵀ (6), p (3), I p (9) in the column sums. */
function products(st: State, y: number, sign: number): void {
  const { I, p, w, col1 } = st;
  for (let x = 0; x < w; x++) {
    const i = y * w + x, o = C1 * x;
    const r0 = sign * I[3 * i], g0 = sign * I[3 * i + 1], b0 = sign * I[3 * i + 2];
    const s0 = I[3 * i], s1 = I[3 * i + 1], s2 = I[3 * i + 2];
    const p0 = p[3 * i], p1 = p[3 * i + 1], p2 = p[3 * i + 2];
    col1[o] += r0; col1[o + 1] += g0; col1[o + 2] += b0;
    col1[o + 3] += r0 * s0; col1[o + 4] += r0 * s1; col1[o + 5] += r0 * s2; col1[o + 6] += g0 * s1; col1[o + 7] += g0 * s2; col1[o + 8] += b0 * s2;
    col1[o + 9] += sign * p0; col1[o + 10] += sign * p1; col1[o + 11] += sign * p2;
    col1[o + 12] += r0 * p0; col1[o + 13] += g0 * p0; col1[o + 14] += b0 * p0;
    col1[o + 15] += r0 * p1; col1[o + 16] += g0 * p1; col1[o + 17] += b0 * p1;
    col1[o + 18] += r0 * p2; col1[o + 19] += g0 * p2; col1[o + 20] += b0 * p2;
  }
}

/** Stage 1 output row y: a = (Σ + εI)⁻¹ cov(I, p) per channel of p (9) and b (3), into stage 2. */
function emit1(st: State, y: number): void {
  const { w, col1, hs1, ring2, col2, P, invx, eps, r, R } = st;
  rowSums(col1, P, hs1, 0, w, C1, r);
  const fy = invy(st, y);
  const W2 = w * C2, slot = (y % R) * W2;
  for (let x = 0; x < w; x++) {
    const o = C1 * x, o2 = slot + C2 * x, f = fy * invx[x];
    const mr = hs1[o] * f, mg = hs1[o + 1] * f, mb = hs1[o + 2] * f;
    const a = hs1[o + 3] * f - mr * mr + eps, b = hs1[o + 4] * f - mr * mg, c = hs1[o + 5] * f - mr * mb;
    const d = hs1[o + 6] * f - mg * mg + eps, e = hs1[o + 7] * f - mg * mb, g = hs1[o + 8] * f - mb * mb + eps;
    const det0 = a * (d * g - e * e) + b * (c * e - b * g) + c * (b * e - c * d);
    const inv = det0 > 0 && det0 < Infinity ? 1 / det0 : 0;
    const i00 = (d * g - e * e) * inv, i01 = (c * e - b * g) * inv, i02 = (b * e - c * d) * inv;
    const i11 = (a * g - c * c) * inv, i12 = (b * c - a * e) * inv, i22 = (a * d - b * b) * inv;
    const m0 = hs1[o + 9] * f, m1 = hs1[o + 10] * f, m2 = hs1[o + 11] * f;
    let cr = hs1[o + 12] * f - mr * m0, cg = hs1[o + 13] * f - mg * m0, cb = hs1[o + 14] * f - mb * m0;
    let ar = i00 * cr + i01 * cg + i02 * cb, ag = i01 * cr + i11 * cg + i12 * cb, ab = i02 * cr + i12 * cg + i22 * cb;
    ring2[o2] = ar; ring2[o2 + 1] = ag; ring2[o2 + 2] = ab; ring2[o2 + 9] = m0 - ar * mr - ag * mg - ab * mb;
    cr = hs1[o + 15] * f - mr * m1; cg = hs1[o + 16] * f - mg * m1; cb = hs1[o + 17] * f - mb * m1;
    ar = i00 * cr + i01 * cg + i02 * cb; ag = i01 * cr + i11 * cg + i12 * cb; ab = i02 * cr + i12 * cg + i22 * cb;
    ring2[o2 + 3] = ar; ring2[o2 + 4] = ag; ring2[o2 + 5] = ab; ring2[o2 + 10] = m1 - ar * mr - ag * mg - ab * mb;
    cr = hs1[o + 18] * f - mr * m2; cg = hs1[o + 19] * f - mg * m2; cb = hs1[o + 20] * f - mb * m2;
    ar = i00 * cr + i01 * cg + i02 * cb; ag = i01 * cr + i11 * cg + i12 * cb; ab = i02 * cr + i12 * cg + i22 * cb;
    ring2[o2 + 6] = ar; ring2[o2 + 7] = ag; ring2[o2 + 8] = ab; ring2[o2 + 11] = m2 - ar * mr - ag * mg - ab * mb;
  }
  for (let k = 0; k < W2; k++) col2[k] += ring2[slot + k];
}

/** Stage 2 output row y: q = ā·I + b̄, clamped to [0, 1]. */
function emit2(st: State, y: number): void {
  const { I, q, w, col2, hs2, P, invx, r } = st;
  rowSums(col2, P, hs2, 0, w, C2, r);
  const fy = invy(st, y);
  for (let x = 0; x < w; x++) {
    const o = C2 * x, f = fy * invx[x], i = 3 * (y * w + x);
    const r0 = I[i], g0 = I[i + 1], b0 = I[i + 2];
    const v0 = (hs2[o] * r0 + hs2[o + 1] * g0 + hs2[o + 2] * b0 + hs2[o + 9]) * f;
    const v1 = (hs2[o + 3] * r0 + hs2[o + 4] * g0 + hs2[o + 5] * b0 + hs2[o + 10]) * f;
    const v2 = (hs2[o + 6] * r0 + hs2[o + 7] * g0 + hs2[o + 8] * b0 + hs2[o + 11]) * f;
    q[i] = v0 < 0 ? 0 : v0 > 1 ? 1 : v0;
    q[i + 1] = v1 < 0 ? 0 : v1 > 1 ? 1 : v1;
    q[i + 2] = v2 < 0 ? 0 : v2 > 1 ? 1 : v2;
  }
}

/**
 * Horizontal window sums (clipped windows, not yet divided) of one interleaved C-channel row into
 * dst[o..o + w·C), through prefix sums; the loops run flat over (pixel, channel) pairs.
 */
function rowSums(row: Float64Array, P: Float64Array, dst: Float64Array, o: number, w: number, C: number, r: number): void {
  const W = w * C;
  for (let k = 0; k < W; k++) P[k + C] = P[k] + row[k];
  // Columns r ≤ x < w − r see the full window; the rest are clipped.
  const x0 = Math.min(r, w), x1 = Math.max(x0, w - r);
  for (let x = 0; x < x0; x++) clipped(P, dst, o, x, w, C, r);
  const hi = (r + 1) * C, lo = r * C;
  for (let k = x0 * C; k < x1 * C; k++) dst[o + k] = P[k + hi] - P[k - lo];
  for (let x = x1; x < w; x++) clipped(P, dst, o, x, w, C, r);
}

function clipped(P: Float64Array, dst: Float64Array, o: number, x: number, w: number, C: number, r: number): void {
  const a = Math.max(0, x - r) * C, b = Math.min(w, x + r + 1) * C;
  for (let c = 0; c < C; c++) dst[o + x * C + c] = P[b + c] - P[a + c];
}
