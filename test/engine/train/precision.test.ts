import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { roundToF16, bf16BitsToF32, f32ToBf16Bits } from '../../../src-main/engine/tensors/half.ts';
import { BF16, castTensor, castWithGrad, FP16, LossScaler, DYNAMIC_DEFAULTS, type HalfFormat } from '../../../src-main/engine/train/precision.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { testBackends } from '../../backends.ts';

const backends = await testBackends();
after(async () => {
  await initBackend('cpu');
});

const roundBf16 = (x: number) => bf16BitsToF32(f32ToBf16Bits(x));
const ref = (f: HalfFormat) => (f.name === 'fp16' ? roundToF16 : roundBf16);

/** Exact expected values, written out: ties to even, subnormals, the flush, overflow, NaN, −0. */
const FP16_CASES: [number, number][] = [
  [1 + 2 ** -11, 1], // tie between 1 and 1+2^-10: even mantissa (1)
  [1 + 3 * 2 ** -11, 1 + 2 ** -9], // tie between 1+2^-10 and 1+2^-9: even (…10)
  [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // above the tie: up
  [2 ** -24, 2 ** -24], // smallest subnormal
  [2 ** -25, 0], // tie between 0 and 2^-24: even (0)
  [1.5 * 2 ** -25, 2 ** -24],
  [3 * 2 ** -25, 2 ** -23], // subnormal tie 1.5·2^-24 → 2·2^-24
  [5 * 2 ** -25, 2 * 2 ** -24], // 2.5·2^-24 → 2·2^-24
  [2 ** -26, 0], // flushed
  [-(2 ** -26), -0], // flushed, sign kept
  [2 ** -14 - 2 ** -25, 2 ** -14], // largest subnormal + half a quantum rounds into the normals (even)
  [2 ** -14 - 3 * 2 ** -25, 2 ** -14 - 2 * 2 ** -24],
  [65504, 65504],
  [65519, 65504],
  [65520, Infinity], // tie between 65504 and 65536 (not finite): even → Inf
  [-70000, -Infinity],
  [1e30, Infinity],
  [Infinity, Infinity],
  [-Infinity, -Infinity],
  [-0, -0],
  [0, 0],
  [NaN, NaN],
  [3.14159, 3.140625],
  [-2049, -2048], // 2049 is a tie between 2048 and 2050: even
  [2051, 2052],
];
const BF16_CASES: [number, number][] = [
  [1 + 2 ** -8, 1], // tie: even
  [1 + 3 * 2 ** -8, 1 + 2 ** -6],
  [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7],
  [2 ** -126, 2 ** -126], // smallest normal
  [2 ** -133, 2 ** -133], // smallest bf16 subnormal (a float32 subnormal)
  [2 ** -134, 0], // tie with 0: even
  [3 * 2 ** -134, 2 ** -132],
  [2 ** -140, 0],
  [-(2 ** -140), -0],
  [3.3895313892515355e38, 3.3895313892515355e38], // largest finite bf16
  [3.4e38, Infinity], // above the last tie
  [65520, 65536],
  [-0, -0],
  [NaN, NaN],
  [Infinity, Infinity],
  [3.14159, 3.140625],
  [257, 256], // tie between 256 and 258: even
  [259, 260],
];

function bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}
function sameValue(got: number, want: number): boolean {
  return Number.isNaN(want) ? Number.isNaN(got) : bits(got) === bits(want); // bit for bit (so −0 ≠ 0)
}

/** Random float32 bit patterns over the whole range, plus neighbourhoods of the format's edges. */
function samples(f: HalfFormat, n: number): Float32Array {
  const rng = mulberry32(f.name === 'fp16' ? 16 : 17);
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) u[i] = Math.floor(rng() * 2 ** 32);
  const out = new Float32Array(u.buffer);
  // Half of them near the format's range (exponent within it, random mantissa: many ties and subnormals).
  const span = f.maxExp - f.minExp + f.mantissaBits + 4;
  for (let i = 0; i < n / 2; i++) {
    const e = f.minExp - f.mantissaBits - 2 + Math.floor(rng() * span);
    const mant = Math.floor(rng() * 2 ** 23);
    // Every 4th: exactly a tie (the bits below the format's last kept bit are 100…0).
    const keep = 23 - f.mantissaBits;
    const m = i % 4 === 0 ? ((mant >>> keep) << keep) | (1 << (keep - 1)) : mant;
    out[i] = (rng() < 0.5 ? -1 : 1) * (1 + m / 2 ** 23) * 2 ** e;
  }
  return out;
}

