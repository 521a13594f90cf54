/**
 * Square root and inverse square root of a symmetric positive (semi-)definite matrix, for WCT's
 * whitening (C^{-1/2}) and colouring (C^{1/2}) matrices.
 *
 * Two methods:
 *  - Newton–Schulz (coupled, Higham 1997), on the compute backend, nothing but matmuls:
 *      Y₀ = A/‖A‖_F, Z₀ = I;  T = ½(3I − Z Y);  Y ← Y T;  Z ← T Z
 *    Y → (A/‖A‖)^{1/2}, Z → (A/‖A‖)^{-1/2}. For an eigenvalue p of A/‖A‖ the product ZY evolves as
 *    p ← p(3 − p)²/4: it grows ×2.25 per step while small, then converges quadratically, so the step
 *    count is about log(λ_max/λ_min)/0.8 + 5. The residual ‖I − ZY‖_F/√n (RMS, 0 at convergence) is
 *    read back every `checkEvery` steps (every step where that is cheap); the iteration stops when it is below `tolerance`, and
 *    gives up when it is not finite, grows (a negative or zero eigenvalue: the scalar map diverges or
 *    never reaches 1), or `maxIterations` pass.
 *  - Eigen-decomposition in float64 on the CPU (./eigen.ts): A = E D Eᵀ, sqrt = E D^{1/2} Eᵀ,
 *    invSqrt = E D^{-1/2} Eᵀ, with eigenvalues below `cutoff` dropped (REFERENCE §3's rank cut-off:
 *    they are set to zero in both, so invSqrt is a pseudo-inverse square root).
 *
 * 'auto' runs Newton–Schulz and accepts its result only where it equals the cut-off result:
 *  0. before iterating: λ_min ≤ min_i A_ii, so a diagonal entry below the cut-off (a dead channel)
 *     proves there is an eigenvalue to drop: straight to eigen;
 *  1. converged: ‖I − ZY‖_F/√n < tolerance, then ‖Y² − A/‖A‖‖_F / ‖A/‖A‖‖_F < 10·tolerance (the
 *     coupling can drift in float32);
 *  2. no eigenvalue can be below the cut-off (Newton–Schulz cannot drop any). Since Z ≈ (A/‖A‖)^{-1/2},
 *     ‖Z‖_F² = Σ ‖A‖/λᵢ ≥ ‖A‖/λ_min, i.e. λ_min ≥ ‖A‖/‖Z‖_F²: a rigorous lower bound (at most a factor
 *     n below the truth, so the smallest eigenvalue must be comfortably above the cut-off) that costs
 *     one reduction.
 * Any failure (ill-conditioned, rank-deficient, or indefinite through rounding) runs the eigen path.
 * So Newton–Schulz is used exactly when the matrix is comfortably positive definite — WCT's content
 * covariance, which carries +λI, always is — and the eigen path handles rank-deficient style
 * covariances and the cut-off.
 *
 * Measured at n = 512 (bench/wct.ts, 2 shared cores): on WebAssembly Newton–Schulz takes 8–12 steps,
 * 0.35–0.6 s, against 0.7–0.85 s for the eigen path (read-back, float64 solve, two matmuls); a failed
 * attempt on a rank-deficient matrix costs ~20 steps (~0.75 s) before the eigen path. On the plain-JS
 * 'cpu' backend Newton–Schulz takes 10 s (its matmuls are slow), the eigen path 1.6 s.
 *
 * Every check is one small read-back (a few scalars); the eigen path reads the n×n matrix once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../../errors.ts';
import { symmetricEigen, symmetricEigenInBackground } from './eigen.ts';

export type SqrtMethod = 'newton-schulz' | 'eigen';

export interface SqrtOptions {
  /** 'auto' (default): Newton–Schulz, verified, else eigen. The others force a method ('newton-schulz' throws if it fails). */
  method?: 'auto' | SqrtMethod;
  /** Eigenvalues below this are dropped (REFERENCE §3: 1e-5). */
  cutoff?: number;
  /** Newton–Schulz stops when the RMS residual ‖I − ZY‖_F/√n is below this. Default 2e-5 (float32 reaches about 1e-6). */
  tolerance?: number;
  /** Newton–Schulz step limit. Default 40: enough for a condition number of about 1e10. */
  maxIterations?: number;
  /**
   * Steps between residual read-backs. Default: 1 on the synchronous backends (wasm, cpu: a read-back
   * is a copy of one number, and each step is 3 n³ products: at n = 512 on WebAssembly stopping at the
   * first converged step saved 0–3 of 8–12 steps), 4 on GPUs (a read-back waits for the queue).
   */
  checkEvery?: number;
  /** An eigen-decomposition on the solver's helper thread (eigen.ts), leaving this one free meanwhile. */
  background?: boolean;
}

