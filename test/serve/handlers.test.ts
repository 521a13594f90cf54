/**
 * The window's back end without the engine: request validation, uploads kept inside its own folder,
 * errors that name the user's file (not the server's copy). Runs are covered end to end in e2e/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { StudioHandlers } from '../../src-main/serve/handlers.ts';
import type { EngineClient } from '../../src-main/worker/client.ts';
import type { ImageRef } from '../../src-main/api-contract.ts';
import { withEnv } from '../env.ts';
import { closeLoopback, listenLoopback } from '../loopback.ts';

const noEngine = { run: () => { throw new Error('the engine must not be reached'); } } as unknown as EngineClient;

function handlers() {
  return new StudioHandlers(noEngine, { kind: 'browser', emit: () => undefined });
}

test('unknown methods and invalid payloads are refused before anything runs', async () => {
  const h = handlers();
  try {
    const unknown = await h.handle('deleteEverything', {});
    assert.equal(unknown.ok, false);
    assert.match(!unknown.ok ? unknown.error.message : '', /unknown request/);
    const proto = await h.handle('__proto__', {});
    assert.equal(proto.ok, false);
    const bad = await h.handle('stylize', { runId: 'r1', method: 'gatys', content: '../../etc/passwd', styles: [] });
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.error.code, 'BAD_ARGUMENT');
    const badBytes = await h.handle('uploadImage', { role: 'content', name: 'a.jpg', bytes: 'not bytes' });
    assert.equal(!badBytes.ok && badBytes.error.code, 'BAD_ARGUMENT');
    const noDialog = await h.handle('openImages', { role: 'content' });
    assert.equal(!noDialog.ok && noDialog.error.code, 'BAD_ARGUMENT');
    const missing = await h.handle('stylize', { runId: 'r2', method: 'gatys', content: 'nope', styles: ['nope'] });
    assert.equal(!missing.ok && missing.error.code, 'FILE_NOT_FOUND');
    const exp = await h.handle('exportResult', { resultId: 'nope', format: 'jpeg', bitDepth: 16 });
    assert.equal(exp.ok, false);
  } finally {
    await h.close();
  }
});

test('an upload is kept under the server\'s own folder whatever its name, and gives a thumbnail', async () => {
  const h = handlers();
  try {
    const bytes = new Uint8Array(await readFile('assets/samples/content-chelsea.jpg'));
    const r = await h.handle('uploadImage', { role: 'content', name: '../../../../tmp/evil/cat.jpg', bytes });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
    const ref = r.value as ImageRef;
    assert.equal(ref.name, 'cat.jpg');
    assert.equal(ref.width, 451);
    assert.equal(ref.height, 300);
    assert.equal(ref.thumbnail[0], 0xff, 'a JPEG thumbnail');
    const stored = (h as unknown as { images: Map<string, { path: string }> }).images.get(ref.id)!.path;
    assert.ok(stored.startsWith(path.join(tmpdir(), 'style-studio-')), stored);
  } finally {
    await h.close();
  }
});

test('an unreadable upload fails with the user\'s file name and a hint, and leaves nothing open', async () => {
  const h = handlers();
  try {
    const r = await h.handle('uploadImage', { role: 'style', name: 'holiday.jpg', bytes: new TextEncoder().encode('not an image') });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.error.code, 'NOT_AN_IMAGE');
    assert.match(r.error.message, /^holiday\.jpg/);
    assert.doesNotMatch(r.error.message, /style-studio-/);
    assert.ok(r.error.hint);
    assert.equal((h as unknown as { images: Map<string, unknown> }).images.size, 0);
  } finally {
    await h.close();
  }
});

test('a catalogue model downloads once at a time: a second fetch while the first runs is refused, and cancel frees it', async () => {
  // A server that sends a few bytes and then holds the download open.
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1_000_000 });
    res.write(Buffer.alloc(100));
  });
  const base = await listenLoopback(server);
  const root = await mkdtemp(path.join(tmpdir(), 'handlers-fetch-'));
  try {
    await withEnv({ STUDIO_MODELS_DIR: root, STUDIO_PHOTOWCT_URL: `${base}/photo_wct.pth` }, async () => {
      const h = handlers();
      const first = h.handle('fetchModel', { runId: 'one', model: 'photowct' });
      // Until the first bytes are on disk (the first request also loads the importers).
      const part = path.join(root, 'downloads', 'photowct.download.part');
      for (let i = 0; i < 200 && !(await stat(part).then((st) => st.size === 100, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
      const second = await h.handle('fetchModel', { runId: 'two', model: 'photowct' });
      assert.equal(second.ok, false);
      assert.match(!second.ok ? second.error.message : '', /already downloading/);
      await h.handle('cancel', { runId: 'one' });
      const r = await first;
      assert.equal(!r.ok && r.error.code, 'CANCELLED');
      const catalog = await h.handle('catalog', {});
      assert.ok(catalog.ok && (catalog.value as Array<{ id: string; partialBytes: number }>).find((m) => m.id === 'photowct')!.partialBytes === 100, `what arrived is kept for a resume: ${JSON.stringify(catalog)}`);
    });
  } finally {
    await closeLoopback(server);
    await rm(root, { recursive: true, force: true });
  }
});