for (const f of [FP16, BF16]) {
  const cases = f.name === 'fp16' ? FP16_CASES : BF16_CASES;
  test(`${f.name} cast: exact reference values (ties to even, subnormals, flush, overflow, NaN, −0) on ${backends.join(', ')}`, async () => {
    for (const b of backends) {
      await initBackend(b);
      const before = tf.memory().numTensors;
      const x = tf.tensor1d(cases.map((c) => c[0]));
      const y = castTensor(x, f);
      const got = Array.from(await y.data());
      tf.dispose([x, y]);
      cases.forEach(([input, want], i) => {
        assert.ok(sameValue(got[i], want), `${b} ${f.name}(${input}) = ${got[i]}, expected ${Object.is(want, -0) ? '-0' : want}`);
        assert.ok(sameValue(ref(f)(input), want), `half.ts disagrees on ${input}`); // the table above is right
      });
      assert.equal(tf.memory().numTensors, before, 'the cast keeps no tensors');
    }
  });

  test(`${f.name} cast: bit for bit as half.ts's typed-array cast on 40000 float32 patterns on each backend`, async () => {
    const xs = samples(f, 40000);
    const want = Float32Array.from(xs, (x) => ref(f)(x));
    for (const b of backends) {
      await initBackend(b);
      const x = tf.tensor1d(xs);
      const y = castTensor(x, f);
      const got = (await y.data()) as Float32Array;
      tf.dispose([x, y]);
      let bad = 0;
      let first = '';
      for (let i = 0; i < xs.length; i++) {
        if (!sameValue(got[i], want[i])) {
          if (!bad) first = `${xs[i]} → ${got[i]}, expected ${want[i]}`;
          bad++;
        }
      }
      assert.equal(bad, 0, `${b}: ${bad} of ${xs.length} differ, e.g. ${first}`);
    }
  });
}

test('the cast\'s gradient casts the incoming gradient (fp16 flushes a 2^-26 gradient, keeps 2^-24)', async () => {
  for (const b of backends) {
    await initBackend(b);
    const x = tf.tensor1d([1, 2, 3]);
    const dy = tf.tensor1d([2 ** -26, 2 ** -24, 1 + 2 ** -11]);
    const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(castWithGrad(xi, FP16), dy)))(x);
    assert.deepEqual(Array.from(await g.data()), [0, 2 ** -24, 1], b);
    tf.dispose([x, dy, g]);
  }
});

test('dynamic loss scaler: ×2 after the growth interval of clean steps, ×0.5 and a skipped step on Inf', () => {
  const s = new LossScaler({ ...DYNAMIC_DEFAULTS, growthInterval: 3 });
  assert.equal(s.scale, 65536);
  assert.equal(s.update(true), true);
  assert.equal(s.update(true), true);
  assert.equal(s.scale, 65536, 'not before the interval');
  assert.equal(s.update(true), true);
  assert.equal(s.scale, 131072, 'grown after 3 clean steps');
  assert.equal(s.update(true), true);
  assert.equal(s.update(false), false, 'an overflow skips the update');
  assert.equal(s.scale, 65536, 'and halves the scale');
  assert.deepEqual(s.state(), { scale: 65536, cleanSteps: 0 }, 'the clean count restarts');
  s.update(true);
  s.update(true);
  assert.equal(s.scale, 65536);
  s.update(true);
  assert.equal(s.scale, 131072);
  const restored = new LossScaler(s.options, { scale: 8, cleanSteps: 2 });
  restored.update(true);
  assert.equal(restored.scale, 16, 'a restored scaler continues its count');
  const fixed = new LossScaler({ ...DYNAMIC_DEFAULTS, mode: 'static', scale: 128, growthInterval: 1 });
  assert.equal(fixed.update(false), false, 'static scaling skips overflowing steps too');
  assert.equal(fixed.update(true), true);
  assert.equal(fixed.scale, 128, 'but never changes its scale');
});
