// WCT's in-place passes on the tfjs WebAssembly backend's memory (covariance-wasm.ts): the committed
// module is a fresh compile with nothing of its own to write (no data, globals or start), its mean and
// centred scatter match float64 sums, its centring matches x − mean exactly, the tensor path
// (STUDIO_WCT_WASM=0) gives the same WCT, and nothing is left allocated.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { centreInPlace, featureStatsInPlace, gramInPlace, inPlaceKernelsAvailable } from '../../../src-main/engine/photo/covariance-wasm.ts';
import { COVARIANCE_WASM_BASE64, COVARIANCE_WASM_SHARED_BASE64 } from '../../../src-main/engine/photo/covariance-wasm.gen.ts';
import { wct } from '../../../src-main/engine/photo/wct.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { withEnv } from '../../env.ts';

const GENERATED = fileURLToPath(new URL('../../../src-main/engine/photo/covariance-wasm.gen.ts', import.meta.url));

before(() => initBackend('wasm'));

/** Section ids of a WebAssembly binary. */
function sections(b: Buffer): number[] {
  const ids: number[] = [];
  for (let p = 8; p < b.length;) {
    ids.push(b[p++]);
    let n = 0;
    for (let s = 0, x = 0x80; x & 0x80; s += 7) n |= ((x = b[p++]) & 0x7f) << s;
    p += n;
  }
  return ids;
}

test('the committed module is a fresh compile of wasm/covariance.as.ts, with no data, globals or start function', async () => {
  const { generate } = await import('../../../scripts/build-wasm.mjs');
  assert.ok(readFileSync(GENERATED, 'utf8') === await generate('covariance'), 'covariance-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
  for (const b64 of [COVARIANCE_WASM_BASE64, COVARIANCE_WASM_SHARED_BASE64]) {
    const ids = sections(Buffer.from(b64, 'base64'));
    assert.ok(ids.includes(10), 'has code');
    for (const [id, what] of [[6, 'globals'], [8, 'start'], [11, 'data']] as const) assert.ok(!ids.includes(id), `no ${what} section`);
  }
});

/** x [d, c]: ReLU-like features with a mean well away from zero (the centring matters). */
function features(d: number, c: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  const x = new Float32Array(d * c);
  for (let r = 0; r < d; r++) for (let j = 0; j < c; j++) x[r * c + j] = Math.max(0, 30 + 20 * (rng() - 0.5) + 10 * Math.sin(r * 0.01 + j)) * (1 + j / c);
  return x;
}

test('mean and centred scatter against float64 sums: vector (C % 8 = 0) and scalar paths, D not a multiple of the block, in shares of rows on the helper threads (the two large ones)', () => {
  assert.ok(inPlaceKernelsAvailable());
  for (const [d, c] of [[1000, 64], [777, 24], [300, 6], [5, 3], [2, 128], [5001, 64], [1003, 128]] as const) {
    const data = features(d, c, d + c);
    const start = tf.memory().numTensors;
    const x = tf.tensor2d(data, [d, c]);
    const st = featureStatsInPlace(x);
    x.dispose();
    assert.equal(tf.memory().numTensors, start);
    const mean = new Float64Array(c);
    for (let r = 0; r < d; r++) for (let j = 0; j < c; j++) mean[j] += data[r * c + j] / d;
    let worstMean = 0;
    for (let j = 0; j < c; j++) worstMean = Math.max(worstMean, Math.abs(st.mean[j] - mean[j]) / Math.abs(mean[j]));
    assert.ok(worstMean < 1e-9, `mean off by ${worstMean} relative (${d}×${c})`);
    // The reference centres with the float32 mean, as the kernel does.
    const m32 = Float32Array.from(st.mean);
    let worst = 0, scale = 0;
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < c; j++) {
        let s = 0;
        for (let r = 0; r < d; r++) s += Math.fround(data[r * c + i] - m32[i]) * Math.fround(data[r * c + j] - m32[j]);
        worst = Math.max(worst, Math.abs(st.scatter[i * c + j] - s));
        scale = Math.max(scale, Math.abs(s));
        assert.equal(st.scatter[i * c + j], st.scatter[j * c + i], 'symmetric');
      }
      assert.ok(Math.abs(st.centredSum[i]) < 1e-3 * Math.sqrt(st.scatter[i * c + i] * d) + 1e-9, `centred sum ${st.centredSum[i]}`);
    }
    assert.ok(worst / scale < 2e-6, `scatter off by ${worst / scale} relative (${d}×${c})`);
  }
});

