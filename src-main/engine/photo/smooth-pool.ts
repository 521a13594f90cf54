/**
 * The smoothing solver's thread pool (smooth.ts): persistent worker threads that run the solver's
 * kernels on their share of rows, in lock step with the calling thread.
 *
 * Why not postMessage per kernel: a V-cycle is ~20 kernels of 0.1–20 ms each, and a message round
 * trip costs ~50–100 µs plus an event-loop turn on both sides. Instead a solve is one "session": the
 * caller posts the (SharedArrayBuffer-backed) levels once, and then drives every kernel through
 * shared control words — it writes the command and its number of blocks (row blocks, fixed by the
 * solver), bumps SEQ and notifies; every thread, the caller included, then claims blocks one at a
 * time (compare-exchange on CLAIM, tagged with the command's sequence number so that a late worker
 * cannot claim a block of a finished command) and counts them in DONE; the caller returns once all
 * are done. Which thread runs a block does not change its result, so results depend only on the
 * blocks. Claiming rather than a fixed block per thread matters on a loaded machine: when a worker
 * is not scheduled, the caller does its blocks instead of waiting for it (with a fixed split the
 * 2-thread solve ran 2× slower than 1 thread at a load average of 6–8 on this 2-core machine).
 * Waiting spins briefly, then sleeps in Atomics.wait. The caller blocks, so smooth() stays
 * synchronous (Node lets the main thread Atomics.wait; the engine calls it from its worker thread).
 *
 * Threads: STUDIO_SMOOTH_THREADS if set, else min(os.availableParallelism(), 8); 1 = no pool. The
 * workers are unref'd (they never keep a process alive) and started lazily, on the first threaded
 * solve, while that solve builds its matrices. A worker that fails in a kernel marks the session
 * failed (the caller throws and ends the session; the pool stays usable); one that never starts or
 * stops answering makes the caller fall back to one thread or throw, and the pool is rebuilt next time.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { StudioError } from '../../errors.ts';

/** Indices into the control Int32Array. */
export const CTRL = {
  SEQ: 0,
  /** Blocks finished of the current command. */
  DONE: 1,
  CMD: 2,
  LEVEL: 3,
  /** (sequence tag << 8) | next block to claim. */
  CLAIM: 6,
  /** Blocks of the current command. */
  NBLK: 7,
  /** Workers that have left the session (END). */
  ACK: 8,
  /** Set by a worker whose kernel threw; the message is in the error bytes. */
  ERR: 4,
  ERR_LEN: 5,
  /** READY + tid: set once worker tid has loaded. */
  READY: 16,
  /** CLAIMED + tid: blocks thread tid has run (statistics, for profiling). */
  CLAIMED: 24,
} as const;
/** The command that ends a session (kernel ids are positive). */
export const END = -1;
/** The guided filter's band kernel (guided-filter.ts), run by the same workers (smooth.ts ids are 1–99). */
export const GUIDED_KERNEL = 100;
/** The full-resolution carry's band kernel (affine-transfer.ts applyLocalAffineToSamples), on the same workers. */
export const CARRY_KERNEL = 101;
export const MAX_THREADS = 8;
/** At most this many blocks per command (the claim word keeps 8 bits for the block). */
export const MAX_BLOCKS = 64;
const TAG_MASK = 0x7fffff;

/**
 * Claims and runs blocks of the current command (tag = its SEQ) until none are left; shared by the
 * caller and the workers. `run` throws → the caller of claimBlocks decides.
 */
export function claimBlocks(ctrl: Int32Array, tag: number, nb: number, tid: number, run: (blk: number) => void): void {
  for (;;) {
    const v = Atomics.load(ctrl, CTRL.CLAIM);
    if (v >>> 8 !== (tag & TAG_MASK)) return;
    const b = v & 255;
    if (b >= nb) return;
    if (Atomics.compareExchange(ctrl, CTRL.CLAIM, v, v + 1) !== v) continue;
    ctrl[CTRL.CLAIMED + tid]++;
    try {
      run(b);
    } finally {
      Atomics.add(ctrl, CTRL.DONE, 1);
      Atomics.notify(ctrl, CTRL.DONE);
    }
  }
}

