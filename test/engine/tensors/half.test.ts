import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  f32ToF16Bits, f16BitsToF32, roundToF16, float32ToFloat16Array, float16ToFloat32Array,
  f32ToBf16Bits, bf16BitsToF32, F16_MAX,
} from '../../../src-main/engine/tensors/half.ts';

const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;

test('float32 → float16 on exact known values', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the halfway point to 65536
    [65520, 0x7c00], // halfway to the next (unrepresentable) step: ties to even → Inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // exactly half of it: ties to even → 0
    [-(2 ** -25), 0x8000],
    [2 ** -25 * 1.5, 0x0001], // above the tie → 2^-24
    [2 ** -26, 0x0000],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps of subnormal → even (2)
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 → 1 (even)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9 → 1+2^-9 (even)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie → up
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal into the smallest normal
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
  ];
  for (const [x, bits] of cases) assert.equal(hex(f32ToF16Bits(x)), hex(bits), `f16(${x})`);
});

test('float16 → float32 is exact, and NaN / -0 survive a round trip', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0x7bff), F16_MAX);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.ok(Number.isNaN(roundToF16(NaN)));
  assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
  assert.ok(Object.is(roundToF16(-0), -0));
  assert.equal(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assert.equal(roundToF16(2 ** -25 * 1.5), 2 ** -24);
  // every finite half maps back to itself
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    assert.equal(f32ToF16Bits(f16BitsToF32(h)), h);
  }
});

test('array conversions agree with the scalar ones', () => {
  const x = new Float32Array([0, 1, -1.5, 65520, 2 ** -25, 1 + 3 * 2 ** -11, NaN, 123.456]);
  const h = float32ToFloat16Array(x);
  assert.deepEqual([...h], [...x].map(f32ToF16Bits));
  const back = float16ToFloat32Array(h);
  [...x].forEach((v, i) => assert.ok(Object.is(back[i], Math.fround(roundToF16(v))), `${v}`));
});

test('bfloat16 rounds to nearest even', () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie → even (1)
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie → even (1 + 2^-6)
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
});