test('centring writes x − mean (float32) into a new tensor, exactly', () => {
  const [d, c] = [513, 20];
  const data = features(d, c, 3);
  const x = tf.tensor2d(data, [d, c]);
  const mean = Float64Array.from({ length: c }, (_, j) => 10 + j / 3);
  const y = centreInPlace(x, mean);
  const out = y.dataSync();
  const m32 = Float32Array.from(mean);
  for (let k = 0; k < d * c; k++) assert.equal(out[k], Math.fround(data[k] - m32[k % c]));
  assert.deepEqual(Array.from(x.dataSync()), Array.from(data), 'the input is untouched');
  tf.dispose([x, y]);
});

test('WCT through the in-place passes equals WCT through tensor ops (STUDIO_WCT_WASM=0), and leaks nothing', async () => {
  const [h, w, c] = [40, 30, 32];
  const fc = tf.tensor4d(features(h * w, c, 5), [1, h, w, c]);
  const fs = tf.tensor4d(features(h * w, c, 9).map((v, k) => v * (1 + 0.3 * Math.sin(k))), [1, h, w, c]);
  const start = tf.memory().numTensors;
  const fast = await wct(fc, fs);
  const slow = await withEnv({ STUDIO_WCT_WASM: '0' }, () => wct(fc, fs));
  const a = fast.out.dataSync(), b = slow.out.dataSync();
  let worst = 0, scale = 0;
  for (let k = 0; k < a.length; k++) {
    worst = Math.max(worst, Math.abs(a[k] - b[k]));
    scale = Math.max(scale, Math.abs(b[k]));
  }
  assert.ok(worst / scale < 1e-4, `outputs differ by ${worst / scale} relative`);
  assert.ok(fast.covError < 1e-3 && fast.meanError < 1e-4, JSON.stringify({ cov: fast.covError, mean: fast.meanError }));
  assert.ok(Math.abs(fast.regularizer - slow.regularizer) <= 1e-5 * slow.regularizer, 'the same automatic unit');
  tf.dispose([fast.out, slow.out]);
  assert.equal(tf.memory().numTensors, start);
  tf.dispose([fc, fs]);
});

test('the single-threaded WebAssembly build (STUDIO_WASM_THREADS=1: a plain memory) runs the same passes, with the same results', () => {
  const child = fileURLToPath(new URL('./covariance-wasm.child.ts', import.meta.url));
  const run = (threads: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', child], { encoding: 'utf8', env: { ...process.env, STUDIO_WASM_THREADS: threads } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  };
  const one = run('1');
  const two = run('2');
  assert.deepEqual([one.threads, one.available, two.threads, two.available], [1, true, 2, true]);
  assert.deepEqual(one.scatter, two.scatter, 'bit for bit');
  assert.deepEqual(one.mean, two.mean);
});

test('gramInPlace: XᵀX against float64 sums, symmetric, with nothing left allocated', () => {
  for (const [d, c] of [[1000, 64], [777, 24], [300, 6], [5, 3]] as const) {
    const data = features(d, c, 3 * d + c);
    const start = tf.memory().numTensors;
    const x = tf.tensor2d(data, [d, c]);
    const g = gramInPlace(x);
    const got = g.dataSync();
    tf.dispose([x, g]);
    assert.equal(tf.memory().numTensors, start);
    let worst = 0;
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) {
      let s = 0;
      for (let r = 0; r < d; r++) s += data[r * c + i] * data[r * c + j];
      worst = Math.max(worst, Math.abs(got[i * c + j] - s) / Math.abs(s));
      assert.equal(got[i * c + j], got[j * c + i]);
    }
    assert.ok(worst <= 2e-6, `${d}×${c}: relative error ${worst.toExponential(2)}`);
  }
});
