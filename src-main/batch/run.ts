/**
 * A batch: every image of a folder restyled with one style, safely and resumably.
 *
 *  - Files stream from the walk (plan.ts) to `jobs` engine workers; each worker keeps the style's
 *    features between its files (`cacheStyle`), so the style is encoded once per worker, not per file.
 *  - The journal (journal.ts) records each file as queued, done (with the output's sha256) or failed.
 *    Run the same command again after any interruption: done files whose output still has its hash
 *    are skipped, the rest is redone; results are written atomically, so a half-written one is
 *    never mistaken for a result (its temporary file is removed).
 *  - A file that cannot be read (corrupt, unsupported, too large) is recorded and the batch goes on;
 *    an output that cannot be written (full disk, read-only folder) or a missing model stops it
 *    cleanly: nothing half-done, and the next run resumes.
 *  - Inputs are only read. Outputs mirror the input tree, and a name two inputs would share gets a
 *    suffix, which the journal keeps for later runs.
 */
import { mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StudioError, isStudioError, type ErrorCode } from '../errors.ts';
import { EngineClient, type RunningJob } from '../worker/client.ts';
import { JOURNAL_NAME, JournalWriter, readJournal, type FileRecord } from './journal.ts';
import { batchFingerprint, engineJob, exists, globMatcher, prepareFolders, OutputNames, removeStaleTemps, walkImages, type BatchSettings } from './plan.ts';
import { sha256File } from '../io/files.ts';

export interface BatchOptions extends BatchSettings {
  inDir: string;
  outDir: string;
  recursive?: boolean;
  /** Glob on file names (or relative paths, with '/'); default: every image extension. */
  pattern?: string;
  /** Engines side by side (default 1). */
  jobs?: number;
  /** What to do with an output already there that this batch's journal does not know: keep it (skip) or redo it. */
  overwrite?: 'skip' | 'replace';
  backend?: string;
  /** Engine factory (the Electron app passes its bundled worker); default: the CLI's. */
  engine?: (wasmThreads: number) => EngineClient;
}

export type FileOutcome = 'done' | 'skipped' | 'failed';

export interface FileEvent {
  input: string;
  output?: string;
  outcome: FileOutcome;
  code?: string;
  reason?: string;
  ms?: number;
}

export interface BatchProgress {
  /** Files known so far (the count pass runs ahead of the work). */
  total: number;
  done: number;
  skipped: number;
  failed: number;
  running: string[];
  etaMs?: number;
  paused: boolean;
}

export interface BatchSummary {
  inDir: string;
  outDir: string;
  journal: string;
  total: number;
  done: number;
  skipped: number;
  failed: { input: string; code: string; reason: string }[];
  /** Set when the batch stopped early: cancelled, or an error that every file would hit. */
  stopped?: { code: string; message: string; hint?: string };
  ms: number;
  /** Wall time of the files processed, and the part of it spent outside the engine's compute (decode, encode, journal, hashing). */
  fileMs: number;
  overheadMs: number;
}

/** A photo's size and modification time: what tells that it was replaced. */
async function inputStamp(file: string): Promise<{ size: number; mtimeMs: number } | undefined> {
  return stat(file).then((s) => ({ size: s.size, mtimeMs: s.mtimeMs }), () => undefined);
}

/** Errors of one file: recorded, and the batch goes on. Any other error stops the batch. */
const PER_FILE: readonly ErrorCode[] = ['NOT_AN_IMAGE', 'CORRUPT_IMAGE', 'EMPTY_IMAGE', 'IMAGE_TOO_LARGE', 'UNSUPPORTED_FORMAT', 'BAD_FILE', 'FILE_NOT_FOUND', 'INTERNAL'];

export class BatchRun {
  private paused = false;
  private resumeWaiters: (() => void)[] = [];
  private cancelled = false;
  private readonly running = new Map<string, RunningJob<unknown>>();
  private stopError: StudioError | undefined;

