/** Test servers on loopback: listen on a free port, close with their connections, and a port nobody listens on. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1, a free port; resolves to the base URL (http://127.0.0.1:PORT). */
export async function listenLoopback(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes the server and every connection it still holds (a held-open download included). */
export async function closeLoopback(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

/** A loopback port that was free a moment ago and has nothing listening on it: connections are refused. */
export async function closedLoopbackPort(): Promise<number> {
  const probe = http.createServer();
  const base = await listenLoopback(probe);
  await closeLoopback(probe);
  return Number(new URL(base).port);
}
