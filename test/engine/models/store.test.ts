import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveVgg19, loadVgg19, listModels, modelsDir, resolveModel, MODEL_FILE, MANIFEST_FILE, type Manifest } from '../../../src-main/engine/models/store.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { CAFFE_PREPROCESSING, type Vgg19Weights } from '../../../src-main/engine/models/format.ts';
import { encodeSafetensors } from '../../../src-main/engine/tensors/safetensors.ts';
import { roundToF16 } from '../../../src-main/engine/tensors/half.ts';
import { StudioError } from '../../../src-main/errors.ts';

const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof StudioError && e.code === code && (!re || re.test(e.message));

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'store-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function assertSameWeights(a: Vgg19Weights, b: Vgg19Weights, map: (x: number) => number = (x) => x): void {
  assert.deepEqual(a.widths, b.widths);
  assert.equal(a.tensors.size, b.tensors.size);
  for (const [k, t] of b.tensors) {
    const u = a.tensors.get(k)!;
    assert.deepEqual(u.shape, t.shape, k);
    for (let i = 0; i < t.data.length; i++) if (u.data[i] !== Math.fround(map(t.data[i]))) assert.fail(`${k}[${i}]: ${u.data[i]} vs ${t.data[i]}`);
  }
}

test('save then load the tiny network: exact, with a manifest that checks out', async () => {
  await withTmp(async (root) => {
    const w = tinyVgg19(1);
    const dir = join(root, 'tiny');
    const m = await saveVgg19(dir, w);
    assert.equal(m.name, 'tiny');
    assert.equal(m.architecture, 'vgg19');
    assert.equal(m.layout, 'HWIO');
    assert.equal(m.dtype, 'F32');
    assert.deepEqual(m.widths, [8, 16, 32, 64, 64]);
    assert.deepEqual(m.preprocessing, CAFFE_PREPROCESSING);
    assert.equal(m.source, 'tiny seed 1');
    assert.ok(!Number.isNaN(Date.parse(m.created)));
    const bytes = await readFile(join(dir, MODEL_FILE));
    assert.deepEqual(m.files, [{ path: MODEL_FILE, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }]);
    assert.deepEqual(JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')), m);
    assert.deepEqual((await readdir(dir)).sort(), [MANIFEST_FILE, MODEL_FILE], 'no temporary files left');
    // the safetensors metadata names the architecture, layout and preprocessing too
    const n = Number(bytes.readBigUInt64LE(0));
    const meta = JSON.parse(bytes.subarray(8, 8 + n).toString()).__metadata__;
    assert.equal(meta.architecture, 'vgg19');
    assert.equal(meta.layout, 'HWIO');
    assert.deepEqual(JSON.parse(meta.preprocessing), CAFFE_PREPROCESSING);
    const back = await loadVgg19(dir);
    assertSameWeights(back, w);
    assert.deepEqual(back.preprocessing, w.preprocessing);
    assert.equal(back.source, w.source);
  });
});

test('F16 models load within half rounding', async () => {
  await withTmp(async (root) => {
    const w = tinyVgg19(2);
    const m = await saveVgg19(join(root, 'half'), w, { dtype: 'F16' });
    assert.equal(m.dtype, 'F16');
    assertSameWeights(await loadVgg19(join(root, 'half')), w, roundToF16);
  });
});

test('a tampered model file is CHECKSUM_MISMATCH', async () => {
  await withTmp(async (root) => {
    const dir = join(root, 'm');
    await saveVgg19(dir, tinyVgg19(1));
    const p = join(dir, MODEL_FILE);
    const bytes = await readFile(p);
    bytes[bytes.length - 5] ^= 0x40;
    await writeFile(p, bytes);
    await assert.rejects(loadVgg19(dir), isCode('CHECKSUM_MISMATCH', /sha256 [0-9a-f]{64}.*expected [0-9a-f]{64}/));
  });
});

test('a missing model is MODEL_MISSING with a hint', async () => {
  await withTmp(async (root) => {
    const hinted = (e: unknown) => isCode('MODEL_MISSING')(e) && /studio models fetch vgg19/.test((e as StudioError).hint ?? '') && /studio models tiny/.test((e as StudioError).hint ?? '');
    await assert.rejects(loadVgg19(join(root, 'nope')), hinted);
    await mkdir(join(root, 'empty'));
    await assert.rejects(loadVgg19(join(root, 'empty')), hinted);
    await saveVgg19(join(root, 'm'), tinyVgg19(1));
    await rm(join(root, 'm', MODEL_FILE));
    await assert.rejects(loadVgg19(join(root, 'm')), hinted);
  });
});

test('a wrong-shape layer is BAD_MODEL, on save and on load', async () => {
  await withTmp(async (root) => {
    const w = tinyVgg19(1);
    const k = w.tensors.get('conv3_2.kernel')!;
    w.tensors.set('conv3_2.kernel', { ...k, shape: [3, 3, 16, 32], data: new Float32Array(9 * 16 * 32) });
    await assert.rejects(saveVgg19(join(root, 'x'), w), isCode('BAD_MODEL', /conv3_2 kernel has shape \[3,3,16,32\], expected \[3,3,32,32\]/));
    const w2 = tinyVgg19(1);
    w2.tensors.delete('conv5_4.bias');
    await assert.rejects(saveVgg19(join(root, 'y'), w2), isCode('BAD_MODEL', /conv5_4 has no bias/));
    // A folder written by something else, with a correct checksum but a wrong shape inside.
    const dir = join(root, 'z');
    await mkdir(dir);
    const bytes = encodeSafetensors(w.tensors);
    await writeFile(join(dir, MODEL_FILE), bytes);
    const m: Manifest = {
      name: 'z', architecture: 'vgg19', widths: w.widths, layout: 'HWIO', preprocessing: w.preprocessing, source: 'test', dtype: 'F32',
      files: [{ path: MODEL_FILE, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }], created: new Date().toISOString(),
    };
    await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(m));
    await assert.rejects(loadVgg19(dir), isCode('BAD_MODEL', /conv3_2/));
    await writeFile(join(dir, MANIFEST_FILE), JSON.stringify({ ...m, widths: [8, 16] }));
    await assert.rejects(loadVgg19(dir), isCode('BAD_MODEL', /5 positive block widths/));
    await writeFile(join(dir, MANIFEST_FILE), '{ not json');
    await assert.rejects(loadVgg19(dir), isCode('BAD_MODEL', /not valid JSON/));
  });
});