export interface PoolShared {
  ctrl: Int32Array;
  /** Scalar arguments of a kernel (CG step lengths). */
  fargs: Float64Array;
  /** Per-thread partial sums, 8 per thread, added by the caller in thread order (deterministic). */
  partial: Float64Array;
  errBytes: Uint8Array;
}

/** Threads for a solve: the option, else STUDIO_SMOOTH_THREADS, else the core count (at most 8). */
export function smoothThreads(requested?: number): number {
  const env = process.env.STUDIO_SMOOTH_THREADS;
  const n = requested ?? (env !== undefined && env !== '' ? Number(env) : os.availableParallelism());
  return Number.isFinite(n) ? Math.max(1, Math.min(MAX_THREADS, Math.floor(n))) : 1;
}

/**
 * The worker's file: beside this module when running from sources (a .mjs that registers tsx, as
 * worker/boot.mjs does); in the electron-vite bundle, the `smooth-worker` entry in out/main, next to
 * the chunk holding this code or one folder up from it.
 */
function workerEntry(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL('./smooth-worker-boot.mjs', here);
  for (const rel of ['./smooth-worker.js', '../smooth-worker.js']) {
    const u = new URL(rel, here);
    if (existsSync(fileURLToPath(u))) return u;
  }
  throw new StudioError('INTERNAL', `the smoothing worker script is missing next to ${here}`);
}

const SPIN = 20000;
/** How long a worker may take to load (tsx compiles the sources on first use). */
const READY_MS = 30000;
/** A kernel part that takes longer than this means a worker is gone. */
const STALL_MS = 120000;

export class SmoothPool implements PoolShared {
  readonly ctrl = new Int32Array(new SharedArrayBuffer(4 * 40));
  readonly fargs = new Float64Array(new SharedArrayBuffer(8 * 8));
  readonly partial = new Float64Array(new SharedArrayBuffer(8 * 8 * MAX_BLOCKS));
  readonly errBytes = new Uint8Array(new SharedArrayBuffer(2048));
  private readonly workers: Worker[] = [];
  /** Threads in the current session (0: none). */
  private active = 0;
  broken = false;

  /** In a session (a solve is running on the pool). */
  get busy(): boolean {
    return this.active > 0;
  }

  /** Starts workers until there are threads − 1 of them (returns at once; they load in the background). */
  grow(threads: number): void {
    while (this.workers.length < threads - 1) {
      const tid = this.workers.length + 1;
      const w = new Worker(workerEntry(), {
        workerData: { ctrl: this.ctrl, fargs: this.fargs, partial: this.partial, errBytes: this.errBytes, tid },
      });
      w.unref();
      // Errors surface through the shared flags and time-outs; keep them from being unhandled.
      w.on('error', () => { this.broken = true; });
      w.on('exit', () => { this.broken = true; });
      this.workers.push(w);
    }
  }

  /** Waits until workers 1..threads−1 have loaded; false if they did not in time. */
  waitReady(threads: number, timeoutMs = READY_MS): boolean {
    const t0 = performance.now();
    for (let tid = 1; tid < threads; tid++) {
      while (Atomics.load(this.ctrl, CTRL.READY + tid) === 0) {
        const left = timeoutMs - (performance.now() - t0);
        if (left <= 0 || this.broken) return false;
        Atomics.wait(this.ctrl, CTRL.READY + tid, 0, Math.min(left, 100));
      }
    }
    return true;
  }

  /** Hands the session's shared data to workers 1..threads−1; they then follow the control word. */
  begin(threads: number, session: object): void {
    assertShared(session, 'session');
    Atomics.store(this.ctrl, CTRL.ERR, 0);
    const seq0 = Atomics.load(this.ctrl, CTRL.SEQ);
    for (let tid = 1; tid < threads; tid++) this.workers[tid - 1].postMessage({ seq0, session });
    this.active = threads;
  }

