/**
 * Dense symmetric eigen-decomposition in float64 typed arrays, for the WCT covariances (REFERENCE.md
 * §3: up to 512×512 at relu4_1). mathjs's `eigs` took 155 s at 512; this takes well under a second.
 *
 * Method: Householder reduction to tridiagonal form, then the implicit QL algorithm with Wilkinson-like
 * shifts (EISPACK tred2/tql2, as in JAMA), both O(n³). Chosen over cyclic Jacobi by measurement
 * (bench/wct.ts, Node 20, 2 cores shared with other work): Householder+QL takes 3 ms / 80 ms /
 * 0.45–0.9 s at n = 64 / 256 / 512, cyclic Jacobi 12 ms / 0.83 s / 10.7 s (≈ 10 sweeps of 4n³).
 * Jacobi is kept (`jacobiEigen`) as an independent cross-check for the tests and the benchmark.
 *
 * Layout: EISPACK walks the columns of V; we keep the transpose W = Vᵀ instead, so every inner loop
 * runs over contiguous memory (rows of W), and transpose once at the end.
 *
 * Both stages also exist in WebAssembly (wasm/eigen.as.ts), bit-identical and used from n = 16 on;
 * STUDIO_EIGEN_WASM=0 keeps the JavaScript.
 */
import { Worker } from 'node:worker_threads';
import { StudioError } from '../../errors.ts';
import { EIGEN_WASM_BASE64 } from './eigen-wasm.gen.ts';

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Row-major n×n; column k is the unit eigenvector of values[k]. */
  vectors: Float64Array;
}

function checkInput(a: Float64Array, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new StudioError('BAD_ARGUMENT', `eigen-decomposition: matrix size must be a positive integer, got ${n}`);
  if (!(a instanceof Float64Array) || a.length !== n * n) {
    throw new StudioError('BAD_ARGUMENT', `eigen-decomposition: expected a Float64Array of ${n}×${n} = ${n * n} values, got ${a?.length ?? typeof a}`);
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new StudioError('BAD_ARGUMENT', `eigen-decomposition: the matrix holds a non-finite value (${a[i]}) at index ${i}`);
  }
}

/** Sorts eigenpairs ascending; `w` holds eigenvectors as rows. Returns V with them as columns. */
function sortedPairs(d: Float64Array, w: Float64Array, n: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const src = order[k];
    values[k] = d[src];
    const row = src * n;
    for (let i = 0; i < n; i++) vectors[i * n + k] = w[row + i];
  }
  return { values, vectors };
}

/**
 * Eigenvalues (ascending) and orthonormal eigenvectors of the symmetric n×n matrix `a` (row-major;
 * only symmetry is assumed, the lower triangle is what is read). `a` is not modified.
 */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  checkInput(a, n);
  // W = Vᵀ; starts as A (symmetric, so Aᵀ = A). W[j*n + k] is EISPACK's V[k][j].
  if (eigenWasmEnabled() && n >= WASM_MIN_N) return symmetricEigenWasm(a, n);
  const w = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(w, d, e, n);
  tql2(w, d, e, n);
  return sortedPairs(d, w, n);
}

/** Below this size the JavaScript is as fast (and there is nothing to copy). */
const WASM_MIN_N = 16;

/** Whether the solver runs its WebAssembly build (default yes; STUDIO_EIGEN_WASM=0: the JavaScript). */
export function eigenWasmEnabled(): boolean {
  return process.env.STUDIO_EIGEN_WASM !== '0' && typeof WebAssembly === 'object';
}

interface EigenKernels {
  tred2(w: number, d: number, e: number, n: number): void;
  /** 0, or −(l + 1) when eigenvalue l did not converge. */
  tql2(w: number, d: number, e: number, n: number): number;
}
let wasm: { memory: WebAssembly.Memory; k: EigenKernels } | undefined;
let compiled: WebAssembly.Module | undefined;
const eigenModule = () => (compiled ??= new WebAssembly.Module(Buffer.from(EIGEN_WASM_BASE64, 'base64')));

/**
 * The same two stages in WebAssembly (wasm/eigen.as.ts: line-for-line ports, bit-identical, the
 * element-wise loops two lanes wide). Measured at n = 512 in bench/wct.ts.
 */
