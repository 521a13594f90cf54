/**
 * `studio models fetch photowct` against a loopback server that imitates Google Drive: the
 * "can't scan this file for viruses" page (its newer download form, and the older confirm link with a
 * download_warning cookie), a quota page, a dropped connection, then the zip FastPhotoStyle publishes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { canReach, partialBytes } from '../../../src-main/engine/models/downloads.ts';
import { fetchPhotoWct } from '../../../src-main/engine/models/fetch.ts';
import { confirmTarget, decodeEntities, resolveDownload } from '../../../src-main/engine/models/drive.ts';
import { listModels, loadVgg19, readManifest } from '../../../src-main/engine/models/store.ts';
import { encoderHash, loadDecoder } from '../../../src-main/engine/models/decoders.ts';
import { encodeTorchStateDict } from '../../../src-main/engine/models/tiny.ts';
import { closeLoopback, closedLoopbackPort, listenLoopback } from '../../loopback.ts';
import { StudioError } from '../../../src-main/errors.ts';
import { photoWctStateDict, WIDTHS } from './photowct-fixture.ts';

const PTH = Buffer.from(encodeTorchStateDict(photoWctStateDict(3)));
const ZIP = Buffer.from(zipSync({ 'PhotoWCTModels/photo_wct.pth': PTH, 'PhotoWCTModels/README.txt': Buffer.from('models') }, { level: 0 }));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof StudioError && e.code === code && (!re || re.test(e.message));

type Flow = 'form' | 'link' | 'cookie' | 'quota' | 'direct';
let flow: Flow = 'form';
let body: Buffer = ZIP;
/** Drop the connection after 5000 bytes on this file request (1-based; the resolver's own look is the first). */
let dropAt = 0;
let fileRequests = 0;
let log: Array<{ path: string; range?: string; cookie?: string }> = [];
let server: http.Server;
let base = '';
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fetch-photowct-'));
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', base);
    log.push({ path: url.pathname + url.search, range: req.headers.range, cookie: req.headers.cookie });
    const sendFile = () => {
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      res.writeHead(m ? 206 : 200, {
        'content-type': 'application/x-zip-compressed', 'content-length': body.length - start,
        ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
      });
      if (++fileRequests === dropAt) {
        res.write(body.subarray(start, start + 5000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.end(body.subarray(start));
    };
    const page = (html: string, headers: Record<string, string | string[]> = {}) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(html);
    };
    if (url.pathname === '/uc') {
      if (flow === 'direct' || url.searchParams.get('confirm') === 'Xy_9') {
        if (flow === 'cookie' && !/download_warning_1_abc=Xy_9/.test(req.headers.cookie ?? '')) return page('<title>no cookie</title>');
        return sendFile();
      }
      if (flow === 'form') {
        return page(`<html><head><title>Google Drive - Virus scan warning</title></head><body>
          <p>Google Drive can't scan this file for viruses.</p>
          <form id="download-form" action="${base}/download" method="get">
            <input type="submit" id="uc-download-link" class="goog-inline-block jfk-button" value="Download anyway"/>
            <input type="hidden" name="id" value="${url.searchParams.get('id')}">
            <input type="hidden" name="export" value="download">
            <input type="hidden" name="confirm" value="t">
            <input type="hidden" name="uuid" value="1b2c&#45;3d">
          </form></body></html>`, { 'set-cookie': ['NID=511=abc; path=/; HttpOnly'] });
      }
      if (flow === 'link') {
        return page(`<title>Google Drive - Virus scan warning</title><a id="uc-download-link" href="/uc?export=download&amp;confirm=Xy_9&amp;id=${url.searchParams.get('id')}">Download anyway</a>`);
      }
      if (flow === 'cookie') return page('<title>Google Drive</title>', { 'set-cookie': ['download_warning_1_abc=Xy_9; path=/uc'] });
      return page('<title>Google Drive - Quota exceeded</title><p>Too many users have viewed or downloaded this file recently.</p>');
    }
    if (url.pathname === '/download') {
      // The usercontent host checks the confirmation the form carried.
      if (url.searchParams.get('confirm') !== 't' || url.searchParams.get('uuid') !== '1b2c-3d') return page('<title>bad form</title>');
      return sendFile();
    }
    res.writeHead(404);
    res.end();
  });
  base = await listenLoopback(server);
});
after(async () => {
  await closeLoopback(server);
  await rm(dir, { recursive: true, force: true });
});

const driveUrl = () => `${base}/uc?export=download&id=1ENgQm9TgabE1R99zhNf5q6meBvX6WFuq`;

test('the confirmation page: its download form, an older confirm link, a download_warning cookie', () => {
  const page = new URL('https://drive.google.com/uc?export=download&id=F');
  const form = '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get"><input type="hidden" name="id" value="F"><input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="a&amp;b"></form>';
  assert.equal(confirmTarget(form, page)?.href, 'https://drive.usercontent.google.com/download?id=F&confirm=t&uuid=a%26b');
  assert.equal(confirmTarget('<a href="/uc?export=download&amp;confirm=AbC&amp;id=F">x</a>', page)?.href, 'https://drive.google.com/uc?export=download&confirm=AbC&id=F');
  assert.equal(confirmTarget('<p>hi</p>', page, new Map([['download_warning_13', 'T0k']]))?.searchParams.get('confirm'), 'T0k');
  assert.equal(confirmTarget('<title>Quota exceeded</title>', page), undefined);
  assert.equal(decodeEntities('&#45;&#x41;&amp;&quot;'), '-A&"');
});

