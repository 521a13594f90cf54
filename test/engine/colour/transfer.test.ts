import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, gaussian } from '../../../src-main/engine/random.ts';
import {
  applyTransport, gaussianOf, iterativeDistributionTransfer, matchQuantiles, QuantileMap, randomRotation, transportMap,
} from '../../../src-main/engine/colour/transfer.ts';
import { ColourLattice } from '../../../src-main/engine/colour/lattice.ts';
import { symmetricFunction64 } from '../../../src-main/engine/photo/matrix-sqrt.ts';
import {
  labToRgb, labToRgbKeepL, lightness, linearToSrgb, linearToSrgbExact, rgbToLab, srgbToLinear, srgbToLinearExact,
} from '../../../src-main/engine/colour/spaces.ts';

/** n points of N(mean, L·Lᵀ) in d dimensions. */
function gaussianSample(n: number, mean: number[], L: number[][], seed: number): Float64Array {
  const r = mulberry32(seed), d = mean.length;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: d }, () => gaussian(r));
    for (let a = 0; a < d; a++) out[i * d + a] = mean[a] + L[a].reduce((s, l, b) => s + l * z[b], 0);
  }
  return out;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** 1-D W2 between two samples along direction u (sorted, resampled at min(n) quantiles). */
function slicedW2(a: Float64Array, b: Float64Array, d: number, directions: number, seed: number): number {
  const r = mulberry32(seed);
  let total = 0;
  for (let k = 0; k < directions; k++) {
    const u = randomRotation(d, r).subarray(0, d);
    const pa = Float64Array.from({ length: a.length / d }, (_, i) => u.reduce((s, x, c) => s + x * a[i * d + c], 0)).sort();
    const pb = Float64Array.from({ length: b.length / d }, (_, i) => u.reduce((s, x, c) => s + x * b[i * d + c], 0)).sort();
    const m = Math.min(pa.length, pb.length);
    let s = 0;
    for (let i = 0; i < m; i++) s += (pa[Math.floor((i * pa.length) / m)] - pb[Math.floor((i * pb.length) / m)]) ** 2;
    total += s / m;
  }
  return Math.sqrt(total / directions);
}

describe('colour spaces', () => {
  test('sRGB ↔ CIELAB: reference values and round trips', () => {
    const lab = rgbToLab(Float64Array.of(1, 1, 1, 1, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5), new Float64Array(12));
    // White is L* 100, a* = b* = 0; sRGB red is (53.24, 80.09, 67.20) (D65).
    assert.ok(Math.abs(lab[0] - 100) < 1e-3 && Math.abs(lab[1]) < 1e-3 && Math.abs(lab[2]) < 1e-3, `white: ${lab.slice(0, 3)}`);
    assert.ok(Math.abs(lab[3] - 53.24) < 0.01 && Math.abs(lab[4] - 80.09) < 0.01 && Math.abs(lab[5] - 67.2) < 0.01, `red: ${lab.slice(3, 6)}`);
    assert.ok(Math.abs(lab[6]) < 1e-6, 'black is L* 0');
    assert.ok(Math.abs(lab[9] - 53.39) < 0.01, `mid grey: ${lab[9]}`);
    const r = mulberry32(3);
    const rgb = Float32Array.from({ length: 3000 }, () => r());
    assert.ok(maxAbs(labToRgb(rgbToLab(rgb)), rgb) < 2e-5, 'round trip');
    assert.ok(maxAbs(lightness(rgb), rgbToLab(rgb).filter((_, i) => i % 3 === 0)) < 1e-4, 'lightness = L* of rgbToLab');
  });

  test('the transfer-function tables agree with the formulas', () => {
    let e1 = 0, e2 = 0;
    for (let i = 0; i <= 200000; i++) {
      const c = i / 200000;
      e1 = Math.max(e1, Math.abs(srgbToLinear(c) - srgbToLinearExact(c)));
      e2 = Math.max(e2, Math.abs(linearToSrgb(c) - linearToSrgbExact(c)));
    }
    assert.ok(e1 < 1e-7, `decode table error ${e1}`);
    assert.ok(e2 < 4e-6, `encode table error ${e2} (a 16-bit level is 1.5e-5)`);
    assert.equal(srgbToLinear(1.5), srgbToLinearExact(1.5), 'outside [0, 1] the formula');
  });

  test('labToRgbKeepL keeps L* of out-of-gamut colours and stays in gamut', () => {
    const lab = Float32Array.of(50, 120, -120, 90, -100, 100, 20, 60, 60, 70, 0, 0);
    const rgb = labToRgbKeepL(lab);
    assert.ok(rgb.every((v) => v >= 0 && v <= 1));
    const back = rgbToLab(rgb);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(back[3 * i] - lab[3 * i]) < 1e-3, `L* ${lab[3 * i]} → ${back[3 * i]}`);
    // The plain clip changes L* of the same colours.
    const clipped = rgbToLab(labToRgb(lab));
    assert.ok(Math.abs(clipped[0] - 50) > 0.5, `clipping moves L* (${clipped[0]})`);
  });
});

