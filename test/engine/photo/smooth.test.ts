import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inv } from 'mathjs';
import type { RgbImage } from '../../../src-main/engine/image.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { CancelledError, StudioError } from '../../../src-main/errors.ts';
import {
  MATTING_EPS, SLOTS, SLOT_DX, SLOT_DY, affinityWeight, gaussianAffinity, mattingAffinity, padReplicate,
} from '../../../src-main/engine/photo/affinity.ts';
import { smooth } from '../../../src-main/engine/photo/smooth.ts';
import { GUIDED_FILTER_DEFAULTS, guidedFilter } from '../../../src-main/engine/photo/guided-filter.ts';
import { scene } from './scenes.ts';

function randomImage(w: number, h: number, seed: number): RgbImage {
  const rng = mulberry32(seed);
  return { width: w, height: h, data: Float32Array.from({ length: w * h * 3 }, () => rng()) };
}

/** The scene with stripes and less noise, as these tests were written against. */
const sceneImage = (w: number, h: number, seed: number): RgbImage => scene(w, h, seed, { stripes: true, noise: 0.02 });

/** A "stylised" version: shifted colours plus pixel noise that smoothing should remove. */
function stylizedOf(img: RgbImage, seed: number): RgbImage {
  const rng = mulberry32(seed);
  const data = Float32Array.from(img.data, (v, k) => {
    const c = k % 3;
    const shifted = c === 0 ? 0.8 * v + 0.15 : c === 1 ? 0.6 * v + 0.3 * img.data[k + 1] : 0.9 * (1 - v) * 0.7 + 0.1;
    return Math.min(1, Math.max(0, shifted + 0.15 * (rng() - 0.5)));
  });
  return { width: img.width, height: img.height, data };
}

/** Independent reference: the dense matting affinity, window by window, with mathjs's 3×3 inverse. */
function denseMatting(img: RgbImage, eps = MATTING_EPS): number[][] {
  const { width: w, height: h, data } = img;
  const n = w * h;
  const W = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let cy = 1; cy < h - 1; cy++) {
    for (let cx = 1; cx < w - 1; cx++) {
      const idx: number[] = [];
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) idx.push((cy + dy) * w + cx + dx);
      const col = (i: number) => [data[3 * i], data[3 * i + 1], data[3 * i + 2]];
      const mu = [0, 1, 2].map((c) => idx.reduce((s, i) => s + col(i)[c], 0) / 9);
      const cov = [0, 1, 2].map((a) => [0, 1, 2].map((b) => idx.reduce((s, i) => s + (col(i)[a] - mu[a]) * (col(i)[b] - mu[b]), 0) / 9 + (a === b ? eps / 9 : 0)));
      const M = inv(cov) as number[][];
      for (const i of idx) {
        const di = col(i).map((v, c) => v - mu[c]);
        for (const j of idx) {
          const dj = col(j).map((v, c) => v - mu[c]);
          let q = 0;
          for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) q += di[a] * M[a][b] * dj[b];
          W[i][j] += (1 + q) / 9;
        }
      }
    }
  }
  return W;
}

function pad2(img: RgbImage, p: number): RgbImage {
  const { width: w, height: h } = img;
  const W = w + 2 * p, H = h + 2 * p;
  const data = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const sx = Math.min(w - 1, Math.max(0, x - p)), sy = Math.min(h - 1, Math.max(0, y - p));
    for (let c = 0; c < 3; c++) data[3 * (y * W + x) + c] = img.data[3 * (sy * w + sx) + c];
  }
  return { width: W, height: H, data };
}

