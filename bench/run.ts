/**
 * `npm run bench -- vgg`: speed of the VGG19 engine on this machine's backend. A benchmark, not a test: it asserts
 * nothing, prints a table and writes bench/results.json (entries: name, backend, threads, size,
 * median ms of ≥5 runs, GFLOP/s, peak RSS), with the targets of the issues beside the figures.
 *
 *   npm run bench -- vgg                       on the best backend
 *   npm run bench -- vgg --backend cpu         force a backend
 *   npm run bench -- vgg --sizes 256           only some sizes
 *   npm run bench -- vgg --runs 5
 *   npm run bench -- vgg --no-torch            without the PyTorch comparison
 *
 * PyTorch side by side (issue 16): after our measures, bench/torch/vgg_bench.py does the same work
 * (same sizes, runs and warm-ups, our thread count) under Debian's python3-torch (bench/torch.ts
 * finds it; STUDIO_TORCH_PYTHON overrides), and a table prints each figure beside PyTorch's with the
 * ratio ours/PyTorch and issue 16's targets. Its entries go to bench/results.json as 'pytorch-cpu'.
 */
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../src-main/engine/backend.ts';
import { Vgg19 } from '../src-main/engine/models/vgg19-net.ts';
import { randomVgg19 } from '../src-main/engine/models/tiny.ts';
import { FULL_WIDTHS } from '../src-main/engine/models/vgg19.ts';
import { gatysObjective, gatysTargets } from '../src-main/engine/gatys/stylize.ts';
import { Lbfgs } from '../src-main/engine/gatys/optimizers.ts';
import { GatysParams } from '../src-main/protocol.ts';
import { DEFAULT_RESULTS, recordEntries, type BenchEntry } from './results.ts';
import { printComparison, runTorchBench, torchBenchEntries, torchMs, torchRunLine, type ComparisonRow } from './torch.ts';

const { values } = parseArgs({ options: { backend: { type: 'string' }, sizes: { type: 'string' }, runs: { type: 'string' }, out: { type: 'string' }, 'no-torch': { type: 'boolean' } } });
const info = await initBackend(values.backend);
const sizes = (values.sizes ?? '256,512').split(',').map(Number);
const runs = Math.max(5, Number(values.runs ?? 5));
const outPath = values.out ?? DEFAULT_RESULTS;

const entries: BenchEntry[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const peakRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);
/** Issue 16's targets: a Gatys iteration against PyTorch's, per size; forward+backward against forward; peak RSS at 512². */
const GATYS_VS_TORCH: Record<number, number> = { 256: 2, 512: 1.5 };
const FB_VS_FORWARD = 2.5;
const RSS_512_MB = 2048;
const flopsOf = new Map<string, number>();

