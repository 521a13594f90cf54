// `npm run bench`: every benchmark section, each in its own process (so each peak RSS is its own),
// one after the other; or one section with its own options:
//   npm run bench                              all sections with their defaults
//   npm run bench -- vgg --backend cpu --sizes 256
//   npm run bench -- photowct --sizes 512x512
//   npm run bench -- smooth --sizes 512x320 --no-direct
// Sections write or print their figures with the backend, sizes and thread counts; entries with a
// median time are merged into bench/results.json.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SECTIONS: Record<string, { file: string; what: string }> = {
  vgg: { file: 'run.ts', what: 'VGG19 forward, forward+backward and a Gatys L-BFGS iteration (issue 2)' },
  kernels: { file: 'kernels.ts', what: 'the WebAssembly gradient kernels against the stock ones' },
  wct: { file: 'wct.ts', what: 'eigen-solver, matrix square roots and WCT at relu4_1 size' },
  photowct: { file: 'photowct.ts', what: 'PhotoWCT per stage at 512×512 and 1024×512' },
  smooth: { file: 'smooth.ts', what: 'exact smoothing at 512×320, 1024×640, 2048×1280 and the guided filter' },
  precision: { file: 'precision.ts', what: 'mixed-precision training: underflow, loss, step time, file sizes' },
  match: { file: 'match.ts', what: 'colour match: the whole method at 1024 px (fast, none, exact vs the smoothing alone) and quality on every bundled pair' },
  fullres: { file: 'fullres.ts', what: 'full resolution: a 1024-px look carried to 24 MP and 45 MP photos (time, peak RSS, PSNR, detail)' },
  batch: { file: 'batch.ts', what: 'studio batch: files per minute at 1024 px, fast and exact smoothing, --jobs 1 and 2' },
  queue: { file: 'queue.ts', what: 'studio batch --queue: photos per minute with 1 and 2 workers beside the local --jobs 1 and 2, and the queue\'s own cost a photo' },
};

const [first, ...rest] = process.argv.slice(2);
const chosen = first && !first.startsWith('--') ? [first] : Object.keys(SECTIONS);
const args = first && !first.startsWith('--') ? rest : process.argv.slice(2);
let failed = 0;
for (const name of chosen) {
  const s = SECTIONS[name];
  if (!s) {
    console.error(`unknown section "${name}"; sections: ${Object.keys(SECTIONS).join(', ')}`);
    process.exit(2);
  }
  const file = fileURLToPath(new URL(`./${s.file}`, import.meta.url));
  if (!existsSync(file)) continue;
  console.log(`\n=== ${name}: ${s.what}`);
  // Options given without a section go to every section that shares them (--backend); the rest
  // keep their defaults.
  const pass = chosen.length === 1 ? args : args.filter((a, i) => a === '--backend' || args[i - 1] === '--backend');
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...pass], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
