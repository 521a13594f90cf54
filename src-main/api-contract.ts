/**
 * The studio window's contract with its back end: every request the renderer makes, with its zod
 * schema, and every reply and event. One contract for both transports: Electron IPC (preload → main)
 * and the `npm run serve` WebSocket. The back end validates every payload against these schemas;
 * the renderer imports the types. Browser-safe: imports nothing but zod and the job schemas.
 */
import { z } from 'zod';
import { GatysParams, MatchParams, OutputSize, PhotoParams } from './protocol.ts';
import type { LossValues } from './protocol.ts';
import type { SerializedError } from './errors.ts';
import type { CatalogEntry, Licence } from './engine/models/catalog.ts';
// Type only (erased when built): the contract stays browser-safe.
import type { TrainResult } from './worker/train.ts';
import { BatchRequests, type BatchEvent, type BatchReplies } from './batch-contract.ts';
import type { MemoryBudget } from './engine/memory.ts';

/** Ids the back end hands out (images, results): opaque, short, URL-safe. */
const Id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
/** Run ids are chosen by the renderer, so that it can cancel a run before its reply arrives. */
export const RunId = Id;

export const ImageRole = z.enum(['content', 'style', 'contentLabels', 'styleLabels', 'training']);
export type ImageRole = z.infer<typeof ImageRole>;

/** Largest upload accepted over the socket or IPC (a 100-megapixel 16-bit TIFF is about 600 MB). */
export const MAX_UPLOAD_BYTES = 1024 * 2 ** 20;

const Bytes = z.instanceof(Uint8Array).refine((b) => b.byteLength > 0 && b.byteLength <= MAX_UPLOAD_BYTES, 'empty or larger than 1 GiB');
const FileName = z.string().min(1).max(255);

export const OpenImagesRequest = z.object({ role: ImageRole });
/** Bytes of a file the user dropped or picked in the browser; saved in the back end's own folder. */
export const UploadImageRequest = z.object({ role: ImageRole, name: FileName, bytes: Bytes });

export const StylizeRequest = z.object({
  runId: RunId,
  /** gatys: artistic; photo: neural photorealistic (PhotoWCT); match: colour match (no model needed). */
  method: z.enum(['gatys', 'photo', 'match']),
  content: Id,
  /** Gatys: one or more paintings (blend weights in gatys.styleWeights); photo and match: exactly one. */
  styles: z.array(Id).min(1).max(8),
  contentLabels: Id.optional(),
  styleLabels: Id.optional(),
  model: z.string().max(200).optional(),
  gatys: GatysParams.optional(),
  photo: PhotoParams.optional(),
  match: MatchParams.optional(),
  /** 'preview': the small fast run only; 'full': the full size only; 'both': preview, then full size. */
  phases: z.enum(['preview', 'full', 'both']).default('both'),
  /** Longest side of the preview, px. */
  previewSize: z.number().int().min(16).max(2048).default(256),
});
export type StylizeRequest = z.input<typeof StylizeRequest>;

export const CancelRequest = z.object({ runId: RunId });

export const ExportRequest = z.object({
  resultId: Id,
  format: z.enum(['png', 'jpeg', 'tiff']),
  /** Absent: 16 bits when the photo had 16 and the format holds them, else 8 (as the CLI). */
  bitDepth: z.union([z.literal(8), z.literal(16)]).optional(),
  quality: z.number().int().min(1).max(100).optional(),
  /**
   * Photorealistic results: 'full' (the photo's own size, carried from the working size), 'working'
   * (as computed), or a longest side in px. Artistic results are exported as computed.
   */
  size: OutputSize.default('full'),
});
export type ExportRequest = z.input<typeof ExportRequest>;

export const ImportModelRequest = z.object({
  /** Browser: the weights file's bytes; Electron: absent, the main process asks with a dialog. */
  file: z.object({ name: FileName, bytes: Bytes }).optional(),
  /** A folder name under the models directory (store.ts MODEL_NAME): never '.', '..' or a hidden one. */
  name: z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/).optional(),
});

/** A catalogue model (engine/models/catalog.ts); an interrupted download of it resumes. */
export const FetchModelRequest = z.object({ runId: RunId, model: z.enum(['vgg19', 'photowct']).default('vgg19') });

export const TrainDecoderRequest = z.object({
  runId: RunId,
  level: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]),
  /** Photos opened with role 'training'. */
  images: z.array(Id).min(1).max(10000),
  model: z.string().max(200).optional(),
  steps: z.number().int().min(1).max(1_000_000).default(2000),
  batch: z.number().int().min(1).max(64).default(4),
  crop: z.number().int().min(16).max(2048).default(256),
  lr: z.number().positive().max(1).default(1e-4),
  /** Continue an interrupted run of this level from its last checkpoint. */
  resume: z.boolean().default(false),
  /** Start from the model's installed decoder of this level instead of a fresh one. */
  fineTune: z.boolean().default(false),
  precision: z.enum(['fp32', 'mixed-fp16', 'mixed-bf16']).default('fp32'),
});
export type TrainDecoderRequest = z.input<typeof TrainDecoderRequest>;

const Empty = z.object({}).strict().optional();

