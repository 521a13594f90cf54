// Winograd F(4×4, 3×3) convolution (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
// Networks"), in AssemblyScript, compiled by scripts/build-wasm.mjs into ../winograd-wasm.gen.ts and run
// on the tfjs WebAssembly backend's own memory (../winograd.ts).
//
// Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per 4×4 output tile: 36 multiplications a tile and channel pair where the
// direct convolution needs 144. With the channels summed, the elementwise products become 36 matrix
// products [tiles × Ci] · [Ci × Co] (one per point of the 6×6 transformed tile), which run at the
// SIMD128 ceiling; the transforms are adds and a few multiplies, 4 channels at a time (NHWC keeps the
// channels innermost). Interpolation points 0, ±1, ±2, ∞ (the paper's, as in oneDNN and NNPACK).
//
// Layouts (float32): x [h, w, ci] one image; filter [3, 3, ci, co] (tfjs' HWIO); U [36, ci4, co4];
// V [36, tiles, ci4]; M [36, tiles, co4]; y [ho, wo, co], where ci4 and co4 are ci and co rounded up to
// fours: the padded channels of U and V are zeros, so 3-channel images (VGG19's first layer, a decoder's
// last) run the same products; loads and stores of a last partial group go lane by lane, never past a
// pixel. Borders: zeros, or reflection (FastPhotoStyle's ReflectionPad2d(1)) read in place, with no
// padded copy. No allocation, no data segment, no state: the caller passes every buffer.

@inline function ld(p: usize): v128 { return v128.load(p); }
@inline function st(p: usize, v: v128): void { v128.store(p, v); }
@inline function mul(a: v128, k: f32): v128 { return f32x4.mul(a, f32x4.splat(k)); }
@inline function add(a: v128, b: v128): v128 { return f32x4.add(a, b); }
@inline function sub(a: v128, b: v128): v128 { return f32x4.sub(a, b); }
@inline function round4(n: i32): i32 { return (n + 3) & ~3; }
/**
 * acc + a·b: one fused multiply-add in the relaxed-SIMD builds (scripts/build-wasm.mjs; where the runtime
 * has it: Node 22, Electron), a multiply and an add in the plain ones. Compiled out, not branched on.
 */
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** The `n` (< 4) floats at p, zeros after them. */
function ldPart(p: usize, n: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p + 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p + 8));
  return v;
}
/** Up to 4 floats at p: `n` ≥ 4 one load, else lane by lane (never reading past the n-th). */
@inline function ldn(p: usize, n: i32): v128 { return n >= 4 ? v128.load(p) : ldPart(p, n); }
/** Stores the first min(n, 4) lanes of v at p. */
@inline function stn(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p + 4, f32x4.extract_lane(v, 1));
  if (n > 2) store<f32>(p + 8, f32x4.extract_lane(v, 2));
}
/**
 * Row or column i of an n-long axis read with a 1-wide border: the border reflected (−1 → 1, n → n − 2)
 * where `reflect`, else zero (−1); past the border zero too, as in a padded copy (an edge tile's extra
 * rows change no output in exact arithmetic, but they do its roundings: the same bits as the copy).
 */
@inline function at(i: i32, n: i32, reflect: i32): i32 {
  if (i >= 0 && i < n) return i;
  if (!reflect) return -1;
  return i == -1 ? 1 : i == n ? n - 2 : -1;
}

/**
 * Bytes from one of the 36 planes of u, v or m to the next: the plane's own bytes and one cache line
 * more. Unpadded, the planes are multiples of 4 KiB apart, so a transform's 36 loads or stores of one
 * tile all fall in the same first-level cache set and evict one another (measured: the input transform
 * 3× slower, the filter transform 2×). ../winograd.ts sizes its buffers with the same rule.
 */
@inline function planeBytes(rows: i32, cols: i32): usize { return (<usize>rows * <usize>cols << 2) + 64; }

/**
 * U = G g Gᵀ for the input channels c0 … c1 − 1 (a share of the work; the share that ends at ci also
 * zeroes the padded rows): filter [3, 3, ci, co] → u [36, ci4, co4]. `tmp`: 18 × 16 bytes.
 * G = [[1/4, 0, 0], [−1/6, −1/6, −1/6], [−1/6, 1/6, −1/6], [1/24, 1/12, 1/6], [1/24, −1/12, 1/6], [0, 0, 1]].
 */
