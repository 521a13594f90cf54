/**
 * Classical colour transfer (REFERENCE §6), pure maths on colour samples: interleaved Float64Arrays
 * of N points with d channels (d = 3 for L*a*b*, 2 for a*b* when luminance is kept).
 *
 *  - `gaussianOf`, `transportMap`: the linear Monge–Kantorovich map of Pitié & Kokaram (2007),
 *      t(x) = T (x − μc) + μs,   T = Σc^-½ (Σc^½ Σs Σc^½)^½ Σc^-½,
 *    the optimal-transport map between the two Gaussians (symmetric, so it moves colours the least;
 *    WCT's whitening/colouring pair reaches the same covariance by a rotation-free but longer path).
 *    Its square roots are ../photo/matrix-sqrt.ts's spectral rule in float64.
 *  - `matchQuantiles`, `QuantileMap`: 1-D optimal transport between empirical distributions (the
 *    quantile, or histogram, matching of one axis).
 *  - `iterativeDistributionTransfer`: Pitié, Kokaram & Dahyot's IDT — repeat { rotate the colour
 *    space; match every rotated axis of the photo's sample to the reference's by its quantiles;
 *    rotate back } until the sample stops moving. Other points (`carry`, e.g. a colour lattice) are
 *    moved by the same maps, so the whole transfer becomes one function of the photo's colour.
 */
import { StudioError } from '../../errors.ts';
import { mulberry32, gaussian } from '../random.ts';
import { sqrtAndInvSqrt64, symmetricFunction64 } from '../photo/matrix-sqrt.ts';

export interface ColourGaussian {
  d: number;
  n: number;
  mean: Float64Array;
  /** Row-major d×d, unbiased (N − 1); zero for a single point. */
  cov: Float64Array;
}

/** Mean and covariance of N interleaved d-channel points (of the listed indices only, when given). */
export function gaussianOf(points: Float32Array | Float64Array, d: number, indices?: ArrayLike<number>): ColourGaussian {
  const n = indices ? indices.length : points.length / d;
  if (!Number.isInteger(n) || n < 1) throw new StudioError('BAD_ARGUMENT', `colour statistics need at least one colour of ${d} channels, got ${points.length} values`);
  const mean = new Float64Array(d);
  for (let k = 0; k < n; k++) {
    const o = (indices ? indices[k] : k) * d;
    for (let c = 0; c < d; c++) mean[c] += points[o + c];
  }
  for (let c = 0; c < d; c++) mean[c] /= n;
  const cov = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (let k = 0; k < n; k++) {
    const o = (indices ? indices[k] : k) * d;
    for (let c = 0; c < d; c++) x[c] = points[o + c] - mean[c];
    for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) cov[i * d + j] += x[i] * x[j];
  }
  const div = n > 1 ? n - 1 : 1;
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) cov[j * d + i] = cov[i * d + j] /= div;
  return { d, n, mean, cov };
}

/**
 * The photo's covariance is regularised only where it is (nearly) rank-deficient — a greyscale or
 * single-colour photo: eigenvalues below max(FRACTION · mean eigenvalue, FLOOR) are raised to it.
 * The floor is in L*a*b* units² (a standard deviation of 1 ΔE): below it a channel's spread is
 * quantisation noise, which the map must not amplify into colour noise. A photo with every
 * eigenvalue above it is mapped exactly.
 */
export const REGULARIZER = { fraction: 1e-4, floor: 1 } as const;

export interface TransportMap {
  d: number;
  /** Row-major d×d, symmetric positive semi-definite. */
  T: Float64Array;
  from: Float64Array;
  to: Float64Array;
  /** How many of the photo's covariance eigenvalues were raised to the floor. */
  regularized: number;
}

const matMul = (a: Float64Array, b: Float64Array, d: number): Float64Array => {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += a[i * d + k] * b[k * d + j];
    out[i * d + j] = s;
  }
  return out;
};

