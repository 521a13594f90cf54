/**
 * End to end, the Batch panel: `npm run serve` with the tiny network, driven in Debian's Chromium.
 * A small shoot (photos in a sub-folder, the same name twice, one damaged file) is restyled from the
 * panel: folder errors, the table filling with states and thumbnails, the damaged file listed with
 * its reason, pause and resume, the summary and the files on disk; then a second batch cancelled
 * mid-way and started again, which skips what was done. Screenshots go to test-results/e2e/.
 */
import { expect, test } from '@playwright/test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { BrowserContext, Page } from '@playwright/test';
import { writeTinyFixtures } from '../src-main/engine/models/tiny.ts';
import { SAMPLES, SHOTS, openSession, serialSession, startServe, stopServe } from './harness.ts';
import { redisMissing, startRedis } from '../test/redis.ts';

/** The good photos of the shoot (relative paths) and its damaged one. */
// Fifteen more in 'day three', so that a batch lasts long enough on a fast machine for pause and
// cancel to land mid-way after the first result.
const EXTRA = Array.from({ length: 15 }, (_, k) => path.join('day three', `shot ${String(k).padStart(2, '0')}.jpg`));
const GOOD = ['coffee.jpg', 'rocket.png', 'astronaut.jpg', path.join('day two', 'coffee.jpg'), path.join('day two', 'chelsea.jpg'), ...EXTRA];
const BROKEN = 'broken.jpg';

let tmp: string;
let shoot: string;
let server: ChildProcess;
let url: string;
let browser: BrowserContext;
let page: Page;
const serverLog: string[] = [];


const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });

