/**
 * The Batch panel's part of the window contract (api-contract.ts merges it into ApiRequests, the
 * replies and the events): requests with their zod schemas, the reply and the streamed events.
 * Browser-safe like the rest of the contract: zod and the job schemas only.
 */
import { z } from 'zod';
import { GatysParams, MatchParams, PhotoParams } from './protocol.ts';
// Types only (erased when built): the contract stays browser-safe.
import type { BatchProgress, BatchSummary, FileEvent } from './batch/run.ts';
import type { WorkerShare } from './queue/follow.ts';

const Id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
/** A folder on the back end's machine: absolute, no NUL, not absurdly long. */
const FolderPath = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'contains a NUL character');

/** Electron only: a native folder dialog; the main process remembers the answer as a folder the user chose. */
export const BatchChooseFolderRequest = z.object({ purpose: z.enum(['input', 'output']) });

export const BatchStartRequest = z.object({
  /** Chosen by the renderer (as for stylize), so that it can pause or cancel before the reply. */
  runId: Id,
  inDir: FolderPath,
  outDir: FolderPath,
  /** An image opened or uploaded with role 'style'. */
  style: Id,
  method: z.enum(['gatys', 'photo', 'match']),
  gatys: GatysParams.optional(),
  photo: PhotoParams.optional(),
  match: MatchParams.optional(),
  model: z.string().max(200).optional(),
  recursive: z.boolean().default(false),
  /** Glob on file names ('*.jpg', '{a,b}*.png'); empty: every image. */
  pattern: z.string().max(200).optional(),
  format: z.enum(['png', 'jpeg', 'tiff']).optional(),
  quality: z.number().int().min(1).max(100).optional(),
  jobs: z.number().int().min(1).max(16).default(1),
  overwrite: z.enum(['skip', 'replace']).default('skip'),
});
export type BatchStartRequest = z.input<typeof BatchStartRequest>;

export const BatchControlRequest = z.object({ runId: Id });

/** A shoot queue (`studio batch --queue`): where it is, and which shoot. */
const QueueUrl = z.string().min(1).max(2048).regex(/^rediss?:\/\/[^\s]+$/, 'a redis:// or rediss:// URL, like redis://studio-server:6379/0');
const ShootId = z.string().regex(/^[0-9a-f]{4,12}$/);
export const BatchQueueListRequest = z.object({ url: QueueUrl });
/** Follow a queued shoot: batchQueue events until it is finished or cancelled, or batchQueueUnfollow. */
export const BatchQueueFollowRequest = z.object({ runId: Id, url: QueueUrl, shoot: ShootId });
export const BatchQueueCancelRequest = z.object({ url: QueueUrl, shoot: ShootId });

export const BatchRequests = {
  batchChooseFolder: BatchChooseFolderRequest,
  batchStart: BatchStartRequest,
  batchPause: BatchControlRequest,
  batchResume: BatchControlRequest,
  batchCancel: BatchControlRequest,
  batchQueueList: BatchQueueListRequest,
  batchQueueFollow: BatchQueueFollowRequest,
  batchQueueUnfollow: BatchControlRequest,
  batchQueueCancel: BatchQueueCancelRequest,
} as const;

/** A queued shoot as the window shows it (queue/follow.ts's status, its failures capped). */
export interface QueuedShoot {
  id: string;
  inDir: string;
  outDir: string;
  method: string;
  /** The machine that enqueued it. */
  host: string;
  state: 'active' | 'cancelled';
  finished: boolean;
  total: number;
  /** Photos made (and found made: `skipped`). */
  done: number;
  skipped: number;
  failed: { input: string; reason: string }[];
  failedCount: number;
  running: number;
  remaining: number;
  etaMs?: number;
  /** Workers connected to the shoot now, and what each did and does. */
  connected: number;
  workers: WorkerShare[];
}

/** The batch's summary as the window gets it: the failures capped, their count beside them. */
export interface BatchSummaryReply extends Omit<BatchSummary, 'fileMs' | 'overheadMs'> {
  /** The first failures (at most 1000; `failedCount` has them all). */
  failed: BatchSummary['failed'];
  failedCount: number;
}

export interface BatchReplies {
  /** Null when the dialog was dismissed. */
  batchChooseFolder: { path: string } | null;
  batchStart: BatchSummaryReply;
  batchPause: { ok: boolean };
  batchResume: { ok: boolean };
  batchCancel: { ok: boolean };
  batchQueueList: QueuedShoot[];
  /** The shoot when following stopped (finished, cancelled, or unfollowed). */
  batchQueueFollow: QueuedShoot;
  batchQueueUnfollow: { ok: boolean };
  batchQueueCancel: { ok: boolean };
}

/** Streamed while a batch runs; every event names its run. */
export type BatchEvent =
  | ({
    type: 'batchFile'; runId: string;
    /** A small JPEG of the result (done and skipped files; not every skipped one on a large resume). */
    thumbnail?: Uint8Array;
  } & FileEvent)
  | ({ type: 'batchProgress'; runId: string; elapsedMs: number } & BatchProgress)
  | { type: 'batchDone'; runId: string; summary: BatchSummaryReply }
  | { type: 'batchQueue'; runId: string; shoot: QueuedShoot };
