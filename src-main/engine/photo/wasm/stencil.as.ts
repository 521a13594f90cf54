// Level-0 kernels of the smoothing solver (../smooth.ts) in AssemblyScript, compiled to
// WebAssembly by scripts/build-wasm.mjs into ../stencil-wasm.gen.ts. They are line-for-line ports
// of the JavaScript kernels of the same names in smooth.ts (same loops, same order of every
// floating-point operation), so both give bit-identical results; WebAssembly runs them ~2× faster
// than V8 runs the JavaScript (no bounds checks, better register use). Measured in smooth.ts's header.
//
// Every array is a pointer (byte offset) into the one shared linear memory (stencil-wasm.ts's
// arena); indices are in elements. No allocation, no data segment: the module keeps no state, so
// any number of threads may run it on the same memory.

const SLOTS: i32 = 13;

// affinity.ts's SLOT_DY / SLOT_DX, as arithmetic (a data segment would be rewritten by every
// thread's instantiation).
@inline function slotDy(s: i32): i32 { return s < 3 ? 0 : s < 8 ? 1 : 2; }
@inline function slotDx(s: i32): i32 { return s < 3 ? s : s < 8 ? s - 5 : s - 10; }

@inline function ld(p: usize, i: i32): f64 { return load<f64>(p + (<usize>i << 3)); }
@inline function st(p: usize, i: i32, v: f64): void { store<f64>(p + (<usize>i << 3), v); }
@inline function ldi(p: usize, i: i32): i32 { return load<i32>(p + (<usize>i << 2)); }
@inline function inRows(q: i32, lo: i32, hi: i32): bool { return q >= lo && q < hi; }
@inline function imax(a: i32, b: i32): i32 { return a > b ? a : b; }
@inline function imin(a: i32, b: i32): i32 { return a < b ? a : b; }
@inline function iabs(a: i32): i32 { return a < 0 ? -a : a; }

// Channels 0 and 1 of a pixel (or block row) in one f64x2, channel 2 scalar: lane by lane the same
// products and sums in the same order as the scalar code, so the results are unchanged.
@inline function ldv(p: usize, i: i32): v128 { return v128.load(p + (<usize>i << 3)); }
@inline function stv(p: usize, i: i32, v: v128): void { v128.store(p + (<usize>i << 3), v); }
@inline function splat(v: f64): v128 { return f64x2.splat(v); }
/** c·(x[j], x[j + 1]). */
@inline function m2(c: f64, x: usize, j: i32): v128 { return f64x2.mul(splat(c), ldv(x, j)); }

function zero(p: usize, from: i32, to: i32): void {
  if (to > from) memory.fill(p + (<usize>from << 3), 0, <usize>(to - from) << 3);
}

/** smooth.ts acc1: out[oo + 3c + ch] += the row's couplings through slots s0 ≤ s < s1. */
function acc1(a: usize, n: i32, w: i32, x: usize, r: i32, out: usize, oo: i32, s0: i32, s1: i32, fwd: bool, bwd: bool, nlo: i32, nhi: i32): void {
  const base = r * w;
  for (let s = s0; s < s1; s += 2) {
    const t = s + 1;
    if (s + 3 < s1) {
      const f = fwd && inRows(r + slotDy(s), nlo, nhi), g = bwd && inRows(r - slotDy(s), nlo, nhi);
      let same = true;
      for (let u = s; u < s + 4 && same; u++) {
        same = (fwd && inRows(r + slotDy(u), nlo, nhi)) == f && (bwd && inRows(r - slotDy(u), nlo, nhi)) == g;
      }
      if (same && (f || g)) {
        quad1(a, n, w, x, base, out, oo, s, f, g);
        s += 2;
        continue;
      }
    }
    const fs = fwd && inRows(r + slotDy(s), nlo, nhi), ft = fwd && inRows(r + slotDy(t), nlo, nhi);
    const gs = bwd && inRows(r - slotDy(s), nlo, nhi), gt = bwd && inRows(r - slotDy(t), nlo, nhi);
    if (fs == ft && gs == gt) {
      if (fs || gs) pair1(a, n, w, x, base, out, oo, s, t, fs, gs);
    } else {
      if (fs || gs) pair1(a, n, w, x, base, out, oo, s, s, fs, gs);
      if (ft || gt) pair1(a, n, w, x, base, out, oo, t, t, ft, gt);
    }
  }
}

function quad1(a: usize, n: i32, w: i32, x: usize, base: i32, out: usize, oo: i32, s: i32, f: bool, g: bool): void {
  const d0 = slotDx(s), d1 = slotDx(s + 1), d2 = slotDx(s + 2), d3 = slotDx(s + 3);
  const o0 = slotDy(s) * w + d0, o1 = slotDy(s + 1) * w + d1, o2 = slotDy(s + 2) * w + d2, o3 = slotDy(s + 3) * w + d3;
  const a0 = s * n, a1 = a0 + n, a2 = a1 + n, a3 = a2 + n;
  const m = imax(imax(iabs(d0), iabs(d1)), imax(iabs(d2), iabs(d3)));
  const lo = imin(m, w), hi = imax(lo, w - m);
  if (f && g) {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const v0 = ld(a, a0 + i), u0 = ld(a, a0 + i - o0), v1 = ld(a, a1 + i), u1 = ld(a, a1 + i - o1);
      const v2 = ld(a, a2 + i), u2 = ld(a, a2 + i - o2), v3 = ld(a, a3 + i), u3 = ld(a, a3 + i - o3);
      const j0 = 3 * (i + o0), k0 = 3 * (i - o0), j1 = 3 * (i + o1), k1 = 3 * (i - o1);
      const j2 = 3 * (i + o2), k2 = 3 * (i - o2), j3 = 3 * (i + o3), k3 = 3 * (i - o3);
      stv(out, k, f64x2.add(ldv(out, k), f64x2.add(f64x2.add(f64x2.add(f64x2.add(f64x2.add(f64x2.add(f64x2.add(m2(v0, x, j0), m2(u0, x, k0)), m2(v1, x, j1)), m2(u1, x, k1)), m2(v2, x, j2)), m2(u2, x, k2)), m2(v3, x, j3)), m2(u3, x, k3))));
      st(out, k + 2, ld(out, k + 2) + (v0 * ld(x, j0 + 2) + u0 * ld(x, k0 + 2) + v1 * ld(x, j1 + 2) + u1 * ld(x, k1 + 2) + v2 * ld(x, j2 + 2) + u2 * ld(x, k2 + 2) + v3 * ld(x, j3 + 2) + u3 * ld(x, k3 + 2)));
    }
  } else if (f) {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const v0 = ld(a, a0 + i), v1 = ld(a, a1 + i), v2 = ld(a, a2 + i), v3 = ld(a, a3 + i);
      const j0 = 3 * (i + o0), j1 = 3 * (i + o1), j2 = 3 * (i + o2), j3 = 3 * (i + o3);
      stv(out, k, f64x2.add(ldv(out, k), f64x2.add(f64x2.add(f64x2.add(m2(v0, x, j0), m2(v1, x, j1)), m2(v2, x, j2)), m2(v3, x, j3))));
      st(out, k + 2, ld(out, k + 2) + (v0 * ld(x, j0 + 2) + v1 * ld(x, j1 + 2) + v2 * ld(x, j2 + 2) + v3 * ld(x, j3 + 2)));
    }
  } else {
    for (let c = lo; c < hi; c++) {
      const i = base + c, k = oo + 3 * c;
      const u0 = ld(a, a0 + i - o0), u1 = ld(a, a1 + i - o1), u2 = ld(a, a2 + i - o2), u3 = ld(a, a3 + i - o3);
      const k0 = 3 * (i - o0), k1 = 3 * (i - o1), k2 = 3 * (i - o2), k3 = 3 * (i - o3);
      stv(out, k, f64x2.add(ldv(out, k), f64x2.add(f64x2.add(f64x2.add(m2(u0, x, k0), m2(u1, x, k1)), m2(u2, x, k2)), m2(u3, x, k3))));
      st(out, k + 2, ld(out, k + 2) + (u0 * ld(x, k0 + 2) + u1 * ld(x, k1 + 2) + u2 * ld(x, k2 + 2) + u3 * ld(x, k3 + 2)));
    }
  }
  for (let c = 0; c < w; c++) {
    if (c == lo) c = hi;
    if (c >= w) break;
    for (let u = s; u < s + 4; u++) edge1(a, n, w, x, base, c, u, out, oo, f, g);
  }
}

