/**
 * FastPhotoStyle's photo_wct.pth: fixtures in the real layout (PhotoWCT.state_dict(): e1, d1, … e4, d4 with
 * their exact key names, OIHW, both torch.save formats) at tiny widths, imported and checked against a
 * direct computation of FastPhotoStyle's e_L and d_L in plain tfjs ops.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { foldConv0, importPhotoWct, importPhotoWctInto, isPhotoWctPth, PHOTOWCT_DEPTH } from '../../../src-main/engine/models/import-photowct.ts';
import { encodeTorchPth, encodeTorchStateDict, tinyVgg19, type TorchTensor } from '../../../src-main/engine/models/tiny.ts';
import { loadVgg19, readManifest, saveVgg19, MODEL_FILE, checkVgg19Tensors } from '../../../src-main/engine/models/store.ts';
import { encoderHash, loadDecoder } from '../../../src-main/engine/models/decoders.ts';
import { CAFFE_PREPROCESSING, TORCH_PREPROCESSING, type Vgg19Weights } from '../../../src-main/engine/models/format.ts';
import { preprocess, Vgg19 } from '../../../src-main/engine/models/vgg19-net.ts';
import { decoderConvs, disposeSwitches, encoderLayers, LEVELS, maxUnpool, PhotoAutoencoder, type Switches } from '../../../src-main/engine/photo/autoencoder.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { StudioError } from '../../../src-main/errors.ts';
import { testBackends } from '../../backends.ts';
import { decLayers, encLayers, photoWctStateDict, WIDTHS, type Named } from './photowct-fixture.ts';

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof StudioError && e.code === code && (!re || re.test(`${e.message} ${e.hint ?? ''}`));

const sd = photoWctStateDict(1);
const byKey = new Map(sd);
let dir = '';
let zipPath = '';
let legacyPath = '';
let modelDir = '';
// Awaited before anything is registered: a top-level await between registrations lets the root's
// after() hook run before the later tests (it removed the fixture folder under them on a slow start).
const backends = await testBackends();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'photowct-'));
  zipPath = join(dir, 'photo_wct.pth');
  legacyPath = join(dir, 'photo_wct_legacy.pth');
  await writeFile(zipPath, encodeTorchStateDict(sd));
  await writeFile(legacyPath, encodeTorchStateDict(sd, { format: 'legacy', python2: true }));
  modelDir = join(dir, 'models', 'photowct');
  await importPhotoWctInto(zipPath, modelDir);
});
after(() => rm(dir, { recursive: true, force: true }));

/** HWIO kernel tensor from an OIHW state-dict tensor, by tf.transpose (independent of oihwToHwio). */
const hwio = (t: TorchTensor) => tf.transpose(tf.tensor4d(t.data, t.shape as [number, number, number, number]), [2, 3, 1, 0]) as tf.Tensor4D;

function refConv(x: tf.Tensor4D, key: string, relu: boolean): tf.Tensor4D {
  const w = byKey.get(`${key}.weight`)!;
  const y = tf.add(tf.conv2d(tf.mirrorPad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect'), hwio(w), 1, 'valid'), tf.tensor1d(byKey.get(`${key}.bias`)!.data)) as tf.Tensor4D;
  return relu ? tf.relu(y) : y;
}

/** FastPhotoStyle's e_L on RGB 0–255 (it takes ToTensor()'s 0–1): conv0, then its own weights. */
function refEncode(level: number, rgb255: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    let x = tf.add(tf.conv2d(tf.div(rgb255, 255) as tf.Tensor4D, hwio(byKey.get(`e${level}.conv0.weight`)!), 1, 'valid'),
      tf.tensor1d(byKey.get(`e${level}.conv0.bias`)!.data)) as tf.Tensor4D;
    for (const l of encLayers(level)) x = l === 'pool' ? tf.maxPool(x, 2, 2, 'valid') : refConv(x, `e${level}.${l}`, true);
    return x;
  });
}