/** The linear Monge–Kantorovich map from the photo's Gaussian `c` to the reference's `s`. */
export function transportMap(c: ColourGaussian, s: ColourGaussian, reg: { fraction: number; floor: number } = REGULARIZER): TransportMap {
  const d = c.d;
  if (s.d !== d) throw new StudioError('BAD_ARGUMENT', `colour transfer: the photo has ${d} channels, the reference ${s.d}`);
  // Raise the photo's small eigenvalues to the floor (E·max(λ, floor)·Eᵀ), counting them.
  let trace = 0;
  for (let i = 0; i < d; i++) trace += c.cov[i * d + i];
  const floor = Math.max(reg.fraction * (trace / d), reg.floor);
  let regularized = 0;
  const covC = symmetricFunction64(c.cov, d, (v) => {
    if (v < floor) regularized++;
    return Math.max(v, floor);
  }, -Infinity);
  const { sqrt: a, invSqrt: ai } = sqrtAndInvSqrt64(covC, d, 0);
  // (Σc^½ Σs Σc^½)^½: PSD; eigenvalues at or below 0 (rounding, or a rank-deficient reference) → 0.
  const middle = symmetricFunction64(matMul(matMul(a, s.cov, d), a, d), d, Math.sqrt, Number.MIN_VALUE);
  const T = matMul(matMul(ai, middle, d), ai, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) T[i * d + j] = T[j * d + i] = 0.5 * (T[i * d + j] + T[j * d + i]);
  return { d, T, from: c.mean, to: s.mean, regularized };
}

/** x ← T (x − from) + to for every point, in place (or into `out`). */
export function applyTransport(m: TransportMap, points: Float64Array, out: Float64Array = points): Float64Array {
  const { d, T, from, to } = m;
  const x = new Float64Array(d);
  for (let o = 0; o < points.length; o += d) {
    for (let c = 0; c < d; c++) x[c] = points[o + c] - from[c];
    for (let i = 0; i < d; i++) {
      let v = to[i];
      for (let k = 0; k < d; k++) v += T[i * d + k] * x[k];
      out[o + i] = v;
    }
  }
  return out;
}

/** The quantile of sorted values at p ∈ [0, 1], interpolating linearly between order statistics. */
function quantileOfSorted(sorted: Float64Array, p: number): number {
  const h = p * (sorted.length - 1);
  const i = Math.floor(h);
  return i >= sorted.length - 1 ? sorted[sorted.length - 1] : sorted[i] + (h - i) * (sorted[i + 1] - sorted[i]);
}

/**
 * Exact 1-D matching: the source value of rank i among n goes to the target's quantile at
 * p = i/(n − 1). Without ties in the source the output's sorted values are exactly the target's
 * quantiles at those levels; tied source values share the mean of their quantiles (so the map stays
 * a function of the value).
 */
export function matchQuantiles(source: Float64Array, target: Float64Array): Float64Array {
  const n = source.length;
  if (n === 0 || target.length === 0) throw new StudioError('BAD_ARGUMENT', 'quantile matching needs values on both sides');
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => source[a] - source[b]);
  const sortedTarget = Float64Array.from(target).sort();
  const out = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && source[order[j]] === source[order[i]]) j++;
    let sum = 0;
    for (let k = i; k < j; k++) sum += quantileOfSorted(sortedTarget, n > 1 ? k / (n - 1) : 0.5);
    for (let k = i; k < j; k++) out[order[k]] = sum / (j - i);
    i = j;
  }
  return out;
}

/**
 * A monotone piecewise-linear 1-D map through `knots` quantile pairs of a source and a target
 * sample (equal source quantiles merged into one knot with the mean target); beyond the end knots it
 * continues with slope 1, so colours outside the sampled range keep their distance to it.
 */
export class QuantileMap {
  readonly xs: Float64Array;
  readonly ys: Float64Array;

