/**
 * `studio demo` on a first run: offline it says so in one line and goes on with colour match and the
 * test network; connected (a loopback server stands in for Keras' bucket and Google Drive) it fetches
 * VGG19 and the photo model with progress bars, says each licence first, and shows real results.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { encodeTorchStateDict, tinyVgg19, writeKerasH5 } from '../../src-main/engine/models/tiny.ts';
import { closeLoopback, closedLoopbackPort, listenLoopback } from '../loopback.ts';
import { photoWctStateDict } from '../engine/models/photowct-fixture.ts';

let dir = '';
let server: http.Server;
let base = '';
let closedPort = 0;
let h5: Buffer;
const zip = Buffer.from(zipSync({ 'PhotoWCTModels/photo_wct.pth': encodeTorchStateDict(photoWctStateDict(4)) }, { level: 0 }));

function studio(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...process.env, ...env }, maxBuffer: 2 ** 24 },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr, ms: Date.now() - t0 }));
  });
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-demo-'));
  const h5Path = path.join(dir, 'notop.h5');
  await writeKerasH5(h5Path, tinyVgg19(2));
  h5 = await readFile(h5Path);
  server = http.createServer((req, res) => {
    const body = req.url?.startsWith('/vgg19') ? h5 : req.url?.startsWith('/uc') ? zip : undefined;
    if (!body) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  base = await listenLoopback(server);
  closedPort = await closedLoopbackPort();
});
after(async () => {
  await closeLoopback(server);
  await rm(dir, { recursive: true, force: true });
});

const small = ['--size', '48', '--iters', '2'];

test('offline: one line says so, and the demo goes on with colour match and the test network', async () => {
  const out = path.join(dir, 'offline-out');
  const r = await studio(['demo', '--out', out, ...small], {
    STUDIO_MODELS_DIR: path.join(dir, 'models-offline'),
    STUDIO_VGG19_URL: `http://127.0.0.1:${closedPort}/vgg19.h5`,
    STUDIO_PHOTOWCT_URL: `http://127.0.0.1:${closedPort}/uc?id=x`,
  });
  assert.equal(r.code, 0, r.stderr);
  const offline = r.stdout.split('\n').filter((l) => l.startsWith('offline'));
  assert.equal(offline.length, 1, r.stdout);
  assert.match(offline[0], new RegExp(`^offline \\(no route to 127\\.0\\.0\\.1:${closedPort} within 4 s\\)`));
  assert.doesNotMatch(r.stderr, /downloading/);
  assert.match(r.stdout, /colour match \(no model needed\)/);
  assert.match(r.stdout, /PhotoWCT\): skipped, no photo model/);
  assert.ok(existsSync(path.join(out, 'chelsea-storm-match.jpg')));
  assert.ok(existsSync(path.join(out, 'chelsea-starry_night-test-network.jpg')));
  assert.equal(existsSync(path.join(dir, 'models-offline', 'vgg19')), false);
});

test('connected first run: both models fetched with their licences and progress, then real results; a second run fetches nothing', async () => {
  const out = path.join(dir, 'online-out');
  const env = {
    STUDIO_MODELS_DIR: path.join(dir, 'models-online'),
    STUDIO_VGG19_URL: `${base}/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`,
    STUDIO_VGG19_MD5: createHash('md5').update(h5).digest('hex'),
    STUDIO_PHOTOWCT_URL: `${base}/uc?export=download&id=1ENgQm9TgabE1R99zhNf5q6meBvX6WFuq`,
  };
  const r = await studio(['demo', '--out', out, ...small], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /vgg19: VGG19 .* licence CC BY 4\.0 \(https:\/\/creativecommons\.org\/licenses\/by\/4\.0\/\)/);
  assert.match(r.stderr, /photowct: FastPhotoStyle .* licence CC BY-NC-SA 4\.0 — non-commercial use only/);
  assert.ok(r.stderr.indexOf('photowct: FastPhotoStyle') < r.stderr.indexOf('downloading photowct'), 'the licence is said before the download');
  assert.match(r.stderr, /downloading vgg19 \[#{20}\] 100% /);
  assert.match(r.stderr, /downloading photowct \[#{20}\] 100% /);
  assert.match(r.stdout, /using the installed VGG19/);
  assert.match(r.stdout, /neural photorealistic \(PhotoWCT, FastPhotoStyle photo_wct .*licence CC BY-NC-SA 4\.0\)/);
  for (const f of ['chelsea-storm-photowct.jpg', 'coffee-greenmeadow-photowct.jpg', 'chelsea-starry_night.jpg', 'chelsea-storm-match.jpg']) {
    assert.ok(existsSync(path.join(out, f)), f);
  }
  assert.equal(existsSync(path.join(out, 'chelsea-starry_night-test-network.jpg')), false);
  const list = await studio(['models', 'list'], env);
  assert.match(list.stdout, /photowct\tvgg19 4\/6\/8\/10\/10 to relu4_1\tF32\tlicence CC BY-NC-SA 4\.0 \(non-commercial\)\tsource http:\/\/127\.0\.0\.1:\d+\/uc\?/);
  assert.match(list.stdout, /vgg19\tvgg19 8\/16\/32\/64\/64\tF32\tlicence CC BY 4\.0\tsource http:\/\/127\.0\.0\.1/);
  // The photo method takes the installed photowct without being told.
  const report = path.join(dir, 'photo.json');
  const photo = await studio(['stylize', '--method', 'photo', '--content', path.resolve('assets/samples/content-coffee.jpg'),
    '--style', path.resolve('assets/samples/photo-Dune.jpg'), '--out', path.join(dir, 'photo.png'), '--size', '48', '--smooth', 'fast', '--report', report, '--quiet'], env);
  assert.equal(photo.code, 0, photo.stderr);
  assert.match(JSON.parse(await readFile(report, 'utf8')).model.source, /^FastPhotoStyle photo_wct/);
  const again = await studio(['demo', '--out', out, ...small], env);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /downloading/);
});