  constructor(
    private readonly o: BatchOptions,
    /** onStart: a file went to an engine (progress reports come as files finish). */
    private readonly events: { onFile?(e: FileEvent): void; onProgress?(p: BatchProgress): void; onStart?(input: string): void } = {},
  ) {}

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const w of this.resumeWaiters.splice(0)) w();
  }

  /** Stops dispatching and cancels the files in flight (they stay queued in the journal: the next run redoes them). */
  cancel(): void {
    this.cancelled = true;
    this.resume();
    for (const r of this.running.values()) r.cancel();
  }

  async run(): Promise<BatchSummary> {
    const t0 = performance.now();
    const o = this.o;
    const { inDir, outDir, style } = await prepareFolders(o);
    const jobs = Math.max(1, Math.min(16, o.jobs ?? 1));
    const match = o.pattern ? globMatcher(o.pattern) : undefined;
    const walk = () => walkImages(inDir, { recursive: o.recursive ?? false, match, exclude: outDir });

    const { fingerprint, settings } = await batchFingerprint(o);
    const known = await readJournal(path.join(outDir, JOURNAL_NAME), fingerprint);
    const journal = await JournalWriter.open(outDir);
    const summary: BatchSummary = { inDir, outDir, journal: journal.file, total: 0, done: 0, skipped: 0, failed: [], ms: 0, fileMs: 0, overheadMs: 0 };
    const names = new OutputNames(o, path.basename(style, path.extname(style)), known.outputs);
    const engines: EngineClient[] = [];
    const progress = () => {
      const finished = summary.done + summary.failed.length;
      const perFile = finished > 0 ? summary.fileMs / finished / jobs : undefined;
      const left = summary.total - summary.done - summary.skipped - summary.failed.length;
      this.events.onProgress?.({
        total: summary.total, done: summary.done, skipped: summary.skipped, failed: summary.failed.length,
        running: [...this.running.keys()], etaMs: perFile !== undefined ? perFile * left : undefined, paused: this.paused,
      });
    };

    try {
      await journal.append({ type: 'batch', fingerprint, settings, at: new Date().toISOString() });
      // Count ahead (streamed, counts only) so that progress has a total and an ETA.
      const counting = (async () => {
        for await (const _ of walk()) {
          summary.total++;
          if (summary.total % 256 === 0) progress();
        }
        progress();
      })();

      const threads = Math.max(1, Math.floor(os.availableParallelism() / jobs));
      const make = o.engine ?? ((t: number) => new EngineClient({ backend: o.backend, wasmThreads: t }));
      for (let k = 0; k < jobs; k++) engines.push(make(threads));

      const files = walk();
      let nextFile: Promise<IteratorResult<string>> | undefined;
      const take = async (): Promise<string | undefined> => {
        // One walk shared by every engine: each takes the next file in turn.
        const p = (nextFile = (nextFile ?? Promise.resolve({ done: false, value: '' } as IteratorResult<string>)).then(() => files.next()));
        const r = await p;
        return r.done ? undefined : r.value;
      };

      const worker = async (engine: EngineClient): Promise<void> => {
        for (;;) {
          if (this.paused) await new Promise<void>((r) => this.resumeWaiters.push(r));
          if (this.cancelled || this.stopError) return;
          const input = await take();
          if (input === undefined) return;
          await this.one(engine, input, { inDir, outDir, style, known: known.files, names, journal, summary });
          progress();
        }
      };
      await Promise.all(engines.map(worker));
      await counting;
    } finally {
      await Promise.all(engines.map((e) => e.close()));
      await journal.close();
    }
    if (this.cancelled) summary.stopped = { code: 'CANCELLED', message: 'cancelled; run the same command again to resume' };
    else if (this.stopError) summary.stopped = { code: this.stopError.code, message: this.stopError.message, hint: this.stopError.hint };
    summary.ms = performance.now() - t0;
    progress();
    return summary;
  }

  private async one(
    engine: EngineClient, input: string,
    c: { inDir: string; outDir: string; style: string; known: Map<string, FileRecord>; names: OutputNames; journal: JournalWriter; summary: BatchSummary },
  ): Promise<void> {
    const o = this.o;
    const tFile = performance.now();
    const prev = c.known.get(input);
    // The output name: kept from the journal, else the template, with a suffix if another input has it.
    const output = c.names.claim(input, prev?.output);
    const outAbs = path.join(c.outDir, output);
    const inAbs = path.join(c.inDir, input);

    const before = await inputStamp(inAbs);
    // Already done: skip when the result is still the one recorded and the photo is the one it was
    // made from (a photo replaced since, say re-exported, is redone), or, unknown to the journal,
    // kept by --overwrite skip.
    if (await exists(outAbs)) {
      const sameInput = prev?.inputSize === undefined || (before?.size === prev.inputSize && before.mtimeMs === prev.inputMtimeMs);
      if (prev?.state === 'done' && prev.sha256 && sameInput && (await sha256File(outAbs)) === prev.sha256) {
        c.summary.skipped++;
        this.events.onFile?.({ input, output, outcome: 'skipped', reason: 'done in an earlier run' });
        return;
      }
      if (!prev && (o.overwrite ?? 'skip') === 'skip') {
        const sha256 = await sha256File(outAbs);
        await c.journal.append({ type: 'file', input, output, state: 'done', sha256 });
        c.summary.skipped++;
        this.events.onFile?.({ input, output, outcome: 'skipped', reason: 'the output already exists (--overwrite replace redoes it)' });
        return;
      }
    }

    await removeStaleTemps(outAbs);
    await mkdir(path.dirname(outAbs), { recursive: true }).catch(() => undefined);
    await c.journal.append({ type: 'file', input, output, state: 'queued' });
    const job = engineJob(o, inAbs, outAbs, c.style);
    const running = engine.run<{ ioMs?: number; totalMs?: number }>(job);
    this.running.set(input, running);
    this.events.onStart?.(input);
    try {
      const r = await running.result;
      // Replaced or still being copied while it was read: the result may be of neither version.
      const after = await inputStamp(inAbs);
      if (!before || !after || before.size !== after.size || before.mtimeMs !== after.mtimeMs) {
        throw new StudioError('BAD_FILE', `${input} changed while it was being restyled (replaced, or still being copied)`, 'run the same command again when it is complete: it is redone');
      }
      const sha256 = await sha256File(outAbs);
      const ms = performance.now() - tFile;
      await c.journal.append({ type: 'file', input, output, state: 'done', sha256, ms: Math.round(ms), inputSize: after.size, inputMtimeMs: after.mtimeMs });
      c.summary.done++;
      c.summary.fileMs += ms;
      // Outside the engine: the worker's decode and encode, plus everything around the job here
      // (journal, hashing, dispatch): the file's wall time less the job's own.
      c.summary.overheadMs += (r.ioMs ?? 0) + Math.max(0, ms - (r.totalMs ?? ms));
      this.events.onFile?.({ input, output, outcome: 'done', ms });
    } catch (e) {
      const err = isStudioError(e) ? e : new StudioError('INTERNAL', (e as Error).message);
      if (err.code === 'CANCELLED') return; // stays queued: the next run redoes it
      // A dead engine (out of memory, a crash) would fail every later file on it: stop instead.
      const engineLost = err.code === 'INTERNAL' && /engine worker (crashed|exited)/.test(err.message);
      if (!PER_FILE.includes(err.code) || engineLost) {
        this.stopError ??= err;
        for (const r of this.running.values()) r.cancel();
        return;
      }
      await c.journal.append({ type: 'file', input, output, state: 'failed', code: err.code, reason: err.message });
      c.summary.failed.push({ input, code: err.code, reason: err.message });
      c.summary.fileMs += performance.now() - tFile;
      this.events.onFile?.({ input, output, outcome: 'failed', code: err.code, reason: err.message });
    } finally {
      this.running.delete(input);
    }
  }
}
