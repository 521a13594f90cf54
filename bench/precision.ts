/**
 * Mixed-precision decoder training (issue 4), the paper's experiment on our own decoders:
 *   - the share of weight-gradient values that underflow to zero in fp16: measured on fp32 training (what an
 *     fp16 cast would flush), and in mixed-fp16 without loss scaling, with a static and a dynamic scale;
 *   - the final validation loss of fp32, mixed-fp16 and mixed-bf16 after the same steps (same seed, data order);
 *   - step time of each policy on the current backend (the fp16/bf16 casts are emulated: they cost time),
 *     on the tiny network and on the full-width one (random weights) at level 2;
 *   - decoder file sizes, fp32 against fp16, for the tiny and the full-width VGG19.
 *
 *   node --import tsx bench/precision.ts [--backend wasm] [--steps 150] [--level 2] [--crop 32] [--batch 4] [--full-steps 6]
 *   npm run bench -- precision [--backend wasm --steps 150]   (bench/all.ts runs it with every section)
 * Step times go into bench/results.json (one entry per policy); the whole experiment is printed as JSON.
 */
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initBackend, type BackendInfo } from '../src-main/engine/backend.ts';
import { randomVgg19, writeTinyFixtures } from '../src-main/engine/models/tiny.ts';
import { saveVgg19 } from '../src-main/engine/models/store.ts';
import { saveDecoder } from '../src-main/engine/models/decoders.ts';
import { initDecoder, LEVELS } from '../src-main/engine/photo/autoencoder.ts';
import { FULL_WIDTHS } from '../src-main/engine/models/vgg19.ts';
import { mulberry32 } from '../src-main/engine/random.ts';
import { runTrainDecoder, type TrainResult } from '../src-main/worker/train.ts';
import { TrainDecoderJob } from '../src-main/protocol.ts';
import type { ReportStep } from '../src-main/engine/train/report.ts';
import { recordEntries, type BenchEntry } from './results.ts';

export interface PrecisionRow {
  name: string;
  precision: string;
  lossScale: string;
  finalValLoss: number;
  /** Means over the run's steps. */
  zeroPct: number;
  underflowPct: number;
  skipped: number;
  finalScale: number;
  medianStepMs: number;
}

