// Full resolution (src-main/worker/fullres.ts): a photorealistic look computed at 1024 px and carried
// to a camera-size photo.
//   node --import tsx bench/fullres.ts [--sizes 6000x4000,8256x5504] [--no-quality] [--no-direct]
// Test photos: assets/samples/large-Dune.jpg upsampled (lanczos3) to each size with luminance grain
// added (so there is fine detail to keep), JPEG quality 92; made once into the OS temp folder. Each
// size runs in its own child process (peak RSS is that run's own): colour match at 1024 px, then the
// full-resolution stage (fit, decode, apply, 16-bit TIFF encode and atomic write) is timed. The
// quality part (24 MP only) prints PSNR of the full result downscaled to the working size against the
// working result, and the fine-detail correlation (DoG, σ ½ and 1 px) with the photo, beside a plain
// bicubic upscale of the working result. Direct: exact smoothing at 2048×1280 computed directly, against
// the same smoothing at 512×320 carried to 2048×1280 (PSNR).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readImage, readImageRaw } from '../src-main/io/images.ts';
import { colourMatch } from '../src-main/engine/colour/match.ts';
import { detailCorrelation, psnr } from '../src-main/engine/colour/metrics.ts';
import { smooth } from '../src-main/engine/photo/smooth.ts';
import { warmCarryThreads, writeFullResolution } from '../src-main/worker/fullres.ts';
import { defaultRegrainRadius } from '../src-main/worker/match.ts';
import { MatchParams } from '../src-main/protocol.ts';
import { mulberry32 } from '../src-main/engine/random.ts';
import type { RgbImage } from '../src-main/engine/image.ts';
import { recordEntries } from './results.ts';

