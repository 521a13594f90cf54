/**
 * A Redis of the test's own: Debian's redis-server on a free loopback port with a temporary folder,
 * its append-only file on (fsync every write), so a restart keeps what was acknowledged.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { closedLoopbackPort } from './loopback.ts';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** With `tls`: the test CA's certificate (clients trust it through NODE_EXTRA_CA_CERTS). */
  caFile?: string;
  /** SIGTERM and back on the same port and folder (its append-only file replayed). */
  restart(opts?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/** A CA and a server certificate for localhost / 127.0.0.1, made with openssl in `dir`. */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=studio test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  await writeFile(f('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('san.ext'));
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

async function waitReady(port: number, password?: string, ca?: Buffer): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', password, ...(ca ? { tls: { ca, servername: 'localhost' } } : {}), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      // Loading the append-only file answers LOADING until done.
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      if (Date.now() - t0 > 10_000) throw new Error(`redis-server on port ${port} did not come up in 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
}

/**
 * Why the queue's tests cannot run here, or undefined when they can: redis-server missing on a
 * machine that is not CI (CI installs it, and there a missing server is a failure, not a skip).
 */
export function redisMissing(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return r.error ? 'redis-server is not installed (Debian: apt install redis-server); the queue was not tested' : undefined;
}

export async function startRedis(opts: { password?: string; tls?: boolean } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'studio-redis-'));
  const port = await closedLoopbackPort();
  const certs = opts.tls ? await makeCertificates(dir) : undefined;
  const ca = certs ? await readFile(certs.ca) : undefined;
  let proc: ChildProcess | undefined;
  const start = async () => {
    const listen = certs
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.cert, '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.ca, '--tls-auth-clients', 'no']
      : ['--port', String(port)];
    const args = [...listen, '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'yes'];
    if (opts.password) args.push('--requirepass', opts.password);
    proc = spawn('redis-server', args, { stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => proc!.once('error', (e) => reject(new Error(`cannot start redis-server (${e.message}); install it: apt install redis-server`))));
    await Promise.race([waitReady(port, opts.password, ca), failed]);
  };
  const stopProc = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    url: `${certs ? 'rediss' : 'redis'}://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}${certs ? 'localhost' : '127.0.0.1'}:${port}/0`, port, dir, caFile: certs?.ca,
    async restart(o = {}) {
      await stopProc();
      await new Promise((r) => setTimeout(r, o.downMs ?? 500));
      await start();
    },
    async stop() {
      await stopProc();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