function pair1(a: usize, n: i32, w: i32, x: usize, base: i32, out: usize, oo: i32, s: i32, t: i32, f: bool, g: bool): void {
  const dxs = slotDx(s), dxt = slotDx(t);
  const os = slotDy(s) * w + dxs, ot = slotDy(t) * w + dxt;
  const as = s * n, at = t * n;
  let lo = 0, hi = w;
  if (f) { lo = imax(lo, imax(-dxs, -dxt)); hi = imin(hi, imin(w - dxs, w - dxt)); }
  if (g) { lo = imax(lo, imax(dxs, dxt)); hi = imin(hi, imin(w + dxs, w + dxt)); }
  const single = s == t;
  if (f && g) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = ld(a, as + i), v2 = ld(a, as + i - os), j1 = 3 * (i + os), j2 = 3 * (i - os), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), f64x2.add(m2(v1, x, j1), m2(v2, x, j2))));
        st(out, k + 2, ld(out, k + 2) + (v1 * ld(x, j1 + 2) + v2 * ld(x, j2 + 2)));
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = ld(a, as + i), v2 = ld(a, as + i - os), v3 = ld(a, at + i), v4 = ld(a, at + i - ot);
        const j1 = 3 * (i + os), j2 = 3 * (i - os), j3 = 3 * (i + ot), j4 = 3 * (i - ot), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), f64x2.add(f64x2.add(f64x2.add(m2(v1, x, j1), m2(v2, x, j2)), m2(v3, x, j3)), m2(v4, x, j4))));
        st(out, k + 2, ld(out, k + 2) + (v1 * ld(x, j1 + 2) + v2 * ld(x, j2 + 2) + v3 * ld(x, j3 + 2) + v4 * ld(x, j4 + 2)));
      }
    }
  } else if (f) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = ld(a, as + i), j1 = 3 * (i + os), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), m2(v1, x, j1)));
        st(out, k + 2, ld(out, k + 2) + v1 * ld(x, j1 + 2));
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v1 = ld(a, as + i), v3 = ld(a, at + i), j1 = 3 * (i + os), j3 = 3 * (i + ot), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), f64x2.add(m2(v1, x, j1), m2(v3, x, j3))));
        st(out, k + 2, ld(out, k + 2) + (v1 * ld(x, j1 + 2) + v3 * ld(x, j3 + 2)));
      }
    }
  } else if (g) {
    if (single) {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v2 = ld(a, as + i - os), j2 = 3 * (i - os), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), m2(v2, x, j2)));
        st(out, k + 2, ld(out, k + 2) + v2 * ld(x, j2 + 2));
      }
    } else {
      for (let c = lo; c < hi; c++) {
        const i = base + c, v2 = ld(a, as + i - os), v4 = ld(a, at + i - ot), j2 = 3 * (i - os), j4 = 3 * (i - ot), k = oo + 3 * c;
        stv(out, k, f64x2.add(ldv(out, k), f64x2.add(m2(v2, x, j2), m2(v4, x, j4))));
        st(out, k + 2, ld(out, k + 2) + (v2 * ld(x, j2 + 2) + v4 * ld(x, j4 + 2)));
      }
    }
  }
  for (let c = 0; c < w; c++) {
    if (c == lo) c = imax(hi, lo);
    if (c >= w) break;
    edge1(a, n, w, x, base, c, s, out, oo, f, g);
    if (!single) edge1(a, n, w, x, base, c, t, out, oo, f, g);
  }
}

function edge1(a: usize, n: i32, w: i32, x: usize, base: i32, c: i32, s: i32, out: usize, oo: i32, f: bool, g: bool): void {
  const dx = slotDx(s), o = slotDy(s) * w + dx;
  const i = base + c, k = oo + 3 * c;
  if (f && c + dx >= 0 && c + dx < w) {
    const v = ld(a, s * n + i), j = 3 * (i + o);
    st(out, k, ld(out, k) + v * ld(x, j));
    st(out, k + 1, ld(out, k + 1) + v * ld(x, j + 1));
    st(out, k + 2, ld(out, k + 2) + v * ld(x, j + 2));
  }
  if (g && c - dx >= 0 && c - dx < w) {
    const v = ld(a, s * n + i - o), j = 3 * (i - o);
    st(out, k, ld(out, k) + v * ld(x, j));
    st(out, k + 1, ld(out, k + 1) + v * ld(x, j + 1));
    st(out, k + 2, ld(out, k + 2) + v * ld(x, j + 2));
  }
}

/** y = A x, rows r0 ≤ r < r1. */
export function spmv1(a: usize, n: i32, w: i32, h: i32, x: usize, y: usize, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    for (let i = base; i < base + w; i++) {
      const v = ld(a, i);
      st(y, 3 * i, v * ld(x, 3 * i));
      st(y, 3 * i + 1, v * ld(x, 3 * i + 1));
      st(y, 3 * i + 2, v * ld(x, 3 * i + 2));
    }
    acc1(a, n, w, x, r, y, 3 * base, 1, SLOTS, true, true, 0, h);
  }
}