  constructor(sortedSource: Float64Array, sortedTarget: Float64Array, knots: number) {
    const xs: number[] = [], ys: number[] = [];
    const level = (j: number) => (knots > 1 ? j / (knots - 1) : 0.5);
    // Quantiles of sorted data never decrease with p, so equal source quantiles are consecutive.
    for (let i = 0; i < knots;) {
      const x = quantileOfSorted(sortedSource, level(i));
      let sum = quantileOfSorted(sortedTarget, level(i)), j = i + 1;
      while (j < knots && quantileOfSorted(sortedSource, level(j)) === x) sum += quantileOfSorted(sortedTarget, level(j++));
      xs.push(x);
      ys.push(sum / (j - i));
      i = j;
    }
    this.xs = Float64Array.from(xs);
    this.ys = Float64Array.from(ys);
  }

  /** Knot index lookup: cell j of `buckets` equal steps over the knots' range → last knot ≤ its start. */
  private index?: { start: Int32Array; x0: number; inv: number };

  map(x: number): number {
    const { xs, ys } = this;
    const n = xs.length;
    if (n === 1 || x <= xs[0]) return ys[0] + (x - xs[0]);
    if (x >= xs[n - 1]) return ys[n - 1] + (x - xs[n - 1]);
    const ix = this.index ?? (this.index = this.buildIndex());
    let lo = ix.start[Math.min(ix.start.length - 1, Math.floor((x - ix.x0) * ix.inv))];
    while (xs[lo + 1] <= x) lo++;
    return ys[lo] + ((x - xs[lo]) * (ys[lo + 1] - ys[lo])) / (xs[lo + 1] - xs[lo]);
  }

  private buildIndex() {
    const { xs } = this;
    const n = xs.length, cells = 4 * n;
    const x0 = xs[0], inv = cells / (xs[n - 1] - xs[0]);
    const start = new Int32Array(cells);
    for (let j = 0, k = 0; j < cells; j++) {
      const at = x0 + j / inv;
      while (k + 1 < n - 1 && xs[k + 1] <= at) k++;
      start[j] = k;
    }
    return { start, x0, inv };
  }
}

/** A random rotation of R^d (Gram–Schmidt on Gaussian vectors): rows are orthonormal axes. */
export function randomRotation(d: number, rng: () => number): Float64Array {
  const r = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (;;) {
      for (let c = 0; c < d; c++) r[i * d + c] = gaussian(rng);
      for (let j = 0; j < i; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += r[i * d + c] * r[j * d + c];
        for (let c = 0; c < d; c++) r[i * d + c] -= dot * r[j * d + c];
      }
      let norm = 0;
      for (let c = 0; c < d; c++) norm += r[i * d + c] ** 2;
      norm = Math.sqrt(norm);
      if (norm > 1e-6) {
        for (let c = 0; c < d; c++) r[i * d + c] /= norm;
        break;
      }
    }
  }
  return r;
}

export interface IdtOptions {
  /** Upper bound on iterations. */
  maxIterations?: number;
  /**
   * Stop when an iteration moves the sample by less than this (RMS displacement relative to the
   * reference's spread, √trace Σs), or by less than the sampling noise of the quantiles,
   * NOISE_LEVEL/√n for the smaller sample of n colours (an iteration then only shuffles noise: with
   * 16384 colours it measured 0.007–0.017 and stays there): the distribution has stopped changing.
   */
  tolerance?: number;
  /** Quantile knots per axis and iteration. */
  knots?: number;
  seed?: number;
  /**
   * A channel that keeps its values: after every iteration each point's coordinate on it is put
   * back (a transfer of the other channels conditioned on this one).
   */
  pin?: number;
  checkCancelled?: () => void;
}

export const IDT_DEFAULTS = { maxIterations: 30, tolerance: 2e-3, knots: 256, seed: 0 } as const;
/** See IdtOptions.tolerance. */
export const NOISE_LEVEL = 1.5;

export interface IdtReport {
  iterations: number;
  converged: boolean;
  /** The relative RMS displacement of each iteration. */
  changes: number[];
}

/**
 * Iterative distribution transfer (Pitié et al. 2005/2007), in place on `source` (the photo's
 * colour sample), towards the distribution of `target` (the reference's sample); every array in
 * `carry` (d-channel points) is moved by the same per-axis maps.
 */
