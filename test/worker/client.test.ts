import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EngineClient } from '../../src-main/worker/client.ts';
import { writeTinyFixtures } from '../../src-main/engine/models/tiny.ts';
import { GatysParams, type Job, type JobEvent } from '../../src-main/protocol.ts';
import { CancelledError, StudioError } from '../../src-main/errors.ts';
import { testBackends } from '../backends.ts';

const samples = path.resolve('assets/samples');

// The worker on each accelerated backend: tfjs memory back where it started after every kind of job end.
for (const backend of (await testBackends()).filter((b) => b === 'wasm' || b === 'webgpu')) describe(backend, () => {
  let dir = '';
  let model = '';
  let client: EngineClient;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'studio-worker-'));
    model = (await writeTinyFixtures(dir)).modelDir;
    client = new EngineClient({ backend });
  });
  after(async () => {
    await client.close();
    await rm(dir, { recursive: true, force: true });
  });

  const memory = () => client.run<{ numTensors: number }>({ kind: 'memory' }).result;
  const job = (iters: number, out: string): Job => ({
    kind: 'stylize-gatys', model,
    content: path.join(samples, 'content-chelsea.jpg'), styles: [path.join(samples, 'art-starry_night.jpg')],
    params: GatysParams.parse({ size: 64, iters, previewEvery: 5 }), output: { out },
  });

  test(`[${backend}] a job runs in the worker and streams progress and previews`, async () => {
    const before = await memory();
    const events: JobEvent[] = [];
    const out = path.join(dir, 'a.png');
    const r = await client.run<{ out: string; iterations: number }>(job(10, out), (e) => events.push(e)).result;
    assert.equal(r.iterations, 10);
    assert.ok((await stat(out)).size > 0);
    const its = events.flatMap((e) => (e.type === 'progress' && e.iteration ? [e.iteration] : []));
    assert.deepEqual(its, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const previews = events.filter((e) => e.type === 'preview');
    assert.equal(previews.length, 2);
    const p = previews[0] as Extract<JobEvent, { type: 'preview' }>;
    assert.equal(p.rgb.length, p.width * p.height * 3);
    assert.deepEqual(await memory(), before);
  });

  test(`[${backend}] cancel stops a running job within one step and frees its tensors`, async () => {
    const before = await memory();
    let seen = 0;
    const running = client.run(job(10000, path.join(dir, 'never.png')), (e) => {
      if (e.type === 'progress' && e.iteration && ++seen === 3) running.cancel();
    });
    await assert.rejects(running.result, CancelledError);
    assert.ok(seen >= 3 && seen <= 4, `stopped after ${seen} iterations`);
    await assert.rejects(stat(path.join(dir, 'never.png')), /ENOENT/);
    assert.deepEqual(await memory(), before);
  });

  test(`[${backend}] a failing job reports a StudioError and frees its tensors; the worker keeps serving`, async () => {
    const before = await memory();
    const bad = { ...job(5, path.join(dir, 'b.png')), content: path.join(dir, 'missing.jpg') };
    await assert.rejects(client.run(bad).result, (e: unknown) => e instanceof StudioError && e.code === 'FILE_NOT_FOUND');
    const good = job(5, path.join(dir, 'c.png')) as Extract<Job, { kind: 'stylize-gatys' }>;
    const invalid = { ...good, params: { ...good.params, iters: -1 } };
    await assert.rejects(client.run(invalid).result, (e: unknown) => e instanceof StudioError && e.code === 'BAD_ARGUMENT');
    assert.deepEqual(await memory(), before);
  });
});
