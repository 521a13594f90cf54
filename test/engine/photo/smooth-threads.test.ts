// The threaded smoothing solve (smooth.ts with smooth-pool.ts): same system solution as one thread,
// deterministic, and cancellation mid-solve leaves the pool usable.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { maxDiff, noisy, scene } from './scenes.ts';
import { CancelledError } from '../../../src-main/errors.ts';
import { PARALLEL, smooth } from '../../../src-main/engine/photo/smooth.ts';
import { acquirePool, closeSmoothPool } from '../../../src-main/engine/photo/smooth-pool.ts';
import { StudioError } from '../../../src-main/errors.ts';
import { guidedFilter, guidedRows } from '../../../src-main/engine/photo/guided-filter.ts';

describe('threaded smoothing', () => {
  const minDofs = PARALLEL.minDofs;
  // Small images take the threaded path too (every level with ≥ 2 rows per thread).
  before(() => { PARALLEL.minDofs = 0; });
  after(async () => {
    PARALLEL.minDofs = minDofs;
    await closeSmoothPool();
  });
  // 160×100: three levels, the first two split between threads.
  const content = scene(160, 100, 1);
  const stylized = noisy(content, 2);

  test('2 and 3 threads reach the single-thread solution (< 1e-6) and are deterministic', () => {
    const one = smooth(content, stylized, { threads: 1 });
    assert.equal(one.threads, 1);
    assert.ok(one.converged);
    for (const threads of [2, 3]) {
      const r = smooth(content, stylized, { threads });
      assert.equal(r.threads, threads);
      assert.ok(r.converged, `${threads} threads: residual ${r.residual} after ${r.iterations}`);
      const d = maxDiff(r.image.data, one.image.data);
      assert.ok(d < 1e-6, `${threads} threads: max |Δ| ${d}`);
      // Hybrid Gauss–Seidel weakens the preconditioner only at block edges.
      assert.ok(r.iterations <= one.iterations + 3, `${r.iterations} vs ${one.iterations} iterations`);
      const again = smooth(content, stylized, { threads });
      assert.deepEqual(again.image.data, r.image.data);
      assert.equal(again.iterations, r.iterations);
    }
  });

  test('a tight solve on 2 threads equals a tight solve on 1 (both are the system solution)', () => {
    const c = scene(64, 48, 5), s = noisy(c, 6);
    const a = smooth(c, s, { threads: 1, tol: 1e-10, maxIter: 2000 });
    const b = smooth(c, s, { threads: 2, tol: 1e-10, maxIter: 2000 });
    assert.equal(b.threads, 2);
    assert.ok(a.converged && b.converged);
    assert.ok(maxDiff(a.image.data, b.image.data) < 1e-8);
  });

  test('cancelling mid-solve stops it, and the pool works afterwards', () => {
    const ref = smooth(content, stylized, { threads: 2 });
    let calls = 0;
    assert.throws(
      () => smooth(content, stylized, { threads: 2, checkCancelled: () => { if (++calls === 4) throw new CancelledError(); } }),
      (e: unknown) => e instanceof CancelledError,
    );
    assert.equal(calls, 4);
    calls = 0;
    assert.throws(() => smooth(content, stylized, { threads: 2, checkCancelled: () => ++calls === 2 }), (e: unknown) => e instanceof CancelledError);
    // A throwing progress callback also ends the session cleanly.
    assert.throws(() => smooth(content, stylized, { threads: 2, onProgress: () => { throw new Error('boom'); } }), /boom/);
    const r = smooth(content, stylized, { threads: 2 });
    assert.deepEqual(r.image.data, ref.image.data);
    assert.equal(r.iterations, ref.iterations);
  });

  test('a kernel failing in a worker fails the command with its message; the pool works afterwards', () => {
    const ref = smooth(content, stylized, { threads: 2 });
    const pool = acquirePool(2);
    assert.ok(pool.waitReady(2));
    const parts = new Int32Array(new SharedArrayBuffer(4 * 5));
    pool.begin(2, { T: 2, levels: [], v: [], parts: [parts], scratch: 0 });
    try {
      // Command 99 on an empty session: the worker's block throws. This thread's blocks wait, so that the
      // worker claims at least one.
      assert.throws(
        () => pool.dispatch(99, 0, 4, () => { const t = performance.now(); while (performance.now() - t < 300); }),
        (e: unknown) => e instanceof StudioError && e.code === 'INTERNAL' && /a smoothing thread failed: thread 1/.test(e.message),
      );
    } finally {
      pool.end();
    }
    const r = smooth(content, stylized, { threads: 2 });
    assert.deepEqual(r.image.data, ref.image.data);
  });

  test('a solve started from a progress callback of a threaded one runs on one thread', () => {
    const c = scene(40, 30, 11), s = noisy(c, 12);
    const ref = smooth(c, s, { threads: 1 });
    let inner: ReturnType<typeof smooth> | undefined;
    const outer = smooth(content, stylized, { threads: 2, onProgress: (p) => { if (p.iteration === 2) inner = smooth(c, s, { threads: 2 }); } });
    assert.equal(outer.threads, 2);
    assert.ok(outer.converged);
    assert.equal(inner?.threads, 1);
    assert.deepEqual(inner?.image.data, ref.image.data);
  });

  test('guided filter: bands of rows (as the threads run them) give the whole-image result', () => {
    const c = scene(90, 300, 13), s = noisy(c, 14);
    for (const r of [3, 8, 40]) {
      const job = { I: c.data, p: s.data, q: new Float32Array(c.data.length), w: 90, h: 300, r, eps: 1e-4 };
      guidedRows(job, 0, 300);
      const whole = job.q.slice();
      job.q.fill(-1);
      for (const [y0, y1] of [[0, 7], [7, 150], [150, 151], [151, 300]]) guidedRows(job, y0, y1);
      assert.ok(maxDiff(job.q, whole) < 1e-6, `r = ${r}: max |Δ| ${maxDiff(job.q, whole)}`);
      const two = guidedFilter(c, s, { radius: r, eps: 1e-4, threads: 2 });
      assert.ok(maxDiff(two.data, whole) < 1e-6);
      assert.ok(!(two.data.buffer instanceof SharedArrayBuffer));
    }
  });

  test('images too small to split run on one thread', () => {
    const tiny = scene(3, 2, 9);
    const r = smooth(tiny, noisy(tiny, 10), { threads: 2 });
    assert.equal(r.threads, 1);
    assert.ok(r.converged);
  });
});
