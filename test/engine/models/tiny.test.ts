import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyVgg19, randomVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { CAFFE_PREPROCESSING, TORCH_PREPROCESSING } from '../../../src-main/engine/models/format.ts';
import { vgg19Convs, TINY_WIDTHS } from '../../../src-main/engine/models/vgg19.ts';
import { checkVgg19Tensors } from '../../../src-main/engine/models/store.ts';
import { mulberry32, gaussian } from '../../../src-main/engine/random.ts';

test('mulberry32 is deterministic and uniform; gaussian has mean 0 and variance 1', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 5 }, () => a());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, mulberry32(43)));
  const r = mulberry32(7);
  let sum = 0;
  let sq = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const u = r();
    assert.ok(u >= 0 && u < 1);
    sum += u;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005);
  sum = 0;
  for (let i = 0; i < n; i++) {
    const g = gaussian(r);
    sum += g;
    sq += g * g;
  }
  assert.ok(Math.abs(sum / n) < 0.01, `mean ${sum / n}`);
  assert.ok(Math.abs(sq / n - 1) < 0.01, `variance ${sq / n}`);
});

test('the tiny network: VGG19 shapes at TINY_WIDTHS, He-initialised, zero biases, deterministic', () => {
  const w = tinyVgg19(1);
  assert.deepEqual(w.widths, [...TINY_WIDTHS]);
  assert.deepEqual(w.preprocessing, CAFFE_PREPROCESSING);
  assert.equal(w.source, 'tiny seed 1');
  checkVgg19Tensors(w.tensors, w.widths, 'tiny');
  assert.equal(w.tensors.size, 32);
  for (const c of vgg19Convs(w.widths)) {
    const k = w.tensors.get(`${c.name}.kernel`)!.data;
    assert.ok(w.tensors.get(`${c.name}.bias`)!.data.every((x) => x === 0));
    const mean = k.reduce((s, x) => s + x, 0) / k.length;
    const variance = k.reduce((s, x) => s + (x - mean) ** 2, 0) / k.length;
    const want = 2 / (9 * c.inChannels);
    const tol = 5 * want * Math.sqrt(2 / k.length); // ~5 standard errors of a sample variance
    assert.ok(Math.abs(variance - want) < tol, `${c.name}: variance ${variance}, want ${want}`);
    assert.ok(Math.abs(mean) < 5 * Math.sqrt(want / k.length), `${c.name}: mean ${mean}`);
  }
  const again = tinyVgg19(1);
  for (const [k, t] of w.tensors) assert.deepEqual(again.tensors.get(k)!.data, t.data);
  assert.notDeepEqual(tinyVgg19(2).tensors.get('conv1_1.kernel')!.data, w.tensors.get('conv1_1.kernel')!.data);
});

test('randomVgg19 takes any widths and preprocessing', () => {
  const w = randomVgg19([4, 4, 8, 8, 8], 3, { preprocessing: TORCH_PREPROCESSING });
  checkVgg19Tensors(w.tensors, [4, 4, 8, 8, 8], 'random');
  assert.deepEqual(w.preprocessing, TORCH_PREPROCESSING);
  assert.notEqual(w.preprocessing, TORCH_PREPROCESSING, 'a copy, not the shared constant');
});
