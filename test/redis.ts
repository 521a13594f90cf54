/**
 * A Redis of the test's own: Debian's redis-server on a free loopback port with a temporary folder,
 * its append-only file on (fsync every write), so a restart keeps what was acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { closedLoopbackPort } from './loopback.ts';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** SIGTERM and back on the same port and folder (its append-only file replayed). */
  restart(opts?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

async function waitReady(port: number, password?: string): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
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

export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'studio-redis-'));
  const port = await closedLoopbackPort();
  let proc: ChildProcess | undefined;
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'yes'];
    if (opts.password) args.push('--requirepass', opts.password);
    proc = spawn('redis-server', args, { stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => proc!.once('error', (e) => reject(new Error(`cannot start redis-server (${e.message}); install it: apt install redis-server`))));
    await Promise.race([waitReady(port, opts.password), failed]);
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
    url: `redis://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${port}/0`, port, dir,
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
