/**
 * Downloads with resume and checksum, and `studio models fetch vgg19`.
 *
 * A download streams into `dest.part`. When the connection drops, it is retried with an HTTP Range
 * request from the .part's size (a 206 reply appends; a 200 reply, from a server that ignores Range,
 * restarts the file). At the end the md5 is checked and the file renamed into place; a wrong checksum
 * deletes the .part. A .part left by an interrupted run is resumed by the next run.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { basename, join } from 'node:path';
import { CancelledError, StudioError } from '../../errors.ts';
import { importKerasH5 } from './import-keras.ts';
import { modelsDir, saveVgg19 } from './store.ts';

export const VGG19_URL =
  'https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5';
export const VGG19_MD5 = '253f8cb515780f3b799900260a226db6';

export interface DownloadOptions {
  /** Expected md5 (hex) of the whole file; checked after the download. */
  md5?: string;
  /** Bytes on disk so far (including a resumed .part) and the full size when the server says it. */
  onProgress?: (received: number, total: number | undefined) => void;
  signal?: AbortSignal;
  /** Attempts after a dropped connection, a timeout or a 5xx reply (default 5). */
  retries?: number;
  /** Delay before the first retry, doubled each time (default 500 ms). */
  retryDelayMs?: number;
  /** Give up on a connection that sends nothing for this long (default 30 s). */
  timeoutMs?: number;
}

/** A failure worth retrying (the transfer can resume), as opposed to one that will not go away. */
class Retryable extends Error {}
/** The server ignored Range or the .part does not fit the file: start from zero. */
class Restart extends Error {}

const CONNECT_ERRORS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EAI_FAIL', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

export async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const onAbort = () => {
      clearTimeout(t);
      reject(new CancelledError());
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveSleep();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function request(url: URL, headers: Record<string, string>, opts: DownloadOptions): Promise<http.IncomingMessage> {
  return new Promise((resolveReq, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) {
      reject(new StudioError('DOWNLOAD_FAILED', `cannot download ${url.href}: only http and https URLs are supported`));
      return;
    }
    const req = mod.get(url, { headers: { 'user-agent': 'style-studio', ...headers }, signal: opts.signal }, resolveReq);
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Retryable(`no data from ${url.host} for ${(opts.timeoutMs ?? 30_000) / 1000} s`)));
    req.on('error', reject);
  });
}

/** One request: appends to (or restarts) `part`. Resolves when the body is complete. */
async function attempt(url: URL, part: string, opts: DownloadOptions, redirects = 0): Promise<void> {
  const have = await sizeOf(part);
  const res = await request(url, have > 0 ? { range: `bytes=${have}-` } : {}, opts);
  const status = res.statusCode ?? 0;
  if (status >= 300 && status < 400 && res.headers.location) {
    res.resume();
    if (redirects >= 10) throw new StudioError('DOWNLOAD_FAILED', `cannot download ${url.href}: too many redirects`);
    return attempt(new URL(res.headers.location, url), part, opts, redirects + 1);
  }
  let start: number;
  let total: number | undefined;
  if (status === 200) {
    start = 0; // a full body (first request, or a server that ignores Range)
    const len = Number(res.headers['content-length']);
    total = Number.isFinite(len) && res.headers['content-length'] !== undefined ? len : undefined;
  } else if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== have) {
      res.resume();
      throw new Restart(`the server resumed at an unexpected place (${res.headers['content-range'] ?? 'no Content-Range'})`);
    }
    start = have;
    total = m[3] === '*' ? undefined : Number(m[3]);
  } else if (status === 416 && have > 0) {
    res.resume();
    const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    if (m && Number(m[1]) === have) return; // the .part is already the whole file
    throw new Restart('the partial download does not fit the file on the server');
  } else {
    res.resume();
    const msg = `cannot download ${url.href}: the server replied ${status} ${res.statusMessage ?? ''}`.trim();
    if (status >= 500 || status === 408 || status === 429) throw new Retryable(msg);
    throw new StudioError('DOWNLOAD_FAILED', msg);
  }
  const fh = await open(part, start === 0 ? 'w' : 'a');
  let received = start;
  try {
    opts.onProgress?.(received, total);
    for await (const chunk of res) {
      await fh.write(chunk as Buffer);
      received += (chunk as Buffer).length;
      opts.onProgress?.(received, total);
    }
  } catch (e) {
    if (opts.signal?.aborted) throw new CancelledError();
    throw new Retryable(`the connection dropped after ${received} bytes (${(e as Error).message})`);
  } finally {
    await fh.close();
  }
  if (!res.complete || (total !== undefined && received < total)) {
    throw new Retryable(`the connection dropped after ${received} of ${total ?? '?'} bytes`);
  }
  if (total !== undefined && received > total) throw new Restart(`received ${received} bytes, more than the ${total} announced`);
}

