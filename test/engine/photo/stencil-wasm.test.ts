// The smoothing solver's WebAssembly kernels (wasm/stencil.as.ts, loaded by stencil-wasm.ts): the
// committed module is what the AssemblyScript source compiles to, and solves with them equal solves
// with the JavaScript kernels bit for bit (the same operations in the same order), on one thread and
// on several, with either preconditioner.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PARALLEL, smooth, type SmoothOptions } from '../../../src-main/engine/photo/smooth.ts';
import { closeSmoothPool } from '../../../src-main/engine/photo/smooth-pool.ts';
import { Arena, giveBackArena, stencilKernels, takeArena } from '../../../src-main/engine/photo/stencil-wasm.ts';
import { noisy, scene } from './scenes.ts';

const GENERATED = fileURLToPath(new URL('../../../src-main/engine/photo/stencil-wasm.gen.ts', import.meta.url));

test('the committed module is a fresh compile of wasm/stencil.as.ts', async () => {
  const { generate } = await import('../../../scripts/build-wasm.mjs');
  assert.ok(readFileSync(GENERATED, 'utf8') === await generate(), 'stencil-wasm.gen.ts is stale: run node scripts/build-wasm.mjs');
});

test('the arena hands out zeroed, non-overlapping views the kernels address by byte offset, and grows', () => {
  const arena = new Arena(1024);
  const a = arena.f64(3), idx = arena.i32(5), b = arena.f64(200_000); // b needs a grown memory
  assert.ok(a.every((v) => v === 0) && b.every((v) => v === 0));
  assert.ok(idx.byteOffset >= a.byteOffset + a.byteLength && b.byteOffset >= idx.byteOffset + idx.byteLength);
  assert.equal(b.byteOffset % 8, 0);
  assert.ok(arena.memory.buffer.byteLength >= b.byteOffset + b.byteLength);
  // A 1×1 "image" with diagonal 2: spmv1 writes 2·x through the pointers.
  const w = 5, h = 5, n = w * h;
  const A = arena.f64(13 * n), x = arena.f64(3 * n), y = arena.f64(3 * n);
  for (let i = 0; i < n; i++) A[i] = 2;
  x.forEach((_, k) => { x[k] = k; });
  stencilKernels(arena.memory).spmv1(A.byteOffset, n, w, h, x.byteOffset, y.byteOffset, 0, h);
  assert.deepEqual(Array.from(y), Array.from(x, (v) => 2 * v));
});

test('a solve\'s arena is reused by the next (one memory, not one per solve), its views zeroed again', () => {
  const first = takeArena(1 << 20);
  const v = first.f64(1000);
  v.fill(7);
  const mark = first.mark();
  first.f64(10).fill(3);
  first.release(mark);
  assert.ok(first.f64(10).every((x) => x === 0), 'released memory comes back zeroed');
  giveBackArena(first);
  const second = takeArena(1 << 20);
  assert.equal(second.memory, first.memory);
  const w = second.f64(1000);
  assert.equal(w.byteOffset, v.byteOffset);
  assert.ok(w.every((x) => x === 0), 'a reused arena hands out zeroed views');
  giveBackArena(second);
});

function run(kernels: 'webassembly' | 'javascript', opts: SmoothOptions) {
  const keep = process.env.STUDIO_SMOOTH_WASM;
  process.env.STUDIO_SMOOTH_WASM = kernels === 'webassembly' ? '1' : '0';
  try {
    return smooth(content, stylized, opts);
  } finally {
    if (keep === undefined) delete process.env.STUDIO_SMOOTH_WASM;
    else process.env.STUDIO_SMOOTH_WASM = keep;
  }
}

// 160×100: three levels; with PARALLEL.minDofs = 0 the first two are split between threads.
const content = scene(160, 100, 1);
const stylized = noisy(content, 2);

function assertIdentical(opts: SmoothOptions, what: string) {
  const js = run('javascript', opts), wasm = run('webassembly', opts);
  assert.equal(js.kernels, 'javascript');
  assert.equal(wasm.kernels, 'webassembly');
  assert.equal(wasm.threads, js.threads, what);
  assert.equal(wasm.iterations, js.iterations, what);
  assert.ok(js.iterations > 5 && js.residual < 1, `${what}: a real solve (${js.iterations} iterations, residual ${js.residual})`);
  assert.equal(wasm.residual, js.residual, what);
  let differ = 0;
  for (let k = 0; k < js.image.data.length; k++) if (!Object.is(js.image.data[k], wasm.image.data[k])) differ++;
  assert.equal(differ, 0, `${what}: ${differ} values differ`);
}

describe('solves with WebAssembly kernels equal those with JavaScript kernels, bit for bit', () => {
  const minDofs = PARALLEL.minDofs;
  before(() => { PARALLEL.minDofs = 0; });
  after(async () => {
    PARALLEL.minDofs = minDofs;
    await closeSmoothPool();
  });

  test('one thread, multigrid', () => assertIdentical({ threads: 1 }, 'one thread'));
  test('one thread, Jacobi', () => assertIdentical({ threads: 1, preconditioner: 'jacobi', maxIter: 60 }, 'Jacobi'));
  test('two and three threads (hybrid Gauss–Seidel across blocks)', () => {
    assertIdentical({ threads: 2 }, 'two threads');
    assertIdentical({ threads: 3 }, 'three threads');
  });
  test('the Gaussian affinity', () => assertIdentical({ threads: 2, affinity: 'gaussian' }, 'Gaussian'));
});