const SAMPLE = fileURLToPath(new URL('../assets/samples/large-Dune.jpg', import.meta.url));
const REF = fileURLToPath(new URL('../assets/samples/photo-Storm.jpg', import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const CACHE = path.join(os.tmpdir(), 'studio-bench-fullres');

async function testPhoto(w: number, h: number): Promise<string> {
  const file = path.join(CACHE, `dune-${w}x${h}.jpg`);
  if (existsSync(file)) return file;
  await mkdir(CACHE, { recursive: true });
  const base = await sharp(SAMPLE).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
  const r = mulberry32(w);
  for (let p = 0; p < w * h; p++) {
    const grain = (r() - 0.5) * 20;
    for (let c = 0; c < 3; c++) base[3 * p + c] = Math.min(255, Math.max(0, base[3 * p + c] + grain + (r() - 0.5) * 4));
  }
  await sharp(base, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 92 }).toFile(file);
  return file;
}

async function matchAt1024(file: string) {
  const working = await readImage(file, { maxSide: 1024 });
  const ref = await readImage(REF);
  const p = MatchParams.parse({});
  const { image } = await colourMatch(working, ref, { regrain: 'fast', smoothing: { ...p.smoothing, radius: defaultRegrainRadius(working.width, working.height) } });
  return { working, image };
}

// Child: one size, one stage.
if (args[0] === '--child') {
  const [w, h] = args[1].split('x').map(Number);
  const file = await testPhoto(w, h);
  warmCarryThreads(); // as the jobs do: the pool's threads load while the look is computed
  const { working, image } = await matchAt1024(file);
  const rssBefore = process.resourceUsage().maxRSS * 1024;
  const out = path.join(CACHE, `out-${w}x${h}.tif`);
  const rep = await writeFullResolution({ photoFile: file, workingPhoto: working, workingResult: image, outputSize: 'full', out, write: { bitDepth: 16 } });
  let quality = {};
  if (args.includes('--quality')) {
    const full = await readImageRaw(out);
    const fullImg: RgbImage = { width: full.width, height: full.height, data: Float32Array.from(full.samples, (v) => v / 65535) };
    const down = await sharp(out).resize(working.width, working.height, { fit: 'fill', kernel: 'lanczos3' }).toColourspace('rgb16').raw({ depth: 'ushort' }).toBuffer();
    const downImg = { width: working.width, height: working.height, data: Float32Array.from(new Uint16Array(down.buffer, down.byteOffset, down.length / 2), (v) => v / 65535) };
    const photo = await readImage(file);
    const up = await sharp(Buffer.from(Uint8Array.from(image.data, (v) => Math.round(v * 255))), { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(w, h, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    quality = {
      psnrDb: psnr(downImg, image),
      detail: detailCorrelation(fullImg, photo),
      detailBicubic: detailCorrelation({ width: w, height: h, data: Float32Array.from(up, (v) => v / 255) }, photo),
    };
  }
  process.stdout.write(`${JSON.stringify({ ...rep, rssBeforeStage: rssBefore, quality })}\n`);
  process.exit(0);
}

console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}; load ${os.loadavg()[0].toFixed(2)}`);
const sizes = (opt('--sizes') ?? '6000x4000,8256x5504').split(',');
const targets: Record<string, { s: number; gb: number }> = { '6000x4000': { s: 4, gb: 1.5 }, '8256x5504': { s: 8, gb: 2 } };
const entries = [];
for (const size of sizes) {
  const [w, h] = size.split('x').map(Number);
  await testPhoto(w, h);
  const quality = !args.includes('--no-quality') && size === '6000x4000';
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', size, ...(quality ? ['--quality'] : [])], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) {
    console.error(child.stderr);
    process.exit(1);
  }
  const r = JSON.parse(child.stdout.trim().split('\n').pop()!);
  const t = targets[size];
  const s = r.stages;
  console.log(`\n${(w * h / 1e6).toFixed(1)} MP (${w}×${h}) JPEG → 16-bit TIFF, the look at ${r.working.width}×${r.working.height} (colour match):`);
  console.log(`  full-resolution stage ${(r.ms / 1000).toFixed(2)} s on ${r.threads} thread${r.threads > 1 ? 's' : ''}: fit ${(s.fitMs / 1000).toFixed(2)}, decode ${(s.decodeMs / 1000).toFixed(2)}, apply ${(s.applyMs / 1000).toFixed(2)}, encode + write ${(s.writeMs / 1000).toFixed(2)} s${t ? ` (target ≤ ${t.s} s ${r.ms / 1000 <= t.s ? '✓' : '✗'})` : ''}`);
  console.log(`  peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GB (${(r.rssBeforeStage / 2 ** 30).toFixed(2)} GB before the stage)${t ? ` (target ≤ ${t.gb} GB ${r.peakRssBytes / 2 ** 30 <= t.gb ? '✓' : '✗'})` : ''}`);
  if (r.quality.psnrDb) {
    console.log(`  downscaled to the working size vs the working result: ${r.quality.psnrDb.toFixed(2)} dB (target ≥ 40)`);
    console.log(`  fine-detail correlation with the photo: ${r.quality.detail.toFixed(3)} (target ≥ 0.9); a bicubic upscale of the working result: ${r.quality.detailBicubic.toFixed(3)}`);
  }
  entries.push({ name: 'full-resolution stage (16-bit TIFF)', backend: 'typed arrays (CPU) + libvips', device: os.cpus()[0]?.model ?? '', threads: r.threads, size, medianMs: r.ms, runs: 1, peakRssMB: Math.round(r.peakRssBytes / 2 ** 20) });
}

if (!args.includes('--no-direct')) {
  // Exact smoothing at 2048×1280 directly, against the same at 512×320 carried to 2048×1280.
  const base = sharp(SAMPLE).resize(2048, 1280, { fit: 'fill' }).removeAlpha();
  const c = await base.clone().raw().toBuffer();
  const y = await base.clone().blur(2).modulate({ hue: 90, saturation: 1.3 }).linear([0.9, 1.1, 0.8], [10, -5, 30]).raw().toBuffer();
  const f = (b: Buffer) => Float32Array.from(b, (v) => v / 255);
  const photo = { width: 2048, height: 1280, data: f(c) }, stylized = { width: 2048, height: 1280, data: f(y) };
  const t0 = performance.now();
  const direct = (await smooth(photo, stylized)).image;
  const directMs = performance.now() - t0;
  const small = async (b: Buffer) => f(await sharp(b, { raw: { width: 2048, height: 1280, channels: 3 } }).resize(512, 320, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer());
  const sp = { width: 512, height: 320, data: await small(c) }, sy = { width: 512, height: 320, data: await small(y) };
  const t1 = performance.now();
  const working = (await smooth(sp, sy)).image;
  const photoFile = path.join(CACHE, 'dune-2048x1280.png');
  await sharp(c, { raw: { width: 2048, height: 1280, channels: 3 } }).png().toFile(photoFile);
  const out = path.join(CACHE, 'carried-2048.png');
  await writeFullResolution({ photoFile, workingPhoto: sp, workingResult: working, outputSize: 'full', out, write: { bitDepth: 16 } });
  const carriedMs = performance.now() - t1;
  const raw = await readImageRaw(out);
  const carried = { width: 2048, height: 1280, data: Float32Array.from(raw.samples, (v) => v / 65535) };
  console.log(`\nexact smoothing at 2048×1280: direct ${(directMs / 1000).toFixed(1)} s; at 512×320 and carried ${(carriedMs / 1000).toFixed(1)} s; PSNR of carried vs direct ${psnr(carried, direct).toFixed(2)} dB`);
}
if (entries.length) recordEntries(entries);
