/**
 * Training photos from a folder: decoded once (shorter side brought to about twice the crop, never
 * below it) and kept in memory, then sampled as random crops with random horizontal flips. The
 * order of crops comes from the caller's seeded generator, so a run can be repeated exactly.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { StudioError } from '../errors.ts';
import { probeImage, readImage } from './images.ts';

const EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.avif']);

export interface Photo {
  path: string;
  width: number;
  height: number;
  data: Float32Array; // RGB [0,1]
}

export async function loadPhotoFolder(dir: string, crop: number, opts: { limit?: number; onSkip?(file: string, reason: string): void } = {}): Promise<Photo[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => EXTENSIONS.has(path.extname(n).toLowerCase())).sort();
  } catch {
    throw new StudioError('FILE_NOT_FOUND', `no such folder of photos: ${dir}`);
  }
  const photos: Photo[] = [];
  for (const name of names.slice(0, opts.limit ?? Infinity)) {
    const file = path.join(dir, name);
    try {
      const info = await probeImage(file);
      const short = Math.min(info.width, info.height);
      const long = Math.max(info.width, info.height);
      const target = Math.max(crop, Math.min(short, 2 * crop));
      const img = await readImage(file, { maxSide: Math.ceil((target * long) / short), upscale: short < crop });
      photos.push({ path: file, width: img.width, height: img.height, data: img.data });
    } catch (e) {
      opts.onSkip?.(file, (e as Error).message);
    }
  }
  if (photos.length === 0) throw new StudioError('BAD_ARGUMENT', `no usable photos in ${dir}`, 'give a folder of JPEG, PNG, WebP or TIFF photos');
  return photos;
}

/** A batch [n, crop, crop, 3] of RGB on the 0–255 scale: random photo, random crop, random flip. */
export function sampleBatch(photos: Photo[], n: number, crop: number, rng: () => number): Float32Array {
  const out = new Float32Array(n * crop * crop * 3);
  for (let b = 0; b < n; b++) {
    const p = photos[Math.floor(rng() * photos.length)];
    const x0 = Math.floor(rng() * (p.width - crop + 1));
    const y0 = Math.floor(rng() * (p.height - crop + 1));
    const flip = rng() < 0.5;
    for (let y = 0; y < crop; y++) {
      for (let x = 0; x < crop; x++) {
        const sx = x0 + (flip ? crop - 1 - x : x);
        const src = ((y0 + y) * p.width + sx) * 3;
        const dst = ((b * crop + y) * crop + x) * 3;
        out[dst] = 255 * p.data[src];
        out[dst + 1] = 255 * p.data[src + 1];
        out[dst + 2] = 255 * p.data[src + 2];
      }
    }
  }
  return out;
}