/** FastPhotoStyle's d_L (output RGB 0–1), unpooling with the given switches (outermost first). */
function refDecode(level: number, f: tf.Tensor4D, switches: Switches[]): tf.Tensor4D {
  return tf.tidy(() => {
    let x = f;
    for (const l of decLayers(level)) {
      x = l.startsWith('unpool') ? maxUnpool(x, switches[Number(l.slice(6)) - 1]) : refConv(x, `d${level}.${l}`, l !== 'conv1_1');
    }
    return x;
  });
}

async function relErr(a: tf.Tensor, b: tf.Tensor): Promise<{ rel: number; scale: number; nonzero: number }> {
  assert.deepEqual(a.shape, b.shape);
  const [x, y] = [await a.data(), await b.data()];
  let diff = 0, scale = 0, nonzero = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
    if (y[i] !== 0) nonzero++;
  }
  return { rel: diff / scale, scale, nonzero: nonzero / y.length };
}

function randomImage(h: number, w: number, seed: number): tf.Tensor4D {
  const r = mulberry32(seed);
  return tf.tensor4d(Float32Array.from({ length: h * w * 3 }, () => 255 * r()), [1, h, w, 3]);
}

test('the fixture has PhotoWCT.state_dict()\'s keys in its order, and is recognised by its keys', async () => {
  const keys = sd.map(([k]) => k);
  assert.deepEqual(keys.slice(0, 6), ['e1.conv0.weight', 'e1.conv0.bias', 'e1.conv1_1.weight', 'e1.conv1_1.bias', 'd1.conv1_1.weight', 'd1.conv1_1.bias']);
  assert.deepEqual(keys.filter((k) => k.startsWith('d4.') && k.endsWith('.weight')).map((k) => k.slice(3, -7)),
    ['conv4_1', 'conv3_4', 'conv3_3', 'conv3_2', 'conv3_1', 'conv2_2', 'conv2_1', 'conv1_2', 'conv1_1']);
  assert.equal(await isPhotoWctPth(zipPath), true);
  assert.equal(await isPhotoWctPth(legacyPath), true);
  const vgg = join(dir, 'vgg19.pth');
  await writeFile(vgg, encodeTorchPth(tinyVgg19(1)));
  assert.equal(await isPhotoWctPth(vgg), false);
});

test('zip and legacy (Python 2, torch 0.3) files import to the same weights', async () => {
  const a = await importPhotoWct(zipPath);
  const b = await importPhotoWct(legacyPath);
  assert.deepEqual(a.encoder.widths, [4, 6, 8, 10, 10]);
  assert.equal(a.encoder.depth, 'relu4_1');
  assert.deepEqual(a.encoder.preprocessing, CAFFE_PREPROCESSING);
  assert.deepEqual([...a.encoder.tensors.keys()].sort(), [...b.encoder.tensors.keys()].sort());
  for (const [k, t] of a.encoder.tensors) assert.deepEqual(Array.from(t.data), Array.from(b.encoder.tensors.get(k)!.data), k);
  assert.equal(a.encoder.tensors.has('conv4_2.kernel'), false);
  for (const level of LEVELS) {
    for (const [k, t] of a.decoders.get(level)!) assert.deepEqual(Array.from(t.kernel), Array.from(b.decoders.get(level)!.get(k)!.kernel), `${level} ${k}`);
  }
});

test('with the published (Caffe) conv0 the fold leaves conv1_1 as it was; any conv0 folds by the algebra', () => {
  const caffe = photoWctStateDict(2, { a: [0, 0, 255, 0, 255, 0, 255, 0, 0], c: [-103.939, -116.779, -123.68] });
  const m = new Map(caffe);
  const w = m.get('e4.conv1_1.weight')!, b = m.get('e4.conv1_1.bias')!;
  const o = WIDTHS[0];
  const f = foldConv0(w.data, b.data, o, m.get('e4.conv0.weight')!.data, m.get('e4.conv0.bias')!.data, CAFFE_PREPROCESSING);
  for (let oo = 0; oo < o; oo++) {
    assert.ok(Math.abs(f.bias[oo] - b.data[oo]) < 1e-4, `bias ${oo}: ${f.bias[oo]} vs ${b.data[oo]}`);
    for (let j = 0; j < 3; j++) for (let h = 0; h < 3; h++) for (let x = 0; x < 3; x++) {
      const [got, want] = [f.kernel[((h * 3 + x) * 3 + j) * o + oo], w.data[((oo * 3 + j) * 3 + h) * 3 + x]];
      assert.ok(Math.abs(got - want) < 1e-6, `kernel ${oo},${j},${h},${x}: ${got} vs ${want}`);
    }
  }
});

