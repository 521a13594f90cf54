// Batch throughput: files per minute of `studio batch --method photo` on a folder of photos, with the
// fast and the exact smoothing, one engine and two side by side, and the share of time spent outside
// the engine's compute (decoding, encoding, journal, hashing, dispatch).
//   node --import tsx bench/batch.ts [--files 50] [--size 1024] [--model tiny|full|NAME]
//        [--modes fast,exact] [--jobs 1,2] [--backend NAME]
// The photos are the bundled samples, resized to --size and recoloured so that no two are alike.
// --model full (default tiny) uses full-width random VGG19 weights and decoders: the compute of the
// real network (trained weights cost the same); tiny measures the pipeline around a cheap network.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { makeShoot, SAMPLES } from './shoot.ts';
import { randomVgg19, writeTinyFixtures } from '../src-main/engine/models/tiny.ts';
import { FULL_WIDTHS } from '../src-main/engine/models/vgg19.ts';
import { saveVgg19 } from '../src-main/engine/models/store.ts';
import { encoderHash, saveDecoder } from '../src-main/engine/models/decoders.ts';
import { initDecoder, LEVELS } from '../src-main/engine/photo/autoencoder.ts';
import { mulberry32 } from '../src-main/engine/random.ts';

const { values } = parseArgs({ options: {
  files: { type: 'string' }, size: { type: 'string' }, model: { type: 'string' }, modes: { type: 'string' }, jobs: { type: 'string' }, backend: { type: 'string' },
} });
const files = Number(values.files ?? 50);
const size = Number(values.size ?? 1024);
const modes = (values.modes ?? 'fast,exact').split(',');
const jobsList = (values.jobs ?? '1,2').split(',').map(Number);
const root = await mkdtemp(path.join(os.tmpdir(), 'studio-bench-batch-'));

try {
  let model = values.model ?? 'tiny';
  if (model === 'tiny') {
    model = (await writeTinyFixtures(path.join(root, 'tiny'))).modelDir;
  } else if (model === 'full') {
    const dir = path.join(root, 'full');
    await saveVgg19(dir, randomVgg19(FULL_WIDTHS, 1));
    const hash = await encoderHash(dir);
    const rng = mulberry32(3);
    for (const level of LEVELS) await saveDecoder(path.join(dir, 'decoders'), initDecoder(level, FULL_WIDTHS, rng), { level, encoderSha256: hash, widths: FULL_WIDTHS });
    model = dir;
  }
  const inDir = path.join(root, 'in');
  await makeShoot(inDir, files, size);
  console.log(`batch: ${files} photos at ${size} px (longest side), model ${values.model ?? 'tiny'}, ${os.availableParallelism()} cores`);
  for (const mode of modes) {
    for (const jobs of jobsList) {
      const out = path.join(root, `out-${mode}-${jobs}`);
      const args = ['batch', '--in', inDir, '--out', out, '--style', path.join(SAMPLES, 'photo-Dune.jpg'), '--method', 'photo', '--smooth', mode,
        '--size', String(size), '--model', model, '--jobs', String(jobs), '--quiet', ...(values.backend ? ['--backend', values.backend] : [])];
      const t = performance.now();
      const r = spawnSync(process.execPath, [fileURLToPath(new URL('../bin/studio.mjs', import.meta.url)), ...args], { encoding: 'utf8' });
      const s = (performance.now() - t) / 1000;
      if (r.status !== 0) {
        console.log(`${mode} --jobs ${jobs}: failed (${r.status})\n${r.stderr.slice(-2000)}`);
        continue;
      }
      const share = /\(([\d.]+)% of it outside the engine\)/.exec(r.stdout)?.[1] ?? '?';
      console.log(`photo, ${mode} smoothing, --jobs ${jobs}: ${(files / (s / 60)).toFixed(1)} files/min (${s.toFixed(0)} s for ${files}); ${share}% of the time outside the engine (target < 10%)`);
    }
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
