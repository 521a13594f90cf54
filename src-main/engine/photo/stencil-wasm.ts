/**
 * The smoothing solver's kernels in WebAssembly (every level's stencil and block kernels, transfers,
 * coarsening sums, matting affinity, CG's vector passes: wasm/stencil.as.ts, compiled by
 * scripts/build-wasm.mjs into stencil-wasm.gen.ts), and the arena their arrays live in.
 *
 * WebAssembly reads only its own linear memory, so a solve that uses these kernels allocates its
 * arrays from an Arena: a bump allocator over one shared WebAssembly.Memory (views zeroed, grown on
 * demand, set-up scratch released to a mark; the next solve reuses the memory). Its typed-array views are
 * ordinary Float64Arrays for the JavaScript kernels, SharedArrayBuffer-backed for the threads, and
 * their byteOffsets are the pointers the WebAssembly kernels take. Each thread instantiates the
 * module once per memory (the module has no state of its own).
 *
 * STUDIO_SMOOTH_WASM=0 turns them off (the JavaScript kernels, bit-identical, then run).
 */
import { STENCIL_WASM_BASE64 } from './stencil-wasm.gen.ts';

/** Pointers are byte offsets into the arena's memory; counts and rows are plain integers. */
export interface StencilKernels {
  spmv1(a: number, n: number, w: number, h: number, x: number, y: number, r0: number, r1: number): void;
  gsFwdSweep1(a: number, dinv: number, n: number, w: number, b: number, x: number, r0: number, r1: number, row: number): void;
  gsBwd1(a: number, dinv: number, n: number, w: number, h: number, b: number, x: number, r0: number, r1: number, row: number, cross: number): void;
  restrict1(w: number, h: number, B: number, r: number, R0: number, R1: number, row: number,
    wc: number, px: number, wx0: number, wx1: number, py: number, wy0: number, wy1: number, tmp: number): void;
  prolong1(w: number, B: number, x: number, r0: number, r1: number, row: number,
    wc: number, px: number, wx0: number, wx1: number, py: number, wy0: number, wy1: number, tmp: number): void;
  // Coarse levels (4×4 blocks).
  gsFwdSweep4(a: number, dinv: number, n: number, w: number, b: number, x: number, r0: number, r1: number, row: number): void;
  gsBwd4(a: number, dinv: number, n: number, w: number, h: number, b: number, x: number, r0: number, r1: number, row: number, cross: number): void;
  restrict4(w: number, h: number, B: number, r: number, R0: number, R1: number, u: number,
    wc: number, px: number, wx0: number, wx1: number, py: number, wy0: number, wy1: number, tmp: number): void;
  prolong4(w: number, B: number, x: number, r0: number, r1: number, u: number,
    wc: number, px: number, wx0: number, wx1: number, py: number, wy0: number, wy1: number, tmp: number): void;
  // Coarsening (set-up).
  gramRow(w: number, k: number, B: number, y: number, G: number, wc: number,
    Xp: number, Xw0: number, Xw1: number, Yp: number, Yw0: number, Yw1: number, g: number): void;
  xPassRow1(w: number, h: number, n: number, a: number, B: number, y: number, T: number, wc: number, Xp: number, Xw0: number, Xw1: number): void;
  xPassRow4(w: number, h: number, n: number, a: number, B: number, y: number, T: number, wc: number,
    Xp: number, Xw0: number, Xw1: number, ah: number, at: number, tmp: number): void;
  yPass(T: number, Gh: number, y: number, wc: number, nc: number, Yp: number, Yw0: number, Yw1: number, ylen: number): void;
  mattingAffinity(data: number, w: number, h: number, weights: number, epsd: number, scratch: number): void;
  // Either kind of level (k = 1 or 4 unknowns per node).
  residualAfterSweep(a: number, n: number, w: number, h: number, k: number, x: number, res: number, r0: number, r1: number): void;
  crossCouplings(a: number, n: number, w: number, h: number, k: number, x: number, cross: number, r0: number, r1: number): void;
  // Conjugate-gradient vector passes (values k0 ≤ k < k1; per-channel sums written to out).
  cgInit(b: number, q: number, r: number, k0: number, k1: number, out: number): void;
  cgDot(p: number, q: number, k0: number, k1: number, out: number): void;
  cgUpdate(x: number, p: number, r: number, q: number, k0: number, k1: number, a0: number, a1: number, a2: number, out: number): void;
  cgDirection(p: number, z: number, k0: number, k1: number, b0: number, b1: number, b2: number): void;
}

const PAGE = 65536;
/** The first page stays unused, so pointer 0 can mean "no array". */
const BASE = PAGE;
/** wasm32's limit (4 GiB); a shared memory must declare one, and only address space is reserved. */
const MAX_PAGES = 65536;

