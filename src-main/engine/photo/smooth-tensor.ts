/**
 * The closed-form smoothing solve of smooth.ts as tensor operations, for GPU backends:
 *
 *   (I − αS) R = (1 − α) Y,   S = D^-1/2 W D^-1/2,
 *
 * by Jacobi-preconditioned conjugate gradients warm-started from Y, every vector and scalar on the
 * device. The multigrid preconditioner of smooth.ts is a chain of sequential sweeps and irregular
 * transfers that does not map onto tensor ops; Jacobi needs ~15× more iterations but each is a
 * handful of large, regular kernels, which is what a GPU runs well.
 *
 * Stencil product. The 25 coefficients of every pixel (the 5×5 stencil of affinity.ts, both
 * directions) are a [H, W, 25] tensor. A x is formed per stencil row dy: a depthwise convolution with
 * one-hot filters gathers x at the five offsets (dy, −2..2) of every pixel ([H, W, 3·5]),
 * which is multiplied by that row's coefficients and summed. Five groups keep the gathered tensor at
 * 15 channels (75 at once would be 300 MB at 1024×640).
 *
 * Precision. GPUs compute in float32, and in float32 this system cannot be solved to the accuracy an
 * exact 8-bit result needs: the right-hand side (1 − α)Y is 1e4 times smaller than the terms of
 * A x that cancel to give it, so the residual stalls near 1e-3 relative (measured: 0.015 after 5000
 * iterations at 32×32). So the solve is mixed-precision iterative refinement: the solution and the
 * residual b − A x live in float64 on the CPU (one O(N) stencil pass per round), and only the
 * corrections A e = r are solved on the device, in float32, each to a relative 1e-3. Rounds repeat
 * until the float64 residual meets smooth.ts's stopping rule (tol 1e-7), so the result is the same.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RgbImage } from '../image.ts';
import { CancelledError, StudioError } from '../../errors.ts';
import { SLOTS, SLOT_DX, SLOT_DY, gaussianAffinity, mattingAffinity, padReplicate } from './affinity.ts';
import { buildSystem, cropClamp, smoothSettings, type SmoothProgress, type SolverLevel } from './smooth.ts';

/** Inner residual norms are read back (one small download) every this many iterations. */
const CHECK_EVERY = 10;
/**
 * Each float32 correction solve stops at this relative residual: float32 cannot go much below
 * (its rounding of A e is ~1e-7·cond, cond ≈ 1/(1 − α) = 1e4), and each refinement round then gains
 * three digits.
 */
const INNER_TOL = 1e-3;

export const TENSOR_SMOOTH_DEFAULTS = { tol: 1e-7, maxIter: 20000 } as const;

export interface TensorSolveOptions {
  tol?: number;
  maxIter?: number;
  onProgress?: (p: SmoothProgress) => void;
  checkCancelled?: () => void | boolean;
}

export interface TensorSolveResult {
  /** The solution on the padded grid, HWC, float32. */
  x: Float32Array;
  iterations: number;
  residual: number;
}

/**
 * The 25 stencil coefficients of every pixel of a level-0 system ([H, W, 25], offset t = 5·(dy+2) +
 * (dx+2)), from its 13 stored forward slots (the backward ones are read at the other pixel).
 */
export function stencilCoefficients(L: SolverLevel): Float32Array {
  const { w, h, n, a } = L;
  const out = new Float32Array(n * 25);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      for (let s = 0; s < SLOTS; s++) {
        const dy = SLOT_DY[s], dx = SLOT_DX[s];
        // Forward: (i, i + off) stored at i.
        if (y + dy < h && x + dx >= 0 && x + dx < w) out[25 * i + 5 * (dy + 2) + dx + 2] = a[s * n + i];
        // Backward: (i, i − off) stored at i − off (the centre only once).
        if (s > 0 && y - dy >= 0 && x - dx >= 0 && x - dx < w) out[25 * i + 5 * (2 - dy) + 2 - dx] = a[s * n + i - (dy * w + dx)];
      }
    }
  }
  return out;
}

/**
 * y = A x in float64 on the CPU (the residuals of the outer refinement), from the 13 stored slots:
 * each forward weight is applied in both directions.
 */
