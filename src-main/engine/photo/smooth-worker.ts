/**
 * A thread of the smoothing pool (smooth-pool.ts). Between solves it waits in its event loop; a
 * session message hands it the solve's shared levels, and it then follows the control words —
 * claim and run blocks of each command — until END, all without returning to the event loop.
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { CTRL, END, claimBlocks, type PoolShared } from './smooth-pool.ts';
import { runPart, type ParSession } from './smooth.ts';

const port = parentPort;
if (!port) throw new Error('smooth-worker must run in a worker thread');
const { ctrl, fargs, partial, errBytes, tid } = workerData as PoolShared & { tid: number };

const SPIN = 20000;

/**
 * A full collection after each session. This thread allocates almost nothing, so V8 would not
 * collect here for a long time, and until it does its handles keep the session's shared arrays
 * (hundreds of MB at 1024×640) alive: repeated solves then grew the peak by a solve's worth.
 * (The flag is process-wide: workers started later also get a global `gc`; nothing here minds.)
 */
const collect = ((): (() => void) | undefined => {
  try {
    v8.setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();

function waitSeq(seen: number): number {
  for (let k = 0; k < SPIN; k++) {
    const v = Atomics.load(ctrl, CTRL.SEQ);
    if (v !== seen) return v;
  }
  for (;;) {
    Atomics.wait(ctrl, CTRL.SEQ, seen);
    const v = Atomics.load(ctrl, CTRL.SEQ);
    if (v !== seen) return v;
  }
}

function fail(e: unknown): void {
  const msg = new TextEncoder().encode(`thread ${tid}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`).slice(0, errBytes.length);
  errBytes.set(msg);
  Atomics.store(ctrl, CTRL.ERR_LEN, msg.length);
  Atomics.store(ctrl, CTRL.ERR, 1);
}

port.on('message', (m: { seq0: number; session: Omit<ParSession, 'partial' | 'fargs'> & { scratch: number; scratches?: Float64Array[] } }) => {
  const S: ParSession = { ...m.session, partial, fargs };
  // A WebAssembly solve hands each thread its scratch row in the arena (the kernels see nothing else).
  const scratch = m.session.scratches?.[tid] ?? new Float64Array(m.session.scratch);
  let seen = m.seq0, failed = false;
  for (;;) {
    seen = waitSeq(seen);
    // Read after SEQ; a successful claim (tagged with `seen`) proves they are that command's.
    const cmd = Atomics.load(ctrl, CTRL.CMD), level = Atomics.load(ctrl, CTRL.LEVEL), nb = Atomics.load(ctrl, CTRL.NBLK);
    if (cmd === END) break;
    // After a failure this thread claims nothing more; the caller runs the blocks and then throws.
    if (failed) continue;
    try {
      claimBlocks(ctrl, seen, nb, tid, (blk) => runPart(S, cmd, level, blk, scratch));
    } catch (e) {
      failed = true;
      fail(e);
    }
  }
  Atomics.add(ctrl, CTRL.ACK, 1);
  Atomics.notify(ctrl, CTRL.ACK);
  // After the handler has returned (its references gone), off the caller's critical path.
  if (collect) setTimeout(collect, 0);
});

Atomics.store(ctrl, CTRL.READY + tid, 1);
Atomics.notify(ctrl, CTRL.READY + tid);
