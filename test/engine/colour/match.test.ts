import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { readImage } from '../../../src-main/io/images.ts';
import type { RgbImage } from '../../../src-main/engine/image.ts';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { colourMatch, transferColours, type MatchOptions } from '../../../src-main/engine/colour/match.ts';
import { lookDistance, structureKept } from '../../../src-main/engine/colour/metrics.ts';
import { rgbToLab } from '../../../src-main/engine/colour/spaces.ts';
import { defaultRegrainRadius } from '../../../src-main/worker/match.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

const SAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../assets/samples');
const PHOTOS = ['content-astronaut', 'content-chelsea', 'content-coffee', 'content-rocket', 'photo-Dune', 'photo-GreenMeadow', 'photo-Storm'];
const REFERENCES = ['photo-Dune', 'photo-GreenMeadow', 'photo-Storm'];

const images = new Map<string, RgbImage>();
const load = async (name: string) => images.get(name) ?? images.set(name, await readImage(path.join(SAMPLES, `${name}.jpg`), { maxSide: 512 })).get(name)!;

/** The worker's defaults (protocol MatchParams) for an image. */
const defaults = (img: RgbImage, extra: Partial<MatchOptions> = {}): MatchOptions => ({
  regrain: 'fast',
  smoothing: { alpha: 0.9999, tol: 1e-7, affinity: 'matting', solver: 'auto', radius: defaultRegrainRadius(img.width, img.height), eps: 1e-4, epsL: 1 },
  ...extra,
});

const image = (w: number, h: number, f: (x: number, y: number) => [number, number, number]): RgbImage => {
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), 3 * (y * w + x));
  return { width: w, height: h, data };
};

const finiteInGamut = (img: RgbImage) => img.data.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);

describe('colour match on the bundled photo/reference pairs', () => {
  // Every photo with every other reference: the targets, and better than either classical step alone.
  for (const p of PHOTOS) {
    for (const r of REFERENCES) {
      if (p === r) continue;
      test(`${p} → ${r}`, async () => {
        const c = await load(p), s = await load(r);
        const d0 = lookDistance(c, s);
        const { image: out, report } = await colourMatch(c, s, defaults(c));
        const dist = lookDistance(out, s) / d0, structure = structureKept(out, c);
        assert.ok(dist <= 0.1, `result → reference distance ${(100 * dist).toFixed(1)}% of photo → reference (target ≤ 10%)`);
        assert.ok(structure >= 0.95, `structure kept ${structure.toFixed(4)} (target ≥ 0.95)`);
        const linear = transferColours(c, s, { idt: false }).image, idt = transferColours(c, s, { linear: false }).image;
        assert.ok(dist < lookDistance(linear, s) / d0, 'closer to the reference than the linear map alone');
        assert.ok(structure > structureKept(idt, c), 'keeps more structure than distribution transfer alone');
        assert.ok(report.idt.iterations >= 1 && report.idt.converged, JSON.stringify(report.idt));
        assert.ok(finiteInGamut(out));
      });
    }
  }
});

