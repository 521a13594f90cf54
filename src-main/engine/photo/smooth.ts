/**
 * PhotoWCT's closed-form smoothing (Li et al. 2018, REFERENCE §3; FastPhotoStyle's photo_smooth):
 *
 *   R = (1 − α) (I − α S)⁻¹ Y,   S = D^-1/2 W D^-1/2,
 *
 * with W the affinity of the content image (affinity.ts), Y the stylised image and α = 0.9999
 * (FastPhotoStyle's β). FastPhotoStyle factorises the sparse matrix once and solves per channel;
 * here I − αS (symmetric positive definite, eigenvalues in [1 − α, 1] for the matting affinity) is
 * solved for the three channels at once (interleaved, one matrix pass for all three) by
 * preconditioned conjugate gradients, warm-started from Y.
 *
 * Preconditioner. The system is hard for plain CG because α is so close to 1: every function that
 * is locally an affine function of the content colour (x ≈ a·I + b with slowly varying a, b) costs
 * almost nothing under the matting affinity, and those modes fill the spectrum from 1 − α = 1e-4 up.
 * Jacobi-PCG needs 850–1000 iterations whatever the image size (972 at 512×320 on the Dune sample),
 * and coarse-to-fine warm starts (a half-size solution upsampled bilinearly or by a local
 * colour-affine fit) saved nothing (833 → 845 iterations): the iterations are spent on those
 * modes, not on the distance to the answer. The default preconditioner is a multigrid V-cycle whose
 * coarse spaces contain those modes: each coarse node L carries 4 unknowns, the coefficients of a
 * local colour-affine function φ_L(i)·√d_i·(b + a·I_i) (φ_L a bilinear hat of spacing 4),
 * orthonormalised per node (directions without colour variation under the hat are dropped); coarse
 * operators are Galerkin products PᵀAP (5×5 stencils of 4×4 blocks, built separably), deeper levels
 * repeat the construction on the coarse near-null basis (smoothed-aggregation style), and the
 * coarsest level (≤ 600 unknowns) is factorised densely. Smoothing: one Gauss–Seidel sweep forward
 * before and one backward after the coarse correction, so the V-cycle is symmetric. 55 iterations
 * at 512×320, 57 at 1024×640, 69 at 2048×1280 (tol 1e-7). Measured alternatives: bilinear coarse
 * spaces without the colour terms ~5× more iterations; spacing 2 or 3 at the first level, or
 * W-cycles, 10–15% fewer iterations for 1.5–3× the cost per iteration; SOR weights no change; a
 * one-sided V-cycle with flexible CG 2.4× more iterations.
 *
 * Stopping rule: the relative residual ‖(1 − α)Y − (I − αS)R‖ / ‖(1 − α)Y‖ of every channel ≤ tol.
 * Since λ_min ≥ 1 − α and the right-hand side is (1 − α)Y, the error is bounded by
 * ‖R − R*‖₂ ≤ tol·‖Y‖₂ — independent of α. With the default 1e-7 the error is at the float32
 * rounding of the output (max 6e-8 at 512×320 and 1024×640), so the 8-bit output equals that of a
 * solve run to 1e-10 except for values within a float32 ulp of a rounding boundary (1 of 491,520
 * and 1 of 1,966,080 values in bench/smooth.ts; 1e-6 would leave 2 at 512×320 and save 8 iterations).
 *
 * Kernels in WebAssembly (stencil-wasm.ts). Every kernel of the solve — the level-0 stencil
 * products and sweeps, the 4×4-block ones of the coarse levels, restriction, prolongation, the
 * coarsening sums of the set-up, the matting affinity and CG's vector passes — runs as WebAssembly
 * compiled from wasm/stencil.as.ts (AssemblyScript; scripts/build-wasm.mjs writes it, base64, into
 * stencil-wasm.gen.ts, and a test recompiles it). They are line-for-line ports of the JavaScript
 * kernels below (same operations in the same order; f64x2 only where its two lanes are channels 0
 * and 1 of one pixel, so lane by lane the same arithmetic), so a solve gives bit-identical results
 * either way; the JavaScript ones stay as the fallback and the reference (STUDIO_SMOOTH_WASM=0).
 * WebAssembly reads only its own memory, so a solve's arrays come from an arena, one shared
 * WebAssembly.Memory reused from solve to solve (their byteOffsets are the kernels' pointers).
 * Measured at 1024×640 with 2 threads, per 57 iterations: GS sweeps, residual and stencil product
 * 1.9–2.3× faster than V8's code for the same loops (no bounds checks, better register use), the
 * block kernels 1.4× and their f64x2 rows 1.3× more; the whole solve 12.5 → 5.6 s. V8 ran the
 * JavaScript kernels ~20% slower on views of the WebAssembly memory than on SharedArrayBuffers of
 * their own, so all kernels moved, not just the hottest. The set-up's per-node 4×4 algebra
 * (eigen-decompositions, Galerkin products, inverses; ~0.3 s at 1024×640) stays in JavaScript.
 *
 * Threads (smooth-pool.ts, smooth-worker.ts). With more than one thread (default: the core count,
 * at most 8; STUDIO_SMOOTH_THREADS or the `threads` option to choose; 1 runs the single-threaded code
 * above, unchanged, and so do images of fewer than ~22k pixels), the matrices live in shared memory
 * (the arena, or SharedArrayBuffers with the JavaScript kernels), and every kernel of the levels with
 * ≥ 65k unknowns (level 0 and 1 up to 1024×640, also 2 at 2048×1280), restriction and prolongation
 * included, runs on row blocks (2 per thread) that the calling thread and a persistent pool of
 * workers claim, in lock step through Atomics. CG's dot products are per-block partial sums added in
 * block order, so the result depends on the block count (the thread count), never on which thread
 * ran a block. Gauss–Seidel becomes hybrid Gauss–Seidel: each block is swept on its own, its
 * couplings to other blocks taken at their values before the sweep (zero for the forward sweep from
 * zero; gathered beforehand for the backward one), so the forward sweep is (D + L_blocks)⁻¹ and the
 * backward one its transpose and the V-cycle stays symmetric. It costs no iterations here: 55, 57
 * and 69 at 512×320, 1024×640 and 2048×1280 with 2 threads (4 blocks), as with 1; 55 with 8 blocks
 * too. The coarsenings are split by fine rows (per-block sums added in order). smooth() stays
 * synchronous: the caller blocks in Atomics.wait, which Node allows on any thread. Blocks are
 * claimed rather than assigned because with one fixed block per thread a loaded machine made 2
 * threads 2× slower than 1 (12.8 vs 6.2 s at load 7): every barrier waited for whichever thread was
 * descheduled.
 *
 * Measured (bench/smooth.ts, Dune sample, this 2-core machine with ~1.95 cores free; best of 3 runs,
 * the first, which starts the threads, in brackets):
 *   512×320: 2 threads 1.51 s [1.84 s], 55 iterations, set-up 0.28 s, peak RSS 312 MB; 1 thread
 *     2.48 s, 258 MB. FastPhotoStyle's method (a direct factorisation, 27 s here) is 18× slower.
 *   1024×640: 2 threads 5.61 s [6.26 s], 57 iterations, set-up 0.98 s, 630 MB (three solves in a
 *     row: 625 MB); 1 thread 10.6 s.
 *   2048×1280: 2 threads 28.8 s, 69 iterations, set-up 6.2 s, 1.74 GB.
 *   With the JavaScript kernels (STUDIO_SMOOTH_WASM=0): 512×320 2.95 s, 1024×640 12.5 s, 2048×1280
 *     129 s (under load). Two threads scale the solve 1.6–1.9×.
 * 8-bit output: 1 of 491,520 values differs (by 1) from a banded-Cholesky direct solve at 512×320;
 * against a solve to 1e-10, 1 of 491,520 at 512×320 and 1 of 1,966,080 at 1024×640 (1 thread; 0
 * with 2).
 *
 * Normalisation: as in the reference, S = D^-1/2 W D^-1/2 does not keep a constant image constant
 * where degrees vary (the padding ring is in fewer windows), and with α this close to 1 the deficit
 * travels along the near-null modes: smoothing a constant 0.5 image over the Dune content at
 * 512×320 gives up to 22 8-bit levels off on the border row, ~10 within 8 px of it and up to 3
 * further in; a 1×1 image comes back ~1.6× brighter. That is the published method's behaviour.
 */
import type { RgbImage } from '../image.ts';
import { CancelledError, StudioError } from '../../errors.ts';
import { MATTING_EPS, SLOTS, SLOT_DX, SLOT_DY, degrees, gaussianAffinity, mattingAffinity, padReplicate, type Affinity } from './affinity.ts';
import { CARRY_KERNEL, CTRL, GUIDED_KERNEL, MAX_BLOCKS, acquirePool, smoothThreads, type SmoothPool } from './smooth-pool.ts';
import { guidedRows, type GuidedJob } from './guided-filter.ts';
import { applyLocalAffineToSamples, type CarryBands } from './affine-transfer.ts';
import { Arena, giveBackArena, stencilKernels, takeArena, wasmKernelsEnabled, type StencilKernels } from './stencil-wasm.ts';

export interface SmoothProgress {
  stage: 'smoothing';
  iteration: number;
  /** Largest relative residual over the three channels. */
  residual: number;
  /** Progress on a log scale from the first residual to the tolerance, in [0, 1]. */
  fraction: number;
}

export interface SmoothOptions {
  /** α of R = (1 − α)(I − αS)⁻¹Y, in [0, 1); FastPhotoStyle's β = 0.9999. */
  alpha?: number;
  /** Relative residual at which to stop (every channel). Default 1e-7. */
  tol?: number;
  /** Pixel affinity: Levin et al.'s matting affinity (default, FastPhotoStyle's) or Gaussian. */
  affinity?: 'matting' | 'gaussian';
  /** σ of the Gaussian affinity on the [0, 1] colour scale (default 0.1). */
  sigma?: number;
  /** Iteration cap (default 500); the result of the last iteration is returned with converged=false. */
  maxIter?: number;
  /** Replicate padding in pixels around both images before solving, cropped afterwards (default 2, as FastPhotoStyle). */
  pad?: number;
  /** Preconditioner: the colour-affine multigrid V-cycle (default) or Jacobi (diagonal). */
  preconditioner?: 'multigrid' | 'jacobi';
  onProgress?: (p: SmoothProgress) => void;
  /** Called once per iteration; throw (CancelledError) to stop. A function returning true also cancels. */
  checkCancelled?: () => void | boolean;
  /**
   * Threads for the multigrid solve (default: STUDIO_SMOOTH_THREADS, else the core count, at most 8;
   * 1 = single-threaded). Results are deterministic for a given count; counts differ by rounding.
   */
  threads?: number;
}

export interface SmoothResult {
  image: RgbImage;
  iterations: number;
  /** Final relative residual (largest over channels), recomputed from the solution. */
  residual: number;
  converged: boolean;
  ms: number;
  /** Of ms: affinity, system and multigrid hierarchy (and waiting for the threads to start). */
  setupMs: number;
  /** Threads the solve ran on. */
  threads: number;
  /** Whether the solve's kernels ran in WebAssembly (stencil-wasm.ts) or JavaScript. */
  kernels: 'webassembly' | 'javascript';
}

export const SMOOTH_DEFAULTS = { alpha: 0.9999, tol: 1e-7, maxIter: 500, pad: 2 } as const;

/** Spacing of the coarse grids (fine pixels between coarse nodes). */
const SPACING = 4;

/** Set while a threaded solve builds its levels: their arrays go to shared memory. */
let sharedAlloc = false;
/**
 * Set for the whole of a solve that runs the WebAssembly kernels (stencil-wasm.ts): every array the
 * solver keeps comes from it (it is shared memory too). Saved and restored around a solve, since a
 * progress callback may start another.
 */
let arena: Arena | undefined;

function f64(n: number): Float64Array {
  if (arena) return arena.f64(n);
  return sharedAlloc ? new Float64Array(new SharedArrayBuffer(8 * n)) : new Float64Array(n);
}

function i32(n: number): Int32Array {
  if (arena) return arena.i32(n);
  return sharedAlloc ? new Int32Array(new SharedArrayBuffer(4 * n)) : new Int32Array(n);
}
/** The coarsest level is factorised densely once it has at most this many unknowns. */
const COARSE_DOFS = 600;
/** Colour directions whose Gram eigenvalue is below this fraction of the largest are dropped. */
const DROP_TOL = 1e-8;

/**
 * The checks and defaults every smoothing solver shares (this one and smooth-tensor.ts's): both
 * images RGB of one size, α in [0, 1), a positive tolerance, iteration cap, padding, affinity.
 */
export function smoothSettings(content: RgbImage, stylized: RgbImage, opts: SmoothOptions, maxIterDefault: number = SMOOTH_DEFAULTS.maxIter) {
  checkImage(content, 'content');
  checkImage(stylized, 'stylized');
  if (content.width !== stylized.width || content.height !== stylized.height) {
    throw new StudioError(
      'BAD_ARGUMENT',
      `the stylised image is ${stylized.width}×${stylized.height} but the content image is ${content.width}×${content.height}`,
      'smooth the stylised image at the content image’s size (resize one of them first)',
    );
  }
  const alpha = opts.alpha ?? SMOOTH_DEFAULTS.alpha;
  const tol = opts.tol ?? SMOOTH_DEFAULTS.tol;
  const maxIter = opts.maxIter ?? maxIterDefault;
  const pad = opts.pad ?? SMOOTH_DEFAULTS.pad;
  if (!(alpha >= 0 && alpha < 1)) throw new StudioError('BAD_ARGUMENT', `alpha must be in [0, 1), got ${alpha}`);
  if (!(tol > 0)) throw new StudioError('BAD_ARGUMENT', `tol must be positive, got ${tol}`);
  if (!Number.isInteger(maxIter) || maxIter < 1) throw new StudioError('BAD_ARGUMENT', `maxIter must be a positive integer, got ${maxIter}`);
  if (!Number.isInteger(pad) || pad < 0) throw new StudioError('BAD_ARGUMENT', `pad must be a non-negative integer, got ${pad}`);
  const kind = opts.affinity ?? 'matting';
  if (kind !== 'matting' && kind !== 'gaussian') throw new StudioError('BAD_ARGUMENT', `unknown affinity '${String(kind)}'`);
  return { alpha, tol, maxIter, pad, kind };
}

