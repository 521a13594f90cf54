/**
 * A colour lattice: a regular grid of nodes over a box of colour space (2-D or 3-D), each node
 * carrying where the transfer sends that colour; any colour inside is then mapped by bilinear /
 * trilinear interpolation of its cell's nodes (a 3-D LUT, as colour-grading tools apply looks).
 *
 * Why: the distribution transfer (./transfer.ts) learns its maps on a sample of the photo's colours;
 * moving the lattice nodes by the same maps turns the whole transfer into one smooth function of the
 * colour, applied to every pixel at the cost of one interpolation (no per-pixel iterations), and equal
 * colours stay equal (no noise added to flat or clipped areas). Affine maps — the linear transport
 * map — are reproduced exactly by the interpolation.
 */
import { StudioError } from '../../errors.ts';

export class ColourLattice {
  readonly d: 2 | 3;
  readonly lo: Float64Array;
  readonly step: Float64Array;
  /** Nodes per axis. */
  readonly n: number;

  /** The box [lo, hi] per channel (a degenerate axis gets a unit width), n nodes per axis. */
  constructor(lo: ArrayLike<number>, hi: ArrayLike<number>, n: number) {
    const d = lo.length;
    if (d !== 2 && d !== 3) throw new StudioError('BAD_ARGUMENT', `a colour lattice is 2-D or 3-D, got ${d} channels`);
    if (!Number.isInteger(n) || n < 2) throw new StudioError('BAD_ARGUMENT', `a colour lattice needs at least 2 nodes per axis, got ${n}`);
    this.d = d;
    this.n = n;
    this.lo = Float64Array.from(lo);
    this.step = Float64Array.from({ length: d }, (_, c) => {
      const width = hi[c] - lo[c];
      return (width > 1e-9 ? width : 1) / (n - 1);
    });
  }

  /**
   * The box around colours: d channels starting at `offset` of interleaved pixels of `stride`
   * channels (the listed pixels only, when `indices` is given).
   */
  static around(colours: Float32Array | Float64Array, stride: number, offset: number, d: number, n: number, indices?: ArrayLike<number>): ColourLattice {
    const lo = new Array<number>(d).fill(Infinity), hi = new Array<number>(d).fill(-Infinity);
    const count = indices ? indices.length : colours.length / stride;
    for (let k = 0; k < count; k++) {
      const o = (indices ? indices[k] : k) * stride + offset;
      for (let c = 0; c < d; c++) {
        const v = colours[o + c];
        if (v < lo[c]) lo[c] = v;
        if (v > hi[c]) hi[c] = v;
      }
    }
    return new ColourLattice(lo, hi, n);
  }

  get size(): number {
    return this.n ** this.d;
  }

  /** The node colours, interleaved, the last channel varying fastest. */
  nodes(): Float64Array {
    const { d, n, lo, step } = this;
    const out = new Float64Array(this.size * d);
    for (let i = 0; i < this.size; i++) {
      let rest = i;
      for (let c = d - 1; c >= 0; c--) {
        out[i * d + c] = lo[c] + (rest % n) * step[c];
        rest = Math.floor(rest / n);
      }
    }
    return out;
  }

  /**
   * Maps colours through the lattice: `values` holds each node's image (as `nodes()` ordered them).
   * `src` and `dst` are interleaved with `stride` channels per pixel, the lattice's d of them
   * starting at `offset`; the listed pixels only, when `indices` is given. Colours outside the box
   * are clamped to it (the box is made around the photo's own colours).
   */
  apply(values: Float64Array, src: Float32Array | Float64Array, dst: Float32Array | Float64Array, stride: number, offset: number, indices?: ArrayLike<number>): void {
    const { d, n, lo, step } = this;
    if (values.length !== this.size * d) throw new StudioError('INTERNAL', `lattice values: expected ${this.size * d}, got ${values.length}`);
    const count = indices ? indices.length : src.length / stride;
    // Cell index and fraction along axis c (clamped to the box; NaN → the first cell).
    const pos = (v: number, c: number): number => {
      const t = (v - lo[c]) / step[c];
      return t > 0 ? (t < n - 1 ? t : n - 1) : 0;
    };
    if (d === 2) {
      for (let k = 0; k < count; k++) {
        const p = (indices ? indices[k] : k) * stride + offset;
        const t0 = pos(src[p], 0), t1 = pos(src[p + 1], 1);
        const i0 = Math.min(n - 2, Math.floor(t0)), i1 = Math.min(n - 2, Math.floor(t1));
        const f0 = t0 - i0, f1 = t1 - i1;
        const base = (i0 * n + i1) * 2;
        for (let c = 0; c < 2; c++) {
          const v00 = values[base + c], v01 = values[base + 2 + c];
          const v10 = values[base + 2 * n + c], v11 = values[base + 2 * n + 2 + c];
          const a = v00 + f1 * (v01 - v00), b = v10 + f1 * (v11 - v10);
          dst[p + c] = a + f0 * (b - a);
        }
      }
      return;
    }
    const nn = n * n;
    for (let k = 0; k < count; k++) {
      const p = (indices ? indices[k] : k) * stride + offset;
      const t0 = pos(src[p], 0), t1 = pos(src[p + 1], 1), t2 = pos(src[p + 2], 2);
      const i0 = Math.min(n - 2, Math.floor(t0)), i1 = Math.min(n - 2, Math.floor(t1)), i2 = Math.min(n - 2, Math.floor(t2));
      const f0 = t0 - i0, f1 = t1 - i1, f2 = t2 - i2;
      const base = (i0 * nn + i1 * n + i2) * 3;
      const dy = 3 * n, dx = 3 * nn;
      for (let c = 0; c < 3; c++) {
        const b0 = base + c;
        const c00 = values[b0] + f2 * (values[b0 + 3] - values[b0]);
        const c01 = values[b0 + dy] + f2 * (values[b0 + dy + 3] - values[b0 + dy]);
        const c10 = values[b0 + dx] + f2 * (values[b0 + dx + 3] - values[b0 + dx]);
        const c11 = values[b0 + dx + dy] + f2 * (values[b0 + dx + dy + 3] - values[b0 + dx + dy]);
        const c0 = c00 + f1 * (c01 - c00), c1 = c10 + f1 * (c11 - c10);
        dst[p + c] = c0 + f0 * (c1 - c0);
      }
    }
  }
}