export function stencilProduct(L: SolverLevel, x: Float64Array, y: Float64Array): void {
  const { w, h, n, a } = L;
  for (let i = 0; i < n; i++) {
    const v = a[i];
    y[3 * i] = v * x[3 * i]; y[3 * i + 1] = v * x[3 * i + 1]; y[3 * i + 2] = v * x[3 * i + 2];
  }
  for (let s = 1; s < SLOTS; s++) {
    const dy = SLOT_DY[s], dx = SLOT_DX[s], off = dy * w + dx;
    for (let yy = 0; yy + dy < h; yy++) {
      for (let xx = Math.max(0, -dx); xx < Math.min(w, w - dx); xx++) {
        const i = yy * w + xx, j = i + off, v = a[s * n + i];
        if (v === 0) continue;
        y[3 * i] += v * x[3 * j]; y[3 * i + 1] += v * x[3 * j + 1]; y[3 * i + 2] += v * x[3 * j + 2];
        y[3 * j] += v * x[3 * i]; y[3 * j + 1] += v * x[3 * i + 1]; y[3 * j + 2] += v * x[3 * i + 2];
      }
    }
  }
}

/**
 * Solves L.a x = (1 − α)·y for the three channels of `y` (the padded stylised image, HWC), x₀ = y.
 * Mixed-precision iterative refinement: the residual b − A x and the solution are kept in float64
 * on the CPU; each correction A e = r is solved in float32 on the backend to INNER_TOL. Tensors are
 * all released, also on cancel or failure.
 */
export async function solveWithTensors(L: SolverLevel, y: Float32Array, alpha: number, opts: TensorSolveOptions = {}): Promise<TensorSolveResult> {
  const tol = opts.tol ?? TENSOR_SMOOTH_DEFAULTS.tol;
  const maxIter = opts.maxIter ?? TENSOR_SMOOTH_DEFAULTS.maxIter;
  if (!(tol > 0)) throw new StudioError('BAD_ARGUMENT', `tol must be positive, got ${tol}`);
  const { w, h, n } = L;
  const N = 3 * n;
  const x = Float64Array.from(y);
  const b = Float64Array.from(y, (v) => (1 - alpha) * v);
  const Ax = new Float64Array(N), r = new Float64Array(N);
  const bn = [0, 0, 0];
  for (let k = 0; k < N; k++) bn[k % 3] += b[k] * b[k];
  const nb = bn.map((v) => (v > 0 ? Math.sqrt(v) : 1)); // a zero channel: absolute residual
  const residual = (): { rel: number; norms: number[] } => {
    stencilProduct(L, x, Ax);
    const s = [0, 0, 0];
    for (let k = 0; k < N; k++) {
      r[k] = b[k] - Ax[k];
      s[k % 3] += r[k] * r[k];
    }
    const norms = s.map(Math.sqrt);
    return { rel: Math.max(norms[0] / nb[0], norms[1] / nb[1], norms[2] / nb[2]), norms };
  };

  const coeff = stencilCoefficients(L);
  const held: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    held.push(t);
    return tf.keep(t);
  };
  try {
    // Per stencil row dy: one-hot depthwise filters [5, 5, 3, 5] picking (dy, dx) for dx = −2..2,
    // and that row's coefficients [H, W, 1, 5].
    const filters: tf.Tensor4D[] = [];
    const rows: tf.Tensor4D[] = [];
    const full = keep(tf.tensor3d(coeff, [h, w, 25]));
    for (let q = 0; q < 5; q++) {
      const f = new Float32Array(5 * 5 * 3 * 5);
      for (let c = 0; c < 3; c++) for (let m = 0; m < 5; m++) f[((q * 5 + m) * 3 + c) * 5 + m] = 1;
      filters.push(keep(tf.tensor4d(f, [5, 5, 3, 5])));
      rows.push(keep(tf.tidy(() => tf.reshape(tf.slice(full, [0, 0, 5 * q], [h, w, 5]), [h, w, 1, 5]))));
    }
    const dinv = keep(tf.tidy(() => tf.reshape(tf.div(1, tf.slice(full, [0, 0, 12], [h, w, 1])), [1, h, w, 1])));
    const A = (v: tf.Tensor4D): tf.Tensor4D => tf.tidy(() => {
      let acc: tf.Tensor | undefined;
      for (let q = 0; q < 5; q++) {
        // Output channel c·5 + m = v[y + dy, x + dx_m, c] (zero outside the image).
        const g = tf.reshape(tf.depthwiseConv2d(v, filters[q], 1, 'same'), [h, w, 3, 5]);
        const part = tf.sum(tf.mul(g, rows[q]), 3);
        acc = acc ? tf.add(acc, part) : part;
      }
      return tf.reshape(acc!, [1, h, w, 3]);
    });
    const dot = (u: tf.Tensor, v: tf.Tensor): tf.Tensor1D => tf.tidy(() => tf.reshape(tf.sum(tf.mul(u, v), [0, 1, 2]), [3]));

    let { rel, norms } = residual();
    const rel0 = rel;
    let it = 0;
    const report = (): void => opts.onProgress?.({
      stage: 'smoothing', iteration: it, residual: rel,
      fraction: rel <= tol ? 1 : Math.max(0, Math.min(1, Math.log(rel0 / rel) / Math.log(rel0 / tol))),
    });
    while (rel > tol && it < maxIter) {
      // The correction's right-hand side, each channel scaled to unit norm (float32's range).
      const scale = norms.map((v) => (v > 0 ? v : 1));
      const rhs = new Float32Array(N);
      for (let k = 0; k < N; k++) rhs[k] = r[k] / scale[k % 3];
      const e = await innerSolve(tf.tensor4d(rhs, [1, h, w, 3]), A, dot, dinv, INNER_TOL, maxIter - it, opts, (k) => {
        it += k;
      });
      for (let k = 0; k < N; k++) x[k] += scale[k % 3] * e[k];
      ({ rel, norms } = residual());
      report();
    }
    return { x: Float32Array.from(x), iterations: it, residual: rel };
  } finally {
    tf.dispose(held);
  }
}

