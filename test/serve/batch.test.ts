/**
 * The Batch panel's back end without an engine: which folders a batch may use (Electron: only those
 * chosen in its dialog; browser: typed paths, checked) and request validation. Batches themselves
 * run end to end in e2e/batch.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StudioHandlers, type StudioHost } from '../../src-main/serve/handlers.ts';
import type { Reply } from '../../src-main/api-contract.ts';
import type { EngineClient } from '../../src-main/worker/client.ts';

const noEngine = { run: () => { throw new Error('the engine must not be reached'); } } as unknown as EngineClient;
const errorOf = (r: Reply<unknown>) => (r.ok ? undefined : r.error);

async function withDirs(fn: (d: string) => Promise<void>) {
  const d = await mkdtemp(path.join(tmpdir(), 'studio-batch-handlers-'));
  try {
    await mkdir(path.join(d, 'in'));
    await writeFile(path.join(d, 'in', 'a.jpg'), 'x');
    await fn(d);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
}

const start = (inDir: string, outDir: string, extra: Record<string, unknown> = {}) =>
  ({ runId: 'b1', inDir, outDir, style: 'styleid', method: 'photo', ...extra });

test('electron: a batch reads and writes only folders chosen in the dialog', () => withDirs(async (d) => {
  const answers: (string | undefined)[] = [path.join(d, 'in'), undefined, path.join(d, 'out')];
  const host: StudioHost = { kind: 'electron', emit: () => undefined, chooseFolder: () => Promise.resolve(answers.shift()) };
  const h = new StudioHandlers(noEngine, host);
  try {
    // The renderer names folders nobody chose: refused, whatever exists there.
    assert.match(errorOf(await h.handle('batchStart', start(path.join(d, 'in'), path.join(d, 'out'))))?.message ?? '', /choose the input folder/);
    assert.deepEqual(await h.handle('batchChooseFolder', { purpose: 'input' }), { ok: true, value: { path: path.join(d, 'in') } });
    assert.deepEqual(await h.handle('batchChooseFolder', { purpose: 'output' }), { ok: true, value: null }, 'a dismissed dialog');
    assert.match(errorOf(await h.handle('batchStart', start(path.join(d, 'in'), path.join(d, 'out'))))?.message ?? '', /choose the output folder/);
    // An input folder is not an output folder because it was chosen as one.
    assert.match(errorOf(await h.handle('batchStart', start(path.join(d, 'in'), path.join(d, 'in'))))?.message ?? '', /choose the output folder/);
    await h.handle('batchChooseFolder', { purpose: 'output' });
    // Both chosen: the folders pass, and the next check (the style image) answers.
    const e = errorOf(await h.handle('batchStart', start(path.join(d, 'in'), path.join(d, 'out'))));
    assert.equal(e?.code, 'FILE_NOT_FOUND');
    assert.match(e?.message ?? '', /style image is no longer open/);
  } finally {
    await h.close();
  }
}));

test('browser: typed folders are checked, with a message that says what is wrong', () => withDirs(async (d) => {
  const h = new StudioHandlers(noEngine, { kind: 'browser', emit: () => undefined });
  try {
    assert.equal(errorOf(await h.handle('batchChooseFolder', { purpose: 'input' }))?.code, 'BAD_ARGUMENT', 'no folder dialog in the browser');
    const cases: [string, string, string, RegExp][] = [
      ['in', path.join(d, 'out'), 'BAD_ARGUMENT', /"in" is not a full path/],
      [path.join(d, 'missing'), path.join(d, 'out'), 'FILE_NOT_FOUND', /input folder .*missing does not exist/],
      [path.join(d, 'in', 'a.jpg'), path.join(d, 'out'), 'BAD_ARGUMENT', /is a file, not a folder/],
      [path.join(d, 'in'), path.join(d, 'in', 'a.jpg'), 'BAD_ARGUMENT', /output .* is a file/],
      [path.join(d, 'in'), path.join(d, 'no', 'such', 'out'), 'FILE_NOT_FOUND', /parent .* does not exist/],
      [path.join(d, 'in'), `${path.join(d, 'in')}/`, 'OUTPUT_IS_INPUT', /must not be the input folder/],
    ];
    for (const [i, o, code, msg] of cases) {
      const e = errorOf(await h.handle('batchStart', start(i, o)));
      assert.equal(e?.code, code, `${i} → ${o}: ${e?.message}`);
      assert.match(e?.message ?? '', msg);
    }
    // Valid folders (the output is created later, inside an existing one): the style is checked next.
    assert.equal(errorOf(await h.handle('batchStart', start(path.join(d, 'in'), path.join(d, 'in', 'styled'))))?.code, 'FILE_NOT_FOUND');
    // Invalid payloads never reach the batch.
    for (const bad of [{ jobs: 0 }, { jobs: 17 }, { overwrite: 'always' }, { method: 'magic' }, { style: '../x' }, { inDir: '' }]) {
      assert.equal(errorOf(await h.handle('batchStart', { ...start(path.join(d, 'in'), path.join(d, 'out')), ...bad }))?.code, 'BAD_ARGUMENT', JSON.stringify(bad));
    }
    // Controls for a batch that is not running say so.
    assert.deepEqual(await h.handle('batchPause', { runId: 'nope' }), { ok: true, value: { ok: false } });
    assert.deepEqual(await h.handle('batchCancel', { runId: 'nope' }), { ok: true, value: { ok: false } });
  } finally {
    await h.close();
  }
}));
