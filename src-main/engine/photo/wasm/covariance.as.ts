// WCT's passes over a [D, C] feature matrix (../wct.ts), in AssemblyScript, compiled by
// scripts/build-wasm.mjs into ../covariance-wasm.gen.ts. They run on the tfjs WebAssembly backend's own
// memory (../covariance-wasm.ts instantiates them on it), reading its tensors where they lie: on that
// backend a reduction over rows transposes the whole matrix first (0.43 s for 524288×64), and XᵀX
// either transposes too or accumulates in one float32 running sum (see wct.ts gramT).
//
// The mean is summed in float64. The Gram's products are summed in float32 over blocks of rows (the
// caller's `block`), each block's partial then added in float64: the error of a short float32 sum,
// not of a D-long one. No allocation, no data segment, no state.

@inline function f32at(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
@inline function f64add(p: usize, i: i32, v: f64): void { store<f64>(p + (<usize>i << 3), load<f64>(p + (<usize>i << 3)) + v); }

/** Adds the four lanes of a float32 partial to out[i … i + 3] (float64). */
@inline function flush4(out: usize, i: i32, a: v128): void {
  const p = out + (<usize>i << 3);
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(a)));
  v128.store(p + 16, f64x2.add(v128.load(p + 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(a, a, 2, 3, 2, 3))));
}

/**
 * out[j] = Σ_r x[r, j] for x [d, c] float32, summed in float64 (a pass that only reads is bound by
 * memory, not by the width of the adds).
 */
export function columnSums(x: usize, d: i32, c: i32, out: usize): void {
  memory.fill(out, 0, <usize>c << 3);
  const c4 = c & ~3;
  for (let r = 0; r < d; r++) {
    const row = x + (<usize>r * <usize>c << 2);
    let j = 0;
    for (; j < c4; j += 4) {
      const v = v128.load(row + (<usize>j << 2));
      const q = out + (<usize>j << 3);
      v128.store(q, f64x2.add(v128.load(q), f64x2.promote_low_f32x4(v)));
      v128.store(q + 16, f64x2.add(v128.load(q + 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3))));
    }
    for (; j < c; j++) f64add(out, j, <f64>f32at(row, j));
  }
}

/**
 * The centred Gram matrix of x [d, c]: out[i, j] = Σ_r (x[r, i] − mean[i])(x[r, j] − mean[j]) for i ≤ j
 * (float64; the lower triangle is left for the caller to mirror), and sums[j] = Σ_r (x[r, j] − mean[j]).
 * `mean` is c float32; `buf` holds block·c float32 (the block's centred rows).
 */
export function centredGram(x: usize, d: i32, c: i32, mean: usize, block: i32, out: usize, sums: usize, buf: usize): void {
  memory.fill(out, 0, <usize>c * <usize>c << 3);
  memory.fill(sums, 0, <usize>c << 3);
  const vector = (c & 7) == 0;
  const stride = <usize>c << 2;
  for (let r0 = 0; r0 < d; r0 += block) {
    const rows = min(d, r0 + block) - r0;
    // The block's rows, centred, into buf; their sums.
    for (let r = 0; r < rows; r++) centreRow(x + <usize>(r0 + r) * stride, buf + <usize>r * stride, c, mean);
    for (let j = 0; j < c; j++) {
      let s: f32 = 0;
      for (let r = 0; r < rows; r++) s += f32at(buf + <usize>r * stride, j);
      f64add(sums, j, <f64>s);
    }
    if (vector) {
      // 4 rows × 8 columns of the product per tile: 8 float32x4 partials in registers.
      for (let i0 = 0; i0 < c; i0 += 4) {
        for (let j0 = i0 & ~7; j0 < c; j0 += 8) {
          let a0 = f32x4.splat(0); let b0 = f32x4.splat(0);
          let a1 = f32x4.splat(0); let b1 = f32x4.splat(0);
          let a2 = f32x4.splat(0); let b2 = f32x4.splat(0);
          let a3 = f32x4.splat(0); let b3 = f32x4.splat(0);
          let p = buf;
          const io = <usize>i0 << 2;
          const jo = <usize>j0 << 2;
          for (let r = 0; r < rows; r++) {
            const y0 = v128.load(p + jo);
            const y1 = v128.load(p + jo + 16);
            const x0 = v128.load32_splat(p + io);
            const x1 = v128.load32_splat(p + io + 4);
            const x2 = v128.load32_splat(p + io + 8);
            const x3 = v128.load32_splat(p + io + 12);
            a0 = f32x4.add(a0, f32x4.mul(x0, y0)); b0 = f32x4.add(b0, f32x4.mul(x0, y1));
            a1 = f32x4.add(a1, f32x4.mul(x1, y0)); b1 = f32x4.add(b1, f32x4.mul(x1, y1));
            a2 = f32x4.add(a2, f32x4.mul(x2, y0)); b2 = f32x4.add(b2, f32x4.mul(x2, y1));
            a3 = f32x4.add(a3, f32x4.mul(x3, y0)); b3 = f32x4.add(b3, f32x4.mul(x3, y1));
            p += stride;
          }
          flush4(out, i0 * c + j0, a0); flush4(out, i0 * c + j0 + 4, b0);
          flush4(out, (i0 + 1) * c + j0, a1); flush4(out, (i0 + 1) * c + j0 + 4, b1);
          flush4(out, (i0 + 2) * c + j0, a2); flush4(out, (i0 + 2) * c + j0 + 4, b2);
          flush4(out, (i0 + 3) * c + j0, a3); flush4(out, (i0 + 3) * c + j0 + 4, b3);
        }
      }
    } else {
      for (let i = 0; i < c; i++) {
        for (let j = i; j < c; j++) {
          let s: f32 = 0;
          for (let r = 0; r < rows; r++) {
            const p = buf + <usize>r * stride;
            s += f32at(p, i) * f32at(p, j);
          }
          f64add(out, i * c + j, <f64>s);
        }
      }
    }
  }
}

/** out[r, j] = x[r, j] − mean[j] for x, out [d, c] float32 (out may be x). */
export function centre(x: usize, d: i32, c: i32, mean: usize, out: usize): void {
  const stride = <usize>c << 2;
  for (let r = 0; r < d; r++) centreRow(x + <usize>r * stride, out + <usize>r * stride, c, mean);
}

/** dst[j] = src[j] − mean[j] for one row of c float32s. */
@inline function centreRow(src: usize, dst: usize, c: i32, mean: usize): void {
  const c4 = c & ~3;
  let j = 0;
  for (; j < c4; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.sub(v128.load(src + o), v128.load(mean + o)));
  }
  for (; j < c; j++) store<f32>(dst + (<usize>j << 2), f32at(src, j) - f32at(mean, j));
}