/** Every file under `dir` (relative paths), hidden ones too. */
async function filesUnder(dir: string): Promise<string[]> {
  const ents = await readdir(dir, { recursive: true, withFileTypes: true });
  return ents.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

const outputOf = (input: string) => path.join(path.dirname(input), `${path.basename(input, path.extname(input))}-photo-Dune.jpg`);

const failed = serialSession();

test.beforeAll(async ({ browser: pw }) => {
  tmp = await mkdtemp(path.join(tmpdir(), 'studio-e2e-batch-'));
  await mkdir(SHOTS, { recursive: true });
  await writeTinyFixtures(path.join(tmp, 'models'));
  // The shoot: small photos (the batch makes 64 px results), a PNG, a sub-folder with a name the top
  // folder has too, and a JPEG cut short.
  shoot = path.join(tmp, 'shoot');
  await mkdir(path.join(shoot, 'day two'), { recursive: true });
  await mkdir(path.join(shoot, 'day three'), { recursive: true });
  const photo = (src: string, dest: string, hue = 0) => {
    const im = sharp(path.join(SAMPLES, src)).resize(240).modulate({ hue });
    return (dest.endsWith('.png') ? im.png() : im.jpeg({ quality: 90 })).toFile(path.join(shoot, dest));
  };
  await photo('content-coffee.jpg', GOOD[0]);
  await photo('content-rocket.jpg', GOOD[1]);
  await photo('content-astronaut.jpg', GOOD[2]);
  await photo('content-coffee.jpg', GOOD[3], 120);
  await photo('content-chelsea.jpg', GOOD[4]);
  for (const [k, f] of EXTRA.entries()) await photo('content-astronaut.jpg', f, 20 * k);
  await writeFile(path.join(shoot, BROKEN), (await readFile(path.join(SAMPLES, 'content-coffee.jpg'))).subarray(0, 1500));
  await copyFile(path.join(SAMPLES, 'photo-Dune.jpg'), path.join(tmp, 'photo-Dune.jpg'));

  ({ proc: server, url } = await startServe(path.join(tmp, 'models'), serverLog));
  browser = await openSession(pw);
  page = await browser.newPage();
  page.on('pageerror', (e) => serverLog.push(`page error: ${e.message}\n`));
});

test.afterAll(async () => {
  await browser?.close();
  if (server) await stopServe(server);
  if (tmp) await rm(tmp, { recursive: true, force: true });
  if (failed()) process.stderr.write(serverLog.join(''));
});

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The counts line's numbers: "N of M files". */
async function counts(): Promise<{ finished: number; total: number }> {
  const text = await page.getByTestId('batch-counts').innerText();
  const m = /(\d+) of (\d+) files/.exec(text);
  // A line that does not read as counts is a failure, not zeros (zeros would make "nothing finished" checks vacuous).
  if (!m) throw new Error(`the counts line reads "${text}", not "N of M files"`);
  return { finished: Number(m[1]), total: Number(m[2]) };
}

async function setFolders(inDir: string, outDir: string) {
  await page.getByTestId('batch-input').fill(inDir);
  await page.getByTestId('batch-output').fill(outDir);
}

test('the Batch panel: style, method and options; folder mistakes are explained', async () => {
  await page.goto(url);
  await page.getByTestId('backend').filter({ hasText: 'wasm' }).waitFor({ timeout: 60_000 });
  await page.getByTestId('tab-batch').click();
  await page.getByTestId('batch-panel').waitFor();
  assert.ok(await page.getByTestId('batch-start').isDisabled(), 'Start waits for the folders and the style');
  await shot('batch-00-empty');
  await expect(page).toHaveScreenshot('batch-empty.png', { mask: [page.getByTestId('statusbar')] });

  await page.getByTestId('batch-method').getByRole('radio', { name: 'Photorealistic' }).click();
  await page.getByTestId('batch-style-input').setInputFiles(path.join(tmp, 'photo-Dune.jpg'));
  await page.getByTestId('batch-style').getByText('photo-Dune.jpg').waitFor();
  await page.getByTestId('batch-size').fill('64');
  await page.getByTestId('batch-smooth').selectOption('fast');
  await page.getByTestId('batch-recursive').check();
  await page.getByTestId('batch-format').selectOption('jpeg');

  // A folder that does not exist, then a relative path: each refused with what to do.
  await setFolders(path.join(tmp, 'no-such-shoot'), path.join(tmp, 'out'));
  await page.getByTestId('batch-start').click();
  const err = page.getByTestId('error');
  await err.waitFor();
  assert.match(await err.innerText(), /input folder .*no-such-shoot does not exist/);
  await err.getByRole('button', { name: 'Dismiss' }).click();
  await setFolders('shoot', path.join(tmp, 'out'));
  await page.getByTestId('batch-start').click();
  await err.waitFor();
  assert.match(await err.innerText(), /not a full path/);
  await err.getByRole('button', { name: 'Dismiss' }).click();
  await setFolders(shoot, path.join(tmp, 'nowhere', 'deeper', 'out'));
  await page.getByTestId('batch-start').click();
  await err.waitFor();
  assert.match(await err.innerText(), /parent .* does not exist/);
  await err.getByRole('button', { name: 'Dismiss' }).click();
  assert.equal(existsSync(path.join(tmp, 'nowhere')), false, 'nothing was created');
});

test('a batch: the table fills, thumbnails appear, pause and resume, the damaged file is listed, results on disk', async () => {
  const out = path.join(tmp, 'out');
  await setFolders(shoot, out);
  await page.getByTestId('batch-start').click();
  await page.getByTestId('batch-progress').waitFor();
  // The first file runs, then finishes with a thumbnail of its result.
  await page.locator('[data-testid="batch-row"][data-state="running"]').first().waitFor({ timeout: 60_000 });
  await page.locator('[data-testid="batch-row"][data-state="done"] img').first().waitFor({ timeout: 60_000 });
  await shot('batch-01-running');

  // Pause: the file in progress finishes, then nothing more starts until Resume.
  await page.getByTestId('batch-pause').click();
  await page.getByTestId('batch-status').filter({ hasText: /^Paused$/ }).waitFor({ timeout: 60_000 });
  const paused = await counts();
  assert.ok(paused.finished < GOOD.length + 1, `paused before the end (${paused.finished} finished)`);
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(await counts(), paused, 'nothing finished while paused');
  assert.equal(await page.locator('[data-testid="batch-row"][data-state="running"]').count(), 0, 'nothing runs while paused');
  await shot('batch-02-paused');
  await page.getByTestId('batch-resume').click();
  await page.getByTestId('batch-status').filter({ hasText: /^Running$/ }).waitFor();

  const summary = page.getByTestId('batch-summary');
  await summary.waitFor({ timeout: 180_000 });
  const text = await summary.innerText();
  assert.match(text, /Batch finished, with failures/);
  assert.match(text, new RegExp(`${GOOD.length} restyled, 0 already done, 1 failed of ${GOOD.length + 1}`));
  const failures = await page.getByTestId('batch-failures').innerText();
  assert.match(failures, /broken\.jpg.*(damaged|corrupt|truncated|cannot|not an image|premature)/i, failures);

  // The table: every file with its state, the damaged one with its reason, a thumbnail per result.
  const rows = page.getByTestId('batch-row');
  assert.equal(await rows.count(), GOOD.length + 1);
  for (const f of GOOD) assert.equal(await page.locator(`[data-testid="batch-row"][data-input="${f}"]`).getAttribute('data-state'), 'done', f);
  const broken = page.locator(`[data-testid="batch-row"][data-input="${BROKEN}"]`);
  assert.equal(await broken.getAttribute('data-state'), 'failed');
  assert.ok((await broken.getByTestId('batch-reason').innerText()).length > 5, 'the failure has a reason');
  const thumbs = await page.locator('[data-testid="batch-row"][data-state="done"] img').evaluateAll(
    (imgs) => imgs.map((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth));
  assert.equal(thumbs.length, GOOD.length);
  assert.ok(thumbs.every((w) => typeof w === 'number' && w > 0 && w <= 160), `decoded thumbnails: ${thumbs}`);
  await shot('batch-03-finished');

  // On disk: one JPEG per good photo, computed at 64 px and written at the photo's own size (240 px:
  // the panel's default result size is full resolution), mirroring the sub-folder; the journal; nothing else.
  const files = await filesUnder(out);
  assert.deepEqual(files, [...GOOD.map(outputOf), '.studio-batch.jsonl'].sort());
  for (const f of GOOD) {
    const m = await sharp(path.join(out, outputOf(f))).metadata();
    assert.equal(m.format, 'jpeg', f);
    assert.equal(Math.max(m.width!, m.height!), 240, f);
  }
  assert.ok((await filesUnder(shoot)).length === GOOD.length + 1, 'the shoot is untouched');
});

test('cancel mid-way keeps what is done; starting again resumes and skips it', async () => {
  const out = path.join(tmp, 'out-2');
  await page.getByTestId('batch-output').fill(out);
  await page.getByTestId('batch-start').click();
  await page.locator('[data-testid="batch-row"][data-state="done"]').first().waitFor({ timeout: 120_000 });
  await page.getByTestId('batch-cancel').click();
  const summary = page.getByTestId('batch-summary');
  await summary.waitFor({ timeout: 60_000 });
  const text = await summary.innerText();
  assert.match(text, /Batch cancelled/);
  assert.match(text, /Start again with the same settings to resume/);
  const doneBefore = Number(/(\d+) restyled/.exec(text)![1]);
  assert.ok(doneBefore >= 1 && doneBefore < GOOD.length, `cancelled mid-way (${doneBefore} done)`);
  const results = (await filesUnder(out)).filter((f) => f.endsWith('.jpg'));
  assert.equal(results.length, doneBefore, 'the results of the finished files, and no half-written one');
  await shot('batch-04-cancelled');

  await page.getByTestId('batch-start').click();
  await summary.waitFor({ state: 'detached' });
  await summary.waitFor({ timeout: 180_000 });
  const again = await summary.innerText();
  assert.match(again, new RegExp(`${GOOD.length - doneBefore} restyled, ${doneBefore} already done, 1 failed`));
  const skipped = page.locator('[data-testid="batch-row"][data-state="skipped"]');
  assert.equal(await skipped.count(), doneBefore);
  assert.match(await skipped.first().innerText(), /done in an earlier run/);
  assert.equal(await page.locator('[data-testid="batch-row"][data-state="skipped"] img').count(), doneBefore, 'skipped results show their thumbnail too');
  assert.deepEqual(await filesUnder(out), [...GOOD.map(outputOf), '.studio-batch.jsonl'].sort());
  await shot('batch-05-resumed');
});

test('a large folder stays light: the results already there are kept, and at most 200 thumbnails are shown', async () => {
  // 260 photos whose results are already in the output folder (from elsewhere: the journal does not
  // know them), so the batch skips them all quickly: a stand-in for resuming a big shoot.
  const many = path.join(tmp, 'many'), out = path.join(tmp, 'out-many');
  await mkdir(many);
  await mkdir(out);
  const tiny = await sharp({ create: { width: 24, height: 16, channels: 3, background: '#6a8caf' } }).jpeg().toBuffer();
  const N = 260;
  for (let k = 0; k < N; k++) {
    const name = `IMG_${String(k).padStart(4, '0')}`;
    await writeFile(path.join(many, `${name}.jpg`), tiny);
    await writeFile(path.join(out, `${name}-photo-Dune.jpg`), tiny);
  }
  await setFolders(many, out);
  await page.getByTestId('batch-start').click();
  const summary = page.getByTestId('batch-summary');
  await summary.waitFor({ state: 'detached' });
  await summary.waitFor({ timeout: 120_000 });
  assert.match(await summary.innerText(), new RegExp(`0 restyled, ${N} already done, 0 failed of ${N}`));
  assert.equal(await page.locator('[data-testid="batch-row"][data-state="skipped"]').count(), N);
  const thumbs = await page.locator('[data-testid="batch-row"] img').count();
  assert.ok(thumbs > 0 && thumbs <= 200, `${thumbs} thumbnails shown`);
});

test('the Batch panel follows a queued shoot: its shoots, live counts and workers, then cancel', async () => {
  const missing = redisMissing();
  test.skip(Boolean(missing), missing);
  const redis = await startRedis();
  const env = { ...process.env, STUDIO_QUEUE_LOCK_MS: '2000', STUDIO_WASM_THREADS: '1' };
  const cli = (args: string[]) => {
    const p = spawn(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    return { p, out: () => text, exit: new Promise<number | null>((r) => p.once('exit', (c) => r(c))) };
  };
  const sendShoot = (inDir: string, outDir: string) => cli(['batch', '--queue', redis.url, '--in', inDir, '--out', outDir, '--method', 'match', '--size', '64', '--style', path.join(tmp, 'photo-Dune.jpg'), '--recursive']);
  const procs: ReturnType<typeof cli>[] = [];
  try {
    // Sent with no worker yet: the panel lists it waiting.
    const first = sendShoot(shoot, path.join(tmp, 'out-queue'));
    procs.push(first);
    await waitFor(() => /shoot \w+: \d+ photos/.test(first.out()), 60_000, 'the shoot to be enqueued');
    const id = /shoot (\w+):/.exec(first.out())![1];
    await page.getByTestId('queue-url').fill(redis.url);
    await page.getByTestId('queue-list').click();
    const row = page.locator(`[data-testid="queue-row"][data-shoot="${id}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(`0 / ${GOOD.length + 1}`));
    await row.getByTestId('queue-follow').click();
    const card = page.getByTestId('queue-shoot');
    await card.waitFor();
    assert.match(await page.getByTestId('queue-connected').innerText(), /0 workers connected/);

    // A worker comes: the card counts its photos, names it, and ends with the damaged file's reason.
    const w = cli(['worker', '--queue', redis.url, '--name', 'e2e-worker', '--backend', 'wasm']);
    procs.push(w);
    await page.locator('[data-testid="queue-shoot"][data-state="finished"]').waitFor({ timeout: 180_000 });
    assert.match(await page.getByTestId('queue-done').innerText(), new RegExp(`^${GOOD.length} done`));
    assert.match(await page.getByTestId('queue-workers').innerText(), /e2e-worker\s+\d+/);
    assert.match(await page.getByTestId('queue-failures').innerText(), /broken\.jpg — (CORRUPT_IMAGE|NOT_AN_IMAGE)/);
    await shot('batch-05-queue-finished');
    assert.equal(await first.exit, 3, 'the sending command ends with the failure too');
    w.p.kill('SIGINT');
    await w.exit;

    // A second shoot, no worker: Cancel shoot from the panel empties it.
    const second = sendShoot(shoot, path.join(tmp, 'out-queue-2'));
    procs.push(second);
    await waitFor(() => /shoot \w+: \d+ photos/.test(second.out()), 60_000, 'the second shoot to be enqueued');
    const id2 = /shoot (\w+):/.exec(second.out())![1];
    await page.getByTestId('queue-list').click();
    await page.locator(`[data-testid="queue-row"][data-shoot="${id2}"]`).getByTestId('queue-follow').click();
    await page.locator('[data-testid="queue-shoot"][data-state="running"]').waitFor();
    await page.getByTestId('queue-cancel').click();
    await page.locator('[data-testid="queue-shoot"][data-state="cancelled"]').waitFor({ timeout: 30_000 });
    assert.equal(await second.exit, 130, 'the sending command reports the cancel');
    assert.equal(existsSync(path.join(tmp, 'out-queue-2', 'coffee-photo-Dune.jpg')), false, 'nothing made after the cancel');
  } finally {
    for (const p of procs) p.p.kill('SIGKILL');
    await redis.stop();
  }
});

test('stopping the server mid-batch cancels it cleanly: whole results only, the journal ready to resume', async () => {
  // A shoot long enough that it cannot finish between the first result and the stop, on any machine.
  const long = path.join(tmp, 'long-shoot');
  await mkdir(long);
  const TOTAL = 40;
  const img = await sharp(path.join(SAMPLES, 'content-coffee.jpg')).resize(96).jpeg().toBuffer();
  for (let k = 0; k < TOTAL; k++) await writeFile(path.join(long, `shot ${String(k).padStart(2, '0')}.jpg`), img);
  const out = path.join(tmp, 'out-3');
  await setFolders(long, out);
  await page.getByTestId('batch-start').click();
  await page.locator('[data-testid="batch-row"][data-state="done"]').first().waitFor({ timeout: 120_000 });
  const t = Date.now();
  const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
  server.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 30 s'), 30_000))]);
  assert.equal(code, 0, `the server exits cleanly (${code})`);
  process.stderr.write(`server stopped mid-batch in ${Date.now() - t} ms\n`);
  const files = await filesUnder(out);
  assert.ok(!files.some((f) => f.endsWith('.tmp')), `no temporary file left: ${files}`);
  const results = files.filter((f) => f.endsWith('.jpg'));
  assert.ok(results.length >= 1 && results.length < TOTAL, `stopped mid-way: ${results.length} of ${TOTAL}`);
  for (const f of results) assert.equal((await sharp(path.join(out, f)).metadata()).format, 'jpeg', `${f} is whole`);
  // Every result on disk is journalled as done; nothing is journalled as done without its result.
  const records = (await readFile(path.join(out, '.studio-batch.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; state?: string; output?: string });
  const done = records.filter((r) => r.type === 'file' && r.state === 'done').map((r) => r.output!).sort();
  assert.deepEqual(done, results.sort());
});