/** A solution on the padded grid (HWC) cropped back to the image and clamped to [0, 1]. */
export function cropClamp(x: Float32Array | Float64Array, paddedWidth: number, width: number, height: number, pad: number): RgbImage {
  const out = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let xx = 0; xx < width; xx++) {
      const src = 3 * ((y + pad) * paddedWidth + xx + pad), dst = 3 * (y * width + xx);
      for (let c = 0; c < 3; c++) out[dst + c] = Math.min(1, Math.max(0, x[src + c]));
    }
  }
  return { width, height, data: out };
}

export function smooth(content: RgbImage, stylized: RgbImage, opts: SmoothOptions = {}): SmoothResult {
  const t0 = performance.now();
  const { alpha, tol, maxIter, pad, kind } = smoothSettings(content, stylized, opts);
  const precond = opts.preconditioner ?? 'multigrid';
  if (precond !== 'multigrid' && precond !== 'jacobi') throw new StudioError('BAD_ARGUMENT', `unknown preconditioner '${String(precond)}'`);

  // STUDIO_SMOOTH_PROFILE=1: set-up phases (and, threaded, per-kernel times) on stderr, for profiling.
  let tPrev = t0, cPrev = process.cpuUsage();
  const tick = (what: string) => {
    if (!process.env.STUDIO_SMOOTH_PROFILE) return;
    const t = performance.now(), c = process.cpuUsage();
    console.error(`${what} ${(t - tPrev).toFixed(0)} ms (cpu ${((c.user - cPrev.user + c.system - cPrev.system) / 1000).toFixed(0)})`);
    tPrev = t;
    cPrev = c;
  };
  const pc = padReplicate(content, pad);
  const ps = padReplicate(stylized, pad);
  const nPad = pc.width * pc.height;
  let threads = precond === 'multigrid' && 3 * nPad >= PARALLEL.minDofs && pc.height >= 2 * MIN_BLOCK_ROWS ? smoothThreads(opts.threads) : 1;
  // Workers load while this thread builds the matrices. A solve started from another's callback
  // (the pool is in its session) runs on this thread alone.
  let pool = threads > 1 ? acquirePool(threads) : undefined;
  if (pool?.busy) pool = undefined;
  if (!pool) threads = 1;
  const outer = arena;
  // ~62 doubles per pixel at 512×320 and 1024×640 (level 0 ~45, the coarse levels the rest).
  const own = wasmKernelsEnabled() ? takeArena(8 * 62 * nPad) : undefined;
  arena = own;
  try {
    return solveIn(content, pc, ps, pool, threads, precond, kind, alpha, tol, maxIter, pad, opts, t0, tick);
  } finally {
    arena = outer;
    // The result is copied out (cropClamp): nothing of the solve is used after this.
    if (own) giveBackArena(own);
  }
}

function solveIn(
  content: RgbImage, pc: RgbImage, ps: RgbImage, pool: SmoothPool | undefined, threads: number,
  precond: 'multigrid' | 'jacobi', kind: 'matting' | 'gaussian', alpha: number, tol: number, maxIter: number,
  pad: number, opts: SmoothOptions, t0: number, tick: (what: string) => void,
): SmoothResult {
  const nPad = pc.width * pc.height;
  sharedAlloc = pool !== undefined;
  let sys: SolverLevel, levels: SolverLevel[], b: Float64Array, x: Float64Array;
  try {
    const aff = kind === 'gaussian' ? gaussianAffinity(pc, { sigma: opts.sigma }) : arena ? mattingAffinityIn(arena, pc) : mattingAffinity(pc);
    tick('affinity');
    const B0 = precond === 'multigrid' ? nearNull(pc, aff.degree) : null;
    sys = buildSystem(aff, alpha);
    tick('system');
    b = f64(3 * nPad);
    x = f64(3 * nPad);
    for (let k = 0; k < 3 * nPad; k++) {
      b[k] = (1 - alpha) * ps.data[k];
      x[k] = ps.data[k];
    }
    const par = pool && pool.waitReady(threads, READY_FOR_SETUP_MS) ? { pool, T: threads } : undefined;
    levels = B0 ? buildHierarchy(sys, B0, par) : [sys];
    tick('hierarchy');
  } finally {
    sharedAlloc = false;
  }
  if (pool && (levels.length < 2 || !pool.waitReady(threads))) threads = 1;
  const setupMs = performance.now() - t0;
  const w = pc.width;
  let res: { iterations: number; residual: number };
  if (pool && threads > 1) {
    res = solveThreaded(pool, threads, levels, b, x, tol, maxIter, opts);
  } else {
    const apply = precond === 'multigrid' ? (r: Float64Array, z: Float64Array) => vcycle(levels, 0, r, z) : jacobi(sys);
    res = pcg(sys, b, x, tol, maxIter, apply, opts);
  }

  return {
    image: cropClamp(x, w, content.width, content.height, pad),
    iterations: res.iterations,
    residual: res.residual,
    converged: res.residual <= tol,
    ms: performance.now() - t0,
    setupMs,
    threads,
    kernels: sys.mem ? 'webassembly' : 'javascript',
  };
}

function checkImage(img: RgbImage, name: string): void {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new StudioError('BAD_ARGUMENT', `the ${name} image has no pixels (${width}×${height})`);
  }
  if (data.length !== width * height * 3) {
    throw new StudioError('BAD_ARGUMENT', `the ${name} image holds ${data.length} values, not ${width}×${height}×3`);
  }
}

// ---------------------------------------------------------------------------------------------
// Levels. Level 0 is the pixel grid (1 unknown per node and channel); coarser levels carry 4
// unknowns per node. Stencils keep the 13 "forward" slots of affinity.ts (slot 0 the diagonal),
// for k×k blocks: a[(s·n + node)·k² + r·k + q] couples unknown r of `node` with unknown q of
// node + off_s. Vectors interleave the 3 channels: v[(node·k + r)·3 + c].

interface Transfer {
  /** Spacing and coarse grid size. */
  s: number;
  wc: number;
  hc: number;
  /** Per fine column / row: first parent and the weights of it and the next one. */
  px: Int32Array;
  wx0: Float64Array;
  wx1: Float64Array;
  py: Int32Array;
  wy0: Float64Array;
  wy1: Float64Array;
  /** Per coarse node, 4×4 orthonormalising map C (column j = coarse unknown j in near-null coordinates). */
  C: Float64Array;
  /** Scratch: 12 values per coarse node, and per coarse column. */
  tmp: Float64Array;
  row: Float64Array;
}

export interface SolverLevel {
  w: number;
  h: number;
  n: number;
  k: 1 | 4;
  a: Float64Array;
  /** Inverse diagonal blocks, n·k². */
  dinv: Float64Array;
  /** Near-null basis per node, k×4 (level 0: √d·(1, R, G, B)). */
  B: Float64Array;
  next?: Transfer;
  /** Dense Cholesky factor (lower, row-major) when this is the coarsest level. */
  chol?: Float64Array;
  /** Scratch vectors (n·k·3): solution and right-hand side (coarse levels only), residual. */
  x: Float64Array;
  b: Float64Array;
  r: Float64Array;
  /** Scratch row (w·k·3). */
  row: Float64Array;
  /** Threaded solves: couplings of block-edge rows to the other blocks (n·k·3, those rows only). */
  cross?: Float64Array;
  /** A level with its arrays in an arena: the memory the WebAssembly kernels run on. */
  mem?: WebAssembly.Memory;
}

/** `coarse`: the level is solved for by the V-cycle (it needs its own solution and right-hand side). */
function newLevel(w: number, h: number, k: 1 | 4, a: Float64Array, B: Float64Array, coarse: boolean): SolverLevel {
  const n = w * h;
  const L: SolverLevel = {
    w, h, n, k, a, B,
    dinv: f64(n * k * k),
    x: f64(coarse ? n * k * 3 : 0),
    b: f64(coarse ? n * k * 3 : 0),
    r: f64(n * k * 3),
    row: f64(w * k * 3),
  };
  if (k === 1) {
    for (let i = 0; i < n; i++) L.dinv[i] = 1 / a[i];
  } else {
    for (let i = 0; i < n; i++) invert4(a, 16 * i, L.dinv, 16 * i);
  }
  return L;
}

/**
 * The stencil of I − αS from W and d, computed in place: `aff.weights` becomes the level's matrix
 * (the affinity is consumed; its degrees are kept).
 */
export function buildSystem(aff: Affinity, alpha: number): SolverLevel {
  const { width: w, height: h, degree } = aff;
  const n = w * h;
  // Threaded solves need the matrix in shared memory: one copy then.
  // The WebAssembly kernels need it in their arena, threads in shared memory: copied if it is not.
  const copy = arena ? !arena.holds(aff.weights) : sharedAlloc && !(aff.weights.buffer instanceof SharedArrayBuffer);
  const a = copy ? f64(aff.weights.length) : aff.weights;
  if (a !== aff.weights) {
    a.set(aff.weights);
    // Drop the unshared original now (the affinity is consumed either way).
    aff.weights = a;
  }
  const is = new Float64Array(n);
  for (let i = 0; i < n; i++) is[i] = degree[i] > 0 ? 1 / Math.sqrt(degree[i]) : 0;
  for (let i = 0; i < n; i++) a[i] = 1 - alpha * a[i] * is[i] * is[i];
  for (let s = 1; s < SLOTS; s++) {
    const o = SLOT_DY[s] * w + SLOT_DX[s], base = s * n;
    for (let i = 0; i < n; i++) {
      const v = a[base + i];
      if (v !== 0) a[base + i] = -alpha * v * is[i] * is[i + o];
    }
  }
  const L = newLevel(w, h, 1, a, f64(0), false);
  if (arena) L.mem = arena.memory;
  return L;
}

/** affinity.ts's mattingAffinity by the WebAssembly kernel (bit for bit), its weights in the arena. */
function mattingAffinityIn(arena: Arena, img: RgbImage): Affinity {
  const { width: w, height: h } = img;
  const weights = arena.f64(SLOTS * w * h);
  const mark = arena.mark();
  const data = arena.f32(3 * w * h);
  data.set(img.data);
  stencilKernels(arena.memory).mattingAffinity(data.byteOffset, w, h, weights.byteOffset, MATTING_EPS / 9, arena.f64(54).byteOffset);
  arena.release(mark);
  return { width: w, height: h, weights, degree: degrees(w, h, weights) };
}

/** √d_i·(1, R_i, G_i, B_i): the null space of I − S for the matting affinity. */
function nearNull(img: RgbImage, degree: Float64Array): Float64Array {
  const n = img.width * img.height;
  const B = f64(4 * n);
  for (let i = 0; i < n; i++) {
    const sd = Math.sqrt(degree[i]);
    B[4 * i] = sd;
    B[4 * i + 1] = sd * img.data[3 * i];
    B[4 * i + 2] = sd * img.data[3 * i + 1];
    B[4 * i + 3] = sd * img.data[3 * i + 2];
  }
  return B;
}

// ---------------------------------------------------------------------------------------------
// Level-0 kernels (scalar stencil, 3 channels). Row by row, slot by slot: simple loops over a row
// run ~2× faster in V8 than one loop over pixels gathering all 25 neighbours.

/**
 * out[oo + 3c + ch] += contributions to row r from the forward and/or backward slots s0 ≤ s < s1
 * (s1 − s0 even: slots go in pairs, one loop per pair), from neighbour rows in [nlo, nhi) only
 * (a thread's own row block, or the rows outside it).
 */
function acc1(L: SolverLevel, x: Float64Array, r: number, out: Float64Array, oo: number, s0: number, s1: number, fwd: boolean, bwd: boolean, nlo = 0, nhi = L.h): void {
  const { w } = L;
  const base = r * w;
  for (let s = s0; s < s1; s += 2) {
    const t = s + 1;
    if (s + 3 < s1) {
      // Four slots in one loop where all four have the same directions (interior rows): half the
      // read-modify-writes of `out`.
      let same = true;
      for (let u = s; u < s + 4 && same; u++) {
        same = (fwd && inRows(r + SLOT_DY[u], nlo, nhi)) === (fwd && inRows(r + SLOT_DY[s], nlo, nhi)) &&
          (bwd && inRows(r - SLOT_DY[u], nlo, nhi)) === (bwd && inRows(r - SLOT_DY[s], nlo, nhi));
      }
      const f = fwd && inRows(r + SLOT_DY[s], nlo, nhi), g = bwd && inRows(r - SLOT_DY[s], nlo, nhi);
      if (same && (f || g)) {
        quad1(L, x, base, out, oo, s, f, g);
        s += 2;
        continue;
      }
    }
    const fs = fwd && inRows(r + SLOT_DY[s], nlo, nhi), ft = fwd && inRows(r + SLOT_DY[t], nlo, nhi);
    const gs = bwd && inRows(r - SLOT_DY[s], nlo, nhi), gt = bwd && inRows(r - SLOT_DY[t], nlo, nhi);
    if (fs === ft && gs === gt) {
      if (fs || gs) pair1(L, x, base, out, oo, s, t, fs, gs);
    } else {
      if (fs || gs) pair1(L, x, base, out, oo, s, s, fs, gs);
      if (ft || gt) pair1(L, x, base, out, oo, t, t, ft, gt);
    }
  }
}

