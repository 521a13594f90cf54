// 2×2, stride-2 max pooling in AssemblyScript, compiled by scripts/build-wasm.mjs into ../pool-wasm.gen.ts
// and run on the tfjs WebAssembly backend's own memory (../pool.ts): the gradient of VGG19's pooling,
// and PhotoWCT's pooling with switches and its unpooling. tfjs-wasm's own MaxPoolGrad is a general
// window loop, one float at a time (1.7 s for a 512² VGG19's four pools); the switches took a 6-D
// transpose, an argMax, a max and a cast (0.6 s of a 512² cascade), the unpooling a one-hot product.
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

/**
 * PhotoWCT's encoder pooling: y [h2, w2, c] the 2×2, stride-2 maximum of x [h, w, c] (h2 = ⌊h/2⌋,
 * w2 = ⌊w/2⌋: an odd last row or column is dropped, as PyTorch's floor mode) and s [h2, w2, c] (int32)
 * the window position that held it, 2·row + column; the first maximum on ties, and a NaN taken as
 * PyTorch's max_pool2d_with_indices takes it (val > max || isnan(val)).
 */
export function maxPoolSwitches2x2(x: usize, h: i32, w: i32, c: i32, y: usize, s: usize): void {
  const h2 = h >> 1, w2 = w >> 1;
  const row = <usize>w * <usize>c << 2, px = <usize>c << 2;
  const c4 = c & ~3;
  for (let oy = 0; oy < h2; oy++) {
    for (let ox = 0; ox < w2; ox++) {
      const p00 = <usize>(oy * 2) * row + <usize>(ox * 2) * px;
      const q = (<usize>oy * <usize>w2 + <usize>ox) * px;
      let k = 0;
      for (; k < c4; k += 4) {
        const o = <usize>k << 2;
        let best = v128.load(x + p00 + o);
        let idx = i32x4.splat(0);
        let v = v128.load(x + p00 + px + o);
        let take = v128.or(f32x4.gt(v, best), f32x4.ne(v, v));
        best = v128.bitselect(v, best, take); idx = v128.bitselect(i32x4.splat(1), idx, take);
        v = v128.load(x + p00 + row + o);
        take = v128.or(f32x4.gt(v, best), f32x4.ne(v, v));
        best = v128.bitselect(v, best, take); idx = v128.bitselect(i32x4.splat(2), idx, take);
        v = v128.load(x + p00 + row + px + o);
        take = v128.or(f32x4.gt(v, best), f32x4.ne(v, v));
        best = v128.bitselect(v, best, take); idx = v128.bitselect(i32x4.splat(3), idx, take);
        v128.store(y + q + o, best);
        v128.store(s + q + o, idx);
      }
      for (; k < c; k++) {
        const o = <usize>k << 2;
        let best = load<f32>(x + p00 + o);
        let idx = 0;
        let v = load<f32>(x + p00 + px + o);
        if (v > best || v != v) { best = v; idx = 1; }
        v = load<f32>(x + p00 + row + o);
        if (v > best || v != v) { best = v; idx = 2; }
        v = load<f32>(x + p00 + row + px + o);
        if (v > best || v != v) { best = v; idx = 3; }
        store<f32>(y + q + o, best);
        store<i32>(s + q + o, idx);
      }
    }
  }
}

/**
 * PhotoWCT's decoder unpooling: out [h, w, c] zero but for each value of y [h2, w2, c] at the window
 * position s [h2, w2, c] names (as maxPoolSwitches2x2 recorded it); a last odd row or column stays zero.
 */
export function maxUnpool2x2(y: usize, s: usize, h2: i32, w2: i32, c: i32, out: usize, h: i32, w: i32): void {
  const row = <usize>w * <usize>c << 2, px = <usize>c << 2;
  if (h > h2 * 2) memory.fill(out + <usize>(h2 * 2) * row, 0, row);
  const c4 = c & ~3;
  for (let oy = 0; oy < h2; oy++) {
    if (w > w2 * 2) {
      memory.fill(out + <usize>(oy * 2) * row + <usize>(w2 * 2) * px, 0, px);
      memory.fill(out + <usize>(oy * 2 + 1) * row + <usize>(w2 * 2) * px, 0, px);
    }
    for (let ox = 0; ox < w2; ox++) {
      const p00 = <usize>(oy * 2) * row + <usize>(ox * 2) * px;
      const q = (<usize>oy * <usize>w2 + <usize>ox) * px;
      let k = 0;
      for (; k < c4; k += 4) {
        const o = <usize>k << 2;
        const v = v128.load(y + q + o), at = v128.load(s + q + o);
        v128.store(out + p00 + o, v128.and(v, i32x4.eq(at, i32x4.splat(0))));
        v128.store(out + p00 + px + o, v128.and(v, i32x4.eq(at, i32x4.splat(1))));
        v128.store(out + p00 + row + o, v128.and(v, i32x4.eq(at, i32x4.splat(2))));
        v128.store(out + p00 + row + px + o, v128.and(v, i32x4.eq(at, i32x4.splat(3))));
      }
      for (; k < c; k++) {
        const o = <usize>k << 2;
        const v = load<f32>(y + q + o), at = load<i32>(s + q + o);
        store<f32>(out + p00 + o, at == 0 ? v : 0);
        store<f32>(out + p00 + px + o, at == 1 ? v : 0);
        store<f32>(out + p00 + row + o, at == 2 ? v : 0);
        store<f32>(out + p00 + row + px + o, at == 3 ? v : 0);
      }
    }
  }
}