describe('linear Monge–Kantorovich map', () => {
  const src = gaussianSample(4000, [50, 5, -10], [[12, 0, 0], [3, 8, 0], [-2, 4, 6]], 1);
  const dst = gaussianSample(3000, [60, -20, 30], [[5, 0, 0], [-4, 15, 0], [1, 2, 9]], 2);

  test('takes a Gaussian sample to the target mean and covariance (to 1e-6)', () => {
    const gs = gaussianOf(src, 3), gt = gaussianOf(dst, 3);
    const m = transportMap(gs, gt);
    assert.equal(m.regularized, 0, 'a full-rank photo is not regularised');
    const out = applyTransport(m, Float64Array.from(src));
    const go = gaussianOf(out, 3);
    assert.ok(maxAbs(go.mean, gt.mean) < 1e-6, `mean ${go.mean} vs ${gt.mean}`);
    assert.ok(maxAbs(go.cov, gt.cov) < 1e-6 * Math.max(...gt.cov.map(Math.abs)), `covariance off by ${maxAbs(go.cov, gt.cov)}`);
    // Symmetric positive definite (the optimal map is the gradient of a convex function).
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) assert.ok(Math.abs(m.T[i * 3 + j] - m.T[j * 3 + i]) < 1e-12);
    assert.ok(m.T[0] > 0 && m.T[4] > 0 && m.T[8] > 0);
  });

  test('moves colours less than the whitening/colouring pair does', () => {
    // WCT's map Σt^½ Σs^-½ reaches the same covariance; the transport map is the one of least
    // mean squared displacement.
    const gs = gaussianOf(src, 3), gt = gaussianOf(dst, 3);
    const ot = applyTransport(transportMap(gs, gt), Float64Array.from(src));
    // Whitening/colouring through the same machinery: T' = Σt^½ Σs^-½ (not symmetric).
    const sq = (c: Float64Array, p: number) => symmetricFunction64(c, 3, (v) => v ** p, 0);
    const a = sq(gt.cov, 0.5), b = sq(gs.cov, -0.5);
    const W = new Float64Array(9);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) W[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
    const wc = applyTransport({ d: 3, T: W, from: gs.mean, to: gt.mean, regularized: 0 }, Float64Array.from(src));
    const cost = (x: Float64Array) => x.reduce((s, v, i) => s + (v - src[i]) ** 2, 0);
    assert.ok(cost(ot) < cost(wc), `transport ${cost(ot)} < whitening/colouring ${cost(wc)}`);
  });

  test('a greyscale (rank-deficient) photo and reference give a finite map', () => {
    const grey = Float64Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? (i / 3) % 100 : 0));
    const m = transportMap(gaussianOf(grey, 3), gaussianOf(dst, 3));
    assert.equal(m.regularized, 2, 'a* and b* have no spread: two eigenvalues raised to the floor');
    assert.ok(m.T.every(Number.isFinite));
    const m2 = transportMap(gaussianOf(dst, 3), gaussianOf(grey, 3));
    assert.ok(applyTransport(m2, Float64Array.from(dst)).every(Number.isFinite));
  });
});

describe('1-D quantile matching', () => {
  test('reproduces the target quantiles exactly (no ties)', () => {
    const r = mulberry32(7);
    const source = Float64Array.from({ length: 1000 }, () => r() * 50);
    const target = Float64Array.from({ length: 777 }, () => gaussian(r) * 3 + 10);
    const out = Float64Array.from(matchQuantiles(source, target)).sort();
    const st = Float64Array.from(target).sort();
    for (let i = 0; i < out.length; i++) {
      const h = (i / (out.length - 1)) * (st.length - 1), k = Math.floor(h);
      const q = k >= st.length - 1 ? st[st.length - 1] : st[k] + (h - k) * (st[k + 1] - st[k]);
      assert.equal(out[i], q, `quantile ${i}`);
    }
    // The order of the source is kept (monotone).
    const order = Array.from(source.keys()).sort((a, b) => source[a] - source[b]);
    const mapped = matchQuantiles(source, target);
    for (let i = 1; i < order.length; i++) assert.ok(mapped[order[i]] >= mapped[order[i - 1]]);
  });

  test('tied source values share one output', () => {
    const out = matchQuantiles(Float64Array.of(1, 1, 1, 2), Float64Array.of(0, 10, 20, 30));
    assert.equal(out[0], out[1]);
    assert.equal(out[1], out[2]);
    assert.equal(out[0], 10, 'mean of the quantiles 0, 10, 20');
    assert.equal(out[3], 30);
  });

  test('QuantileMap: monotone, merges equal knots, slope 1 outside', () => {
    const src = Float64Array.of(0, 0, 0, 1, 2, 3, 4).sort(), dst = Float64Array.of(10, 11, 12, 13, 20, 30, 40).sort();
    const m = new QuantileMap(src, dst, 7);
    assert.ok(m.xs.every((x, i) => i === 0 || x > m.xs[i - 1]), 'knots strictly increasing');
    assert.equal(m.map(-1), m.ys[0] - 1);
    assert.equal(m.map(5), m.ys[m.ys.length - 1] + 1);
    let prev = -Infinity;
    for (let x = -2; x <= 6; x += 0.01) {
      const y = m.map(x);
      assert.ok(y >= prev - 1e-12);
      prev = y;
    }
  });
});

