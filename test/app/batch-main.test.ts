/**
 * The Batch panel through the Electron main process (src-main/app/main.ts with the stand-in for
 * Electron's API, as main-process.test.ts): folders come only from its native folder dialog, a batch
 * runs on the engine worker with file events and thumbnails sent to the window, and quitting during
 * a batch cancels it cleanly (whole results only, journalled, ready to resume).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { quitMain, startMain } from './electron-stub/harness.ts';
import type { ImageRef, Reply, ServerEvent } from '../../src-main/api-contract.ts';
import type { BatchSummaryReply } from '../../src-main/batch-contract.ts';

interface Stub {
  windows: { webContents: { mainFrame: { url: string; parent: null } } }[];
  handlers: Map<string, (event: unknown, ...args: unknown[]) => Promise<unknown> | unknown>;
  appListeners: Record<string, ((...a: unknown[]) => void)[]>;
  sent: [string, unknown][];
  contentsCreated: unknown[];
  menu: unknown;
  opened: string[];
  quitCalls: number;
  userData: string;
  nextOpen?: { canceled: boolean; filePaths: string[] };
}

let tmp: string;
let stub: Stub;
let dialogs: Record<string, unknown>[] = [];
const samples = path.resolve('assets/samples');

before(async () => {
  ({ tmp, stub } = await startMain<Stub>('studio-batch-main-', async () => {
    // Record what the main process asks its open dialogs for (the stub answers with nextOpen).
    const electron = await import('./electron-stub/electron.mjs' as string) as { dialog: { showOpenDialog(...a: unknown[]): Promise<unknown> } };
    const answer = electron.dialog.showOpenDialog;
    electron.dialog.showOpenDialog = (_win: unknown, options: Record<string, unknown>) => {
      dialogs.push(options);
      return answer();
    };
  }));
});

after(() => quitMain(stub, tmp));

function call<T>(method: string, payload: unknown): Promise<Reply<T>> {
  const wc = stub.windows[0].webContents;
  return Promise.resolve(stub.handlers.get('studio:call')!({ sender: wc, senderFrame: wc.mainFrame }, method, payload)) as Promise<Reply<T>>;
}
const value = <T>(r: Reply<T>): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
};
async function choose(purpose: 'input' | 'output', dir: string): Promise<void> {
  stub.nextOpen = { canceled: false, filePaths: [dir] };
  assert.deepEqual(value(await call('batchChooseFolder', { purpose })), { path: dir });
}
const batchEvents = (runId: string) => stub.sent
  .filter(([ch]) => ch === 'studio:event').map(([, e]) => e as ServerEvent)
  .filter((e): e is Extract<ServerEvent, { type: 'batchFile' | 'batchProgress' | 'batchDone' }> => 'runId' in e && e.runId === runId && e.type.startsWith('batch'));

async function shoot(dir: string, n: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let k = 0; k < n; k++) await sharp(path.join(samples, 'content-coffee.jpg')).resize(160).modulate({ hue: 25 * k }).jpeg().toFile(path.join(dir, `p${k}.jpg`));
}

let styleId: string;
const settings = (runId: string, inDir: string, outDir: string) => ({
  runId, inDir, outDir, style: styleId, method: 'photo', photo: { size: 40, smooth: 'fast' }, model: 'tiny-vgg19', format: 'png',
});

test('folders only from the folder dialog; a batch runs with file events, thumbnails and results on disk', async () => {
  const inDir = path.join(tmp, 'shoot'), outDir = path.join(tmp, 'out');
  await shoot(inDir, 2);
  await writeFile(path.join(inDir, 'broken.jpg'), 'not a JPEG');
  stub.nextOpen = { canceled: false, filePaths: [path.join(samples, 'photo-Dune.jpg')] };
  styleId = value(await call<ImageRef[]>('openImages', { role: 'style' }))![0].id;

  // Paths the renderer sends without a dialog: refused.
  const refused = await call('batchStart', settings('m1', inDir, outDir));
  assert.match(!refused.ok ? refused.error.message : '', /choose the input folder/);
  dialogs = [];
  await choose('input', inDir);
  await choose('output', outDir);
  assert.deepEqual(dialogs.map((d) => d.properties), [['openDirectory'], ['openDirectory', 'createDirectory', 'promptToCreate']]);

  const s = value(await call<BatchSummaryReply>('batchStart', settings('m1', inDir, outDir)));
  assert.equal(s.done, 2);
  assert.equal(s.failedCount, 1);
  assert.equal(s.failed[0].input, 'broken.jpg');
  const events = batchEvents('m1');
  const files = events.filter((e) => e.type === 'batchFile');
  assert.equal(files.length, 3);
  for (const f of files.filter((e) => e.outcome === 'done')) {
    const m = await sharp(Buffer.from(f.thumbnail!)).metadata();
    assert.equal(m.format, 'jpeg', 'a JPEG thumbnail with each result');
  }
  assert.ok(events.some((e) => e.type === 'batchProgress' && e.running.length === 1), 'a running file is announced');
  assert.equal(events.at(-1)?.type, 'batchDone', 'the summary comes last');
  assert.deepEqual((await readdir(outDir)).sort(), ['.studio-batch.jsonl', 'p0-photo-Dune.png', 'p1-photo-Dune.png']);
});

test('quitting during a batch cancels it: whole results only, journalled, and the process quits', async () => {
  const inDir = path.join(tmp, 'shoot-2'), outDir = path.join(tmp, 'out-2');
  await shoot(inDir, 8);
  await choose('input', inDir);
  await choose('output', outDir);
  const reply = call<BatchSummaryReply>('batchStart', settings('m2', inDir, outDir));
  for (let i = 0; i < 600 && !batchEvents('m2').some((e) => e.type === 'batchFile' && e.outcome === 'done'); i++) await new Promise((r) => setTimeout(r, 50));
  const t = Date.now();
  for (const fn of stub.appListeners['before-quit'] ?? []) fn({ preventDefault: () => undefined });
  const s = value(await reply);
  assert.equal(s.stopped?.code, 'CANCELLED');
  assert.ok(s.done >= 1 && s.done < 8, `stopped mid-way (${s.done} done)`);
  for (let i = 0; i < 400 && stub.quitCalls === 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(stub.quitCalls, 1, 'the app quits once the batch has stopped');
  assert.ok(Date.now() - t < 10_000, `quit in ${Date.now() - t} ms`);
  const files = (await readdir(outDir)).sort();
  assert.ok(!files.some((f) => f.endsWith('.tmp')), `no temporary file: ${files}`);
  const results = files.filter((f) => f.endsWith('.png'));
  assert.equal(results.length, s.done);
  const done = (await readFile(path.join(outDir, '.studio-batch.jsonl'), 'utf8')).trim().split('\n')
    .map((l) => JSON.parse(l) as { state?: string; output?: string }).filter((r) => r.state === 'done').map((r) => r.output).sort();
  assert.deepEqual(done, results);
});