let compiled: WebAssembly.Module | undefined;
function stencilModule(): WebAssembly.Module {
  // ~21 KB: compiling it synchronously takes a few milliseconds.
  compiled ??= new WebAssembly.Module(Buffer.from(STENCIL_WASM_BASE64, 'base64'));
  return compiled;
}

/** Whether smoothing solves use the WebAssembly kernels (default yes; STUDIO_SMOOTH_WASM=0: no). */
export function wasmKernelsEnabled(): boolean {
  return process.env.STUDIO_SMOOTH_WASM !== '0' && typeof WebAssembly === 'object';
}

const instances = new WeakMap<WebAssembly.Memory, StencilKernels>();

/** This thread's instance of the kernels on `memory`. */
export function stencilKernels(memory: WebAssembly.Memory): StencilKernels {
  let k = instances.get(memory);
  if (!k) {
    k = new WebAssembly.Instance(stencilModule(), { env: { memory, abort: () => { throw new Error('stencil kernel aborted'); } } }).exports as unknown as StencilKernels;
    instances.set(memory, k);
  }
  return k;
}

/**
 * The arena of the last solve, kept for the next one: a WebAssembly.Memory cannot be freed, only
 * dropped for the garbage collector, which in measurement let three 1024×640 solves in a row hold
 * three arenas (peak 978 MB against 597 MB for one). Dropped after a while unused.
 */
let spare: Arena | undefined;
let spareTimer: ReturnType<typeof setTimeout> | undefined;
const SPARE_MS = 30_000;

/** An arena for a solve: the spare one, emptied, or a new one of `bytes`. */
export function takeArena(bytes: number): Arena {
  const a = spare ?? new Arena(bytes);
  spare = undefined;
  if (spareTimer) clearTimeout(spareTimer);
  a.reset();
  return a;
}

/** Hands a solve's arena back for the next one (its arrays must no longer be used). */
export function giveBackArena(a: Arena): void {
  spare = a;
  if (spareTimer) clearTimeout(spareTimer);
  spareTimer = setTimeout(() => { spare = undefined; }, SPARE_MS);
  spareTimer.unref?.();
}

export class Arena {
  readonly memory: WebAssembly.Memory;
  private top = BASE;
  /** Everything below this has been handed out before, and is zeroed again when handed out anew. */
  private dirty = BASE;
  private readonly buffers = new WeakSet<ArrayBufferLike>();

  /** `bytes`: the expected total, allocated up front (more is grown into on demand). Solves use takeArena(). */
  constructor(bytes: number) {
    const initial = Math.min(MAX_PAGES, Math.ceil((BASE + bytes) / PAGE));
    this.memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true });
  }

  /** Bytes handed out so far. */
  get used(): number {
    return this.top - BASE;
  }

  /** The allocation point, to release() back to: what was allocated since is given up (and zeroed for reuse). */
  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    if (mark < BASE || mark > this.top) throw new RangeError(`bad arena mark ${mark}`);
    this.top = mark;
  }

  /** Empties the arena: every view it handed out must be out of use. */
  reset(): void {
    this.top = BASE;
  }

  private take(bytes: number): number {
    const p = this.top;
    const end = p + Math.ceil(bytes / 8) * 8;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) throw new RangeError(`smoothing needs more than 4 GiB of WebAssembly memory (${(end / 2 ** 30).toFixed(1)} GiB)`);
      this.memory.grow(pages);
    }
    // Views come zeroed, as new typed arrays do: memory handed out before is cleared again.
    if (p < this.dirty) new Uint8Array(this.memory.buffer, p, Math.min(end, this.dirty) - p).fill(0);
    this.top = end;
    this.dirty = Math.max(this.dirty, end);
    return p;
  }

  f64(n: number): Float64Array {
    const p = this.take(8 * n); // first: it may grow the memory, and so replace its buffer
    return new Float64Array(this.buffer(), p, n);
  }

  f32(n: number): Float32Array {
    const p = this.take(4 * n);
    return new Float32Array(this.buffer(), p, n);
  }

  i32(n: number): Int32Array {
    const p = this.take(4 * n);
    return new Int32Array(this.buffer(), p, n);
  }

  /** Whether a view is one this arena handed out. */
  holds(v: ArrayBufferView): boolean {
    return this.buffers.has(v.buffer);
  }

  /** The memory's current buffer (a new object after each growth), remembered for holds(). */
  private buffer(): ArrayBuffer {
    const b = this.memory.buffer;
    this.buffers.add(b);
    return b;
  }
}
