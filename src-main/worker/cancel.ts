/**
 * A cancellation flag shared between a front end and the worker thread. It lives in a
 * SharedArrayBuffer because the worker is busy computing and would not see a message until it
 * yields; the engine polls the flag before every optimisation step.
 */
import { CancelledError } from '../errors.ts';

export class CancelFlag {
  readonly buffer: SharedArrayBuffer;
  private readonly view: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(4);
    this.view = new Int32Array(this.buffer);
  }

  cancel(): void {
    Atomics.store(this.view, 0, 1);
  }

  get cancelled(): boolean {
    return Atomics.load(this.view, 0) === 1;
  }

  /** Throws CancelledError if cancelled. */
  check(): void {
    if (this.cancelled) throw new CancelledError();
  }
}
