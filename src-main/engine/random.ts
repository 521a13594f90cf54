/**
 * Seeded randomness: the same seed gives the same numbers on every platform and run (weights of the
 * tiny network, random initial images, test data). Not for anything security-related.
 */

export type Rng = () => number;

/** mulberry32: a small, fast 32-bit PRNG. Returns uniform numbers in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal sample (Box–Muller; uses two uniforms per call, the sine half is discarded). */
export function gaussian(rng: Rng): number {
  const u1 = 1 - rng(); // (0, 1]: log is finite
  const u2 = rng();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Fill an array with N(mean, std²) samples. */
export function fillGaussian(out: Float32Array, rng: Rng, std = 1, mean = 0): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = mean + std * gaussian(rng);
  return out;
}