/** Times fn (which must finish its device work before returning) after one warm-up call. */
async function time(fn: () => Promise<void>): Promise<number> {
  await fn(); // first calls run ~2× slower (allocation, weight packing): two warm-ups
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

function record(name: string, size: string, medianMs: number, flops?: number, note?: string): void {
  const e: BenchEntry = {
    name, backend: info.name, device: info.device, threads: info.threads, size, medianMs: Math.round(medianMs * 10) / 10, runs,
    gflops: flops ? Math.round((flops / 1e9 / (medianMs / 1e3)) * 10) / 10 : undefined, peakRssMB: peakRssMB(), note,
  };
  entries.push(e);
  if (flops) flopsOf.set(`${name}@${size}`, flops);
  console.log(`${e.name.padEnd(34)} ${e.size.padEnd(9)} ${String(e.medianMs).padStart(9)} ms ${e.gflops !== undefined ? `${String(e.gflops).padStart(6)} GFLOP/s` : ''.padStart(14)}  RSS ${e.peakRssMB} MB${note ? `  (${note})` : ''}`);
}

console.log(`backend ${info.name}: ${info.device}; ${info.threads} thread${info.threads === 1 ? '' : 's'} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); sizes ${sizes.map((s) => `${s}²`).join(', ')}; full-width VGG19, random weights; ${runs} runs each after 2 warm-ups, median`);
const net = new Vgg19(randomVgg19(FULL_WIDTHS, 1));
const p = GatysParams.parse({});
const gatysLayers = [...new Set([...p.contentLayers, ...p.styleLayers])];

for (const size of sizes) {
  const x = tf.randomUniform([1, size, size, 3], 0, 255, 'float32', 1) as tf.Tensor4D;
  const fwdFlops = net.forwardFlops(size, size, 'relu5_1');

  const fwd = await time(async () => {
    const f = net.features(x, ['relu5_1'], { fused: true });
    await f.get('relu5_1')!.data();
    tf.dispose([...f.values()]);
  });
  record('vgg19 forward to relu5_1', `${size}²`, fwd, fwdFlops);

  const fb = await time(async () => {
    const g = tf.grad((xi: tf.Tensor) => tf.sum(net.features(xi as tf.Tensor4D, ['relu5_1']).get('relu5_1')!))(x);
    await g.data();
    g.dispose();
  });
  record('vgg19 forward+backward to input', `${size}²`, fb, 2 * fwdFlops, `${(fb / fwd).toFixed(2)}× forward; target ≤ ${FB_VS_FORWARD}× (issue 16; issue 2: ≤ 3×)`);

  // One Gatys iteration: the losses on the default layers, gradient, and an L-BFGS step with history.
  const targets = gatysTargets(net, x, [x], [1], p);
  const objective = gatysObjective(net, targets, { content: 5, style: 100, tv: 1e-3, contentLayers: new Map(), styleLayers: new Map() });
  const opt = new Lbfgs({ history: 100 });
  let xi = x.clone();
  const iterFlops = 2 * net.forwardFlops(size, size, gatysLayers.includes('relu5_1') ? 'relu5_1' : 'relu4_2');
  const it = await time(async () => {
    const { value, grad } = tf.valueAndGrad((v: tf.Tensor) => objective(v as tf.Tensor4D).total)(xi);
    const step = opt.step(xi, grad);
    const scalars = tf.stack([value, step.gtd!]);
    await scalars.data();
    tf.dispose([scalars, value, grad, step.gtd!, xi]);
    xi = step.next as tf.Tensor4D;
  });
  const rssNote = size === 512 ? `; peak RSS target ≤ ${RSS_512_MB} MB: ${peakRssMB() <= RSS_512_MB ? 'met' : 'missed'}` : '';
  record('gatys iteration (L-BFGS)', `${size}²`, it, iterFlops, `${(it / fb).toFixed(2)}× forward+backward; target ≤ 1.2×${rssNote}`);
  tf.dispose([xi, x, ...targets.content.values(), ...targets.style.values()]);
  opt.dispose();
}
net.dispose();

// PyTorch's figures, measured now that ours are done (never concurrently), with our thread count.
const torchEntries: BenchEntry[] = [];
if (values['no-torch']) {
  console.log('PyTorch comparison: skipped (--no-torch)');
} else {
  const t = runTorchBench('vgg_bench.py', ['--sizes', sizes.join(','), '--runs', String(runs)], info.threads);
  if (!t.ok) {
    console.log(`PyTorch comparison: not run: ${t.reason}`);
  } else {
    const r = t.report;
    console.log(`\nside by side (issue 16): ours = ${info.name}, ${info.device}; PyTorch = ${r.device}, ${t.python}`);
    console.log(`full-width VGG19, random weights; sizes ${sizes.map((s) => `${s}²`).join(', ')}; ${info.threads} threads each; median of ${runs} after 2 warm-ups`);
    console.log(torchRunLine(t));
    const ours = (name: string, size: string) => entries.find((e) => e.name === name && e.size === size);
    const rows: ComparisonRow[] = [];
    for (const size of sizes) {
      const sz = `${size}²`;
      const fwd = ours('vgg19 forward to relu5_1', sz)!;
      const fb = ours('vgg19 forward+backward to input', sz)!;
      const it = ours('gatys iteration (L-BFGS)', sz)!;
      const tFwd = torchMs(r, fwd.name, sz);
      const tFb = torchMs(r, fb.name, sz);
      const tIt = torchMs(r, it.name, sz);
      rows.push({ name: fwd.name, size: sz, ours: fwd.medianMs, torch: tFwd, unit: 'ms' });
      rows.push({
        name: fb.name, size: sz, ours: fb.medianMs, torch: tFb, unit: 'ms',
        target: `ours ${(fb.medianMs / fwd.medianMs).toFixed(2)}× forward${tFb && tFwd ? ` (PyTorch ${(tFb / tFwd).toFixed(2)}×)` : ''}, ≤ ${FB_VS_FORWARD}×`,
        met: fb.medianMs / fwd.medianMs <= FB_VS_FORWARD,
      });
      const bound = GATYS_VS_TORCH[size];
      rows.push({
        name: it.name, size: sz, ours: it.medianMs, torch: tIt, unit: 'ms',
        ...(bound ? { target: `≤ ${bound}× PyTorch`, met: tIt ? it.medianMs / tIt <= bound : undefined } : {}),
      });
    }
    const big = ours('gatys iteration (L-BFGS)', '512²');
    const tBig = r.entries.find((e) => e.name === 'gatys iteration (L-BFGS)' && e.size === '512²');
    if (big) {
      rows.push({ name: 'peak RSS to a 512² Gatys iteration', size: '512²', ours: big.peakRssMB, torch: tBig?.peakRssMB, unit: 'MB', target: `≤ ${RSS_512_MB} MB (ours)`, met: big.peakRssMB <= RSS_512_MB });
    }
    printComparison(rows);
    if (!big) console.log(`(peak RSS of a 512² Gatys run: not measured, --sizes has no 512; ours so far ${peakRssMB()} MB, PyTorch's ${r.peakRssMB} MB)`);
    else console.log('(peak RSS: each process\'s maximum resident set, taken right after its 512² Gatys iterations; both ran the forward and forward+backward measures (and any smaller size) first)');
    torchEntries.push(...torchBenchEntries(t, (name, size) => flopsOf.get(`${name}@${size}`)));
  }
}

recordEntries([...entries, ...torchEntries], outPath);
