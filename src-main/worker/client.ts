/**
 * The front ends' handle on the engine worker: start it, run jobs with streamed events, cancel.
 * Used by the CLI now and by the Electron main process and the WebSocket server.
 */
import { Worker } from 'node:worker_threads';
import { deserializeError, StudioError } from '../errors.ts';
import type { FromWorker, Job, JobEvent, ToWorker } from '../protocol.ts';
import { CancelFlag } from './cancel.ts';

export interface RunningJob<T> {
  id: number;
  result: Promise<T>;
  cancel(): void;
}

export interface EngineClientOptions {
  backend?: string;
  /** Worker entry; defaults to the TypeScript sources through tsx. */
  entry?: URL;
  /** WebAssembly threads for this engine (default: STUDIO_WASM_THREADS or the core count). */
  wasmThreads?: number;
}

export class EngineClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; onEvent?(e: JobEvent): void }>();
  private exited: Error | undefined;

  constructor(opts: EngineClientOptions = {}) {
    this.worker = new Worker(opts.entry ?? new URL('./boot.mjs', import.meta.url), { workerData: { backend: opts.backend, wasmThreads: opts.wasmThreads } });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (e) => this.failAll(new StudioError('INTERNAL', `engine worker crashed: ${e.message}`)));
    this.worker.on('exit', (code) => this.failAll(new StudioError('INTERNAL', `engine worker exited with code ${code}`)));
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'event') p.onEvent?.(m.event);
    else if (m.type === 'done') {
      this.pending.delete(m.id);
      p.resolve(m.result);
    } else {
      this.pending.delete(m.id);
      p.reject(deserializeError(m.error as Parameters<typeof deserializeError>[0]));
    }
  }

  private failAll(e: Error): void {
    this.exited ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  run<T = unknown>(job: Job, onEvent?: (e: JobEvent) => void): RunningJob<T> {
    const id = this.nextId++;
    const flag = new CancelFlag();
    const result = new Promise<T>((resolve, reject) => {
      if (this.exited) return reject(this.exited);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onEvent });
      const msg: ToWorker = { type: 'run', id, job, cancel: flag.buffer };
      this.worker.postMessage(msg);
    });
    return { id, result, cancel: () => flag.cancel() };
  }

  /** Stops the worker; pending jobs are rejected. */
  async close(): Promise<void> {
    this.exited ??= new StudioError('CANCELLED', 'engine closed');
    await this.worker.terminate();
  }
}
