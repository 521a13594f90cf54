// PhotoWCT per stage (REFERENCE §3) on full-width random VGG19 weights and random (He) decoders:
// the style's encoding (once, all levels), then for each level of the cascade relu4_1 → relu1_1 the
// content's encoding, the WCT (covariances, square roots, colouring) and the decoding, timed inside
// the method itself (photoWct's onStage hook); then the two smoothing modes at the
// same size. Content and style are the bundled photos, so the covariances have photo statistics.
//   node --import tsx bench/photowct.ts [--backend NAME] [--sizes 512x512,1024x512] [--runs 3] [--no-smooth] [--no-torch]
// Medians of --runs after one warm-up; every stage ends with a read-back, so times include the
// device work. Random weights time exactly what trained ones would (same shapes, same ops).
// PyTorch side by side (issue 16): after ours, bench/torch/photowct_bench.py runs the same cascade
// (FastPhotoStyle's definitions, eigh-based WCT) on the same resized photos, sizes, runs and thread
// count, and a table prints every stage beside PyTorch's with the ratio and issue 16's targets
// (cascade ≤ 1.3× PyTorch; WCT ≤ 0.3 s per level at 1024×512). Entries go to results.json as 'pytorch-cpu'.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { initBackend } from '../src-main/engine/backend.ts';
import type { RgbImage } from '../src-main/engine/image.ts';
import { randomVgg19 } from '../src-main/engine/models/tiny.ts';
import { FULL_WIDTHS } from '../src-main/engine/models/vgg19.ts';
import { initDecoder, LEVELS, type DecoderWeights, type Level } from '../src-main/engine/photo/autoencoder.ts';
import { photoWct } from '../src-main/engine/photo/stylize.ts';
import { runSmoothing } from '../src-main/engine/photo/smoothing.ts';
import { mulberry32 } from '../src-main/engine/random.ts';
import { SmoothParams } from '../src-main/protocol.ts';
import { recordEntries, type BenchEntry } from './results.ts';
import { printComparison, runTorchBench, torchBenchEntries, torchMs, torchRunLine, type ComparisonRow } from './torch.ts';

const { values } = parseArgs({ options: { backend: { type: 'string' }, sizes: { type: 'string' }, runs: { type: 'string' }, 'no-smooth': { type: 'boolean' }, 'no-torch': { type: 'boolean' }, out: { type: 'string' } } });
const info = await initBackend(values.backend);
const sizes = (values.sizes ?? '512x512,1024x512').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const runs = Math.max(1, Number(values.runs ?? 3));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const peakRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);
const entries: BenchEntry[] = [];
/** Issue 16's targets: the cascade against PyTorch's, and our WCT per level at 1024×512. */
const CASCADE_VS_TORCH = 1.3;
const WCT_MS_AT_1024x512 = 300;
// The resized photos, as raw RGB8 for PyTorch's script (the same pixels ours get).
const imageDir = values['no-torch'] ? undefined : mkdtempSync(join(os.tmpdir(), 'studio-bench-torch-'));
if (imageDir) process.on('exit', () => rmSync(imageDir, { recursive: true, force: true }));

