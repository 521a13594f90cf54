/**
 * The Electron main process (src-main/app/main.ts) with a stand-in for Electron's API (no binary
 * here): the window's security settings, navigation/new-window/permission blocking, the menu, IPC
 * accepted only from our page and validated, native dialogs for open and export (never over an
 * original), the remembered window size, and a quit during a run that cancels it before exiting.
 * The real engine worker runs the jobs. The window itself is e2e/electron.test.ts's part.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { quitMain, startMain } from './electron-stub/harness.ts';
import type { ImageRef, Reply, RunResult } from '../../src-main/api-contract.ts';

interface Stub {
  windows: { options: Record<string, unknown> & { webPreferences: Record<string, unknown> }; webContents: FakeContents; loaded?: string; emit(ev: string, ...a: unknown[]): void }[];
  handlers: Map<string, (event: unknown, ...args: unknown[]) => Promise<unknown> | unknown>;
  appListeners: Record<string, ((...a: unknown[]) => void)[]>;
  contentsCreated: unknown[];
  menu: { template: MenuItem[] } | null;
  sent: [string, unknown][];
  opened: string[];
  quitCalls: number;
  userData: string;
  nextOpen?: { canceled: boolean; filePaths: string[] };
  nextSave?: { canceled: boolean; filePath?: string };
  permissionHandler?: (wc: unknown, perm: string, cb: (ok: boolean) => void) => void;
}
interface FakeContents {
  mainFrame: { url: string; parent: null };
  listeners: Record<string, ((...a: unknown[]) => void)[]>;
  windowOpenHandler(d: { url: string }): { action: string };
}
interface MenuItem { label?: string; role?: string; submenu?: MenuItem[]; click?: () => void }

let tmp: string;
let stub: Stub;
const samples = path.resolve('assets/samples');

before(async () => {
  ({ tmp, stub } = await startMain<Stub>('studio-main-'));
});

// If the quit test did not get to it, quit now: the engine worker would keep this process alive.
after(() => quitMain(stub, tmp));

const win = () => stub.windows[0];
function call<T>(method: string, payload: unknown, event?: unknown): Promise<Reply<T>> {
  const ev = event ?? { sender: win().webContents, senderFrame: win().webContents.mainFrame };
  return Promise.resolve(stub.handlers.get('studio:call')!(ev, method, payload)) as Promise<Reply<T>>;
}

test('a second launch brings this window forward (restored if minimised, focused) instead of opening another', () => {
  const w = win() as unknown as { minimized?: boolean; restored?: number; focused?: number };
  w.minimized = true;
  for (const fn of stub.appListeners['second-instance'] ?? []) fn({}, ['studio'], process.cwd());
  assert.equal(stub.windows.length, 1, 'no second window');
  assert.equal(w.restored, 1);
  assert.equal(w.focused, 1);
});

test('one window with context isolation, no Node, a sandbox and the bundled preload', () => {
  assert.equal(stub.windows.length, 1);
  const p = win().options.webPreferences;
  assert.equal(p.contextIsolation, true);
  assert.equal(p.nodeIntegration, false);
  assert.equal(p.sandbox, true);
  assert.match(String(p.preload), /preload[/\\]index\.cjs$/);
  assert.match(String(win().loaded), /renderer[/\\]index\.html$/);
});

test('navigation, new windows, web views and permission requests are refused', () => {
  let prevented = 0;
  const ev = { preventDefault: () => { prevented++; } };
  for (const fn of win().webContents.listeners['will-navigate'] ?? []) fn(ev, 'https://example.com');
  assert.equal(prevented, 1);
  assert.deepEqual(win().webContents.windowOpenHandler({ url: 'https://example.com/help' }), { action: 'deny' });
  assert.deepEqual(win().webContents.windowOpenHandler({ url: 'file:///etc/passwd' }), { action: 'deny' });
  assert.deepEqual(stub.opened, ['https://example.com/help'], 'only https links go to the browser');
  for (const fn of win().webContents.listeners['will-attach-webview'] ?? []) fn(ev);
  assert.equal(prevented, 2);
  let granted: boolean | undefined;
  stub.permissionHandler!({}, 'media', (ok) => { granted = ok; });
  assert.equal(granted, false);
});

test('the menu has File (open photo, open style, export, quit), Edit and View; its items reach the window', () => {
  const top = stub.menu!.template;
  const file = top.find((m) => m.label === 'File')!;
  assert.ok(top.some((m) => m.role === 'editMenu') && top.some((m) => m.role === 'viewMenu'));
  const labels = file.submenu!.map((m) => m.label ?? m.role);
  for (const l of ['Open Photo…', 'Open Style…', 'Export…', 'quit']) assert.ok(labels.includes(l), l);
  file.submenu!.find((m) => m.label === 'Export…')!.click!();
  assert.deepEqual(stub.sent.at(-1), ['studio:event', { type: 'menu', action: 'export' }]);
});

test('IPC: only our page\'s top frame may call, and every payload is validated', async () => {
  const fromIframe = await call('info', {}, { sender: win().webContents, senderFrame: { url: 'file:///x', parent: {} } });
  assert.equal(fromIframe.ok, false);
  const fromElsewhere = await call('info', {}, { sender: {}, senderFrame: win().webContents.mainFrame });
  assert.equal(fromElsewhere.ok, false);
  const remotePage = await call('info', {}, { sender: win().webContents, senderFrame: { url: 'https://evil.example/', parent: null } });
  assert.equal(remotePage.ok, false);
  const bad = await call('exportResult', { resultId: '../../x', format: 'gif' });
  assert.equal(!bad.ok && bad.error.code, 'BAD_ARGUMENT');
  const info = await call<{ host: string; backend: { name: string }; models: { name: string }[] }>('info', undefined);
  assert.ok(info.ok, JSON.stringify(info));
  assert.equal(info.value.host, 'electron');
  assert.equal(info.value.backend.name, 'wasm');
  assert.deepEqual(info.value.models.map((m) => m.name), ['tiny-vgg19']);
});

test('open with the native dialog, run, and export where the user chose — never over the original', async () => {
  stub.nextOpen = { canceled: true, filePaths: [] };
  const dismissed = await call<ImageRef[] | null>('openImages', { role: 'content' });
  assert.deepEqual(dismissed, { ok: true, value: null });
  stub.nextOpen = { canceled: false, filePaths: [path.join(samples, 'content-coffee.jpg')] };
  const content = await call<ImageRef[]>('openImages', { role: 'content' });
  assert.ok(content.ok, JSON.stringify(content));
  stub.nextOpen = { canceled: false, filePaths: [path.join(samples, 'art-the_scream.jpg')] };
  const style = await call<ImageRef[]>('openImages', { role: 'style' });
  assert.ok(style.ok);
  assert.equal(content.value[0].name, 'content-coffee.jpg');

  const run = await call<RunResult>('stylize', {
    runId: 'main-test-1', method: 'gatys', content: content.value[0].id, styles: [style.value[0].id], phases: 'preview',
    previewSize: 96, gatys: { size: 96, iters: 3 }, model: 'tiny-vgg19',
  });
  assert.ok(run.ok, JSON.stringify(!run.ok && run.error));
  assert.ok(stub.sent.some(([, e]) => (e as { type: string; runId?: string }).type === 'progress' && (e as { runId: string }).runId === 'main-test-1'), 'progress reached the window');

  stub.nextSave = { canceled: false, filePath: path.join(samples, 'content-coffee.jpg') };
  const before = await readFile(path.join(samples, 'content-coffee.jpg'));
  const over = await call('exportResult', { resultId: run.value.resultId, format: 'jpeg' });
  assert.equal(!over.ok && over.error.code, 'OUTPUT_IS_INPUT');
  assert.deepEqual(await readFile(path.join(samples, 'content-coffee.jpg')), before, 'the original is untouched');

  const out = path.join(tmp, 'coffee-styled.tif');
  stub.nextSave = { canceled: false, filePath: out };
  const saved = await call<{ path: string; format: string; bitDepth: number }>('exportResult', { resultId: run.value.resultId, format: 'tiff', bitDepth: 16 });
  assert.ok(saved.ok, JSON.stringify(saved));
  assert.equal(saved.value.path, out);
  const m = await sharp(out).metadata();
  assert.equal(m.format, 'tiff');
  assert.equal(m.depth, 'ushort');
  assert.equal(Math.max(m.width!, m.height!), 96);
});

test('the window size is remembered', async () => {
  win().emit('close');
  await new Promise((r) => setTimeout(r, 100));
  const saved = JSON.parse(await readFile(path.join(tmp, 'window-state.json'), 'utf8'));
  assert.deepEqual({ width: saved.width, height: saved.height }, { width: 1111, height: 777 });
});

test('quitting during a run cancels it, stops the engine, then quits', async () => {
  const content = await call<ImageRef>('uploadImage', { role: 'content', name: 'a.jpg', bytes: new Uint8Array(await readFile(path.join(samples, 'content-chelsea.jpg'))) });
  const style = await call<ImageRef>('uploadImage', { role: 'style', name: 'b.jpg', bytes: new Uint8Array(await readFile(path.join(samples, 'art-shipwreck.jpg'))) });
  assert.ok(content.ok && style.ok);
  const long = call<RunResult>('stylize', {
    runId: 'main-test-quit', method: 'gatys', content: content.value.id, styles: [style.value.id], phases: 'full', gatys: { size: 96, iters: 100000 }, model: 'tiny-vgg19',
  });
  // Wait until it is optimising.
  for (let i = 0; i < 400 && !stub.sent.some(([, e]) => (e as { runId?: string; stage?: string }).runId === 'main-test-quit' && /optimise/.test((e as { stage?: string }).stage ?? '')); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  let prevented = false;
  const t0 = Date.now();
  for (const fn of stub.appListeners['before-quit']) fn({ preventDefault: () => { prevented = true; } });
  assert.ok(prevented, 'the first quit waits for the clean-up');
  const r = await long;
  assert.equal(!r.ok && r.error.code, 'CANCELLED');
  for (let i = 0; i < 200 && stub.quitCalls === 0; i++) await new Promise((res) => setTimeout(res, 25));
  assert.equal(stub.quitCalls, 1, 'then it quits');
  assert.ok(Date.now() - t0 < 5000, 'promptly');
  // A second quit (the one it started) goes through.
  let preventedAgain = false;
  for (const fn of stub.appListeners['before-quit']) fn({ preventDefault: () => { preventedAgain = true; } });
  assert.equal(preventedAgain, false);
});