export interface SqrtResult {
  sqrt: tf.Tensor2D;
  invSqrt: tf.Tensor2D;
  method: SqrtMethod;
  /** Newton–Schulz steps run (including those of an attempt that fell back to eigen; 0 when eigen was forced). */
  iterations: number;
  /** Newton–Schulz: the final RMS residual ‖I − ZY‖_F/√n; eigen: NaN. */
  residual: number;
  /** Eigen path: how many eigenvalues fell below the cut-off; Newton–Schulz: 0 (verified none could). */
  dropped: number;
  /** Why Newton–Schulz was not used, when 'auto' fell back to eigen. */
  fallbackReason?: string;
}

const DEFAULTS = { cutoff: 1e-5, tolerance: 2e-5, maxIterations: 40, checkEvery: 4, background: false };

function checkMatrix(a: tf.Tensor2D, who: string): number {
  if (!(a instanceof tf.Tensor) || a.rank !== 2 || a.shape[0] !== a.shape[1] || a.shape[0] < 1) {
    throw new StudioError('BAD_ARGUMENT', `${who}: expected a square 2-D tensor, got shape [${(a as tf.Tensor)?.shape?.join(',') ?? typeof a}]`);
  }
  return a.shape[0];
}

/**
 * sqrt and invSqrt of the symmetric positive (semi-)definite `a`. The caller owns (and disposes) the
 * returned tensors; `a` is not disposed.
 */
export async function sqrtAndInvSqrt(a: tf.Tensor2D, opts: SqrtOptions = {}): Promise<SqrtResult> {
  const n = checkMatrix(a, 'matrix square root');
  const sync = tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu';
  const o = { ...DEFAULTS, checkEvery: sync ? 1 : DEFAULTS.checkEvery, method: 'auto' as const, ...opts };
  if (!(o.cutoff >= 0) || !(o.tolerance > 0) || !(o.maxIterations >= 1) || !(o.checkEvery >= 1)) {
    throw new StudioError('BAD_ARGUMENT', `matrix square root: bad options ${JSON.stringify(opts)}`);
  }
  if (o.method === 'eigen') return { ...(await eigenSqrt(a, n, o.cutoff, o.background)), iterations: 0, residual: NaN };

  const ns = await newtonSchulz(a, n, o);
  if (ns.ok) return { sqrt: ns.sqrt, invSqrt: ns.invSqrt, method: 'newton-schulz', iterations: ns.iterations, residual: ns.residual, dropped: 0 };
  if (o.method === 'newton-schulz') {
    throw new StudioError('INTERNAL', `Newton–Schulz matrix square root failed (n = ${n}): ${ns.reason}`);
  }
  return { ...(await eigenSqrt(a, n, o.cutoff, o.background)), iterations: ns.iterations, residual: ns.residual, fallbackReason: ns.reason };
}

/** One of the two roots: `matrixRoot` returns it as `root`, with sqrtAndInvSqrt's report. */
export type RootResult = Omit<SqrtResult, 'sqrt' | 'invSqrt'> & { root: tf.Tensor2D };

/**
 * a^½ or a^−½ alone: where the eigen path runs it forms only that one (each is an n³ product and two
 * n² arrays: ~9 ms at n = 512 on WebAssembly); Newton–Schulz makes both anyway, and the other is released.
 */
