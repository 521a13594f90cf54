/**
 * Where the queue lives: a `redis://` or `rediss://` (TLS) URL, read into the connection options
 * BullMQ hands to ioredis, and a first contact that fails with a clear message instead of BullMQ's
 * endless reconnecting when nothing answers.
 *
 *   redis://[[user]:password@]host[:port][/db]      rediss://… the same over TLS
 */
import { Queue, type RedisOptions } from 'bullmq';
import { isIP } from 'node:net';
import { Redis } from 'ioredis';
import { StudioError } from '../errors.ts';

export interface QueueTarget {
  /** ioredis options for BullMQ's connections: commands wait for a reconnect (Redis restarted) instead of failing. */
  connection: RedisOptions;
  /** The URL with its password masked, for messages. */
  display: string;
}

/** BullMQ's key prefix for the studio's queues and the shoot registry beside them. */
export const PREFIX = 'studio';

export function parseQueueUrl(url: string): QueueTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StudioError('BAD_ARGUMENT', `--queue ${url}: not a URL`, 'give redis://host:6379/0 (or rediss:// for TLS, redis://:password@host for a password)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new StudioError('BAD_ARGUMENT', `--queue ${url}: only redis:// and rediss:// (TLS) are understood`, 'give redis://host:6379/0');
  }
  if (!u.hostname) throw new StudioError('BAD_ARGUMENT', `--queue ${url}: no host`, 'give redis://host:6379/0');
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0 || db > 15 || !/^\d*$/.test(dbText)) {
    throw new StudioError('BAD_ARGUMENT', `--queue ${url}: the database "${dbText}" is not a number from 0 to 15`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literals come bracketed
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const tls = u.protocol === 'rediss:';
  const connection: RedisOptions = {
    host, port, db, username, password,
    // SNI takes host names only (an IP address there is deprecated in Node).
    ...(tls ? { tls: isIP(host) ? {} : { servername: host } } : {}),
    // BullMQ's workers need null here; with it, a command issued while Redis restarts waits for it.
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
  const masked = new URL(url);
  if (masked.password) masked.password = '***';
  return { connection, display: masked.toString() };
}

/**
 * Connects once with a short timeout and no retries: a wrong host, port, password or TLS setting
 * is an error that says which, not a hang.
 */
export async function checkReachable(t: QueueTarget, timeoutMs = 5000): Promise<void> {
  const probe = new Redis({ ...t.connection, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  // ioredis rejects connect() with "Connection is closed"; the cause comes as an 'error' event.
  let cause: Error | undefined;
  probe.on('error', (e: Error) => (cause ??= e));
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    const msg = (cause ?? (e as Error)).message;
    const auth = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(msg);
    throw new StudioError('BAD_ARGUMENT', `cannot use the queue at ${t.display}: ${msg}`,
      auth ? 'give the password in the URL: redis://:PASSWORD@host:6379/0'
        : 'start Redis there (Debian: apt install redis-server) or check the host, port and redis:// vs rediss://');
  } finally {
    probe.disconnect();
  }
}

/**
 * A shoot's BullMQ queue. Connection errors while Redis restarts are expected (ioredis reconnects
 * and commands wait): they go to `onError` if given, else nowhere, never to the console raw.
 */
export function openQueue<T = unknown>(t: QueueTarget, name: string, onError?: (e: Error) => void): Queue<T> {
  const q = new Queue<T>(name, { connection: t.connection, prefix: PREFIX });
  q.on('error', (e: Error) => onError?.(e));
  return q;
}

/** A log line for repeated errors (Redis down: one a reconnect attempt): a message once, then again after a quiet `everyMs`. */
export function throttledLog(log: (line: string) => void, everyMs = 10_000): (e: Error) => void {
  let last = '', at = 0;
  return (e) => {
    const now = Date.now();
    if (e.message === last && now - at < everyMs) return;
    last = e.message;
    at = now;
    log(`queue: ${e.message}${/ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/.test(e.message) ? ' (reconnecting)' : ''}`);
  };
}
