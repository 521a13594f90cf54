/**
 * `npm run serve`'s server under load and abuse, on loopback, with no engine: hundreds of
 * connections, uploads over the limit, malformed frames, a client that stops reading mid-preview,
 * and a burst of calls from many clients. Each bad client is refused or dropped alone; the others
 * keep their answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { EVENT_BACKLOG_BYTES, startServer, type StudioServer } from '../../src-main/serve/server.ts';
import { decodeFrame, encodeFrame } from '../../src-main/wire.ts';
import type { EngineClient } from '../../src-main/worker/client.ts';

const noEngine = { run: () => { throw new Error('the engine must not be reached'); }, close: async () => undefined } as unknown as EngineClient;
let dir = '';
let server: StudioServer;
const MAX_CONNECTIONS = 24;
const MAX_UPLOAD = 2 ** 20;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'studio-serve-'));
  await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>Style Studio</title>');
  process.env.STUDIO_MODELS_DIR = path.join(dir, 'models');
  server = await startServer({ engine: noEngine, rendererDir: dir, maxConnections: MAX_CONNECTIONS, maxUploadBytes: MAX_UPLOAD });
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

interface Client { ws: WebSocket; call(method: string, payload?: unknown): Promise<{ ok: boolean; error?: { message: string } }>; events: { type: string }[]; closed: Promise<number> }

function connect(): Promise<Client> {
  const ws = new WebSocket(`${server.url}ws`, { origin: `http://127.0.0.1:${server.port}` });
  let next = 1;
  const pending = new Map<number, (r: { ok: boolean }) => void>();
  const events: { type: string }[] = [];
  ws.on('message', (data: Buffer) => {
    const m = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as { t: string; id?: number; reply?: { ok: boolean }; event?: { type: string } };
    if (m.t === 'reply') pending.get(m.id!)?.(m.reply!);
    else events.push(m.event!);
  });
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({
      ws, events, closed,
      call: (method, payload) => new Promise((res) => {
        const id = next++;
        pending.set(id, res);
        ws.send(encodeFrame({ t: 'call', id, method, payload }));
      }),
    }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

test('hundreds of connections: the first few are served, the rest refused with 503; the served ones keep working', async () => {
  const attempts = await Promise.allSettled(Array.from({ length: 300 }, () => connect()));
  const open = attempts.filter((a): a is PromiseFulfilledResult<Client> => a.status === 'fulfilled').map((a) => a.value);
  const refused = attempts.filter((a) => a.status === 'rejected').map((a) => (a as PromiseRejectedResult).reason as { status?: number });
  assert.equal(open.length, MAX_CONNECTIONS);
  assert.equal(refused.length, 300 - MAX_CONNECTIONS);
  assert.ok(refused.every((r) => r.status === 503), 'refused with 503, not dropped');
  const replies = await Promise.all(open.map((c) => c.call('listModels')));
  assert.ok(replies.every((r) => r.ok), 'every open connection answered');
  for (const c of open) c.ws.close();
  await Promise.all(open.map((c) => c.closed));
  const later = await connect();
  assert.ok((await later.call('listModels')).ok, 'room again once they closed');
  later.ws.close();
});

test('an upload over the limit and malformed frames close only their own connection', async () => {
  const good = await connect();
  const big = await connect();
  big.ws.send(encodeFrame({ t: 'call', id: 1, method: 'uploadImage', payload: { role: 'content', name: 'huge.tif', bytes: new Uint8Array(MAX_UPLOAD + 2 ** 20 + 10) } }));
  assert.equal(await big.closed, 1009, 'message too big');
  for (const bad of ['a text frame', Buffer.from([1, 2]), encodeFrame({ t: 'nonsense' }), Buffer.from([255, 255, 255, 255, 0])]) {
    const c = await connect();
    c.ws.send(bad);
    assert.equal(await c.closed, 1003, `unsupported data: ${String(bad).slice(0, 20)}`);
  }
  assert.ok((await good.call('listModels')).ok, 'the well-behaved client is still served');
  // A malformed request inside a well-formed frame is an error reply, not a dropped connection.
  const r = await good.call('uploadImage', { role: 'content', name: 'x.jpg', bytes: 'not bytes' });
  assert.equal(r.ok, false);
  good.ws.close();
});

test('a client that stops reading mid-preview: its backlog stays bounded, the others get every event', async () => {
  const reader = await connect();
  const stalled = await connect();
  // The stalled client's socket stops reading: the server's sends back up for it.
  (stalled.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  const image = new Uint8Array(256 * 1024);
  const N = 200; // 50 MB of previews
  for (let k = 0; k < N; k++) {
    server.emit({ type: 'preview', runId: 'r', phase: 'preview', iteration: k, width: 256, height: 256, image });
    await new Promise((r) => setImmediate(r));
  }
  server.emit({ type: 'log', runId: 'r', message: 'done' }); // not transient: always queued
  await new Promise((r) => setTimeout(r, 300));
  // The reading client got every preview and the log line.
  const t0 = Date.now();
  while (reader.events.length < N + 1 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
  assert.equal(reader.events.filter((e) => e.type === 'preview').length, N);
  // The stalled one resumes: it gets what was queued before its backlog passed the limit, then the log line, not all 50 MB.
  (stalled.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  const t1 = Date.now();
  while (!stalled.events.some((e) => e.type === 'log') && Date.now() - t1 < 20_000) await new Promise((r) => setTimeout(r, 50));
  const got = stalled.events.filter((e) => e.type === 'preview').length;
  assert.ok(stalled.events.some((e) => e.type === 'log'), 'the non-transient event arrived');
  assert.ok(got < N, `previews past the backlog were dropped for the slow client (${got} of ${N})`);
  assert.ok(got * image.byteLength <= EVENT_BACKLOG_BYTES + 4 * 2 ** 20 + image.byteLength * 4, `at most about ${EVENT_BACKLOG_BYTES / 2 ** 20} MB queued for it (${got} previews)`);
  assert.ok((await stalled.call('listModels')).ok, 'and it is served again');
  reader.ws.close();
  stalled.ws.close();
});

test('a burst of calls from many clients (bounded load test): every call answered, the server stays responsive', async () => {
  const clients = await Promise.all(Array.from({ length: 16 }, () => connect()));
  const lat: number[] = [];
  const t0 = Date.now();
  await Promise.all(clients.map(async (c) => {
    for (let k = 0; k < 40; k++) {
      const t = performance.now();
      const r = await Promise.all([c.call('listModels'), c.call('listModels'), c.call('nope')]);
      lat.push(performance.now() - t);
      assert.ok(r[0].ok && r[1].ok && !r[2].ok);
    }
  }));
  lat.sort((a, b) => a - b);
  process.stderr.write(`# load: ${clients.length} clients × 40 rounds of 3 calls in ${Date.now() - t0} ms; round p50 ${lat[lat.length >> 1].toFixed(1)} ms, p99 ${lat[Math.floor(lat.length * 0.99)].toFixed(1)} ms\n`);
  // More calls in flight on one connection than it may have: the extra ones are refused, by reply.
  const c = clients[0];
  const many = await Promise.all(Array.from({ length: 200 }, () => c.call('listModels')));
  const refused = many.filter((r) => !r.ok);
  assert.ok(refused.length > 0 && refused.length <= 200 - 64, `${refused.length} of 200 refused`);
  assert.ok(refused.every((r) => /too many requests at once/.test(r.error?.message ?? '')));
  for (const x of clients) x.ws.close();
});
