/**
 * A queued shoot as its owner sees it: counts, time left, what each worker did and is doing, the
 * failures with their reasons; followed until the shoot is done, or read once (`--status`); and
 * cancelled (`--cancel`: waiting photos removed, running ones stopped; the same batch command
 * resumes it).
 */
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { StudioError } from '../errors.ts';
import { checkReachable, openQueue, parseQueueUrl, type QueueTarget } from './connection.ts';
import { queueName, ShootStore, type Shoot } from './shoots.ts';

export interface WorkerShare {
  name: string;
  done: number;
  /** Mean wall time a photo on this worker. */
  msPerPhoto: number;
  /** Photos it is making now. */
  running: string[];
}

export interface ShootStatus {
  shoot: Shoot;
  total: number;
  done: number;
  /** Done by an earlier run or found made already: counted in `done`. */
  skipped: number;
  failed: { input: string; reason: string }[];
  running: number;
  waiting: number;
  /** Waiting + running + retries pending. */
  remaining: number;
  workers: WorkerShare[];
  /** Workers connected to the shoot's queue now. */
  connected: number;
  /** From the shoot's recent throughput; undefined until two photos are done. */
  etaMs?: number;
  finished: boolean;
}

export class ShootFollower {
  private readonly redis: Redis;
  private readonly store: ShootStore;
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly target: QueueTarget) {
    this.redis = new Redis(target.connection);
    this.redis.on('error', () => undefined); // reconnects while Redis restarts
    this.store = new ShootStore(this.redis);
  }

  private queue(id: string): Queue {
    let q = this.queues.get(id);
    if (!q) this.queues.set(id, (q = openQueue(this.target, queueName(id))));
    return q;
  }

  async shoots(): Promise<Shoot[]> {
    return this.store.list();
  }

  /** The shoot by id, or the shoots of an input/output folder pair. */
  async find(sel: { id?: string; inDir?: string; outDir?: string }): Promise<Shoot[]> {
    const all = await this.store.list();
    const exact = sel.id ? all.filter((s) => s.id === sel.id) : [];
    const found = exact.length ? exact : all.filter((s) => (sel.id ? s.id.startsWith(sel.id) : true) && (!sel.inDir || s.inDir === sel.inDir) && (!sel.outDir || s.outDir === sel.outDir));
    if (sel.id && found.length > 1) {
      throw new StudioError('BAD_ARGUMENT', `the shoot id ${sel.id} matches ${found.length} shoots: ${found.map((s) => s.id).join(', ')}`, 'give more of the id');
    }
    if (!found.length) {
      throw new StudioError('BAD_ARGUMENT', `no such shoot in the queue at ${this.target.display}${sel.id ? `: ${sel.id}` : ''}`,
        all.length ? `shoots there: ${all.map((s) => `${s.id} (${s.inDir} → ${s.outDir})`).join(', ')}` : 'the queue holds no shoot');
    }
    return found;
  }

  async status(id: string): Promise<ShootStatus> {
    const shoot = await this.store.get(id);
    if (!shoot) throw new StudioError('BAD_ARGUMENT', `no such shoot in the queue at ${this.target.display}: ${id}`);
    const q = this.queue(id);
    const c = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
    const done = await this.store.allDone(id);
    const failedJobs = c.failed ? await q.getFailed(0, c.failed - 1) : [];
    const active = c.active ? await q.getActive(0, c.active - 1) : [];
    const byWorker = new Map<string, WorkerShare>();
    const share = (name: string) => byWorker.get(name) ?? byWorker.set(name, { name, done: 0, msPerPhoto: 0, running: [] }).get(name)!;
    const times: number[] = [];
    let skipped = 0;
    for (const r of done.values()) {
      if (r.skipped) {
        skipped++;
        continue;
      }
      const w = share(r.worker);
      w.msPerPhoto = (w.msPerPhoto * w.done + r.ms) / (w.done + 1);
      w.done++;
      times.push(r.at);
    }
    for (const j of active) if (j.processedBy) share(j.processedBy).running.push((j.data as { input: string }).input);
    const connected = (await q.getWorkers().catch(() => [])).length;
    // Photos done, counted by their records (a job completed but not recorded is not done).
    const failed = failedJobs.map((j) => ({ input: (j.data as { input: string }).input, reason: j.failedReason ?? 'failed' }));
    const waiting = c.waiting + c.prioritized;
    const remaining = waiting + c.active + c.delayed;
    // Throughput over the last (up to) 50 photos made here, not skipped ones.
    times.sort((a, b) => a - b);
    const recent = times.slice(-50);
    const rate = recent.length >= 2 ? (recent.length - 1) / (recent[recent.length - 1] - recent[0]) : undefined;
    const etaMs = rate && remaining ? remaining / rate : remaining === 0 ? 0 : undefined;
    return {
      shoot, total: shoot.total, done: done.size, skipped, failed, running: c.active, waiting, remaining,
      workers: [...byWorker.values()].sort((a, b) => a.name.localeCompare(b.name)), connected, etaMs,
      finished: shoot.planned && remaining === 0,
    };
  }

  /**
   * Reports the shoot every `everyMs` until it is finished or cancelled, or `signal` aborts (which
   * stops following, not the work).
   */
  async follow(id: string, onStatus: (s: ShootStatus) => void, opts: { everyMs?: number; signal?: AbortSignal } = {}): Promise<ShootStatus> {
    const signal = opts.signal;
    // One listener for the whole follow; a look at Redis (which waits while Redis restarts) races it.
    let onAbort: () => void = () => undefined;
    const aborted = new Promise<undefined>((r) => {
      onAbort = () => r(undefined);
      if (signal?.aborted) r(undefined);
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    let last: ShootStatus | undefined;
    const stopped = () => {
      if (last) return last;
      throw new StudioError('CANCELLED', 'stopped following');
    };
    try {
      for (;;) {
        let s: ShootStatus | undefined;
        try {
          s = await Promise.race([this.status(id), aborted]);
        } catch (e) {
          if (e instanceof StudioError) throw e;
          // Redis away (restarting): keep following.
        }
        if (s) {
          last = s;
          onStatus(s);
          if (s.finished || s.shoot.state === 'cancelled') return s;
        }
        if (signal?.aborted) return stopped();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([new Promise((r) => { timer = setTimeout(r, opts.everyMs ?? 1000); }), aborted]);
        clearTimeout(timer);
        if (signal?.aborted) return stopped();
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Stops a shoot: waiting photos leave the queue, workers stop the ones they are making. Results made stay. */
  async cancel(id: string): Promise<void> {
    await this.store.setState(id, 'cancelled');
    const q = this.queue(id);
    await q.pause();
    await q.drain(true);
    const still = await q.getJobs(['completed', 'failed', 'active', 'delayed']);
    await this.store.resetClaims(id, still.map((j) => j.id!).filter(Boolean));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.redis.disconnect();
  }
}

/** A follower of the queue at `url` for one piece of work: the URL checked and reached first, its connections closed after. */
export async function withFollower<T>(url: string, fn: (f: ShootFollower, target: QueueTarget) => Promise<T>): Promise<T> {
  const target = parseQueueUrl(url);
  await checkReachable(target);
  const f = new ShootFollower(target);
  try {
    return await fn(f, target);
  } finally {
    await f.close();
  }
}
