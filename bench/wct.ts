// WCT maths: the eigen-solver, the matrix square roots and the whole transform at relu4_1 size.
//   node --import tsx bench/wct.ts [--reps N] [--full]
// Eigen-solver: Householder + QL (what symmetricEigen uses) against cyclic Jacobi, at n = 64, 256, 512
// (Jacobi at 512 takes ~10 s: only with --full). Square roots at n = 512 on WebAssembly, Newton–Schulz
// against the eigen path, for a well-conditioned covariance, a VGG-like one (decaying spectrum, plus
// the WCT regulariser) and a rank-deficient one (auto = a failed Newton–Schulz, then eigen). WCT on
// 64×64×512 features (relu4_1 of a 512-px image) on WebAssembly. Median of N runs (default 3).
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src-main/engine/backend.ts';
import { symmetricEigen, jacobiEigen } from '../src-main/engine/photo/eigen.ts';
import { sqrtAndInvSqrt, type SqrtOptions } from '../src-main/engine/photo/matrix-sqrt.ts';
import { wct, gramT, type WctOptions } from '../src-main/engine/photo/wct.ts';

const args = process.argv.slice(2);
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Number(args[repsArg + 1]) : 3;
const FULL = args.includes('--full');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
async function time(fn: () => unknown | Promise<unknown>, reps = REPS): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}
const row = (what: string, n: string | number, ms: number, note = '') => {
  console.log(`${what.padEnd(72)} ${String(n).padStart(12)} ${ms.toFixed(0).padStart(8)} ms  ${note}`);
};

function randomSpd(n: number, seed: number): Float64Array {
  let s = seed;
  const r = () => { s = (s * 16807) % 2147483647; return s / 2147483647 - 0.5; };
  const b = new Float64Array(n * n).map(r);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) {
    let t = 0;
    for (let k = 0; k < n; k++) t += b[i * n + k] * b[j * n + k];
    a[i * n + j] = a[j * n + i] = t;
  }
  return a;
}

/** VGG-like features [1,h,w,c]: relu(Z·B + b)·scale with a decaying spectrum (B's row k scaled by 0.99^k). */
function vggLike(h: number, w: number, c: number, seed: number, scale: number): tf.Tensor4D {
  return tf.tidy(() => {
    const z = tf.randomNormal([h * w, c], 0, 1, 'float32', seed);
    const decay = tf.reshape(tf.pow(0.99, tf.range(0, c)), [c, 1]);
    const b = tf.mul(tf.randomNormal([c, c], 0, 1, 'float32', seed + 1), decay);
    const bias = tf.randomUniform([1, c], -0.5, 0.5, 'float32', seed + 2);
    return tf.reshape(tf.mul(tf.relu(tf.add(tf.matMul(z, b), bias)), scale), [1, h, w, c]) as tf.Tensor4D;
  });
}

console.log(`${'what'.padEnd(72)} ${'size'.padStart(12)} ${'median'.padStart(11)}`);

// 1. Eigen-solver (plain JS, float64).
for (const n of [64, 256, 512]) {
  const a = randomSpd(n, n);
  symmetricEigen(a, n); // warm-up (JIT)
  row('eigen: Householder + QL (symmetricEigen)', n, await time(() => symmetricEigen(a, n)));
  if (n < 512 || FULL) row('eigen: cyclic Jacobi', n, await time(() => jacobiEigen(a, n), n === 512 ? 1 : REPS));
}

// 2. Square roots at 512 on WebAssembly.
const info = await initBackend('wasm');
console.log(`# backend: ${info.device}`);
const n = 512;
const covOf = (x: tf.Tensor4D, lambda: number) => tf.tidy(() => {
  const m = tf.reshape(x, [-1, n]) as tf.Tensor2D;
  const mc = tf.sub(m, tf.mean(m, 0, true)) as tf.Tensor2D;
  return tf.add(tf.div(gramT(mc), m.shape[0] - 1), tf.mul(tf.eye(n), lambda)) as tf.Tensor2D;
});
const gauss = tf.randomNormal([1, 64, 64, n], 0, 1, 'float32', 1) as tf.Tensor4D;
const vgg = vggLike(64, 64, n, 2, 300);
const few = tf.randomNormal([1, 15, 20, n], 0, 1, 'float32', 3) as tf.Tensor4D;
const meanVar = async (x: tf.Tensor4D) => {
  const v = tf.tidy(() => tf.mean(tf.moments(tf.reshape(x, [-1, n]), 0).variance));
  const r = (await v.data())[0];
  v.dispose();
  return r;
};
const cases: [string, tf.Tensor2D][] = [
  ['well-conditioned (Gaussian, 4096 px)', covOf(gauss, 0)],
  ['VGG-like + λI (λ = 1e-4·mean eigenvalue)', covOf(vgg, 1e-4 * (await meanVar(vgg)))],
  ['rank-deficient (300 px < 512 channels)', covOf(few, 0)],
];
for (const [name, a] of cases) {
  for (const method of ['newton-schulz', 'eigen', 'auto'] as const) {
    if (method === 'newton-schulz' && name.startsWith('rank')) continue;
    let note = '';
    const run = async (o: SqrtOptions) => {
      const r = await sqrtAndInvSqrt(a, o);
      await r.invSqrt.data();
      note = `${r.method}${r.iterations ? `, ${r.iterations} steps` : ''}${r.dropped ? `, ${r.dropped} dropped` : ''}`;
      tf.dispose([r.sqrt, r.invSqrt]);
    };
    await run({ method }); // warm-up
    row(`sqrt+invSqrt ${method}: ${name}`, '512×512', await time(() => run({ method })), note);
  }
}
tf.dispose(cases.map((c) => c[1]));

// 3. WCT at relu4_1 size on WebAssembly.
const fc = vggLike(64, 64, n, 10, 300);
const fs = vggLike(64, 64, n, 20, 300);
for (const method of ['auto', 'eigen', 'newton-schulz'] as const) {
  let note = '';
  const run = async (o: WctOptions) => {
    const r = await wct(fc, fs, o);
    await r.out.data();
    note = `whiten ${r.whitening.method}${r.whitening.iterations ? ` (${r.whitening.iterations})` : ''}, colour ${r.coloring.method}${r.coloring.iterations ? ` (${r.coloring.iterations})` : ''}, cov error ${r.covError.toExponential(1)}`;
    r.out.dispose();
  };
  await run({ method });
  row(`WCT ${method}`, '64×64×512', await time(() => run({ method })), note);
}
tf.dispose([gauss, vgg, few, fc, fs]);
console.log(`# ${tf.memory().numTensors} tensors left`);
