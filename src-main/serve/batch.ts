/**
 * The Batch panel's back end (for StudioHandlers, so for Electron IPC and the WebSocket alike): a
 * folder restyled by the batch engine (batch/run.ts), its file and progress events relayed to the
 * window with a small thumbnail of each result, pause, resume and cancel, and a clean stop on quit.
 *
 * Folders: in Electron the main process takes only folders the user chose in its native dialog
 * (remembered here, per purpose). In the browser there is no folder dialog; the server is local
 * and token-protected, so the user types folder paths of this machine, which are checked here
 * (absolute, existing) with a clear message. Inputs are only read; results go where the user said.
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { z } from 'zod';
import type { BatchEvent, BatchReplies, BatchRequests, BatchSummaryReply, QueuedShoot } from '../batch-contract.ts';
import type { ShootFollower, ShootStatus } from '../queue/follow.ts';
import { BatchRun, type BatchProgress, type BatchSummary, type FileEvent } from '../batch/run.ts';
import { StudioError } from '../errors.ts';
import { GatysParams, MatchParams, PhotoParams } from '../protocol.ts';
import type { EngineClient } from '../worker/client.ts';

export type BatchMethod = keyof typeof BatchRequests;

export interface BatchHost {
  emit(e: BatchEvent): void;
  /** Electron: a native folder dialog (undefined when dismissed). Absent in the browser: typed paths. */
  chooseFolder?(purpose: 'input' | 'output'): Promise<string | undefined>;
  /** The engine worker for the batch's jobs (Electron: its bundled entry); default: the CLI's. */
  makeEngine?(wasmThreads: number): EngineClient;
  /** The path of an image the user opened or uploaded (throws when it is not open). */
  imagePath(id: string): string;
}

/** Thumbnails in the file events: longest side, and how many of the skipped files get one per run. */
const THUMB_SIDE = 160;
const SKIPPED_THUMBS = 200;
const MAX_FAILED_LISTED = 1000;

const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);

/** A typed folder: '~' expanded, absolute required (a relative one would depend on where the server started). */
function typedFolder(p: string, what: string): string {
  const t = p.trim();
  const expanded = t === '~' ? homedir() : t.startsWith('~/') ? path.join(homedir(), t.slice(2)) : t;
  if (!path.isAbsolute(expanded)) throw new StudioError('BAD_ARGUMENT', `the ${what} folder "${t}" is not a full path`, `type the whole path, for example ${path.join(homedir(), 'Pictures')}`);
  return path.resolve(expanded);
}

function summaryReply(s: BatchSummary): BatchSummaryReply {
  return {
    inDir: s.inDir, outDir: s.outDir, journal: s.journal, total: s.total, done: s.done, skipped: s.skipped,
    failed: s.failed.slice(0, MAX_FAILED_LISTED).map((f) => ({ ...f, reason: f.reason.replaceAll(`${s.inDir}${path.sep}`, '') })), failedCount: s.failed.length, stopped: s.stopped, ms: s.ms,
  };
}

const MAX_FAILED_SHOWN = 100;

function queuedShoot(s: ShootStatus): QueuedShoot {
  return {
    id: s.shoot.id, inDir: s.shoot.inDir, outDir: s.shoot.outDir, method: s.shoot.settings.method, host: s.shoot.host, state: s.shoot.state, finished: s.finished,
    total: s.total, done: s.done, skipped: s.skipped, failed: s.failed.slice(0, MAX_FAILED_SHOWN), failedCount: s.failed.length,
    running: s.running, remaining: s.remaining, etaMs: s.etaMs, connected: s.connected, workers: s.workers,
  };
}

interface Active {
  run: BatchRun;
  finished: Promise<unknown>;
  last?: Omit<Extract<BatchEvent, { type: 'batchProgress' }>, 'elapsedMs'>;
  t0: number;
  /** Emits in order with the file events (which wait for their thumbnails). */
  send(e: BatchEvent): void;
}

export class BatchHandlers {
  private readonly chosen = { input: new Set<string>(), output: new Set<string>() };
  private readonly active = new Map<string, Active>();
  /** Queued shoots being followed, by run id. */
  private readonly following = new Map<string, AbortController>();
  private closed = false;

  constructor(private readonly host: BatchHost) {}