function symmetricEigenWasm(a: Float64Array, n: number): SymmetricEigen {
  if (!wasm) {
    const memory = new WebAssembly.Memory({ initial: 1 });
    wasm = { memory, k: new WebAssembly.Instance(eigenModule(), { env: { memory } }).exports as unknown as EigenKernels };
  }
  const { memory, k } = wasm;
  const bytes = 8 * (n * n + 2 * n);
  const have = memory.buffer.byteLength;
  if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
  const heap = new Float64Array(memory.buffer, 0, n * n + 2 * n);
  heap.set(a);
  const [w, d, e] = [0, 8 * n * n, 8 * (n * n + n)];
  k.tred2(w, d, e, n);
  const status = k.tql2(w, d, e, n);
  if (status < 0) throw new StudioError('INTERNAL', `eigen-decomposition did not converge (eigenvalue ${-status - 1} of ${n} after 60 QL iterations)`);
  return sortedPairs(heap.slice(n * n, n * n + n), heap.subarray(0, n * n), n);
}

// A second thread for the solver: WCT needs two decompositions a level (the content's covariance and
// the style's), independent of each other, and the solver is one thread. One helper worker, started on
// first use and kept (unref'd), runs the WebAssembly build on a memory of its own; the caller's thread
// runs the other decomposition meanwhile (measured: WCT at relu4_1 of a 1024×512 image ~0.5 → ~0.35 s).
const HELPER = `
const { parentPort, workerData } = require('node:worker_threads');
const memory = new WebAssembly.Memory({ initial: 1 });
const k = new WebAssembly.Instance(workerData, { env: { memory } }).exports;
parentPort.on('message', ({ id, a, n }) => {
  try {
    const bytes = 8 * (n * n + 2 * n);
    if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
    const heap = new Float64Array(memory.buffer, 0, n * n + 2 * n);
    heap.set(a);
    k.tred2(0, 8 * n * n, 8 * (n * n + n), n);
    const status = k.tql2(0, 8 * n * n, 8 * (n * n + n), n);
    const w = heap.slice(0, n * n), d = heap.slice(n * n, n * n + n);
    parentPort.postMessage({ id, status, w, d }, [w.buffer, d.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

interface HelperReply { id: number; status?: number; w?: Float64Array; d?: Float64Array; error?: string }
let helper: { worker: Worker; pending: Map<number, { resolve(r: HelperReply): void; reject(e: Error): void }>; busy: number } | undefined;
let nextId = 0;

function helperWorker(): NonNullable<typeof helper> {
  if (helper) return helper;
  // The compiled module itself: V8 shares its code (and its optimised tier) with the worker.
  const worker = new Worker(HELPER, { eval: true, workerData: eigenModule() });
  const h = { worker, pending: new Map<number, { resolve(r: HelperReply): void; reject(e: Error): void }>(), busy: 0 };
  const failAll = (e: Error) => {
    if (helper === h) helper = undefined;
    for (const p of h.pending.values()) p.reject(e);
    h.pending.clear();
  };
  worker.on('message', (r: HelperReply) => {
    const p = h.pending.get(r.id);
    h.pending.delete(r.id);
    if (h.pending.size === 0) worker.unref();
    p?.resolve(r);
  });
  worker.on('error', (e) => failAll(e instanceof Error ? e : new Error(String(e))));
  worker.on('exit', (code) => failAll(new Error(`the eigen-solver's thread exited (${code})`)));
  worker.unref();
  helper = h;
  return h;
}

/**
 * symmetricEigen on the helper thread, so that the caller's thread can do other work meanwhile (the
 * same bits: the same WebAssembly build). Where the WebAssembly build is off, or the matrix is small,
 * or the helper cannot run, it runs here.
 */
export async function symmetricEigenInBackground(a: Float64Array, n: number): Promise<SymmetricEigen> {
  checkInput(a, n);
  if (!eigenWasmEnabled() || n < BACKGROUND_MIN_N || process.env.STUDIO_EIGEN_THREAD === '0') return symmetricEigen(a, n);
  let reply: HelperReply;
  try {
    const h = helperWorker();
    const id = nextId++;
    reply = await new Promise<HelperReply>((resolve, reject) => {
      h.pending.set(id, { resolve, reject });
      h.worker.ref(); // keeps the process up until the answer comes
      h.worker.postMessage({ id, a, n });
    });
  } catch {
    return symmetricEigen(a, n); // the helper failed to start or died: here, then
  }
  if (reply.error) throw new StudioError('INTERNAL', `eigen-decomposition failed on its thread: ${reply.error}`);
  if (reply.status! < 0) throw new StudioError('INTERNAL', `eigen-decomposition did not converge (eigenvalue ${-reply.status! - 1} of ${n} after 60 QL iterations)`);
  return sortedPairs(reply.d!, reply.w!, n);
}