/** Solves the SPD system A x = b (A dense n×n, overwritten by its Cholesky factor) for each right-hand side. */
function choleskySolve(A: Float64Array, n: number, rhs: Float64Array[]): Float64Array[] {
  for (let j = 0; j < n; j++) {
    let s = A[j * n + j];
    for (let k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
    const l = Math.sqrt(s);
    A[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let v = A[i * n + j];
      for (let k = 0; k < j; k++) v -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = v / l;
    }
  }
  return rhs.map((b) => {
    const y = new Float64Array(n), x = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let v = b[i];
      for (let k = 0; k < i; k++) v -= A[i * n + k] * y[k];
      y[i] = v / A[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let v = y[i];
      for (let k = i + 1; k < n; k++) v -= A[k * n + i] * x[k];
      x[i] = v / A[i * n + i];
    }
    return x;
  });
}

/** Dense solve of (I − α D^-1/2 W D^-1/2) R = (1 − α) Y for the 3 channels of Y (n pixels). */
function denseSolve(W: number[][], Y: Float32Array, alpha: number): Float64Array[] {
  const n = W.length;
  const d = W.map((row) => row.reduce((s, v) => s + v, 0));
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = (i === j ? 1 : 0) - alpha * W[i][j] / Math.sqrt(d[i] * d[j]);
  const rhs = [0, 1, 2].map((c) => Float64Array.from({ length: n }, (_, i) => (1 - alpha) * Y[3 * i + c]));
  return choleskySolve(A, n, rhs);
}

/** Dense reference of the whole smoothing step: pad 2, solve, crop, clamp. */
function denseSmooth(content: RgbImage, stylized: RgbImage, alpha: number, W: number[][]): Float64Array {
  const pw = content.width + 4;
  const x = denseSolve(W, pad2(stylized, 2).data, alpha);
  const out = new Float64Array(content.width * content.height * 3);
  for (let c = 0; c < 3; c++) {
    for (let yy = 0; yy < content.height; yy++) for (let xx = 0; xx < content.width; xx++) {
      out[3 * (yy * content.width + xx) + c] = Math.min(1, Math.max(0, x[c][(yy + 2) * pw + xx + 2]));
    }
  }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('matting affinity', () => {
  const img = randomImage(6, 7, 1);
  const aff = mattingAffinity(img);
  const dense = denseMatting(img);
  const n = 6 * 7;

  test('every stencil entry equals the window-by-window computation (mathjs inverse)', () => {
    let checked = 0;
    for (let i = 0; i < n; i++) {
      const x = i % 6, y = Math.floor(i / 6);
      for (let j = 0; j < n; j++) {
        const dx = (j % 6) - x, dy = Math.floor(j / 6) - y;
        const ref = dense[i][j];
        if (Math.abs(dx) > 2 || Math.abs(dy) > 2) {
          assert.equal(ref, 0, `pairs further than 2 apart share no window (${i}, ${j})`);
          continue;
        }
        const got = affinityWeight(aff, x, y, dx, dy);
        assert.ok(Math.abs(got - ref) <= 1e-9 * Math.max(1, Math.abs(ref)), `w(${i}, ${j}) = ${got}, direct ${ref}`);
        checked++;
      }
    }
    assert.ok(checked > 500);
  });

  test('W is symmetric and d is its row sums (= number of windows holding the pixel)', () => {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) assert.ok(Math.abs(dense[i][j] - dense[j][i]) < 1e-9);
      const x = i % 6, y = Math.floor(i / 6);
      let s = 0;
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
        s += affinityWeight(aff, x, y, dx, dy);
        assert.equal(affinityWeight(aff, x, y, dx, dy), affinityWeight(aff, x + dx, y + dy, -dx, -dy));
      }
      assert.ok(Math.abs(s - aff.degree[i]) < 1e-9);
      const windows = [x - 1, x, x + 1].filter((c) => c >= 1 && c <= 4).length * [y - 1, y, y + 1].filter((c) => c >= 1 && c <= 5).length;
      assert.ok(Math.abs(aff.degree[i] - windows) < 1e-6, `d_${i} = ${aff.degree[i]}, windows ${windows}`);
    }
  });

  test('pairs across the left or right edge are stored as zeros', () => {
    for (let s = 1; s < SLOTS; s++) {
      for (let i = 0; i < n; i++) {
        const x = i % 6 + SLOT_DX[s], y = Math.floor(i / 6) + SLOT_DY[s];
        if (x < 0 || x >= 6 || y >= 7) assert.equal(aff.weights[s * n + i], 0);
      }
    }
  });

  test('Gaussian affinity: exp(−‖ΔI‖²/σ²) between 8-neighbours, none to itself', () => {
    const g = gaussianAffinity(img, { sigma: 0.3 });
    for (let i = 0; i < n; i++) {
      const x = i % 6, y = Math.floor(i / 6);
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
        const x2 = x + dx, y2 = y + dy;
        if (x2 < 0 || x2 >= 6 || y2 < 0 || y2 >= 7) continue;
        const j = y2 * 6 + x2;
        let d2 = 0;
        for (let c = 0; c < 3; c++) d2 += (img.data[3 * i + c] - img.data[3 * j + c]) ** 2;
        const ref = (dx === 0 && dy === 0) || Math.abs(dx) > 1 || Math.abs(dy) > 1 ? 0 : Math.exp(-d2 / 0.09);
        assert.ok(Math.abs(affinityWeight(g, x, y, dx, dy) - ref) < 1e-12);
      }
    }
  });

  test('replicate padding copies the edge pixels outward', () => {
    const p = padReplicate(img, 2);
    assert.deepEqual([p.width, p.height], [10, 11]);
    assert.deepEqual(Array.from(p.data.subarray(0, 3)), Array.from(img.data.subarray(0, 3)));
    assert.deepEqual(Array.from(p.data), Array.from(pad2(img, 2).data));
  });
});

