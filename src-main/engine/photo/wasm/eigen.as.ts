// The symmetric eigen-solver's two O(n³) stages (../eigen.ts tred2 and tql2, EISPACK via JAMA) in
// AssemblyScript, compiled by scripts/build-wasm.mjs into ../eigen-wasm.gen.ts. Line-for-line ports:
// every floating-point operation in the same order, so the results are bit-identical to the
// JavaScript's (tested). The element-wise inner loops (no sums across elements) run two lanes at a
// time as f64x2, which changes no result: each lane does the scalar code's operations, and
// WebAssembly has no fused multiply-add to contract them.
//
// w, d, e are pointers (byte offsets) to n·n, n and n float64s in the module's memory. No allocation,
// no data segment.

@inline function ld(p: usize, i: i32): f64 { return load<f64>(p + (<usize>i << 3)); }
@inline function st(p: usize, i: i32, v: f64): void { store<f64>(p + (<usize>i << 3), v); }
@inline function ldv(p: usize, i: i32): v128 { return v128.load(p + (<usize>i << 3)); }
@inline function stv(p: usize, i: i32, v: v128): void { v128.store(p + (<usize>i << 3), v); }

/** Householder tridiagonalisation: d = diagonal, e = sub-diagonal (e[0] = 0), W = the transform, transposed. */
export function tred2(w: usize, d: usize, e: usize, n: i32): void {
  for (let j = 0; j < n; j++) st(d, j, ld(w, j * n + n - 1));
  for (let i = n - 1; i > 0; i--) {
    let scale: f64 = 0;
    let h: f64 = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(ld(d, k));
    if (scale == 0) {
      st(e, i, ld(d, i - 1));
      for (let j = 0; j < i; j++) {
        st(d, j, ld(w, j * n + i - 1));
        st(w, j * n + i, 0);
        st(w, i * n + j, 0);
      }
    } else {
      for (let k = 0; k < i; k++) {
        st(d, k, ld(d, k) / scale);
        h += ld(d, k) * ld(d, k);
      }
      let f = ld(d, i - 1);
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      st(e, i, scale * g);
      h -= f * g;
      st(d, i - 1, f - g);
      for (let j = 0; j < i; j++) st(e, j, 0);
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = ld(d, j);
        st(w, i * n + j, f);
        g = ld(e, j) + ld(w, rj + j) * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const v = ld(w, rj + k);
          g += v * ld(d, k);
          st(e, k, ld(e, k) + v * f);
        }
        st(e, j, g);
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        st(e, j, ld(e, j) / h);
        f += ld(e, j) * ld(d, j);
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) st(e, j, ld(e, j) - hh * ld(d, j));
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = ld(d, j);
        g = ld(e, j);
        // w[rj + k] -= f·e[k] + g·d[k] for j ≤ k ≤ i − 1: element-wise.
        const fv = f64x2.splat(f);
        const gv = f64x2.splat(g);
        let k = j;
        for (; k + 1 <= i - 1; k += 2) {
          stv(w, rj + k, f64x2.sub(ldv(w, rj + k), f64x2.add(f64x2.mul(fv, ldv(e, k)), f64x2.mul(gv, ldv(d, k)))));
        }
        for (; k <= i - 1; k++) st(w, rj + k, ld(w, rj + k) - (f * ld(e, k) + g * ld(d, k)));
        st(d, j, ld(w, rj + i - 1));
        st(w, rj + i, 0);
      }
    }
    st(d, i, h);
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    const ri = i * n;
    const ri1 = (i + 1) * n;
    st(w, ri + n - 1, ld(w, ri + i));
    st(w, ri + i, 1);
    const h = ld(d, i + 1);
    if (h != 0) {
      for (let k = 0; k <= i; k++) st(d, k, ld(w, ri1 + k) / h);
      for (let j = 0; j <= i; j++) {
        const rj = j * n;
        let g: f64 = 0;
        for (let k = 0; k <= i; k++) g += ld(w, ri1 + k) * ld(w, rj + k);
        const gv = f64x2.splat(g);
        let k = 0;
        for (; k + 1 <= i; k += 2) stv(w, rj + k, f64x2.sub(ldv(w, rj + k), f64x2.mul(gv, ldv(d, k))));
        for (; k <= i; k++) st(w, rj + k, ld(w, rj + k) - g * ld(d, k));
      }
    }
    for (let k = 0; k <= i; k++) st(w, ri1 + k, 0);
  }
  for (let j = 0; j < n; j++) {
    st(d, j, ld(w, j * n + n - 1));
    st(w, j * n + n - 1, 0);
  }
  st(w, (n - 1) * n + n - 1, 1);
  st(e, 0, 0);
}

@inline function hypot(a: f64, b: f64): f64 {
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) { const r = y / x; return x * Math.sqrt(1 + r * r); }
  if (y == 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
}

/**
 * Implicit QL on the tridiagonal (d, e), accumulating the rotations into the rows of W. Returns 0, or
 * −(l + 1) when eigenvalue l did not converge in 60 iterations (the caller throws).
 */
export function tql2(w: usize, d: usize, e: usize, n: i32): i32 {
  for (let i = 1; i < n; i++) st(e, i - 1, ld(e, i));
  st(e, n - 1, 0);
  let f: f64 = 0;
  let tst1: f64 = 0;
  const eps: f64 = 2.220446049250313e-16; // 2^-52
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(ld(d, l)) + Math.abs(ld(e, l)));
    let m = l;
    while (m < n - 1 && Math.abs(ld(e, m)) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) return -(l + 1);
        let g = ld(d, l);
        let p = (ld(d, l + 1) - g) / (2 * ld(e, l));
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        st(d, l, ld(e, l) / (p + r));
        st(d, l + 1, ld(e, l) * (p + r));
        const dl1 = ld(d, l + 1);
        let h = g - ld(d, l);
        for (let i = l + 2; i < n; i++) st(d, i, ld(d, i) - h);
        f += h;
        p = ld(d, m);
        let c: f64 = 1;
        let c2 = c;
        let c3 = c;
        const el1 = ld(e, l + 1);
        let s: f64 = 0;
        let s2: f64 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * ld(e, i);
          h = c * p;
          r = hypot(p, ld(e, i));
          st(e, i + 1, s * r);
          s = ld(e, i) / r;
          c = p / r;
          p = c * ld(d, i) - s * g;
          st(d, i + 1, h + s * (c * g + s * ld(d, i)));
          // Rotate eigenvector rows i and i + 1 of W (columns of V): element-wise.
          const ri = i * n;
          const ri1 = ri + n;
          const sv = f64x2.splat(s);
          const cv = f64x2.splat(c);
          let k = 0;
          for (; k + 1 < n; k += 2) {
            const hk = ldv(w, ri1 + k);
            const vk = ldv(w, ri + k);
            stv(w, ri1 + k, f64x2.add(f64x2.mul(sv, vk), f64x2.mul(cv, hk)));
            stv(w, ri + k, f64x2.sub(f64x2.mul(cv, vk), f64x2.mul(sv, hk)));
          }
          for (; k < n; k++) {
            const hk = ld(w, ri1 + k);
            const vk = ld(w, ri + k);
            st(w, ri1 + k, s * vk + c * hk);
            st(w, ri + k, c * vk - s * hk);
          }
        }
        p = (-s * s2 * c3 * el1 * ld(e, l)) / dl1;
        st(e, l, s * p);
        st(d, l, c * p);
      } while (Math.abs(ld(e, l)) > eps * tst1);
    }
    st(d, l, ld(d, l) + f);
    st(e, l, 0);
  }
  return 0;
}
