/**
 * Exact IEEE 754 conversions between float32 and the 16-bit formats (binary16 "half" and bfloat16),
 * written out bit by bit so that every cast rounds to nearest, ties to even, exactly as hardware and
 * NumPy/PyTorch do (including subnormals, overflow to ±Inf and NaN). The float32 value of a JS number
 * is taken first (Math.fround), so the result is always the float32 → float16 cast.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Largest finite half: 65504. Values from 65520 up round to +Inf. */
export const F16_MAX = 65504;
/** Smallest positive subnormal half: 2^-24. */
export const F16_MIN_SUBNORMAL = 2 ** -24;
/** Smallest positive normal half: 2^-14. */
export const F16_MIN_NORMAL = 2 ** -14;

/** float32 → binary16 bits, round to nearest even. NaN stays NaN (quiet, sign and top payload kept). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00; // NaN / ±Inf
  const e = exp - 127 + 15; // biased half exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow → ±Inf
  if (e <= 0) {
    // Half subnormal (or zero): value = m · 2^-24 with m = M >> (14 − e), M the 24-bit significand.
    if (e < -10) return sign; // below 2^-25: rounds to ±0
    const M = mant | 0x800000;
    const shift = 14 - e; // 14 … 24
    const m = M >>> shift;
    const rem = M & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry into 0x400 gives the smallest normal, whose encoding is exactly sign | 0x400.
    return sign | (rem > half || (rem === half && (m & 1) === 1) ? m + 1 : m);
  }
  const m = mant >>> 13;
  const rem = mant & 0x1fff;
  let h = (e << 10) | m;
  // Round; a carry out of the mantissa bumps the exponent (and 0x7bff + 1 = 0x7c00 = Inf), as it should.
  if (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1)) h += 1;
  return sign | h;
}

/** binary16 bits → float32 value (exact: every half is a float32). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** The float32 value rounded to the nearest half (the fp16 round trip). */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Table of all 65536 half values: decoding whole tensors is then one lookup per element. */
let F16_TABLE: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16BitsToF32(h);
  }
  return F16_TABLE;
}

export function float32ToFloat16Array(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function float16ToFloat32Array(src: ArrayLike<number>): Float32Array {
  const t = f16Table();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i] & 0xffff];
  return out;
}

/** float32 → bfloat16 bits (the top 16 bits of the float32), round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff; // quiet NaN
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** bfloat16 bits → float32 value (exact). */
export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

export function bfloat16ToFloat32Array(src: ArrayLike<number>): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = (src[i] & 0xffff) << 16;
  return out;
}

export function float32ToBfloat16Array(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}