  /** Runs blocks 0..nb−1 of command `cmd` on the session's threads, this one included (`run(blk)`). */
  dispatch(cmd: number, level: number, nb: number, run: (blk: number) => void): void {
    const c = this.ctrl;
    const tag = (Atomics.load(c, CTRL.SEQ) + 1) & TAG_MASK;
    Atomics.store(c, CTRL.DONE, 0);
    Atomics.store(c, CTRL.CMD, cmd);
    Atomics.store(c, CTRL.LEVEL, level);
    Atomics.store(c, CTRL.NBLK, nb);
    Atomics.store(c, CTRL.CLAIM, tag << 8);
    Atomics.store(c, CTRL.SEQ, tag);
    Atomics.notify(c, CTRL.SEQ);
    let ok = false;
    try {
      claimBlocks(c, tag, nb, 0, run);
      ok = true;
    } finally {
      let want = nb;
      if (!ok) {
        // This thread's block threw: close the command to new claims, wait for the claimed ones.
        for (;;) {
          const v = Atomics.load(c, CTRL.CLAIM);
          if (Atomics.compareExchange(c, CTRL.CLAIM, v, (tag << 8) | 255) === v) {
            want = Math.min(v & 255, nb);
            break;
          }
        }
      }
      this.join(CTRL.DONE, want);
    }
    this.checkError();
  }

  private checkError(): void {
    const c = this.ctrl;
    if (Atomics.load(c, CTRL.ERR) !== 0) {
      const msg = new TextDecoder().decode(this.errBytes.slice(0, Atomics.load(c, CTRL.ERR_LEN)));
      throw new StudioError('INTERNAL', `a smoothing thread failed: ${msg}`);
    }
  }

  /** Waits until ctrl[index] reaches `want` (blocks done, or workers gone). */
  private join(index: number, want: number): void {
    const c = this.ctrl;
    for (let k = 0; k < SPIN; k++) if (Atomics.load(c, index) === want) return;
    const t0 = performance.now();
    for (;;) {
      const v = Atomics.load(c, index);
      if (v === want) return;
      if (performance.now() - t0 > STALL_MS) {
        this.broken = true;
        throw new StudioError('INTERNAL', 'a smoothing thread stopped answering');
      }
      Atomics.wait(c, index, v, 1000);
    }
  }

  /**
   * Ends the session (also after a failure or a cancel): every worker acknowledges and goes back to
   * its event loop, so none can mistake the next session's commands for this one's.
   */
  end(): void {
    if (this.active === 0) return;
    try {
      if (!this.broken) {
        const c = this.ctrl;
        Atomics.store(c, CTRL.ACK, 0);
        Atomics.store(c, CTRL.CMD, END);
        const tag = (Atomics.load(c, CTRL.SEQ) + 1) & TAG_MASK;
        Atomics.store(c, CTRL.CLAIM, (tag << 8) | 255);
        Atomics.store(c, CTRL.SEQ, tag);
        Atomics.notify(c, CTRL.SEQ);
        this.join(CTRL.ACK, this.active - 1);
      }
    } catch {
      // The session is over either way; a broken pool is replaced next time.
    } finally {
      this.active = 0;
    }
  }

  async close(): Promise<void> {
    this.broken = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}

/** Every non-empty typed array handed to the workers must be shared: a copy would drop their writes. */
function assertShared(v: unknown, path: string): void {
  if (ArrayBuffer.isView(v)) {
    if (v.byteLength > 0 && !(v.buffer instanceof SharedArrayBuffer)) throw new StudioError('INTERNAL', `smoothing: ${path} is not in shared memory`);
  } else if (Array.isArray(v)) {
    v.forEach((e, i) => assertShared(e, `${path}[${i}]`));
  } else if (v && typeof v === 'object') {
    for (const [k, e] of Object.entries(v)) assertShared(e, `${path}.${k}`);
  }
}

let pool: SmoothPool | undefined;

/** The shared pool with at least threads − 1 workers started (a broken one is replaced). */
export function acquirePool(threads: number): SmoothPool {
  if (pool?.broken) {
    void pool.close();
    pool = undefined;
  }
  pool ??= new SmoothPool();
  pool.grow(threads);
  return pool;
}

/** Terminates the pool's workers (tests; processes exit without it, the workers are unref'd). */
export async function closeSmoothPool(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.close();
}