for (const backend of backends) describe(backend, () => {
  before(() => initBackend(backend));

  test(`[${backend}] the imported model (through the model folder) reproduces FastPhotoStyle's e_L and d_L`, async () => {
    const start = tf.memory().numTensors;
    const enc = await loadVgg19(modelDir);
    const hash = await encoderHash(modelDir);
    const x = randomImage(21, 26, 7); // odd sizes: pools drop a row/column, unpools put it back as zeros
    for (const level of LEVELS) {
      const dec = (await loadDecoder(join(modelDir, 'decoders'), level, hash)).weights;
      const ae = new PhotoAutoencoder(level, { widths: enc.widths, tensors: enc.tensors, preprocess: (t) => preprocess(t, enc.preprocessing) }, dec);
      const ours = ae.encode(x);
      const ref = refEncode(level, x);
      const e = await relErr(ours.features, ref);
      assert.ok(e.rel < 1e-4, `level ${level} features: relative error ${e.rel}`);
      assert.ok(e.nonzero > 0.2 && e.scale > 0, `level ${level}: the features are not trivial (${e.nonzero} nonzero)`);
      // Decoding: same features and switches into both; ours is on 0–255, theirs on 0–1.
      const out = ae.decode(ours.features, ours.switches);
      const refOut = tf.tidy(() => tf.mul(refDecode(level, ours.features, ours.switches), 255));
      const d = await relErr(out, refOut);
      assert.ok(d.rel < 1e-4, `level ${level} decoder: relative error ${d.rel}`);
      assert.deepEqual(out.shape, [1, 21, 26, 3]);
      tf.dispose([ours.features, ref, out, refOut]);
      disposeSwitches(ours.switches);
      ae.dispose();
    }
    x.dispose();
    assert.equal(tf.memory().numTensors, start, 'no tensor leaks');
  });

  test(`[${backend}] a partial-depth model refuses features past relu4_1 with a clear error, and gives those before it`, async () => {
    const start = tf.memory().numTensors;
    const net = new Vgg19(await loadVgg19(modelDir));
    const x = randomImage(16, 16, 3);
    try {
      for (const deeper of [['relu5_1'], ['relu1_1', 'relu4_2'], ['pool4']]) {
        assert.throws(() => net.features(x, deeper), isCode('BAD_ARGUMENT', new RegExp(`${deeper.at(-1)} is deeper than this model.*only up to relu4_1.*photo_wct\\.pth`)));
      }
      const f = net.features(x, ['relu1_1', 'pool3', 'relu4_1'], { padding: 'reflect' });
      // With reflection padding the Vgg19 path is FastPhotoStyle's e4 too.
      const ref = refEncode(4, x);
      const { rel } = await relErr(f.get('relu4_1')!, ref);
      assert.ok(rel < 1e-4, `relu4_1 by Vgg19 with reflection padding: relative error ${rel}`);
      tf.dispose([...f.values(), ref]);
    } finally {
      x.dispose();
      net.dispose();
    }
    assert.equal(tf.memory().numTensors, start, 'no tensor leaks');
  });
});

