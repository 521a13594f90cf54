/**
 * The shoots a queue holds. BullMQ keeps the jobs (one queue per shoot: its counts, pause and
 * stalled checks are the shoot's own); beside them, under the same prefix, the studio keeps what
 * BullMQ does not know:
 *
 *   studio:shoots                 sorted set of shoot ids by creation time (workers take the oldest first)
 *   studio:shoot:<id>             hash: spec (folders and settings, JSON), state, total, planned
 *   studio:shoot:<id>:done        hash: input → the result's record (output, sha256, worker, times)
 *   studio:shoot:<id>:jobs        set: the job ids in the queue (who added a job first, when two plan at once)
 *   studio:shoot:<id>:names       hash: input → output name, as first planned (kept by later sends, as the local journal keeps them)
 *
 * The done records are the queue's journal: a job redone after its worker died, or after Redis lost
 * a completion, finds its output with the recorded hash and does not compute it again.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BatchSettings } from '../batch/plan.ts';
import { PREFIX } from './connection.ts';

export type ShootState = 'active' | 'cancelled';

/** What every worker needs to make a shoot's results: absolute folders as the enqueuing machine sees them. */
export interface ShootSpec {
  id: string;
  inDir: string;
  outDir: string;
  /** The style's absolute path (on the shared storage, like the photos). */
  settings: BatchSettings;
  fingerprint: string;
  overwrite: 'skip' | 'replace';
  createdAt: number;
  /** The machine that enqueued it (hostname), for status. */
  host: string;
}

export interface Shoot extends ShootSpec {
  state: ShootState;
  /** Photos enqueued so far; final once `planned`. */
  total: number;
  planned: boolean;
}

export interface DoneRecord {
  output: string;
  sha256: string;
  /** The photo it was made from (its content's sha256, as enqueued). */
  inputSha256?: string;
  worker: string;
  /** Wall time of the photo on its worker, and the engine's part of it. */
  ms: number;
  engineMs?: number;
  at: number;
  /** Set when the output was already there (an earlier run, or a completion Redis lost). */
  skipped?: string;
}

/** The shoot of these folders under these settings: the same command twice names the same shoot. */
export function shootId(fingerprint: string, inDir: string, outDir: string): string {
  return createHash('sha256').update(`${fingerprint}\0${inDir}\0${outDir}`).digest('hex').slice(0, 12);
}

/** One job per photo: from the photo's content, the settings and its place in the shoot (two copies of a photo each get their result). */
export function jobId(shoot: string, fingerprint: string, inputSha256: string, input: string): string {
  return `${shoot}-${createHash('sha256').update(`${fingerprint}\0${inputSha256}\0${input}`).digest('hex').slice(0, 24)}`;
}

export const queueName = (id: string) => `shoot-${id}`;

const key = (id: string) => `${PREFIX}:shoot:${id}`;
const SHOOTS = `${PREFIX}:shoots`;

export class ShootStore {
  constructor(private readonly redis: Redis) {}

  /** Registers a shoot, or makes an existing one active again (the same command after a cancel resumes it). */
  async register(spec: ShootSpec): Promise<Shoot> {
    await this.redis.multi()
      .zadd(SHOOTS, 'NX', spec.createdAt, spec.id)
      .hsetnx(key(spec.id), 'spec', JSON.stringify(spec))
      .hset(key(spec.id), 'state', 'active')
      .hsetnx(key(spec.id), 'total', '0')
      .hsetnx(key(spec.id), 'planned', '0')
      .exec();
    return (await this.get(spec.id))!;
  }

  async get(id: string): Promise<Shoot | undefined> {
    const h = await this.redis.hgetall(key(id));
    if (!h.spec) return undefined;
    return { ...(JSON.parse(h.spec) as ShootSpec), state: h.state === 'cancelled' ? 'cancelled' : 'active', total: Number(h.total ?? 0), planned: h.planned === '1' };
  }

  async state(id: string): Promise<ShootState | undefined> {
    return (await this.redis.hget(key(id), 'state')) as ShootState | undefined ?? undefined;
  }

  /** Every shoot, oldest first. */
  async list(): Promise<Shoot[]> {
    const ids = await this.redis.zrange(SHOOTS, 0, -1);
    return (await Promise.all(ids.map((id) => this.get(id)))).filter((s): s is Shoot => s !== undefined);
  }

  async setState(id: string, state: ShootState): Promise<void> {
    await this.redis.hset(key(id), 'state', state);
  }

  /** The walk's count as it goes, then final. */
  async setTotal(id: string, total: number, planned: boolean): Promise<void> {
    await this.redis.hset(key(id), 'total', String(total), 'planned', planned ? '1' : '0');
  }

  async recordDone(id: string, input: string, rec: DoneRecord): Promise<void> {
    await this.redis.hset(`${key(id)}:done`, input, JSON.stringify(rec));
  }

  async done(id: string, input: string): Promise<DoneRecord | undefined> {
    const v = await this.redis.hget(`${key(id)}:done`, input);
    return v ? (JSON.parse(v) as DoneRecord) : undefined;
  }

  async allDone(id: string): Promise<Map<string, DoneRecord>> {
    const h = await this.redis.hgetall(`${key(id)}:done`);
    return new Map(Object.entries(h).map(([k, v]) => [k, JSON.parse(v) as DoneRecord]));
  }

  /** The output names earlier sends gave (input → output). */
  async names(id: string): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(`${key(id)}:names`)));
  }

  /** Records output names; a name given first stays (two planners at once agree on it). */
  async keepNames(id: string, entries: [string, string][]): Promise<void> {
    if (!entries.length) return;
    const m = this.redis.multi();
    for (const [input, output] of entries) m.hsetnx(`${key(id)}:names`, input, output);
    await m.exec();
  }

  /** Marks jobs as added; returns how many were not before (atomic: of two planners at once, one counts each). */
  async claimJobs(id: string, jobIds: string[]): Promise<number> {
    return jobIds.length ? this.redis.sadd(`${key(id)}:jobs`, ...jobIds) : 0;
  }

  /** After a cancel drained the waiting jobs: only those still in the queue count as added. */
  async resetClaims(id: string, still: string[]): Promise<void> {
    const m = this.redis.multi().del(`${key(id)}:jobs`);
    if (still.length) m.sadd(`${key(id)}:jobs`, ...still);
    await m.exec();
  }
}
