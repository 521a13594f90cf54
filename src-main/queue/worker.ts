/**
 * `studio worker`: one machine's share of the queued shoots. It serves the oldest shoot with work
 * left through a BullMQ Worker (concurrency = its engines), runs each photo as the local batch does
 * (same job, style features cached per engine across photos, atomic write), and records the result's
 * hash in the shoot's done records before completing the job.
 *
 * Nothing lost, nothing done twice:
 *  - killed mid-photo: its lock lapses and another worker's stalled check puts the job back; the
 *    half-written temporary file is removed before the photo is made again;
 *  - a completion Redis lost (restarted from its append-only file): the job comes back, finds the
 *    output with the hash its done record holds, and completes without computing it again;
 *  - Ctrl-C: running photos are cancelled and handed back to the queue untried (not failed);
 *  - a photo this worker cannot read or write fails its try with the reason and the worker's name,
 *    and another worker may try it (bounded by the job's attempts); a model or backend this worker
 *    lacks hands the photo back and the worker leaves that shoot to the others for a while.
 */
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { engineJob, exists, removeStaleTemps } from '../batch/plan.ts';
import { sha256File } from '../io/files.ts';
import { StudioError, isStudioError, type ErrorCode } from '../errors.ts';
import { EngineClient, type RunningJob } from '../worker/client.ts';
import { openQueue, PREFIX, throttledLog, type QueueTarget } from './connection.ts';
import type { PhotoJobData } from './enqueue.ts';
import { queueName, ShootStore, type DoneRecord, type Shoot } from './shoots.ts';

/** Errors that are this worker's, not the photo's: another worker may well have the model or the backend. */
const WORKER_LEVEL: readonly ErrorCode[] = ['MODEL_MISSING', 'BAD_MODEL', 'CHECKSUM_MISMATCH', 'BACKEND_UNAVAILABLE'];
/** Errors of reaching the shared storage: the photo's if alone, this worker's mount if they repeat. */
const STORAGE: readonly ErrorCode[] = ['FILE_NOT_FOUND', 'BAD_FILE', 'UNWRITABLE_OUTPUT', 'OUTPUT_IS_INPUT'];
/** Storage failures in a row, on different photos, after which this worker leaves the shoot for a while. */
const STORAGE_STRIKES = 2;

export interface WorkerOptions {
  /** Engines side by side (default 1); each takes cores / jobs WebAssembly threads. */
  jobs?: number;
  backend?: string;
  /** Shown in status and recorded with each result; default host:pid. */
  name?: string;
  /** Shared storage mounted elsewhere on this machine: [as the enqueuing machine sees it, as this one does]. */
  pathMap?: [string, string][];
  /** Engine factory (tests, the app); default: the CLI's worker thread. */
  engine?: (wasmThreads: number) => EngineClient;
  log?: (line: string) => void;
}

export interface WorkerEvent {
  shoot: string;
  input: string;
  outcome: 'done' | 'skipped' | 'failed' | 'returned';
  ms?: number;
  reason?: string;
}

/** Lock and stalled-check timing: BullMQ's defaults (30 s), shorter in tests through the environment. */
const lockMs = () => Number(process.env.STUDIO_QUEUE_LOCK_MS ?? 30_000);
const POLL_MS = 1000;
/** A finished shoot sent again (failed photos retried, photos added) is found within this. */
const IDLE_RECHECK_MS = 15_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A path as the enqueuing machine wrote it, as this machine sees it (--path-map FROM=TO; POSIX or Windows separators, trailing ones ignored). */
export function mapSharedPath(p: string, pathMap: readonly [string, string][] = []): string {
  const trim = (x: string) => x.replace(/[/\\]+$/, '');
  for (const [fromRaw, toRaw] of pathMap) {
    const from = trim(fromRaw), to = trim(toRaw);
    if (p === from) return to;
    const sep = p[from.length];
    if (p.startsWith(from) && (sep === '/' || sep === '\\')) return to + p.slice(from.length);
  }
  return p;
}

export class QueueWorker {
  readonly name: string;
  private readonly jobs: number;
  private readonly engines: (EngineClient | undefined)[];
  private readonly free: number[];
  private readonly running = new Map<string, RunningJob<unknown>>();
  private readonly redis: Redis;
  private readonly store: ShootStore;
  private stopping = false;
  private wake: (() => void) | undefined;
  /** Shoots this worker cannot serve (a missing model…), until the time given. */
  private readonly avoid = new Map<string, number>();
  /** Jobs this worker moved back to waiting (their lock is gone on purpose). */
  private readonly handedBack = new Set<string>();
  /** Shoots found without work, not looked at again until the time given. */
  private readonly idle = new Map<string, number>();
  /** Photos whose storage failed on this worker in a row (reset by any photo made). */
  private storageStrikes = new Set<string>();
  private current: { shoot: Shoot; bull: Worker<PhotoJobData>; cancelled: boolean; leave?: string } | undefined;