async function photo(file: string, w: number, h: number): Promise<RgbImage> {
  const b = await sharp(fileURLToPath(new URL(`../assets/samples/${file}`, import.meta.url))).resize(w, h, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  return { width: w, height: h, data: Float32Array.from(b, (v) => v / 255) };
}

function record(name: string, size: string, ms: number, note?: string): void {
  const e: BenchEntry = { name, backend: info.name, device: info.device, threads: info.threads, size, medianMs: Math.round(ms * 10) / 10, runs, peakRssMB: peakRssMB(), note };
  entries.push(e);
  console.log(`${name.padEnd(34)} ${size.padEnd(10)} ${String(e.medianMs).padStart(9)} ms  RSS ${e.peakRssMB} MB${note ? `  (${note})` : ''}`);
}

console.log(`PhotoWCT on ${info.name}: ${info.device}; ${info.threads} thread${info.threads === 1 ? '' : 's'} on ${os.cpus().length} cores; sizes ${sizes.map(([w, h]) => `${w}×${h}`).join(', ')}; full-width random VGG19 and decoders; median of ${runs} after a warm-up`);
const weights = randomVgg19(FULL_WIDTHS, 1);
const rng = mulberry32(7);
const decoders = new Map<Level, DecoderWeights>(LEVELS.map((l) => [l, initDecoder(l, FULL_WIDTHS, rng)]));

for (const [w, h] of sizes) {
  const size = `${w}×${h}`;
  const content = await photo('content-coffee.jpg', w, h);
  const style = await photo('photo-Dune.jpg', w, h);
  if (imageDir) {
    for (const [kind, img] of [['content', content], ['style', style]] as const) {
      writeFileSync(join(imageDir, `${w}x${h}-${kind}.rgb`), Uint8Array.from(img.data, (v) => Math.round(v * 255)));
    }
  }
  const times = new Map<string, number[]>();
  const add = (k: string, ms: number) => times.set(k, [...(times.get(k) ?? []), ms]);
  const methods = new Map<Level, string>();
  let stylized: RgbImage | undefined;
  for (let run = 0; run <= runs; run++) {
    // The method itself (engine/photo/stylize.ts), its stages timed through its onStage hook.
    const tAll = performance.now();
    const r = await photoWct(weights, decoders, content, style, { alpha: 1 }, {
      checkCancelled: () => {},
      onStage: (stage, level, ms) => {
        if (run > 0) add(level ? `relu${level}_1 ${stage === 'wct' ? 'WCT' : stage}` : `${stage} (all levels)`, ms);
      },
    });
    if (run > 0) add('cascade total', performance.now() - tAll);
    for (const l of r.levels) methods.set(l.level, l.squareRoots ?? '');
    stylized = r.image;
  }
  for (const [k, ms] of times) {
    const level = /relu(\d)_1 WCT/.exec(k)?.[1];
    record(`photowct ${k}`, size, median(ms), level ? `square roots: ${methods.get(Number(level) as Level)} (whitening/colouring)` : undefined);
  }

  if (!values['no-smooth'] && stylized) {
    const p = SmoothParams.parse({});
    const exact = await runSmoothing(content, stylized, 'exact', { ...p, solver: 'cpu' });
    record('photowct smoothing exact', size, exact.report.ms, `${exact.report.iterations} iterations, residual ${exact.report.residual?.toExponential(1)}, CPU multigrid PCG`);
    const fast: number[] = [];
    for (let k = 0; k < 3; k++) fast.push((await runSmoothing(content, stylized, 'fast', p)).report.ms);
    record('photowct smoothing fast (guided filter)', size, median(fast.slice(1)), `r = ${p.radius}`);
  }
}

// PyTorch's figures, measured now that ours are done (never concurrently), with our thread count.
const torchEntries: BenchEntry[] = [];
if (values['no-torch']) {
  console.log('PyTorch comparison: skipped (--no-torch)');
} else {
  const sizeArg = sizes.map(([w, h]) => `${w}x${h}`).join(',');
  const t = runTorchBench('photowct_bench.py', ['--sizes', sizeArg, '--runs', String(runs), '--images', imageDir!], info.threads);
  if (!t.ok) {
    console.log(`PyTorch comparison: not run: ${t.reason}`);
  } else {
    const r = t.report;
    console.log(`\nside by side (issue 16): ours = ${info.name}, ${info.device}; PyTorch = ${r.device}, ${t.python}`);
    console.log(`PhotoWCT cascade 4-3-2-1, full-width random VGG19 and decoders; sizes ${sizes.map(([w, h]) => `${w}×${h}`).join(', ')}; ${info.threads} threads each; inputs ${r.inputs?.join('/') ?? '?'}; median of ${runs} after a warm-up`);
    console.log(torchRunLine(t));
    const rows: ComparisonRow[] = [];
    for (const [w, h] of sizes) {
      const size = `${w}×${h}`;
      for (const e of entries.filter((x) => x.size === size && /^photowct (relu\d_1 |cascade total|encode style)/.test(x.name))) {
        const tMs = torchMs(r, e.name, size);
        const row: ComparisonRow = { name: e.name, size, ours: e.medianMs, torch: tMs, unit: 'ms' };
        if (e.name === 'photowct cascade total') Object.assign(row, { target: `≤ ${CASCADE_VS_TORCH}× PyTorch`, met: tMs ? e.medianMs / tMs <= CASCADE_VS_TORCH : undefined });
        if (e.name.endsWith(' WCT') && w === 1024 && h === 512) Object.assign(row, { target: `≤ ${WCT_MS_AT_1024x512} ms (ours)`, met: e.medianMs <= WCT_MS_AT_1024x512 });
        rows.push(row);
      }
      const cascade = entries.find((x) => x.size === size && x.name === 'photowct cascade total');
      const tCascade = r.entries.find((x) => x.size === size && x.name === 'photowct cascade total');
      if (cascade) rows.push({ name: 'peak RSS to the cascade', size, ours: cascade.peakRssMB, torch: tCascade?.peakRssMB, unit: 'MB' });
    }
    printComparison(rows);
    if (!sizes.some(([w, h]) => w === 1024 && h === 512)) console.log(`(WCT target ≤ ${WCT_MS_AT_1024x512} ms per level applies at 1024×512, not measured here)`);
    torchEntries.push(...torchBenchEntries(t));
  }
}
recordEntries([...entries, ...torchEntries], values.out);