describe('iterative distribution transfer', () => {
  test('matches a non-Gaussian target that the linear map cannot', () => {
    // Source: one Gaussian blob; target: two blobs (bimodal), same mean and covariance roughly.
    const src = gaussianSample(6000, [0, 0, 0], [[10, 0, 0], [0, 10, 0], [0, 0, 10]], 11);
    const a = gaussianSample(3000, [-12, 0, 0], [[3, 0, 0], [0, 6, 0], [0, 0, 6]], 12);
    const b = gaussianSample(3000, [12, 0, 0], [[3, 0, 0], [0, 6, 0], [0, 0, 6]], 13);
    const dst = new Float64Array(a.length + b.length);
    dst.set(a);
    dst.set(b, a.length);
    const linear = applyTransport(transportMap(gaussianOf(src, 3), gaussianOf(dst, 3)), Float64Array.from(src));
    const moved = Float64Array.from(linear);
    const probe = Float64Array.from(linear.subarray(0, 30)); // carried points that equal sample points
    const rep = iterativeDistributionTransfer(moved, dst, 3, [probe], { seed: 1 });
    const before = slicedW2(linear, dst, 3, 32, 5), after = slicedW2(moved, dst, 3, 32, 5);
    assert.ok(after < 0.3 * before, `sliced W2 ${before.toFixed(2)} → ${after.toFixed(2)}`);
    assert.ok(rep.iterations >= 2 && rep.iterations <= 30 && rep.converged, JSON.stringify(rep));
    assert.equal(rep.changes.length, rep.iterations);
    assert.ok(maxAbs(probe, moved.subarray(0, 30)) < 1e-9, 'carried points follow the same maps');
  });

  test('pin keeps a channel', () => {
    const src = gaussianSample(2000, [50, 0, 0], [[10, 0, 0], [2, 5, 0], [0, 1, 5]], 21);
    const dst = gaussianSample(2000, [60, 10, -10], [[8, 0, 0], [-3, 9, 0], [2, 0, 4]], 22);
    const moved = Float64Array.from(src);
    iterativeDistributionTransfer(moved, dst, 3, [], { seed: 2, pin: 0 });
    for (let i = 0; i < 2000; i++) assert.equal(moved[3 * i], src[3 * i]);
    assert.ok(maxAbs(moved, src) > 1, 'the other channels moved');
    assert.throws(() => iterativeDistributionTransfer(moved, dst, 3, [], { pin: 3 }), /cannot pin/);
  });

  test('deterministic for a seed', () => {
    const src = gaussianSample(500, [0, 0], [[3, 0], [1, 2]], 31), dst = gaussianSample(500, [5, 5], [[1, 0], [0, 4]], 32);
    const a = Float64Array.from(src), b = Float64Array.from(src);
    iterativeDistributionTransfer(a, dst, 2, [], { seed: 9 });
    iterativeDistributionTransfer(b, dst, 2, [], { seed: 9 });
    assert.deepEqual(a, b);
  });
});

describe('colour lattice', () => {
  test('reproduces an affine map exactly (3-D and 2-D) and clamps to its box', () => {
    for (const d of [2, 3] as const) {
      const lat = new ColourLattice(d === 3 ? [0, -50, -60] : [-50, -60], d === 3 ? [100, 70, 40] : [70, 40], 9);
      const nodes = lat.nodes();
      const T = d === 3 ? [1.2, 0.1, -0.3, 0.05, 0.9, 0.2, 0, -0.1, 1.1] : [1.2, 0.1, -0.3, 0.9];
      const f = (x: ArrayLike<number>, o: number, out: Float64Array, p: number) => {
        for (let i = 0; i < d; i++) {
          let v = 3 * i + 1;
          for (let k = 0; k < d; k++) v += T[i * d + k] * x[o + k];
          out[p + i] = v;
        }
      };
      const values = new Float64Array(nodes.length);
      for (let i = 0; i < nodes.length; i += d) f(nodes, i, values, i);
      const r = mulberry32(d);
      const pts = Float64Array.from({ length: 600 }, (_, i) => (d === 3 ? [r() * 100, r() * 120 - 50, r() * 100 - 60][i % 3] : [r() * 120 - 50, r() * 100 - 60][i % 2]));
      const got = new Float64Array(pts.length), want = new Float64Array(pts.length);
      lat.apply(values, pts, got, d, 0);
      for (let i = 0; i < pts.length; i += d) f(pts, i, want, i);
      assert.ok(maxAbs(got, want) < 1e-9, `${d}-D: ${maxAbs(got, want)}`);
    }
    const lat = new ColourLattice([0, 0], [1, 1], 2);
    const out = new Float64Array(2);
    lat.apply(lat.nodes(), Float64Array.of(5, -5), out, 2, 0);
    assert.deepEqual(Array.from(out), [1, 0]);
    assert.throws(() => new ColourLattice([0], [1], 4), /2-D or 3-D/);
  });
});
