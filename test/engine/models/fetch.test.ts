import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download, fetchVgg19 } from '../../../src-main/engine/models/fetch.ts';
import { loadVgg19, readManifest } from '../../../src-main/engine/models/store.ts';
import { tinyVgg19, writeKerasH5 } from '../../../src-main/engine/models/tiny.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { withEnv } from '../../env.ts';
import { closeLoopback, closedLoopbackPort, listenLoopback } from '../../loopback.ts';
import { StudioError } from '../../../src-main/errors.ts';

const rng = mulberry32(11);
const FILE = Buffer.from(Array.from({ length: 300_000 }, () => Math.floor(rng() * 256)));
const MD5 = createHash('md5').update(FILE).digest('hex');

interface Behaviour {
  /** Destroy the socket after this many body bytes, on the first `dropTimes` requests. */
  dropAfter?: number;
  dropTimes?: number;
  ignoreRange?: boolean;
  status?: number;
  body?: Buffer;
}
let behaviour: Behaviour = {};
let requests: Array<{ url: string; range?: string }> = [];
let server: http.Server;
let base: string;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fetch-'));
  server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', range: req.headers.range });
    const body = behaviour.body ?? FILE;
    if (req.url === '/moved') {
      res.writeHead(302, { location: '/file.bin' });
      return res.end();
    }
    if (behaviour.status) {
      res.writeHead(behaviour.status);
      return res.end('nope');
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !behaviour.ignoreRange) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        return res.end();
      }
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      res.writeHead(200, { 'content-length': body.length });
    }
    const rest = body.subarray(start);
    if (behaviour.dropAfter !== undefined && (behaviour.dropTimes ?? 1) > 0) {
      behaviour.dropTimes = (behaviour.dropTimes ?? 1) - 1;
      res.write(rest.subarray(0, behaviour.dropAfter), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(rest);
  });
  base = await listenLoopback(server);
});
after(async () => {
  await closeLoopback(server);
  await rm(dir, { recursive: true, force: true });
});

function reset(b: Behaviour): void {
  behaviour = b;
  requests = [];
}

const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof StudioError && e.code === code && (!re || re.test(e.message));

function progressLog(): { calls: Array<[number, number | undefined]>; cb: (r: number, t: number | undefined) => void } {
  const calls: Array<[number, number | undefined]> = [];
  return { calls, cb: (r, t) => calls.push([r, t]) };
}

function assertMonotonic(calls: Array<[number, number | undefined]>, total: number): void {
  assert.ok(calls.length > 1);
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] >= calls[i - 1][0], `progress went back at ${i}: ${calls[i - 1][0]} → ${calls[i][0]}`);
  assert.deepEqual(calls.at(-1), [total, total]);
}

test('a full download, checked, with monotonic progress and no .part left', async () => {
  reset({});
  const dest = join(dir, 'full.bin');
  const p = progressLog();
  await download(`${base}/file.bin`, dest, { md5: MD5, onProgress: p.cb });
  assert.ok((await readFile(dest)).equals(FILE));
  assert.ok(!existsSync(`${dest}.part`));
  assertMonotonic(p.calls, FILE.length);
  assert.equal(requests.length, 1);
});

test('a connection dropped mid-body resumes with Range and gives the exact file', async () => {
  reset({ dropAfter: 100_000, dropTimes: 2 });
  const dest = join(dir, 'resumed.bin');
  const p = progressLog();
  await download(`${base}/file.bin`, dest, { md5: MD5, onProgress: p.cb, retryDelayMs: 5 });
  assert.ok((await readFile(dest)).equals(FILE));
  assert.deepEqual(requests.map((r) => r.range), [undefined, 'bytes=100000-', 'bytes=200000-']);
  assertMonotonic(p.calls, FILE.length);
});

test('a .part left by an earlier run is resumed', async () => {
  reset({});
  const dest = join(dir, 'leftover.bin');
  await writeFile(`${dest}.part`, FILE.subarray(0, 1234));
  await download(`${base}/file.bin`, dest, { md5: MD5 });
  assert.ok((await readFile(dest)).equals(FILE));
  assert.deepEqual(requests.map((r) => r.range), ['bytes=1234-']);
  // and a .part that is already the whole file is just checked and moved
  reset({});
  await writeFile(`${dest}.part`, FILE);
  await download(`${base}/file.bin`, join(dir, 'leftover.bin'), { md5: MD5 });
  assert.ok((await readFile(dest)).equals(FILE));
});

test('a server that ignores Range: the download restarts from zero', async () => {
  reset({ dropAfter: 50_000, ignoreRange: true });
  const dest = join(dir, 'norange.bin');
  await download(`${base}/file.bin`, dest, { md5: MD5, retryDelayMs: 5 });
  assert.ok((await readFile(dest)).equals(FILE));
  assert.deepEqual(requests.map((r) => r.range), [undefined, 'bytes=50000-']);
});

