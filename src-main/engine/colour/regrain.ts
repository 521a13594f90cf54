/**
 * The regrain of `match` (REFERENCE §6: Pitié et al.'s regrain restores the photo's gradients; here
 * the local affine colour model of §3/§7 does it): the transferred colours Y become an edge-aware,
 * locally affine function of the photo, so the photo's own edges, texture and grain come back.
 *
 * Luminance and chroma are regrained apart, because they carry different things:
 *  - L* of the result is fitted to the photo's L* alone (a grey guided filter, He et al. 2010, with
 *    the local slope held ≥ 0): L_out = ā·L_photo + b̄, so within every small window the result's
 *    tones are an increasing affine function of the photo's — its detail, never inverted. A colour
 *    guide would let a hue edge of the photo become a tone edge of the result (measured: the mean
 *    structure kept drops from 0.99 to 0.95, the worst pair from 0.93 to 0.83).
 *  - a*, b* are fitted to the photo's colour (the local affine model of ../photo/affine-transfer.ts
 *    with the photo's RGB as the guide): chroma edges follow the photo's colour edges.
 * Exact mode runs the closed-form smoothing (../photo/smoothing.ts) on all three L*a*b* channels in
 * one solve, as PhotoWCT's smoothing does on RGB, with the affinity of the photo's L* (a grey guide:
 * worst structure kept 0.87 against 0.79 with the colour affinity; chroma then follows tone edges).
 */
import type { RgbImage } from '../image.ts';
import { applyLocalAffine, downsample, fitLocalAffine } from '../photo/affine-transfer.ts';
import { runSmoothing, type SmoothingHooks, type SmoothingMode, type SmoothingReport } from '../photo/smoothing.ts';
import type { SmoothParams } from '../../protocol.ts';

/** a*, b* ↔ the [0, 1] channels the RGB-image filters take (±127.5 spans them). */
const AB_SCALE = 255;

/** Fast mode fits its coefficients at no more than about this many pixels on the longest side. */
export const FIT_SIDE = 512;

export interface RegrainSettings extends Omit<SmoothParams, 'mode'> {
  /** ε of the luminance fit, in L* units² (0–100 scale). */
  epsL: number;
}

/**
 * Regrains the transferred L*a*b* `lab` with the photo (`photo`: sRGB, `photoLab`: its L*a*b*).
 * With `keepLuminance` only a*, b* are regrained (L* stays the photo's). Returns the new L*a*b*.
 */
export async function regrain(
  photo: RgbImage, photoLab: Float32Array, lab: Float32Array, mode: SmoothingMode, s: RegrainSettings, keepLuminance: boolean, hooks: SmoothingHooks = {},
): Promise<{ lab: Float32Array; report: SmoothingReport }> {
  const { width: w, height: h } = photo;
  const n = w * h;
  if (mode === 'none') return { lab, report: { mode, width: w, height: h, ms: 0 } };
  const t0 = performance.now();
  const out = new Float32Array(n * 3);
  let report: SmoothingReport;
  if (mode === 'exact') {
    // The L*a*b* channels as an "image" on [0, 1] for the solver (L/100, a/255 + ½, b/255 + ½).
    const enc = new Float32Array(n * 3);
    for (let i = 0; i < 3 * n; i += 3) {
      enc[i] = lab[i] / 100;
      enc[i + 1] = lab[i + 1] / AB_SCALE + 0.5;
      enc[i + 2] = lab[i + 2] / AB_SCALE + 0.5;
    }
    // The affinity of the photo's L* (a grey guide), for the reason given above for L*.
    const guide = new Float32Array(3 * n);
    for (let i = 0; i < 3 * n; i += 3) guide[i] = guide[i + 1] = guide[i + 2] = photoLab[i] / 100;
    const r = await runSmoothing({ width: w, height: h, data: guide }, { width: w, height: h, data: enc }, 'exact', s, hooks);
    for (let i = 0; i < 3 * n; i += 3) {
      out[i] = keepLuminance ? photoLab[i] : r.image.data[i] * 100;
      out[i + 1] = (r.image.data[i + 1] - 0.5) * AB_SCALE;
      out[i + 2] = (r.image.data[i + 2] - 0.5) * AB_SCALE;
    }
    report = r.report;
  } else {
    hooks.checkCancelled?.();
    // The fit's inputs at 1/s of the size: the photo's colours and L*, and the transferred L*a*b*.
    const s2 = fitScale(w, h);
    const photoL = new Float64Array(n);
    for (let k = 0; k < n; k++) photoL[k] = photoLab[3 * k];
    const small = (x: ArrayLike<number>, c: number) => (s2 === 1 ? { data: x, width: w, height: h } : downsample(x, c, w, h, s2));
    const rgb = small(photo.data, 3);
    const grained = regrainFast(photo, photoL, { rgb: rgb.data, L: small(photoL, 1).data, lab: small(lab, 3).data, width: rgb.width, height: rgb.height }, s, keepLuminance);
    out.set(grained.lab);
    report = grained.report;
  }
  return { lab: out, report: { ...report, ms: performance.now() - t0 } };
}