/** Slots s..s+3 in the given directions, for one row (the interior columns here, the edges through edge1). */
function quad1(L: SolverLevel, x: Float64Array, base: number, out: Float64Array, oo: number, s: number, f: boolean, g: boolean): void {
  const { a, w, n } = L;
  const d0 = SLOT_DX[s], d1 = SLOT_DX[s + 1], d2 = SLOT_DX[s + 2], d3 = SLOT_DX[s + 3];
  const o0 = SLOT_DY[s] * w + d0, o1 = SLOT_DY[s + 1] * w + d1, o2 = SLOT_DY[s + 2] * w + d2, o3 = SLOT_DY[s + 3] * w + d3;
  const a0 = s * n, a1 = a0 + n, a2 = a1 + n, a3 = a2 + n;
  const m = Math.max(Math.abs(d0), Math.abs(d1), Math.abs(d2), Math.abs(d3));
  const lo = Math.min(m, w), hi = Math.max(lo, w - m);
  if (f && g) {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const v0 = a[a0 + i], u0 = a[a0 + i - o0], v1 = a[a1 + i], u1 = a[a1 + i - o1];
      const v2 = a[a2 + i], u2 = a[a2 + i - o2], v3 = a[a3 + i], u3 = a[a3 + i - o3];
      const j0 = 3 * (i + o0), k0 = 3 * (i - o0), j1 = 3 * (i + o1), k1 = 3 * (i - o1);
      const j2 = 3 * (i + o2), k2 = 3 * (i - o2), j3 = 3 * (i + o3), k3 = 3 * (i - o3);
      out[k] += v0 * x[j0] + u0 * x[k0] + v1 * x[j1] + u1 * x[k1] + v2 * x[j2] + u2 * x[k2] + v3 * x[j3] + u3 * x[k3];
      out[k + 1] += v0 * x[j0 + 1] + u0 * x[k0 + 1] + v1 * x[j1 + 1] + u1 * x[k1 + 1] + v2 * x[j2 + 1] + u2 * x[k2 + 1] + v3 * x[j3 + 1] + u3 * x[k3 + 1];
      out[k + 2] += v0 * x[j0 + 2] + u0 * x[k0 + 2] + v1 * x[j1 + 2] + u1 * x[k1 + 2] + v2 * x[j2 + 2] + u2 * x[k2 + 2] + v3 * x[j3 + 2] + u3 * x[k3 + 2];
    }
  } else if (f) {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const v0 = a[a0 + i], v1 = a[a1 + i], v2 = a[a2 + i], v3 = a[a3 + i];
      const j0 = 3 * (i + o0), j1 = 3 * (i + o1), j2 = 3 * (i + o2), j3 = 3 * (i + o3);
      out[k] += v0 * x[j0] + v1 * x[j1] + v2 * x[j2] + v3 * x[j3];
      out[k + 1] += v0 * x[j0 + 1] + v1 * x[j1 + 1] + v2 * x[j2 + 1] + v3 * x[j3 + 1];
      out[k + 2] += v0 * x[j0 + 2] + v1 * x[j1 + 2] + v2 * x[j2 + 2] + v3 * x[j3 + 2];
    }
  } else {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const u0 = a[a0 + i - o0], u1 = a[a1 + i - o1], u2 = a[a2 + i - o2], u3 = a[a3 + i - o3];
      const k0 = 3 * (i - o0), k1 = 3 * (i - o1), k2 = 3 * (i - o2), k3 = 3 * (i - o3);
      out[k] += u0 * x[k0] + u1 * x[k1] + u2 * x[k2] + u3 * x[k3];
      out[k + 1] += u0 * x[k0 + 1] + u1 * x[k1 + 1] + u2 * x[k2 + 1] + u3 * x[k3 + 1];
      out[k + 2] += u0 * x[k0 + 2] + u1 * x[k1 + 2] + u2 * x[k2 + 2] + u3 * x[k3 + 2];
    }
  }
  for (let c = 0; c < w; c++) {
    if (c === lo) c = hi;
    if (c >= w) break;
    for (let u = s; u < s + 4; u++) edge1(L, x, base, c, u, out, oo, f, g);
  }
}

function inRows(q: number, lo: number, hi: number): boolean {
  return q >= lo && q < hi;
}

/** Slots s and t (t = s: one slot) in the given directions, for one row. */
function pair1(L: SolverLevel, x: Float64Array, base: number, out: Float64Array, oo: number, s: number, t: number, f: boolean, g: boolean): void {
  const { a, w, n } = L;
  const dxs = SLOT_DX[s], dxt = SLOT_DX[t];
  const os = SLOT_DY[s] * w + dxs, ot = SLOT_DY[t] * w + dxt;
  const as = s * n, at = t * n;
  // Columns where every term is inside the image; the rest go through edge1.
  let lo = 0, hi = w;
  if (f) { lo = Math.max(lo, -dxs, -dxt); hi = Math.min(hi, w - dxs, w - dxt); }
  if (g) { lo = Math.max(lo, dxs, dxt); hi = Math.min(hi, w + dxs, w + dxt); }
  const single = s === t;
  if (f && g) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = a[as + i], v2 = a[as + i - os], j1 = 3 * (i + os), j2 = 3 * (i - os), k = oo + 3 * c;
        out[k] += v1 * x[j1] + v2 * x[j2];
        out[k + 1] += v1 * x[j1 + 1] + v2 * x[j2 + 1];
        out[k + 2] += v1 * x[j1 + 2] + v2 * x[j2 + 2];
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = a[as + i], v2 = a[as + i - os], v3 = a[at + i], v4 = a[at + i - ot];
        const j1 = 3 * (i + os), j2 = 3 * (i - os), j3 = 3 * (i + ot), j4 = 3 * (i - ot), k = oo + 3 * c;
        out[k] += v1 * x[j1] + v2 * x[j2] + v3 * x[j3] + v4 * x[j4];
        out[k + 1] += v1 * x[j1 + 1] + v2 * x[j2 + 1] + v3 * x[j3 + 1] + v4 * x[j4 + 1];
        out[k + 2] += v1 * x[j1 + 2] + v2 * x[j2 + 2] + v3 * x[j3 + 2] + v4 * x[j4 + 2];
      }
    }
  } else if (f) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = a[as + i], j1 = 3 * (i + os), k = oo + 3 * c;
        out[k] += v1 * x[j1];
        out[k + 1] += v1 * x[j1 + 1];
        out[k + 2] += v1 * x[j1 + 2];
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = a[as + i], v3 = a[at + i], j1 = 3 * (i + os), j3 = 3 * (i + ot), k = oo + 3 * c;
        out[k] += v1 * x[j1] + v3 * x[j3];
        out[k + 1] += v1 * x[j1 + 1] + v3 * x[j3 + 1];
        out[k + 2] += v1 * x[j1 + 2] + v3 * x[j3 + 2];
      }
    }
  } else if (g) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v2 = a[as + i - os], j2 = 3 * (i - os), k = oo + 3 * c;
        out[k] += v2 * x[j2];
        out[k + 1] += v2 * x[j2 + 1];
        out[k + 2] += v2 * x[j2 + 2];
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v2 = a[as + i - os], v4 = a[at + i - ot], j2 = 3 * (i - os), j4 = 3 * (i - ot), k = oo + 3 * c;
        out[k] += v2 * x[j2] + v4 * x[j4];
        out[k + 1] += v2 * x[j2 + 1] + v4 * x[j4 + 1];
        out[k + 2] += v2 * x[j2 + 2] + v4 * x[j4 + 2];
      }
    }
  }
  for (let c = 0; c < w; c++) {
    if (c === lo) c = Math.max(hi, lo);
    if (c >= w) break;
    edge1(L, x, base, c, s, out, oo, f, g);
    if (!single) edge1(L, x, base, c, t, out, oo, f, g);
  }
}

/** Slot s at column c of the row at `base`, in the given directions, where inside the image. */
function edge1(L: SolverLevel, x: Float64Array, base: number, c: number, s: number, out: Float64Array, oo: number, f: boolean, g: boolean): void {
  const { a, w, n } = L;
  const dx = SLOT_DX[s], o = SLOT_DY[s] * w + dx;
  const i = base + c, k = oo + 3 * c;
  if (f && c + dx >= 0 && c + dx < w) {
    const v = a[s * n + i], j = 3 * (i + o);
    out[k] += v * x[j];
    out[k + 1] += v * x[j + 1];
    out[k + 2] += v * x[j + 2];
  }
  if (g && c - dx >= 0 && c - dx < w) {
    const v = a[s * n + i - o], j = 3 * (i - o);
    out[k] += v * x[j];
    out[k + 1] += v * x[j + 1];
    out[k + 2] += v * x[j + 2];
  }
}

/** The WebAssembly kernels when the level's arrays are in an arena (level 0 of a WebAssembly solve). */
function wasmOf(L: SolverLevel): StencilKernels | undefined {
  return L.mem ? stencilKernels(L.mem) : undefined;
}

/** y = A x on level 0, rows r0 ≤ r < r1. */
function spmv1(L: SolverLevel, x: Float64Array, y: Float64Array, r0 = 0, r1 = L.h): void {
  const { a, w } = L;
  const wk = wasmOf(L);
  if (wk) return wk.spmv1(a.byteOffset, L.n, w, L.h, x.byteOffset, y.byteOffset, r0, r1);
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    for (let i = base; i < base + w; i++) {
      const v = a[i];
      y[3 * i] = v * x[3 * i];
      y[3 * i + 1] = v * x[3 * i + 1];
      y[3 * i + 2] = v * x[3 * i + 2];
    }
    acc1(L, x, r, y, 3 * base, 1, SLOTS, true, true);
  }
}

/** Forward Gauss–Seidel from x = 0 (x := (D + L)⁻¹ b), then res := b − A x = −U x. */
function gsFwdZero1(L: SolverLevel, b: Float64Array, x: Float64Array, res: Float64Array): void {
  gsFwdSweep1(L, b, x, 0, L.h, L.row);
  residualAfterSweep(L, x, res, 0, L.h);
}

/**
 * The forward sweep from zero over the row block [r0, r1). Couplings to rows above the block are
 * left out: their previous value is the zero start (hybrid, block-Jacobi between threads' blocks).
 */
function gsFwdSweep1(L: SolverLevel, b: Float64Array, x: Float64Array, r0: number, r1: number, row: Float64Array): void {
  const { a, w, n, dinv } = L;
  const wk = wasmOf(L);
  if (wk) return wk.gsFwdSweep1(a.byteOffset, dinv.byteOffset, n, w, b.byteOffset, x.byteOffset, r0, r1, row.byteOffset);
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    row.fill(0, 0, 3 * w);
    acc1(L, x, r, row, 0, 3, SLOTS, false, true, r0, r1);
    for (let c = 0; c < w; c++) {
      const i = base + c, k = 3 * c;
      let v0 = b[3 * i] - row[k], v1 = b[3 * i + 1] - row[k + 1], v2 = b[3 * i + 2] - row[k + 2];
      if (c >= 1) {
        const m = a[n + i - 1], j = 3 * (i - 1);
        v0 -= m * x[j]; v1 -= m * x[j + 1]; v2 -= m * x[j + 2];
      }
      if (c >= 2) {
        const m = a[2 * n + i - 2], j = 3 * (i - 2);
        v0 -= m * x[j]; v1 -= m * x[j + 1]; v2 -= m * x[j + 2];
      }
      const d = dinv[i];
      x[3 * i] = v0 * d; x[3 * i + 1] = v1 * d; x[3 * i + 2] = v2 * d;
    }
  }
}

/** The row accumulator of a level: scalar stencils (level 0) or 4×4 blocks (coarse levels). */
const accOf = (L: SolverLevel): typeof acc1 => (L.k === 1 ? acc1 : acc4);

/**
 * res := b − A x after the forward sweep of block [r0, r1): −U x, and the lower couplings to rows
 * above the block that the sweep left out. Any level (3·k values per node).
 */
function residualAfterSweep(L: SolverLevel, x: Float64Array, res: Float64Array, r0: number, r1: number): void {
  const { w, h } = L;
  const wk = wasmOf(L);
  if (wk) return wk.residualAfterSweep(L.a.byteOffset, L.n, w, h, L.k, x.byteOffset, res.byteOffset, r0, r1);
  const acc = accOf(L), stride = 3 * L.k * w;
  for (let r = r0; r < r1; r++) {
    const base = r * stride;
    res.fill(0, base, base + stride);
    acc(L, x, r, res, base, 1, SLOTS, true, false, 0, h);
    if (r0 > 0 && r < r0 + 2) acc(L, x, r, res, base, 3, SLOTS, false, true, 0, r0);
    for (let k = base; k < base + stride; k++) res[k] = -res[k];
  }
}

/** cross[rows of block [r0, r1) within 2 of its edges] = couplings to x outside the block. Any level. */
function crossCouplings(L: SolverLevel, x: Float64Array, cross: Float64Array, r0: number, r1: number): void {
  const { w, h } = L;
  const wk = wasmOf(L);
  if (wk) return wk.crossCouplings(L.a.byteOffset, L.n, w, h, L.k, x.byteOffset, cross.byteOffset, r0, r1);
  const acc = accOf(L), stride = 3 * L.k * w;
  for (let r = r0; r < r1; r++) {
    const top = r0 > 0 && r < r0 + 2, bottom = r1 < h && r >= r1 - 2;
    if (!top && !bottom) {
      r = Math.max(r, r1 - 3);
      continue;
    }
    const base = r * stride;
    cross.fill(0, base, base + stride);
    if (top) acc(L, x, r, cross, base, 3, SLOTS, false, true, 0, r0);
    if (bottom) acc(L, x, r, cross, base, 3, SLOTS, true, false, r1, h);
  }
}

/**
 * Backward Gauss–Seidel sweep on x over the row block [r0, r1); with `cross`, the couplings to the
 * other blocks come from it (their values before the sweep), so the sweep is the transpose of the
 * forward one and the V-cycle stays symmetric.
 */
