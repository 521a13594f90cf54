import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile, copyFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { writeTinyFixtures } from '../../src-main/engine/models/tiny.ts';
import { decodeNpy } from '../../src-main/engine/tensors/npy.ts';

const samples = path.resolve('assets/samples');
const content = path.join(samples, 'content-coffee.jpg');
const style = path.join(samples, 'art-the_scream.jpg');
let dir = '';
let model = '';

function studio(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, STUDIO_MODELS_DIR: path.join(dir, 'models'), ...env } },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}
const stylize = (c: string, out: string, extra: string[] = []) =>
  studio(['stylize', '--method', 'gatys', '--content', c, '--style', style, '--out', out, '--model', model, '--size', '48', '--iters', '3', ...extra]);

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-cli-'));
  model = (await writeTinyFixtures(path.join(dir, 'tiny'))).modelDir;
});
after(() => rm(dir, { recursive: true, force: true }));

test('stylize writes the result, keeps EXIF and writes a report; exit 0', async () => {
  const tagged = path.join(dir, 'tagged.jpg');
  await sharp(content).withExif({ IFD0: { Make: 'StudioCam', Model: 'X1' } }).jpeg().toFile(tagged);
  const out = path.join(dir, 'out.jpg');
  const report = path.join(dir, 'r.json');
  const r = await stylize(tagged, out, ['--report', report, '--seed', '3']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*out\.jpg \(48×32, 3 iterations/);
  const meta = await sharp(out).metadata();
  assert.equal(meta.format, 'jpeg');
  assert.equal(meta.width, 48);
  assert.ok(meta.exif?.includes('StudioCam'), 'EXIF kept');
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.equal(rep.iterations.length, 3);
  for (const k of ['content', 'style', 'tv', 'total']) assert.equal(typeof rep.iterations[0][k], 'number');
  assert.equal(rep.params.seed, 3);
  assert.ok(rep.backend.name && rep.stages && rep.peakMemory.rssBytes > 0);
});

test('stylize --method photo runs the PhotoWCT cascade (with label maps) and reports each level', async () => {
  const out = path.join(dir, 'photo.png');
  const report = path.join(dir, 'photo.json');
  const photoStyle = path.join(samples, 'photo-Dune.jpg');
  const labels = path.join(dir, 'labels.png');
  // Two regions: the left and right halves, of each picture (label maps may have any resolution).
  const half = (w: number, h: number) => sharp(Buffer.from(Array.from({ length: w * h }, (_, i) => ((i % w) < w / 2 ? 0 : 255))), { raw: { width: w, height: h, channels: 1 } }).png();
  await half(90, 60).toFile(labels);
  const styleLabels = path.join(dir, 'style-labels.png');
  await half(80, 50).toFile(styleLabels);
  const r = await studio(['stylize', '--method', 'photo', '--content', content, '--style', photoStyle, '--out', out, '--model', model,
    '--size', '96', '--report', report, '--content-labels', labels, '--style-labels', styleLabels]);
  assert.equal(r.code, 0, r.stderr);
  // Computed at 96 px, written at the photo's own size (the default --output-size full).
  const meta = await sharp(out).metadata();
  assert.equal(meta.width, 512);
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.deepEqual([rep.working.width, rep.output.width], [96, 512]);
  assert.ok(rep.fullResolution.stages.applyMs >= 0 && rep.fullResolution.fit.radius >= 1);
  assert.match(r.stdout, /full resolution: the look at 96×64 carried to 512×341/);
  assert.deepEqual(rep.levels.map((l: { level: number }) => l.level), [4, 3, 2, 1]);
  for (const l of rep.levels) assert.ok(typeof l.covError === 'number' && l.ms >= 0 && Array.isArray(l.regions));
  // The exact smoothing ran by default, to its tolerance, and says so.
  assert.match(r.stdout, /smoothing: exact \(matting, α = 0\.9999, cpu solver, WebAssembly kernels\), \d+ iterations, residual/);
  assert.equal(rep.smoothing.mode, 'exact');
  assert.ok(rep.smoothing.converged && rep.smoothing.iterations > 0 && rep.smoothing.residual <= 1e-7);
  assert.ok(rep.stages.wctMs > 0 && rep.stages.smoothMs > 0);
  // A label map of another picture's shape, and a missing decoder, are clear errors.
  const square = path.join(dir, 'square.png');
  await half(50, 50).toFile(square);
  const bad = await studio(['stylize', '--method', 'photo', '--content', content, '--style', photoStyle, '--out', path.join(dir, 'p2.png'), '--model', model, '--size', '64', '--content-labels', square, '--style-labels', styleLabels]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /content label map .*square\.png is 50×50, which does not have the shape of its photo/);
  const textMap = path.join(dir, 'labels.txt');
  await writeFile(textMap, 'sky: 0, sea: 255');
  const notImage = await studio(['stylize', '--method', 'photo', '--content', content, '--style', photoStyle, '--out', path.join(dir, 'p4.png'), '--model', model, '--size', '64', '--content-labels', textMap, '--style-labels', styleLabels]);
  assert.equal(notImage.code, 2);
  assert.match(notImage.stderr, /labels\.txt/);
  const oneMap = await studio(['stylize', '--method', 'photo', '--content', content, '--style', photoStyle, '--out', path.join(dir, 'p5.png'), '--model', model, '--size', '64', '--content-labels', labels]);
  assert.equal(oneMap.code, 2);
  assert.match(oneMap.stderr, /label maps come in pairs/);
  const noDec = await studio(['stylize', '--method', 'photo', '--content', content, '--style', photoStyle, '--out', path.join(dir, 'p3.png'), '--model', model, '--size', '64', '--decoders', path.join(dir, 'nothing')]);
  assert.equal(noDec.code, 2);
  assert.match(noDec.stderr, /no decoder for level \d/);
});

test('smooth: exact and fast modes on a stylised image, guided by its photo at another resolution', async () => {
  // A "stylised" result at 80 px of a photo given at its full 400 px: the photo is resized to match.
  const tagged = path.join(dir, 'smooth-content.jpg');
  await sharp(content).withExif({ IFD0: { Make: 'StudioCam' } }).jpeg().toFile(tagged);
  const stylizedFile = path.join(dir, 'smooth-stylized.png');
  await sharp(content).resize(80).modulate({ hue: 120, saturation: 1.4 }).linear(1.1, 10).png().toFile(stylizedFile);
  const exactOut = path.join(dir, 'smoothed.png');
  const report = path.join(dir, 'smooth.json');
  const r = await studio(['smooth', '--content', tagged, '--stylized', stylizedFile, '--out', exactOut, '--report', report, '--output-size', 'working']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*smoothed\.png \(80×53,/);
  assert.match(r.stdout, /smoothing: exact .* \d+ iterations, residual \d\.\d+e-\d+/);
  assert.match(r.stderr, /smoothing \(exact\) iter \d+ /, 'progress counts the solver\'s iterations');
  assert.doesNotMatch(r.stdout + r.stderr, /undefined|NaN/);
  const meta = await sharp(exactOut).metadata();
  assert.equal(meta.width, 80);
  assert.ok(meta.exif?.includes('StudioCam'), 'the content photo\'s EXIF is kept');
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.equal(rep.smoothing.mode, 'exact');
  assert.ok(rep.smoothing.converged && rep.smoothing.residual <= 1e-7);
  // The file equals the engine's smooth() on the same decoded inputs (8-bit, within rounding).
  const { readImage } = await import('../../src-main/io/images.ts');
  const { smooth } = await import('../../src-main/engine/photo/smooth.ts');
  const y = await readImage(stylizedFile);
  const c = await readImage(tagged, { size: { width: y.width, height: y.height } });
  const want = (await smooth(c, y)).image.data;
  const got = await sharp(exactOut).raw().toBuffer();
  let worst = 0, changed = 0;
  for (let k = 0; k < want.length; k++) {
    worst = Math.max(worst, Math.abs(got[k] - Math.round(want[k] * 255)));
    if (Math.abs(got[k] - Math.round(y.data[k] * 255)) > 2) changed++;
  }
  assert.ok(worst <= 1, `CLI result within one 8-bit level of smooth() (worst ${worst})`);
  assert.ok(changed > want.length / 20, 'smoothing changed the stylised image');

  const fastOut = path.join(dir, 'smoothed-fast.jpg');
  const f = await studio(['smooth', '--content', tagged, '--stylized', stylizedFile, '--out', fastOut, '--mode', 'fast', '--radius', '8']);
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stdout, /smoothing: guided filter r = 8/);
  // By default the smoothed look is carried to the photo's own size, keeping its EXIF.
  assert.match(f.stdout, /wrote .*smoothed-fast\.jpg \(512×341,/);
  const fm = await sharp(fastOut).metadata();
  assert.equal(fm.format, 'jpeg');
  assert.equal(fm.width, 512);
  assert.ok(fm.exif?.includes('StudioCam'));

  // Another picture's shape, a bad mode and a missing file are clear errors, exit 2.
  const square = path.join(dir, 'square-photo.png');
  await sharp(content).resize(60, 60, { fit: 'fill' }).png().toFile(square);
  const shape = await studio(['smooth', '--content', square, '--stylized', stylizedFile, '--out', path.join(dir, 's2.png')]);
  assert.equal(shape.code, 2);
  assert.match(shape.stderr, /content photo .*square-photo\.png is 60×60 but the stylised image .* is 80×53: not the same picture/);
  const mode = await studio(['smooth', '--content', tagged, '--stylized', stylizedFile, '--out', path.join(dir, 's3.png'), '--mode', 'slow']);
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /--mode must be one of exact, fast; got "slow"/);
  const missing = await studio(['smooth', '--content', tagged, '--stylized', path.join(dir, 'nope.png'), '--out', path.join(dir, 's4.png')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.png/);
  const same = await studio(['smooth', '--content', tagged, '--stylized', stylizedFile, '--out', stylizedFile]);
  assert.equal(same.code, 2, 'never overwrites an input');
});

test('every bad input gets a clear message and exit code 2', async () => {
  const text = path.join(dir, 'notes.jpg');
  await writeFile(text, 'this is not a photo');
  const empty = path.join(dir, 'empty.png');
  await writeFile(empty, '');
  const truncated = path.join(dir, 'truncated.jpg');
  const whole = await readFile(content);
  await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
  const gif = path.join(dir, 'anim.gif');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).gif().toFile(gif);
  const copy = path.join(dir, 'copy.jpg');
  await copyFile(content, copy);
  const cases: [string, Promise<{ code: number; stderr: string }>, RegExp][] = [
    ['missing file', stylize(path.join(dir, 'nope.jpg'), path.join(dir, 'o1.png')), /not found: .*nope\.jpg/],
    ['not an image', stylize(text, path.join(dir, 'o2.png')), /notes\.jpg.*not an image/i],
    ['truncated', stylize(truncated, path.join(dir, 'o3.png')), /truncated\.jpg.*(truncated|corrupt)/i],
    ['zero size', stylize(empty, path.join(dir, 'o4.png')), /empty\.png.*empty/i],
    ['pixel limit', stylize(content, path.join(dir, 'o5.png'), ['--max-pixels', '1000']), /content-coffee\.jpg is 512×341 .*over the limit/],
    ['unsupported format', stylize(gif, path.join(dir, 'o6.png')), /anim\.gif.*(unsupported|not supported)/i],
    ['unwritable output', stylize(content, path.join(dir, 'no-such-dir', 'o7.png')), /cannot write .*no-such-dir.*does not exist/],
    ['output over input', stylize(copy, copy), /output .*copy\.jpg is the input .*refusing to overwrite/],
    ['unknown output format', stylize(content, path.join(dir, 'o8.bmp')), /cannot write \.bmp files/],
    ['bad number', stylize(content, path.join(dir, 'o9.png'), ['--iters', 'many']), /--iters must be an integer/],
    ['unknown option', stylize(content, path.join(dir, 'o10.png'), ['--colour', 'red']), /Unknown option '--colour'/],
    ['unknown layer', stylize(content, path.join(dir, 'o11.png'), ['--style-layers', 'relu9_1']), /relu9_1/],
    ['missing model', studio(['stylize', '--content', content, '--style', style, '--out', path.join(dir, 'o12.png'), '--model', path.join(dir, 'no-model')]), /no model/i],
    ['unknown backend', stylize(content, path.join(dir, 'o13.png'), ['--backend', 'tpu']), /unknown backend "tpu"/],
  ];
  const results = await Promise.all(cases.map(([, p]) => p));
  if (process.env.SHOW) results.forEach((r, i) => console.log(cases[i][0], r.code, JSON.stringify(r.stderr.split('\n').filter((l) => /^(error|hint)/.test(l)))));
  results.forEach((r, i) => {
    const [name, , pattern] = cases[i];
    assert.equal(r.code, 2, `${name}: exit ${r.code}, stderr: ${r.stderr}`);
    assert.match(r.stderr, /^error: /m, `${name}: says "error:"`);
    assert.match(r.stderr, pattern, `${name}: ${r.stderr}`);
  });
  assert.deepEqual(await readFile(copy), whole, 'the input was not touched');
  await assert.rejects(stat(path.join(dir, 'o3.png')), /ENOENT/, 'no output for a failed job');
});

test('info --json names the backend, threads, versions and installed models', async () => {
  const r = await studio(['info', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.ok(['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'].includes(info.backend.name));
  assert.equal(typeof info.backend.device, 'string');
  assert.ok(info.backend.threads >= 1);
  assert.ok(info.backend.versions['tfjs-core']);
  assert.ok(Array.isArray(info.models));
  assert.equal(info.modelsDir, path.join(dir, 'models'));
  if (info.backend.name !== 'webgpu') {
    // Dawn is not even loaded when it would only find a software adapter: none of its warnings.
    assert.doesNotMatch(r.stderr, /artificially reduced|Warning:/, r.stderr);
  }
});

test('info --backend webgpu shows the adapter, its shader-f16 feature and its limits', async (t) => {
  const r = await studio(['info', '--json', '--backend', 'webgpu']);
  if (r.code !== 0 && process.env.CI !== 'true') {
    // Reported as skipped, with its reason, not as passed (CI installs Mesa's lavapipe and never skips).
    t.skip(`no WebGPU adapter here (CI installs Mesa's lavapipe): ${r.stderr.trim().split('\n').at(-2)}`);
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  const b = JSON.parse(r.stdout).backend;
  assert.equal(b.name, 'webgpu');
  assert.equal(typeof b.adapter.vendor, 'string');
  assert.equal(typeof b.adapter.architecture, 'string');
  assert.ok(Array.isArray(b.adapter.features));
  assert.ok(b.adapter.limits.maxStorageBufferBindingSize >= 2 ** 27);
  assert.ok(b.adapter.limits.maxBufferSize >= b.adapter.limits.maxStorageBufferBindingSize);
});

test('the WebAssembly backend starts threaded (STUDIO_WASM_THREADS) or single-threaded; --backend forces one', async () => {
  const [one, two, cpu] = await Promise.all([
    studio(['info', '--json', '--backend', 'wasm'], { STUDIO_WASM_THREADS: '1' }),
    studio(['info', '--json', '--backend', 'wasm'], { STUDIO_WASM_THREADS: '2' }),
    studio(['info', '--json'], { STUDIO_BACKEND: 'cpu' }),
  ]);
  assert.equal(JSON.parse(one.stdout).backend.threads, 1);
  assert.match(JSON.parse(one.stdout).backend.device, /WebAssembly, SIMD, 1 thread\)/);
  assert.equal(JSON.parse(two.stdout).backend.threads, 2);
  assert.match(JSON.parse(two.stdout).backend.device, /2 threads/);
  assert.equal(JSON.parse(cpu.stdout).backend.name, 'cpu');
});

test('features writes .npy files NumPy can read: the input and each layer, NHWC', async () => {
  const out = path.join(dir, 'feats');
  const r = await studio(['features', '--image', content, '--layers', 'relu1_1,relu3_1', '--out', out, '--model', model, '--size', '40']);
  assert.equal(r.code, 0, r.stderr);
  const input = decodeNpy(await readFile(path.join(out, 'input.npy')));
  assert.deepEqual(input.shape, [1, 27, 40, 3]);
  assert.ok(input.data.some((v) => v > 100) && input.data.every((v) => v >= 0 && v <= 255));
  assert.deepEqual(decodeNpy(await readFile(path.join(out, 'relu1_1.npy'))).shape, [1, 27, 40, 8]);
  assert.deepEqual(decodeNpy(await readFile(path.join(out, 'relu3_1.npy'))).shape, [1, 6, 10, 32]);
  assert.match(r.stdout, /relu3_1\t\[1, 6, 10, 32\]/);
});

test('models import installs a Keras and a torchvision file; list shows them', async () => {
  const fx = await writeTinyFixtures(path.join(dir, 'fx'));
  const a = await studio(['models', 'import', fx.h5Path, '--name', 'from-keras']);
  assert.equal(a.code, 0, a.stderr);
  const b = await studio(['models', 'import', fx.pthPath, '--name', 'from-torch', '--dtype', 'f16']);
  assert.equal(b.code, 0, b.stderr);
  const l = await studio(['models', 'list']);
  assert.match(l.stdout, /from-keras\tvgg19 8\/16\/32\/64\/64\tF32/);
  assert.match(l.stdout, /from-torch\tvgg19 8\/16\/32\/64\/64\tF16/);
  const c = await studio(['models', 'import', path.join(dir, 'notes.txt')]);
  assert.equal(c.code, 2);
});