export function iterativeDistributionTransfer(source: Float64Array, target: Float64Array, d: number, carry: Float64Array[] = [], opts: IdtOptions = {}): IdtReport {
  const o = { ...IDT_DEFAULTS, ...opts };
  const ns = source.length / d, nt = target.length / d;
  if (!(ns >= 1 && nt >= 1 && Number.isInteger(ns) && Number.isInteger(nt))) {
    throw new StudioError('BAD_ARGUMENT', `distribution transfer needs colours on both sides (${ns} and ${nt} of ${d} channels)`);
  }
  const rng = mulberry32(o.seed);
  const spread = Math.sqrt(gaussianOf(target, d).cov.reduce((s, v, i) => (i % (d + 1) === 0 ? s + v : s), 0));
  const scale = spread > 0 ? spread : 1;
  const stopBelow = Math.max(o.tolerance, NOISE_LEVEL / Math.sqrt(Math.min(ns, nt)));
  const ps = new Float64Array(ns), pt = new Float64Array(nt);
  const changes: number[] = [];
  let converged = false, best = Infinity, stalled = 0;
  const pin = o.pin;
  if (pin !== undefined && !(Number.isInteger(pin) && pin >= 0 && pin < d)) throw new StudioError('BAD_ARGUMENT', `distribution transfer: cannot pin channel ${pin} of ${d}`);
  const pinned = pin === undefined ? [] : [source, ...carry].map((pts) => Float64Array.from({ length: pts.length / d }, (_, i) => pts[i * d + pin]));
  for (let it = 0; it < o.maxIterations; it++) {
    o.checkCancelled?.();
    const R = randomRotation(d, rng);
    let moved = 0;
    for (let axis = 0; axis < d; axis++) {
      const u = R.subarray(axis * d, axis * d + d);
      project(source, u, d, ps);
      project(target, u, d, pt);
      const map = new QuantileMap(ps.slice().sort(), pt.sort(), o.knots);
      moved += moveAlong(source, u, d, map, ps);
      for (const pts of carry) moveAlong(pts, u, d, map);
    }
    if (pin !== undefined) {
      [source, ...carry].forEach((pts, k) => {
        const keep = pinned[k];
        for (let i = 0; i < keep.length; i++) pts[i * d + pin] = keep[i];
      });
    }
    const change = Math.sqrt(moved / ns) / scale;
    changes.push(change);
    // Stopped changing: below the tolerance or the sampling noise, or no longer falling (three
    // iterations in a row above 90% of the best: what still moves is noise).
    stalled = change < 0.9 * best ? 0 : stalled + 1;
    best = Math.min(best, change);
    if (change < stopBelow || stalled >= 3) {
      converged = true;
      break;
    }
  }
  return { iterations: changes.length, converged, changes };
}

/** out[i] = u · point i. */
function project(pts: Float64Array, u: Float64Array, d: number, out: Float64Array): void {
  if (d === 3) {
    const u0 = u[0], u1 = u[1], u2 = u[2];
    for (let i = 0, p = 0; i < out.length; i++, p += 3) out[i] = u0 * pts[p] + u1 * pts[p + 1] + u2 * pts[p + 2];
    return;
  }
  for (let i = 0, p = 0; i < out.length; i++, p += d) {
    let v = 0;
    for (let c = 0; c < d; c++) v += u[c] * pts[p + c];
    out[i] = v;
  }
}

/** Moves every point along u by map(projection) − projection; returns Σ displacement². */
function moveAlong(pts: Float64Array, u: Float64Array, d: number, map: QuantileMap, proj?: Float64Array): number {
  let sum = 0;
  for (let i = 0, p = 0; p < pts.length; i++, p += d) {
    let v: number;
    if (proj) v = proj[i];
    else {
      v = 0;
      for (let c = 0; c < d; c++) v += u[c] * pts[p + c];
    }
    const delta = map.map(v) - v;
    sum += delta * delta;
    for (let c = 0; c < d; c++) pts[p + c] += delta * u[c];
  }
  return sum;
}
