/**
 * `npm run bench -- vgg`: speed of the VGG19 engine on this machine's backend. A benchmark, not a test: it asserts
 * nothing, prints a table and writes bench/results.json (entries: name, backend, threads, size,
 * median ms of ≥5 runs, GFLOP/s, peak RSS), with the targets of the issues beside the figures.
 *
 *   npm run bench -- vgg                       on the best backend
 *   npm run bench -- vgg --backend cpu         force a backend
 *   npm run bench -- vgg --sizes 256           only some sizes
 *   npm run bench -- vgg --runs 5
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

const { values } = parseArgs({ options: { backend: { type: 'string' }, sizes: { type: 'string' }, runs: { type: 'string' }, out: { type: 'string' } } });
const info = await initBackend(values.backend);
const sizes = (values.sizes ?? '256,512').split(',').map(Number);
const runs = Math.max(5, Number(values.runs ?? 5));
const outPath = values.out ?? DEFAULT_RESULTS;


const entries: BenchEntry[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const peakRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);

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
  console.log(`${e.name.padEnd(34)} ${e.size.padEnd(9)} ${String(e.medianMs).padStart(9)} ms ${e.gflops !== undefined ? `${String(e.gflops).padStart(6)} GFLOP/s` : ''.padStart(14)}  RSS ${e.peakRssMB} MB${note ? `  (${note})` : ''}`);
}

console.log(`backend ${info.name}: ${info.device}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); ${runs} runs each, median`);
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
  record('vgg19 forward+backward to input', `${size}²`, fb, 2 * fwdFlops, `${(fb / fwd).toFixed(2)}× forward; target ≤ 3×`);

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
  record('gatys iteration (L-BFGS)', `${size}²`, it, iterFlops, `${(it / fb).toFixed(2)}× forward+backward; target ≤ 1.2×`);
  tf.dispose([xi, x, ...targets.content.values(), ...targets.style.values()]);
  opt.dispose();
}
net.dispose();

recordEntries(entries, outPath);