function gsBwd1(L: SolverLevel, b: Float64Array, x: Float64Array, r0 = 0, r1 = L.h, row = L.row, cross?: Float64Array): void {
  const { a, w, h, n, dinv } = L;
  const wk = wasmOf(L);
  if (wk) return wk.gsBwd1(a.byteOffset, dinv.byteOffset, n, w, h, b.byteOffset, x.byteOffset, r0, r1, row.byteOffset, cross ? cross.byteOffset : 0);
  for (let r = r1 - 1; r >= r0; r--) {
    const base = r * w;
    row.fill(0, 0, 3 * w);
    acc1(L, x, r, row, 0, 3, SLOTS, true, true, r0, r1);
    acc1(L, x, r, row, 0, 1, 3, false, true, r0, r1);
    if (cross && ((r0 > 0 && r < r0 + 2) || (r1 < h && r >= r1 - 2))) {
      for (let k = 0, o = 3 * base; k < 3 * w; k++) row[k] += cross[o + k];
    }
    for (let c = w - 1; c >= 0; c--) {
      const i = base + c, k = 3 * c;
      let v0 = b[3 * i] - row[k], v1 = b[3 * i + 1] - row[k + 1], v2 = b[3 * i + 2] - row[k + 2];
      if (c + 1 < w) {
        const m = a[n + i], j = 3 * (i + 1);
        v0 -= m * x[j]; v1 -= m * x[j + 1]; v2 -= m * x[j + 2];
      }
      if (c + 2 < w) {
        const m = a[2 * n + i], j = 3 * (i + 2);
        v0 -= m * x[j]; v1 -= m * x[j + 1]; v2 -= m * x[j + 2];
      }
      const d = dinv[i];
      x[3 * i] = v0 * d; x[3 * i + 1] = v1 * d; x[3 * i + 2] = v2 * d;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Block kernels (4 unknowns per node, 3 channels: 12 values per node).

/** out[k + 3r + ch] += Σ_q M[r][q] x[j + 3q + ch], M at a[m..m+16). */
function mulBlock(a: Float64Array, m: number, x: Float64Array, j: number, out: Float64Array, k: number): void {
  const x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], y0 = x[j + 3], y1 = x[j + 4], y2 = x[j + 5];
  const z0 = x[j + 6], z1 = x[j + 7], z2 = x[j + 8], u0 = x[j + 9], u1 = x[j + 10], u2 = x[j + 11];
  for (let r = 0; r < 4; r++) {
    const b0 = a[m + 4 * r], b1 = a[m + 4 * r + 1], b2 = a[m + 4 * r + 2], b3 = a[m + 4 * r + 3];
    out[k + 3 * r] += b0 * x0 + b1 * y0 + b2 * z0 + b3 * u0;
    out[k + 3 * r + 1] += b0 * x1 + b1 * y1 + b2 * z1 + b3 * u1;
    out[k + 3 * r + 2] += b0 * x2 + b1 * y2 + b2 * z2 + b3 * u2;
  }
}

/** out[k + 3r + ch] += Σ_q M[q][r] x[j + 3q + ch] (the transposed block). */
function mulBlockT(a: Float64Array, m: number, x: Float64Array, j: number, out: Float64Array, k: number): void {
  const x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], y0 = x[j + 3], y1 = x[j + 4], y2 = x[j + 5];
  const z0 = x[j + 6], z1 = x[j + 7], z2 = x[j + 8], u0 = x[j + 9], u1 = x[j + 10], u2 = x[j + 11];
  for (let r = 0; r < 4; r++) {
    const b0 = a[m + r], b1 = a[m + 4 + r], b2 = a[m + 8 + r], b3 = a[m + 12 + r];
    out[k + 3 * r] += b0 * x0 + b1 * y0 + b2 * z0 + b3 * u0;
    out[k + 3 * r + 1] += b0 * x1 + b1 * y1 + b2 * z1 + b3 * u1;
    out[k + 3 * r + 2] += b0 * x2 + b1 * y2 + b2 * z2 + b3 * u2;
  }
}

function acc4(L: SolverLevel, x: Float64Array, r: number, out: Float64Array, oo: number, s0: number, s1: number, fwd: boolean, bwd: boolean, nlo = 0, nhi = L.h): void {
  const { a, w, n } = L;
  const base = r * w;
  for (let s = s0; s < s1; s++) {
    const dy = SLOT_DY[s], dx = SLOT_DX[s], o = dy * w + dx, as = s * n;
    if (fwd && inRows(r + dy, nlo, nhi)) {
      const lo = dx < 0 ? -dx : 0, hi = dx > 0 ? w - dx : w;
      for (let c = lo; c < hi; c++) {
        const i = base + c;
        mulBlock(a, 16 * (as + i), x, 12 * (i + o), out, oo + 12 * c);
      }
    }
    if (bwd && inRows(r - dy, nlo, nhi)) {
      const lo = dx > 0 ? dx : 0, hi = dx < 0 ? w + dx : w;
      for (let c = lo; c < hi; c++) {
        const i = base + c - o;
        mulBlockT(a, 16 * (as + i), x, 12 * i, out, oo + 12 * c);
      }
    }
  }
}

/** x[j..j+12) = Dinv · v (v: 12 values at t[k..]). */
function solveDiag4(dinv: Float64Array, m: number, t: Float64Array, k: number, x: Float64Array, j: number): void {
  for (let r = 0; r < 4; r++) {
    const b0 = dinv[m + 4 * r], b1 = dinv[m + 4 * r + 1], b2 = dinv[m + 4 * r + 2], b3 = dinv[m + 4 * r + 3];
    for (let ch = 0; ch < 3; ch++) {
      x[j + 3 * r + ch] = b0 * t[k + ch] + b1 * t[k + 3 + ch] + b2 * t[k + 6 + ch] + b3 * t[k + 9 + ch];
    }
  }
}

function gsFwdZero4(L: SolverLevel, b: Float64Array, x: Float64Array, res: Float64Array): void {
  gsFwdSweep4(L, b, x, 0, L.h, L.row);
  residualAfterSweep(L, x, res, 0, L.h);
}

function gsFwdSweep4(L: SolverLevel, b: Float64Array, x: Float64Array, r0: number, r1: number, row: Float64Array): void {
  const { a, w, n, dinv } = L;
  const wk = wasmOf(L);
  if (wk) return wk.gsFwdSweep4(a.byteOffset, dinv.byteOffset, n, w, b.byteOffset, x.byteOffset, r0, r1, row.byteOffset);
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    row.fill(0, 0, 12 * w);
    acc4(L, x, r, row, 0, 3, SLOTS, false, true, r0, r1);
    for (let c = 0; c < w; c++) {
      const i = base + c, k = 12 * c;
      if (c >= 1) mulBlockT(a, 16 * (n + i - 1), x, 12 * (i - 1), row, k);
      if (c >= 2) mulBlockT(a, 16 * (2 * n + i - 2), x, 12 * (i - 2), row, k);
      for (let q = 0; q < 12; q++) row[k + q] = b[12 * i + q] - row[k + q];
      solveDiag4(dinv, 16 * i, row, k, x, 12 * i);
    }
  }
}

function gsBwd4(L: SolverLevel, b: Float64Array, x: Float64Array, r0 = 0, r1 = L.h, row = L.row, cross?: Float64Array): void {
  const { a, w, h, n, dinv } = L;
  const wk = wasmOf(L);
  if (wk) return wk.gsBwd4(a.byteOffset, dinv.byteOffset, n, w, h, b.byteOffset, x.byteOffset, r0, r1, row.byteOffset, cross ? cross.byteOffset : 0);
  for (let r = r1 - 1; r >= r0; r--) {
    const base = r * w;
    row.fill(0, 0, 12 * w);
    acc4(L, x, r, row, 0, 3, SLOTS, true, true, r0, r1);
    acc4(L, x, r, row, 0, 1, 3, false, true, r0, r1);
    if (cross && ((r0 > 0 && r < r0 + 2) || (r1 < h && r >= r1 - 2))) {
      for (let k = 0, o = 12 * base; k < 12 * w; k++) row[k] += cross[o + k];
    }
    for (let c = w - 1; c >= 0; c--) {
      const i = base + c, k = 12 * c;
      if (c + 1 < w) mulBlock(a, 16 * (n + i), x, 12 * (i + 1), row, k);
      if (c + 2 < w) mulBlock(a, 16 * (2 * n + i), x, 12 * (i + 2), row, k);
      for (let q = 0; q < 12; q++) row[k + q] = b[12 * i + q] - row[k + q];
      solveDiag4(dinv, 16 * i, row, k, x, 12 * i);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Transfers. P maps coarse unknowns c_L (4 per node) to fine ones:
//   x_K = B_K Σ_L φ_L(K) C_L c_L,   φ_L = bilinear hat of spacing s around node L,
// with B_K the near-null basis at fine node K (k×4) and C_L the node's orthonormalising map.

/** Parents of fine index t (0 ≤ t < len) on a grid of spacing s: first parent, its weight, the next one's. */
function parents(len: number, s: number): { p: Int32Array; w0: Float64Array; w1: Float64Array } {
  const p = i32(len), w0 = f64(len), w1 = f64(len);
  for (let t = 0; t < len; t++) {
    const q = Math.floor(t / s), f = (t - q * s) / s;
    p[t] = q; w0[t] = 1 - f; w1[t] = f;
  }
  return { p, w0, w1 };
}

/** Coarse right-hand side: b_c = Pᵀ r, for the coarse rows R0 ≤ R < R1. */
function restrict(L: SolverLevel, r: Float64Array, bc: Float64Array, R0 = 0, R1 = L.next!.hc, row = L.next!.row): void {
  if (L.k === 1) restrict1(L, r, R0, R1, row);
  else restrict4(L, r, R0, R1, row);
  applyCt(L.next!, bc, R0, R1);
}

/**
 * tmp[L] = Σ_K φ_L(K) B_Kᵀ r_K for level 0 and the coarse rows [R0, R1), separably: along x into a
 * row of coarse columns, then along y (fine rows feeding two threads' coarse rows are done by both).
 */
function restrict1(L: SolverLevel, r: Float64Array, R0: number, R1: number, row: Float64Array): void {
  const T = L.next!;
  const { w, h, B } = L;
  const { wc, px, wx0, wx1, py, wy0, wy1, tmp } = T;
  const wk = wasmOf(L);
  if (wk) {
    return wk.restrict1(w, h, B.byteOffset, r.byteOffset, R0, R1, row.byteOffset,
      wc, px.byteOffset, wx0.byteOffset, wx1.byteOffset, py.byteOffset, wy0.byteOffset, wy1.byteOffset, tmp.byteOffset);
  }
  tmp.fill(0, 12 * R0 * wc, 12 * R1 * wc);
  for (let y = 0; y < h; y++) {
    const Y = py[y], f0 = wy0[y], f1 = wy1[y];
    const top = Y >= R0 && Y < R1, bottom = f1 > 0 && Y + 1 >= R0 && Y + 1 < R1;
    if (!top && !bottom) {
      if (Y >= R1) break;
      continue;
    }
    row.fill(0, 0, 12 * wc);
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const r0 = r[3 * i], r1 = r[3 * i + 1], r2 = r[3 * i + 2];
      const b0 = B[4 * i], b1 = B[4 * i + 1], b2 = B[4 * i + 2], b3 = B[4 * i + 3];
      let o = 12 * px[x], f = wx0[x];
      for (let e = 0; e < 2; e++) {
        const f0 = f * b0, f1 = f * b1, f2 = f * b2, f3 = f * b3;
        row[o] += f0 * r0; row[o + 1] += f0 * r1; row[o + 2] += f0 * r2;
        row[o + 3] += f1 * r0; row[o + 4] += f1 * r1; row[o + 5] += f1 * r2;
        row[o + 6] += f2 * r0; row[o + 7] += f2 * r1; row[o + 8] += f2 * r2;
        row[o + 9] += f3 * r0; row[o + 10] += f3 * r1; row[o + 11] += f3 * r2;
        f = wx1[x];
        if (f === 0) break;
        o += 12;
      }
    }
    const o0 = 12 * Y * wc;
    if (top) for (let q = 0; q < 12 * wc; q++) tmp[o0 + q] += f0 * row[q];
    if (bottom) {
      const o1 = o0 + 12 * wc;
      for (let q = 0; q < 12 * wc; q++) tmp[o1 + q] += f1 * row[q];
    }
  }
}

/** `scratch`: 12 values (the WebAssembly kernel's; the JavaScript one has its own). */
function restrict4(L: SolverLevel, r: Float64Array, R0: number, R1: number, scratch: Float64Array): void {
  const T = L.next!;
  const { w, h, B } = L;
  const { wc, px, wx0, wx1, py, wy0, wy1, tmp } = T;
  const wk = wasmOf(L);
  if (wk) {
    return wk.restrict4(w, h, B.byteOffset, r.byteOffset, R0, R1, scratch.byteOffset,
      wc, px.byteOffset, wx0.byteOffset, wx1.byteOffset, py.byteOffset, wy0.byteOffset, wy1.byteOffset, tmp.byteOffset);
  }
  tmp.fill(0, 12 * R0 * wc, 12 * R1 * wc);
  const u = new Float64Array(12);
  for (let y = 0; y < h; y++) {
    const Y = py[y];
    const top = Y >= R0 && Y < R1, bottom = wy1[y] > 0 && Y + 1 >= R0 && Y + 1 < R1;
    if (!top && !bottom) {
      if (Y >= R1) break;
      continue;
    }
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      // u[m][ch] = Σ_r B_K[r][m] r_K[r][ch]
      u.fill(0);
      for (let q = 0; q < 4; q++) {
        const r0 = r[12 * i + 3 * q], r1 = r[12 * i + 3 * q + 1], r2 = r[12 * i + 3 * q + 2];
        for (let m = 0; m < 4; m++) {
          const bm = B[16 * i + 4 * q + m];
          u[3 * m] += bm * r0; u[3 * m + 1] += bm * r1; u[3 * m + 2] += bm * r2;
        }
      }
      const X = px[x];
      if (top) {
        scatter(tmp, 12 * (Y * wc + X), wx0[x] * wy0[y], u);
        if (wx1[x] > 0) scatter(tmp, 12 * (Y * wc + X + 1), wx1[x] * wy0[y], u);
      }
      if (bottom) {
        scatter(tmp, 12 * ((Y + 1) * wc + X), wx0[x] * wy1[y], u);
        if (wx1[x] > 0) scatter(tmp, 12 * ((Y + 1) * wc + X + 1), wx1[x] * wy1[y], u);
      }
    }
  }
}

/** b_c[L] = C_Lᵀ tmp[L] for the nodes of coarse rows [R0, R1). */
function applyCt(T: Transfer, bc: Float64Array, R0 = 0, R1 = T.hc): void {
  const { C, tmp } = T;
  for (let l = R0 * T.wc; l < R1 * T.wc; l++) {
    // b_c[j][ch] = Σ_m C[m][j] tmp[m][ch]
    for (let j = 0; j < 4; j++) {
      const c0 = C[16 * l + j], c1 = C[16 * l + 4 + j], c2 = C[16 * l + 8 + j], c3 = C[16 * l + 12 + j];
      for (let ch = 0; ch < 3; ch++) {
        bc[12 * l + 3 * j + ch] = c0 * tmp[12 * l + ch] + c1 * tmp[12 * l + 3 + ch] + c2 * tmp[12 * l + 6 + ch] + c3 * tmp[12 * l + 9 + ch];
      }
    }
  }
}

function scatter(t: Float64Array, o: number, f: number, u: Float64Array): void {
  for (let q = 0; q < 12; q++) t[o + q] += f * u[q];
}

/** x += P xc. */
function prolongAdd(L: SolverLevel, xc: Float64Array, x: Float64Array): void {
  applyC(L.next!, xc);
  if (L.k === 1) prolong1(L, x);
  else prolong4(L, x, 0, L.h, L.next!.row);
}

/** tmp[L] = C_L xc[L] for the nodes of coarse rows [R0, R1). */
function applyC(T: Transfer, xc: Float64Array, R0 = 0, R1 = T.hc): void {
  const { C, tmp } = T;
  for (let l = R0 * T.wc; l < R1 * T.wc; l++) {
    for (let m = 0; m < 4; m++) {
      const c0 = C[16 * l + 4 * m], c1 = C[16 * l + 4 * m + 1], c2 = C[16 * l + 4 * m + 2], c3 = C[16 * l + 4 * m + 3];
      for (let ch = 0; ch < 3; ch++) {
        tmp[12 * l + 3 * m + ch] = c0 * xc[12 * l + ch] + c1 * xc[12 * l + 3 + ch] + c2 * xc[12 * l + 6 + ch] + c3 * xc[12 * l + 9 + ch];
      }
    }
  }
}

/** x_K += B_K Σ_L φ_L(K) tmp[L] on level 0 rows [r0, r1), separably: coarse rows interpolated along y into a row, then along x. */
function prolong1(L: SolverLevel, x: Float64Array, r0 = 0, r1 = L.h, row = L.next!.row): void {
  const T = L.next!;
  const { w, B } = L;
  const { wc, px, wx0, wx1, py, wy0, wy1, tmp } = T;
  const wk = wasmOf(L);
  if (wk) {
    return wk.prolong1(w, B.byteOffset, x.byteOffset, r0, r1, row.byteOffset,
      wc, px.byteOffset, wx0.byteOffset, wx1.byteOffset, py.byteOffset, wy0.byteOffset, wy1.byteOffset, tmp.byteOffset);
  }
  for (let y = r0; y < r1; y++) {
    const Y = py[y], f0 = wy0[y], f1 = wy1[y];
    const o0 = 12 * Y * wc;
    if (f1 > 0) {
      const o1 = o0 + 12 * wc;
      for (let q = 0; q < 12 * wc; q++) row[q] = f0 * tmp[o0 + q] + f1 * tmp[o1 + q];
    } else {
      for (let q = 0; q < 12 * wc; q++) row[q] = f0 * tmp[o0 + q];
    }
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      const o = 12 * px[xx], g0 = wx0[xx], g1 = wx1[xx];
      const b0 = B[4 * i], b1 = B[4 * i + 1], b2 = B[4 * i + 2], b3 = B[4 * i + 3];
      let u0 = b0 * row[o] + b1 * row[o + 3] + b2 * row[o + 6] + b3 * row[o + 9];
      let u1 = b0 * row[o + 1] + b1 * row[o + 4] + b2 * row[o + 7] + b3 * row[o + 10];
      let u2 = b0 * row[o + 2] + b1 * row[o + 5] + b2 * row[o + 8] + b3 * row[o + 11];
      u0 *= g0; u1 *= g0; u2 *= g0;
      if (g1 > 0) {
        const p = o + 12;
        u0 += g1 * (b0 * row[p] + b1 * row[p + 3] + b2 * row[p + 6] + b3 * row[p + 9]);
        u1 += g1 * (b0 * row[p + 1] + b1 * row[p + 4] + b2 * row[p + 7] + b3 * row[p + 10]);
        u2 += g1 * (b0 * row[p + 2] + b1 * row[p + 5] + b2 * row[p + 8] + b3 * row[p + 11]);
      }
      x[3 * i] += u0; x[3 * i + 1] += u1; x[3 * i + 2] += u2;
    }
  }
}

