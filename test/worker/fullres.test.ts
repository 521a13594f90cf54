import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { readImage, readImageRaw } from '../../src-main/io/images.ts';
import type { RgbImage } from '../../src-main/engine/image.ts';
import { colourMatch } from '../../src-main/engine/colour/match.ts';
import { detailCorrelation, psnr } from '../../src-main/engine/colour/metrics.ts';
import { applyLocalAffine, applyLocalAffineToSamples, fitLocalAffine } from '../../src-main/engine/photo/affine-transfer.ts';
import { warmCarryThreads, writeFullResolution } from '../../src-main/worker/fullres.ts';
import { defaultRegrainRadius } from '../../src-main/worker/match.ts';
import { MatchParams } from '../../src-main/protocol.ts';
import { mulberry32 } from '../../src-main/engine/random.ts';

const samples = path.resolve('assets/samples');
let dir = '';
let photoFile = '';

/**
 * A larger photo with fine detail: large-Dune upsampled to `width` px with per-pixel texture added
 * (grain that is mostly luminance, as a camera's is).
 */
async function texturedPhoto(file: string, width: number, bits: 8 | 16 = 8): Promise<void> {
  const base = await sharp(path.join(samples, 'large-Dune.jpg')).resize(width).raw().toBuffer({ resolveWithObject: true });
  const r = mulberry32(5);
  const { width: w, height: h } = base.info;
  if (bits === 16) {
    const px = new Uint16Array(w * h * 3);
    for (let p = 0; p < w * h; p++) {
      const grain = (r() - 0.5) * 12;
      for (let c = 0; c < 3; c++) px[3 * p + c] = Math.min(65535, Math.max(0, (base.data[3 * p + c] + grain + (r() - 0.5) * 3) * 257));
    }
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).toColourspace('rgb16').png().toFile(file);
    return;
  }
  const px = Buffer.alloc(w * h * 3);
  for (let p = 0; p < w * h; p++) {
    const grain = (r() - 0.5) * 24;
    for (let c = 0; c < 3; c++) px[3 * p + c] = Math.min(255, Math.max(0, base.data[3 * p + c] + grain + (r() - 0.5) * 6));
  }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).withExif({ IFD0: { Artist: 'Full Res' } }).toFile(file);
}

function studio(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, STUDIO_MODELS_DIR: path.join(dir, 'models'), ...env } },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}

const toImage = (raw: { width: number; height: number; bitDepth: 8 | 16; samples: Uint8Array | Uint16Array }): RgbImage =>
  ({ width: raw.width, height: raw.height, data: Float32Array.from(raw.samples, (v) => v / (raw.bitDepth === 16 ? 65535 : 255)) });

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-fullres-'));
  photoFile = path.join(dir, 'textured.jpg');
  await texturedPhoto(photoFile, 2400);
});
after(() => rm(dir, { recursive: true, force: true }));

test('the local affine fit recovers an affine colour map exactly and applies it at another size', async () => {
  const small = await readImage(photoFile, { maxSide: 300 });
  const A = [[0.8, 0.1, 0], [0.05, 0.7, 0.1], [0, 0.2, 0.6]], b = [0.05, 0.1, 0.2];
  const map = (x: Float32Array) => Float32Array.from(x, (_, i) => {
    const p = i - (i % 3), c = i % 3;
    return A[c][0] * x[p] + A[c][1] * x[p + 1] + A[c][2] * x[p + 2] + b[c];
  });
  const fit = fitLocalAffine(small.data, map(small.data), small.width, small.height, 3, 3, { radius: 1, eps: 1e-8 });
  const raw = await readImageRaw(photoFile, { maxSide: 900 });
  const out = new Uint16Array(raw.samples.length);
  applyLocalAffineToSamples(fit, raw.samples, 8, raw.width, raw.height, out, 16);
  const want = map(Float32Array.from(raw.samples, (v) => v / 255));
  let worst = 0, mean = 0;
  for (let i = 0; i < out.length; i++) {
    const e = Math.abs(out[i] / 65535 - want[i]);
    worst = Math.max(worst, e);
    mean += e / out.length;
  }
  // Exact up to the windows where the small photo is flat (the slopes there are not determined).
  assert.ok(mean < 5e-4 && worst < 0.01, `mean error ${mean}, worst ${worst}`);
  // Band by band gives exactly the whole.
  const banded = new Uint16Array(raw.samples.length);
  for (let y = 0; y < raw.height; y += 97) applyLocalAffineToSamples(fit, raw.samples, 8, raw.width, raw.height, banded, 16, y, Math.min(raw.height, y + 97));
  assert.deepEqual(banded, out);
  // The float path agrees with the integer path.
  const f = applyLocalAffine(fit, Float32Array.from(raw.samples, (v) => v / 255), raw.width, raw.height);
  let d = 0;
  for (let i = 0; i < f.length; i++) d = Math.max(d, Math.abs(Math.min(1, Math.max(0, f[i])) - out[i] / 65535));
  assert.ok(d < 1e-4, `float vs integer ${d}`);
});