export function filterTransform(filter: usize, ci: i32, co: i32, c0: i32, c1: i32, u: usize, tmp: usize): void {
  const fPlane = <usize>ci * <usize>co << 2; // bytes of one [ci, co] slice of the filter
  const co4 = round4(co);
  const plane = planeBytes(round4(ci), co4);
  for (let c = c0; c < c1; c++) {
    for (let o = 0; o < co4; o += 4) {
      const off = (<usize>c * <usize>co + <usize>o) << 2;
      const uOff = (<usize>c * <usize>co4 + <usize>o) << 2;
      const n = co - o;
      // Columns: for each kernel column j, G · g[:, j] (6 values) into tmp[i][j] (6 × 3).
      for (let j = 0; j < 3; j++) {
        const g0 = ldn(filter + (<usize>(0 * 3 + j)) * fPlane + off, n);
        const g1 = ldn(filter + (<usize>(1 * 3 + j)) * fPlane + off, n);
        const g2 = ldn(filter + (<usize>(2 * 3 + j)) * fPlane + off, n);
        const s02 = add(g0, g2);
        st(tmp + (<usize>(0 * 3 + j) << 4), mul(g0, 0.25));
        st(tmp + (<usize>(1 * 3 + j) << 4), mul(add(s02, g1), -1.0 / 6.0));
        st(tmp + (<usize>(2 * 3 + j) << 4), mul(sub(s02, g1), -1.0 / 6.0));
        const a = add(mul(g0, 1.0 / 24.0), mul(g2, 1.0 / 6.0));
        const b = mul(g1, 1.0 / 12.0);
        st(tmp + (<usize>(3 * 3 + j) << 4), add(a, b));
        st(tmp + (<usize>(4 * 3 + j) << 4), sub(a, b));
        st(tmp + (<usize>(5 * 3 + j) << 4), g2);
      }
      // Rows: each row of tmp (3 values) times Gᵀ (6 values) into u[i·6 + k].
      for (let i = 0; i < 6; i++) {
        const g0 = ld(tmp + (<usize>(i * 3 + 0) << 4));
        const g1 = ld(tmp + (<usize>(i * 3 + 1) << 4));
        const g2 = ld(tmp + (<usize>(i * 3 + 2) << 4));
        const s02 = add(g0, g2);
        const base = u + uOff + <usize>(i * 6) * plane;
        st(base, mul(g0, 0.25));
        st(base + plane, mul(add(s02, g1), -1.0 / 6.0));
        st(base + 2 * plane, mul(sub(s02, g1), -1.0 / 6.0));
        const a = add(mul(g0, 1.0 / 24.0), mul(g2, 1.0 / 6.0));
        const b = mul(g1, 1.0 / 12.0);
        st(base + 3 * plane, add(a, b));
        st(base + 4 * plane, sub(a, b));
        st(base + 5 * plane, g2);
      }
    }
  }
  if (c1 == ci && round4(ci) > ci) {
    const rowBytes = <usize>co4 << 2;
    for (let p = 0; p < 36; p++) memory.fill(u + <usize>p * plane + <usize>ci * rowBytes, 0, <usize>(round4(ci) - ci) * rowBytes);
  }
}

/**
 * V = Bᵀ d B for the tiles t0 … t0 + count − 1 (raster order over tilesW tiles a row) of x [h, w, ci]
 * read with `padT`, `padL` rows and columns before it (zeros, or reflected where `reflect`):
 * v [36, count, ci4]. `tmp`: 36 × 16 bytes.
 * Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0], [0, −2, −1, 2, 1, 0],
 *       [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]].
 */