/** `scratch`: 12 values (the WebAssembly kernel's; the JavaScript one has its own). */
function prolong4(L: SolverLevel, x: Float64Array, r0: number, r1: number, scratch: Float64Array): void {
  const T = L.next!;
  const { w, B } = L;
  const { wc, px, wx0, wx1, py, wy0, wy1, tmp } = T;
  const wk = wasmOf(L);
  if (wk) {
    return wk.prolong4(w, B.byteOffset, x.byteOffset, r0, r1, scratch.byteOffset,
      wc, px.byteOffset, wx0.byteOffset, wx1.byteOffset, py.byteOffset, wy0.byteOffset, wy1.byteOffset, tmp.byteOffset);
  }
  const u = new Float64Array(12);
  for (let y = r0; y < r1; y++) {
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      const X = px[xx], Y = py[y];
      u.fill(0);
      gather(tmp, 12 * (Y * wc + X), wx0[xx] * wy0[y], u);
      if (wx1[xx] > 0) gather(tmp, 12 * (Y * wc + X + 1), wx1[xx] * wy0[y], u);
      if (wy1[y] > 0) {
        gather(tmp, 12 * ((Y + 1) * wc + X), wx0[xx] * wy1[y], u);
        if (wx1[xx] > 0) gather(tmp, 12 * ((Y + 1) * wc + X + 1), wx1[xx] * wy1[y], u);
      }
      for (let q = 0; q < 4; q++) {
        const o = 16 * i + 4 * q;
        const b0 = B[o], b1 = B[o + 1], b2 = B[o + 2], b3 = B[o + 3];
        for (let ch = 0; ch < 3; ch++) x[12 * i + 3 * q + ch] += b0 * u[ch] + b1 * u[3 + ch] + b2 * u[6 + ch] + b3 * u[9 + ch];
      }
    }
  }
}

function gather(t: Float64Array, o: number, f: number, u: Float64Array): void {
  for (let q = 0; q < 12; q++) u[q] += f * t[o + q];
}

// ---------------------------------------------------------------------------------------------
// Hierarchy setup.

function buildHierarchy(L0: SolverLevel, B0: Float64Array, par?: { pool: SmoothPool; T: number }): SolverLevel[] {
  L0.B = B0;
  const levels = [L0];
  for (;;) {
    const L = levels[levels.length - 1];
    if (L.n * L.k <= COARSE_DOFS || (L.w <= 2 && L.h <= 2)) break;
    const c0 = process.cpuUsage();
    // Coarsening (most of the set-up) runs on the threads when they are up and the level is big enough.
    levels.push(coarsen(L, SPACING, par && 3 * L.n * L.k >= PARALLEL.minDofs && L.h >= par.T * MIN_BLOCK_ROWS ? par : undefined));
    const c = process.cpuUsage(c0);
    if (process.env.STUDIO_SMOOTH_PROFILE) console.error(`coarsen ${levels.length - 1}: cpu ${((c.user + c.system) / 1000).toFixed(0)} ms`);
  }
  const last = levels[levels.length - 1];
  last.chol = denseCholesky(last);
  return levels;
}

/** Adds fine row y's terms φ_L(K)² B_Kᵀ B_K to the Gram matrices G (a function of its own so V8 optimises it). */
function gramRow(L: SolverLevel, y: number, G: Float64Array, wc: number, X: { p: Int32Array; w0: Float64Array; w1: Float64Array }, Y: { p: Int32Array; w0: Float64Array; w1: Float64Array }, g: Float64Array): void {
  const { w, k, B } = L;
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    g.fill(0);
    for (let r = 0; r < k; r++) {
      const o = (i * k + r) * 4;
      for (let m = 0; m < 4; m++) for (let q = 0; q < 4; q++) g[4 * m + q] += B[o + m] * B[o + q];
    }
    const px = X.p[x], py = Y.p[y];
    for (let b2 = 0; b2 < 2; b2++) {
      const fy = b2 ? Y.w1[y] : Y.w0[y];
      if (fy === 0) continue;
      for (let b1 = 0; b1 < 2; b1++) {
        const fx = b1 ? X.w1[x] : X.w0[x];
        if (fx === 0) continue;
        const p = fx * fy, f = p * p, o = 16 * ((py + b2) * wc + px + b1);
        for (let q = 0; q < 16; q++) G[o + q] += f * g[q];
      }
    }
  }
}

/** A_c[L, M] = C_Lᵀ Ĝ[L, M] C_M for every stored block. */
function galerkin(Gh: Float64Array, C: Float64Array, ac: Float64Array, wc: number, nc: number, tmp: Float64Array): void {
  for (let s2 = 0; s2 < SLOTS; s2++) {
    const o2 = SLOT_DY[s2] * wc + SLOT_DX[s2];
    for (let l = 0; l < nc; l++) {
      const go = 16 * (s2 * nc + l);
      let any = false;
      for (let q = 0; q < 16; q++) if (Gh[go + q] !== 0) { any = true; break; }
      if (!any) continue;
      const m = l + o2;
      // tmp = Ĝ C_M
      for (let r = 0; r < 4; r++) {
        for (let q = 0; q < 4; q++) {
          let v = 0;
          for (let t = 0; t < 4; t++) v += Gh[go + 4 * r + t] * C[16 * m + 4 * t + q];
          tmp[4 * r + q] = v;
        }
      }
      const ao = 16 * (s2 * nc + l);
      for (let r = 0; r < 4; r++) {
        for (let q = 0; q < 4; q++) {
          let v = 0;
          for (let t = 0; t < 4; t++) v += C[16 * l + 4 * t + r] * tmp[4 * t + q];
          ac[ao + 4 * r + q] = v;
        }
      }
    }
  }
}

/** Builds the next level: orthonormalised colour-affine coarse basis and the Galerkin operator. */
function coarsen(L: SolverLevel, s: number, par?: { pool: SmoothPool; T: number }): SolverLevel {
  const { w, h } = L;
  const wc = Math.ceil((w - 1) / s) + 1, hc = Math.ceil((h - 1) / s) + 1, nc = wc * hc;
  const X = parents(w, s), Y = parents(h, s);

  // What the coarse level keeps comes first: in an arena, the sums below are released afterwards.
  const C = f64(16 * nc), Bc = f64(16 * nc), ac = f64(16 * SLOTS * nc);
  const next = { tmp: f64(12 * nc), row: f64(12 * wc) };
  const mark = arena?.mark();

  // Gram matrices G_L = Σ_K φ_L(K)² B_Kᵀ B_K (eigen-decomposed below into C_L and the coarse basis),
  // and Ĝ = Φᵀ Â Φ with Â_KK' = B_Kᵀ A_KK' B_K', separably: x first (one fine row at a time into an
  // intermediate row of wc nodes), then y.
  // Shared when threads add into them (any thread may run block 0); in the arena for its kernels.
  const G = par || arena ? sh(16 * nc) : new Float64Array(16 * nc);
  const Gh = par || arena ? sh(16 * SLOTS * nc) : new Float64Array(16 * SLOTS * nc);
  const t0 = performance.now();
  if (par) {
    coarsenThreaded(par.pool, par.T, L, { X, Y, wc, nc, G: [G], Gh: [Gh], T: [], scratch: [] });
  } else {
    const T = arena ? arena.f64(16 * SLOTS * wc) : new Float64Array(16 * SLOTS * wc);
    coarsenRows(L, 0, h, G, Gh, T, wc, nc, X, Y, arena ? arena.f64(64) : new Float64Array(64));
  }
  const t1 = performance.now();
  const kept = new Uint8Array(4 * nc);
  const V = new Float64Array(16), lam = new Float64Array(4);
  for (let l = 0; l < nc; l++) {
    eig4(G, 16 * l, lam, V);
    const lmax = Math.max(lam[0], lam[1], lam[2], lam[3]);
    for (let j = 0; j < 4; j++) {
      if (!(lmax > 0 && lam[j] > DROP_TOL * lmax)) continue;
      kept[4 * l + j] = 1;
      const sq = Math.sqrt(lam[j]);
      for (let m = 0; m < 4; m++) {
        C[16 * l + 4 * m + j] = V[4 * m + j] / sq;
        Bc[16 * l + 4 * j + m] = V[4 * m + j] * sq;
      }
    }
  }

  // A_c[L, M] = C_Lᵀ Ĝ[L, M] C_M; dropped unknowns get a unit diagonal (their rows are zero).
  const t2 = performance.now();
  galerkin(Gh, C, ac, wc, nc, new Float64Array(16));
  for (let l = 0; l < nc; l++) {
    for (let j = 0; j < 4; j++) {
      if (kept[4 * l + j]) continue;
      ac[16 * l + 5 * j] = 1;
    }
    // Symmetrise the diagonal block against rounding.
    for (let r = 0; r < 4; r++) {
      for (let q = r + 1; q < 4; q++) {
        const v = 0.5 * (ac[16 * l + 4 * r + q] + ac[16 * l + 4 * q + r]);
        ac[16 * l + 4 * r + q] = v;
        ac[16 * l + 4 * q + r] = v;
      }
    }
  }
  if (mark !== undefined) arena!.release(mark);
  if (process.env.STUDIO_SMOOTH_PROFILE) console.error(`  sums ${(t1 - t0).toFixed(0)}, eigen ${(t2 - t1).toFixed(0)}, Galerkin ${(performance.now() - t2).toFixed(0)} ms`);
  L.next = { s, wc, hc, px: X.p, wx0: X.w0, wx1: X.w1, py: Y.p, wy0: Y.w0, wy1: Y.w1, C, ...next };
  const coarse = newLevel(wc, hc, 4, ac, Bc, true);
  if (arena) coarse.mem = arena.memory;
  return coarse;
}

type Parents = { p: Int32Array; w0: Float64Array; w1: Float64Array };

