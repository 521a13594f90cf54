/**
 * Colour spaces for the model-free look transfer (REFERENCE §6): sRGB (the engine's RgbImage, float
 * in [0, 1] whatever the file's bit depth) ↔ linear RGB ↔ CIE XYZ (D65) ↔ CIELAB.
 *
 * CIELAB is the working space of `match`: its axes are close to decorrelated for natural images
 * (Reinhard et al. used lαβ for the same reason) and distances in it are roughly perceptual, which is
 * what the look distance (./metrics.ts) measures. Conversions run on interleaved 3-channel arrays in
 * float64 arithmetic (Float32Array or Float64Array storage), one pixel at a time, with no clamping on
 * the way to Lab: a 16-bit input keeps its precision.
 *
 * Coming back, colours outside the sRGB gamut are either clipped per channel (`labToRgb`, what any
 * raw converter does) or pulled towards the grey of the same L until they fit (`labToRgbKeepL`): the
 * latter keeps CIE L* exactly, which *keep luminance* promises.
 */

/** D65 reference white (CIE 1931 2°), normalised to Y = 1. */
export const D65 = [0.95047, 1, 1.08883] as const;

// sRGB primaries (IEC 61966-2-1) to XYZ, and back.
const M = [0.4124564, 0.3575761, 0.1804375, 0.2126729, 0.7151522, 0.0721750, 0.0193339, 0.1191920, 0.9503041];
const MI = invert3(M);

const EPS = 216 / 24389; // (6/29)³
const KAPPA = 24389 / 27; // (29/3)³

function invert3(m: number[]): number[] {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [A / det, -(b * i - c * h) / det, (b * f - c * e) / det, B / det, (a * i - c * g) / det, -(a * f - c * d) / det, C / det, -(a * h - b * g) / det, (a * e - b * d) / det];
}

