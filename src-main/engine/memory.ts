/**
 * How much memory a job needs at a size, and the largest size that fits: pure arithmetic, shared by
 * the engine (which refuses a job before it starts: worker/limits.ts) and the window (which warns
 * beside the size field). Browser-safe: the machine's figures come in as arguments.
 *
 * A method's peak is about base + perPixel · pixels (bytes) of the machine's memory, of which
 * heapPerPixel · pixels lives in the WebAssembly engine's heap (its tensors). Measured on the
 * WebAssembly backend with the full-width network (README, Measured figures; the heap as the
 * engine's memory size after the job, which only grows): Gatys 1.77 GB RSS and a 1.58 GB heap at 512²
 * (3 L-BFGS iterations); PhotoWCT's cascade a 1.46 GB heap at 1024×512 and, with the exact smoothing
 * (plain JavaScript memory, not the heap), 3.0 GB RSS; the exact smoothing 0.63 GB at 1024×640 and
 * 1.74 GB at 2048×1280; colour match about 0.3 GB at 1024×640.
 */

/** Size with the longest side `maxSide` (aspect kept, each side ≥ 1); unchanged if already smaller, unless `upscale`. */
export function fitLongestSide(width: number, height: number, maxSide?: number, upscale = false): { width: number; height: number } {
  const longest = Math.max(width, height);
  if (maxSide === undefined || maxSide === longest || (maxSide > longest && !upscale)) return { width, height };
  const s = maxSide / longest;
  return { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
}

export interface MemoryCost {
  base: number;
  perPixel: number;
  /** The part of perPixel in the engine's tensors (the WebAssembly heap); default all of it. */
  heapPerPixel?: number;
}

export const WORKING_MEMORY = {
  gatys: { base: 0.3e9, perPixel: 6_000, heapPerPixel: 5_700 },
  photo: { base: 0.4e9, perPixel: 5_000, heapPerPixel: 3_000 },
  smooth: { base: 0.2e9, perPixel: 700, heapPerPixel: 0 },
  match: { base: 0.15e9, perPixel: 250 },
} as const satisfies Record<string, MemoryCost>;

export type WorkingMethod = keyof typeof WORKING_MEMORY;

/** The WebAssembly engine's address space (tfjs-wasm grows its memory to 4 GiB at most, threaded or not). */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/**
 * What a job may use: the machine's budget, and on the WebAssembly backend also its 4 GiB heap,
 * which holds the pixel-proportional part (the tensors) whatever the machine has. GPU memory is not
 * estimated: a GPU backend is held to the machine's budget.
 */
export interface MemoryBudget {
  bytes: number;
  heapBytes?: number;
}

export function budgetFor(backend: string, machineBytes: number): MemoryBudget {
  return backend === 'wasm' ? { bytes: machineBytes, heapBytes: WASM_HEAP_BYTES } : { bytes: machineBytes };
}

export interface MemoryFit {
  ok: boolean;
  /** Bytes needed at this size. */
  need: number;
  /** The limit that binds: the machine's budget, or the part of the WebAssembly heap a job can use (90%). */
  limit: number;
  by: 'machine' | 'heap';
  /** The largest long side (px) that fits, at this aspect ratio. */
  side: number;
}

/** Whether width×height fits, and the largest long side that would (the need grows with the square of the side). */
export function memoryFit(cost: MemoryCost, width: number, height: number, budget: MemoryBudget): MemoryFit {
  const pixels = width * height;
  const need = cost.base + cost.perPixel * pixels;
  const long = Math.max(width, height);
  // Largest pixel count under each limit; the heap holds the per-pixel part only.
  const byMachine = Math.max(0, budget.bytes - cost.base) / cost.perPixel;
  const heapPerPixel = cost.heapPerPixel ?? cost.perPixel;
  // 90% of the heap: the engine's allocator fragments it.
  const byHeap = budget.heapBytes === undefined || heapPerPixel === 0 ? Infinity : (0.9 * budget.heapBytes) / heapPerPixel;
  const maxPixels = Math.min(byMachine, byHeap);
  const by = byHeap < byMachine ? 'heap' : 'machine';
  // A hair under the exact root: the short side is rounded when the photo is resized to it.
  const side = Math.floor(long * Math.sqrt(maxPixels / pixels) * 0.998);
  // The heap's limit as used above (90% of it), so that the need and the limit a message compares agree.
  return { ok: pixels <= maxPixels, need: by === 'heap' ? heapPerPixel * pixels : need, limit: by === 'heap' ? 0.9 * budget.heapBytes! : budget.bytes, by, side };
}

/** What a fit that fails needs (for `what`) against what it may have, in words the CLI and the window share. */
export function shortfall(fit: MemoryFit, what?: string): string {
  const gb = (b: number) => (b / 2 ** 30).toFixed(1);
  const whose = fit.by === 'heap' ? 'a WebAssembly engine can use (of its 4 GB)' : 'this machine can give';
  return `needs about ${gb(fit.need)} GB of memory${what ? ` for ${what}` : ''}, more than the ${gb(fit.limit)} GB ${whose}`;
}
