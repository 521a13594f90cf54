/**
 * The studio window's back end, shared by the Electron main process (IPC) and `npm run serve`
 * (WebSocket): it validates every request against api-contract.ts, keeps the images the user opened
 * and the results of runs, and drives the engine worker. Compute stays in the worker; this side only
 * moves files, makes thumbnails and display JPEGs (sharp, off the event loop) and relays events.
 *
 * Files: it reads only what the host says the user chose (a dialog) or the bytes the user dropped or
 * picked in the browser, which it saves in its own temporary folder. It writes only there, and to a
 * path the user chose in a save dialog (atomically, never over an input: io/write.ts).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import {
  ApiRequests, type ApiMethod, type ApiReplies, type CatalogStatus, type ExportReply, type ImageRef, type ImageRole, type ModelInfo,
  type Reply, type RunEvent, type RunResult, type ServerEvent, type StudioInfo,
} from '../api-contract.ts';
import { serializeError, StudioError } from '../errors.ts';
import { GatysParams, MatchParams, PhotoParams, TrainDecoderJob, type Job, type JobEvent } from '../protocol.ts';
import { readImage, probeImage, type SourceInfo } from '../io/images.ts';
import { writeImage } from '../io/write.ts';
import type { EngineClient, RunningJob } from '../worker/client.ts';
import { BatchHandlers } from './batch.ts';

/** What differs between Electron and the browser: dialogs, and where events go. */
export interface StudioHost {
  kind: 'electron' | 'browser';
  emit(e: ServerEvent): void;
  /** Native open dialog; undefined when dismissed. Absent in the browser (it uploads instead). */
  chooseImages?(role: ImageRole, multiple: boolean): Promise<string[] | undefined>;
  chooseSavePath?(suggestedName: string, format: 'png' | 'jpeg' | 'tiff'): Promise<string | undefined>;
  chooseWeightsFile?(): Promise<string | undefined>;
  /** Batch panel: a native folder dialog (Electron); absent in the browser, where paths are typed. */
  chooseFolder?(purpose: 'input' | 'output'): Promise<string | undefined>;
  /** Batch panel: an engine worker for the batch's jobs (Electron: its bundled entry). */
  makeEngine?(wasmThreads: number): EngineClient;
}

interface OpenedImage {
  ref: Omit<ImageRef, 'thumbnail' | 'preview'>;
  path: string;
  source: SourceInfo;
}

interface StoredResult {
  id: string;
  file: string;
  width: number;
  height: number;
  content: OpenedImage;
  inputs: string[];
  /** Photorealistic: exportable at any size by the carry; artistic: as computed. */
  resizable: boolean;
}

const THUMB_SIDE = 320;
const PREVIEW_SIDE = 1280;
/** Results kept for export; older ones are deleted (each is a 16-bit PNG in the temporary folder). */
const KEEP_RESULTS = 6;
/** At most this many preview frames a second reach the window; the last one always does. */
const PREVIEW_MIN_INTERVAL_MS = 250;
const EXTENSIONS = { png: 'png', jpeg: 'jpg', tiff: 'tif' } as const;

const newId = () => randomBytes(9).toString('base64url');

function smoothModes(): string[] {
  // Whatever this engine's PhotoParams accepts, its default first (the smoothing step is being built).
  const shape = PhotoParams.shape.smooth;
  const modes = ['exact', 'fast', 'none'].filter((m) => shape.safeParse(m).success);
  const dflt = PhotoParams.parse({}).smooth as string;
  return [dflt, ...modes.filter((m) => m !== dflt)];
}

/** 8-bit sRGB JPEG of float RGB data (display only). */
async function jpegOf(data: Float32Array, width: number, height: number, quality = 92): Promise<Uint8Array> {
  const px = new Uint8ClampedArray(data.length);
  for (let i = 0; i < data.length; i++) px[i] = data[i] * 255;
  return new Uint8Array(await sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer());
}

/** Allocation failures (wasm memory, typed arrays, GPU buffers) as the user-facing error they are. */
function outOfMemory(e: unknown): StudioError | undefined {
  const msg = e instanceof Error ? e.message : '';
  const internal = !(e instanceof StudioError) || e.code === 'INTERNAL';
  if (!internal || !/out of memory|allocation failed|Array buffer allocation|OOM|failed to allocate/i.test(msg)) return undefined;
  return new StudioError('IMAGE_TOO_LARGE', `not enough memory for this size (${msg})`, 'lower the size, or close other programs and try again');
}

