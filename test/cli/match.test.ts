import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, readFile, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { rgbToLab } from '../../src-main/engine/colour/spaces.ts';

const samples = path.resolve('assets/samples');
const content = path.join(samples, 'content-coffee.jpg');
const reference = path.join(samples, 'photo-Storm.jpg');
let dir = '';

/** The CLI with an empty models folder: colour match needs none. */
function studio(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, STUDIO_MODELS_DIR: path.join(dir, 'no-models') } },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-match-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('stylize --method match with no model installed: result, metadata, report with distances and structure', async () => {
  const tagged = path.join(dir, 'tagged.jpg');
  await sharp(content).withExif({ IFD0: { Make: 'StudioCam', Model: 'X1' } }).jpeg({ quality: 95 }).toFile(tagged);
  const jpeg = path.join(dir, 'out.jpg');
  const j = await studio(['stylize', '--method', 'match', '--content', tagged, '--style', reference, '--out', jpeg, '--quiet']);
  assert.equal(j.code, 0, j.stderr);
  assert.ok((await sharp(jpeg).metadata()).exif?.includes('StudioCam'), 'EXIF kept');
  const out = path.join(dir, 'out.tif');
  const report = path.join(dir, 'r.json');
  const r = await studio(['stylize', '--method', 'match', '--content', tagged, '--style', reference, '--out', out, '--bit-depth', '16', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*out\.tif \(512×341/);
  assert.match(r.stdout, /colour match in CIELAB \(D65\) \(L\*a\*b\*\): transfer \d+ iterations, regrain fast, re-match \d+ iterations/);
  assert.match(r.stdout, /look distance to the reference [\d.]+ → [\d.]+ \([\d.]+% left\), structure kept 0\.9\d\d/);
  const meta = await sharp(out).metadata();
  assert.equal(meta.depth, 'ushort', '16-bit TIFF');
  const rep = JSON.parse(await readFile(report, 'utf8'));
  assert.equal(rep.method, 'match');
  assert.equal(rep.colourSpace, 'CIELAB (D65)');
  assert.ok(rep.iterations.transfer >= 1 && rep.iterations.rematch >= 1);
  assert.ok(rep.lookDistance.remaining > 0 && rep.lookDistance.remaining <= 0.1, `remaining ${rep.lookDistance.remaining}`);
  assert.ok(rep.structureKept >= 0.95);
  for (const k of ['readMs', 'transferMs', 'regrainMs', 'rematchMs', 'writeMs']) assert.equal(typeof rep.stages[k], 'number', k);
  assert.equal(rep.params.smoothing.radius, 34, 'the regrain radius: 512 px / 15');
});

test('--keep-luminance keeps the photo\'s lightness; --alpha 0 gives the photo back', async () => {
  const out = path.join(dir, 'keep.png');
  const r = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', out, '--keep-luminance', '--bit-depth', '16']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(a\*b\*\)/);
  const read = async (f: string) => {
    const buf = await sharp(f, { ignoreIcc: true }).toColourspace('rgb16').raw({ depth: 'ushort' }).toBuffer();
    return Float32Array.from(new Uint16Array(buf.buffer, buf.byteOffset, buf.length / 2), (v) => v / 65535);
  };
  const photo = Float32Array.from(await sharp(content).removeAlpha().raw().toBuffer(), (v) => v / 255);
  const a = rgbToLab(photo), b = rgbToLab(await read(out));
  let maxL = 0;
  for (let i = 0; i < a.length; i += 3) maxL = Math.max(maxL, Math.abs(a[i] - b[i]));
  assert.ok(maxL < 0.05, `L* changed by up to ${maxL}`);
  const zero = path.join(dir, 'zero.png');
  assert.equal((await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', zero, '--alpha', '0'])).code, 0);
  const z = await sharp(zero).raw().toBuffer(), p = await sharp(content).raw().toBuffer();
  assert.ok(z.equals(p), 'α = 0 writes the photo\'s own pixels');
});

test('label maps and bad input: clear errors, exit 2, nothing written', async () => {
  const labels = path.join(dir, 'labels.png');
  await sharp({ create: { width: 60, height: 40, channels: 3, background: '#ff0000' } }).png().toFile(labels);
  const out = path.join(dir, 'labelled.png');
  const one = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', out, '--content-labels', labels]);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /label maps come in pairs/);
  const wrong = path.join(dir, 'square.png');
  await sharp({ create: { width: 50, height: 50, channels: 3, background: '#ff0000' } }).png().toFile(wrong);
  const shape = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', out, '--content-labels', wrong, '--style-labels', labels]);
  assert.equal(shape.code, 2);
  assert.match(shape.stderr, /does not have the shape of its photo/);
  const ok = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', out, '--content-labels', labels, '--style-labels', labels]);
  assert.equal(ok.code, 0, ok.stderr);
  const two = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--style', content, '--out', out]);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /colour match takes one --style photo/);
  const bad = await studio(['stylize', '--method', 'match', '--content', content, '--style', reference, '--out', path.join(dir, 'x.png'), '--radius', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--radius/);
  assert.equal(await stat(path.join(dir, 'x.png')).then(() => true, () => false), false);
});

test('batch --method match: a folder, then a rerun that skips everything', async () => {
  const inDir = path.join(dir, 'shoot'), outDir = path.join(dir, 'graded');
  const { mkdir, copyFile } = await import('node:fs/promises');
  await mkdir(inDir);
  for (const f of ['content-chelsea.jpg', 'content-rocket.jpg', 'content-coffee.jpg']) await copyFile(path.join(samples, f), path.join(inDir, f));
  const first = await studio(['batch', '--method', 'match', '--in', inDir, '--out', outDir, '--style', reference]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /3 done, 0 skipped, 0 failed of 3/);
  const outs = (await readdir(outDir)).filter((f) => !f.startsWith('.'));
  assert.deepEqual(outs.sort(), ['content-chelsea-photo-Storm.jpg', 'content-coffee-photo-Storm.jpg', 'content-rocket-photo-Storm.jpg']);
  const again = await studio(['batch', '--method', 'match', '--in', inDir, '--out', outDir, '--style', reference]);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /0 done, 3 skipped/);
  // The same settings through stylize give the same file's pixels as the batch.
  const single = path.join(dir, 'single.png');
  assert.equal((await studio(['stylize', '--method', 'match', '--content', path.join(inDir, 'content-rocket.jpg'), '--style', reference, '--out', single])).code, 0);
  const a = await sharp(single).raw().toBuffer(), b = await sharp(path.join(outDir, 'content-rocket-photo-Storm.jpg')).raw().toBuffer();
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff += Math.abs(a[i] - b[i]);
  assert.ok(diff / a.length < 2, `PNG vs JPEG (quality 92) of the same result: mean difference ${(diff / a.length).toFixed(2)} levels`);
});
