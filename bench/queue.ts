// The queue against the local batch: photos per minute of colour match at 1024 px with one and two
// `studio worker`s (one engine each) on this machine, beside `studio batch --jobs 1` and `--jobs 2`
// on the same photos, and the queue's own cost a photo (target < 2% of the photo's job).
//   node --import tsx bench/queue.ts [--files 48] [--size 1024] [--backend NAME]
// Redis is Debian's redis-server on a loopback port, append-only file on with fsync on every write
// (the setting that survives a restart). Every run starts its processes cold (engine start included).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { makeShoot, SAMPLES } from './shoot.ts';
import { Queue } from 'bullmq';
import { PREFIX } from '../src-main/queue/connection.ts';
import { queueName } from '../src-main/queue/shoots.ts';
import { startRedis } from '../test/redis.ts';

const { values } = parseArgs({ options: { files: { type: 'string' }, size: { type: 'string' }, backend: { type: 'string' } } });
const files = Number(values.files ?? 48);
const size = Number(values.size ?? 1024);
const backend = values.backend ? ['--backend', values.backend] : [];
const studio = fileURLToPath(new URL('../bin/studio.mjs', import.meta.url));
const style = path.join(SAMPLES, 'photo-Dune.jpg');
const root = await mkdtemp(path.join(os.tmpdir(), 'studio-bench-queue-'));
const redis = await startRedis().catch((e: Error) => {
  console.log(`queue: not run: ${e.message}`);
  process.exit(0);
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const inDir = path.join(root, 'in');
  await makeShoot(inDir, files, size);
  const common = ['--in', inDir, '--style', style, '--method', 'match', '--size', String(size), '--quiet'];
  console.log(`queue: ${files} photos, colour match at ${size} px, ${os.availableParallelism()} cores, ${values.backend ?? 'default'} backend; Redis ${redis.url} (append-only, fsync always)`);

  const rates: Record<string, number> = {};
  for (const jobs of [1, 2]) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [studio, 'batch', ...common, '--out', path.join(root, `local-${jobs}`), '--jobs', String(jobs), ...backend], { encoding: 'utf8' });
    const s = (performance.now() - t) / 1000;
    if (r.status !== 0) throw new Error(`local batch failed: ${r.stderr.slice(-1000)}`);
    rates[`local ${jobs}`] = files / (s / 60);
    console.log(`local studio batch --jobs ${jobs}: ${rates[`local ${jobs}`].toFixed(1)} photos/min (${s.toFixed(1)} s)`);
  }

  for (const n of [1, 2]) {
    // Timed from the workers' start, as the local runs are from theirs.
    const t = performance.now();
    const workers: ChildProcess[] = [];
    for (let k = 0; k < n; k++) {
      // Each worker one engine with half the cores when two share the machine (as --jobs 2 splits them).
      workers.push(spawn(process.execPath, [studio, 'worker', '--queue', redis.url, '--name', `w${k + 1}`, '--quiet', ...backend], {
        stdio: 'ignore', env: { ...process.env, STUDIO_WASM_THREADS: String(Math.max(1, Math.floor(os.availableParallelism() / n))) },
      }));
    }
    const out = path.join(root, `queue-${n}`);
    const r = spawnSync(process.execPath, [studio, 'batch', '--queue', redis.url, ...common, '--out', out], { encoding: 'utf8' });
    const s = (performance.now() - t) / 1000;
    for (const w of workers) w.kill('SIGINT');
    await Promise.all(workers.map((w) => new Promise((res) => w.once('exit', res))));
    if (r.status !== 0) throw new Error(`queued batch failed (${r.status}): ${r.stderr.slice(-1000)}`);
    rates[`queue ${n}`] = files / (s / 60);
    const id = /shoot (\w+):/.exec(r.stderr)?.[1];
    console.log(`queue, ${n} worker${n > 1 ? 's' : ''} (1 engine each): ${rates[`queue ${n}`].toFixed(1)} photos/min (${s.toFixed(1)} s), ${(rates[`queue ${n}`] / rates[`local ${n}`]).toFixed(2)}× local --jobs ${n}`);

    if (!id) continue;
    const q = new Queue(queueName(id), { connection: { host: '127.0.0.1', port: redis.port }, prefix: PREFIX });
    const jobs = (await q.getCompleted(0, files)).sort((a, b) => a.processedOn! - b.processedOn!);
    await q.close();
    // Steady state: from the first photo's start to the last one's end (the processes' start and the
    // follower's last look left out; a shoot of thousands is this figure).
    const span = (Math.max(...jobs.map((j) => j.finishedOn!)) - jobs[0].processedOn!) / 1000;
    console.log(`  steady state (first photo started → last finished): ${(jobs.length / (span / 60)).toFixed(1)} photos/min; the rest of the wall time is starting the processes and planning`);
    if (n === 1) {
      // The queue's own cost a photo, from the jobs' times on the single worker: the photo's time
      // outside its engine job (hashing, the done record, completing) plus the gap to the next photo
      // (fetching it), against the engine job itself (decode, colour match, encode).
      const engine = jobs.map((j) => (j.returnvalue as { engineMs: number }).engineMs);
      const around = jobs.map((j, i) => (j.finishedOn! - j.processedOn!) - engine[i] + (i + 1 < jobs.length ? jobs[i + 1].processedOn! - j.finishedOn! : 0)).slice(1, -1);
      const share = median(around) / median(engine);
      console.log(`  queue overhead a photo (median of ${around.length}): ${median(around).toFixed(1)} ms against the job's ${median(engine).toFixed(0)} ms = ${(100 * share).toFixed(2)}% (target < 2%)`);
    }
  }
} finally {
  await redis.stop();
  await rm(root, { recursive: true, force: true });
}