/**
 * Jacobi-PCG for A e = rhs from e = 0 in float32 tensors until ‖r‖ ≤ innerTol·‖rhs‖ (‖rhs‖ = 1 per
 * channel), or `budget` iterations. Takes ownership of `rhs`.
 */
async function innerSolve(
  rhs: tf.Tensor4D, A: (v: tf.Tensor4D) => tf.Tensor4D, dot: (u: tf.Tensor, v: tf.Tensor) => tf.Tensor1D, dinv: tf.Tensor,
  innerTol: number, budget: number, opts: TensorSolveOptions, count: (k: number) => void,
): Promise<Float32Array> {
  let e: tf.Tensor = tf.zerosLike(rhs);
  let r: tf.Tensor = rhs;
  let z: tf.Tensor = tf.mul(r, dinv);
  let p: tf.Tensor = tf.clone(z);
  let rz: tf.Tensor = dot(r, z);
  const replace = (old: tf.Tensor, next: tf.Tensor): tf.Tensor => {
    old.dispose();
    return next;
  };
  try {
    for (let k = 1; k <= budget; k++) {
      if (opts.checkCancelled?.() === true) throw new CancelledError();
      const q = A(p as tf.Tensor4D);
      const pq = dot(p, q);
      // Per-channel step; a channel already solved (p·q = 0) takes none.
      const step = tf.tidy(() => tf.where(tf.greater(pq, 0), tf.div(rz, pq), tf.zerosLike(pq)));
      e = replace(e, tf.tidy(() => tf.add(e, tf.mul(p, step))));
      r = replace(r, tf.tidy(() => tf.sub(r, tf.mul(q, step))));
      tf.dispose([q, pq, step]);
      if (k % CHECK_EVERY === 0 || k === budget) {
        const t = tf.tidy(() => tf.max(tf.sqrt(dot(r, r))));
        const v = (await t.data())[0];
        t.dispose();
        if (v <= innerTol || k === budget) {
          count(k);
          break;
        }
      }
      z = replace(z, tf.mul(r, dinv));
      const rzNext = dot(r, z);
      const beta = tf.tidy(() => tf.where(tf.greater(rz, 0), tf.div(rzNext, rz), tf.zerosLike(rz)));
      rz = replace(rz, rzNext);
      p = replace(p, tf.tidy(() => tf.add(z, tf.mul(p, beta))));
      beta.dispose();
    }
    return (await e.data()) as Float32Array;
  } finally {
    tf.dispose([e, r, z, p, rz]);
  }
}

export interface TensorSmoothOptions extends TensorSolveOptions {
  alpha?: number;
  affinity?: 'matting' | 'gaussian';
  sigma?: number;
  pad?: number;
}

/**
 * smooth() of smooth.ts with the solve on the compute backend: the same padding, affinity and
 * system (built on the CPU, O(N)), then solveWithTensors.
 */
export async function smoothWithTensors(content: RgbImage, stylized: RgbImage, opts: TensorSmoothOptions = {}): Promise<{ image: RgbImage; iterations: number; residual: number; converged: boolean; ms: number }> {
  const t0 = performance.now();
  const { alpha, tol, pad, kind } = smoothSettings(content, stylized, opts, TENSOR_SMOOTH_DEFAULTS.maxIter);
  const pc = padReplicate(content, pad);
  const ps = padReplicate(stylized, pad);
  const aff = kind === 'matting' ? mattingAffinity(pc) : gaussianAffinity(pc, { sigma: opts.sigma });
  const sys = buildSystem(aff, alpha);
  const res = await solveWithTensors(sys, ps.data, alpha, { ...opts, tol });
  return {
    image: cropClamp(res.x, pc.width, content.width, content.height, pad),
    iterations: res.iterations,
    residual: res.residual,
    converged: res.residual <= tol,
    ms: performance.now() - t0,
  };
}