export interface PrecisionBench {
  backend: string;
  device: string;
  setting: string;
  rows: PrecisionRow[];
  fileSizes: { network: string; level: number; fp32Bytes: number; fp16Bytes: number }[];
  /** Step time of each policy on the full-width network (random VGG19 weights: same shapes, same ops). */
  fullWidth?: { setting: string; medianStepMs: Record<string, number> };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function precisionBench(info: BackendInfo, o: { steps?: number; level?: 1 | 2 | 3 | 4; crop?: number; batch?: number; fullSteps?: number; log?: (s: string) => void } = {}): Promise<PrecisionBench> {
  const steps = o.steps ?? 150;
  const level = o.level ?? 2;
  const crop = o.crop ?? 32;
  const batch = o.batch ?? 4;
  const log = o.log ?? ((s: string) => console.log(s));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'studio-bench-precision-'));
  try {
    const model = (await writeTinyFixtures(dir)).modelDir;
    const photos = path.join(dir, 'photos');
    const samples = fileURLToPath(new URL('../assets/samples', import.meta.url));
    await cp(samples, photos, { recursive: true, filter: (f) => !/large-|CREDITS/.test(f) });
    const setting = `tiny VGG19 (8/16/32/64/64), level ${level}, ${steps} Adam steps, lr 1e-3, batch ${batch} of ${crop}² crops, 1 of 10 sample photos held out`;
    log(`precision: ${setting}, on ${info.name} (${info.device})`);
    const runs: [string, Partial<TrainDecoderJob>][] = [
      ['fp32', { precision: 'fp32' }],
      ['mixed-fp16, no loss scaling', { precision: 'mixed-fp16', lossScale: 1 }],
      ['mixed-fp16, static scale 1024', { precision: 'mixed-fp16', lossScale: 1024 }],
      ['mixed-fp16, dynamic scaling', { precision: 'mixed-fp16' }],
      ['mixed-bf16, dynamic scaling', { precision: 'mixed-bf16' }],
    ];
    const rows: PrecisionRow[] = [];
    for (const [name, opts] of runs) {
      const job = TrainDecoderJob.parse({
        kind: 'train-decoder', level, images: photos, model, crop, batch, lr: 1e-3, steps, valEvery: steps, out: path.join(dir, name.replace(/[^a-z0-9]+/gi, '-')), ...opts,
      });
      const r: TrainResult = await runTrainDecoder(job, { emit: () => {}, checkCancelled: () => {} });
      const h = (JSON.parse(await readFile(r.report, 'utf8')) as { history: ReportStep[] }).history;
      const mean = (f: (x: ReportStep) => number) => h.reduce((s, x) => s + f(x), 0) / h.length;
      const row: PrecisionRow = {
        name, precision: job.precision, lossScale: String(job.lossScale), finalValLoss: r.finalValLoss,
        zeroPct: 100 * mean((x) => x.zeroFraction), underflowPct: 100 * mean((x) => x.underflowFraction),
        skipped: r.skippedSteps, finalScale: r.finalLossScale, medianStepMs: median(h.slice(2).map((x) => x.ms)),
      };
      rows.push(row);
      log(`  ${name.padEnd(30)} val ${row.finalValLoss.toExponential(4)}  zero ${row.zeroPct.toFixed(3)}%  underflow ${row.underflowPct.toFixed(4)}%  skipped ${row.skipped}  scale ${row.finalScale}  ${row.medianStepMs.toFixed(0)} ms/step`);
    }
    const fileSizes: PrecisionBench['fileSizes'] = [];
    for (const [network, widths] of [['tiny', [8, 16, 32, 64, 64]], ['VGG19', [...FULL_WIDTHS]]] as const) {
      for (const l of LEVELS) {
        const w = initDecoder(l, widths, mulberry32(l));
        const meta = { level: l, encoderSha256: '0'.repeat(64), widths: [...widths] };
        const f32 = await saveDecoder(path.join(dir, `${network}-f32`), w, meta, 'F32');
        const f16 = await saveDecoder(path.join(dir, `${network}-f16`), w, meta, 'F16');
        fileSizes.push({ network, level: l, fp32Bytes: (await stat(f32)).size, fp16Bytes: (await stat(f16)).size });
      }
    }
    for (const s of fileSizes) log(`  decoder file ${s.network} level ${s.level}: fp32 ${s.fp32Bytes} B, fp16 ${s.fp16Bytes} B (${(s.fp16Bytes / s.fp32Bytes).toFixed(3)}×)`);
    let fullWidth: PrecisionBench['fullWidth'];
    const fullSteps = o.fullSteps ?? 6;
    if (fullSteps > 2) {
      const full = path.join(dir, 'vgg19-random');
      await saveVgg19(full, randomVgg19(FULL_WIDTHS, 1));
      const fullSetting = `full-width VGG19 (random weights), level 2, batch 2 of 64² crops, median of steps 3–${fullSteps}`;
      const medianStepMs: Record<string, number> = {};
      for (const p of ['fp32', 'mixed-fp16', 'mixed-bf16'] as const) {
        const job = TrainDecoderJob.parse({ kind: 'train-decoder', level: 2, images: photos, model: full, crop: 64, batch: 2, steps: fullSteps, valFraction: 0, precision: p, out: path.join(dir, `full-${p}`) });
        const r = await runTrainDecoder(job, { emit: () => {}, checkCancelled: () => {} });
        medianStepMs[p] = median((JSON.parse(await readFile(r.report, 'utf8')) as { history: ReportStep[] }).history.slice(2).map((x) => x.ms));
      }
      fullWidth = { setting: fullSetting, medianStepMs };
      log(`  ${fullSetting}: ${Object.entries(medianStepMs).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);
    }
    return { backend: info.name, device: info.device, setting, rows, fileSizes, fullWidth };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseArgs({ options: { backend: { type: 'string' }, steps: { type: 'string' }, level: { type: 'string' }, crop: { type: 'string' }, batch: { type: 'string' }, 'full-steps': { type: 'string' } } });
  const info = await initBackend(values.backend);
  const r = await precisionBench(info, {
    steps: values.steps ? Number(values.steps) : undefined, level: values.level ? (Number(values.level) as 1 | 2 | 3 | 4) : undefined,
    crop: values.crop ? Number(values.crop) : undefined, batch: values.batch ? Number(values.batch) : undefined,
    fullSteps: values['full-steps'] ? Number(values['full-steps']) : undefined,
  });
  const size = `tiny L${values.level ?? 2} ${values.batch ?? 4}×${values.crop ?? 32}²`;
  recordEntries(r.rows.map((row): BenchEntry => ({
    name: `decoder train step, ${row.name}`, backend: info.name, device: info.device, threads: info.threads, size,
    medianMs: Math.round(row.medianStepMs * 10) / 10, runs: Number(values.steps ?? 150) - 2,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    note: `val loss ${row.finalValLoss.toExponential(3)}, zero grads ${row.zeroPct.toFixed(2)}%, underflow ${row.underflowPct.toFixed(3)}%, ${row.skipped} skipped; median over the run's steps`,
  })));
  if (r.fullWidth) {
    recordEntries(Object.entries(r.fullWidth.medianStepMs).map(([p, ms]): BenchEntry => ({
      name: `decoder train step, ${p}`, backend: info.name, device: info.device, threads: info.threads, size: 'VGG19 L2 2×64²',
      medianMs: Math.round(ms * 10) / 10, runs: Number(values['full-steps'] ?? 6) - 2, peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      note: 'random full-width weights',
    })));
  }
  console.log(JSON.stringify(r, null, 2));
}