/** Forward Gauss–Seidel sweep from zero over the row block [r0, r1). */
export function gsFwdSweep1(a: usize, dinv: usize, n: i32, w: i32, b: usize, x: usize, r0: i32, r1: i32, row: usize): void {
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    zero(row, 0, 3 * w);
    acc1(a, n, w, x, r, row, 0, 3, SLOTS, false, true, r0, r1);
    for (let c = 0; c < w; c++) {
      const i = base + c, k = 3 * c;
      let v0 = ld(b, 3 * i) - ld(row, k), v1 = ld(b, 3 * i + 1) - ld(row, k + 1), v2 = ld(b, 3 * i + 2) - ld(row, k + 2);
      if (c >= 1) {
        const m = ld(a, n + i - 1), j = 3 * (i - 1);
        v0 -= m * ld(x, j); v1 -= m * ld(x, j + 1); v2 -= m * ld(x, j + 2);
      }
      if (c >= 2) {
        const m = ld(a, 2 * n + i - 2), j = 3 * (i - 2);
        v0 -= m * ld(x, j); v1 -= m * ld(x, j + 1); v2 -= m * ld(x, j + 2);
      }
      const d = ld(dinv, i);
      st(x, 3 * i, v0 * d); st(x, 3 * i + 1, v1 * d); st(x, 3 * i + 2, v2 * d);
    }
  }
}

/** Backward Gauss–Seidel sweep over [r0, r1); cross = 0: no other blocks. */
export function gsBwd1(a: usize, dinv: usize, n: i32, w: i32, h: i32, b: usize, x: usize, r0: i32, r1: i32, row: usize, cross: usize): void {
  for (let r = r1 - 1; r >= r0; r--) {
    const base = r * w;
    zero(row, 0, 3 * w);
    acc1(a, n, w, x, r, row, 0, 3, SLOTS, true, true, r0, r1);
    acc1(a, n, w, x, r, row, 0, 1, 3, false, true, r0, r1);
    if (cross != 0 && ((r0 > 0 && r < r0 + 2) || (r1 < h && r >= r1 - 2))) {
      for (let k = 0, o = 3 * base; k < 3 * w; k++) st(row, k, ld(row, k) + ld(cross, o + k));
    }
    for (let c = w - 1; c >= 0; c--) {
      const i = base + c, k = 3 * c;
      let v0 = ld(b, 3 * i) - ld(row, k), v1 = ld(b, 3 * i + 1) - ld(row, k + 1), v2 = ld(b, 3 * i + 2) - ld(row, k + 2);
      if (c + 1 < w) {
        const m = ld(a, n + i), j = 3 * (i + 1);
        v0 -= m * ld(x, j); v1 -= m * ld(x, j + 1); v2 -= m * ld(x, j + 2);
      }
      if (c + 2 < w) {
        const m = ld(a, 2 * n + i), j = 3 * (i + 2);
        v0 -= m * ld(x, j); v1 -= m * ld(x, j + 1); v2 -= m * ld(x, j + 2);
      }
      const d = ld(dinv, i);
      st(x, 3 * i, v0 * d); st(x, 3 * i + 1, v1 * d); st(x, 3 * i + 2, v2 * d);
    }
  }
}

/** tmp[L] = Σ_K φ_L(K) B_Kᵀ r_K for the coarse rows [R0, R1) (smooth.ts restrict1). */
export function restrict1(
  w: i32, h: i32, B: usize, r: usize, R0: i32, R1: i32, row: usize,
  wc: i32, px: usize, wx0: usize, wx1: usize, py: usize, wy0: usize, wy1: usize, tmp: usize,
): void {
  zero(tmp, 12 * R0 * wc, 12 * R1 * wc);
  for (let y = 0; y < h; y++) {
    const Y = ldi(py, y), f0 = ld(wy0, y), f1 = ld(wy1, y);
    const top = Y >= R0 && Y < R1, bottom = f1 > 0 && Y + 1 >= R0 && Y + 1 < R1;
    if (!top && !bottom) {
      if (Y >= R1) break;
      continue;
    }
    zero(row, 0, 12 * wc);
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      const r0 = ld(r, 3 * i), r1 = ld(r, 3 * i + 1), r2 = ld(r, 3 * i + 2);
      const b0 = ld(B, 4 * i), b1 = ld(B, 4 * i + 1), b2 = ld(B, 4 * i + 2), b3 = ld(B, 4 * i + 3);
      let o = 12 * ldi(px, xx), f = ld(wx0, xx);
      for (let e = 0; e < 2; e++) {
        const g0 = f * b0, g1 = f * b1, g2 = f * b2, g3 = f * b3;
        st(row, o, ld(row, o) + g0 * r0); st(row, o + 1, ld(row, o + 1) + g0 * r1); st(row, o + 2, ld(row, o + 2) + g0 * r2);
        st(row, o + 3, ld(row, o + 3) + g1 * r0); st(row, o + 4, ld(row, o + 4) + g1 * r1); st(row, o + 5, ld(row, o + 5) + g1 * r2);
        st(row, o + 6, ld(row, o + 6) + g2 * r0); st(row, o + 7, ld(row, o + 7) + g2 * r1); st(row, o + 8, ld(row, o + 8) + g2 * r2);
        st(row, o + 9, ld(row, o + 9) + g3 * r0); st(row, o + 10, ld(row, o + 10) + g3 * r1); st(row, o + 11, ld(row, o + 11) + g3 * r2);
        f = ld(wx1, xx);
        if (f == 0) break;
        o += 12;
      }
    }
    const o0 = 12 * Y * wc;
    if (top) for (let q = 0; q < 12 * wc; q++) st(tmp, o0 + q, ld(tmp, o0 + q) + f0 * ld(row, q));
    if (bottom) {
      const o1 = o0 + 12 * wc;
      for (let q = 0; q < 12 * wc; q++) st(tmp, o1 + q, ld(tmp, o1 + q) + f1 * ld(row, q));
    }
  }
}