describe('colour match: controls and hard inputs', () => {
  let photo: RgbImage, ref: RgbImage;
  before(async () => {
    photo = await readImage(path.join(SAMPLES, 'content-chelsea.jpg'), { maxSide: 160 });
    ref = await readImage(path.join(SAMPLES, 'photo-Storm.jpg'), { maxSide: 160 });
  });

  test('α = 0 returns the photo exactly; α = 0.5 lies between', async () => {
    const zero = await colourMatch(photo, ref, defaults(photo, { alpha: 0 }));
    assert.deepEqual(zero.image.data, photo.data);
    const half = await colourMatch(photo, ref, defaults(photo, { alpha: 0.5 }));
    const full = await colourMatch(photo, ref, defaults(photo));
    const d0 = lookDistance(photo, ref), dh = lookDistance(half.image, ref), d1 = lookDistance(full.image, ref);
    assert.ok(d1 < dh && dh < d0, `${d0.toFixed(2)} > ${dh.toFixed(2)} > ${d1.toFixed(2)}`);
  });

  test('keep luminance leaves L* unchanged and takes the colours', async () => {
    for (const regrain of ['fast', 'exact', 'none'] as const) {
      const { image: out, report } = await colourMatch(photo, ref, defaults(photo, { keepLuminance: true, regrain }));
      assert.equal(report.channels, 'a*b*');
      const a = rgbToLab(photo.data), b = rgbToLab(out.data);
      let maxL = 0, chroma = 0;
      for (let i = 0; i < a.length; i += 3) {
        maxL = Math.max(maxL, Math.abs(a[i] - b[i]));
        chroma += Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
      }
      assert.ok(maxL < 0.01, `${regrain}: L* moved by ${maxL}`);
      assert.ok(chroma / (a.length / 3) > 2, `${regrain}: the colours changed (mean |Δa|+|Δb| ${(chroma / (a.length / 3)).toFixed(2)})`);
    }
  });

  test('label maps change only the labelled regions', async () => {
    const w = photo.width, h = photo.height;
    // Photo: left half labelled 1, right half unlabelled (-1); reference: every pixel label 1.
    const cl = Int32Array.from({ length: w * h }, (_, i) => (i % w < w / 2 ? 1 : -1));
    const sl = new Int32Array(ref.width * ref.height).fill(1);
    const none = await colourMatch(photo, ref, defaults(photo, { regrain: 'none', labels: { content: cl, style: sl } }));
    let changedLeft = 0;
    for (let i = 0; i < w * h; i++) {
      const same = [0, 1, 2].every((c) => none.image.data[3 * i + c] === photo.data[3 * i + c]);
      if (cl[i] < 0) assert.ok(same, `unlabelled pixel ${i} changed`);
      else if (!same) changedLeft++;
    }
    assert.ok(changedLeft > 0.9 * (w * h) / 2, `labelled pixels changed: ${changedLeft}`);
    assert.deepEqual(none.report.regions?.map((r) => [r.label, r.used]), [[1, true]]);
    // With the regrain, pixels farther than two windows from the region keep their values.
    const fast = await colourMatch(photo, ref, defaults(photo, { labels: { content: cl, style: sl } }));
    const r = defaultRegrainRadius(w, h);
    for (let y = 0; y < h; y++) for (let x = Math.ceil(w / 2) + 2 * r + 2; x < w; x++) {
      for (let c = 0; c < 3; c++) assert.equal(fast.image.data[3 * (y * w + x) + c], photo.data[3 * (y * w + x) + c]);
    }
    // A label whose regions break the validity rule (≤ 10 pixels in the reference) is not used.
    const tiny = new Int32Array(ref.width * ref.height).fill(2);
    tiny.fill(1, 0, 5);
    const rejected = await colourMatch(photo, ref, defaults(photo, { regrain: 'none', labels: { content: cl, style: tiny } }));
    assert.deepEqual(rejected.image.data, photo.data);
    assert.match(rejected.report.regions!.find((x) => x.label === 1)!.reason!, /10 positions or fewer/);
    await assert.rejects(colourMatch(photo, ref, defaults(photo, { labels: { content: new Int32Array(3), style: sl } })), /one per pixel/);
  });

  test('greyscale, single-colour, 2-pixel and 1-pixel references; greyscale, flat and clipped photos: no NaN', async () => {
    const refs: Record<string, RgbImage> = {
      grey: image(40, 30, (x) => [x / 39, x / 39, x / 39]),
      single: image(16, 16, () => [0.8, 0.3, 0.1]),
      twoPixels: image(2, 1, (x) => (x ? [0.1, 0.2, 0.9] : [0.9, 0.8, 0.1])),
      onePixel: image(1, 1, () => [0.2, 0.6, 0.3]),
    };
    const photos: Record<string, RgbImage> = {
      photo,
      clipped: { ...photo, data: photo.data.map((v) => Math.min(1, 3 * v)) },
      grey: image(48, 32, (x, y) => [(x + y) / 78, (x + y) / 78, (x + y) / 78]),
      flat: image(20, 20, () => [0.5, 0.5, 0.5]),
    };
    for (const [pn, p] of Object.entries(photos)) {
      for (const [rn, r] of Object.entries(refs)) {
        for (const regrain of ['fast', 'exact', 'none'] as const) {
          const { image: out, report } = await colourMatch(p, r, defaults(p, { regrain }));
          assert.ok(finiteInGamut(out), `${pn} → ${rn} (${regrain})`);
          if (rn === 'single' || rn === 'onePixel') {
            // One colour in the reference: every pixel takes it.
            const want = r.data.slice(0, 3);
            for (let i = 0; i < out.data.length; i++) assert.ok(Math.abs(out.data[i] - want[i % 3]) < 0.02, `${pn} → ${rn} (${regrain}) pixel ${i}: ${out.data[i]} vs ${want[i % 3]}`);
          }
          if (pn === 'grey' || pn === 'flat') assert.ok(report.regularized >= 2, `${pn}: the rank-deficient covariance was regularised`);
        }
      }
    }
  });

  test('16-bit input stays in float: more than 256 levels come out of a smooth gradient', async () => {
    // A gradient at 16-bit precision (steps of 1/4096) and a reference.
    const g = image(1024, 4, (x) => [x / 4096 + 0.3, x / 4096 + 0.35, x / 4096 + 0.2]);
    const { image: out } = await colourMatch(g, ref, defaults(g, { regrain: 'none' }));
    const levels = new Set(Array.from({ length: 1024 }, (_, x) => Math.round(out.data[3 * x] * 65535)));
    assert.ok(levels.size > 256, `${levels.size} distinct 16-bit levels`);
  });

  test('deterministic for a seed; another seed differs slightly', async () => {
    const a = await colourMatch(photo, ref, defaults(photo, { seed: 3 }));
    const b = await colourMatch(photo, ref, defaults(photo, { seed: 3 }));
    assert.deepEqual(a.image.data, b.image.data);
    const c = await colourMatch(photo, ref, defaults(photo, { seed: 4 }));
    assert.notDeepEqual(a.image.data, c.image.data);
  });

  test('bad inputs are clear errors', async () => {
    await assert.rejects(colourMatch(photo, { width: 2, height: 2, data: new Float32Array(5) }, defaults(photo)), /reference is not a valid RGB image/);
    const nan = { ...photo, data: Float32Array.from(photo.data) };
    nan.data[7] = NaN;
    await assert.rejects(colourMatch(nan, ref, defaults(photo)), /non-finite value at index 7/);
    await assert.rejects(colourMatch(photo, ref, defaults(photo, { alpha: 2 })), /alpha must be in \[0, 1\]/);
  });

  test('no tensors are kept, also by the exact regrain on the tensor solver', async () => {
    await initBackend('wasm');
    const small = image(40, 28, (x, y) => [x / 40, y / 28, 0.5]);
    const before = tf.memory().numTensors;
    await colourMatch(photo, ref, defaults(photo));
    const r = await colourMatch(small, ref, defaults(small, { regrain: 'exact', smoothing: { ...defaults(small).smoothing!, solver: 'tensor' } }));
    assert.equal(r.report.regrain.solver, 'tensor');
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('look distance and structure kept', () => {
  test('look distance: 0 to itself, symmetric, stable to 1% across seeds, grows with a colour shift', async () => {
    const a = await load('content-coffee'), b = await load('photo-Storm');
    assert.equal(lookDistance(a, a), 0);
    const d = lookDistance(a, b);
    assert.ok(Math.abs(lookDistance(b, a) - d) / d < 0.01);
    for (const seed of [2, 3, 4]) {
      const ds = lookDistance(a, b, { seed });
      assert.ok(Math.abs(ds - d) / d < 0.01, `seed ${seed}: ${ds} vs ${d}`);
    }
    const shifted = { ...a, data: a.data.map((v, i) => (i % 3 === 2 ? Math.min(1, v + 0.1) : v)) };
    const ds = lookDistance(a, shifted);
    assert.ok(ds > 2 && ds < 30, `a blue shift: ${ds}`);
  });

  test('structure kept: 1 for the photo itself and its tone curves, lower with noise or blur', async () => {
    const a = await load('content-chelsea');
    assert.ok(Math.abs(structureKept(a, a) - 1) < 1e-9);
    const toned = { ...a, data: a.data.map((v) => 0.1 + 0.8 * v) };
    assert.ok(structureKept(toned, a) > 0.99);
    const r = mulberry32(1);
    const noisy = { ...a, data: a.data.map((v) => Math.min(1, Math.max(0, v + 0.08 * (r() - 0.5)))) };
    assert.ok(structureKept(noisy, a) < 0.97, `noise: ${structureKept(noisy, a)}`);
    // A 5×5 box blur loses the fine structure.
    const blurred = image(a.width, a.height, (x, y) => {
      const s = [0, 0, 0];
      let n = 0;
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
        const xx = Math.min(a.width - 1, Math.max(0, x + dx)), yy = Math.min(a.height - 1, Math.max(0, y + dy));
        for (let c = 0; c < 3; c++) s[c] += a.data[3 * (yy * a.width + xx) + c];
        n++;
      }
      return [s[0] / n, s[1] / n, s[2] / n];
    });
    assert.ok(structureKept(blurred, a) < 0.95, `blur: ${structureKept(blurred, a)}`);
    assert.throws(() => structureKept(blurred, image(3, 3, () => [0, 0, 0])), /the result is/);
  });
});