  handle(m: BatchMethod, p: unknown): Promise<unknown> {
    switch (m) {
      case 'batchChooseFolder': return this.chooseFolder(p as z.output<typeof BatchRequests.batchChooseFolder>);
      case 'batchStart': return this.start(p as z.output<typeof BatchRequests.batchStart>);
      case 'batchPause': return Promise.resolve(this.control(p as { runId: string }, 'pause'));
      case 'batchResume': return Promise.resolve(this.control(p as { runId: string }, 'resume'));
      case 'batchCancel': return Promise.resolve(this.control(p as { runId: string }, 'cancel'));
      case 'batchQueueList': return this.queueList(p as z.output<typeof BatchRequests.batchQueueList>);
      case 'batchQueueFollow': return this.queueFollow(p as z.output<typeof BatchRequests.batchQueueFollow>);
      case 'batchQueueUnfollow': return Promise.resolve(this.queueUnfollow(p as { runId: string }));
      case 'batchQueueCancel': return this.queueCancel(p as z.output<typeof BatchRequests.batchQueueCancel>);
    }
  }

  /** A queue's follower for one request (its connections closed after). */
  private async withQueue<T>(url: string, fn: (f: ShootFollower) => Promise<T>): Promise<T> {
    const { withFollower } = await import('../queue/follow.ts');
    return withFollower(url, fn);
  }

  async queueList(req: { url: string }): Promise<QueuedShoot[]> {
    return this.withQueue(req.url, async (f) => Promise.all((await f.shoots()).reverse().map(async (s) => queuedShoot(await f.status(s.id)))));
  }

  async queueFollow(req: { runId: string; url: string; shoot: string }): Promise<QueuedShoot> {
    if (this.closed) throw new StudioError('CANCELLED', 'the studio is closing');
    if (this.following.has(req.runId)) throw new StudioError('BAD_ARGUMENT', `run ${req.runId} is following a shoot already`);
    const stop = new AbortController();
    this.following.set(req.runId, stop);
    try {
      return await this.withQueue(req.url, async (f) => {
        const [shoot] = await f.find({ id: req.shoot });
        const last = await f.follow(shoot.id, (s) => this.host.emit({ type: 'batchQueue', runId: req.runId, shoot: queuedShoot(s) }), { signal: stop.signal });
        return queuedShoot(last);
      });
    } finally {
      this.following.delete(req.runId);
    }
  }

  /** Stops following (a window closed, or asked). */
  queueUnfollow(p: { runId: string }): { ok: boolean } {
    const f = this.following.get(p.runId);
    f?.abort();
    return { ok: Boolean(f) };
  }

  async queueCancel(req: { url: string; shoot: string }): Promise<{ ok: boolean }> {
    return this.withQueue(req.url, async (f) => {
      const [shoot] = await f.find({ id: req.shoot });
      await f.cancel(shoot.id);
      return { ok: true };
    });
  }

  async chooseFolder(p: { purpose: 'input' | 'output' }): Promise<BatchReplies['batchChooseFolder']> {
    if (!this.host.chooseFolder) throw new StudioError('BAD_ARGUMENT', 'no folder dialog here', 'type the folder\'s path');
    const chosen = await this.host.chooseFolder(p.purpose);
    if (!chosen) return null;
    const abs = path.resolve(chosen);
    this.chosen[p.purpose].add(abs);
    return { path: abs };
  }

  private async folders(inDir: string, outDir: string): Promise<{ inDir: string; outDir: string }> {
    if (this.host.chooseFolder) {
      // Electron: only what the user picked in a dialog, whatever the renderer sends.
      const i = path.resolve(inDir), o = path.resolve(outDir);
      if (!this.chosen.input.has(i)) throw new StudioError('BAD_ARGUMENT', 'choose the input folder with "Choose…"');
      if (!this.chosen.output.has(o)) throw new StudioError('BAD_ARGUMENT', 'choose the output folder with "Choose…"');
      return { inDir: i, outDir: o };
    }
    const i = typedFolder(inDir, 'input'), o = typedFolder(outDir, 'output');
    const si = await stat(i).catch(() => undefined);
    if (!si) throw new StudioError('FILE_NOT_FOUND', `the input folder ${i} does not exist`, 'check the path of the folder with your photos');
    if (!si.isDirectory()) throw new StudioError('BAD_ARGUMENT', `${i} is a file, not a folder`, 'type the folder that holds the photos');
    const so = await stat(o).catch(() => undefined);
    if (so && !so.isDirectory()) throw new StudioError('BAD_ARGUMENT', `the output ${o} is a file, not a folder`, 'type a folder for the results');
    // A missing output folder is created, but only inside one that exists: a typo should not grow a tree.
    if (!so && !(await isDir(path.dirname(o)))) throw new StudioError('FILE_NOT_FOUND', `the output folder's parent ${path.dirname(o)} does not exist`, 'check the path, or create the folder first');
    return { inDir: i, outDir: o };
  }

