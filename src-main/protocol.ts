/**
 * The typed contract between every front end (CLI, Electron main and renderer, the WebSocket server)
 * and the engine worker: requests, progress events, results and errors. Schemas validate whatever
 * crosses a process or thread boundary; the TypeScript types are inferred from them.
 */
import { z } from 'zod';

export const GatysParams = z.object({
  /** Longest side of the result, px. */
  size: z.number().int().min(16).max(16384).default(512),
  /** Iterations per scale. */
  iters: z.number().int().min(1).max(100000).default(500),
  optimizer: z.enum(['lbfgs', 'adam']).default('lbfgs'),
  /** Adam: 10 on the 0–255 scale (neural-style); L-BFGS: 1 (full step). */
  learningRate: z.number().positive().optional(),
  contentWeight: z.number().min(0).default(5),
  styleWeight: z.number().min(0).default(100),
  tvWeight: z.number().min(0).default(1e-3),
  init: z.enum(['content', 'random', 'style']).default('content'),
  seed: z.number().int().default(0),
  preserveColors: z.boolean().default(false),
  /** Coarse-to-fine: 1 = single scale; k = k scales, each half the size of the next. */
  scales: z.number().int().min(1).max(6).default(1),
  /** Style image size relative to the result's. */
  styleScale: z.number().positive().max(8).default(1),
  /** Blend weights of several styles (normalised to sum 1); equal when absent. */
  styleWeights: z.array(z.number().min(0)).optional(),
  contentLayers: z.array(z.string()).min(1).default(['relu4_2']),
  styleLayers: z.array(z.string()).min(1).default(['relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1']),
  pooling: z.enum(['max', 'avg']).default('max'),
  /** Send a preview image every N iterations (0: none). */
  previewEvery: z.number().int().min(0).default(10),
  lbfgsHistory: z.number().int().min(1).max(1000).default(100),
});
export type GatysParams = z.infer<typeof GatysParams>;
export type GatysParamsInput = z.input<typeof GatysParams>;

/**
 * The size of a photorealistic result: 'full' (the photo's own), 'working' (the size the look was
 * computed at), or a longest side in px (never larger than the photo). Full and px are carried from
 * the working size by the local affine colour model (worker/fullres.ts).
 */
export const OutputSize = z.union([z.enum(['full', 'working']), z.number().int().min(16).max(65535)]);
export type OutputSize = z.infer<typeof OutputSize>;

/** PhotoWCT's smoothing step (REFERENCE §3): R = (1 − α)(I − αS)⁻¹Y, or the guided filter. */
export const SmoothParams = z.object({
  mode: z.enum(['exact', 'fast']).default('exact'),
  /** α of the closed form (FastPhotoStyle's β), in [0, 1). */
  alpha: z.number().min(0).lt(1).default(0.9999),
  /** Relative residual at which the solve stops (every channel); 1e-7 keeps the 8-bit result exact. */
  tol: z.number().positive().max(1).default(1e-7),
  affinity: z.enum(['matting', 'gaussian']).default('matting'),
  /** Where the exact solve runs: auto (tensor ops on a hardware GPU, else the CPU multigrid solver). */
  solver: z.enum(['auto', 'cpu', 'tensor']).default('auto'),
  maxIter: z.number().int().min(1).max(100000).optional(),
  /** Guided filter (fast mode): window radius in pixels and ε on the [0, 1] scale (FastPhotoStyle's r = 35, ε = 1e-3/255²). */
  radius: z.number().int().min(0).max(1000).default(35),
  eps: z.number().min(0).default(1e-3 / (255 * 255)),
});
export type SmoothParams = z.infer<typeof SmoothParams>;

export const PhotoParams = z.object({
  /** Longest side of the result, px. */
  size: z.number().int().min(16).max(16384).default(512),
  /** WCT strength α at every level: α·f_cs + (1 − α)·f_c. */
  alpha: z.number().min(0).max(1).default(1),
  /** Smoothing after stylisation: the closed-form solve, its guided-filter approximation, or none. */
  smooth: z.enum(['exact', 'fast', 'none']).default('exact'),
  /** The smoothing's settings (its mode is `smooth`). */
  smoothing: SmoothParams.omit({ mode: true }).prefault({}),
  outputSize: OutputSize.default('full'),
});
export type PhotoParams = z.infer<typeof PhotoParams>;

/**
 * The model-free look transfer (engine/colour/match.ts): CIELAB, the linear transport map, iterative
 * distribution transfer, the regrain (fast: local affine fit; exact: closed-form smoothing), the
 * re-match. Defaults chosen by measurement (README, `npm run bench -- match`).
 */
