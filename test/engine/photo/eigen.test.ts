import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { eigs } from 'mathjs';
import { symmetricEigen, symmetricEigenInBackground, jacobiEigen, type SymmetricEigen } from '../../../src-main/engine/photo/eigen.ts';
import { withEnv } from '../../env.ts';

/** Seeded uniform numbers in [-0.5, 0.5). */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
}

/** B + Bᵀ (indefinite) or B Bᵀ (PSD, rank ≤ r when B is n×r). */
function randomSymmetric(n: number, seed: number, kind: 'indefinite' | 'psd' = 'indefinite', rank = n): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n * n);
  if (kind === 'indefinite') {
    const b = Array.from({ length: n * n }, r);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = b[i * n + j] + b[j * n + i];
  } else {
    const b = Array.from({ length: n * rank }, r);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let t = 0;
      for (let k = 0; k < rank; k++) t += b[i * rank + k] * b[j * rank + k];
      a[i * n + j] = t;
    }
  }
  return a;
}

const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** ‖A − V D Vᵀ‖_F / ‖A‖_F and ‖VᵀV − I‖_max. */
function residuals(a: Float64Array, n: number, { values, vectors: v }: SymmetricEigen): { recon: number; ortho: number } {
  let err = 0;
  let norm = 0;
  let ortho = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let t = 0;
      let g = 0;
      for (let k = 0; k < n; k++) {
        t += v[i * n + k] * values[k] * v[j * n + k];
        g += v[k * n + i] * v[k * n + j];
      }
      err += (t - a[i * n + j]) ** 2;
      norm += a[i * n + j] ** 2;
      ortho = Math.max(ortho, Math.abs(g - (i === j ? 1 : 0)));
    }
  }
  return { recon: Math.sqrt(err / Math.max(norm, 1e-300)), ortho };
}

describe('symmetric eigen-solver', () => {
  test('agrees with mathjs eigs (the oracle) on small matrices, values and vectors', () => {
    for (const n of [1, 2, 3, 5, 8, 12]) {
      for (const [seed, kind] of [[n, 'indefinite'], [100 + n, 'psd']] as const) {
        const a = randomSymmetric(n, seed, kind);
        const ours = symmetricEigen(a, n);
        const rows = Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, i * n + n)));
        const ref = eigs(rows) as unknown as { values: number[]; eigenvectors: { value: number; vector: number[] }[] };
        const refValues = [...ref.values].sort((x, y) => x - y);
        const scale = Math.max(1, maxAbs(Float64Array.from(refValues)));
        refValues.forEach((v, k) => assert.ok(Math.abs(ours.values[k] - v) <= 1e-12 * scale, `n=${n} ${kind}: λ${k} ${ours.values[k]} vs ${v}`));
        // Eigenvectors: equal up to sign where the eigenvalue is well separated.
        for (const { value, vector } of ref.eigenvectors) {
          const k = refValues.findIndex((v) => Math.abs(v - value) <= 1e-10 * scale);
          const gap = Math.min(...refValues.filter((_, j) => j !== k).map((v) => Math.abs(v - value)), Infinity);
          if (gap < 1e-6 * scale) continue;
          const len = Math.hypot(...vector);
          let dot = 0;
          for (let i = 0; i < n; i++) dot += (ours.vectors[i * n + k] * vector[i]) / len;
          assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-9, `n=${n} ${kind}: eigenvector ${k}, |cos| = ${Math.abs(dot)}`);
        }
      }
    }
  });

  test('reconstructs A = V D Vᵀ with orthonormal V at n = 128 (and Jacobi agrees)', () => {
    const n = 128;
    for (const [a, what] of [[randomSymmetric(n, 7), 'indefinite'], [randomSymmetric(n, 8, 'psd', 40), 'rank 40']] as const) {
      const r = symmetricEigen(a, n);
      const { recon, ortho } = residuals(a, n, r);
      assert.ok(recon < 1e-13, `${what}: reconstruction error ${recon}`);
      assert.ok(ortho < 1e-13, `${what}: orthogonality error ${ortho}`);
      for (let k = 1; k < n; k++) assert.ok(r.values[k] >= r.values[k - 1], 'ascending');
      const j = jacobiEigen(a, n);
      const scale = maxAbs(r.values);
      j.values.forEach((v, k) => assert.ok(Math.abs(v - r.values[k]) < 1e-12 * scale, `Jacobi λ${k}`));
    }
    // Rank 40 of 128: 88 eigenvalues at zero (to rounding).
    const r = symmetricEigen(randomSymmetric(n, 8, 'psd', 40), n);
    const zeros = Array.from(r.values).filter((v) => Math.abs(v) < 1e-12 * maxAbs(r.values)).length;
    assert.equal(zeros, n - 40);
  });

  test('diagonal, repeated and zero matrices', () => {
    const d = symmetricEigen(Float64Array.from([3, 0, 0, 0, 1, 0, 0, 0, 2]), 3);
    assert.deepEqual(Array.from(d.values), [1, 2, 3]);
    const eye = symmetricEigen(Float64Array.from([1, 0, 0, 1]), 2);
    assert.deepEqual(Array.from(eye.values), [1, 1]);
    const zero = symmetricEigen(new Float64Array(16), 4);
    assert.deepEqual(Array.from(zero.values), [0, 0, 0, 0]);
    assert.ok(residuals(new Float64Array(16), 4, zero).ortho < 1e-15);
  });

  test('bad input is a BAD_ARGUMENT', () => {
    const bad = (f: () => unknown) => assert.throws(f, (e: { code?: string }) => e.code === 'BAD_ARGUMENT');
    bad(() => symmetricEigen(new Float64Array(8), 3));
    bad(() => symmetricEigen(new Float64Array(0), 0));
    bad(() => symmetricEigen(Float64Array.from([1, NaN, NaN, 1]), 2));
    bad(() => symmetricEigen([1, 0, 0, 1] as unknown as Float64Array, 2));
  });
});