export async function matrixRoot(a: tf.Tensor2D, which: 'sqrt' | 'invSqrt', opts: SqrtOptions = {}): Promise<RootResult> {
  if (opts.method === 'eigen') {
    const n = checkMatrix(a, 'matrix square root');
    const cutoff = opts.cutoff ?? DEFAULTS.cutoff;
    if (!(cutoff >= 0)) throw new StudioError('BAD_ARGUMENT', `matrix square root: bad options ${JSON.stringify(opts)}`);
    const { values, vectors } = await eigenOf(a, opts.background ?? false);
    let dropped = 0;
    for (const v of values) if (!(v >= cutoff)) dropped++;
    const root = spectralFunction(values, vectors, n, which === 'sqrt' ? Math.sqrt : (v) => 1 / Math.sqrt(v), cutoff);
    return { root, method: 'eigen', iterations: 0, residual: NaN, dropped };
  }
  const { sqrt, invSqrt, ...rest } = await sqrtAndInvSqrt(a, opts);
  (which === 'sqrt' ? invSqrt : sqrt).dispose();
  return { root: which === 'sqrt' ? sqrt : invSqrt, ...rest };
}

type NsOutcome =
  | { ok: true; sqrt: tf.Tensor2D; invSqrt: tf.Tensor2D; iterations: number; residual: number }
  | { ok: false; iterations: number; residual: number; reason: string };

async function newtonSchulz(a: tf.Tensor2D, n: number, o: typeof DEFAULTS): Promise<NsOutcome> {
  const eye = tf.eye(n) as tf.Tensor2D;
  const norm = tf.norm(a) as tf.Scalar; // Frobenius: ≥ λ_max, so the eigenvalues of A/‖A‖ lie in (0, 1]
  let y = tf.div(a, norm) as tf.Tensor2D;
  let z = eye.clone();
  const an = y.clone();
  let iterations = 0;
  let residual = Infinity;
  let previous = Infinity;
  let reason = '';
  const cleanup = () => tf.dispose([eye, norm, y, z, an]);
  try {
    // Pre-check: λ_min ≤ min diagonal entry, so a diagonal entry below the cut-off (a dead channel)
    // proves there is an eigenvalue to drop: no need to iterate.
    const minDiagT = tf.tidy(() => tf.min(tf.sum(tf.mul(a, eye), 1)));
    const minDiag = (await minDiagT.data())[0];
    minDiagT.dispose();
    if (!(minDiag >= o.cutoff)) {
      return { ok: false, iterations, residual, reason: `a diagonal entry (${minDiag.toExponential(2)}) is below the cut-off ${o.cutoff}, so an eigenvalue is too` };
    }
    for (;;) {
      const check = (iterations > 0 && iterations % o.checkEvery === 0) || iterations >= o.maxIterations;
      // One step; on a check step also the residual of the current (Y, Z).
      const [t, r] = tf.tidy(() => {
        const zy = tf.matMul(z, y);
        const t = tf.mul(tf.sub(tf.mul(eye, 3), zy), 0.5) as tf.Tensor2D;
        return [t, check ? (tf.div(tf.norm(tf.sub(eye, zy)), Math.sqrt(n)) as tf.Scalar) : undefined] as const;
      });
      if (r) {
        residual = (await r.data())[0];
        r.dispose();
        if (!Number.isFinite(residual)) { reason = 'the iteration diverged (the matrix is not positive definite)'; t.dispose(); break; }
        if (residual < o.tolerance) { t.dispose(); break; }
        if (residual > previous * 1.001) { reason = `the residual stopped falling at ${residual.toExponential(2)} (ill-conditioned, rank-deficient or indefinite)`; t.dispose(); break; }
        previous = residual;
        if (iterations >= o.maxIterations) { reason = `no convergence in ${o.maxIterations} steps (residual ${residual.toExponential(2)})`; t.dispose(); break; }
      }
      const y2 = tf.matMul(y, t) as tf.Tensor2D;
      const z2 = tf.matMul(t, z) as tf.Tensor2D;
      tf.dispose([t, y, z]);
      y = y2;
      z = z2;
      iterations++;
    }
    if (reason) return { ok: false, iterations, residual, reason };

    // Verify: Y² ≈ A/‖A‖ (the coupling can drift in float32), and the lower bound λ_min ≥ ‖A‖/‖Z‖_F².
    const checks = tf.tidy(() => tf.stack([
      tf.div(tf.norm(tf.sub(tf.matMul(y, y), an)), tf.norm(an)),
      tf.div(norm, tf.sum(tf.square(z))),
    ]));
    const [sqErr, lambdaMinBound] = await checks.data();
    checks.dispose();
    if (!(sqErr < 10 * o.tolerance)) {
      return { ok: false, iterations, residual, reason: `Y² differs from A/‖A‖ by ${sqErr.toExponential(2)} (relative)` };
    }
    if (!(lambdaMinBound >= o.cutoff)) {
      return { ok: false, iterations, residual, reason: `the smallest eigenvalue may be below the cut-off ${o.cutoff} (lower bound ${lambdaMinBound.toExponential(2)})` };
    }
    const out = tf.tidy(() => {
      const s = tf.sqrt(norm);
      return [tf.mul(y, s) as tf.Tensor2D, tf.div(z, s) as tf.Tensor2D] as const;
    });
    return { ok: true, sqrt: out[0], invSqrt: out[1], iterations, residual };
  } finally {
    cleanup();
  }
}