/** x_K += B_K Σ_L φ_L(K) tmp[L] on rows [r0, r1) (smooth.ts prolong1). */
export function prolong1(
  w: i32, B: usize, x: usize, r0: i32, r1: i32, row: usize,
  wc: i32, px: usize, wx0: usize, wx1: usize, py: usize, wy0: usize, wy1: usize, tmp: usize,
): void {
  for (let y = r0; y < r1; y++) {
    const Y = ldi(py, y), f0 = ld(wy0, y), f1 = ld(wy1, y);
    const o0 = 12 * Y * wc;
    if (f1 > 0) {
      const o1 = o0 + 12 * wc;
      for (let q = 0; q < 12 * wc; q++) st(row, q, f0 * ld(tmp, o0 + q) + f1 * ld(tmp, o1 + q));
    } else {
      for (let q = 0; q < 12 * wc; q++) st(row, q, f0 * ld(tmp, o0 + q));
    }
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      const o = 12 * ldi(px, xx), g0 = ld(wx0, xx), g1 = ld(wx1, xx);
      const b0 = ld(B, 4 * i), b1 = ld(B, 4 * i + 1), b2 = ld(B, 4 * i + 2), b3 = ld(B, 4 * i + 3);
      let u0 = b0 * ld(row, o) + b1 * ld(row, o + 3) + b2 * ld(row, o + 6) + b3 * ld(row, o + 9);
      let u1 = b0 * ld(row, o + 1) + b1 * ld(row, o + 4) + b2 * ld(row, o + 7) + b3 * ld(row, o + 10);
      let u2 = b0 * ld(row, o + 2) + b1 * ld(row, o + 5) + b2 * ld(row, o + 8) + b3 * ld(row, o + 11);
      u0 *= g0; u1 *= g0; u2 *= g0;
      if (g1 > 0) {
        const p = o + 12;
        u0 += g1 * (b0 * ld(row, p) + b1 * ld(row, p + 3) + b2 * ld(row, p + 6) + b3 * ld(row, p + 9));
        u1 += g1 * (b0 * ld(row, p + 1) + b1 * ld(row, p + 4) + b2 * ld(row, p + 7) + b3 * ld(row, p + 10));
        u2 += g1 * (b0 * ld(row, p + 2) + b1 * ld(row, p + 5) + b2 * ld(row, p + 8) + b3 * ld(row, p + 11));
      }
      st(x, 3 * i, ld(x, 3 * i) + u0); st(x, 3 * i + 1, ld(x, 3 * i + 1) + u1); st(x, 3 * i + 2, ld(x, 3 * i + 2) + u2);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Coarse levels: 4 unknowns per node, 3 channels (12 values per node), 4×4 blocks (smooth.ts's
// block kernels of the same names).

@inline function madd4(o: v128, b0: f64, x: v128, b1: f64, y: v128, b2: f64, z: v128, b3: f64, u: v128): v128 {
  return f64x2.add(o, f64x2.add(f64x2.add(f64x2.add(f64x2.mul(splat(b0), x), f64x2.mul(splat(b1), y)), f64x2.mul(splat(b2), z)), f64x2.mul(splat(b3), u)));
}

/** out[k + 3r + ch] += Σ_q M[r][q] x[j + 3q + ch], M at a[m..m+16). */
@inline function mulBlock(a: usize, m: i32, x: usize, j: i32, out: usize, k: i32): void {
  const X = ldv(x, j), Y = ldv(x, j + 3), Z = ldv(x, j + 6), U = ldv(x, j + 9);
  const x2 = ld(x, j + 2), y2 = ld(x, j + 5), z2 = ld(x, j + 8), u2 = ld(x, j + 11);
  for (let r = 0; r < 4; r++) {
    const b0 = ld(a, m + 4 * r), b1 = ld(a, m + 4 * r + 1), b2 = ld(a, m + 4 * r + 2), b3 = ld(a, m + 4 * r + 3);
    const o = k + 3 * r;
    stv(out, o, madd4(ldv(out, o), b0, X, b1, Y, b2, Z, b3, U));
    st(out, o + 2, ld(out, o + 2) + (b0 * x2 + b1 * y2 + b2 * z2 + b3 * u2));
  }
}

/** out[k + 3r + ch] += Σ_q M[q][r] x[j + 3q + ch] (the transposed block). */
@inline function mulBlockT(a: usize, m: i32, x: usize, j: i32, out: usize, k: i32): void {
  const X = ldv(x, j), Y = ldv(x, j + 3), Z = ldv(x, j + 6), U = ldv(x, j + 9);
  const x2 = ld(x, j + 2), y2 = ld(x, j + 5), z2 = ld(x, j + 8), u2 = ld(x, j + 11);
  for (let r = 0; r < 4; r++) {
    const b0 = ld(a, m + r), b1 = ld(a, m + 4 + r), b2 = ld(a, m + 8 + r), b3 = ld(a, m + 12 + r);
    const o = k + 3 * r;
    stv(out, o, madd4(ldv(out, o), b0, X, b1, Y, b2, Z, b3, U));
    st(out, o + 2, ld(out, o + 2) + (b0 * x2 + b1 * y2 + b2 * z2 + b3 * u2));
  }
}

function acc4(a: usize, n: i32, w: i32, x: usize, r: i32, out: usize, oo: i32, s0: i32, s1: i32, fwd: bool, bwd: bool, nlo: i32, nhi: i32): void {
  const base = r * w;
  for (let s = s0; s < s1; s++) {
    const dy = slotDy(s), dx = slotDx(s), o = dy * w + dx, as = s * n;
    if (fwd && inRows(r + dy, nlo, nhi)) {
      const lo = dx < 0 ? -dx : 0, hi = dx > 0 ? w - dx : w;
      for (let c = lo; c < hi; c++) {
        const i = base + c;
        mulBlock(a, 16 * (as + i), x, 12 * (i + o), out, oo + 12 * c);
      }
    }
    if (bwd && inRows(r - dy, nlo, nhi)) {
      const lo = dx > 0 ? dx : 0, hi = dx < 0 ? w + dx : w;
      for (let c = lo; c < hi; c++) {
        const i = base + c - o;
        mulBlockT(a, 16 * (as + i), x, 12 * i, out, oo + 12 * c);
      }
    }
  }
}

/** x[j..j+12) = Dinv · v (v: 12 values at t[k..]). */
@inline function solveDiag4(dinv: usize, m: i32, t: usize, k: i32, x: usize, j: i32): void {
  for (let r = 0; r < 4; r++) {
    const b0 = ld(dinv, m + 4 * r), b1 = ld(dinv, m + 4 * r + 1), b2 = ld(dinv, m + 4 * r + 2), b3 = ld(dinv, m + 4 * r + 3);
    for (let ch = 0; ch < 3; ch++) {
      st(x, j + 3 * r + ch, b0 * ld(t, k + ch) + b1 * ld(t, k + 3 + ch) + b2 * ld(t, k + 6 + ch) + b3 * ld(t, k + 9 + ch));
    }
  }
}

export function gsFwdSweep4(a: usize, dinv: usize, n: i32, w: i32, b: usize, x: usize, r0: i32, r1: i32, row: usize): void {
  for (let r = r0; r < r1; r++) {
    const base = r * w;
    zero(row, 0, 12 * w);
    acc4(a, n, w, x, r, row, 0, 3, SLOTS, false, true, r0, r1);
    for (let c = 0; c < w; c++) {
      const i = base + c, k = 12 * c;
      if (c >= 1) mulBlockT(a, 16 * (n + i - 1), x, 12 * (i - 1), row, k);
      if (c >= 2) mulBlockT(a, 16 * (2 * n + i - 2), x, 12 * (i - 2), row, k);
      for (let q = 0; q < 12; q++) st(row, k + q, ld(b, 12 * i + q) - ld(row, k + q));
      solveDiag4(dinv, 16 * i, row, k, x, 12 * i);
    }
  }
}

export function gsBwd4(a: usize, dinv: usize, n: i32, w: i32, h: i32, b: usize, x: usize, r0: i32, r1: i32, row: usize, cross: usize): void {
  for (let r = r1 - 1; r >= r0; r--) {
    const base = r * w;
    zero(row, 0, 12 * w);
    acc4(a, n, w, x, r, row, 0, 3, SLOTS, true, true, r0, r1);
    acc4(a, n, w, x, r, row, 0, 1, 3, false, true, r0, r1);
    if (cross != 0 && ((r0 > 0 && r < r0 + 2) || (r1 < h && r >= r1 - 2))) {
      for (let k = 0, o = 12 * base; k < 12 * w; k++) st(row, k, ld(row, k) + ld(cross, o + k));
    }
    for (let c = w - 1; c >= 0; c--) {
      const i = base + c, k = 12 * c;
      if (c + 1 < w) mulBlock(a, 16 * (n + i), x, 12 * (i + 1), row, k);
      if (c + 2 < w) mulBlock(a, 16 * (2 * n + i), x, 12 * (i + 2), row, k);
      for (let q = 0; q < 12; q++) st(row, k + q, ld(b, 12 * i + q) - ld(row, k + q));
      solveDiag4(dinv, 16 * i, row, k, x, 12 * i);
    }
  }
}

@inline function scatter(t: usize, o: i32, f: f64, u: usize): void {
  for (let q = 0; q < 12; q++) st(t, o + q, ld(t, o + q) + f * ld(u, q));
}

@inline function gather(t: usize, o: i32, f: f64, u: usize): void {
  for (let q = 0; q < 12; q++) st(u, q, ld(u, q) + f * ld(t, o + q));
}

/** smooth.ts restrict4; u: 12 doubles of scratch. */
export function restrict4(
  w: i32, h: i32, B: usize, r: usize, R0: i32, R1: i32, u: usize,
  wc: i32, px: usize, wx0: usize, wx1: usize, py: usize, wy0: usize, wy1: usize, tmp: usize,
): void {
  zero(tmp, 12 * R0 * wc, 12 * R1 * wc);
  for (let y = 0; y < h; y++) {
    const Y = ldi(py, y);
    const top = Y >= R0 && Y < R1, bottom = ld(wy1, y) > 0 && Y + 1 >= R0 && Y + 1 < R1;
    if (!top && !bottom) {
      if (Y >= R1) break;
      continue;
    }
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      zero(u, 0, 12);
      for (let q = 0; q < 4; q++) {
        const r0 = ld(r, 12 * i + 3 * q), r1 = ld(r, 12 * i + 3 * q + 1), r2 = ld(r, 12 * i + 3 * q + 2);
        for (let m = 0; m < 4; m++) {
          const bm = ld(B, 16 * i + 4 * q + m);
          st(u, 3 * m, ld(u, 3 * m) + bm * r0); st(u, 3 * m + 1, ld(u, 3 * m + 1) + bm * r1); st(u, 3 * m + 2, ld(u, 3 * m + 2) + bm * r2);
        }
      }
      const X = ldi(px, xx);
      if (top) {
        scatter(tmp, 12 * (Y * wc + X), ld(wx0, xx) * ld(wy0, y), u);
        if (ld(wx1, xx) > 0) scatter(tmp, 12 * (Y * wc + X + 1), ld(wx1, xx) * ld(wy0, y), u);
      }
      if (bottom) {
        scatter(tmp, 12 * ((Y + 1) * wc + X), ld(wx0, xx) * ld(wy1, y), u);
        if (ld(wx1, xx) > 0) scatter(tmp, 12 * ((Y + 1) * wc + X + 1), ld(wx1, xx) * ld(wy1, y), u);
      }
    }
  }
}

/** smooth.ts prolong4; u: 12 doubles of scratch. */
export function prolong4(
  w: i32, B: usize, x: usize, r0: i32, r1: i32, u: usize,
  wc: i32, px: usize, wx0: usize, wx1: usize, py: usize, wy0: usize, wy1: usize, tmp: usize,
): void {
  for (let y = r0; y < r1; y++) {
    for (let xx = 0; xx < w; xx++) {
      const i = y * w + xx;
      const X = ldi(px, xx), Y = ldi(py, y);
      zero(u, 0, 12);
      gather(tmp, 12 * (Y * wc + X), ld(wx0, xx) * ld(wy0, y), u);
      if (ld(wx1, xx) > 0) gather(tmp, 12 * (Y * wc + X + 1), ld(wx1, xx) * ld(wy0, y), u);
      if (ld(wy1, y) > 0) {
        gather(tmp, 12 * ((Y + 1) * wc + X), ld(wx0, xx) * ld(wy1, y), u);
        if (ld(wx1, xx) > 0) gather(tmp, 12 * ((Y + 1) * wc + X + 1), ld(wx1, xx) * ld(wy1, y), u);
      }
      for (let q = 0; q < 4; q++) {
        const o = 16 * i + 4 * q;
        const b0 = ld(B, o), b1 = ld(B, o + 1), b2 = ld(B, o + 2), b3 = ld(B, o + 3);
        for (let ch = 0; ch < 3; ch++) {
          const k = 12 * i + 3 * q + ch;
          st(x, k, ld(x, k) + (b0 * ld(u, ch) + b1 * ld(u, 3 + ch) + b2 * ld(u, 6 + ch) + b3 * ld(u, 9 + ch)));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Coarsening (set-up): smooth.ts's gramRow, xPassRow1, xPassRow4 and yPass. X*, Y*: the parents
// of fine columns / rows (index, weight of it, weight of the next).

@inline function slotOf(dy: i32, dx: i32): i32 { return 5 * dy + dx; }

export function gramRow(w: i32, k: i32, B: usize, y: i32, G: usize, wc: i32,
  Xp: usize, Xw0: usize, Xw1: usize, Yp: usize, Yw0: usize, Yw1: usize, g: usize): void {
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    zero(g, 0, 16);
    for (let r = 0; r < k; r++) {
      const o = (i * k + r) * 4;
      for (let m = 0; m < 4; m++) for (let q = 0; q < 4; q++) st(g, 4 * m + q, ld(g, 4 * m + q) + ld(B, o + m) * ld(B, o + q));
    }
    const px = ldi(Xp, x), py = ldi(Yp, y);
    for (let b2 = 0; b2 < 2; b2++) {
      const fy = b2 ? ld(Yw1, y) : ld(Yw0, y);
      if (fy == 0) continue;
      for (let b1 = 0; b1 < 2; b1++) {
        const fx = b1 ? ld(Xw1, x) : ld(Xw0, x);
        if (fx == 0) continue;
        const p = fx * fy, f = p * p, o = 16 * ((py + b2) * wc + px + b1);
        for (let q = 0; q < 16; q++) st(G, o + q, ld(G, o + q) + f * ld(g, q));
      }
    }
  }
}

/** t[o + 4m + q] += f·B[bi + m]·B[bj + q]. */
@inline function addOuter(t: usize, o: i32, f: f64, B: usize, bi: i32, bj: i32): void {
  const c0 = ld(B, bj), c1 = ld(B, bj + 1), c2 = ld(B, bj + 2), c3 = ld(B, bj + 3);
  for (let m = 0; m < 4; m++) {
    const g = f * ld(B, bi + m), p = o + 4 * m;
    st(t, p, ld(t, p) + g * c0); st(t, p + 1, ld(t, p + 1) + g * c1); st(t, p + 2, ld(t, p + 2) + g * c2); st(t, p + 3, ld(t, p + 3) + g * c3);
  }
}

function xContrib1(T: usize, wc: i32, P: i32, Q: i32, dy: i32, diag: bool, f: f64, B: usize, bi: i32, bj: i32): void {
  const dX = Q - P;
  if (diag) {
    if (dX > 0) addOuter(T, 16 * (dX * wc + P), f, B, bi, bj);
    else if (dX == 0) addOuter(T, 16 * P, f, B, bi, bj);
  } else if (dy > 0 || dX > 0) {
    addOuter(T, 16 * ((5 * dy + dX) * wc + P), f, B, bi, bj);
  } else if (dX == 0) {
    addOuter(T, 16 * P, f, B, bi, bj);
    addOuter(T, 16 * P, f, B, bj, bi);
  } else {
    addOuter(T, 16 * (-dX * wc + Q), f, B, bj, bi);
  }
}

export function xPassRow1(w: i32, h: i32, n: i32, a: usize, B: usize, y: i32, T: usize, wc: i32, Xp: usize, Xw0: usize, Xw1: usize): void {
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    const pa = ldi(Xp, x), fa0 = ld(Xw0, x), fa1 = ld(Xw1, x);
    const bi0 = ld(B, 4 * i), bi1 = ld(B, 4 * i + 1), bi2 = ld(B, 4 * i + 2), bi3 = ld(B, 4 * i + 3);
    for (let s2 = 0; s2 < SLOTS; s2++) {
      const dy = slotDy(s2), x2 = x + slotDx(s2);
      if (x2 < 0 || x2 >= w || y + dy >= h) continue;
      const v = ld(a, s2 * n + i);
      if (v == 0) continue;
      const j = i + dy * w + slotDx(s2);
      const pb = ldi(Xp, x2), fb0 = ld(Xw0, x2), fb1 = ld(Xw1, x2);
      if (dy == 0) {
        const diag = s2 == 0;
        xContrib1(T, wc, pa, pb, 0, diag, v * fa0 * fb0, B, 4 * i, 4 * j);
        if (fb1 > 0) xContrib1(T, wc, pa, pb + 1, 0, diag, v * fa0 * fb1, B, 4 * i, 4 * j);
        if (fa1 > 0) {
          xContrib1(T, wc, pa + 1, pb, 0, diag, v * fa1 * fb0, B, 4 * i, 4 * j);
          if (fb1 > 0) xContrib1(T, wc, pa + 1, pb + 1, 0, diag, v * fa1 * fb1, B, 4 * i, 4 * j);
        }
        continue;
      }
      const bj0 = ld(B, 4 * j), bj1 = ld(B, 4 * j + 1), bj2 = ld(B, 4 * j + 2), bj3 = ld(B, 4 * j + 3);
      const sb = 5 * dy - pa;
      for (let e1 = 0; e1 < 2; e1++) {
        const f1 = e1 ? fa1 : fa0;
        if (f1 == 0) break;
        const P = pa + e1;
        for (let e2 = 0; e2 < 2; e2++) {
          const f2 = e2 ? fb1 : fb0;
          if (f2 == 0) break;
          const f = v * f1 * f2, Q = pb + e2;
          const o = 16 * ((sb - e1 + Q) * wc + P);
          const u0 = f * bi0, u1 = f * bi1, u2 = f * bi2, u3 = f * bi3;
          st(T, o, ld(T, o) + u0 * bj0); st(T, o + 1, ld(T, o + 1) + u0 * bj1); st(T, o + 2, ld(T, o + 2) + u0 * bj2); st(T, o + 3, ld(T, o + 3) + u0 * bj3);
          st(T, o + 4, ld(T, o + 4) + u1 * bj0); st(T, o + 5, ld(T, o + 5) + u1 * bj1); st(T, o + 6, ld(T, o + 6) + u1 * bj2); st(T, o + 7, ld(T, o + 7) + u1 * bj3);
          st(T, o + 8, ld(T, o + 8) + u2 * bj0); st(T, o + 9, ld(T, o + 9) + u2 * bj1); st(T, o + 10, ld(T, o + 10) + u2 * bj2); st(T, o + 11, ld(T, o + 11) + u2 * bj3);
          st(T, o + 12, ld(T, o + 12) + u3 * bj0); st(T, o + 13, ld(T, o + 13) + u3 * bj1); st(T, o + 14, ld(T, o + 14) + u3 * bj2); st(T, o + 15, ld(T, o + 15) + u3 * bj3);
        }
      }
    }
  }
}

@inline function addTo(t: usize, o: i32, f: f64, m: usize): void {
  for (let q = 0; q < 16; q++) st(t, o + q, ld(t, o + q) + f * ld(m, q));
}

/** ah, at, tmp: 16 doubles of scratch each. */
export function xPassRow4(w: i32, h: i32, n: i32, a: usize, B: usize, y: i32, T: usize, wc: i32, Xp: usize, Xw0: usize, Xw1: usize, ah: usize, at: usize, tmp: usize): void {
  for (let x = 0; x < w; x++) {
    const i = y * w + x;
    for (let s2 = 0; s2 < SLOTS; s2++) {
      const dy = slotDy(s2), dx = slotDx(s2);
      const x2 = x + dx, y2 = y + dy;
      if (x2 < 0 || x2 >= w || y2 >= h) continue;
      const j = y2 * w + x2;
      const pa = ldi(Xp, x), pb = ldi(Xp, x2);
      const fa0 = ld(Xw0, x), fa1 = ld(Xw1, x), fb0 = ld(Xw0, x2), fb1 = ld(Xw1, x2);
      const mo = 16 * (s2 * n + i);
      zero(tmp, 0, 16);
      for (let r = 0; r < 4; r++) {
        for (let t = 0; t < 4; t++) {
          const mv = ld(a, mo + 4 * r + t);
          if (mv == 0) continue;
          for (let q = 0; q < 4; q++) st(tmp, 4 * r + q, ld(tmp, 4 * r + q) + mv * ld(B, 16 * j + 4 * t + q));
        }
      }
      zero(ah, 0, 16);
      for (let r = 0; r < 4; r++) {
        for (let m = 0; m < 4; m++) {
          const bm = ld(B, 16 * i + 4 * r + m);
          if (bm == 0) continue;
          for (let q = 0; q < 4; q++) st(ah, 4 * m + q, ld(ah, 4 * m + q) + bm * ld(tmp, 4 * r + q));
        }
      }
      for (let r = 0; r < 4; r++) for (let q = 0; q < 4; q++) st(at, 4 * q + r, ld(ah, 4 * r + q));
      for (let e1 = 0; e1 < 2; e1++) {
        const f1 = e1 ? fa1 : fa0;
        if (f1 == 0) continue;
        const P = pa + e1;
        for (let e2 = 0; e2 < 2; e2++) {
          const f2 = e2 ? fb1 : fb0;
          if (f2 == 0) continue;
          const Q = pb + e2, f = f1 * f2, dX = Q - P;
          if (s2 == 0) {
            if (dX > 0) addTo(T, 16 * (slotOf(0, dX) * wc + P), f, ah);
            else if (dX == 0) addTo(T, 16 * P, f, ah);
          } else if (dy > 0 || dX > 0) {
            addTo(T, 16 * (slotOf(dy, dX) * wc + P), f, ah);
          } else if (dX == 0) {
            addTo(T, 16 * P, f, ah);
            addTo(T, 16 * P, f, at);
          } else {
            addTo(T, 16 * (slotOf(0, -dX) * wc + Q), f, at);
          }
        }
      }
    }
  }
}

function addRow(d: usize, dOff: i32, t: usize, tOff: i32, P0: i32, P1: i32, f: f64, transposed: bool): void {
  if (transposed) {
    for (let P = P0; P < P1; P++) {
      const o = dOff + 16 * P, m = tOff + 16 * P;
      for (let r = 0; r < 4; r++) {
        st(d, o + 4 * r, ld(d, o + 4 * r) + f * ld(t, m + r));
        st(d, o + 4 * r + 1, ld(d, o + 4 * r + 1) + f * ld(t, m + 4 + r));
        st(d, o + 4 * r + 2, ld(d, o + 4 * r + 2) + f * ld(t, m + 8 + r));
        st(d, o + 4 * r + 3, ld(d, o + 4 * r + 3) + f * ld(t, m + 12 + r));
      }
    }
  } else {
    const lo = dOff + 16 * P0, hi = dOff + 16 * P1, sh = tOff - dOff;
    for (let k = lo; k < hi; k++) st(d, k, ld(d, k) + f * ld(t, k + sh));
  }
}

/** ylen: the fine rows (Y's length). */
export function yPass(T: usize, Gh: usize, y: i32, wc: i32, nc: i32, Yp: usize, Yw0: usize, Yw1: usize, ylen: i32): void {
  for (let s2 = 0; s2 < SLOTS; s2++) {
    const dy = slotDy(s2), dX = slotDx(s2);
    const y2 = y + dy;
    if (y2 >= ylen) continue;
    const P0 = imax(0, -dX), P1 = imin(wc, wc - dX);
    for (let e1 = 0; e1 < 2; e1++) {
      const f1 = e1 ? ld(Yw1, y) : ld(Yw0, y);
      if (f1 == 0) break;
      const A1 = ldi(Yp, y) + e1;
      for (let e2 = 0; e2 < 2; e2++) {
        const f2 = e2 ? ld(Yw1, y2) : ld(Yw0, y2);
        if (f2 == 0) break;
        const A2 = ldi(Yp, y2) + e2, f = f1 * f2, dY = A2 - A1;
        if (s2 == 0) {
          if (dY > 0) addRow(Gh, 16 * (slotOf(dY, 0) * nc + A1 * wc), T, 0, P0, P1, f, false);
          else if (dY == 0) addRow(Gh, 16 * A1 * wc, T, 0, P0, P1, f, false);
        } else if (dY > 0 || (dY == 0 && dX > 0)) {
          addRow(Gh, 16 * (slotOf(dY, dX) * nc + A1 * wc), T, 16 * s2 * wc, P0, P1, f, false);
        } else if (dY == 0 && dX == 0) {
          addRow(Gh, 16 * A1 * wc, T, 16 * s2 * wc, P0, P1, f, false);
          addRow(Gh, 16 * A1 * wc, T, 16 * s2 * wc, P0, P1, f, true);
        } else {
          addRow(Gh, 16 * (slotOf(-dY, -dX) * nc + A2 * wc + dX), T, 16 * s2 * wc, P0, P1, f, true);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Conjugate-gradient vector passes over values k0 ≤ k < k1 (3 channels interleaved), for smooth.ts's
// threaded CG (runPart); per-channel sums go to out[0..).

/** r = b − q; out = (Σ b², Σ r²) per channel. */
export function cgInit(b: usize, q: usize, r: usize, k0: i32, k1: i32, out: usize): void {
  let bb0 = 0.0, bb1 = 0.0, bb2 = 0.0, s0 = 0.0, s1 = 0.0, s2 = 0.0;
  for (let k = k0; k < k1; k += 3) {
    const u0 = ld(b, k) - ld(q, k), u1 = ld(b, k + 1) - ld(q, k + 1), u2 = ld(b, k + 2) - ld(q, k + 2);
    st(r, k, u0); st(r, k + 1, u1); st(r, k + 2, u2);
    bb0 += ld(b, k) * ld(b, k); bb1 += ld(b, k + 1) * ld(b, k + 1); bb2 += ld(b, k + 2) * ld(b, k + 2);
    s0 += u0 * u0; s1 += u1 * u1; s2 += u2 * u2;
  }
  st(out, 0, bb0); st(out, 1, bb1); st(out, 2, bb2); st(out, 3, s0); st(out, 4, s1); st(out, 5, s2);
}

/** out = Σ p·q per channel. */
export function cgDot(p: usize, q: usize, k0: i32, k1: i32, out: usize): void {
  let s0 = 0.0, s1 = 0.0, s2 = 0.0;
  for (let k = k0; k < k1; k += 3) { s0 += ld(p, k) * ld(q, k); s1 += ld(p, k + 1) * ld(q, k + 1); s2 += ld(p, k + 2) * ld(q, k + 2); }
  st(out, 0, s0); st(out, 1, s1); st(out, 2, s2);
}

/** x += a p, r −= a q (a per channel); out = Σ r² per channel. */
export function cgUpdate(x: usize, p: usize, r: usize, q: usize, k0: i32, k1: i32, a0: f64, a1: f64, a2: f64, out: usize): void {
  let s0 = 0.0, s1 = 0.0, s2 = 0.0;
  for (let k = k0; k < k1; k += 3) {
    st(x, k, ld(x, k) + a0 * ld(p, k)); st(x, k + 1, ld(x, k + 1) + a1 * ld(p, k + 1)); st(x, k + 2, ld(x, k + 2) + a2 * ld(p, k + 2));
    const u0 = ld(r, k) - a0 * ld(q, k), u1 = ld(r, k + 1) - a1 * ld(q, k + 1), u2 = ld(r, k + 2) - a2 * ld(q, k + 2);
    st(r, k, u0); st(r, k + 1, u1); st(r, k + 2, u2);
    s0 += u0 * u0; s1 += u1 * u1; s2 += u2 * u2;
  }
  st(out, 0, s0); st(out, 1, s1); st(out, 2, s2);
}

/** p = z + b p (b per channel). */
export function cgDirection(p: usize, z: usize, k0: i32, k1: i32, b0: f64, b1: f64, b2: f64): void {
  for (let k = k0; k < k1; k += 3) {
    st(p, k, ld(z, k) + b0 * ld(p, k)); st(p, k + 1, ld(z, k + 1) + b1 * ld(p, k + 1)); st(p, k + 2, ld(z, k + 2) + b2 * ld(p, k + 2));
  }
}

// ---------------------------------------------------------------------------------------------
// The matting affinity (affinity.ts's mattingAffinity, same operations in the same order): data,
// the padded content image (float32, RGB); weights: 13 slot planes, zero on entry, added into;
// scratch: 54 doubles.

export function mattingAffinity(data: usize, w: i32, h: i32, weights: usize, epsd: f64, scratch: usize): void {
  const n = w * h;
  const dev = scratch, md = scratch + 27 * 8;
  for (let cy = 1; cy < h - 1; cy++) {
    for (let cx = 1; cx < w - 1; cx++) {
      let mr = 0.0, mg = 0.0, mb = 0.0;
      for (let k = 0; k < 9; k++) {
        const p = (cy - 1 + k / 3) * w + cx - 1 + (k % 3);
        mr += <f64>load<f32>(data + (<usize>(3 * p) << 2));
        mg += <f64>load<f32>(data + (<usize>(3 * p + 1) << 2));
        mb += <f64>load<f32>(data + (<usize>(3 * p + 2) << 2));
      }
      mr /= 9; mg /= 9; mb /= 9;
      let srr = 0.0, srg = 0.0, srb = 0.0, sgg = 0.0, sgb = 0.0, sbb = 0.0;
      for (let k = 0; k < 9; k++) {
        const p = 3 * ((cy - 1 + k / 3) * w + cx - 1 + (k % 3));
        const r = <f64>load<f32>(data + (<usize>p << 2)) - mr;
        const g = <f64>load<f32>(data + (<usize>(p + 1) << 2)) - mg;
        const b = <f64>load<f32>(data + (<usize>(p + 2) << 2)) - mb;
        st(dev, 3 * k, r); st(dev, 3 * k + 1, g); st(dev, 3 * k + 2, b);
        srr += r * r; srg += r * g; srb += r * b; sgg += g * g; sgb += g * b; sbb += b * b;
      }
      const l00 = Math.sqrt(srr / 9 + epsd);
      const l10 = srg / 9 / l00, l20 = srb / 9 / l00;
      const l11 = Math.sqrt(sgg / 9 + epsd - l10 * l10);
      const l21 = (sgb / 9 - l20 * l10) / l11;
      const l22 = Math.sqrt(sbb / 9 + epsd - l20 * l20 - l21 * l21);
      for (let k = 0; k < 9; k++) {
        const y0 = ld(dev, 3 * k) / l00;
        const y1 = (ld(dev, 3 * k + 1) - l10 * y0) / l11;
        const y2 = (ld(dev, 3 * k + 2) - l20 * y0 - l21 * y1) / l22;
        st(md, 3 * k, y0); st(md, 3 * k + 1, y1); st(md, 3 * k + 2, y2);
      }
      for (let k = 0; k < 9; k++) {
        const ky = k / 3, kx = k % 3;
        const xr = ld(md, 3 * k), xg = ld(md, 3 * k + 1), xb = ld(md, 3 * k + 2);
        const base = (cy - 1 + ky) * w + cx - 1 + kx;
        for (let l = k; l < 9; l++) {
          const v = (1 + xr * ld(md, 3 * l) + xg * ld(md, 3 * l + 1) + xb * ld(md, 3 * l + 2)) / 9;
          const s = 5 * (l / 3 - ky) + (l % 3) - kx;
          st(weights, s * n + base, ld(weights, s * n + base) + v);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Either kind of level (k = 1: scalar stencil, k = 4: 4×4 blocks; 3·k values per node), as
// smooth.ts's residualAfterSweep and crossCouplings.

@inline function acc(k: i32, a: usize, n: i32, w: i32, x: usize, r: i32, out: usize, oo: i32, s0: i32, s1: i32, fwd: bool, bwd: bool, nlo: i32, nhi: i32): void {
  if (k == 1) acc1(a, n, w, x, r, out, oo, s0, s1, fwd, bwd, nlo, nhi);
  else acc4(a, n, w, x, r, out, oo, s0, s1, fwd, bwd, nlo, nhi);
}

/** res := b − A x after the forward sweep of block [r0, r1): −U x, and the lower couplings to rows above the block. */
export function residualAfterSweep(a: usize, n: i32, w: i32, h: i32, k: i32, x: usize, res: usize, r0: i32, r1: i32): void {
  const stride = 3 * k * w;
  for (let r = r0; r < r1; r++) {
    const base = r * stride;
    zero(res, base, base + stride);
    acc(k, a, n, w, x, r, res, base, 1, SLOTS, true, false, 0, h);
    if (r0 > 0 && r < r0 + 2) acc(k, a, n, w, x, r, res, base, 3, SLOTS, false, true, 0, r0);
    for (let q = base; q < base + stride; q++) st(res, q, -ld(res, q));
  }
}

/** cross[rows of block [r0, r1) within 2 of its edges] = couplings to x outside the block. */
export function crossCouplings(a: usize, n: i32, w: i32, h: i32, k: i32, x: usize, cross: usize, r0: i32, r1: i32): void {
  const stride = 3 * k * w;
  for (let r = r0; r < r1; r++) {
    const top = r0 > 0 && r < r0 + 2, bottom = r1 < h && r >= r1 - 2;
    if (!top && !bottom) {
      r = imax(r, r1 - 3);
      continue;
    }
    const base = r * stride;
    zero(cross, base, base + stride);
    if (top) acc(k, a, n, w, x, r, cross, base, 3, SLOTS, false, true, 0, r0);
    if (bottom) acc(k, a, n, w, x, r, cross, base, 3, SLOTS, true, false, r1, h);
  }
}
