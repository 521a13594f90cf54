/**
 * FastPhotoStyle's Google Drive models.zip (its Torch7 networks, converted as converter.py does),
 * against photowct_small_models.zip: written by scripts/oracles/t7_models.py's own Torch7 writer with the
 * same weights as photo_wct_small.pth (photowct_oracle.py), so the two routes must install the same model.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { StudioError } from '../../../src-main/errors.ts';
import { fetchPhotoWct } from '../../../src-main/engine/models/fetch.ts';
import { importWeightsFile } from '../../../src-main/engine/models/import.ts';
import { T7_FILES } from '../../../src-main/engine/models/import-photowct-t7.ts';
import { encoderHash, loadDecoder } from '../../../src-main/engine/models/decoders.ts';
import { loadVgg19, readManifest } from '../../../src-main/engine/models/store.ts';
import { readTorch7, T7Object, T7Tensor, t7Modules } from '../../../src-main/engine/models/torch7.ts';
import { closeLoopback, listenLoopback } from '../../loopback.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'parity');
const ZIP = readFileSync(join(FIXTURES, 'photowct_small_models.zip'));
const ENTRIES = unzipSync(ZIP);
const entry = (f: string) => ENTRIES[`models/${f}`];
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof StudioError && e.code === code && (!re || re.test(e.message));

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'photowct-t7-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('the Torch7 reader: nn.Sequential modules, parameters as views into one shared storage, CUDA and pre-versioning files', () => {
  const e4 = t7Modules(readTorch7(entry('vgg_normalised_conv4_1_mask.t7'), 'e4'), 'e4');
  assert.equal(e4.length, 31); // conv0, 9 × (pad, conv, relu), 3 pools
  assert.deepEqual([0, 1, 2, 3, 7].map((i) => e4[i].className), ['nn.SpatialConvolution', 'nn.SpatialReflectionPadding', 'nn.SpatialConvolution', 'nn.ReLU', 'nn.SpatialMaxPooling']);
  const w0 = e4[0].get('weight') as T7Tensor;
  const w2 = e4[2].get('weight') as T7Tensor;
  const b2 = e4[2].get('bias') as T7Tensor;
  assert.equal(w0.storage, w2.storage, 'one storage object, referenced again');
  assert.deepEqual([w0.offset, w2.offset, b2.offset], [0, 12, 12 + 4 * 3 * 9], 'getParameters() layout: w, b, w, b …');
  assert.deepEqual(w2.shape, [4, 3, 3, 3]);
  assert.equal(e4[2].get('nOutputPlane'), 4);
  assert.equal(e4[2].version, 1);
  const d2 = t7Modules(readTorch7(entry('feature_invertor_conv2_1_mask.t7'), 'd2'), 'd2');
  assert.equal((d2[1].get('weight') as T7Tensor).className, 'torch.CudaTensor');
  const unpool = d2.find((m) => m.className === 'nn.SpatialMaxUnpooling')!;
  assert.ok(unpool.get('pooling') instanceof T7Object && (unpool.get('pooling') as T7Object).className === 'nn.SpatialMaxPooling');
  const d1 = t7Modules(readTorch7(entry('feature_invertor_conv1_1_mask.t7'), 'd1'), 'd1');
  assert.deepEqual(d1.map((m) => [m.className, m.version]), [['nn.SpatialReflectionPadding', 0], ['nn.SpatialConvolution', 0]]);
});

test('models.zip installs the same model as photo_wct.pth: every encoder and decoder tensor identical', async () => {
  const viaT7 = await importWeightsFile(join(FIXTURES, 'photowct_small_models.zip'), { root: join(dir, 'a') });
  const viaPth = await importWeightsFile(join(FIXTURES, 'photo_wct_small.pth'), { root: join(dir, 'b') });
  assert.equal(viaT7.kind, 'photowct');
  const [a, b] = await Promise.all([loadVgg19(viaT7.dir), loadVgg19(viaPth.dir)]);
  assert.deepEqual(a.widths, b.widths);
  assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  for (const [k, t] of b.tensors) assert.deepEqual(a.tensors.get(k)!.data, t.data, k);
  // (The files differ only in the source they name; each decoder is bound to its own encoder's hash.)
  const [ha, hb] = await Promise.all([encoderHash(viaT7.dir), encoderHash(viaPth.dir)]);
  for (const level of [1, 2, 3, 4] as const) {
    const [da, db] = await Promise.all([loadDecoder(join(viaT7.dir, 'decoders'), level, ha), loadDecoder(join(viaPth.dir, 'decoders'), level, hb)]);
    assert.deepEqual([...da.weights.keys()], [...db.weights.keys()]);
    for (const [k, w] of db.weights) {
      assert.deepEqual(da.weights.get(k)!.kernel, w.kernel, `level ${level} ${k}`);
      assert.deepEqual(da.weights.get(k)!.bias, w.bias, `level ${level} ${k}`);
    }
  }
});

test('fetch photowct: Drive serves models.zip; converted, installed, each Torch7 file recorded with its sha256', async () => {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-zip-compressed', 'content-length': ZIP.length });
    res.end(ZIP);
  });
  const base = await listenLoopback(server);
  try {
    const root = join(dir, 'fetched');
    const url = `${base}/uc?export=download&id=1ENgQm9TgabE1R99zhNf5q6meBvX6WFuq`;
    const modelDir = await fetchPhotoWct({ root, url, retryDelayMs: 5 });
    const m = await readManifest(modelDir);
    assert.equal(m.download?.sha256, sha(ZIP));
    assert.equal(m.download?.extracted, undefined);
    assert.deepEqual(m.download?.torch7?.map((r) => r.file).sort(), T7_FILES.map((f) => `models/${f}`).sort());
    for (const r of m.download!.torch7!) assert.deepEqual([r.bytes, r.sha256], [ENTRIES[r.file].length, sha(ENTRIES[r.file])], r.file);
    assert.equal(m.licence?.name, 'CC BY-NC-SA 4.0');
    assert.deepEqual(await readdir(join(root, 'downloads')), []);
  } finally {
    await closeLoopback(server);
  }
});

test('a damaged models.zip is a BAD_MODEL naming the file, and installs nothing', async () => {
  const rezip = (change: Record<string, Uint8Array | null>) => {
    const files: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(ENTRIES)) if (!(k in change)) files[k] = v;
    for (const [k, v] of Object.entries(change)) if (v) files[k] = v;
    return Buffer.from(zipSync(files));
  };
  const e3 = entry('vgg_normalised_conv3_1_mask.t7');
  const cases: Array<[string, Buffer, RegExp]> = [
    ['truncated', rezip({ 'models/vgg_normalised_conv3_1_mask.t7': e3.subarray(0, e3.length - 100) }), /vgg_normalised_conv3_1_mask\.t7: not a readable Torch7 file \(.* at byte \d+\)/],
    ['missing', rezip({ 'models/feature_invertor_conv3_1_mask.t7': null }), /feature_invertor_conv3_1_mask\.t7 missing/],
    // A decoder where an encoder belongs: not the network converter.py expects.
    ['swapped', rezip({ 'models/vgg_normalised_conv2_1_mask.t7': entry('feature_invertor_conv2_1_mask.t7') }), /vgg_normalised_conv2_1_mask\.t7 .*(convolutions|module)/],
    ['not torch', rezip({ 'models/vgg_normalised_conv1_1_mask.t7': new Uint8Array([3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]) }), /vgg_normalised_conv1_1_mask\.t7/],
  ];
  for (const [what, bytes, re] of cases) {
    const file = join(dir, `${what}.zip`);
    await writeFile(file, bytes);
    await assert.rejects(importWeightsFile(file, { root: join(dir, 'bad') }), isCode('BAD_MODEL', re), what);
  }
  assert.deepEqual(await readdir(join(dir, 'bad')).catch(() => []), [], 'nothing installed, no temporary folder left');
});

test('corrupted bytes anywhere in a Torch7 file: a BAD_MODEL or a parse, never a crash from inside', () => {
  const d3 = entry('feature_invertor_conv3_1_mask.t7');
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  let refused = 0;
  for (let k = 0; k < 400; k++) {
    const bytes = Uint8Array.from(d3);
    for (let j = 0; j < 1 + (k % 4); j++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    try {
      readTorch7(bytes, 'x.t7');
    } catch (e) {
      assert.ok(e instanceof StudioError && e.code === 'BAD_MODEL' && /^x\.t7: /.test(e.message), String(e));
      refused++;
    }
  }
  assert.ok(refused > 20, `${refused} of 400 refused`);
});