export const MatchParams = z.object({
  /** Longest side of the working image, px (the colours are cheap: a larger default than the networks'). */
  size: z.number().int().min(16).max(16384).default(1024),
  /** Strength: the result blended with the photo in L*a*b* (1 all the look, 0 the photo). */
  alpha: z.number().min(0).max(1).default(1),
  /** Transfer chroma only: the photo's L* stays exactly as it is. */
  keepLuminance: z.boolean().default(false),
  /** The regrain: fast (local affine fit, default: it keeps structure best for its cost), exact (closed-form smoothing), none. */
  smooth: z.enum(['exact', 'fast', 'none']).default('fast'),
  /** Seed of the distribution transfer's rotations and samples. */
  seed: z.number().int().default(0),
  outputSize: OutputSize.default('full'),
  /** Iteration limit of the distribution transfer (it stops earlier once the distribution stops changing). */
  maxIterations: z.number().int().min(1).max(1000).default(30),
  smoothing: SmoothParams.omit({ mode: true, radius: true, eps: true }).extend({
    /** Fast regrain's window radius at the working size, px; default: the longest side / 15 (≈ 35 at 512 px). */
    radius: z.number().int().min(1).max(1000).optional(),
    /** Fast regrain's ε for a*b* (on the [0, 1] colour scale). */
    eps: z.number().min(0).default(1e-4),
    /** Fast regrain's ε for L* (L* units², 0–100 scale). */
    epsL: z.number().min(0).default(1),
  }).prefault({}),
});
export type MatchParams = z.infer<typeof MatchParams>;

export const OutputOptions = z.object({
  out: z.string().min(1),
  format: z.enum(['png', 'jpeg', 'tiff']).optional(),
  bitDepth: z.union([z.literal(8), z.literal(16)]).optional(),
  quality: z.number().int().min(1).max(100).optional(),
});
export type OutputOptions = z.infer<typeof OutputOptions>;

export const StylizeGatysJob = z.object({
  kind: z.literal('stylize-gatys'),
  content: z.string().min(1),
  styles: z.array(z.string().min(1)).min(1),
  output: OutputOptions,
  params: GatysParams,
  /** Model directory or name under the models directory; default: the installed vgg19. */
  model: z.string().optional(),
  /** Write a JSON report here. */
  report: z.string().optional(),
  maxPixels: z.number().positive().optional(),
  /** Keep the style's Grams (and the weights) in the worker for the next job with the same style: batches. */
  cacheStyle: z.boolean().optional(),
});
export type StylizeGatysJob = z.infer<typeof StylizeGatysJob>;

/** What the photorealistic jobs share: a photo, one reference photo, optional label maps. */
const PhotorealisticJob = z.object({
  content: z.string().min(1),
  style: z.string().min(1),
  output: OutputOptions,
  contentLabels: z.string().optional(),
  styleLabels: z.string().optional(),
  report: z.string().optional(),
  maxPixels: z.number().positive().optional(),
  /** Keep what the style gives (PhotoWCT: per-level statistics and the weights; match: the decoded reference) for the next job with it: batches. */
  cacheStyle: z.boolean().optional(),
});

export const StylizePhotoJob = PhotorealisticJob.extend({
  kind: z.literal('stylize-photo'),
  params: PhotoParams,
  model: z.string().optional(),
  /** Folder of level1..4 decoders; default: `decoders/` in the model folder. */
  decoders: z.string().optional(),
});
export type StylizePhotoJob = z.infer<typeof StylizePhotoJob>;

export const StylizeMatchJob = PhotorealisticJob.extend({
  kind: z.literal('stylize-match'),
  params: MatchParams,
  /** Measure the look distance and structure kept (always with a report). */
  measure: z.boolean().optional(),
});
export type StylizeMatchJob = z.infer<typeof StylizeMatchJob>;

/** `studio smooth`: smooth an already stylised image with its content photo as the guide. */
export const SmoothJob = z.object({
  kind: z.literal('smooth'),
  content: z.string().min(1),
  stylized: z.string().min(1),
  output: OutputOptions,
  params: SmoothParams,
  /** Longest side to work at (the stylised image is downscaled to it; the content photo is resized to match). */
  size: z.number().int().min(16).max(16384).optional(),
  outputSize: OutputSize.default('full'),
  report: z.string().optional(),
  maxPixels: z.number().positive().optional(),
});
export type SmoothJob = z.infer<typeof SmoothJob>;

/**
 * A working-size photorealistic result carried to another size (the app's export): the result file,
 * the photo it was made from, and the output size.
 */
export const CarryJob = z.object({
  kind: z.literal('carry'),
  content: z.string().min(1),
  result: z.string().min(1),
  output: OutputOptions,
  outputSize: OutputSize.default('full'),
  maxPixels: z.number().positive().optional(),
});
export type CarryJob = z.infer<typeof CarryJob>;