/** The coarsening sums of fine rows [y0, y1) added into G and Gh; T: an intermediate row, scratch: 64 values. */
function coarsenRows(L: SolverLevel, y0: number, y1: number, G: Float64Array, Gh: Float64Array, T: Float64Array, wc: number, nc: number, X: Parents, Y: Parents, scratch: Float64Array): void {
  const g = scratch.subarray(0, 16), ah = scratch.subarray(16, 32), at = scratch.subarray(32, 48), tmp = scratch.subarray(48, 64);
  const wk = wasmOf(L);
  if (wk) {
    const { w, h, n, k, a, B } = L;
    const p = (v: Float64Array | Int32Array) => v.byteOffset;
    for (let y = y0; y < y1; y++) wk.gramRow(w, k, p(B), y, p(G), wc, p(X.p), p(X.w0), p(X.w1), p(Y.p), p(Y.w0), p(Y.w1), p(g));
    for (let y = y0; y < y1; y++) {
      T.fill(0);
      if (k === 1) wk.xPassRow1(w, h, n, p(a), p(B), y, p(T), wc, p(X.p), p(X.w0), p(X.w1));
      else wk.xPassRow4(w, h, n, p(a), p(B), y, p(T), wc, p(X.p), p(X.w0), p(X.w1), p(ah), p(at), p(tmp));
      wk.yPass(p(T), p(Gh), y, wc, nc, p(Y.p), p(Y.w0), p(Y.w1), Y.p.length);
    }
    return;
  }
  for (let y = y0; y < y1; y++) gramRow(L, y, G, wc, X, Y, g);
  for (let y = y0; y < y1; y++) {
    T.fill(0);
    if (L.k === 1) xPassRow1(L, y, T, wc, X);
    else xPassRow4(L, y, T, wc, X, ah, at, tmp);
    yPass(T, Gh, y, wc, nc, Y);
  }
}

/** Level ≥ 1 x-pass of fine row y: T = Φ_xᵀ Â Φ_x with Â_KK' = B_Kᵀ A_KK' B_K' (own function: V8 optimises it far better than inside coarsen). */
function xPassRow4(L: SolverLevel, y: number, T: Float64Array, wc: number, X: { p: Int32Array; w0: Float64Array; w1: Float64Array }, ah: Float64Array, at: Float64Array, tmp: Float64Array): void {
  const { w, h, n, B } = L;
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    for (let s2 = 0; s2 < SLOTS; s2++) {
      const dy = SLOT_DY[s2], dx = SLOT_DX[s2];
      const x2 = x + dx, y2 = y + dy;
      if (x2 < 0 || x2 >= w || y2 >= h) continue;
      const j = y2 * w + x2;
      const pa = X.p[x], pb = X.p[x2];
      const fa0 = X.w0[x], fa1 = X.w1[x], fb0 = X.w0[x2], fb1 = X.w1[x2];
      // ah = B_iᵀ M B_j
      const mo = 16 * (s2 * n + i);
      tmp.fill(0);
      for (let r = 0; r < 4; r++) {
        for (let t = 0; t < 4; t++) {
          const mv = L.a[mo + 4 * r + t];
          if (mv === 0) continue;
          for (let q = 0; q < 4; q++) tmp[4 * r + q] += mv * B[16 * j + 4 * t + q];
        }
      }
      ah.fill(0);
      for (let r = 0; r < 4; r++) {
        for (let m = 0; m < 4; m++) {
          const bm = B[16 * i + 4 * r + m];
          if (bm === 0) continue;
          for (let q = 0; q < 4; q++) ah[4 * m + q] += bm * tmp[4 * r + q];
        }
      }
      transpose4(ah, at);
      for (let e1 = 0; e1 < 2; e1++) {
        const f1 = e1 ? fa1 : fa0;
        if (f1 === 0) continue;
        const P = pa + e1;
        for (let e2 = 0; e2 < 2; e2++) {
          const f2 = e2 ? fb1 : fb0;
          if (f2 === 0) continue;
          const Q = pb + e2, f = f1 * f2, dX = Q - P;
          if (s2 === 0) {
            if (dX > 0) addTo(T, 16 * (slotOf(0, dX) * wc + P), f, ah);
            else if (dX === 0) addTo(T, 16 * P, f, ah);
          } else if (dy > 0 || dX > 0) {
            addTo(T, 16 * (slotOf(dy, dX) * wc + P), f, ah);
          } else if (dX === 0) {
            addTo(T, 16 * P, f, ah);
            addTo(T, 16 * P, f, at);
          } else {
            addTo(T, 16 * (slotOf(0, -dX) * wc + Q), f, at);
          }
        }
      }
    }
  }
}

/** Adds intermediate row y (wc nodes, 13 slots of 4×4 blocks) into the coarse stencil Ĝ along y. */
function yPass(T: Float64Array, Gh: Float64Array, y: number, wc: number, nc: number, Y: { p: Int32Array; w0: Float64Array; w1: Float64Array }): void {
  for (let s2 = 0; s2 < SLOTS; s2++) {
    const dy = SLOT_DY[s2], dX = SLOT_DX[s2];
    const y2 = y + dy;
    if (y2 >= Y.p.length) continue;
    const P0 = Math.max(0, -dX), P1 = Math.min(wc, wc - dX);
    for (let e1 = 0; e1 < 2; e1++) {
      const f1 = e1 ? Y.w1[y] : Y.w0[y];
      if (f1 === 0) break;
      const A1 = Y.p[y] + e1;
      for (let e2 = 0; e2 < 2; e2++) {
        const f2 = e2 ? Y.w1[y2] : Y.w0[y2];
        if (f2 === 0) break;
        const A2 = Y.p[y2] + e2, f = f1 * f2, dY = A2 - A1;
        // The same placement for the whole row: at A1's node (forward), on the diagonal, or transposed at A2's.
        if (s2 === 0) {
          if (dY > 0) addRow(Gh, 16 * (slotOf(dY, 0) * nc + A1 * wc), T, 0, P0, P1, f, false);
          else if (dY === 0) addRow(Gh, 16 * A1 * wc, T, 0, P0, P1, f, false);
        } else if (dY > 0 || (dY === 0 && dX > 0)) {
          addRow(Gh, 16 * (slotOf(dY, dX) * nc + A1 * wc), T, 16 * s2 * wc, P0, P1, f, false);
        } else if (dY === 0 && dX === 0) {
          addRow(Gh, 16 * A1 * wc, T, 16 * s2 * wc, P0, P1, f, false);
          addRow(Gh, 16 * A1 * wc, T, 16 * s2 * wc, P0, P1, f, true);
        } else {
          addRow(Gh, 16 * (slotOf(-dY, -dX) * nc + A2 * wc + dX), T, 16 * s2 * wc, P0, P1, f, true);
        }
      }
    }
  }
}

/** For P0 ≤ P < P1: d[do + 16P ..] += f·M_P (or f·M_Pᵀ), M_P = t[to + 16P ..]. */
function addRow(d: Float64Array, dOff: number, t: Float64Array, tOff: number, P0: number, P1: number, f: number, transposed: boolean): void {
  if (transposed) {
    for (let P = P0; P < P1; P++) {
      const o = dOff + 16 * P, m = tOff + 16 * P;
      for (let r = 0; r < 4; r++) {
        d[o + 4 * r] += f * t[m + r];
        d[o + 4 * r + 1] += f * t[m + 4 + r];
        d[o + 4 * r + 2] += f * t[m + 8 + r];
        d[o + 4 * r + 3] += f * t[m + 12 + r];
      }
    }
  } else {
    const lo = dOff + 16 * P0, hi = dOff + 16 * P1, sh = tOff - dOff;
    for (let k = lo; k < hi; k++) d[k] += f * t[k + sh];
  }
}

/** Level-0 x-pass of fine row y: T = Φ_xᵀ Â Φ_x with Â = a·b_iᵀ b_j (rank one, never formed). */
function xPassRow1(L: SolverLevel, y: number, T: Float64Array, wc: number, X: { p: Int32Array; w0: Float64Array; w1: Float64Array }): void {
  const { a, w, h, n, B } = L;
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    const pa = X.p[x], fa0 = X.w0[x], fa1 = X.w1[x];
    const bi0 = B[4 * i], bi1 = B[4 * i + 1], bi2 = B[4 * i + 2], bi3 = B[4 * i + 3];
    for (let s2 = 0; s2 < SLOTS; s2++) {
      const dy = SLOT_DY[s2], x2 = x + SLOT_DX[s2];
      if (x2 < 0 || x2 >= w || y + dy >= h) continue;
      const v = a[s2 * n + i];
      if (v === 0) continue;
      const j = i + dy * w + SLOT_DX[s2];
      const pb = X.p[x2], fb0 = X.w0[x2], fb1 = X.w1[x2];
      if (dy === 0) {
        const diag = s2 === 0;
        xContrib1(T, wc, pa, pb, 0, diag, v * fa0 * fb0, B, 4 * i, 4 * j);
        if (fb1 > 0) xContrib1(T, wc, pa, pb + 1, 0, diag, v * fa0 * fb1, B, 4 * i, 4 * j);
        if (fa1 > 0) {
          xContrib1(T, wc, pa + 1, pb, 0, diag, v * fa1 * fb0, B, 4 * i, 4 * j);
          if (fb1 > 0) xContrib1(T, wc, pa + 1, pb + 1, 0, diag, v * fa1 * fb1, B, 4 * i, 4 * j);
        }
        continue;
      }
      // Rows below: every term is forward, at (P, slot(dy, Q − P)); the block is v·b_i ⊗ b_j.
      const bj0 = B[4 * j], bj1 = B[4 * j + 1], bj2 = B[4 * j + 2], bj3 = B[4 * j + 3];
      const sb = 5 * dy - pa;
      for (let e1 = 0; e1 < 2; e1++) {
        const f1 = e1 ? fa1 : fa0;
        if (f1 === 0) break;
        const P = pa + e1;
        for (let e2 = 0; e2 < 2; e2++) {
          const f2 = e2 ? fb1 : fb0;
          if (f2 === 0) break;
          const f = v * f1 * f2, Q = pb + e2;
          const o = 16 * ((sb - e1 + Q) * wc + P);
          const u0 = f * bi0, u1 = f * bi1, u2 = f * bi2, u3 = f * bi3;
          T[o] += u0 * bj0; T[o + 1] += u0 * bj1; T[o + 2] += u0 * bj2; T[o + 3] += u0 * bj3;
          T[o + 4] += u1 * bj0; T[o + 5] += u1 * bj1; T[o + 6] += u1 * bj2; T[o + 7] += u1 * bj3;
          T[o + 8] += u2 * bj0; T[o + 9] += u2 * bj1; T[o + 10] += u2 * bj2; T[o + 11] += u2 * bj3;
          T[o + 12] += u3 * bj0; T[o + 13] += u3 * bj1; T[o + 14] += u3 * bj2; T[o + 15] += u3 * bj3;
        }
      }
    }
  }
}

/**
 * Level-0 x-pass term f·b_iᵀ b_j between intermediate nodes P (row y) and Q (row y + dy), stored in
 * the symmetric half stencil: at P when Q is forward of P, transposed at Q when it is behind, both
 * ways on the diagonal.
 */
function xContrib1(T: Float64Array, wc: number, P: number, Q: number, dy: number, diag: boolean, f: number, B: Float64Array, bi: number, bj: number): void {
  const dX = Q - P;
  if (diag) {
    if (dX > 0) addOuter(T, 16 * (dX * wc + P), f, B, bi, bj);
    else if (dX === 0) addOuter(T, 16 * P, f, B, bi, bj);
  } else if (dy > 0 || dX > 0) {
    addOuter(T, 16 * ((5 * dy + dX) * wc + P), f, B, bi, bj);
  } else if (dX === 0) {
    addOuter(T, 16 * P, f, B, bi, bj);
    addOuter(T, 16 * P, f, B, bj, bi);
  } else {
    addOuter(T, 16 * (-dX * wc + Q), f, B, bj, bi);
  }
}

/** t[o + 4m + q] += f·B[bi + m]·B[bj + q]. */
function addOuter(t: Float64Array, o: number, f: number, B: Float64Array, bi: number, bj: number): void {
  const c0 = B[bj], c1 = B[bj + 1], c2 = B[bj + 2], c3 = B[bj + 3];
  for (let m = 0; m < 4; m++) {
    const g = f * B[bi + m], p = o + 4 * m;
    t[p] += g * c0; t[p + 1] += g * c1; t[p + 2] += g * c2; t[p + 3] += g * c3;
  }
}

function slotOf(dy: number, dx: number): number {
  return 5 * dy + dx;
}

function addTo(t: Float64Array, o: number, f: number, m: Float64Array): void {
  for (let q = 0; q < 16; q++) t[o + q] += f * m[q];
}

function transpose4(m: Float64Array, t: Float64Array): void {
  for (let r = 0; r < 4; r++) for (let q = 0; q < 4; q++) t[4 * q + r] = m[4 * r + q];
}

/** Eigen-decomposition of the symmetric 4×4 matrix at m[o..o+16) by cyclic Jacobi rotations. */
function eig4(m: Float64Array, o: number, lam: Float64Array, V: Float64Array): void {
  const A = m.slice(o, o + 16);
  V.fill(0);
  V[0] = V[5] = V[10] = V[15] = 1;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < 4; p++) {
      diag += A[5 * p] * A[5 * p];
      for (let q = p + 1; q < 4; q++) off += A[4 * p + q] * A[4 * p + q];
    }
    if (off <= 1e-32 * diag || off === 0) break;
    for (let p = 0; p < 4; p++) {
      for (let q = p + 1; q < 4; q++) {
        const apq = A[4 * p + q];
        if (apq === 0) continue;
        const th = (A[5 * q] - A[5 * p]) / (2 * apq);
        const t = (th >= 0 ? 1 : -1) / (Math.abs(th) + Math.sqrt(th * th + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let r = 0; r < 4; r++) {
          const x = A[4 * r + p], y = A[4 * r + q];
          A[4 * r + p] = c * x - s * y;
          A[4 * r + q] = s * x + c * y;
        }
        for (let r = 0; r < 4; r++) {
          const x = A[4 * p + r], y = A[4 * q + r];
          A[4 * p + r] = c * x - s * y;
          A[4 * q + r] = s * x + c * y;
        }
        for (let r = 0; r < 4; r++) {
          const x = V[4 * r + p], y = V[4 * r + q];
          V[4 * r + p] = c * x - s * y;
          V[4 * r + q] = s * x + c * y;
        }
      }
    }
  }
  for (let j = 0; j < 4; j++) lam[j] = A[5 * j];
}