export class StudioHandlers {
  private readonly images = new Map<string, OpenedImage>();
  private readonly results = new Map<string, StoredResult>();
  private readonly runs = new Map<string, { cancel(): void }>();
  /** Catalogue models being downloaded now. */
  private readonly fetching = new Set<string>();
  /** Requests being served: close() lets them wind down (a cancelled training run saves its checkpoint). */
  private readonly active = new Set<Promise<unknown>>();
  private workDir: Promise<string> | undefined;
  private closed = false;
  private batchHandlers: BatchHandlers | undefined;
  /** The Batch panel's requests (serve/batch.ts); its style is an image opened here. */
  private get batch(): BatchHandlers {
    return this.batchHandlers ??= new BatchHandlers({
      emit: (e) => this.host.emit(e), chooseFolder: this.host.chooseFolder, makeEngine: this.host.makeEngine,
      imagePath: (id) => this.image(id, 'style').path,
    });
  }

  constructor(private readonly engine: EngineClient, private readonly host: StudioHost) {}

  private dir(sub: string): Promise<string> {
    this.workDir ??= mkdtemp(path.join(tmpdir(), 'style-studio-'));
    return this.workDir.then(async (d) => {
      const p = path.join(d, sub);
      await mkdir(p, { recursive: true });
      return p;
    });
  }

  /** Validates and runs one request; never throws (errors come back in the reply). */
  async handle(method: string, payload: unknown): Promise<Reply<unknown>> {
    try {
      if (this.closed) throw new StudioError('CANCELLED', 'the studio is closing');
      if (!Object.hasOwn(ApiRequests, method)) throw new StudioError('BAD_ARGUMENT', `unknown request "${method}"`);
      const m = method as ApiMethod;
      const parsed = ApiRequests[m].safeParse(payload ?? undefined);
      if (!parsed.success) throw new StudioError('BAD_ARGUMENT', `invalid ${m} request: ${z.prettifyError(parsed.error)}`);
      const work = this.dispatch(m, parsed.data);
      this.active.add(work);
      try {
        return { ok: true, value: await work };
      } finally {
        this.active.delete(work);
      }
    } catch (e) {
      return { ok: false, error: serializeError(outOfMemory(e) ?? e) };
    }
  }

  private async dispatch(m: ApiMethod, p: unknown): Promise<unknown> {
    switch (m) {
      case 'info': return this.info();
      case 'openImages': return this.openImages(p as z.output<typeof ApiRequests.openImages>);
      case 'uploadImage': return this.uploadImage(p as z.output<typeof ApiRequests.uploadImage>);
      case 'stylize': return this.stylize(p as z.output<typeof ApiRequests.stylize>);
      case 'cancel': return this.cancel(p as z.output<typeof ApiRequests.cancel>);
      case 'exportResult': return this.exportResult(p as z.output<typeof ApiRequests.exportResult>);
      case 'listModels': return this.listModels();
      case 'importModel': return this.importModel(p as z.output<typeof ApiRequests.importModel>);
      case 'fetchModel': return this.fetchModel(p as z.output<typeof ApiRequests.fetchModel>);
      case 'catalog': return this.catalog();
      case 'trainDecoder': return this.trainDecoder(p as z.output<typeof ApiRequests.trainDecoder>);
      case 'batchChooseFolder': case 'batchStart': case 'batchPause': case 'batchResume': case 'batchCancel':
      case 'batchQueueList': case 'batchQueueFollow': case 'batchQueueUnfollow': case 'batchQueueCancel':
        return this.batch.handle(m, p);
    }
  }

  async info(): Promise<StudioInfo> {
    const r = await this.engine.run<{ backend: StudioInfo['backend']; imageIo: { formats: string }; modelsDir: string; memory: StudioInfo['memory'] }>({ kind: 'info' }).result;
    return {
      host: this.host.kind,
      backend: { name: r.backend.name, device: r.backend.device, threads: r.backend.threads, skipped: r.backend.skipped },
      modelsDir: r.modelsDir,
      models: await this.listModels(),
      formats: r.imageIo.formats.split(/,\s*/),
      smoothModes: smoothModes(),
      memory: r.memory,
    };
  }