test('full resolution: the look at the working size, the photo\'s own detail (PSNR ≥ 40 dB, detail ≥ 0.9)', async () => {
  const working = await readImage(photoFile, { maxSide: 600 });
  const ref = await readImage(path.join(samples, 'photo-Storm.jpg'));
  const p = MatchParams.parse({});
  const { image: result } = await colourMatch(working, ref, { regrain: 'fast', smoothing: { ...p.smoothing, radius: defaultRegrainRadius(working.width, working.height) } });
  const out = path.join(dir, 'full.tif');
  warmCarryThreads();
  const rep = await writeFullResolution({ photoFile, workingPhoto: working, workingResult: result, outputSize: 'full', out, write: { bitDepth: 16 } });
  assert.deepEqual([rep.output.width, rep.output.height, rep.output.bitDepth], [2400, 1500, 16]);
  // The bands applied on the pool's threads give the single thread's samples exactly.
  const previous = process.env.STUDIO_SMOOTH_THREADS;
  process.env.STUDIO_SMOOTH_THREADS = '1';
  const single = path.join(dir, 'full-1.tif');
  try {
    assert.equal((await writeFullResolution({ photoFile, workingPhoto: working, workingResult: result, outputSize: 'full', out: single, write: { bitDepth: 16 } })).threads, 1);
  } finally {
    if (previous === undefined) delete process.env.STUDIO_SMOOTH_THREADS;
    else process.env.STUDIO_SMOOTH_THREADS = previous;
  }
  if (os.cpus().length > 1) assert.ok(rep.threads > 1, `the carry ran on ${rep.threads} thread(s)`);
  const [threaded, one] = [(await readImageRaw(out)).samples, (await readImageRaw(single)).samples];
  let differ = 0;
  for (let i = 0; i < threaded.length; i++) if (threaded[i] !== one[i]) differ++;
  assert.equal(differ, 0, 'threaded = single-threaded, sample for sample');
  assert.deepEqual(rep.working, { width: 600, height: 375 });
  const full = toImage(await readImageRaw(out));
  // Low frequencies are the look: the full result downscaled as the photo was matches the working result.
  const down = await sharp(out).resize(working.width, working.height, { fit: 'fill', kernel: 'lanczos3' }).toColourspace('rgb16').raw({ depth: 'ushort' }).toBuffer();
  const downImg = { width: working.width, height: working.height, data: Float32Array.from(new Uint16Array(down.buffer, down.byteOffset, down.length / 2), (v) => v / 65535) };
  const db = psnr(downImg, result);
  assert.ok(db >= 40, `downscaled full result vs working result: ${db.toFixed(2)} dB`);
  // High frequencies are the photo's; a plain bicubic upscale of the working result has none of them.
  const photo = await readImage(photoFile);
  const detail = detailCorrelation(full, photo);
  const up = await sharp(Buffer.from(Uint8Array.from(result.data, (v) => Math.round(v * 255))), { raw: { width: result.width, height: result.height, channels: 3 } })
    .resize(2400, 1500, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
  const bicubic = detailCorrelation({ width: 2400, height: 1500, data: Float32Array.from(up, (v) => v / 255) }, photo);
  assert.ok(detail >= 0.9, `detail correlation ${detail.toFixed(3)}`);
  assert.ok(bicubic < 0.5, `bicubic upscale's detail correlation ${bicubic.toFixed(3)}`);
  process.stderr.write(`# full resolution 2400×1500 from 600×375: ${db.toFixed(2)} dB, detail ${detail.toFixed(3)} (bicubic ${bicubic.toFixed(3)}), ${rep.ms.toFixed(0)} ms\n`);
});

test('16-bit photos stay 16-bit end to end', async () => {
  const f16 = path.join(dir, 'sixteen.png');
  await texturedPhoto(f16, 1200, 16);
  const working = await readImage(f16, { maxSide: 300 });
  const ref = await readImage(path.join(samples, 'photo-GreenMeadow.jpg'));
  const p = MatchParams.parse({});
  const { image } = await colourMatch(working, ref, { regrain: 'fast', smoothing: { ...p.smoothing, radius: 20 } });
  const out = path.join(dir, 'sixteen-out.png');
  const rep = await writeFullResolution({ photoFile: f16, workingPhoto: working, workingResult: image, outputSize: 'full', out, write: {} });
  assert.equal(rep.output.bitDepth, 16, 'a 16-bit photo gives a 16-bit result by default');
  const raw = await readImageRaw(out);
  assert.equal(raw.bitDepth, 16);
  // Not 8-bit values in a 16-bit file: most samples are not multiples of 257.
  let off = 0;
  for (let i = 0; i < 30000; i++) if (raw.samples[i] % 257 !== 0) off++;
  assert.ok(off > 25000, `${off} of 30000 samples use the 16 bits`);
});

test('CLI: --output-size full (default), working and PX; EXIF kept; the report names both sizes', async () => {
  const ref = path.join(samples, 'photo-Storm.jpg');
  const out = path.join(dir, 'cli-full.jpg'), report = path.join(dir, 'cli.json');
  const r = await studio(['stylize', '--method', 'match', '--content', photoFile, '--style', ref, '--out', out, '--size', '512', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*cli-full\.jpg \(2400×1500,/);
  assert.match(r.stdout, /full resolution: the look at 512×320 carried to 2400×1500 \(8-bit\)/);
  const m = await sharp(out).metadata();
  assert.deepEqual([m.width, m.height], [2400, 1500]);
  assert.ok(m.exif?.includes(Buffer.from('Full Res')), 'EXIF kept');
  const { readFile } = await import('node:fs/promises');
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.deepEqual([rep.working.width, rep.output.width], [512, 2400]);
  assert.ok(rep.fullResolution.ms > 0 && rep.fullResolution.peakRssBytes > 0);
  const w = await studio(['stylize', '--method', 'match', '--content', photoFile, '--style', ref, '--out', path.join(dir, 'cli-w.png'), '--size', '256', '--output-size', 'working', '--quiet']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal((await sharp(path.join(dir, 'cli-w.png')).metadata()).width, 256);
  const px = await studio(['stylize', '--method', 'match', '--content', photoFile, '--style', ref, '--out', path.join(dir, 'cli-px.png'), '--size', '256', '--output-size', '1000', '--quiet']);
  assert.equal(px.code, 0, px.stderr);
  assert.equal((await sharp(path.join(dir, 'cli-px.png')).metadata()).width, 1000);
  const g = await studio(['stylize', '--method', 'gatys', '--content', photoFile, '--style', ref, '--out', path.join(dir, 'g.png'), '--output-size', 'full']);
  assert.equal(g.code, 2);
  assert.match(g.stderr, /--output-size is for the photorealistic methods/);
});

test('sizes the studio cannot handle: clear errors, exit 2, nothing written', async () => {
  const strip = path.join(dir, 'strip.png');
  await sharp({ create: { width: 20000, height: 2, channels: 3, background: '#806040' } }).png().toFile(strip);
  const ref = path.join(samples, 'photo-Storm.jpg');
  for (const [args, re] of [
    [['stylize', '--method', 'gatys', '--content', strip, '--style', ref], /20000×2: at the working size it would be 512×1 px, too thin for the artistic method/],
    [['stylize', '--method', 'photo', '--content', strip, '--style', ref], /too thin for PhotoWCT/],
    [['smooth', '--content', strip, '--stylized', strip], /too thin for the smoothing step/],
  ] as const) {
    const out = path.join(dir, `never-${args[0]}.png`);
    const r = await studio([...args, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(await stat(out).then(() => true, () => false), false);
  }
  // Colour match handles the strip at any size.
  const ok = await studio(['stylize', '--method', 'match', '--content', strip, '--style', ref, '--out', path.join(dir, 'strip-out.png'), '--quiet']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await sharp(path.join(dir, 'strip-out.png')).metadata()).width, 20000);
  // Too many pixels for --max-pixels; more memory than the machine can give (named, with the size that fits).
  const many = await studio(['stylize', '--method', 'match', '--content', photoFile, '--style', ref, '--out', path.join(dir, 'm.png'), '--max-pixels', '1e6']);
  assert.equal(many.code, 2);
  assert.match(many.stderr, /over the limit of 1\.0 megapixels/);
  const mem = await studio(['stylize', '--method', 'match', '--content', photoFile, '--style', ref, '--out', path.join(dir, 'mem.png')], { STUDIO_MEMORY_LIMIT: String(80 * 2 ** 20) });
  assert.equal(mem.code, 2);
  assert.match(mem.stderr, /a 2400×1500 result needs about .* GB of memory/);
  assert.match(mem.stderr, /use --output-size \d+ \(the largest that fits\)/);
  assert.equal(await stat(path.join(dir, 'mem.png')).then(() => true, () => false), false);
  // The working size's compute is estimated too: the artistic method at 512 px with 1 GB to spare.
  const art = await studio(['stylize', '--method', 'gatys', '--content', path.join(samples, 'content-coffee.jpg'), '--style', ref, '--out', path.join(dir, 'art.png')],
    { STUDIO_MEMORY_LIMIT: String(2 ** 30) });
  assert.equal(art.code, 2);
  assert.match(art.stderr, /at 512×341 px needs about 1\.3 GB of memory for the artistic method, more than the 1\.0 GB/);
  assert.match(art.stderr, /use --size 4\d\d or less \(the largest that fits/);
});