/**
 * Download `url` to `dest` (see the module comment). Errors: DOWNLOAD_FAILED (network, HTTP status),
 * CHECKSUM_MISMATCH (the .part is deleted), CANCELLED (the .part is kept for a later resume).
 */
export async function download(url: string, dest: string, opts: DownloadOptions = {}): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StudioError('DOWNLOAD_FAILED', `not a valid URL: ${url}`);
  }
  const part = `${dest}.part`;
  const retries = opts.retries ?? 5;
  let delay = opts.retryDelayMs ?? 500;
  let restarts = 0;
  for (let tries = 0; ; ) {
    if (opts.signal?.aborted) throw new CancelledError();
    try {
      await attempt(parsed, part, opts);
      break;
    } catch (e) {
      if (opts.signal?.aborted || (e as Error).name === 'AbortError') throw new CancelledError();
      if (e instanceof StudioError) throw e;
      if (e instanceof Restart) {
        await rm(part, { force: true });
        if (++restarts > 2) throw new StudioError('DOWNLOAD_FAILED', `cannot download ${url}: ${e.message}`);
        continue;
      }
      const code = (e as NodeJS.ErrnoException).code;
      if (code && CONNECT_ERRORS.has(code)) {
        throw new StudioError(
          'DOWNLOAD_FAILED',
          `cannot download ${url}: cannot reach ${parsed.host} (${code})`,
          'check the internet connection, or set STUDIO_VGG19_URL to a mirror (or import a local file with `studio models import FILE`)',
          { cause: e },
        );
      }
      if (tries++ >= retries) {
        throw new StudioError('DOWNLOAD_FAILED', `cannot download ${url}: ${(e as Error).message} (gave up after ${retries} retries)`, 'run the command again to resume', { cause: e });
      }
      await sleep(delay, opts.signal);
      delay *= 2;
    }
  }
  if (opts.md5) {
    const actual = await md5File(part);
    if (actual !== opts.md5.toLowerCase()) {
      await rm(part, { force: true });
      throw new StudioError('CHECKSUM_MISMATCH', `downloaded ${url} has md5 ${actual}, expected ${opts.md5.toLowerCase()}; the file was deleted`, 'try again; if it keeps failing, the server or a proxy is changing the file');
    }
  }
  try {
    await rename(part, dest);
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot move the download into ${dest}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

export interface FetchVgg19Options extends Omit<DownloadOptions, 'md5'> {
  /** Models root (default modelsDir()). */
  root?: string;
  /** Default: $STUDIO_VGG19_URL, else the Keras Applications URL. */
  url?: string;
  /** Default: $STUDIO_VGG19_MD5, else the published md5 of the Keras file. Empty string: no check. */
  md5?: string;
  /** Keep the downloaded .h5 in <root>/downloads/ after importing it (default: delete it). */
  keepDownload?: boolean;
}

/**
 * Download the Keras notop VGG19 weights into `<root>/downloads/`, import them and save them as the
 * model `<root>/vgg19`. Returns the model folder.
 */
export async function fetchVgg19(opts: FetchVgg19Options = {}): Promise<string> {
  const root = opts.root ?? modelsDir();
  const url = opts.url ?? (process.env.STUDIO_VGG19_URL || VGG19_URL);
  const md5 = opts.md5 ?? process.env.STUDIO_VGG19_MD5 ?? VGG19_MD5;
  const downloads = join(root, 'downloads');
  let name: string;
  try {
    name = basename(new URL(url).pathname) || 'vgg19_notop.h5';
  } catch {
    throw new StudioError('DOWNLOAD_FAILED', `not a valid URL: ${url}`);
  }
  const dest = join(downloads, name);
  try {
    await mkdir(downloads, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create ${downloads}: ${(e as Error).message}`, undefined, { cause: e });
  }
  // A complete earlier download is reused if its checksum still holds.
  if ((await sizeOf(dest)) > 0 && md5 && (await md5File(dest)) !== md5.toLowerCase()) await rm(dest, { force: true });
  if ((await sizeOf(dest)) === 0) await download(url, dest, { ...opts, md5: md5 || undefined });
  const weights = await importKerasH5(dest);
  weights.source = url;
  const dir = join(root, 'vgg19');
  await saveVgg19(dir, weights);
  if (!opts.keepDownload) await rm(dest, { force: true });
  return dir;
}