describe('smoothing', () => {
  const content = sceneImage(32, 32, 7);
  const stylized = stylizedOf(content, 8);
  const W = denseMatting(pad2(content, 2));

  for (const alpha of [0.9999, 0.99]) {
    test(`32×32 equals a dense Cholesky solve of the same system (α = ${alpha})`, () => {
      const ref = denseSmooth(content, stylized, alpha, W);
      for (const preconditioner of ['multigrid', 'jacobi'] as const) {
        const r = smooth(content, stylized, { alpha, preconditioner, maxIter: 3000 });
        assert.ok(r.converged, `${preconditioner}: residual ${r.residual} after ${r.iterations}`);
        const diff = maxDiff(r.image.data, ref);
        assert.ok(diff < 1e-4, `${preconditioner}: max |Δ| = ${diff}`);
        assert.ok(diff < 1e-5, `${preconditioner}: max |Δ| = ${diff} (tolerance 1e-7 bounds the error by ~3e-6)`);
      }
    });
  }

  test('the stopping rule keeps the 8-bit output equal to a solve run to 1e-10', () => {
    const c = sceneImage(80, 56, 3), s = stylizedOf(c, 4);
    const r = smooth(c, s);
    const tight = smooth(c, s, { tol: 1e-10, maxIter: 2000 });
    assert.ok(tight.converged && tight.residual <= 1e-10);
    assert.ok(r.iterations < tight.iterations);
    const q8 = (v: number) => Math.round(v * 255);
    let differ = 0;
    for (let k = 0; k < r.image.data.length; k++) if (q8(r.image.data[k]) !== q8(tight.image.data[k])) differ++;
    assert.equal(differ, 0);
    assert.ok(maxDiff(r.image.data, tight.image.data) < 1e-6);
  });

  test('smoothing removes the noise of the stylised image but keeps its colours', () => {
    const r = smooth(content, stylized);
    const tv = (d: ArrayLike<number>) => {
      let s = 0;
      for (let y = 0; y < 32; y++) for (let x = 1; x < 32; x++) for (let c = 0; c < 3; c++) s += Math.abs(d[3 * (y * 32 + x) + c] - d[3 * (y * 32 + x - 1) + c]);
      return s;
    };
    const mean = (d: ArrayLike<number>) => Array.from(d).reduce((a, b) => a + b, 0) / d.length;
    assert.ok(tv(r.image.data) < 0.5 * tv(stylized.data));
    assert.ok(Math.abs(mean(r.image.data) - mean(stylized.data)) < 0.02);
  });

  test('Gaussian affinity and no padding also match the dense solve of their system', () => {
    const c = sceneImage(12, 10, 5), s = stylizedOf(c, 6);
    const r = smooth(c, s, { affinity: 'gaussian', pad: 0, alpha: 0.999 });
    const aff = gaussianAffinity(c);
    const n = 120;
    const Wd = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => affinityWeight(aff, i % 12, Math.floor(i / 12), (j % 12) - (i % 12), Math.floor(j / 12) - Math.floor(i / 12))));
    const x = denseSolve(Wd, s.data, 0.999);
    for (let c2 = 0; c2 < 3; c2++) {
      for (let i = 0; i < n; i++) assert.ok(Math.abs(r.image.data[3 * i + c2] - Math.min(1, Math.max(0, x[c2][i]))) < 1e-5);
    }
  });

  test('progress is reported per iteration and cancellation stops the solve', () => {
    const seen: number[] = [];
    smooth(content, stylized, { onProgress: (p) => { seen.push(p.iteration); assert.ok(p.fraction >= 0 && p.fraction <= 1); } });
    assert.ok(seen.length > 3);
    assert.deepEqual(seen, seen.map((_, i) => i + 1));
    let calls = 0;
    assert.throws(
      () => smooth(content, stylized, { checkCancelled: () => { if (++calls === 3) throw new CancelledError(); } }),
      (e: unknown) => e instanceof CancelledError,
    );
    assert.throws(() => smooth(content, stylized, { checkCancelled: () => true }), (e: unknown) => e instanceof CancelledError);
  });

  test('tiny images: a 1×1 image and a 3×2 one', () => {
    // With D^-1/2 W D^-1/2 (the reference's normalisation) a constant image is not a fixed point
    // where degrees vary: the 5×5 padded 1×1 image comes back brighter by √9·Σ√d/Σd ≈ 1.59.
    const one = { width: 1, height: 1, data: Float32Array.of(0.2, 0.4, 0.3) };
    const r = smooth(one, one);
    assert.equal(r.image.data.length, 3);
    assert.ok(r.converged);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(r.image.data[c] / one.data[c] - r.image.data[0] / one.data[0]) < 1e-5);
    const small = sceneImage(3, 2, 1);
    const s = smooth(small, stylizedOf(small, 2));
    assert.equal(s.image.data.length, 18);
    assert.ok(s.converged && s.image.data.every((v) => v >= 0 && v <= 1));
  });

  test('bad sizes and options are StudioError BAD_ARGUMENT', () => {
    const isBad = (e: unknown) => e instanceof StudioError && e.code === 'BAD_ARGUMENT';
    assert.throws(() => smooth(content, sceneImage(31, 32, 1)), isBad);
    assert.throws(() => smooth(content, { width: 32, height: 32, data: new Float32Array(10) }), isBad);
    assert.throws(() => smooth({ width: 0, height: 0, data: new Float32Array(0) }, { width: 0, height: 0, data: new Float32Array(0) }), isBad);
    assert.throws(() => smooth(content, stylized, { alpha: 1 }), isBad);
    assert.throws(() => smooth(content, stylized, { tol: 0 }), isBad);
    assert.throws(() => smooth(content, stylized, { maxIter: 0 }), isBad);
    assert.throws(() => smooth(content, stylized, { pad: -1 }), isBad);
  });
});