export function inputTransform(x: usize, h: i32, w: i32, ci: i32, padT: i32, padL: i32, reflect: i32, tilesW: i32, t0: i32, count: i32, v: usize, tmp: usize): void {
  const rowBytes = <usize>w * <usize>ci << 2;
  const ci4 = round4(ci);
  const plane = planeBytes(count, ci4); // one [count, ci4] slice of v
  const zero = f32x4.splat(0);
  for (let t = 0; t < count; t++) {
    const tile = t0 + t;
    const y0 = (tile / tilesW) * 4 - padT;
    const x0 = (tile % tilesW) * 4 - padL;
    const inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= h && x0 + 6 <= w;
    // Source rows of an edge tile (−1: a zero row).
    const r0 = at(y0, h, reflect), r1 = at(y0 + 1, h, reflect), r2 = at(y0 + 2, h, reflect);
    const r3 = at(y0 + 3, h, reflect), r4 = at(y0 + 4, h, reflect), r5 = at(y0 + 5, h, reflect);
    for (let c = 0; c < ci4; c += 4) {
      const cOff = <usize>c << 2;
      const n = ci - c;
      // Columns: Bᵀ · d[:, j] for each of the 6 columns j, into tmp[i][j].
      for (let j = 0; j < 6; j++) {
        let d0 = zero, d1 = zero, d2 = zero, d3 = zero, d4 = zero, d5 = zero;
        if (inside && n >= 4) {
          const p = x + <usize>y0 * rowBytes + (<usize>(x0 + j) * <usize>ci << 2) + cOff;
          d0 = ld(p); d1 = ld(p + rowBytes); d2 = ld(p + 2 * rowBytes);
          d3 = ld(p + 3 * rowBytes); d4 = ld(p + 4 * rowBytes); d5 = ld(p + 5 * rowBytes);
        } else {
          const xx = at(x0 + j, w, reflect);
          if (xx >= 0) {
            const p = x + (<usize>xx * <usize>ci << 2) + cOff;
            if (r0 >= 0) d0 = ldn(p + <usize>r0 * rowBytes, n);
            if (r1 >= 0) d1 = ldn(p + <usize>r1 * rowBytes, n);
            if (r2 >= 0) d2 = ldn(p + <usize>r2 * rowBytes, n);
            if (r3 >= 0) d3 = ldn(p + <usize>r3 * rowBytes, n);
            if (r4 >= 0) d4 = ldn(p + <usize>r4 * rowBytes, n);
            if (r5 >= 0) d5 = ldn(p + <usize>r5 * rowBytes, n);
          }
        }
        const q = tmp + (<usize>j << 4);
        st(q, add(sub(mul(d0, 4), mul(d2, 5)), d4));
        const a1 = sub(add(d3, d4), mul(add(d1, d2), 4));
        const a2 = add(sub(d4, d3), mul(sub(d1, d2), 4));
        st(q + 6 * 16, a1);
        st(q + 12 * 16, a2);
        const b1 = sub(d4, d2), b2 = mul(sub(d3, d1), 2);
        st(q + 18 * 16, add(b1, b2));
        st(q + 24 * 16, sub(b1, b2));
        st(q + 30 * 16, add(sub(mul(d1, 4), mul(d3, 5)), d5));
      }
      // Rows: each row of tmp times B, into v[i·6 + k][t].
      for (let i = 0; i < 6; i++) {
        const r = tmp + (<usize>(i * 6) << 4);
        const d0 = ld(r), d1 = ld(r + 16), d2 = ld(r + 32), d3 = ld(r + 48), d4 = ld(r + 64), d5 = ld(r + 80);
        const base = v + (<usize>t * <usize>ci4 << 2) + cOff + <usize>(i * 6) * plane;
        st(base, add(sub(mul(d0, 4), mul(d2, 5)), d4));
        st(base + plane, sub(add(d3, d4), mul(add(d1, d2), 4)));
        st(base + 2 * plane, add(sub(d4, d3), mul(sub(d1, d2), 4)));
        const b1 = sub(d4, d2), b2 = mul(sub(d3, d1), 2);
        st(base + 3 * plane, add(b1, b2));
        st(base + 4 * plane, sub(b1, b2));
        st(base + 5 * plane, add(sub(mul(d1, 4), mul(d3, 5)), d5));
      }
    }
  }
}

/**
 * y = Aᵀ m A (+ bias, then max(·, 0) when `relu`) for the tiles t0 … t0 + count − 1 of y [ho, wo, co]
 * from m [36, count, co4]; the parts of edge tiles outside y are dropped. `bias` 0: none. `tmp`: 24 × 16 bytes.
 * Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
 */