/** sRGB transfer function (decoding): encoded value in [0, 1] → linear light. */
export function srgbToLinearExact(c: number): number {
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** sRGB transfer function (encoding): linear light → encoded value. */
export function linearToSrgbExact(c: number): number {
  return c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055;
}

/**
 * The transfer functions through tables with linear interpolation on [0, 1] (the formula outside):
 * `**` dominated the conversions (0.2 s a megapixel there and back); the tables agree with the
 * formulas to < 2e-6 (decoding) and < 4e-6 (encoding; a 16-bit level is 1.5e-5), tested.
 */
const TABLE = 16384;
const tabulate = (fn: (c: number) => number) => Float64Array.from({ length: TABLE + 2 }, (_, i) => fn(Math.min(i, TABLE) / TABLE));
const DECODE = tabulate(srgbToLinearExact);
const ENCODE = tabulate(linearToSrgbExact);
const lookup = (table: Float64Array, exact: (c: number) => number, c: number): number => {
  if (!(c >= 0 && c <= 1)) return exact(c);
  const t = c * TABLE, i = Math.floor(t);
  return table[i] + (t - i) * (table[i + 1] - table[i]);
};

export const srgbToLinear = (c: number): number => lookup(DECODE, srgbToLinearExact, c);
export const linearToSrgb = (c: number): number => lookup(ENCODE, linearToSrgbExact, c);

const f = (t: number) => (t > EPS ? Math.cbrt(t) : (KAPPA * t + 16) / 116);
const fInv = (t: number) => {
  const t3 = t * t * t;
  return t3 > EPS ? t3 : (116 * t - 16) / KAPPA;
};

/** One sRGB colour → CIELAB, written to out[o..o+2]. */
export function rgbPixelToLab(r: number, g: number, b: number, out: Float32Array | Float64Array, o: number): void {
  const lr = srgbToLinear(r), lg = srgbToLinear(g), lb = srgbToLinear(b);
  const fx = f((M[0] * lr + M[1] * lg + M[2] * lb) / D65[0]);
  const fy = f(M[3] * lr + M[4] * lg + M[5] * lb);
  const fz = f((M[6] * lr + M[7] * lg + M[8] * lb) / D65[2]);
  out[o] = 116 * fy - 16;
  out[o + 1] = 500 * (fx - fy);
  out[o + 2] = 200 * (fy - fz);
}

/** One CIELAB colour → sRGB (unclipped; may leave [0, 1]), written to out[o..o+2]. */
export function labPixelToRgb(L: number, a: number, b: number, out: Float32Array | Float64Array, o: number): void {
  const fy = (L + 16) / 116;
  const x = D65[0] * fInv(fy + a / 500), y = fInv(fy), z = D65[2] * fInv(fy - b / 200);
  out[o] = linearToSrgb(MI[0] * x + MI[1] * y + MI[2] * z);
  out[o + 1] = linearToSrgb(MI[3] * x + MI[4] * y + MI[5] * z);
  out[o + 2] = linearToSrgb(MI[6] * x + MI[7] * y + MI[8] * z);
}

/** Interleaved sRGB (any range; [0, 1] is the gamut) → interleaved CIELAB (L in [0, 100]). */
export function rgbToLab(rgb: Float32Array | Float64Array, out: Float32Array | Float64Array = new Float32Array(rgb.length)): typeof out {
  for (let i = 0; i < rgb.length; i += 3) rgbPixelToLab(rgb[i], rgb[i + 1], rgb[i + 2], out, i);
  return out;
}

/** CIE L* of every pixel of an interleaved sRGB image. */
export function lightness(rgb: Float32Array | Float64Array): Float32Array {
  const L = new Float32Array(rgb.length / 3);
  for (let i = 0, p = 0; p < L.length; i += 3, p++) {
    const y = M[3] * srgbToLinear(rgb[i]) + M[4] * srgbToLinear(rgb[i + 1]) + M[5] * srgbToLinear(rgb[i + 2]);
    L[p] = 116 * f(y) - 16;
  }
  return L;
}

/** Interleaved CIELAB → interleaved sRGB, each channel clipped to [0, 1]. */
export function labToRgb(lab: Float32Array | Float64Array, out: Float32Array = new Float32Array(lab.length)): Float32Array {
  const t = new Float64Array(3);
  for (let i = 0; i < lab.length; i += 3) {
    labPixelToRgb(lab[i], lab[i + 1], lab[i + 2], t, 0);
    out[i] = t[0] < 0 ? 0 : t[0] > 1 ? 1 : t[0];
    out[i + 1] = t[1] < 0 ? 0 : t[1] > 1 ? 1 : t[1];
    out[i + 2] = t[2] < 0 ? 0 : t[2] > 1 ? 1 : t[2];
  }
  return out;
}

const inGamut = (t: Float64Array) => t[0] >= 0 && t[0] <= 1 && t[1] >= 0 && t[1] <= 1 && t[2] >= 0 && t[2] <= 1;

/**
 * Interleaved CIELAB → sRGB keeping every pixel's L*: an out-of-gamut colour keeps its hue angle and
 * L* and loses chroma (a, b scaled towards 0 by bisection) until it fits; the grey of the same L* is
 * always in gamut for 0 ≤ L* ≤ 100 (L* outside that is clamped first, the only change to L*). The
 * result is within ~1e-5 of the gamut boundary and clipped to it.
 */
export function labToRgbKeepL(lab: Float32Array | Float64Array, out: Float32Array = new Float32Array(lab.length)): Float32Array {
  const t = new Float64Array(3);
  for (let i = 0; i < lab.length; i += 3) {
    const L = Math.min(100, Math.max(0, lab[i]));
    const a = lab[i + 1], b = lab[i + 2];
    labPixelToRgb(L, a, b, t, 0);
    if (!inGamut(t)) {
      let lo = 0, hi = 1; // chroma scale: lo fits, hi does not
      for (let k = 0; k < 24; k++) {
        const s = 0.5 * (lo + hi);
        labPixelToRgb(L, s * a, s * b, t, 0);
        if (inGamut(t)) lo = s;
        else hi = s;
      }
      labPixelToRgb(L, lo * a, lo * b, t, 0);
    }
    out[i] = t[0] < 0 ? 0 : t[0] > 1 ? 1 : t[0];
    out[i + 1] = t[1] < 0 ? 0 : t[1] > 1 ? 1 : t[1];
    out[i + 2] = t[2] < 0 ? 0 : t[2] > 1 ? 1 : t[2];
  }
  return out;
}
