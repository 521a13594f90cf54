/**
 * Downloads with resume and checksum, and `studio models fetch vgg19 | photowct` (catalog.ts says
 * what each is, its source and licence).
 *
 * A download streams into `dest.part`. When the connection drops, it is retried with an HTTP Range
 * request from the .part's size (a 206 reply appends; a 200 reply, from a server that ignores Range,
 * restarts the file). At the end the md5 is checked and the file renamed into place; a wrong checksum
 * deletes the .part. A .part left by an interrupted run is resumed by the next run.
 */
import { open, rename, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { basename, join } from 'node:path';
import { CancelledError, StudioError } from '../../errors.ts';
import { md5File, sha256File } from '../../io/files.ts';
import { CATALOG, type CatalogId } from './catalog.ts';
import { downloadsDir, downloadUrl, fileNameOf, PHOTOWCT_DOWNLOAD, PHOTOWCT_MIRROR_URL, PHOTOWCT_URL, sizeOf } from './downloads.ts';
import { resolveDownload } from './drive.ts';
import { importKerasH5 } from './import-keras.ts';
import { importPhotoWctInto } from './import-photowct.ts';
import { openPhotoWct, type PhotoWctArchive } from './photowct-archive.ts';
import { installModelDir, modelsDir, saveVgg19, type DownloadRecord } from './store.ts';

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
  /** Extra request headers (the cookies Google Drive's confirmation sets). */
  headers?: Record<string, string>;
  /** Environment variable naming a mirror, for the hint when the host cannot be reached. */
  mirrorEnv?: string;
}

/** A failure worth retrying (the transfer can resume), as opposed to one that will not go away. */
class Retryable extends Error {}
/** The server ignored Range or the .part does not fit the file: start from zero. */
class Restart extends Error {}

const CONNECT_ERRORS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EAI_FAIL', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);

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
    const req = mod.get(url, { headers: { 'user-agent': 'style-studio', ...opts.headers, ...headers }, signal: opts.signal }, resolveReq);
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
          `check the internet connection, or set ${opts.mirrorEnv ?? 'STUDIO_VGG19_URL'} to a mirror (or import a local file with \`studio models import FILE\`)`,
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

export interface FetchOptions extends Omit<DownloadOptions, 'md5' | 'headers' | 'mirrorEnv'> {
  /** Models root (default modelsDir()). */
  root?: string;
  /** Default: the catalogue entry's environment variable (STUDIO_VGG19_URL, STUDIO_PHOTOWCT_URL), else the published URL. */
  url?: string;
  /** Keep the download in <root>/downloads/ after importing it (default: delete it). */
  keepDownload?: boolean;
}

export interface FetchVgg19Options extends FetchOptions {
  /** Default: $STUDIO_VGG19_MD5, else the published md5 of the Keras file. Empty string: no check. */
  md5?: string;
}

/**
 * Download the Keras notop VGG19 weights into `<root>/downloads/`, import them and install them as the
 * model `<root>/vgg19` (atomically: installModelDir). Returns the model folder.
 */
export async function fetchVgg19(opts: FetchVgg19Options = {}): Promise<string> {
  const entry = CATALOG.vgg19;
  const root = opts.root ?? modelsDir();
  const url = opts.url ?? downloadUrl('vgg19');
  const md5 = opts.md5 ?? process.env.STUDIO_VGG19_MD5 ?? VGG19_MD5;
  const dest = join(await downloadsDir(root), fileNameOf(url, 'vgg19_notop.h5'));
  // A complete earlier download is reused if its checksum still holds.
  if ((await sizeOf(dest)) > 0 && md5 && (await md5File(dest)) !== md5.toLowerCase()) await rm(dest, { force: true });
  if ((await sizeOf(dest)) === 0) await download(url, dest, { ...opts, md5: md5 || undefined, mirrorEnv: entry.urlEnv });
  const record: DownloadRecord = { url, file: basename(dest), bytes: await sizeOf(dest), sha256: await sha256File(dest) };
  const weights = await importKerasH5(dest);
  weights.source = url;
  weights.licence = { ...entry.licence };
  const dir = join(root, entry.dir);
  await installModelDir(dir, (tmp) => saveVgg19(tmp, weights, { download: record }));
  if (!opts.keepDownload) await rm(dest, { force: true });
  return dir;
}

export interface FetchPhotoWctOptions extends FetchOptions {
  /** Expected sha256 of the download (default $STUDIO_PHOTOWCT_SHA256; FastPhotoStyle publishes none). */
  sha256?: string;
}

/**
 * Download FastPhotoStyle's models (PHOTOWCT_URL: Google Drive, whose confirmation page drive.ts follows;
 * or any mirror of models.zip, of photo_wct.pth or of a zip holding it), take the networks out of it
 * (photowct-archive.ts), import them (the importer's key and shape checks) and install them as `<root>/photowct`
 * with the download's URL, sha256 and licence in the manifest. Returns the model folder.
 */
export async function fetchPhotoWct(opts: FetchPhotoWctOptions = {}): Promise<string> {
  const entry = CATALOG.photowct;
  const root = opts.root ?? modelsDir();
  const url = opts.url ?? downloadUrl('photowct');
  const want = (opts.sha256 ?? process.env.STUDIO_PHOTOWCT_SHA256 ?? '').toLowerCase();
  const dest = join(await downloadsDir(root), PHOTOWCT_DOWNLOAD);
  if ((await sizeOf(dest)) > 0 && want && (await sha256File(dest)) !== want) await rm(dest, { force: true });
  if ((await sizeOf(dest)) === 0) {
    try {
      const target = await resolveDownload(url, { signal: opts.signal, timeoutMs: opts.timeoutMs });
      await download(target.url, dest, { ...opts, headers: target.headers, mirrorEnv: entry.urlEnv });
    } catch (e) {
      // Drive refuses a popular file for a day when its quota is spent; the converted file has a mirror.
      if (e instanceof StudioError && e.code === 'DOWNLOAD_FAILED' && url === PHOTOWCT_URL) {
        throw new StudioError('DOWNLOAD_FAILED', e.message, `the converted photo_wct.pth is also published in FastPhotoStyle's PhotoWCTModels: ${entry.urlEnv}=${PHOTOWCT_MIRROR_URL} studio models fetch photowct`, { cause: e });
      }
      throw e;
    }
  }
  const record: DownloadRecord = { url, file: basename(dest), bytes: await sizeOf(dest), sha256: await sha256File(dest) };
  if (want && record.sha256 !== want) {
    await rm(dest, { force: true });
    throw new StudioError('CHECKSUM_MISMATCH', `downloaded ${url} has sha256 ${record.sha256}, expected ${want}; the file was deleted`);
  }
  const dir = join(root, entry.dir);
  let archive: PhotoWctArchive | undefined;
  try {
    archive = await openPhotoWct(dest);
    if (archive.extracted) record.extracted = archive.extracted;
    if (archive.torch7) record.torch7 = archive.torch7;
    const source = archive.source;
    await installModelDir(dir, (tmp) => importPhotoWctInto(source, tmp, { download: record }));
  } catch (e) {
    // A download that does not import is not kept: the next fetch downloads again instead of failing the same way.
    await rm(dest, { force: true });
    throw e;
  } finally {
    await archive?.dispose();
  }
  if (!opts.keepDownload) await rm(dest, { force: true });
  return dir;
}

/** One catalogue model by id. */
export function fetchModel(id: CatalogId, opts: FetchOptions = {}): Promise<string> {
  return id === 'vgg19' ? fetchVgg19(opts) : fetchPhotoWct(opts);
}