/** Float64 eigen-decomposition of a symmetric matrix tensor (read back once). */
export async function eigenOf(a: tf.Tensor2D, background = false): Promise<{ values: Float64Array; vectors: Float64Array; n: number }> {
  const n = checkMatrix(a, 'eigen-decomposition');
  const data = await a.data();
  const m = new Float64Array(n * n);
  // Symmetrise: float32 products are symmetric only up to rounding.
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = 0.5 * (data[i * n + j] + data[j * n + i]);
  return { ...(background ? await symmetricEigenInBackground(m, n) : symmetricEigen(m, n)), n };
}

/**
 * E·diag(f(λ))·Eᵀ on the backend, from a float64 eigen-decomposition; f(λ) = 0 where λ < cutoff.
 * Built as (E·diag) · Eᵀ with both factors formed on the CPU, so no transposed matmul runs.
 */
export function spectralFunction(values: Float64Array, vectors: Float64Array, n: number, f: (lambda: number) => number, cutoff: number): tf.Tensor2D {
  const scaled = new Float32Array(n * n);
  const transposed = new Float32Array(n * n);
  const fs = spectrumOf(values, f, cutoff);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const v = vectors[i * n + k];
      scaled[i * n + k] = v * fs[k];
      transposed[k * n + i] = v;
    }
  }
  return tf.tidy(() => tf.matMul(tf.tensor2d(scaled, [n, n]), tf.tensor2d(transposed, [n, n])));
}

/** f(λ) per eigenvalue, 0 below the cut-off (REFERENCE §3's rank cut-off). */
function spectrumOf(values: Float64Array, f: (lambda: number) => number, cutoff: number): Float64Array {
  return Float64Array.from(values, (v) => (v >= cutoff ? f(v) : 0));
}

/**
 * E·diag(f(λ))·Eᵀ of a small symmetric matrix in float64 on the CPU, eigenvalues below `cutoff` → 0:
 * the same spectral rule as the tensor path, for colour covariances (2×2, 3×3) where a backend round
 * trip would cost more than the arithmetic. `a` is row-major and not modified.
 */
export function symmetricFunction64(a: Float64Array, n: number, f: (lambda: number) => number, cutoff: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n);
  const fs = spectrumOf(values, f, cutoff);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k] * fs[k] * vectors[j * n + k];
      out[i * n + j] = out[j * n + i] = s;
    }
  }
  return out;
}

/** sqrt and pseudo-inverse sqrt of a small symmetric PSD matrix in float64 (see symmetricFunction64). */
export function sqrtAndInvSqrt64(a: Float64Array, n: number, cutoff: number): { sqrt: Float64Array; invSqrt: Float64Array } {
  return { sqrt: symmetricFunction64(a, n, Math.sqrt, cutoff), invSqrt: symmetricFunction64(a, n, (v) => 1 / Math.sqrt(v), cutoff) };
}

async function eigenSqrt(a: tf.Tensor2D, n: number, cutoff: number, background = false): Promise<Pick<SqrtResult, 'sqrt' | 'invSqrt' | 'method' | 'dropped'>> {
  const { values, vectors } = await eigenOf(a, background);
  let dropped = 0;
  for (const v of values) if (!(v >= cutoff)) dropped++;
  return {
    sqrt: spectralFunction(values, vectors, n, Math.sqrt, cutoff),
    invSqrt: spectralFunction(values, vectors, n, (v) => 1 / Math.sqrt(v), cutoff),
    method: 'eigen',
    dropped,
  };
}