  async start(req: z.output<typeof BatchRequests.batchStart>): Promise<BatchSummaryReply> {
    if (this.closed) throw new StudioError('CANCELLED', 'the studio is closing');
    // One batch at a time: two would share the cores, and could share an output folder.
    if (this.active.size) throw new StudioError('BAD_ARGUMENT', 'a batch is already running', 'wait for it to finish, or cancel it');
    const { inDir, outDir } = await this.folders(req.inDir, req.outDir);
    if (inDir === outDir) throw new StudioError('OUTPUT_IS_INPUT', 'the output folder must not be the input folder', 'choose another output folder (a sub-folder of the input is fine)');
    const style = this.host.imagePath(req.style);
    const t0 = performance.now();
    // Events leave in order, each file's after its thumbnail is made (sharp works off the event loop).
    let queue: Promise<void> = Promise.resolve();
    const send = (make: () => Promise<BatchEvent | undefined> | BatchEvent | undefined) => {
      queue = queue.then(async () => {
        const e = await make();
        if (e) this.host.emit(e);
      }).catch(() => undefined);
    };
    let skippedThumbs = 0;
    const onFile = (f: FileEvent) => send(async () => {
      const wantThumb = f.output && (f.outcome === 'done' || (f.outcome === 'skipped' && skippedThumbs++ < SKIPPED_THUMBS));
      const thumbnail = wantThumb
        ? await sharp(path.join(outDir, f.output!)).resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 80 }).toBuffer()
          .then((b) => new Uint8Array(b), () => undefined)
        : undefined;
      // The input folder is on screen already: the reason names the file by its path in it.
      const reason = f.reason?.replaceAll(`${inDir}${path.sep}`, '');
      return { type: 'batchFile', runId: req.runId, input: f.input, output: f.output, outcome: f.outcome, code: f.code, reason, ms: f.ms, thumbnail };
    });
    const onProgress = (p: BatchProgress) => {
      a.last = { type: 'batchProgress', runId: req.runId, ...p };
      const e = { ...a.last, elapsedMs: performance.now() - t0 };
      send(() => e);
    };
    // A file sent to an engine: shown as running now (the engine's own progress comes as files finish).
    const onStart = (input: string) => {
      const base = a.last ?? { type: 'batchProgress' as const, runId: req.runId, total: 0, done: 0, skipped: 0, failed: 0, running: [], paused: false };
      a.last = { ...base, running: [...base.running.filter((x) => x !== input), input] };
      const e = { ...a.last, elapsedMs: performance.now() - t0 };
      send(() => e);
    };
    const run = new BatchRun({
      inDir, outDir, style, method: req.method,
      photo: req.method === 'photo' ? PhotoParams.parse(req.photo ?? {}) : undefined,
      gatys: req.method === 'gatys' ? GatysParams.parse(req.gatys ?? {}) : undefined,
      match: req.method === 'match' ? MatchParams.parse(req.match ?? {}) : undefined,
      model: req.model, recursive: req.recursive, pattern: req.pattern?.trim() || undefined,
      format: req.format, quality: req.quality, jobs: req.jobs, overwrite: req.overwrite,
      engine: this.host.makeEngine,
    }, { onFile, onProgress, onStart });
    const a: Active = { run, finished: Promise.resolve(), t0, send: (e) => send(() => e) };
    const running = run.run();
    a.finished = running.catch(() => undefined);
    this.active.set(req.runId, a);
    try {
      const summary = summaryReply(await running);
      await queue;
      this.host.emit({ type: 'batchDone', runId: req.runId, summary });
      return summary;
    } finally {
      this.active.delete(req.runId);
    }
  }

  private control(p: { runId: string }, what: 'pause' | 'resume' | 'cancel'): { ok: boolean } {
    const a = this.active.get(p.runId);
    if (!a) return { ok: false };
    a.run[what]();
    // The engine reports progress when a file finishes; say "paused" (or not) now.
    if (a.last && what !== 'cancel') {
      a.last = { ...a.last, paused: what === 'pause' };
      a.send({ ...a.last, elapsedMs: performance.now() - a.t0 });
    }
    return { ok: true };
  }

  /** Quit or server stop: cancels every batch and waits until its engines and journal are closed. */
  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    for (const f of this.following.values()) f.abort();
    const all = [...this.active.values()];
    for (const a of all) a.run.cancel();
    // A file in a step that checks for cancellation rarely still gets its grace period, not forever.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all.map((a) => a.finished)), new Promise((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
  }
}