/** Inverse of the 4×4 block at a[o..], written to out[oo..] (Gauss–Jordan with partial pivoting). */
function invert4(a: Float64Array, o: number, out: Float64Array, oo: number): void {
  const M = new Float64Array(32);
  for (let r = 0; r < 4; r++) {
    for (let q = 0; q < 4; q++) M[8 * r + q] = a[o + 4 * r + q];
    M[8 * r + 4 + r] = 1;
  }
  for (let c = 0; c < 4; c++) {
    let piv = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(M[8 * r + c]) > Math.abs(M[8 * piv + c])) piv = r;
    if (piv !== c) {
      for (let q = 0; q < 8; q++) {
        const t = M[8 * c + q];
        M[8 * c + q] = M[8 * piv + q];
        M[8 * piv + q] = t;
      }
    }
    const d = M[8 * c + c];
    const inv = d !== 0 ? 1 / d : 0;
    for (let q = 0; q < 8; q++) M[8 * c + q] *= inv;
    for (let r = 0; r < 4; r++) {
      if (r === c) continue;
      const f = M[8 * r + c];
      if (f === 0) continue;
      for (let q = 0; q < 8; q++) M[8 * r + q] -= f * M[8 * c + q];
    }
  }
  for (let r = 0; r < 4; r++) for (let q = 0; q < 4; q++) out[oo + 4 * r + q] = M[8 * r + 4 + q];
}

/** Dense Cholesky of the level's matrix; pivots that vanish (null directions) are skipped. */
function denseCholesky(L: SolverLevel): Float64Array {
  const { w, h, n, k, a } = L;
  const m = n * k, kk = k * k;
  const M = new Float64Array(m * m);
  for (let i = 0; i < n; i++) {
    const xi = i % w, yi = (i / w) | 0;
    for (let s = 0; s < SLOTS; s++) {
      const x2 = xi + SLOT_DX[s], y2 = yi + SLOT_DY[s];
      if (x2 < 0 || x2 >= w || y2 >= h) continue;
      const j = y2 * w + x2;
      for (let r = 0; r < k; r++) {
        for (let q = 0; q < k; q++) {
          const v = a[(s * n + i) * kk + r * k + q];
          M[(i * k + r) * m + j * k + q] = v;
          M[(j * k + q) * m + i * k + r] = v;
        }
      }
    }
  }
  for (let j = 0; j < m; j++) {
    const d0 = M[j * m + j];
    let d = d0;
    for (let t = 0; t < j; t++) d -= M[j * m + t] * M[j * m + t];
    if (!(d > 1e-12 * Math.abs(d0))) {
      for (let t = 0; t < m; t++) { M[j * m + t] = 0; M[t * m + j] = 0; }
      M[j * m + j] = Infinity;
      continue;
    }
    d = Math.sqrt(d);
    M[j * m + j] = d;
    for (let i = j + 1; i < m; i++) {
      let v = M[i * m + j];
      for (let t = 0; t < j; t++) v -= M[i * m + t] * M[j * m + t];
      M[i * m + j] = v / d;
    }
    // Clear the upper triangle of row j (it held the matrix).
    for (let t = j + 1; t < m; t++) M[j * m + t] = 0;
  }
  return M;
}

function denseSolve(L: SolverLevel, b: Float64Array, x: Float64Array): void {
  const M = L.chol!;
  const m = L.n * L.k;
  const y = new Float64Array(3 * m);
  for (let i = 0; i < m; i++) {
    let v0 = b[3 * i], v1 = b[3 * i + 1], v2 = b[3 * i + 2];
    const ro = i * m;
    for (let t = 0; t < i; t++) {
      const l = M[ro + t];
      if (l === 0) continue;
      v0 -= l * y[3 * t]; v1 -= l * y[3 * t + 1]; v2 -= l * y[3 * t + 2];
    }
    const d = M[ro + i];
    y[3 * i] = v0 / d; y[3 * i + 1] = v1 / d; y[3 * i + 2] = v2 / d;
  }
  for (let i = m - 1; i >= 0; i--) {
    let v0 = y[3 * i], v1 = y[3 * i + 1], v2 = y[3 * i + 2];
    for (let t = i + 1; t < m; t++) {
      const l = M[t * m + i];
      if (l === 0) continue;
      v0 -= l * x[3 * t]; v1 -= l * x[3 * t + 1]; v2 -= l * x[3 * t + 2];
    }
    const d = M[i * m + i];
    x[3 * i] = v0 / d; x[3 * i + 1] = v1 / d; x[3 * i + 2] = v2 / d;
  }
}

/** z = V-cycle(r) on level l (symmetric: forward GS before, backward GS after the coarse correction). */
function vcycle(levels: SolverLevel[], l: number, r: Float64Array, z: Float64Array): void {
  const L = levels[l];
  if (L.chol) {
    denseSolve(L, r, z);
    return;
  }
  const C = levels[l + 1];
  if (L.k === 1) gsFwdZero1(L, r, z, L.r);
  else gsFwdZero4(L, r, z, L.r);
  restrict(L, L.r, C.b);
  vcycle(levels, l + 1, C.b, C.x);
  prolongAdd(L, C.x, z);
  if (L.k === 1) gsBwd1(L, r, z);
  else gsBwd4(L, r, z);
}

