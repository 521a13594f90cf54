/**
 * PhotoWCT's second stage (REFERENCE §3), as the pipeline calls it: the exact closed-form smoothing
 * (smooth.ts on the CPU, smooth-tensor.ts on a GPU), its fast approximation (guided-filter.ts), or
 * none. Returns the image and what a report needs to say about how it was made.
 */
import type { RgbImage } from '../image.ts';
import { backendInfo } from '../backend.ts';
import { StudioError } from '../../errors.ts';
import { smooth, type SmoothProgress } from './smooth.ts';
import { smoothWithTensors } from './smooth-tensor.ts';
import { guidedFilter } from './guided-filter.ts';
import type { SmoothParams } from '../../protocol.ts';

export type SmoothingMode = 'exact' | 'fast' | 'none';

export interface SmoothingReport {
  mode: SmoothingMode;
  /** Exact mode: where the solve ran ('cpu' multigrid PCG or 'tensor' ops on the backend). */
  solver?: 'cpu' | 'tensor';
  /** The cpu solver: whether its kernels ran in WebAssembly or JavaScript. */
  kernels?: 'webassembly' | 'javascript';
  alpha?: number;
  tol?: number;
  affinity?: string;
  iterations?: number;
  residual?: number;
  converged?: boolean;
  radius?: number;
  eps?: number;
  width: number;
  height: number;
  ms: number;
}

export interface SmoothingHooks {
  onProgress?: (p: SmoothProgress) => void;
  checkCancelled?: () => void | boolean;
}

/** The solver 'auto' picks: tensor ops where the backend is a hardware GPU, else the CPU multigrid. */
export function autoSolver(): 'cpu' | 'tensor' {
  const b = backendInfo();
  if (b?.name === 'tfjs-node-gpu') return 'tensor';
  if (b?.name === 'webgpu' && b.adapter && !b.adapter.software) return 'tensor';
  return 'cpu';
}

export async function runSmoothing(
  content: RgbImage, stylized: RgbImage, mode: SmoothingMode, params: Omit<SmoothParams, 'mode'>, hooks: SmoothingHooks = {},
): Promise<{ image: RgbImage; report: SmoothingReport }> {
  const t0 = performance.now();
  const { width, height } = stylized;
  if (content.width !== width || content.height !== height) {
    throw new StudioError('BAD_ARGUMENT', `the stylised image is ${width}×${height} but the content image is ${content.width}×${content.height}`);
  }
  if (mode === 'none') return { image: stylized, report: { mode, width, height, ms: 0 } };
  if (mode === 'fast') {
    hooks.checkCancelled?.();
    const image = guidedFilter(content, stylized, { radius: params.radius, eps: params.eps });
    return { image, report: { mode, radius: params.radius, eps: params.eps, width, height, ms: performance.now() - t0 } };
  }
  const solver = params.solver === 'auto' ? autoSolver() : params.solver;
  const opts = {
    alpha: params.alpha, tol: params.tol, affinity: params.affinity, maxIter: params.maxIter,
    onProgress: hooks.onProgress, checkCancelled: hooks.checkCancelled,
  };
  // smooth() may be synchronous or return a promise (its thread pool): await covers both.
  const cpu = solver === 'tensor' ? undefined : await smooth(content, stylized, opts);
  const r = cpu ?? await smoothWithTensors(content, stylized, opts);
  return {
    image: r.image,
    report: {
      mode, solver, kernels: cpu?.kernels, alpha: params.alpha, tol: params.tol, affinity: params.affinity,
      iterations: r.iterations, residual: r.residual, converged: r.converged, width, height, ms: performance.now() - t0,
    },
  };
}