/** Below this size a decomposition takes less than a message round trip. */
const BACKGROUND_MIN_N = 96;

/** Householder tridiagonalisation: d = diagonal, e = sub-diagonal (e[0] = 0), W = the transform, transposed. */
function tred2(w: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = w[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = w[j * n + i - 1];
        w[j * n + i] = 0;
        w[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = d[j];
        w[i * n + j] = f;
        g = e[j] + w[rj + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const v = w[rj + k];
          g += v * d[k];
          e[k] += v * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) w[rj + k] -= f * e[k] + g * d[k];
        d[j] = w[rj + i - 1];
        w[rj + i] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    const ri = i * n;
    const ri1 = (i + 1) * n;
    w[ri + n - 1] = w[ri + i];
    w[ri + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = w[ri1 + k] / h;
      for (let j = 0; j <= i; j++) {
        const rj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += w[ri1 + k] * w[rj + k];
        for (let k = 0; k <= i; k++) w[rj + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) w[ri1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = w[j * n + n - 1];
    w[j * n + n - 1] = 0;
  }
  w[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

const hypot = (a: number, b: number): number => {
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) { const r = y / x; return x * Math.sqrt(1 + r * r); }
  if (y === 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
};

/** Implicit QL on the tridiagonal (d, e), accumulating the rotations into the rows of W. */
function tql2(w: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new StudioError('INTERNAL', `eigen-decomposition did not converge (eigenvalue ${l} of ${n} after 60 QL iterations)`);
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          // Rotate eigenvector rows i and i+1 of W (columns of V).
          const ri = i * n;
          const ri1 = ri + n;
          for (let k = 0; k < n; k++) {
            const hk = w[ri1 + k];
            const vk = w[ri + k];
            w[ri1 + k] = s * vk + c * hk;
            w[ri + k] = c * vk - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/**
 * Cyclic Jacobi eigen-decomposition (same contract as `symmetricEigen`). Slower (see the header);
 * kept as an independent check of `symmetricEigen` and for the benchmark.
 */
export function jacobiEigen(a: Float64Array, n: number, maxSweeps = 50): SymmetricEigen {
  checkInput(a, n);
  const m = Float64Array.from(a);
  // Symmetrise from the lower triangle so the contract matches symmetricEigen's.
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) m[j * n + i] = m[i * n + j];
  const w = new Float64Array(n * n); // rows are eigenvectors
  for (let i = 0; i < n; i++) w[i * n + i] = 1;
  let norm = 0;
  for (let i = 0; i < n * n; i++) norm += m[i] * m[i];
  const tol = 1e-30 * norm;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += m[i * n + j] * m[i * n + j];
    if (off <= tol) {
      const d = new Float64Array(n);
      for (let i = 0; i < n; i++) d[i] = m[i * n + i];
      return sortedPairs(d, w, n);
    }
    for (let p = 0; p < n - 1; p++) {
      const rp = p * n;
      for (let q = p + 1; q < n; q++) {
        const rq = q * n;
        const apq = m[rp + q];
        if (apq === 0 || Math.abs(apq) < 1e-300) continue;
        const theta = (m[rq + q] - m[rp + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ A J on rows p, q (contiguous), then columns p, q; the matrix stays symmetric.
        for (let k = 0; k < n; k++) {
          const xp = m[rp + k];
          const xq = m[rq + k];
          m[rp + k] = c * xp - s * xq;
          m[rq + k] = s * xp + c * xq;
        }
        for (let k = 0; k < n; k++) {
          const rk = k * n;
          const xp = m[rk + p];
          const xq = m[rk + q];
          m[rk + p] = c * xp - s * xq;
          m[rk + q] = s * xp + c * xq;
        }
        for (let k = 0; k < n; k++) {
          const xp = w[rp + k];
          const xq = w[rq + k];
          w[rp + k] = c * xp - s * xq;
          w[rq + k] = s * xp + c * xq;
        }
      }
    }
  }
  throw new StudioError('INTERNAL', `Jacobi eigen-decomposition did not converge in ${maxSweeps} sweeps (n = ${n})`);
}