  async listModels(): Promise<ModelInfo[]> {
    const { listModels } = await import('../engine/models/store.ts');
    const models = await listModels().catch(() => []);
    return Promise.all(models.map(async (m) => {
      const decoders: number[] = [];
      for (const level of [1, 2, 3, 4]) {
        if (await stat(path.join(m.dir, 'decoders', `level${level}.safetensors`)).then(() => true, () => false)) decoders.push(level);
      }
      return {
        name: m.name || path.basename(m.dir), widths: m.widths, dtype: m.dtype, source: m.source, decoders,
        ...(m.depth ? { depth: m.depth } : {}), ...(m.licence ? { licence: m.licence } : {}),
      };
    }));
  }

  private async register(file: string, role: ImageRole, name: string): Promise<ImageRef> {
    // A full decode (not only the header) so that a truncated or damaged file fails now, with its name.
    const shown = await readImage(file, { maxSide: PREVIEW_SIDE });
    const src = shown.source;
    const ref: Omit<ImageRef, 'thumbnail' | 'preview'> = {
      id: newId(), role, name, width: src.width, height: src.height, format: src.format, bitDepth: src.bitDepth,
      notes: src.notes.filter((n) => !n.startsWith('resized from')),
    };
    this.images.set(ref.id, { ref, path: file, source: src });
    const preview = await jpegOf(shown.data, shown.width, shown.height, 88);
    const thumbnail = new Uint8Array(await sharp(preview).resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 85 }).toBuffer());
    return { ...ref, thumbnail, preview };
  }

  async openImages(p: { role: ImageRole }): Promise<ImageRef[] | null> {
    if (!this.host.chooseImages) throw new StudioError('BAD_ARGUMENT', 'no file dialog here', 'drop the file on the window or use the file picker');
    const files = await this.host.chooseImages(p.role, p.role === 'training');
    if (!files?.length) return null;
    return Promise.all(files.map((f) => this.register(f, p.role, path.basename(f))));
  }

  async uploadImage(p: { role: ImageRole; name: string; bytes: Uint8Array }): Promise<ImageRef> {
    // The user's own name, made safe: it becomes the default export name, never a path.
    const safe = path.basename(p.name).replace(/[^\w.\- ()]+/g, '_').slice(-120) || 'image';
    const dir = path.join(await this.dir('uploads'), newId());
    await mkdir(dir);
    const file = path.join(dir, safe);
    await writeFile(file, p.bytes, { flag: 'wx' });
    try {
      return await this.register(file, p.role, safe);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      if (e instanceof StudioError) throw new StudioError(e.code, e.message.replaceAll(file, safe), e.hint);
      throw e;
    }
  }

  private image(id: string | undefined, what: string): OpenedImage {
    const im = id === undefined ? undefined : this.images.get(id);
    if (!im) throw new StudioError('FILE_NOT_FOUND', `the ${what} image is no longer open`, 'open it again');
    return im;
  }

  private track(runId: string, running: { cancel(): void }): () => void {
    if (this.runs.has(runId)) throw new StudioError('BAD_ARGUMENT', `run ${runId} is already going`);
    this.runs.set(runId, running);
    return () => this.runs.delete(runId);
  }

  private relay(runId: string, phase?: 'preview' | 'full') {
    let lastPreview = 0;
    let pending: Promise<void> = Promise.resolve();
    return (e: JobEvent) => {
      if (e.type === 'progress') {
        // Stages that report no estimate of their own get a linear one, once there is enough to go on.
        const etaMs = e.etaMs ?? (e.fraction > 0.05 && e.fraction < 1 ? (e.elapsedMs * (1 - e.fraction)) / e.fraction : undefined);
        this.host.emit({ ...e, type: 'progress', runId, phase, etaMs });
      } else if (e.type === 'log') {
        this.host.emit({ type: 'log', runId, message: e.message });
      } else if (phase) {
        const now = performance.now();
        if (now - lastPreview < PREVIEW_MIN_INTERVAL_MS) return;
        lastPreview = now;
        const { width, height, rgb, iteration } = e;
        // In order, and each encoded off the event loop by sharp.
        pending = pending.then(async () => {
          const image = new Uint8Array(await sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer());
          this.host.emit({ type: 'preview', runId, phase, iteration, width, height, image });
        }).catch(() => undefined);
      }
    };
  }

  async stylize(req: z.output<typeof ApiRequests.stylize>): Promise<RunResult> {
    const content = this.image(req.content, 'content');
    const styles = req.styles.map((s) => this.image(s, 'style'));
    if (req.method !== 'gatys' && styles.length !== 1) throw new StudioError('BAD_ARGUMENT', 'the photorealistic methods take one reference photo');
    if (Boolean(req.contentLabels) !== Boolean(req.styleLabels)) {
      throw new StudioError('BAD_ARGUMENT', 'label maps come in pairs', 'open a label map for both the photo and the style, or neither');
    }
    const labels = req.contentLabels ? [this.image(req.contentLabels, 'content label map'), this.image(req.styleLabels, 'style label map')] : undefined;
    let current: RunningJob<unknown> | undefined;
    let cancelled = false;
    const untrack = this.track(req.runId, { cancel: () => { cancelled = true; current?.cancel(); } });
    try {
      const phases: ('preview' | 'full')[] = req.phases === 'both' ? ['preview', 'full'] : [req.phases];
      let last: RunResult | undefined;
      for (const phase of phases) {
        if (cancelled) throw new StudioError('CANCELLED', 'cancelled');
        const resultId = newId();
        const out = path.join(await this.dir('results'), `${resultId}.png`);
        const inputs = [content.path, ...styles.map((s) => s.path)];
        // Lossless 16-bit intermediate without metadata: the export re-encodes it with the user's choices.
        const output = { out, format: 'png' as const, bitDepth: 16 as const };
        let job: Job;
        if (req.method === 'gatys') {
          const g = GatysParams.parse(req.gatys ?? {});
          const params = phase === 'preview'
            ? { ...g, size: Math.min(g.size, req.previewSize), iters: Math.min(g.iters, 60), scales: 1, previewEvery: Math.max(1, Math.min(g.previewEvery, 5)) }
            : g;
          job = { kind: 'stylize-gatys', content: content.path, styles: inputs.slice(1), output, params, model: req.model };
        } else if (req.method === 'match') {
          const m = MatchParams.parse(req.match ?? {});
          // The window shows the working size; Export carries it to the photo's size.
          const params = { ...m, size: phase === 'preview' ? Math.min(m.size, req.previewSize) : m.size, outputSize: 'working' as const };
          job = {
            kind: 'stylize-match', content: content.path, style: styles[0].path, output, params,
            contentLabels: labels?.[0].path, styleLabels: labels?.[1].path,
          };
        } else {
          const ph = PhotoParams.parse(req.photo ?? {});
          const params = { ...ph, size: phase === 'preview' ? Math.min(ph.size, req.previewSize) : ph.size, outputSize: 'working' as const };
          job = {
            kind: 'stylize-photo', content: content.path, style: styles[0].path, output, params, model: req.model,
            contentLabels: labels?.[0].path, styleLabels: labels?.[1].path,
          };
        }
        current = this.engine.run(job, this.relay(req.runId, phase));
        const r = await current.result as { width: number; height: number; totalMs: number; backend: string };
        this.keepResult({ id: resultId, file: out, width: r.width, height: r.height, content, inputs, resizable: req.method !== 'gatys' });
        const [after, before] = await Promise.all([
          sharp(out).jpeg({ quality: 92 }).toBuffer(),
          readImage(content.path, { maxSide: Math.max(r.width, r.height) }).then((im) => jpegOf(im.data, im.width, im.height)),
        ]);
        last = {
          resultId, phase, width: r.width, height: r.height, after: new Uint8Array(after), before, totalMs: r.totalMs, backend: r.backend,
          sourceBitDepth: content.source.bitDepth, sourceWidth: content.source.width, sourceHeight: content.source.height, resizable: req.method !== 'gatys', suggestedName: `${path.parse(content.ref.name).name}-styled`,
        };
        this.host.emit({ type: 'result', runId: req.runId, result: last });
      }
      return last!;
    } finally {
      untrack();
    }
  }

  private keepResult(r: StoredResult): void {
    this.results.set(r.id, r);
    while (this.results.size > KEEP_RESULTS) {
      const [oldest] = this.results.keys();
      const o = this.results.get(oldest)!;
      this.results.delete(oldest);
      void rm(o.file, { force: true });
    }
  }

  cancel(p: { runId: string }): { cancelled: boolean } {
    const r = this.runs.get(p.runId);
    r?.cancel();
    return { cancelled: r !== undefined };
  }

  async exportResult(p: z.output<typeof ApiRequests.exportResult>): Promise<ExportReply | null> {
    const r = this.results.get(p.resultId);
    if (!r) throw new StudioError('FILE_NOT_FOUND', 'that result is no longer available', 'run the stylisation again');
    if (p.format === 'jpeg' && p.bitDepth === 16) throw new StudioError('BAD_ARGUMENT', 'JPEG holds 8 bits per sample only', 'choose PNG or TIFF for 16 bits');
    const name = `${path.parse(r.content.ref.name).name}-styled.${EXTENSIONS[p.format]}`;
    let dest: string;
    if (this.host.chooseSavePath) {
      const chosen = await this.host.chooseSavePath(name, p.format);
      if (!chosen) return null;
      dest = chosen;
    } else {
      dest = path.join(await this.dir(`exports/${newId()}`), name);
    }
    let reply: ExportReply;
    if (r.resizable && p.size !== 'working') {
      // Carried to the photo's size (or the size asked for) in the engine's worker, off this thread.
      const output = { out: dest, format: p.format, bitDepth: p.bitDepth, quality: p.quality };
      await this.engine.run({ kind: 'carry', content: r.content.path, result: r.file, output, outputSize: p.size }).result;
      const meta = await sharp(dest).metadata();
      reply = { name: path.basename(dest), size: (await stat(dest)).size, format: p.format, bitDepth: meta.depth === 'ushort' ? 16 : 8, width: meta.width ?? 0, height: meta.height ?? 0, notes: [] };
    } else {
      const pixels = await readImage(r.file);
      // EXIF and colour-profile handling exactly as the CLI's: the photo's metadata, orientation reset.
      const metadataFrom = await probeImage(r.content.path);
      const w = await writeImage(dest, pixels, { format: p.format, bitDepth: p.bitDepth, quality: p.quality, metadataFrom, inputs: r.inputs });
      reply = { name: path.basename(dest), size: w.bytes, format: w.format, bitDepth: w.bitDepth, width: pixels.width, height: pixels.height, notes: w.notes };
    }
    if (this.host.chooseSavePath) return { ...reply, path: dest };
    const bytes = new Uint8Array(await readFile(dest));
    await rm(path.dirname(dest), { recursive: true, force: true });
    return { ...reply, bytes };
  }

  async importModel(p: z.output<typeof ApiRequests.importModel>): Promise<ModelInfo | null> {
    let file: string;
    let cleanup: string | undefined;
    if (p.file) {
      cleanup = path.join(await this.dir('imports'), newId());
      await mkdir(cleanup);
      file = path.join(cleanup, path.basename(p.file.name).replace(/[^\w.-]+/g, '_'));
      await writeFile(file, p.file.bytes);
    } else {
      if (!this.host.chooseWeightsFile) throw new StudioError('BAD_ARGUMENT', 'no file dialog here', 'pick the weights file');
      const chosen = await this.host.chooseWeightsFile();
      if (!chosen) return null;
      file = chosen;
    }
    try {
      const { importWeightsFile } = await import('../engine/models/import.ts');
      const imported = await importWeightsFile(file, { name: p.name });
      const name = path.basename(imported.dir);
      const m = (await this.listModels()).find((x) => x.name === name);
      if (!m) throw new StudioError('INTERNAL', `the imported model ${name} is not listed`);
      return m;
    } finally {
      if (cleanup) await rm(cleanup, { recursive: true, force: true });
    }
  }

  /** The downloadable models, whether each is installed, and what an interrupted download left to resume. */
  async catalog(): Promise<CatalogStatus[]> {
    const { CATALOG, CATALOG_IDS } = await import('../engine/models/catalog.ts');
    const { partialBytes } = await import('../engine/models/downloads.ts');
    const installed = new Set((await this.listModels()).map((m) => m.name));
    return Promise.all(CATALOG_IDS.map(async (id) => ({ ...CATALOG[id], installed: installed.has(CATALOG[id].dir), partialBytes: await partialBytes(id) })));
  }

  /**
   * Downloads a catalogue model (resuming an interrupted download), streaming progress; cancel keeps what
   * arrived for the next try. Only the transfer and the import run here: both are I/O or short.
   */
  async fetchModel(p: z.output<typeof ApiRequests.fetchModel>): Promise<ModelInfo> {
    const { fetchModel } = await import('../engine/models/fetch.ts');
    const { CATALOG } = await import('../engine/models/catalog.ts');
    // Two writers on one .part would interleave it: one download of a model at a time.
    if (this.fetching.has(p.model)) throw new StudioError('BAD_ARGUMENT', `${CATALOG[p.model].title} is already downloading`, 'wait for it to finish, or cancel it first');
    this.fetching.add(p.model);
    const ac = new AbortController();
    const untrack = this.track(p.runId, { cancel: () => ac.abort() });
    const t0 = performance.now();
    let lastEmit = 0;
    try {
      await fetchModel(p.model, {
        signal: ac.signal,
        retries: 2,
        onProgress: (received: number, total?: number) => {
          const now = performance.now();
          if (now - lastEmit < 100 && (!total || received < total)) return; // a few updates a second are plenty
          lastEmit = now;
          this.host.emit({
            type: 'progress', runId: p.runId, stage: `download ${(received / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ''} MB`,
            fraction: total ? received / total : 0, elapsedMs: now - t0,
            etaMs: total && received > 0 ? ((now - t0) / received) * (total - received) : undefined,
          });
        },
      });
      const dir = CATALOG[p.model].dir;
      const m = (await this.listModels()).find((x) => x.name === dir);
      if (!m) throw new StudioError('INTERNAL', `${dir} was fetched but is not listed`);
      return m;
    } finally {
      this.fetching.delete(p.model);
      untrack();
    }
  }

  async trainDecoder(req: z.output<typeof ApiRequests.trainDecoder>): Promise<ApiReplies['trainDecoder']> {
    const photos = req.images.map((id) => this.image(id, 'training'));
    // The job takes a folder: links to the chosen photos (copies where links are not allowed).
    const folder = path.join(await this.dir('training'), newId());
    await mkdir(folder);
    await Promise.all(photos.map(async (im, i) => {
      const dest = path.join(folder, `${String(i).padStart(5, '0')}-${path.basename(im.path)}`);
      await symlink(im.path, dest).catch(() => copyFile(im.path, dest));
    }));
    let running: RunningJob<ApiReplies['trainDecoder']> | undefined;
    const untrack = this.track(req.runId, { cancel: () => running?.cancel() });
    try {
      let init: string | undefined;
      if (req.fineTune) {
        const { resolveModel } = await import('../engine/models/store.ts');
        init = path.join(resolveModel(req.model), 'decoders');
      }
      const job = TrainDecoderJob.parse({
        kind: 'train-decoder', level: req.level, images: folder, model: req.model, steps: req.steps, batch: req.batch, crop: req.crop,
        lr: req.lr, resume: req.resume, precision: req.precision, init,
      });
      running = this.engine.run<ApiReplies['trainDecoder']>(job, this.relay(req.runId));
      const r = await running.result;
      return {
        decoder: r.decoder, steps: r.steps, firstLoss: r.firstLoss, finalLoss: r.finalLoss, finalValLoss: r.finalValLoss ?? NaN,
        bestValLoss: r.bestValLoss ?? NaN, bestStep: r.bestStep ?? 0, resumedFrom: r.resumedFrom ?? 0,
      };
    } finally {
      untrack();
      await rm(folder, { recursive: true, force: true });
    }
  }

  /** Cancels every run and removes the temporary folder (quit, or a closed server). */
  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    for (const r of this.runs.values()) r.cancel();
    this.runs.clear();
    // Batches are cancelled now too (their batchStart requests are among those waited for below).
    const batches = this.batchHandlers?.close(graceMs);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.active]),
      new Promise((r) => { timer = setTimeout(r, graceMs); }),
    ]);
    clearTimeout(timer);
    await batches;
    if (this.workDir) await rm(await this.workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

export type { RunEvent };
