/**
 * Errors a user can act on. Each carries a stable code (the CLI, the worker protocol and the app all
 * switch on it), a message that names the file or value at fault, and optionally what to do next.
 * Exit codes: 2 for bad input of any kind, 1 for an internal failure, 130 for a cancelled job.
 */
export type ErrorCode =
  | 'FILE_NOT_FOUND'
  | 'NOT_AN_IMAGE'
  | 'CORRUPT_IMAGE'
  | 'EMPTY_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'IMAGE_TOO_SMALL'
  | 'UNSUPPORTED_FORMAT'
  | 'UNWRITABLE_OUTPUT'
  | 'OUTPUT_IS_INPUT'
  | 'BAD_ARGUMENT'
  | 'BAD_FILE'
  | 'MODEL_MISSING'
  | 'BAD_MODEL'
  | 'CHECKSUM_MISMATCH'
  | 'DOWNLOAD_FAILED'
  | 'BACKEND_UNAVAILABLE'
  | 'CANCELLED'
  | 'INTERNAL';

export class StudioError extends Error {
  override readonly name = 'StudioError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get exitCode(): number {
    return exitCodeFor(this.code);
  }
}

export function exitCodeFor(code: ErrorCode): number {
  if (code === 'INTERNAL') return 1;
  if (code === 'CANCELLED') return 130;
  return 2;
}

/** A job was cancelled by its owner; thrown between optimisation steps. */
export class CancelledError extends StudioError {
  constructor() {
    super('CANCELLED', 'cancelled');
  }
}

export function isStudioError(e: unknown): e is StudioError {
  return e instanceof StudioError;
}

/** Plain-object form that crosses a worker or IPC boundary and is rebuilt on the other side. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof StudioError) return { code: e.code, message: e.message, hint: e.hint };
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'INTERNAL', message };
}

export function deserializeError(s: SerializedError): StudioError {
  return s.code === 'CANCELLED' ? new CancelledError() : new StudioError(s.code, s.message, s.hint);
}