/** VGG19 features of one image written as .npy files, to compare any stage with NumPy or PyTorch. */
export const FeaturesJob = z.object({
  kind: z.literal('features'),
  image: z.string().min(1),
  layers: z.array(z.string()).min(1),
  size: z.number().int().min(16).max(16384).default(512),
  outDir: z.string().min(1),
  model: z.string().optional(),
  padding: z.enum(['zero', 'reflect']).default('zero'),
  pooling: z.enum(['max', 'avg']).default('max'),
  maxPixels: z.number().positive().optional(),
});
export type FeaturesJob = z.infer<typeof FeaturesJob>;

/** Train (or continue training) one level's PhotoWCT decoder on a folder of photos. */
export const TrainDecoderJob = z.object({
  kind: z.literal('train-decoder'),
  level: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]),
  images: z.string().min(1),
  model: z.string().optional(),
  /** Where the decoders go; default: `decoders/` in the encoder's model folder. */
  out: z.string().optional(),
  steps: z.number().int().min(1).default(2000),
  batch: z.number().int().min(1).max(64).default(4),
  crop: z.number().int().min(16).max(2048).default(256),
  lr: z.number().positive().default(1e-4),
  lambda: z.number().min(0).default(1),
  checkpointEvery: z.number().int().min(1).default(200),
  resume: z.boolean().default(false),
  seed: z.number().int().default(0),
  /** JSON report (per-step values, validation) with SVG plots beside it; default `<out>/level<L>-report.json`. */
  report: z.string().optional(),
  /** Mixed precision (Micikevicius et al.): FP32 master weights, fp16/bf16 forward and backward (emulated). */
  precision: z.enum(['fp32', 'mixed-fp16', 'mixed-bf16']).default('fp32'),
  /** 'dynamic' (mixed precision's default) or a static loss scale; fp32 trains unscaled unless given a number. */
  lossScale: z.union([z.literal('dynamic'), z.number().positive()]).default('dynamic'),
  lossScaleInit: z.number().positive().default(65536),
  lossScaleGrowth: z.number().min(1).default(2),
  lossScaleInterval: z.number().int().min(1).default(2000),
  lossScaleBackoff: z.number().positive().max(1).default(0.5),
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  momentum: z.number().min(0).max(1).default(0.9),
  weightDecay: z.number().min(0).default(0),
  warmup: z.number().int().min(0).default(0),
  decay: z.enum(['none', 'step', 'cosine']).default('none'),
  decayEvery: z.number().int().min(1).default(1000),
  decayFactor: z.number().positive().max(1).default(0.1),
  minLr: z.number().min(0).default(0),
  clipNorm: z.number().positive().optional(),
  /** A decoders folder to fine-tune from (default: He initialisation). */
  init: z.string().optional(),
  /** Share of the photos held out for validation (at least one photo when there are two or more). */
  valFraction: z.number().min(0).max(0.9).default(0.1),
  valEvery: z.number().int().min(1).default(100),
  valBatches: z.number().int().min(1).default(2),
  saveDtype: z.enum(['fp32', 'fp16']).default('fp32'),
});
export type TrainDecoderJob = z.infer<typeof TrainDecoderJob>;

export const InfoJob = z.object({ kind: z.literal('info') });
/** tfjs memory of the worker (tensors, bytes): what the leak checks compare before and after jobs. */
export const MemoryJob = z.object({ kind: z.literal('memory') });

export const Job = z.discriminatedUnion('kind', [StylizeGatysJob, StylizePhotoJob, StylizeMatchJob, SmoothJob, CarryJob, FeaturesJob, TrainDecoderJob, InfoJob, MemoryJob]);
export type Job = z.infer<typeof Job>;

export interface LossValues {
  content: number;
  style: number;
  tv: number;
  total: number;
}

export interface ProgressEvent {
  type: 'progress';
  /** "load", "style targets", "optimise 256 px", "write". */
  stage: string;
  /** 0–1 over the whole job. */
  fraction: number;
  iteration?: number;
  iterations?: number;
  losses?: LossValues;
  elapsedMs: number;
  etaMs?: number;
}

export interface PreviewEvent {
  type: 'preview';
  iteration: number;
  width: number;
  height: number;
  /** 8-bit RGB, row-major. */
  rgb: Uint8Array;
}

export interface LogEvent {
  type: 'log';
  message: string;
}

export type JobEvent = ProgressEvent | PreviewEvent | LogEvent;

/** Messages between a front end and the engine worker. */
export type ToWorker =
  | { type: 'run'; id: number; job: Job; cancel: SharedArrayBuffer }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'event'; id: number; event: JobEvent }
  | { type: 'done'; id: number; result: unknown }
  | { type: 'failed'; id: number; error: { code: string; message: string; hint?: string } };