test('the model folder: manifest depth relu4_1, decoders recording the encoder\'s hash', async () => {
  const m = await readManifest(modelDir);
  assert.equal(m.depth, PHOTOWCT_DEPTH);
  assert.equal(m.source, 'FastPhotoStyle photo_wct (photo_wct.pth)');
  const hash = await encoderHash(modelDir);
  assert.equal(hash, m.files.find((f) => f.path === MODEL_FILE)!.sha256);
  const imported = await importPhotoWct(zipPath);
  for (const level of LEVELS) {
    const { weights, meta } = await loadDecoder(join(modelDir, 'decoders'), level, hash);
    assert.equal(meta.encoderSha256, hash);
    for (const [k, t] of imported.decoders.get(level)!) assert.deepEqual(Array.from(weights.get(k)!.bias), Array.from(t.bias), k);
    await assert.rejects(loadDecoder(join(modelDir, 'decoders'), level, 'f'.repeat(64)), isCode('BAD_MODEL', /another encoder/));
  }
  // A whole network's checks are unchanged: without a depth, conv4_2 … conv5_4 are required.
  assert.throws(() => checkVgg19Tensors(imported.encoder.tensors, imported.encoder.widths, 'x'), isCode('BAD_MODEL', /conv4_2 has no kernel/));
  const partial: Vgg19Weights = { ...imported.encoder, depth: 'relu3_1' };
  const m3 = await saveVgg19(join(dir, 'models', 'to3'), partial);
  assert.equal(m3.depth, 'relu3_1');
  assert.equal((await loadVgg19(join(dir, 'models', 'to3'))).tensors.has('conv3_2.kernel'), false, 'only the convs up to the depth are stored');
  await assert.rejects(saveVgg19(join(dir, 'models', 'bad'), { ...imported.encoder, depth: 'relu9_1' }), isCode('BAD_MODEL', /bad depth "relu9_1"/));
  // A whole model's manifest still has no depth.
  const whole = await saveVgg19(join(dir, 'models', 'tiny'), tinyVgg19(1));
  assert.equal('depth' in whole, false);
});