  constructor(private readonly target: QueueTarget, private readonly o: WorkerOptions = {}, private readonly onEvent?: (e: WorkerEvent) => void) {
    this.name = o.name ?? `${os.hostname()}:${process.pid}`;
    this.jobs = Math.max(1, Math.min(16, o.jobs ?? 1));
    this.engines = new Array(this.jobs).fill(undefined);
    this.free = [...this.engines.keys()];
    this.redis = new Redis(target.connection);
    this.redis.on('error', () => undefined); // ioredis reconnects; BullMQ reports what matters
    this.store = new ShootStore(this.redis);
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  private readonly logError = throttledLog((l) => this.log(l));

  /** Serves shoots until stop(). */
  async run(): Promise<void> {
    while (!this.stopping) {
      const shoot = await this.pick().catch(() => undefined); // Redis away: try again
      if (!shoot) {
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, POLL_MS);
        });
        continue;
      }
      await this.serve(shoot);
    }
  }

  /** Cancels the photos in flight, hands them back to the queue untried, and stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    // Take nothing more (a photo handed back would otherwise be fetched again at once), then stop the rest.
    this.current?.bull.pause(true).catch(() => undefined);
    for (const r of this.running.values()) r.cancel();
  }

  async close(): Promise<void> {
    await Promise.all(this.engines.map((e) => e?.close()));
    this.redis.disconnect();
  }

  /**
   * The oldest active shoot with photos waiting, or being made (its stalled checks need a worker).
   * A shoot found without work is looked at again only every IDLE_RECHECK_MS, so that a studio's
   * hundred finished shoots do not cost a hundred queries a second.
   */
  private async pick(): Promise<Shoot | undefined> {
    const now = Date.now();
    for (const shoot of await this.store.list()) {
      if (shoot.state !== 'active' || (this.avoid.get(shoot.id) ?? 0) > now || (this.idle.get(shoot.id) ?? 0) > now) continue;
      const q = openQueue(this.target, queueName(shoot.id));
      try {
        const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        if (c.waiting + c.active + c.delayed + c.prioritized > 0) return shoot;
        if (shoot.planned) this.idle.set(shoot.id, now + IDLE_RECHECK_MS);
      } finally {
        await q.close();
      }
    }
    return undefined;
  }

  private async serve(shoot: Shoot): Promise<void> {
    const lock = lockMs();
    const bull = new Worker<PhotoJobData>(queueName(shoot.id), (job, token) => this.photo(shoot, job, token), {
      connection: this.target.connection, prefix: PREFIX, concurrency: this.jobs, name: this.name,
      lockDuration: lock, stalledInterval: Math.max(500, lock / 2),
      // A photo that stalls twice is more likely killing its workers than unlucky: fail it with that reason.
      maxStalledCount: 2, drainDelay: 1, autorun: false,
    });
    bull.on('error', (e: Error) => {
      // A photo handed back has no lock left to renew: BullMQ's renewal may still try once.
      const id = /could not renew lock for job (\S+)/.exec(e.message)?.[1];
      if (id && this.handedBack.has(id)) return;
      this.logError(e);
    });
    const cur = (this.current = { shoot, bull, cancelled: false } as NonNullable<QueueWorker['current']>);
    this.storageStrikes.clear(); // strikes count within one shoot
    this.log(`serving shoot ${shoot.id} (${shoot.inDir} → ${shoot.outDir}, ${shoot.settings.method})`);
    const runP = bull.run().catch(this.logError);
    const q = openQueue(this.target, queueName(shoot.id));
    try {
      while (!this.stopping && !cur.leave) {
        await sleep(POLL_MS);
        const state = await this.store.state(shoot.id).catch(() => 'active');
        if (state !== 'active') {
          cur.cancelled = true;
          for (const r of this.running.values()) r.cancel();
          break;
        }
        const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized').catch(() => undefined);
        if (c && c.waiting + c.active + c.delayed + c.prioritized === 0) break;
      }
    } finally {
      if (cur.leave) {
        this.log(`leaving shoot ${shoot.id} for a minute: ${cur.leave}`);
        this.avoid.set(shoot.id, Date.now() + 60_000);
      }
      // Waits for photos in flight (cancelled ones hand themselves back first).
      await bull.close();
      await runP;
      await q.close();
      this.current = undefined;
    }
  }

  private async engine(): Promise<number> {
    const k = this.free.pop();
    if (k === undefined) throw new StudioError('INTERNAL', 'no free engine (concurrency above the engine count)');
    // Several workers on one machine share its cores: STUDIO_WASM_THREADS says how.
    const threads = Number(process.env.STUDIO_WASM_THREADS) || Math.max(1, Math.floor(os.availableParallelism() / this.jobs));
    this.engines[k] ??= this.o.engine?.(threads) ?? new EngineClient({ backend: this.o.backend, wasmThreads: threads });
    return k;
  }

  private mapPath(p: string): string {
    return mapSharedPath(p, this.o.pathMap);
  }

  /** The shoot's settings with its paths (style; model and decoders given as paths) as this machine sees them. */
  private localSettings(shoot: Shoot): Shoot['settings'] {
    const m = (p?: string) => (p && (p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p)) ? this.mapPath(p) : p);
    return { ...shoot.settings, style: this.mapPath(shoot.settings.style), model: m(shoot.settings.model), decoders: m(shoot.settings.decoders) };
  }

  private async photo(shoot: Shoot, job: Job<PhotoJobData>, token?: string): Promise<DoneRecord> {
    const t0 = performance.now();
    const { input, output } = job.data;
    const cur = this.current;
    if (cur?.cancelled) throw new UnrecoverableError('CANCELLED: the shoot was cancelled');
    if (this.stopping) return this.handBack(shoot, job, token, 'this worker is stopping');
    const inAbs = this.mapPath(path.join(shoot.inDir, input));
    const outAbs = this.mapPath(path.join(shoot.outDir, output));
    const settings = this.localSettings(shoot);
    // What a worker killed while writing this photo left behind.
    await removeStaleTemps(outAbs);
    if (await exists(outAbs)) {
      const rec = await this.store.done(shoot.id, input);
      const sha256 = await sha256File(outAbs);
      // Made already (a completion Redis lost, or a worker killed between rename and completion),
      // from this very photo (a photo replaced since has another hash, and another job).
      if (rec && rec.sha256 === sha256 && rec.inputSha256 === job.data.inputSha256) return this.finish(shoot, input, { ...rec, skipped: 'made already' }, 'skipped');
      if (shoot.overwrite === 'skip') {
        return this.finish(shoot, input, { output, sha256, inputSha256: job.data.inputSha256, worker: this.name, ms: Math.round(performance.now() - t0), at: Date.now(), skipped: 'the output already exists (--overwrite replace redoes it)' }, 'skipped');
      }
    }
    await mkdir(path.dirname(outAbs), { recursive: true }).catch(() => undefined);
    const k = await this.engine();
    const running = this.engines[k]!.run<{ totalMs?: number }>(engineJob(settings, inAbs, outAbs, settings.style));
    this.running.set(job.id!, running);
    // Stopped or cancelled while this photo was being prepared: stop() did not see it yet.
    if (this.stopping || cur?.cancelled) running.cancel();
    try {
      const r = await running.result;
      const sha256 = await sha256File(outAbs);
      return await this.finish(shoot, input, { output, sha256, inputSha256: job.data.inputSha256, worker: this.name, ms: Math.round(performance.now() - t0), engineMs: r.totalMs === undefined ? undefined : Math.round(r.totalMs), at: Date.now() }, 'done');
    } catch (e) {
      const err = isStudioError(e) ? e : new StudioError('INTERNAL', (e as Error).message);
      if (err.code === 'CANCELLED') {
        if (cur?.cancelled) throw new UnrecoverableError('CANCELLED: the shoot was cancelled');
        return await this.handBack(shoot, job, token, 'this worker stopped');
      }
      if (WORKER_LEVEL.includes(err.code)) {
        this.leave(cur, `${err.code}: ${err.message}`);
        return await this.handBack(shoot, job, token, `${err.code} on this worker`);
      }
      if (err.code === 'INTERNAL' && /engine worker (crashed|exited)/.test(err.message)) {
        // A lost engine (out of memory, a crash): a fresh one for the next photo; this one is tried again.
        void this.engines[k]?.close();
        this.engines[k] = undefined;
      }
      const reason = `${err.code}: ${err.message} (worker ${this.name})`;
      this.onEvent?.({ shoot: shoot.id, input, outcome: 'failed', reason });
      if (STORAGE.includes(err.code)) {
        // One photo missing is the photo's; several in a row is this machine's view of the share.
        this.storageStrikes.add(input);
        if (this.storageStrikes.size >= STORAGE_STRIKES) this.leave(cur, `cannot reach the shoot's files from here (${err.code}); check the share's mount or --path-map`);
      }
      throw new Error(reason, { cause: e });
    } finally {
      this.running.delete(job.id!);
      this.free.push(k);
    }
  }

  /** Stops taking this shoot's photos at once; serve() closes it on its next look. */
  private leave(cur: QueueWorker['current'], why: string): void {
    if (!cur || cur.leave) return;
    cur.leave = why;
    cur.bull.pause(true).catch(() => undefined);
  }

  private async finish(shoot: Shoot, input: string, rec: DoneRecord, outcome: 'done' | 'skipped'): Promise<DoneRecord> {
    await this.store.recordDone(shoot.id, input, rec);
    this.storageStrikes.clear();
    this.onEvent?.({ shoot: shoot.id, input, outcome, ms: rec.ms, reason: rec.skipped });
    return rec;
  }

  /** Back to waiting without using one of the photo's tries. */
  private async handBack(shoot: Shoot, job: Job<PhotoJobData>, token: string | undefined, why: string): Promise<never> {
    this.handedBack.add(job.id!);
    await job.moveToWait(token);
    this.onEvent?.({ shoot: shoot.id, input: job.data.input, outcome: 'returned', reason: why });
    throw new WaitingError();
  }
}
