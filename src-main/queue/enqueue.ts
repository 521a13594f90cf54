/**
 * A shoot into the queue: the same plan as a local batch (walk, names, settings), one BullMQ job a
 * photo. Job ids come from the photo's content and the settings, so enqueuing the same shoot twice,
 * or from two machines at once, adds nothing; the same command after a cancel resumes the shoot.
 */
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { batchFingerprint, globMatcher, OutputNames, prepareFolders, walkImages, type BatchSettings } from '../batch/plan.ts';
import { sha256File } from '../io/files.ts';
import { openQueue, type QueueTarget } from './connection.ts';
import { jobId, queueName, shootId, ShootStore, type Shoot } from './shoots.ts';

export interface EnqueueOptions extends BatchSettings {
  inDir: string;
  outDir: string;
  recursive?: boolean;
  pattern?: string;
  overwrite?: 'skip' | 'replace';
}

/** What a job carries; the shoot's settings are read once per worker from the registry. */
export interface PhotoJobData {
  shoot: string;
  /** Relative to the shoot's input and output folders. */
  input: string;
  output: string;
  inputSha256: string;
}

/** Tries per photo (a flaky mount or a worker lost mid-write gets another go), and the first wait between them. */
export const ATTEMPTS = 3;
export const backoffMs = () => Number(process.env.STUDIO_QUEUE_BACKOFF_MS ?? 2000);

export interface EnqueueResult {
  shoot: Shoot;
  /** Jobs this call added (0 when the shoot was queued already). */
  added: number;
  /** Failed jobs of an earlier run put back to wait (the local batch redoes failed files too). */
  retried: number;
}

export async function enqueueShoot(target: QueueTarget, o: EnqueueOptions, onCount?: (n: number) => void): Promise<EnqueueResult> {
  const { inDir, outDir, style } = await prepareFolders(o);
  const settings: BatchSettings = { ...o, style };
  for (const k of ['inDir', 'outDir', 'recursive', 'pattern', 'overwrite'] as const) delete (settings as Partial<EnqueueOptions>)[k];
  const { fingerprint } = await batchFingerprint(settings);
  const id = shootId(fingerprint, inDir, outDir);
  const redis = new Redis(target.connection);
  redis.on('error', () => undefined); // reconnects; commands wait meanwhile
  const queue = openQueue<PhotoJobData>(target, queueName(id));
  try {
    const store = new ShootStore(redis);
    const registered = await store.register({ id, inDir, outDir, settings, fingerprint, overwrite: o.overwrite ?? 'skip', createdAt: Date.now(), host: os.hostname() });
    await queue.resume(); // a cancelled shoot's queue was paused
    // Failed photos get their tries again, as a local batch redoes its failed files.
    const failedBefore = await queue.getFailedCount();
    if (failedBefore) await queue.retryJobs({ state: 'failed', count: 1000 });

    // Names from earlier sends stay: a photo added since (with a name that collides) gets the next
    // suffix instead of taking an existing job's output.
    const kept = await store.names(id);
    const replanning = registered.planned;
    const names = new OutputNames(settings, path.basename(style, path.extname(style)), kept);
    const match = o.pattern ? globMatcher(o.pattern) : undefined;
    let total = 0, added = 0;
    let chunk: { name: 'photo'; data: PhotoJobData; opts: { jobId: string; attempts: number; backoff: { type: 'exponential'; delay: number } } }[] = [];
    const flush = async () => {
      if (chunk.length) {
        await store.keepNames(id, chunk.map((c) => [c.data.input, c.data.output]));
        added += await store.claimJobs(id, chunk.map((c) => c.opts.jobId));
        await queue.addBulk(chunk); // BullMQ adds nothing for an id it holds
      }
      chunk = [];
      // A first plan shows its count as it goes; a later send keeps the known total until it is done.
      if (!replanning) await store.setTotal(id, total, false);
      onCount?.(total);
    };
    for await (const input of walkImages(inDir, { recursive: o.recursive ?? false, match, exclude: outDir })) {
      const output = names.claim(input, kept.get(input));
      // An unreadable photo is still a job: its worker reports why, as the local batch does.
      const inputSha256 = await sha256File(path.join(inDir, input)).catch(() => 'unreadable');
      chunk.push({
        name: 'photo', data: { shoot: id, input, output, inputSha256 },
        opts: { jobId: jobId(id, fingerprint, inputSha256, input), attempts: ATTEMPTS, backoff: { type: 'exponential', delay: backoffMs() } },
      });
      total++;
      if (chunk.length >= 64) await flush();
    }
    await flush();
    await store.setTotal(id, total, true);
    return { shoot: (await store.get(id))!, added, retried: failedBefore };
  } finally {
    await queue.close();
    redis.disconnect();
  }
}