test('clear errors: a missing key, a wrong shape, encoders that differ, a file that is not photo_wct', async () => {
  const write = async (name: string, named: Named) => {
    const p = join(dir, name);
    await writeFile(p, encodeTorchStateDict(named));
    return p;
  };
  const missing = await write('missing.pth', sd.filter(([k]) => k !== 'd3.conv2_2.weight'));
  await assert.rejects(importPhotoWct(missing), isCode('BAD_MODEL', /missing\.pth: d3\.conv2_2\.weight is missing \(level-3 decoder\)/));
  const noE4 = await write('no-e4.pth', sd.filter(([k]) => k !== 'e4.conv0.weight'));
  await assert.rejects(importPhotoWct(noE4), isCode('BAD_MODEL', /e4\.conv0\.weight is missing: not FastPhotoStyle's photo_wct\.pth/));
  const shape = await write('shape.pth', sd.map(([k, t]): [string, TorchTensor] => (k === 'd2.conv1_2.weight' ? [k, { shape: [4, 4, 1, 9], data: t.data }] : [k, t])));
  await assert.rejects(importPhotoWct(shape), isCode('BAD_MODEL', /d2\.conv1_2\.weight \(level-2 decoder\) has shape \[4,4,1,9\], expected \[4,4,3,3\]/));
  const widths = await write('widths.pth', sd.map(([k, t]): [string, TorchTensor] => (k === 'e2.conv2_1.bias' ? [k, { shape: [5], data: t.data.subarray(0, 5) }] : [k, t])));
  await assert.rejects(importPhotoWct(widths), isCode('BAD_MODEL', /e2\.conv2_1\.bias .*has shape \[5\], expected \[6\]/));
  const differ = await write('differ.pth', sd.map(([k, t]): [string, TorchTensor] => (k === 'e2.conv1_2.weight' ? [k, { shape: t.shape, data: t.data.map((v, i) => (i === 5 ? v + 0.01 : v)) }] : [k, t])));
  await assert.rejects(importPhotoWct(differ), isCode('BAD_MODEL', /e2\.conv1_2\.weight differs from e4's/));
  const vgg = join(dir, 'tiny_vgg19.pth');
  await writeFile(vgg, encodeTorchPth(tinyVgg19(1)));
  await assert.rejects(importPhotoWct(vgg), isCode('BAD_MODEL', /not FastPhotoStyle's photo_wct\.pth/));
  await assert.rejects(importPhotoWct(join(dir, 'nope.pth')), (e: unknown) => e instanceof StudioError && e.code === 'FILE_NOT_FOUND');
});

test('a torchvision-preprocessed pipeline folds to the same network (the fold accounts for our preprocess)', async () => {
  await initBackend('cpu');
  const m = new Map(sd);
  const w = m.get('e4.conv1_1.weight')!, b = m.get('e4.conv1_1.bias')!;
  const a = m.get('e4.conv0.weight')!.data, c = m.get('e4.conv0.bias')!.data;
  const x = randomImage(9, 11, 5);
  const o = WIDTHS[0];
  const outs = [CAFFE_PREPROCESSING, TORCH_PREPROCESSING].map((p) => {
    const f = foldConv0(w.data, b.data, o, a, c, p);
    return tf.tidy(() => tf.add(tf.conv2d(tf.mirrorPad(preprocess(x, p), [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect'), tf.tensor4d(f.kernel, [3, 3, 3, o]), 1, 'valid'), tf.tensor1d(f.bias)));
  });
  const ref = tf.tidy(() => {
    const y = tf.add(tf.conv2d(tf.div(x, 255) as tf.Tensor4D, hwio(m.get('e4.conv0.weight')!), 1, 'valid'), tf.tensor1d(c)) as tf.Tensor4D;
    return tf.add(tf.conv2d(tf.mirrorPad(y, [[0, 0], [1, 1], [1, 1], [0, 0]], 'reflect'), hwio(w), 1, 'valid'), tf.tensor1d(b.data));
  });
  // (assert.ok always gets a message here: without one, node re-reads the tsx source to describe the failure and can stall.)
  for (const [i, out] of outs.entries()) {
    const { rel } = await relErr(out, ref);
    assert.ok(rel < 1e-5, `${i ? 'torchvision' : 'Caffe'} preprocessing: relative error ${rel}`);
  }
  tf.dispose([...outs, ref, x]);
});

test('CLI: models import detects photo_wct.pth, stylize --method photo uses it, Gatys is refused naming the depth', async () => {
  const models = join(dir, 'cli-models');
  const studio = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
    execFile(process.execPath, [resolve('bin/studio.mjs'), ...args], { env: { ...process.env, STUDIO_MODELS_DIR: models, STUDIO_BACKEND: 'cpu' } },
      (err, stdout, stderr) => res({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
  const imp = await studio(['models', 'import', legacyPath]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /photowct/);
  for (const f of ['model.safetensors', 'manifest.json', ...LEVELS.map((l) => `decoders/level${l}.safetensors`)]) await stat(join(models, 'photowct', f));
  assert.equal(JSON.parse(await readFile(join(models, 'photowct', 'manifest.json'), 'utf8')).depth, 'relu4_1');
  const content = resolve('assets/samples/content-coffee.jpg');
  const style = resolve('assets/samples/photo-Dune.jpg');
  const photo = await studio(['stylize', '--method', 'photo', '--model', 'photowct', '--content', content, '--style', style, '--out', join(dir, 'p.png'), '--size', '40']);
  assert.equal(photo.code, 0, photo.stderr);
  await stat(join(dir, 'p.png'));
  const gatys = await studio(['stylize', '--method', 'gatys', '--model', 'photowct', '--content', content, '--style', style, '--out', join(dir, 'g.png'), '--size', '32', '--iters', '1']);
  assert.equal(gatys.code, 2, gatys.stdout + gatys.stderr);
  assert.match(gatys.stderr, /deeper than this model.*only up to relu4_1/);
});

// Keeps the decoder table honest for this fixture: our decB_I ↔ FastPhotoStyle's dL.convB_I.
test('decoderConvs and FastPhotoStyle\'s decoders agree on names, order and unpooling', () => {
  for (const level of LEVELS) {
    const ours = decoderConvs(level, WIDTHS).flatMap((d) => [`conv${d.name.slice(3)}`, ...(d.unpoolAfter ? ['unpool'] : [])]);
    assert.deepEqual(ours, decLayers(level).map((l) => (l.startsWith('unpool') ? 'unpool' : l)));
    assert.deepEqual(encoderLayers(level, WIDTHS).map((l) => (l.kind === 'conv' ? l.conv.name : 'pool')), encLayers(level));
  }
});
