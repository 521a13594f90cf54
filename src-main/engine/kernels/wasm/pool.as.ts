// The gradient of VGG19's 2×2, stride-2 max pooling, in AssemblyScript, compiled by scripts/build-wasm.mjs
// into ../pool-wasm.gen.ts and run on the tfjs WebAssembly backend's own memory (../pool.ts). tfjs-wasm's
// own MaxPoolGrad is a general window loop, one float at a time (1.7 s for a 512² VGG19's four pools).
//
// Each window's gradient goes to the first position (row by row) that holds the window's maximum, as
// PyTorch's and Torch7's max pooling (neural-style's, FastPhotoStyle's) choose. tfjs-wasm's own kernel
// gives a tie to the last position, and a window whose maximum is ≤ 0 to its first position even where
// that is not the maximum (its running maximum starts at the smallest positive float); after a ReLU such
// windows are common. 4 channels at a time (NHWC). No allocation, no data segment, no state.

/**
 * dx [h, w, c] from x [h, w, c], its pooled y [ho, wo, c] and dy [ho, wo, c], windows at (2·oy, 2·ox);
 * a window cut by the bottom or right edge ('same' pooling of an odd size) uses the positions inside.
 */
export function maxPoolGrad2x2(x: usize, y: usize, dy: usize, dx: usize, h: i32, w: i32, c: i32, ho: i32, wo: i32): void {
  // Rows and columns no window reaches ('valid' pooling of an odd size) get no gradient.
  memory.fill(dx, 0, <usize>h * <usize>w * <usize>c << 2);
  const row = <usize>w * <usize>c << 2, px = <usize>c << 2;
  const c4 = c & ~3;
  for (let oy = 0; oy < ho; oy++) {
    const iy = oy * 2;
    const down = iy + 1 < h;
    for (let ox = 0; ox < wo; ox++) {
      const ix = ox * 2;
      const right = ix + 1 < w;
      const p00 = <usize>iy * row + <usize>ix * px;
      const p01 = p00 + px, p10 = p00 + row, p11 = p10 + px;
      const q = (<usize>oy * <usize>wo + <usize>ox) * px;
      let k = 0;
      for (; k < c4; k += 4) {
        const o = <usize>k << 2;
        const m = v128.load(y + q + o), g = v128.load(dy + q + o);
        let taken = f32x4.eq(v128.load(x + p00 + o), m);
        v128.store(dx + p00 + o, v128.and(g, taken));
        if (right) {
          const t = v128.andnot(f32x4.eq(v128.load(x + p01 + o), m), taken);
          v128.store(dx + p01 + o, v128.and(g, t));
          taken = v128.or(taken, t);
        }
        if (down) {
          const t = v128.andnot(f32x4.eq(v128.load(x + p10 + o), m), taken);
          v128.store(dx + p10 + o, v128.and(g, t));
          taken = v128.or(taken, t);
          if (right) v128.store(dx + p11 + o, v128.and(g, v128.andnot(f32x4.eq(v128.load(x + p11 + o), m), taken)));
        }
      }
      for (; k < c; k++) {
        const o = <usize>k << 2;
        const m = load<f32>(y + q + o), g = load<f32>(dy + q + o);
        if (load<f32>(x + p00 + o) == m) store<f32>(dx + p00 + o, g);
        else if (right && load<f32>(x + p01 + o) == m) store<f32>(dx + p01 + o, g);
        else if (down && load<f32>(x + p10 + o) == m) store<f32>(dx + p10 + o, g);
        else if (down && right && load<f32>(x + p11 + o) == m) store<f32>(dx + p11 + o, g);
      }
    }
  }
}