/** Every method: its request schema. The reply types are in ApiReplies. */
export const ApiRequests = {
  info: Empty,
  openImages: OpenImagesRequest,
  uploadImage: UploadImageRequest,
  stylize: StylizeRequest,
  cancel: CancelRequest,
  exportResult: ExportRequest,
  listModels: Empty,
  catalog: Empty,
  importModel: ImportModelRequest,
  fetchModel: FetchModelRequest,
  trainDecoder: TrainDecoderRequest,
  ...BatchRequests,
} as const;
export type ApiMethod = keyof typeof ApiRequests;
export const API_METHODS = Object.keys(ApiRequests) as ApiMethod[];

export interface ImageRef {
  id: string;
  role: ImageRole;
  name: string;
  width: number;
  height: number;
  format: string;
  bitDepth: 8 | 16;
  /** JPEG, longest side 320 px. */
  thumbnail: Uint8Array;
  /** JPEG, longest side 1280 px: the picture shown before there is a result. */
  preview: Uint8Array;
  /** Orientation applied, profile converted, alpha removed… */
  notes: string[];
}

export interface ModelInfo {
  name: string;
  widths: number[];
  dtype: string;
  source: string;
  /** PhotoWCT decoder levels installed for it (1–4). */
  decoders: number[];
  /** A partial VGG19's deepest feature (FastPhotoStyle's encoder ends at relu4_1): not for the artistic method. */
  depth?: string;
  licence?: Licence;
}

/** A model the studio can download (the welcome panel), with what is on disk of it. */
export interface CatalogStatus extends CatalogEntry {
  installed: boolean;
  /** Bytes of an interrupted download that a fetch resumes from (0: none). */
  partialBytes: number;
}

export interface StudioInfo {
  host: 'electron' | 'browser';
  backend: { name: string; device: string; threads: number; skipped: { name: string; reason: string }[] };
  modelsDir: string;
  models: ModelInfo[];
  /** Image formats the studio reads. */
  formats: string[];
  /** PhotoWCT smoothing modes this engine offers (the first is its default). */
  smoothModes: string[];
  /** What a job may plan on (bytes): the machine's budget, and the WebAssembly heap on that backend. */
  memory: MemoryBudget;
}

export interface RunResult {
  resultId: string;
  phase: 'preview' | 'full';
  width: number;
  height: number;
  /** The result and the photo at the same size, 8-bit JPEG, for the comparison view. */
  after: Uint8Array;
  before: Uint8Array;
  totalMs: number;
  backend: string;
  /** The photo's bit depth: the export dialog's default. */
  sourceBitDepth: 8 | 16;
  /** The photo's own size: what a photorealistic result exports at by default. */
  sourceWidth: number;
  sourceHeight: number;
  /** Photorealistic results can be exported at any size (carried from this one); artistic ones as computed. */
  resizable: boolean;
  suggestedName: string;
}

export interface ExportReply {
  /** Electron: where the file went. Browser: absent, the bytes come back to download. */
  path?: string;
  name: string;
  bytes?: Uint8Array;
  size: number;
  format: 'png' | 'jpeg' | 'tiff';
  bitDepth: 8 | 16;
  /** The exported picture's size. */
  width: number;
  height: number;
  notes: string[];
}

/** What the window shows of a finished training run (the worker's result, less its file paths and timings). */
export type TrainReply = Pick<TrainResult, 'decoder' | 'steps' | 'firstLoss' | 'finalLoss' | 'finalValLoss' | 'bestValLoss' | 'bestStep' | 'resumedFrom'>;

export interface ApiReplies extends BatchReplies {
  info: StudioInfo;
  /** Null when the dialog was dismissed. Several only for role 'training'. */
  openImages: ImageRef[] | null;
  uploadImage: ImageRef;
  /** The last phase's result (the full one for 'both'). */
  stylize: RunResult;
  cancel: { cancelled: boolean };
  /** Null when the save dialog was dismissed. */
  exportResult: ExportReply | null;
  listModels: ModelInfo[];
  catalog: CatalogStatus[];
  importModel: ModelInfo | null;
  fetchModel: ModelInfo;
  trainDecoder: TrainReply;
}

export type ApiRequest<M extends ApiMethod> = z.input<(typeof ApiRequests)[M]>;

/** Streamed while a run (stylize, fetch, train) goes on; every event names its run. */
export type RunEvent =
  | {
    type: 'progress'; runId: string; phase?: 'preview' | 'full'; stage: string; fraction: number;
    iteration?: number; iterations?: number; losses?: LossValues; elapsedMs: number; etaMs?: number;
  }
  | { type: 'preview'; runId: string; phase: 'preview' | 'full'; iteration: number; width: number; height: number; image: Uint8Array }
  | { type: 'result'; runId: string; result: RunResult }
  | { type: 'log'; runId: string; message: string };

/** Sent by the Electron menu. */
export type MenuEvent = { type: 'menu'; action: 'open-content' | 'open-style' | 'export' };

export type ServerEvent = RunEvent | MenuEvent | BatchEvent;
export type { BatchEvent };

export type Reply<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

/** What the preload exposes as `window.studio` (and what the WebSocket client implements). */
export interface StudioBridge {
  call<M extends ApiMethod>(method: M, payload: ApiRequest<M>): Promise<Reply<ApiReplies[M]>>;
  onEvent(listener: (e: ServerEvent) => void): () => void;
}