test('a redirect is followed', async () => {
  reset({});
  const dest = join(dir, 'moved.bin');
  await download(`${base}/moved`, dest, { md5: MD5 });
  assert.ok((await readFile(dest)).equals(FILE));
});

test('a wrong checksum is CHECKSUM_MISMATCH naming both sums, and no file is left', async () => {
  reset({});
  const dest = join(dir, 'bad.bin');
  const wrong = '0123456789abcdef0123456789abcdef';
  await assert.rejects(download(`${base}/file.bin`, dest, { md5: wrong }), isCode('CHECKSUM_MISMATCH', new RegExp(`md5 ${MD5}, expected ${wrong}`)));
  assert.ok(!existsSync(dest));
  assert.ok(!existsSync(`${dest}.part`));
});

test('HTTP errors, refused connections and too many drops are DOWNLOAD_FAILED', async () => {
  reset({ status: 404 });
  await assert.rejects(download(`${base}/file.bin`, join(dir, 'x.bin'), { retryDelayMs: 5 }), isCode('DOWNLOAD_FAILED', /404/));
  assert.equal(requests.length, 1, 'a 404 is not retried');
  reset({ status: 503 });
  await assert.rejects(download(`${base}/file.bin`, join(dir, 'x.bin'), { retries: 2, retryDelayMs: 5 }), isCode('DOWNLOAD_FAILED', /503.*gave up after 2 retries/));
  assert.equal(requests.length, 3);
  reset({ dropAfter: 10, dropTimes: 100 });
  await assert.rejects(download(`${base}/file.bin`, join(dir, 'y.bin'), { retries: 2, retryDelayMs: 5 }), isCode('DOWNLOAD_FAILED', /dropped/));
  // a port nothing listens on
  const port = await closedLoopbackPort();
  await assert.rejects(download(`http://127.0.0.1:${port}/f`, join(dir, 'z.bin')), isCode('DOWNLOAD_FAILED', /ECONNREFUSED/));
  await assert.rejects(download('not a url', join(dir, 'z.bin')), isCode('DOWNLOAD_FAILED'));
});

test('an aborted download is CANCELLED and keeps its .part for a later resume', async () => {
  reset({ dropAfter: 100_000, dropTimes: 1 });
  const dest = join(dir, 'aborted.bin');
  const ac = new AbortController();
  const p = download(`${base}/file.bin`, dest, { retryDelayMs: 10_000, signal: ac.signal, onProgress: (r) => r >= 100_000 && ac.abort() });
  await assert.rejects(p, isCode('CANCELLED'));
  assert.ok(existsSync(`${dest}.part`));
  reset({});
  await download(`${base}/file.bin`, dest, { md5: MD5 });
  assert.ok((await readFile(dest)).equals(FILE));
});

test('fetchVgg19 downloads, imports and installs the Keras weights (from a loopback mirror)', async () => {
  const h5 = join(dir, 'notop.h5');
  await writeKerasH5(h5, tinyVgg19(5));
  const body = await readFile(h5);
  reset({ body, dropAfter: 4096 });
  const root = join(dir, 'models');
  const modelDir = await fetchVgg19({
    root,
    url: `${base}/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`,
    md5: createHash('md5').update(body).digest('hex'),
    retryDelayMs: 5,
  });
  assert.equal(modelDir, join(root, 'vgg19'));
  const w = await loadVgg19(modelDir);
  assert.deepEqual(w.tensors.get('conv5_4.kernel')!.data, tinyVgg19(5).tensors.get('conv5_4.kernel')!.data);
  assert.equal(w.preprocessing.colorOrder, 'BGR');
  assert.match(w.source, /^http:\/\/127\.0\.0\.1:\d+\/vgg19_weights/);
  assert.deepEqual(await readdir(join(root, 'downloads')), [], 'the download is removed once imported');
  const m = await readManifest(modelDir);
  assert.deepEqual(m.licence, { name: 'CC BY 4.0', url: 'https://creativecommons.org/licenses/by/4.0/', commercialUse: true });
  assert.equal(m.download?.sha256, createHash('sha256').update(body).digest('hex'));
  assert.equal(m.download?.bytes, body.length);
  assert.equal(m.name, 'vgg19');
  assert.deepEqual((await readdir(root)).sort(), ['downloads', 'vgg19'], 'no temporary install folder is left');
  // the environment variables point it at a mirror too
  reset({ body });
  await withEnv({ STUDIO_VGG19_URL: `${base}/mirror.h5`, STUDIO_VGG19_MD5: 'ffffffffffffffffffffffffffffffff' }, async () => {
    await assert.rejects(fetchVgg19({ root, retryDelayMs: 5 }), isCode('CHECKSUM_MISMATCH'));
    assert.deepEqual(requests.map((r) => r.url), ['/mirror.h5']);
  });
});
