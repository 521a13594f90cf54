import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, cp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EngineClient } from '../../../src-main/worker/client.ts';
import { writeTinyFixtures, tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { saveVgg19 } from '../../../src-main/engine/models/store.ts';
import { encoderHash, loadDecoder } from '../../../src-main/engine/models/decoders.ts';
import { TrainDecoderJob, type Job, type JobEvent } from '../../../src-main/protocol.ts';
import { CancelledError, StudioError } from '../../../src-main/errors.ts';

let dir = '';
let model = '';
let photos = '';
let client: EngineClient;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-train-'));
  model = (await writeTinyFixtures(dir)).modelDir;
  photos = path.join(dir, 'photos');
  await cp(path.resolve('assets/samples'), photos, { recursive: true, filter: (f) => !/large-|CREDITS/.test(f) });
  client = new EngineClient({ backend: 'wasm' });
});
after(async () => {
  await client.close();
  await rm(dir, { recursive: true, force: true });
});

const job = (o: Partial<TrainDecoderJob>): Job => TrainDecoderJob.parse({ kind: 'train-decoder', level: 1, images: photos, model, crop: 32, batch: 4, lr: 1e-3, ...o });
type Result = { decoder: string; steps: number; firstLoss: number; finalLoss: number; resumedFrom: number };

test('decoder training on the tiny network halves the reconstruction loss within 200 steps on small crops', async () => {
  const r = await client.run<Result>(job({ level: 2, steps: 200, out: path.join(dir, 'd2') })).result;
  assert.equal(r.steps, 200);
  assert.ok(r.finalLoss <= r.firstLoss / 2, `loss ${r.firstLoss} → ${r.finalLoss}`);
  const { meta } = await loadDecoder(path.join(dir, 'd2'), 2, await encoderHash(model));
  assert.equal(meta.steps, 200);
});

test('an interrupted run resumes from its checkpoint and ends with the uninterrupted run\'s weights', async () => {
  const memory = () => client.run<{ numTensors: number }>({ kind: 'memory' }).result;
  const start = await memory();
  const whole = await client.run<Result>(job({ steps: 30, out: path.join(dir, 'whole'), checkpointEvery: 10 })).result;
  let seen = 0;
  const running = client.run<Result>(job({ steps: 30, out: path.join(dir, 'cut'), checkpointEvery: 10 }), (e: JobEvent) => {
    if (e.type === 'progress' && e.iteration && ++seen === 17) running.cancel();
  });
  await assert.rejects(running.result, CancelledError);
  const resumed = await client.run<Result>(job({ steps: 30, out: path.join(dir, 'cut'), checkpointEvery: 10, resume: true })).result;
  assert.ok(resumed.resumedFrom >= 17 && resumed.resumedFrom <= 18, `resumed from ${resumed.resumedFrom}`);
  const hash = await encoderHash(model);
  const a = (await loadDecoder(path.join(dir, 'whole'), 1, hash)).weights;
  const b = (await loadDecoder(path.join(dir, 'cut'), 1, hash)).weights;
  for (const [name, w] of a) {
    assert.deepEqual(Array.from(b.get(name)!.kernel), Array.from(w.kernel), `${name} kernel`);
    assert.deepEqual(Array.from(b.get(name)!.bias), Array.from(w.bias), `${name} bias`);
  }
  assert.equal(resumed.finalLoss, whole.finalLoss);
  assert.deepEqual(await memory(), start, 'training, cancelling and resuming return every tensor');
});

test('a decoder made for another encoder, or a missing one, is a clear error', async () => {
  const other = path.join(dir, 'other-model');
  await saveVgg19(other, tinyVgg19(2));
  await client.run(job({ steps: 2, out: path.join(dir, 'd1') })).result;
  await assert.rejects(loadDecoder(path.join(dir, 'd1'), 1, await encoderHash(other)),
    (e: unknown) => e instanceof StudioError && e.code === 'BAD_MODEL' && /trained for another encoder/.test(e.message));
  await assert.rejects(loadDecoder(path.join(dir, 'd1'), 3, await encoderHash(model)),
    (e: unknown) => e instanceof StudioError && e.code === 'MODEL_MISSING' && /level 3/.test(e.message));
  await assert.rejects(client.run(job({ steps: 2, images: path.join(dir, 'nowhere') })).result,
    (e: unknown) => e instanceof StudioError && e.code === 'FILE_NOT_FOUND');
});