export function outputTransform(m: usize, count: i32, co: i32, tilesW: i32, t0: i32, y: usize, ho: i32, wo: i32, bias: usize, relu: i32, tmp: usize): void {
  const rowBytes = <usize>wo * <usize>co << 2;
  const co4 = round4(co);
  const plane = planeBytes(count, co4);
  const zero = f32x4.splat(0);
  for (let t = 0; t < count; t++) {
    const tile = t0 + t;
    const y0 = (tile / tilesW) * 4;
    const x0 = (tile % tilesW) * 4;
    for (let c = 0; c < co4; c += 4) {
      const cOff = <usize>c << 2;
      const n = co - c;
      const src = m + (<usize>t * <usize>co4 << 2) + cOff;
      // Columns: Aᵀ · m[:, j] for the 6 columns, into tmp[i][j] (4 × 6).
      for (let j = 0; j < 6; j++) {
        const p = src + <usize>j * plane;
        const m0 = ld(p), m1 = ld(p + 6 * plane), m2 = ld(p + 12 * plane), m3 = ld(p + 18 * plane), m4 = ld(p + 24 * plane), m5 = ld(p + 30 * plane);
        const s12 = add(m1, m2), d12 = sub(m1, m2), s34 = add(m3, m4), d34 = sub(m3, m4);
        const q = tmp + (<usize>j << 4);
        st(q, add(add(m0, s12), s34));
        st(q + 6 * 16, add(d12, mul(d34, 2)));
        st(q + 12 * 16, add(s12, mul(s34, 4)));
        st(q + 18 * 16, add(add(d12, mul(d34, 8)), m5));
      }
      const b = bias != 0 ? ldn(bias + cOff, n) : zero;
      for (let i = 0; i < 4; i++) {
        if (y0 + i >= ho) break;
        const r = tmp + (<usize>(i * 6) << 4);
        const m0 = ld(r), m1 = ld(r + 16), m2 = ld(r + 32), m3 = ld(r + 48), m4 = ld(r + 64), m5 = ld(r + 80);
        const s12 = add(m1, m2), d12 = sub(m1, m2), s34 = add(m3, m4), d34 = sub(m3, m4);
        let o0 = add(add(add(m0, s12), s34), b);
        let o1 = add(add(d12, mul(d34, 2)), b);
        let o2 = add(add(s12, mul(s34, 4)), b);
        let o3 = add(add(add(d12, mul(d34, 8)), m5), b);
        if (relu) { o0 = f32x4.max(o0, zero); o1 = f32x4.max(o1, zero); o2 = f32x4.max(o2, zero); o3 = f32x4.max(o3, zero); }
        const row = y + <usize>(y0 + i) * rowBytes + cOff;
        stn(row + (<usize>x0 * <usize>co << 2), o0, n);
        if (x0 + 1 < wo) stn(row + (<usize>(x0 + 1) * <usize>co << 2), o1, n);
        if (x0 + 2 < wo) stn(row + (<usize>(x0 + 2) * <usize>co << 2), o2, n);
        if (x0 + 3 < wo) stn(row + (<usize>(x0 + 3) * <usize>co << 2), o3, n);
      }
    }
  }
}

/**
 * c [rows, n] = a [rows, k] · b [k, n] (+ bias [n] on every row; 0: none) (row-major float32; n a
 * multiple of 4), in 4 × 8 register tiles over 8-column panels of b (a panel of k × 8 stays in the
 * first-level cache while the rows stream by). Also ../winograd.ts's products by rows (1×1 convolutions,
 * WCT's colouring).
 */
