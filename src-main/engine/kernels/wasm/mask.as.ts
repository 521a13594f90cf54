// ReLU's mask for the backward pass of VGG19's conv + bias + ReLU layers (../../models/vgg19-net.ts), in
// AssemblyScript, compiled by scripts/build-wasm.mjs into ../mask-wasm.gen.ts and run on the tfjs
// WebAssembly backend's own memory (../mask.ts): y > 0 as one byte an element, and dy where the mask is
// set. tfjs-wasm's Greater against a scalar and a Multiply by the cast mask take three passes, the
// broadcast one a float at a time. No allocation, no data segment, no state.

/** mask[i] = y[i] > 0 (1 or 0), n elements. */
export function reluMask(y: usize, n: i32, mask: usize): void {
  const zero = f32x4.splat(0);
  const one = i8x16.splat(1);
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const p = y + (<usize>i << 2);
    // Four comparisons (lanes of all ones or zeros) narrowed to 16 bytes of 0xff or 0, then to 1 or 0.
    const a = i16x8.narrow_i32x4_s(f32x4.gt(v128.load(p), zero), f32x4.gt(v128.load(p + 16), zero));
    const b = i16x8.narrow_i32x4_s(f32x4.gt(v128.load(p + 32), zero), f32x4.gt(v128.load(p + 48), zero));
    v128.store(mask + <usize>i, v128.and(i8x16.narrow_i16x8_s(a, b), one));
  }
  for (; i < n; i++) store<u8>(mask + <usize>i, load<f32>(y + (<usize>i << 2)) > 0 ? 1 : 0);
}

/** out[i] = mask[i] ? dy[i] : 0, n elements. */
export function maskedGrad(dy: usize, mask: usize, n: i32, out: usize): void {
  const zero = i8x16.splat(0);
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    // 16 mask bytes widened to four masks of 32-bit lanes (all ones where set).
    const m8 = i8x16.ne(v128.load(mask + <usize>i), zero);
    const lo = i16x8.extend_low_i8x16_s(m8), hi = i16x8.extend_high_i8x16_s(m8);
    const p = dy + (<usize>i << 2), q = out + (<usize>i << 2);
    v128.store(q, v128.and(v128.load(p), i32x4.extend_low_i16x8_s(lo)));
    v128.store(q + 16, v128.and(v128.load(p + 16), i32x4.extend_high_i16x8_s(lo)));
    v128.store(q + 32, v128.and(v128.load(p + 32), i32x4.extend_low_i16x8_s(hi)));
    v128.store(q + 48, v128.and(v128.load(p + 48), i32x4.extend_high_i16x8_s(hi)));
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), load<u8>(mask + <usize>i) != 0 ? load<f32>(dy + (<usize>i << 2)) : 0);
}
