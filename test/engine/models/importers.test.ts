import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import h5wasm from 'h5wasm/node';
import { importKerasH5 } from '../../../src-main/engine/models/import-keras.ts';
import { importTorchPth } from '../../../src-main/engine/models/import-torch.ts';
import {
  tinyVgg19, writeTinyFixtures, writeKerasH5, encodeTorchPth, encodeTorchPthLegacy, PickleWriter, PyDict, PyGlobal, PyList, PyPersistent, PyReduce, PyTuple,
  TORCH_LEGACY_MAGIC, TORCH_LEGACY_PROTOCOL, type PyValue,
} from '../../../src-main/engine/models/tiny.ts';
import { loadVgg19 } from '../../../src-main/engine/models/store.ts';
import { CAFFE_PREPROCESSING, TORCH_PREPROCESSING, type Vgg19Weights } from '../../../src-main/engine/models/format.ts';
import { kerasName, torchvisionIndex, vgg19Convs } from '../../../src-main/engine/models/vgg19.ts';
import { roundToF16 } from '../../../src-main/engine/tensors/half.ts';
import { StudioError } from '../../../src-main/errors.ts';

let dir: string;
let fx: { modelDir: string; h5Path: string; pthPath: string };
const ref = tinyVgg19(1);
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'importers-'));
  fx = await writeTinyFixtures(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof StudioError && e.code === code && (!re || re.test(e.message + ' ' + (e.hint ?? '')));

function assertSameWeights(a: Vgg19Weights, b: Vgg19Weights, map: (x: number) => number = (x) => x): void {
  assert.deepEqual(a.widths, b.widths);
  for (const [k, t] of b.tensors) {
    const u = a.tensors.get(k);
    assert.ok(u, `missing ${k}`);
    assert.deepEqual(u.shape, t.shape, k);
    for (let i = 0; i < t.data.length; i++) if (u.data[i] !== Math.fround(map(t.data[i]))) assert.fail(`${k}[${i}]: ${u.data[i]} vs ${t.data[i]}`);
  }
}

test('the fixtures: model folder, Keras .h5 and torch .pth all hold the tiny network exactly', async () => {
  assertSameWeights(await loadVgg19(fx.modelDir), ref);
  const k = await importKerasH5(fx.h5Path);
  assertSameWeights(k, ref);
  assert.deepEqual(k.preprocessing, CAFFE_PREPROCESSING);
  assert.deepEqual(k.widths, [8, 16, 32, 64, 64]);
  const t = await importTorchPth(fx.pthPath);
  assertSameWeights(t, ref);
  assert.deepEqual(t.preprocessing, TORCH_PREPROCESSING);
});

test('the .h5 is laid out like the Keras notop file', async () => {
  await h5wasm.ready;
  const f = new h5wasm.File(fx.h5Path, 'r');
  try {
    const names = f.get_attribute('layer_names', false) as string[];
    assert.equal(names[0], 'input_1');
    assert.equal(names.at(-1), 'block5_pool');
    assert.equal(names.length, 1 + 16 + 5);
    const g = f.get('block4_conv3') as InstanceType<typeof h5wasm.Group>;
    assert.deepEqual(g.get_attribute('weight_names', false), ['block4_conv3/kernel:0', 'block4_conv3/bias:0']);
    const kd = f.get('block4_conv3/block4_conv3/kernel:0') as InstanceType<typeof h5wasm.Dataset>;
    assert.deepEqual(kd.shape, [3, 3, 64, 64]);
  } finally {
    f.close();
  }
});

test('fp16 .pth (HalfStorage) imports within half rounding', async () => {
  const d = await writeTinyFixtures(join(dir, 'half'), { dtype: 'F16' });
  const t = await importTorchPth(d.pthPath);
  assertSameWeights(t, ref, roundToF16);
  assert.equal(t.tensors.get('conv1_1.kernel')!.dtype, 'F16');
});

test('a .pth whose top folder is not "archive" imports', async () => {
  const p = join(dir, 'vgg19-dcbb9e9d.pth');
  await writeFile(p, encodeTorchPth(ref, { archiveName: 'vgg19-dcbb9e9d' }));
  assertSameWeights(await importTorchPth(p), ref);
});

/** A state dict built by hand: every tensor placed in one shared storage at its own offset, kernels transposed. */
function sharedStoragePth(w: Vgg19Weights, prefix: string, skip?: string): Uint8Array {
  const od = new PyGlobal('collections', 'OrderedDict');
  const values: number[] = [];
  const items: Array<[PyValue, PyValue]> = [];
  const storage = (): PyPersistent => new PyPersistent(new PyTuple(['storage', new PyGlobal('torch', 'FloatStorage'), '0', 'cpu', totalLen]));
  let totalLen = 0;
  for (const c of vgg19Convs(w.widths)) totalLen += 9 * c.inChannels * c.outChannels + c.outChannels + 3;
  for (const c of vgg19Convs(w.widths)) {
    const k = w.tensors.get(`${c.name}.kernel`)!;
    const b = w.tensors.get(`${c.name}.bias`)!;
    const [o, i] = [c.outChannels, c.inChannels];
    values.push(0, 0, 0); // padding before each tensor
    // OIHW view over HWIO data: element (a,b,h,x) at ((h*3+x)*i+b)*o+a → strides [1, o, 3*i*o, i*o]
    const kOff = values.length;
    values.push(...k.data);
    const bOff = values.length;
    values.push(...b.data);
    const hooks = () => new PyReduce(od, new PyTuple([]));
    const rebuild = new PyGlobal('torch._utils', '_rebuild_tensor_v2');
    const n = torchvisionIndex(c.name);
    if (`features.${n}.weight` === skip) continue;
    items.push([`${prefix}features.${n}.weight`, new PyReduce(rebuild, new PyTuple([storage(), kOff, new PyTuple([o, i, 3, 3]), new PyTuple([1, o, 3 * i * o, i * o]), false, hooks()]))]);
    items.push([`${prefix}features.${n}.bias`, new PyReduce(rebuild, new PyTuple([storage(), bOff, new PyTuple([o]), new PyTuple([1]), false, hooks()]))]);
  }
  const sd = new PyReduce(od, new PyTuple([]), items);
  const top = new PyDict([['epoch', 3], ['state_dict', sd]]);
  const data = new Uint8Array(Float32Array.from(values).buffer);
  return zipSync({ 'ckpt/data.pkl': [PickleWriter.dumps(top), { level: 0 }], 'ckpt/data/0': [data, { level: 0 }], 'ckpt/version': [Buffer.from('3\n'), { level: 0 }] });
}

test('storage offsets and strides are respected; a nested, prefixed state dict is found', async () => {
  const p = join(dir, 'shared.pth');
  await writeFile(p, sharedStoragePth(ref, 'module.'));
  assertSameWeights(await importTorchPth(p), ref);
});

test('torch importer errors: missing file, legacy file, not a checkpoint, missing layer, wrong shape', async () => {
  await assert.rejects(importTorchPth(join(dir, 'none.pth')), isCode('FILE_NOT_FOUND'));
  const legacy = join(dir, 'legacy.pth');
  await writeFile(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
  await assert.rejects(importTorchPth(legacy), isCode('BAD_FILE', /truncated: it ends inside the protocol version/));
  const junk = join(dir, 'junk.pth');
  await writeFile(junk, 'hello');
  await assert.rejects(importTorchPth(junk), isCode('BAD_FILE', /not a PyTorch checkpoint/));
  const noPkl = join(dir, 'nopkl.pth');
  await writeFile(noPkl, zipSync({ 'a/b.txt': Buffer.from('x') }));
  await assert.rejects(importTorchPth(noPkl), isCode('BAD_FILE', /without data\.pkl/));

  const gap = join(dir, 'gap.pth');
  await writeFile(gap, sharedStoragePth(ref, '', 'features.21.weight'));
  await assert.rejects(importTorchPth(gap), isCode('BAD_MODEL', /features\.21\.weight \(conv4_2\) is missing/));
  const bad = tinyVgg19(1);
  bad.tensors.set('conv4_2.kernel', { dtype: 'F32', shape: [3, 3, 60, 64], data: new Float32Array(9 * 60 * 64) });
  const wrong = join(dir, 'wrong.pth');
  await writeFile(wrong, encodeTorchPth(bad));
  await assert.rejects(importTorchPth(wrong), isCode('BAD_MODEL', /conv4_2/));
});

/** An .h5 written the Keras 1 way: `block1_conv1_W_1:0` / `block1_conv1_b_1:0` straight in the layer group. */
async function writeOldKerasH5(path: string, w: Vgg19Weights, skip?: string): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(path, 'w');
  try {
    for (const c of vgg19Convs(w.widths)) {
      const name = kerasName(c.name);
      if (name === skip) continue;
      const g = f.create_group(name);
      const k = w.tensors.get(`${c.name}.kernel`)!;
      const b = w.tensors.get(`${c.name}.bias`)!;
      g.create_dataset({ name: `${name}_W_1:0`, data: k.data, shape: k.shape, dtype: '<f' });
      g.create_dataset({ name: `${name}_b_1:0`, data: b.data, shape: b.shape, dtype: '<f' });
    }
  } finally {
    f.close();
  }
}

test('old Keras names import too', async () => {
  const p = join(dir, 'old.h5');
  await writeOldKerasH5(p, ref);
  assertSameWeights(await importKerasH5(p), ref);
});

test('Keras importer errors: not HDF5, missing file, missing layer, wrong shape', async () => {
  const junk = join(dir, 'junk.h5');
  await writeFile(junk, 'definitely not hdf5');
  await assert.rejects(importKerasH5(junk), isCode('BAD_FILE', /not an HDF5 file/));
  await assert.rejects(importKerasH5(join(dir, 'none.h5')), isCode('FILE_NOT_FOUND'));
  const missing = join(dir, 'missing.h5');
  await writeOldKerasH5(missing, ref, 'block3_conv2');
  await assert.rejects(importKerasH5(missing), isCode('BAD_MODEL', /block3_conv2 \(conv3_2\) not found/));
  const bad = tinyVgg19(1);
  bad.tensors.set('conv2_2.kernel', { dtype: 'F32', shape: [3, 3, 12, 16], data: new Float32Array(9 * 12 * 16) });
  const wrong = join(dir, 'wrong.h5');
  await writeKerasH5(wrong, bad);
  await assert.rejects(importKerasH5(wrong), isCode('BAD_MODEL', /conv2_2 kernel has shape \[3,3,12,16\], expected \[3,3,16,16\]/));
});

// ---------------------------------------------------------------------------------------------
// Legacy (pre-1.6, non-zip) torch.save files: how the published vgg19-dcbb9e9d.pth is stored

/** A legacy file around a hand-built main pickle: magic, version, sys_info, `main`, key list, then the storages. */
function legacyFile(main: PyValue, storages: Array<[string, Float32Array]>, opts: { version?: number } = {}): Buffer {
  const sysInfo = new PyDict([['protocol_version', 1001], ['little_endian', true], ['type_sizes', new PyDict([['short', 2], ['int', 4], ['long', 8]])]]);
  const parts: Uint8Array[] = [PickleWriter.dumps(TORCH_LEGACY_MAGIC), PickleWriter.dumps(opts.version ?? 1001), PickleWriter.dumps(sysInfo)];
  parts.push(PickleWriter.dumps(main), PickleWriter.dumps(new PyList(storages.map(([k]) => k))));
  for (const [, data] of storages) {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(data.length));
    parts.push(n, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return Buffer.concat(parts);
}

test('legacy .pth (fp32) round-trips the tiny network exactly, as written by torch ≥ 1.0 and by torch 0.x on Python 2', async () => {
  const d = await writeTinyFixtures(join(dir, 'legacy-fx'), { torchFormat: 'legacy' });
  assert.match(d.pthPath, /_legacy\.pth$/);
  const t = await importTorchPth(d.pthPath);
  assertSameWeights(t, ref);
  assert.deepEqual(t.preprocessing, TORCH_PREPROCESSING);
  assert.equal(t.tensors.get('conv1_1.kernel')!.dtype, 'F32');
  const p2 = join(dir, 'vgg19-py2-legacy.pth');
  await writeFile(p2, encodeTorchPthLegacy(ref, { python2: true }));
  assertSameWeights(await importTorchPth(p2), ref);
});

test('legacy .pth (HalfStorage) imports within half rounding', async () => {
  const d = await writeTinyFixtures(join(dir, 'legacy-half'), { dtype: 'F16', torchFormat: 'legacy' });
  const t = await importTorchPth(d.pthPath);
  assertSameWeights(t, ref, roundToF16);
  assert.equal(t.tensors.get('conv1_1.kernel')!.dtype, 'F16');
});

test('the legacy writer lays the file out as torch\'s _legacy_save does', () => {
  const bytes = Buffer.from(encodeTorchPthLegacy(ref));
  // pickle.dumps(0x1950a86a20f9469cfc6c, 2) and pickle.dumps(1001, 2), as CPython writes them
  const magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
  assert.deepEqual([...bytes.subarray(0, 15)], magic);
  assert.deepEqual([...bytes.subarray(15, 21)], [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
  assert.equal(TORCH_LEGACY_PROTOCOL, 1001);
  // The key list is sorted as strings ('0', '1', '10', '11', …) and the storages follow in that order.
  const keys = Array.from({ length: 32 }, (_, i) => String(i)).sort();
  const list = Buffer.from(PickleWriter.dumps(new PyList(keys)));
  const at = bytes.indexOf(list);
  assert.ok(at > 0);
  let off = at + list.length;
  const sizes = new Map<string, number>();
  for (const c of vgg19Convs(ref.widths)) {
    sizes.set(String(sizes.size), 9 * c.inChannels * c.outChannels); // features.N.weight
    sizes.set(String(sizes.size), c.outChannels); // features.N.bias
  }
  for (const k of keys) {
    assert.equal(bytes.readBigInt64LE(off), BigInt(sizes.get(k)!), `storage ${k}`);
    off += 8 + 4 * sizes.get(k)!;
  }
  assert.equal(off, bytes.length);
});

test('legacy storage views (view_metadata) and a nested state dict are followed', async () => {
  const od = new PyGlobal('collections', 'OrderedDict');
  const rebuild = new PyGlobal('torch._utils', '_rebuild_tensor');
  const values: number[] = [];
  const items: Array<[PyValue, PyValue]> = [];
  const views: Array<{ key: string; off: number; len: number; name: string; size: number[]; stride: number[] }> = [];
  for (const c of vgg19Convs(ref.widths)) {
    const k = ref.tensors.get(`${c.name}.kernel`)!;
    const b = ref.tensors.get(`${c.name}.bias`)!;
    const [o, i] = [c.outChannels, c.inChannels];
    const n = torchvisionIndex(c.name);
    values.push(7, 7);
    views.push({ key: `v${n}w`, off: values.length, len: k.data.length, name: `features.${n}.weight`, size: [o, i, 3, 3], stride: [1, o, 3 * i * o, i * o] });
    values.push(...k.data);
    views.push({ key: `v${n}b`, off: values.length, len: b.data.length, name: `features.${n}.bias`, size: [o], stride: [1] });
    values.push(...b.data);
  }
  for (const v of views) {
    const pid = new PyTuple(['storage', new PyGlobal('torch', 'FloatStorage'), '140234', 'cuda:0', values.length, new PyTuple([v.key, v.off, v.len])]);
    items.push([`module.${v.name}`, new PyReduce(rebuild, new PyTuple([new PyPersistent(pid), 0, new PyTuple(v.size), new PyTuple(v.stride)]))]);
  }
  const top = new PyDict([['arch', 'vgg19'], ['state_dict', new PyReduce(od, new PyTuple([]), items)]]);
  const p = join(dir, 'legacy-views.pth');
  await writeFile(p, legacyFile(top, [['140234', Float32Array.from(values)]]));
  assertSameWeights(await importTorchPth(p), ref);
});

test('legacy importer errors: truncated files, an unrelated pickle, a wrong protocol, unknown globals stay inert', async () => {
  const whole = Buffer.from(encodeTorchPthLegacy(ref));
  const list = Buffer.from(PickleWriter.dumps(new PyList(Array.from({ length: 32 }, (_, i) => String(i)).sort())));
  const dataStart = whole.indexOf(list) + list.length;
  const cuts: Array<[number, RegExp]> = [
    [40, /truncated: it ends inside the sys_info/],
    [dataStart - list.length - 100, /truncated: it ends inside the state dict pickle/],
    [dataStart - 5, /truncated: it ends inside the storage key list/],
    [dataStart + 4, /truncated: storage 1 of 32 \(0\) needs \d+ bytes/],
    [whole.length - 1, /truncated: storage 32 of 32 \(9\) needs \d+ bytes, the file has \d+/],
  ];
  for (const [n, re] of cuts) {
    const p = join(dir, `cut-${n}.pth`);
    await writeFile(p, whole.subarray(0, n));
    await assert.rejects(importTorchPth(p), isCode('BAD_FILE', re), `cut at ${n}`);
  }

  const plain = join(dir, 'plain-pickle.pth');
  await writeFile(plain, PickleWriter.dumps(new PyDict([['features.0.weight', 1]])));
  await assert.rejects(importTorchPth(plain), isCode('BAD_FILE', /a Python pickle but not a PyTorch checkpoint/));
  const version = join(dir, 'legacy-version.pth');
  await writeFile(version, legacyFile(new PyDict([]), [], { version: 1000 }));
  await assert.rejects(importTorchPth(version), isCode('BAD_FILE', /protocol version 1000, expected 1001/));
  const wrongCount = Buffer.from(whole);
  wrongCount.writeBigInt64LE(999n, dataStart);
  const wc = join(dir, 'legacy-count.pth');
  await writeFile(wc, wrongCount);
  await assert.rejects(importTorchPth(wc), isCode('BAD_FILE', /storage 0 holds 999 elements but the pickle says 216/));

  // A legacy file whose pickle calls os.system: it is never called; the result is just not a state dict.
  const evil = new PyReduce(new PyGlobal('os', 'system'), new PyTuple(['echo pwned > /dev/null']));
  const ev = join(dir, 'legacy-evil.pth');
  await writeFile(ev, legacyFile(new PyDict([['model', evil]]), []));
  await assert.rejects(importTorchPth(ev), isCode('BAD_MODEL', /legacy-evil\.pth: no VGG features .*its pickle names os\.system, outside the classes a weights file needs, so nothing of it was loaded or run/));
  // A whole pickled module (class saved as a 'module' persistent id) gives the state_dict advice.
  const cls = new PyPersistent(new PyTuple(['module', new PyGlobal('torchvision.models.vgg', 'VGG'), 'vgg.py', 'class VGG: ...']));
  const model = join(dir, 'legacy-model.pth');
  await writeFile(model, legacyFile(new PyReduce(new PyGlobal('copy_reg', '_reconstructor'), new PyTuple([cls, new PyGlobal('__builtin__', 'object'), null])), []));
  await assert.rejects(importTorchPth(model), isCode('BAD_MODEL', /pickled copy_reg\._reconstructor object; save model\.state_dict\(\)/));
});

test('an import name that is not one model folder (".", "..", a path, hidden) is refused and nothing is touched', async () => {
  const { importWeightsFile } = await import('../../../src-main/engine/models/import.ts');
  const { readdir } = await import('node:fs/promises');
  const root = join(dir, 'named-root');
  await importWeightsFile(fx.h5Path, { root, name: 'keep-me' });
  const before = (await readdir(root)).sort();
  for (const name of ['.', '..', '../escape', 'a/b', '.hidden', '']) {
    await assert.rejects(importWeightsFile(fx.h5Path, { root, name }), (e: unknown) => e instanceof StudioError && e.code === 'BAD_ARGUMENT' && /not a model name/.test(e.message), name);
  }
  assert.deepEqual((await readdir(root)).sort(), before, 'the models folder is as it was');
  await loadVgg19(join(root, 'keep-me'));
});