export function gemm(a: usize, b: usize, c: usize, rows: i32, k: i32, n: i32, bias: usize): void {
  const ka = <usize>k << 2, nb = <usize>n << 2;
  const n8 = n & ~7;
  const r4 = rows & ~3;
  const zero = f32x4.splat(0);
  for (let j = 0; j < n8; j += 8) {
    const bj = b + (<usize>j << 2);
    // The sums start from the bias (as XNNPACK's do), or from zero.
    const z0 = bias != 0 ? ld(bias + (<usize>j << 2)) : zero, z1 = bias != 0 ? ld(bias + (<usize>j << 2) + 16) : zero;
    let i = 0;
    for (; i < r4; i += 4) {
      const a0 = a + <usize>i * ka, a1 = a0 + ka, a2 = a1 + ka, a3 = a2 + ka;
      let c00 = z0, c01 = z1, c10 = z0, c11 = z1, c20 = z0, c21 = z1, c30 = z0, c31 = z1;
      let bp = bj;
      for (let p: usize = 0; p < ka; p += 4) {
        const b0 = ld(bp), b1 = ld(bp + 16);
        bp += nb;
        let s = v128.load32_splat(a0 + p); // one instruction (a broadcast load), no shuffle
        c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
        s = v128.load32_splat(a1 + p);
        c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
        s = v128.load32_splat(a2 + p);
        c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
        s = v128.load32_splat(a3 + p);
        c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
      }
      const cp = c + <usize>i * nb + (<usize>j << 2);
      st(cp, c00); st(cp + 16, c01);
      st(cp + nb, c10); st(cp + nb + 16, c11);
      st(cp + 2 * nb, c20); st(cp + 2 * nb + 16, c21);
      st(cp + 3 * nb, c30); st(cp + 3 * nb + 16, c31);
    }
    for (; i < rows; i++) {
      const a0 = a + <usize>i * ka;
      let c00 = z0, c01 = z1;
      let bp = bj;
      for (let p: usize = 0; p < ka; p += 4) {
        const s = v128.load32_splat(a0 + p);
        c00 = madd(s, ld(bp), c00); c01 = madd(s, ld(bp + 16), c01);
        bp += nb;
      }
      const cp = c + <usize>i * nb + (<usize>j << 2);
      st(cp, c00); st(cp + 16, c01);
    }
  }
  // A last 4-column panel (n ≡ 4 mod 8; all of it for 3 output channels): 4 rows at a time, 4 sums in
  // flight (one sum alone waits on each add's latency).
  for (let j = n8; j < n; j += 4) {
    const bj = b + (<usize>j << 2);
    const z = bias != 0 ? ld(bias + (<usize>j << 2)) : zero;
    let i = 0;
    for (; i < r4; i += 4) {
      const a0 = a + <usize>i * ka, a1 = a0 + ka, a2 = a1 + ka, a3 = a2 + ka;
      let c0 = z, c1 = z, c2 = z, c3 = z;
      let bp = bj;
      for (let p: usize = 0; p < ka; p += 4) {
        const b0 = ld(bp);
        bp += nb;
        c0 = madd(v128.load32_splat(a0 + p), b0, c0);
        c1 = madd(v128.load32_splat(a1 + p), b0, c1);
        c2 = madd(v128.load32_splat(a2 + p), b0, c2);
        c3 = madd(v128.load32_splat(a3 + p), b0, c3);
      }
      const cp = c + <usize>i * nb + (<usize>j << 2);
      st(cp, c0); st(cp + nb, c1); st(cp + 2 * nb, c2); st(cp + 3 * nb, c3);
    }
    for (; i < rows; i++) {
      const a0 = a + <usize>i * ka;
      let acc = z;
      let bp = b + (<usize>j << 2);
      for (let p: usize = 0; p < ka; p += 4) {
        acc = madd(v128.load32_splat(a0 + p), ld(bp), acc);
        bp += nb;
      }
      st(c + <usize>i * nb + (<usize>j << 2), acc);
    }
  }
}

/**
 * One band of tiles t0 … t0 + count − 1 through the whole convolution: input transform into v, the 36
 * products into m, output transform into y. u from filterTransform; v holds 36 planes of count·ci4
 * floats, m of count·co4 (each plane padded as planeBytes), tmp 36 × 16 bytes.
 */
export function convBand(x: usize, h: i32, w: i32, ci: i32, padT: i32, padL: i32, reflect: i32, u: usize, co: i32, y: usize, ho: i32, wo: i32, tilesW: i32, t0: i32, count: i32, v: usize, m: usize, bias: usize, relu: i32, tmp: usize): void {
  inputTransform(x, h, w, ci, padT, padL, reflect, tilesW, t0, count, v, tmp);
  const ci4 = round4(ci), co4 = round4(co);
  const vPlane = planeBytes(count, ci4), uPlane = planeBytes(ci4, co4), mPlane = planeBytes(count, co4);
  for (let p = 0; p < 36; p++) gemm(v + <usize>p * vPlane, u + <usize>p * uPlane, m + <usize>p * mPlane, count, ci4, co4, 0);
  outputTransform(m, count, co, tilesW, t0, y, ho, wo, bias, relu, tmp);
}