describe('guided filter', () => {
  /** Brute force: every window's statistics summed directly. */
  function bruteForce(I: RgbImage, p: RgbImage, r: number, eps: number): Float64Array {
    const { width: w, height: h } = I;
    const A = Array.from({ length: w * h }, () => new Float64Array(12));
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const px: number[] = [];
      for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) px.push(yy * w + xx);
      const m = px.length;
      const mu = [0, 1, 2].map((c) => px.reduce((s, i) => s + I.data[3 * i + c], 0) / m);
      const S = [0, 1, 2].map((a) => [0, 1, 2].map((b) => px.reduce((s, i) => s + (I.data[3 * i + a] - mu[a]) * (I.data[3 * i + b] - mu[b]), 0) / m + (a === b ? eps : 0)));
      const Si = inv(S) as number[][];
      for (let ch = 0; ch < 3; ch++) {
        const mp = px.reduce((s, i) => s + p.data[3 * i + ch], 0) / m;
        const cv = [0, 1, 2].map((a) => px.reduce((s, i) => s + (I.data[3 * i + a] - mu[a]) * (p.data[3 * i + ch] - mp), 0) / m);
        const a = [0, 1, 2].map((k) => Si[k][0] * cv[0] + Si[k][1] * cv[1] + Si[k][2] * cv[2]);
        A[y * w + x].set(a, 3 * ch);
        A[y * w + x][9 + ch] = mp - a[0] * mu[0] - a[1] * mu[1] - a[2] * mu[2];
      }
    }
    const out = new Float64Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const acc = new Float64Array(12);
      let m = 0;
      for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
        m++;
        for (let k = 0; k < 12; k++) acc[k] += A[yy * w + xx][k];
      }
      const i = y * w + x;
      for (let ch = 0; ch < 3; ch++) {
        const v = (acc[3 * ch] * I.data[3 * i] + acc[3 * ch + 1] * I.data[3 * i + 1] + acc[3 * ch + 2] * I.data[3 * i + 2] + acc[9 + ch]) / m;
        out[3 * i + ch] = Math.min(1, Math.max(0, v));
      }
    }
    return out;
  }

  const guide = sceneImage(13, 11, 2);
  const src = stylizedOf(guide, 3);

  test('matches a brute-force window-by-window filter', () => {
    for (const [r, eps] of [[1, 1e-2], [2, 1e-3], [4, 1e-4], [20, 1e-2]] as const) {
      const got = guidedFilter(guide, src, { radius: r, eps });
      const diff = maxDiff(got.data, bruteForce(guide, src, r, eps));
      assert.ok(diff < 1e-5, `r=${r} eps=${eps}: max |Δ| = ${diff}`);
    }
  });

  test('a constant image stays constant', () => {
    const flat = { width: 13, height: 11, data: new Float32Array(13 * 11 * 3).fill(0.37) };
    const got = guidedFilter(guide, flat, { radius: 3, eps: 1e-4 });
    assert.ok(maxDiff(got.data, flat.data) < 1e-6);
  });

  test('guided by itself with a tiny ε it is the identity', () => {
    const img = randomImage(20, 16, 9);
    const got = guidedFilter(img, img, { radius: 3, eps: 1e-8 });
    assert.ok(maxDiff(got.data, img.data) < 1e-4);
    const fps = guidedFilter(img, img, GUIDED_FILTER_DEFAULTS);
    assert.ok(maxDiff(fps.data, img.data) < 1e-4);
  });

  test('radius 0 returns the source', () => {
    const got = guidedFilter(guide, src, { radius: 0, eps: 1e-3 });
    assert.deepEqual(Array.from(got.data), Array.from(src.data));
  });

  test('different sizes and bad options are StudioError BAD_ARGUMENT', () => {
    const isBad = (e: unknown) => e instanceof StudioError && e.code === 'BAD_ARGUMENT';
    assert.throws(() => guidedFilter(guide, sceneImage(12, 11, 1), { radius: 2, eps: 1e-3 }), isBad);
    assert.throws(() => guidedFilter(guide, src, { radius: -1, eps: 1e-3 }), isBad);
    assert.throws(() => guidedFilter(guide, src, { radius: 1.5, eps: 1e-3 }), isBad);
    assert.throws(() => guidedFilter(guide, src, { radius: 2, eps: -1 }), isBad);
  });
});
