/**
 * Sizes a job cannot handle, refused before any work with what to do instead (exit 2), rather than
 * a crash from inside a library: a picture too thin at the working size for a method's network or
 * windows. (Too many pixels: --max-pixels, io/images.ts; too much memory for a full-resolution
 * result: worker/fullres.ts.)
 */
import { StudioError } from '../errors.ts';
import { fitLongestSide, probeImage } from '../io/images.ts';

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
  if (Math.min(width, height) >= min) return;
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