test('fetch photowct through the download form: resumes a dropped transfer, unzips, imports, records licence and sha256', async () => {
  flow = 'form';
  body = ZIP;
  dropAt = 2;
  fileRequests = 0;
  log = [];
  const root = join(dir, 'models-form');
  const progress: number[] = [];
  const modelDir = await fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5, onProgress: (r) => progress.push(r) });
  assert.equal(modelDir, join(root, 'photowct'));
  // page, the form's target (dropped after 5000 bytes), then a resume from exactly there
  const fileLog = log.filter((l) => l.path.startsWith('/download'));
  assert.ok(fileLog.length >= 3, JSON.stringify(log));
  assert.equal(fileLog.at(-1)!.range, 'bytes=5000-');
  assert.match(fileLog.at(-1)!.cookie ?? '', /NID=511=abc/, 'the cookies Drive set go with the download');
  assert.ok(progress.every((v, i) => i === 0 || v >= progress[i - 1]) && progress.at(-1) === ZIP.length);

  const m = await readManifest(modelDir);
  assert.equal(m.licence?.name, 'CC BY-NC-SA 4.0');
  assert.equal(m.licence?.commercialUse, false);
  assert.equal(m.download?.url, driveUrl());
  assert.equal(m.download?.sha256, sha(ZIP));
  assert.deepEqual(m.download?.extracted, { file: 'PhotoWCTModels/photo_wct.pth', bytes: PTH.length, sha256: sha(PTH) });
  assert.equal(m.depth, 'relu4_1');
  const w = await loadVgg19(modelDir);
  assert.deepEqual(w.widths.slice(0, 4), WIDTHS.slice(0, 4));
  const hash = await encoderHash(modelDir);
  for (const level of [1, 2, 3, 4] as const) await loadDecoder(join(modelDir, 'decoders'), level, hash);
  assert.deepEqual(await readdir(join(root, 'downloads')), [], 'the zip and the extracted .pth are removed');
  assert.deepEqual((await readdir(root)).sort(), ['downloads', 'photowct']);
  assert.equal((await listModels(root))[0].licence?.name, 'CC BY-NC-SA 4.0');
});

test('the older flows: a confirm link, and a token only in a download_warning cookie', async () => {
  for (const f of ['link', 'cookie'] as const) {
    flow = f;
    body = ZIP;
    log = [];
    const r = await resolveDownload(driveUrl());
    assert.match(r.url, /confirm=Xy_9/);
    const root = join(dir, `models-${f}`);
    await fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 });
    assert.equal((await readManifest(join(root, 'photowct'))).download?.sha256, sha(ZIP), f);
  }
});

test('a quota page is DOWNLOAD_FAILED quoting Drive, and nothing is installed', async () => {
  flow = 'quota';
  const root = join(dir, 'models-quota');
  await assert.rejects(fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 }), isCode('DOWNLOAD_FAILED', /Quota exceeded/));
  assert.equal(existsSync(join(root, 'photowct')), false);
});

test('a zip without photo_wct.pth, or a damaged .pth, installs nothing and keeps an earlier model', async () => {
  flow = 'direct';
  const root = join(dir, 'models-bad');
  body = ZIP;
  await fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 });
  const before = await readManifest(join(root, 'photowct'));
  body = Buffer.from(zipSync({ 'other/readme.txt': Buffer.from('x') }));
  await assert.rejects(fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 }), isCode('BAD_MODEL', /holds no photo_wct\.pth/));
  // The failed download is not kept: the next fetch asks the server again (and gets the damaged file).
  body = Buffer.from(zipSync({ 'PhotoWCTModels/photo_wct.pth': PTH.subarray(0, PTH.length >> 1) }));
  log = [];
  await assert.rejects(fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 }), (e: unknown) =>
    e instanceof StudioError && e.code !== 'INTERNAL' && /photo_wct\.pth/.test(e.message) && !/holds no/.test(e.message));
  assert.ok(log.some((l) => l.path.startsWith('/uc')), 'downloaded again');
  // A models.zip with only some of FastPhotoStyle's Torch7 networks: which are missing, said plainly.
  body = Buffer.from(zipSync({ 'models/vgg_normalised_conv1_1_mask.t7': Buffer.from('t7'), 'models/feature_invertor_conv1_1_mask.t7': Buffer.from('t7') }));
  await assert.rejects(fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 }), isCode('BAD_MODEL', /not all eight .*vgg_normalised_conv2_1_mask\.t7.* missing/));
  assert.deepEqual(await readdir(join(root, 'downloads')), [], 'nothing kept of a download that did not import');
  assert.deepEqual(await readManifest(join(root, 'photowct')), before, 'the installed model is untouched');
  assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('.')), [], 'no temporary folder is left');
});

test('a direct mirror of the .pth (no zip, no page) installs too; an interrupted download is reported for resume', async () => {
  flow = 'direct';
  body = PTH;
  const root = join(dir, 'models-direct');
  await fetchPhotoWct({ root, url: driveUrl(), retryDelayMs: 5 });
  assert.equal((await readManifest(join(root, 'photowct'))).download?.extracted, undefined);
  await writeFile(join(root, 'downloads', 'photowct.download.part'), Buffer.alloc(1234));
  assert.equal(await partialBytes('photowct', root), 1234);
});

test('cancelled while the confirmation page is being fetched: CANCELLED, not an internal error', async () => {
  flow = 'form';
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(resolveDownload(driveUrl(), { signal: ac.signal }), isCode('CANCELLED'));
  assert.equal(decodeEntities('&#99999999;x'), '&#99999999;x', 'an impossible code point stays as written');
});

test('canReach: a listening port yes, a closed one no, quickly', async () => {
  assert.equal(await canReach(base), true);
  const port = await closedLoopbackPort();
  const t0 = Date.now();
  assert.equal(await canReach(`http://127.0.0.1:${port}/x`, 2000), false);
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(await canReach('not a url'), false);
});