/**
 * The fast regrain (He & Sun's fast guided filter): coefficients fitted at 1/s of the size (s = 1 up
 * to FIT_SIDE px, see `fitScale`), applied at full size; the windows keep their size in the picture
 * (r/s). `fit` holds the photo's sRGB and L* and the transferred L*a*b* at the fit size; `photoL` is
 * the photo's L* at full size. With `keepLuminance` the output's L* is the photo's.
 */
export function regrainFast(
  photo: RgbImage, photoL: ArrayLike<number>, fit: { rgb: ArrayLike<number>; L: ArrayLike<number>; lab: ArrayLike<number>; width: number; height: number },
  s: RegrainSettings, keepLuminance: boolean,
): { lab: Float32Array; report: SmoothingReport } {
  const t0 = performance.now();
  const { width: w, height: h } = photo;
  const n = w * h, wl = fit.width, hl = fit.height, nl = wl * hl;
  const r = Math.max(1, Math.round((s.radius * wl) / w));
  const ab = new Float64Array(2 * nl), L = new Float64Array(nl);
  for (let k = 0; k < nl; k++) {
    L[k] = fit.lab[3 * k];
    // a*b* on the [0, 1] scale the colour guide's ε is given in.
    ab[2 * k] = fit.lab[3 * k + 1] / AB_SCALE;
    ab[2 * k + 1] = fit.lab[3 * k + 2] / AB_SCALE;
  }
  const abOut = applyLocalAffine(fitLocalAffine(fit.rgb, ab, wl, hl, 3, 2, { radius: r, eps: s.eps }), photo.data, w, h);
  const LOut = keepLuminance ? undefined : applyLocalAffine(fitLocalAffine(fit.L, L, wl, hl, 1, 1, { radius: r, eps: s.epsL, nonNegative: true }), photoL, w, h);
  const out = new Float32Array(3 * n);
  for (let k = 0, i = 0; k < n; k++, i += 3) {
    out[i] = LOut ? Math.min(100, Math.max(0, LOut[k])) : photoL[k];
    out[i + 1] = abOut[2 * k] * AB_SCALE;
    out[i + 2] = abOut[2 * k + 1] * AB_SCALE;
  }
  return { lab: out, report: { mode: 'fast', radius: s.radius, eps: s.eps, width: w, height: h, ms: performance.now() - t0 } };
}

/** The fast regrain's reduction: 1 up to 2·FIT_SIDE − 1 px on the longest side, then ⌊side / FIT_SIDE⌋. */
export function fitScale(w: number, h: number): number {
  return Math.max(1, Math.floor(Math.max(w, h) / FIT_SIDE));
}
