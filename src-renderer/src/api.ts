/**
 * The renderer's one way to the back end: Electron's preload bridge (`window.studio`) when the
 * window runs in the desktop app, otherwise the `npm run serve` WebSocket at this page's own
 * address (token included). Both speak api-contract.ts; replies carry errors, which become ApiError.
 */
import type { ApiMethod, ApiReplies, ApiRequest, Reply, ServerEvent, StudioBridge } from '../../src-main/api-contract.ts';
import type { SerializedError } from '../../src-main/errors.ts';
import { decodeFrame, encodeFrame, type ServerMessage } from '../../src-main/wire.ts';

declare global {
  interface Window {
    studio?: StudioBridge;
  }
}

export class ApiError extends Error {
  readonly code: SerializedError['code'];
  readonly hint?: string;
  constructor(e: SerializedError) {
    super(e.message);
    this.code = e.code;
    this.hint = e.hint;
  }
}

class SocketBridge implements StudioBridge {
  private ws: WebSocket;
  private readonly open: Promise<void>;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply<unknown>) => void>();
  private readonly listeners = new Set<(e: ServerEvent) => void>();
  private lost: SerializedError | undefined;

  constructor() {
    const url = new URL('ws', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.open = new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve());
      this.ws.addEventListener('error', () => reject(new ApiError(this.lostError())));
    });
    this.open.catch(() => undefined);
    this.ws.addEventListener('message', (m) => {
      const msg = decodeFrame(new Uint8Array(m.data as ArrayBuffer)) as ServerMessage;
      if (msg.t === 'reply') {
        this.waiting.get(msg.id)?.(msg.reply as Reply<unknown>);
        this.waiting.delete(msg.id);
      } else {
        for (const l of this.listeners) l(msg.event as ServerEvent);
      }
    });
    this.ws.addEventListener('close', () => {
      this.lost = this.lostError();
      for (const w of this.waiting.values()) w({ ok: false, error: this.lost });
      this.waiting.clear();
    });
  }

  private lostError(): SerializedError {
    return { code: 'INTERNAL', message: 'lost the connection to the studio server', hint: 'check that `npm run serve` is still running, then reload this page' };
  }

  async call<M extends ApiMethod>(method: M, payload: ApiRequest<M>): Promise<Reply<ApiReplies[M]>> {
    if (this.lost) return { ok: false, error: this.lost };
    await this.open;
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve as (r: Reply<unknown>) => void);
      this.ws.send(encodeFrame({ t: 'call', id, method, payload }));
    });
  }

  onEvent(listener: (e: ServerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const bridge: StudioBridge = window.studio ?? new SocketBridge();

export const api = {
  async call<M extends ApiMethod>(method: M, payload: ApiRequest<M>): Promise<ApiReplies[M]> {
    const r = await bridge.call(method, payload);
    if (!r.ok) throw new ApiError(r.error);
    return r.value;
  },
  onEvent: (l: (e: ServerEvent) => void) => bridge.onEvent(l),
  /** Desktop: native dialogs; browser: file inputs and downloads. */
  native: window.studio !== undefined,
};

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError({ code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) });
}
