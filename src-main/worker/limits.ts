/**
 * Sizes a job cannot handle, refused before any work with what to do instead (exit 2), rather than
 * a crash from inside a library or a swap storm: a picture too thin at the working size for a
 * method's network or windows, or a working size whose compute needs more memory than the machine
 * can give. (Too many pixels: --max-pixels, io/images.ts; the full-resolution stage's memory:
 * worker/fullres.ts.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { StudioError } from '../errors.ts';
import os from 'node:os';
import { budgetFor, memoryFit, shortfall, WORKING_MEMORY, type MemoryBudget, type MemoryCost } from '../engine/memory.ts';
import { fitLongestSide, probeImage } from '../io/images.ts';

/** Memory a job may plan on: STUDIO_MEMORY_LIMIT (bytes, for tests and shared machines), else 80% of the machine's. */
export function memoryLimit(): number {
  const env = Number(process.env.STUDIO_MEMORY_LIMIT);
  return Number.isFinite(env) && env > 0 ? env : 0.8 * os.totalmem();
}

/**
 * Refuses, before any work, `subject` (width×height px) whose cost is over the budget (the machine's,
 * and on the WebAssembly backend its 4 GiB heap). The message says how much `what` needs and which
 * limit binds; `hint` gets the largest long side that fits.
 */
export function checkMemory(cost: MemoryCost, width: number, height: number, subject: string, what: string, hint: (side: number) => string, budget: MemoryBudget = { bytes: memoryLimit() }): void {
  const fit = memoryFit(cost, width, height, budget);
  if (fit.ok) return;
  throw new StudioError('IMAGE_TOO_LARGE', `${subject} ${shortfall(fit, what)}`, hint(fit.side));
}

/** The budget of a job on this engine's backend. */
export function workingBudget(): MemoryBudget {
  return budgetFor(tf.getBackend() ?? '', memoryLimit());
}

/**
 * The shortest side a method needs at its working size: Gatys' VGG19 halves the image four times
 * before relu5_1 (1 px there; below 16 px a pool leaves nothing, which crashed inside the backend);
 * PhotoWCT three times before relu4_1, with reflection padding that needs 2 px at every level; the smoothing's 3×3 windows with their 2-px padding; colour
 * match works on any picture.
 */
export const MIN_WORKING_SIDE = { gatys: 16, photo: 16, smooth: 8, match: 1 } as const;

const NAMES = { gatys: 'the artistic method', photo: 'PhotoWCT', smooth: 'the smoothing step', match: 'colour match' } as const;

/** Refuses a photo whose short side at the working size (`size` on the long side) is below the method's minimum. */
export async function checkWorkingSize(file: string, size: number | undefined, method: keyof typeof MIN_WORKING_SIDE, maxPixels?: number): Promise<void> {
  const info = await probeImage(file, { maxPixels });
  const { width, height } = fitLongestSide(info.width, info.height, size);
  const min = MIN_WORKING_SIDE[method];
  if (Math.min(width, height) >= min) {
    checkWorkingMemory(file, method, width, height);
    return;
  }
  // The size that would make the short side reach the minimum, if the photo has that many pixels.
  const long = Math.max(info.width, info.height), short = Math.min(info.width, info.height);
  const needed = Math.ceil((min * long) / short);
  const hint = short < min
    ? `the photo itself is only ${short} px on its short side: ${NAMES[method]} needs at least ${min}; crop it to a less narrow piece or use colour match`
    : needed <= 16384
      ? `raise --size to ${needed} or more, or crop the photo to a less narrow piece`
      : 'crop the photo to a less narrow piece';
  throw new StudioError('IMAGE_TOO_SMALL',
    `${file} is ${info.width}×${info.height}: at the working size it would be ${width}×${height} px, too thin for ${NAMES[method]} (at least ${min} px on each side)`, hint);
}

/** Refuses a working size whose estimated peak memory (WORKING_MEMORY) is over its backend's budget; names the --size that fits. */
export function checkWorkingMemory(file: string, method: keyof typeof WORKING_MEMORY, width: number, height: number): void {
  const budget = workingBudget();
  checkMemory(WORKING_MEMORY[method], width, height, `${file} at ${width}×${height} px`, NAMES[method],
    (fits) => (fits >= 16 ? `use --size ${fits} or less (the largest that fits${budget.heapBytes ? ' on this backend; a GPU backend is not held to the WebAssembly heap' : ''})` : 'close other programs, or use a machine with more memory'), budget);
}