describe('the WebAssembly build of the eigen-solver', () => {
  test('the committed module is a fresh compile of wasm/eigen.as.ts', async () => {
    const { generate } = await import('../../../scripts/build-wasm.mjs');
    const generated = readFileSync(fileURLToPath(new URL('../../../src-main/engine/photo/eigen-wasm.gen.ts', import.meta.url)), 'utf8');
    assert.ok(generated === await generate('eigen'), 'eigen-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
  });

  test('bit-identical to the JavaScript: odd and even sizes, indefinite, low-rank, repeated and zero matrices', async () => {
    const cases: Array<[string, number, Float64Array]> = [
      ['indefinite 17', 17, randomSymmetric(17, 3)],
      ['indefinite 64', 64, randomSymmetric(64, 4)],
      ['psd rank 9 of 33', 33, randomSymmetric(33, 5, 'psd', 9)],
      ['psd 101', 101, randomSymmetric(101, 6, 'psd')],
      ['identity 20', 20, Float64Array.from({ length: 400 }, (_, i) => (i % 21 === 0 ? 1 : 0))],
      ['zero 18', 18, new Float64Array(18 * 18)],
    ];
    for (const [what, n, a] of cases) {
      const js = await withEnv({ STUDIO_EIGEN_WASM: '0' }, () => symmetricEigen(a, n));
      const wasm = await withEnv({ STUDIO_EIGEN_WASM: '1' }, () => symmetricEigen(a, n));
      assert.deepEqual(wasm.values, js.values, `${what}: eigenvalues`);
      assert.deepEqual(wasm.vectors, js.vectors, `${what}: eigenvectors`);
      const r = residuals(a, n, wasm);
      assert.ok(r.recon < 1e-12 && r.ortho < 1e-12, `${what}: ${JSON.stringify(r)}`);
    }
  });
});

test('on the solver\'s helper thread: the same bits as on this one, two at once, bad input refused before it goes; small ones and STUDIO_EIGEN_THREAD=0 stay here', async () => {
  const a = randomSymmetric(200, 41, 'psd'), b = randomSymmetric(160, 42);
  const [ra, rb] = await Promise.all([symmetricEigenInBackground(a, 200), symmetricEigenInBackground(b, 160)]);
  const sa = symmetricEigen(a, 200), sb = symmetricEigen(b, 160);
  assert.deepEqual([...ra.values], [...sa.values]);
  assert.deepEqual([...ra.vectors], [...sa.vectors]);
  assert.deepEqual([...rb.values], [...sb.values]);
  assert.deepEqual([...rb.vectors], [...sb.vectors]);
  // Its input is not transferred away from the caller.
  assert.equal(a.length, 200 * 200);
  const bad = Float64Array.from(a);
  bad[7] = NaN;
  await assert.rejects(symmetricEigenInBackground(bad, 200), /non-finite/);
  const small = randomSymmetric(20, 43);
  assert.deepEqual([...(await symmetricEigenInBackground(small, 20)).values], [...symmetricEigen(small, 20).values]);
  await withEnv({ STUDIO_EIGEN_THREAD: '0' }, async () => assert.deepEqual([...(await symmetricEigenInBackground(a, 200)).vectors], [...sa.vectors]));
});