function jacobi(L: SolverLevel): (r: Float64Array, z: Float64Array) => void {
  const { n, dinv } = L;
  return (r, z) => {
    for (let i = 0; i < n; i++) {
      const d = dinv[i];
      z[3 * i] = r[3 * i] * d; z[3 * i + 1] = r[3 * i + 1] * d; z[3 * i + 2] = r[3 * i + 2] * d;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Preconditioned conjugate gradients, three independent channels sharing each matrix pass.

function pcg(
  L: SolverLevel, b: Float64Array, x: Float64Array, tol: number, maxIter: number,
  precond: (r: Float64Array, z: Float64Array) => void, hooks: SmoothOptions,
): { iterations: number; residual: number } {
  const N = b.length;
  const r = f64(N), z = f64(N), p = f64(N), q = f64(N);
  spmv1(L, x, q);
  let bb0 = 0, bb1 = 0, bb2 = 0;
  for (let k = 0; k < N; k += 3) {
    r[k] = b[k] - q[k]; r[k + 1] = b[k + 1] - q[k + 1]; r[k + 2] = b[k + 2] - q[k + 2];
    bb0 += b[k] * b[k]; bb1 += b[k + 1] * b[k + 1]; bb2 += b[k + 2] * b[k + 2];
  }
  // A channel with b = 0 has the solution 0: measure its residual absolutely.
  const nb0 = bb0 > 0 ? Math.sqrt(bb0) : 1, nb1 = bb1 > 0 ? Math.sqrt(bb1) : 1, nb2 = bb2 > 0 ? Math.sqrt(bb2) : 1;
  const relOf = (): number => {
    let s0 = 0, s1 = 0, s2 = 0;
    for (let k = 0; k < N; k += 3) { s0 += r[k] * r[k]; s1 += r[k + 1] * r[k + 1]; s2 += r[k + 2] * r[k + 2]; }
    return Math.max(Math.sqrt(s0) / nb0, Math.sqrt(s1) / nb1, Math.sqrt(s2) / nb2);
  };
  let rel = relOf();
  const rel0 = rel;
  let it = 0;
  let rz0 = 0, rz1 = 0, rz2 = 0;
  if (rel > tol) {
    precond(r, z);
    p.set(z);
    for (let k = 0; k < N; k += 3) { rz0 += r[k] * z[k]; rz1 += r[k + 1] * z[k + 1]; rz2 += r[k + 2] * z[k + 2]; }
  }
  while (rel > tol && it < maxIter) {
    if (hooks.checkCancelled?.() === true) throw new CancelledError();
    spmv1(L, p, q);
    let pq0 = 0, pq1 = 0, pq2 = 0;
    for (let k = 0; k < N; k += 3) { pq0 += p[k] * q[k]; pq1 += p[k + 1] * q[k + 1]; pq2 += p[k + 2] * q[k + 2]; }
    const a0 = pq0 > 0 ? rz0 / pq0 : 0, a1 = pq1 > 0 ? rz1 / pq1 : 0, a2 = pq2 > 0 ? rz2 / pq2 : 0;
    let s0 = 0, s1 = 0, s2 = 0;
    for (let k = 0; k < N; k += 3) {
      x[k] += a0 * p[k]; x[k + 1] += a1 * p[k + 1]; x[k + 2] += a2 * p[k + 2];
      const u0 = r[k] - a0 * q[k], u1 = r[k + 1] - a1 * q[k + 1], u2 = r[k + 2] - a2 * q[k + 2];
      r[k] = u0; r[k + 1] = u1; r[k + 2] = u2;
      s0 += u0 * u0; s1 += u1 * u1; s2 += u2 * u2;
    }
    it++;
    rel = Math.max(Math.sqrt(s0) / nb0, Math.sqrt(s1) / nb1, Math.sqrt(s2) / nb2);
    hooks.onProgress?.({
      stage: 'smoothing',
      iteration: it,
      residual: rel,
      fraction: rel <= tol ? 1 : Math.max(0, Math.min(1, Math.log(rel0 / rel) / Math.log(rel0 / tol))),
    });
    if (rel <= tol) break;
    precond(r, z);
    let n0 = 0, n1 = 0, n2 = 0;
    for (let k = 0; k < N; k += 3) { n0 += r[k] * z[k]; n1 += r[k + 1] * z[k + 1]; n2 += r[k + 2] * z[k + 2]; }
    const b0 = rz0 > 0 ? n0 / rz0 : 0, b1 = rz1 > 0 ? n1 / rz1 : 0, b2 = rz2 > 0 ? n2 / rz2 : 0;
    rz0 = n0; rz1 = n1; rz2 = n2;
    for (let k = 0; k < N; k += 3) {
      p[k] = z[k] + b0 * p[k]; p[k + 1] = z[k + 1] + b1 * p[k + 1]; p[k + 2] = z[k + 2] + b2 * p[k + 2];
    }
  }
  // The true residual of the returned solution.
  spmv1(L, x, q);
  for (let k = 0; k < N; k++) r[k] = b[k] - q[k];
  return { iterations: it, residual: relOf() };
}

// ---------------------------------------------------------------------------------------------
// Threaded solve (smooth-pool.ts runs the workers). Each level's rows are split into one block per
// thread; every kernel runs on its block (restriction on the coarse level's blocks). Gauss–Seidel
// becomes hybrid: each thread sweeps its own block, and couplings to the other blocks use their
// values from before the sweep (zero in the forward sweep from zero; gathered into `cross` before
// the backward one). The forward sweep is then (D + L_blocks)⁻¹ and the backward one its transpose,
// so the V-cycle stays symmetric and CG applies. Small levels, where a dispatch would cost more than
// the work, stay on the calling thread (exact Gauss–Seidel); so does the dense coarsest solve.

/**
 * Levels with fewer unknowns (n·k·3 per level; also the whole image) run on one thread: level 2 at
 * 1024×640 (33k) takes ~0.3 ms a kernel, less than a dispatch can cost on a loaded machine.
 */
export const PARALLEL = { minDofs: envInt('STUDIO_SMOOTH_PAR_MIN', 65536), blocksPerThread: envInt('STUDIO_SMOOTH_BLOCKS', 2) };

/** STUDIO_SMOOTH_PAR_MIN=0 makes tests of small images take the threaded path. */
function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && process.env[name] !== '' && Number.isFinite(v) ? v : dflt;
}
const MIN_BLOCK_ROWS = 2;

/** Kernel ids (positive; smooth-pool's END is −1). */
const K = {
  INIT: 1, SPMV_DOT: 2, UPDATE: 3, PUPDATE: 4,
  GSF: 5, RES: 6, RESTRICT: 7, APPLY_C: 8, PROLONG: 9, CROSS: 10, GSB: 11, COARSEN: 12,
} as const;

/** A coarsening's sums, split into T blocks of fine rows: block t adds into G[t], Gh[t] (the caller adds them up). */
interface CoarsenAux {
  X: { p: Int32Array; w0: Float64Array; w1: Float64Array };
  Y: { p: Int32Array; w0: Float64Array; w1: Float64Array };
  wc: number;
  nc: number;
  G: Float64Array[];
  Gh: Float64Array[];
  /** Per block: an intermediate row and 64 values of scratch (in the arena for its kernels). */
  T: Float64Array[];
  scratch: Float64Array[];
}

/** How long set-up waits for the threads before coarsening on its own (they are usually up by then). */
const READY_FOR_SETUP_MS = 1000;

function coarsenThreaded(pool: SmoothPool, T: number, L: SolverLevel, aux: CoarsenAux): void {
  for (let t = 1; t < T; t++) {
    aux.G.push(sh(aux.G[0].length));
    aux.Gh.push(sh(aux.Gh[0].length));
  }
  for (let t = 0; t < T; t++) {
    aux.T.push(sh(16 * SLOTS * aux.wc));
    aux.scratch.push(sh(64));
  }
  const parts = [split(L.h, T, true)];
  const S: ParSession = { T, levels: [L], v: [], parts, partial: pool.partial, fargs: pool.fargs, aux };
  pool.begin(T, { T, levels: [{ ...L, chol: undefined }], v: [], parts, aux, scratch: 0 });
  try {
    pool.dispatch(K.COARSEN, 0, T, (blk) => runPart(S, K.COARSEN, 0, blk, new Float64Array(0)));
  } finally {
    pool.end();
  }
  const [G, Gh] = [aux.G[0], aux.Gh[0]];
  for (let t = 1; t < T; t++) {
    const g = aux.G[t], gh = aux.Gh[t];
    for (let q = 0; q < G.length; q++) G[q] += g[q];
    for (let q = 0; q < Gh.length; q++) Gh[q] += gh[q];
  }
}

export interface ParSession {
  T: number;
  levels: SolverLevel[];
  /** Level-0 CG vectors b, x, r, z, p, q. */
  v: Float64Array[];
  /**
   * Per level: nb + 1 row bounds of its blocks, block t = rows parts[t] ≤ r < parts[t + 1] (one
   * block holding every row: the level runs on the calling thread).
   */
  parts: Int32Array[];
  partial: Float64Array;
  fargs: Float64Array;
  aux?: CoarsenAux;
  /** A guided filtering (guided-filter.ts): blocks are bands of output rows, parts[0]. */
  guided?: GuidedJob;
  /** A full-resolution carry (affine-transfer.ts): blocks are bands of output rows, parts[0]. */
  carry?: CarryBands;
}

function split(h: number, nb: number, parallel: boolean): Int32Array {
  // Shared like everything handed to the workers (smooth-pool checks), though only read.
  const p = new Int32Array(new SharedArrayBuffer(4 * (nb + 1)));
  for (let t = 1; t <= nb; t++) p[t] = parallel ? Math.round((t * h) / nb) : h;
  return p;
}

function isParallel(S: ParSession, l: number): boolean {
  return S.parts[l][1] < S.levels[l].h;
}

/** Block `tid` of command `cmd` on level l (whichever thread claimed it). */
export function runPart(S: ParSession, cmd: number, l: number, tid: number, scratch: Float64Array): void {
  if (cmd === GUIDED_KERNEL) {
    guidedRows(S.guided!, S.parts[0][tid], S.parts[0][tid + 1]);
    return;
  }
  if (cmd === CARRY_KERNEL) {
    const c = S.carry!;
    applyLocalAffineToSamples(c.fit, c.src, c.srcBits, c.W, c.H, c.dst, c.dstBits, S.parts[0][tid], S.parts[0][tid + 1]);
    return;
  }
  const L = S.levels[l];
  const pt = S.parts[l];
  const r0 = pt[tid], r1 = pt[tid + 1];
  const [b, x, r, z, p, q] = S.v;
  const rhs = l === 0 ? r : L.b, sol = l === 0 ? z : L.x;
  const P = S.partial, po = 8 * tid, f = S.fargs;
  const k0 = 3 * r0 * L.w, k1 = 3 * r1 * L.w;
  // Level 0's vector passes in WebAssembly: the sums land in this thread's scratch, then in P.
  const wk = l === 0 ? wasmOf(L) : undefined;
  const sums = (count: number) => { for (let j = 0; j < count; j++) P[po + j] = scratch[j]; };
  switch (cmd) {
    case K.INIT: {
      // r = b − A x; partial ‖b‖², ‖r‖².
      spmv1(L, x, q, r0, r1);
      if (wk) {
        wk.cgInit(b.byteOffset, q.byteOffset, r.byteOffset, k0, k1, scratch.byteOffset);
        sums(6);
        return;
      }
      let bb0 = 0, bb1 = 0, bb2 = 0, s0 = 0, s1 = 0, s2 = 0;
      for (let k = k0; k < k1; k += 3) {
        const u0 = b[k] - q[k], u1 = b[k + 1] - q[k + 1], u2 = b[k + 2] - q[k + 2];
        r[k] = u0; r[k + 1] = u1; r[k + 2] = u2;
        bb0 += b[k] * b[k]; bb1 += b[k + 1] * b[k + 1]; bb2 += b[k + 2] * b[k + 2];
        s0 += u0 * u0; s1 += u1 * u1; s2 += u2 * u2;
      }
      P[po] = bb0; P[po + 1] = bb1; P[po + 2] = bb2; P[po + 3] = s0; P[po + 4] = s1; P[po + 5] = s2;
      return;
    }
    case K.SPMV_DOT: {
      spmv1(L, p, q, r0, r1);
      if (wk) {
        wk.cgDot(p.byteOffset, q.byteOffset, k0, k1, scratch.byteOffset);
        sums(3);
        return;
      }
      let s0 = 0, s1 = 0, s2 = 0;
      for (let k = k0; k < k1; k += 3) { s0 += p[k] * q[k]; s1 += p[k + 1] * q[k + 1]; s2 += p[k + 2] * q[k + 2]; }
      P[po] = s0; P[po + 1] = s1; P[po + 2] = s2;
      return;
    }
    case K.UPDATE: {
      const a0 = f[0], a1 = f[1], a2 = f[2];
      if (wk) {
        wk.cgUpdate(x.byteOffset, p.byteOffset, r.byteOffset, q.byteOffset, k0, k1, a0, a1, a2, scratch.byteOffset);
        sums(3);
        return;
      }
      let s0 = 0, s1 = 0, s2 = 0;
      for (let k = k0; k < k1; k += 3) {
        x[k] += a0 * p[k]; x[k + 1] += a1 * p[k + 1]; x[k + 2] += a2 * p[k + 2];
        const u0 = r[k] - a0 * q[k], u1 = r[k + 1] - a1 * q[k + 1], u2 = r[k + 2] - a2 * q[k + 2];
        r[k] = u0; r[k + 1] = u1; r[k + 2] = u2;
        s0 += u0 * u0; s1 += u1 * u1; s2 += u2 * u2;
      }
      P[po] = s0; P[po + 1] = s1; P[po + 2] = s2;
      return;
    }
    case K.PUPDATE: {
      const b0 = f[0], b1 = f[1], b2 = f[2];
      if (wk) return wk.cgDirection(p.byteOffset, z.byteOffset, k0, k1, b0, b1, b2);
      for (let k = k0; k < k1; k += 3) {
        p[k] = z[k] + b0 * p[k]; p[k + 1] = z[k + 1] + b1 * p[k + 1]; p[k + 2] = z[k + 2] + b2 * p[k + 2];
      }
      return;
    }
    case K.GSF:
      if (L.k === 1) gsFwdSweep1(L, rhs, sol, r0, r1, scratch);
      else gsFwdSweep4(L, rhs, sol, r0, r1, scratch);
      return;
    case K.RES:
      residualAfterSweep(L, sol, L.r, r0, r1);
      return;
    case K.RESTRICT: {
      const pc = S.parts[l + 1];
      restrict(L, L.r, S.levels[l + 1].b, pc[tid], pc[tid + 1], scratch);
      return;
    }
    case K.APPLY_C: {
      const pc = S.parts[l + 1];
      applyC(L.next!, S.levels[l + 1].x, pc[tid], pc[tid + 1]);
      return;
    }
    case K.PROLONG:
      if (L.k === 1) prolong1(L, sol, r0, r1, scratch);
      else prolong4(L, sol, r0, r1, scratch);
      return;
    case K.CROSS:
      crossCouplings(L, sol, L.cross!, r0, r1);
      return;
    case K.GSB: {
      if (L.k === 1) gsBwd1(L, rhs, sol, r0, r1, scratch, L.cross);
      else gsBwd4(L, rhs, sol, r0, r1, scratch, L.cross);
      if (l === 0 && wk) {
        wk.cgDot(r.byteOffset, z.byteOffset, k0, k1, scratch.byteOffset);
        sums(3);
      } else if (l === 0) {
        // CG's r·z for the next step.
        let s0 = 0, s1 = 0, s2 = 0;
        for (let k = k0; k < k1; k += 3) { s0 += r[k] * z[k]; s1 += r[k + 1] * z[k + 1]; s2 += r[k + 2] * z[k + 2]; }
        P[po] = s0; P[po + 1] = s1; P[po + 2] = s2;
      }
      return;
    }
    case K.COARSEN: {
      const A = S.aux!;
      coarsenRows(L, r0, r1, A.G[tid], A.Gh[tid], A.T[tid], A.wc, A.nc, A.X, A.Y, A.scratch[tid]);
      return;
    }
    default:
      throw new Error(`unknown smoothing kernel ${cmd}`);
  }
}

/** Shared memory: the arena's during a WebAssembly solve, else a SharedArrayBuffer of its own. */
function sh(n: number): Float64Array {
  return arena ? arena.f64(n) : new Float64Array(new SharedArrayBuffer(8 * n));
}

function solveThreaded(
  pool: SmoothPool, T: number, levels: SolverLevel[], b: Float64Array, x: Float64Array,
  tol: number, maxIter: number, hooks: SmoothOptions,
): { iterations: number; residual: number } {
  const N = b.length;
  // Blocks, not threads, fix the arithmetic (hybrid Gauss–Seidel, partial sums): any thread may run any block.
  const nb = Math.max(T, Math.min(MAX_BLOCKS, Math.round(T * PARALLEL.blocksPerThread)));
  const parts = levels.map((L, l) => split(L.h, nb, !L.chol && L.h >= nb * MIN_BLOCK_ROWS && (l === 0 || 3 * L.n * L.k >= PARALLEL.minDofs)));
  let scratchLen = 0;
  levels.forEach((L, l) => {
    scratchLen = Math.max(scratchLen, 3 * L.w * L.k, L.next ? 12 * L.next.wc : 0);
    if (parts[l][1] < L.h) L.cross = sh(3 * L.n * L.k);
  });
  const S: ParSession = {
    T, levels, v: [b, x, sh(N), sh(N), sh(N), sh(N)], parts, partial: pool.partial, fargs: pool.fargs,
  };
  // One scratch row per thread, in the arena when the WebAssembly kernels run (they only see it).
  const scratches = arena ? Array.from({ length: T }, () => sh(scratchLen)) : undefined;
  // The workers get everything but the coarsest level's dense factor (this thread solves there).
  const wire = { T, v: S.v, parts, levels: levels.map((L) => ({ ...L, chol: undefined })), scratch: scratchLen, scratches };
  const scratch = scratches?.[0] ?? new Float64Array(scratchLen);
  const prof = process.env.STUDIO_SMOOTH_PROFILE ? new Map<string, number>() : undefined;
  const run = (cmd: number, l: number, pl: number): void => {
    const t = prof ? performance.now() : 0;
    if (isParallel(S, pl)) pool.dispatch(cmd, l, nb, (blk) => runPart(S, cmd, l, blk, scratch));
    else runPart(S, cmd, l, 0, scratch);
    if (prof) {
      const key = `${Object.keys(K).find((k) => K[k as keyof typeof K] === cmd)}@${l}`;
      prof.set(key, (prof.get(key) ?? 0) + performance.now() - t);
    }
  };
  pool.begin(T, wire);
  try {
    return pcgThreaded(S, run, tol, maxIter, hooks);
  } finally {
    pool.end();
    if (prof) {
      const claimed = Array.from({ length: T }, (_, t) => pool.ctrl[CTRL.CLAIMED + t]);
      console.error([...prof].map(([k, v]) => `${k} ${v.toFixed(0)}`).join(' | '), `| blocks run per thread (all solves) ${claimed.join(' ')}`);
    }
  }
}

function vcycleThreaded(S: ParSession, run: (cmd: number, l: number, pl: number) => void, l: number): void {
  const L = S.levels[l];
  if (L.chol) {
    denseSolve(L, L.b, L.x);
    return;
  }
  run(K.GSF, l, l);
  run(K.RES, l, l);
  run(K.RESTRICT, l, l + 1);
  vcycleThreaded(S, run, l + 1);
  run(K.APPLY_C, l, l + 1);
  run(K.PROLONG, l, l);
  if (isParallel(S, l)) run(K.CROSS, l, l);
  run(K.GSB, l, l);
}

/** pcg() with every vector pass split across the threads; sums of per-thread partials in thread order. */
function pcgThreaded(
  S: ParSession, run: (cmd: number, l: number, pl: number) => void, tol: number, maxIter: number, hooks: SmoothOptions,
): { iterations: number; residual: number } {
  const P = S.partial, f = S.fargs, pt = S.parts[0];
  // Blocks in order (deterministic); empty ones (a level 0 too small to split) wrote nothing.
  const sum = (o: number): number => {
    let s = 0;
    for (let t = 0; t + 1 < pt.length; t++) if (pt[t + 1] > pt[t]) s += P[8 * t + o];
    return s;
  };
  run(K.INIT, 0, 0);
  const bb0 = sum(0), bb1 = sum(1), bb2 = sum(2);
  const nb0 = bb0 > 0 ? Math.sqrt(bb0) : 1, nb1 = bb1 > 0 ? Math.sqrt(bb1) : 1, nb2 = bb2 > 0 ? Math.sqrt(bb2) : 1;
  const relOf = (o: number) => Math.max(Math.sqrt(sum(o)) / nb0, Math.sqrt(sum(o + 1)) / nb1, Math.sqrt(sum(o + 2)) / nb2);
  let rel = relOf(3);
  const rel0 = rel;
  let it = 0;
  let rz0 = 0, rz1 = 0, rz2 = 0;
  if (rel > tol) {
    vcycleThreaded(S, run, 0);
    rz0 = sum(0); rz1 = sum(1); rz2 = sum(2);
    f[0] = f[1] = f[2] = 0;
    run(K.PUPDATE, 0, 0);
  }
  while (rel > tol && it < maxIter) {
    if (hooks.checkCancelled?.() === true) throw new CancelledError();
    run(K.SPMV_DOT, 0, 0);
    const pq0 = sum(0), pq1 = sum(1), pq2 = sum(2);
    f[0] = pq0 > 0 ? rz0 / pq0 : 0; f[1] = pq1 > 0 ? rz1 / pq1 : 0; f[2] = pq2 > 0 ? rz2 / pq2 : 0;
    run(K.UPDATE, 0, 0);
    it++;
    rel = relOf(0);
    hooks.onProgress?.({
      stage: 'smoothing',
      iteration: it,
      residual: rel,
      fraction: rel <= tol ? 1 : Math.max(0, Math.min(1, Math.log(rel0 / rel) / Math.log(rel0 / tol))),
    });
    if (rel <= tol) break;
    vcycleThreaded(S, run, 0);
    const n0 = sum(0), n1 = sum(1), n2 = sum(2);
    f[0] = rz0 > 0 ? n0 / rz0 : 0; f[1] = rz1 > 0 ? n1 / rz1 : 0; f[2] = rz2 > 0 ? n2 / rz2 : 0;
    rz0 = n0; rz1 = n1; rz2 = n2;
    run(K.PUPDATE, 0, 0);
  }
  // The true residual of the returned solution.
  run(K.INIT, 0, 0);
  return { iterations: it, residual: relOf(3) };
}