test('listModels lists model folders only; modelsDir and resolveModel follow the environment', async () => {
  await withTmp(async (root) => {
    await saveVgg19(join(root, 'b-model'), tinyVgg19(1));
    await saveVgg19(join(root, 'a-model'), tinyVgg19(2), { dtype: 'F16' });
    await mkdir(join(root, 'downloads'));
    const list = await listModels(root);
    assert.deepEqual(list.map((m) => [m.name, m.dtype]), [['a-model', 'F16'], ['b-model', 'F32']]);
    assert.deepEqual(await listModels(join(root, 'does-not-exist')), []);

    const saved = { ...process.env };
    try {
      process.env.STUDIO_MODELS_DIR = root;
      assert.equal(modelsDir(), root);
      assert.equal(resolveModel(), join(root, 'vgg19'));
      assert.equal(resolveModel('a-model'), join(root, 'a-model'));
      assert.equal(resolveModel('./some/dir'), join(process.cwd(), 'some', 'dir'));
      assert.equal(resolveModel(join(root, 'b-model')), join(root, 'b-model'));
      delete process.env.STUDIO_MODELS_DIR;
      if (process.platform === 'linux') {
        process.env.XDG_DATA_HOME = '/xdg/data';
        assert.equal(modelsDir(), '/xdg/data/style-studio/models');
        delete process.env.XDG_DATA_HOME;
        assert.match(modelsDir(), /\.local\/share\/style-studio\/models$/);
      }
    } finally {
      for (const k of ['STUDIO_MODELS_DIR', 'XDG_DATA_HOME']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});
