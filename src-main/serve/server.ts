/**
 * `npm run serve`: the studio's back end and renderer over HTTP and a WebSocket, on 127.0.0.1 only.
 * Every URL starts with a random token (http://127.0.0.1:PORT/TOKEN/), so another local user or a web
 * page cannot drive it: requests without the token get 404, a WebSocket from another origin is refused,
 * and a Host header other than the loopback address is refused (DNS rebinding).
 *
 * Under load or abuse one client never harms the others: connections are capped (503 beyond), a
 * frame over the upload limit closes only its own socket (1009), a malformed frame likewise (1003),
 * a client's calls in flight are capped, and a client that stops reading gets no more of the
 * transient events (progress, previews) once its backlog passes a few megabytes; past a hard limit
 * its socket is dropped, so its backlog never grows the server's memory without bound.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { MAX_UPLOAD_BYTES, type ServerEvent } from '../api-contract.ts';
import { decodeFrame, encodeFrame, type ClientMessage, type ServerMessage } from '../wire.ts';
import { StudioHandlers } from './handlers.ts';
import type { EngineClient } from '../worker/client.ts';

export interface ServeOptions {
  engine: EngineClient;
  /** The built renderer (index.html and assets/). */
  rendererDir: string;
  /** Engine workers for the Batch panel (with the server's backend); default: the CLI's. */
  makeEngine?(wasmThreads: number): EngineClient;
  port?: number;
  token?: string;
  /** The engine's log lines (notes on inputs, leak warnings), for the console. */
  onLog?: (message: string) => void;
  /** Largest upload (frame) accepted; default MAX_UPLOAD_BYTES. */
  maxUploadBytes?: number;
  /** Open WebSocket connections at most (a window uses one); default 32. */
  maxConnections?: number;
}

/** Calls one connection may have in flight; more are refused with a clear error. */
const MAX_IN_FLIGHT = 64;
/** A slow reader's backlog past which transient events are not queued for it, and past which it is dropped. */
export const EVENT_BACKLOG_BYTES = 8 * 2 ** 20;
export const MAX_BACKLOG_BYTES = 256 * 2 ** 20;
/** Events that a later one of the same kind supersedes: a client that lags may miss some. */
const TRANSIENT = new Set(['progress', 'preview', 'batchProgress', 'batchQueue']);

export interface StudioServer {
  url: string;
  port: number;
  token: string;
  handlers: StudioHandlers;
  /** Sends an event to every connected window (as the handlers do). */
  emit(event: ServerEvent): void;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.json': 'application/json',
};

const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export async function startServer(opts: ServeOptions): Promise<StudioServer> {
  const token = opts.token ?? randomBytes(18).toString('base64url');
  const prefix = `/${token}/`;
  const sockets = new Set<WebSocket>();
  const send = (ws: WebSocket, m: ServerMessage) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BACKLOG_BYTES) {
      ws.terminate(); // it stopped reading long ago: its backlog must not hold the server's memory
      return;
    }
    if (m.t === 'event' && TRANSIENT.has((m.event as ServerEvent).type) && ws.bufferedAmount > EVENT_BACKLOG_BYTES) return;
    ws.send(encodeFrame(m));
  };
  const emit = (event: ServerEvent) => {
    if (event.type === 'log') opts.onLog?.(event.message);
    for (const ws of sockets) send(ws, { t: 'event', event });
  };
  const handlers = new StudioHandlers(opts.engine, { kind: 'browser', makeEngine: opts.makeEngine, emit });
  const maxConnections = opts.maxConnections ?? 32;
  let port = 0;
  const hostOk = (req: IncomingMessage) => req.headers.host === `127.0.0.1:${port}` || req.headers.host === `localhost:${port}`;
  const rendererDir = path.resolve(opts.rendererDir);

  async function serveFile(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!hostOk(req) || !url.pathname.startsWith(prefix)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const rel = decodeURIComponent(url.pathname.slice(prefix.length)) || 'index.html';
    const file = path.resolve(rendererDir, rel);
    if (!file.startsWith(rendererDir + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        // The token is in the URL: never send it on as a referrer.
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  }

  const server = createServer((req, res) => void serveFile(req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: (opts.maxUploadBytes ?? MAX_UPLOAD_BYTES) + 2 ** 20 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const originOk = req.headers.origin === `http://127.0.0.1:${port}` || req.headers.origin === `http://localhost:${port}`;
    if (!hostOk(req) || !originOk || url.pathname !== `${prefix}ws`) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    if (sockets.size >= maxConnections) {
      socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\ntoo many connections (${maxConnections}); close other studio tabs\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      let inFlight = 0;
      // Shoots this window follows: a closed or reloaded tab stops following them (never the shoot).
      const follows = new Set<string>();
      ws.on('close', () => {
        sockets.delete(ws);
        for (const runId of follows) void handlers.handle('batchQueueUnfollow', { runId });
      });
      ws.on('error', () => ws.terminate()); // a frame over the limit, a reset: this socket only
      ws.on('message', (data, isBinary) => {
        let msg: ClientMessage;
        try {
          if (!isBinary) throw new Error('text frame');
          const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
          msg = decodeFrame(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as ClientMessage;
          if (msg?.t !== 'call' || typeof msg.id !== 'number' || typeof msg.method !== 'string') throw new Error('not a call');
        } catch {
          ws.close(1003, 'bad message');
          return;
        }
        if (inFlight >= MAX_IN_FLIGHT) {
          send(ws, { t: 'reply', id: msg.id, reply: { ok: false, error: { code: 'BAD_ARGUMENT', message: `too many requests at once on this connection (${MAX_IN_FLIGHT}); wait for the replies` } } });
          return;
        }
        inFlight++;
        const followId = msg.method === 'batchQueueFollow' ? (msg.payload as { runId?: unknown } | null)?.runId : undefined;
        if (typeof followId === 'string') follows.add(followId);
        void handlers.handle(msg.method, msg.payload).then((reply) => {
          inFlight--;
          if (typeof followId === 'string') follows.delete(followId);
          send(ws, { t: 'reply', id: msg.id, reply });
        });
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}${prefix}`;
  return {
    url, port, token, handlers, emit,
    close: async () => {
      await handlers.close();
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
