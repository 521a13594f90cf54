/**
 * Where the catalogue's models download from and what an interrupted download left: the light half of
 * fetch.ts (no importers), so that the welcome panel's catalogue and the demo's offline check answer at
 * once instead of waiting for the importers to load.
 */
import { mkdir, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, join } from 'node:path';
import { StudioError } from '../../errors.ts';
import { CATALOG, type CatalogId } from './catalog.ts';
import { driveDownloadUrl, PHOTOWCT_DRIVE_ID } from './drive.ts';
import { modelsDir } from './store.ts';

export const VGG19_URL =
  'https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5';

/**
 * FastPhotoStyle's published models: the Google Drive file its download_models.py names (models.zip, the
 * Torch7 networks its converter.py turns into photo_wct.pth; converted here by import-photowct-t7.ts).
 * The converted photo_wct.pth is also in its PhotoWCTModels submodule (PHOTOWCT_MIRROR_URL), which
 * STUDIO_PHOTOWCT_URL can name when Drive refuses (its daily quota).
 */
export const PHOTOWCT_URL = driveDownloadUrl(PHOTOWCT_DRIVE_ID);
export const PHOTOWCT_MIRROR_URL = 'https://github.com/suquark/PhotoWCTModels/raw/HEAD/photo_wct.pth';
export const PHOTOWCT_DOWNLOAD = 'photowct.download';

/** Where a catalogue model downloads from: its environment variable (a mirror), else the published URL. */
export function downloadUrl(id: CatalogId): string {
  return process.env[CATALOG[id].urlEnv] || (id === 'vgg19' ? VGG19_URL : PHOTOWCT_URL);
}

/** A file's size, 0 where there is none. */
export async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** `<root>/downloads`, created, where transfers land as `.part` files until complete. */
export async function downloadsDir(root: string): Promise<string> {
  const downloads = join(root, 'downloads');
  try {
    await mkdir(downloads, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create ${downloads}: ${(e as Error).message}`, undefined, { cause: e });
  }
  return downloads;
}

/** The download's file name from its URL (a Drive link has none: `fallback`). */
export function fileNameOf(url: string, fallback: string): string {
  try {
    const name = basename(new URL(url).pathname);
    return /\.[a-z0-9]{1,8}$/i.test(name) ? name : fallback;
  } catch {
    throw new StudioError('DOWNLOAD_FAILED', `not a valid URL: ${url}`);
  }
}

/** Bytes of an interrupted download of this model waiting to be resumed (0: none). */
export async function partialBytes(id: CatalogId, root: string = modelsDir()): Promise<number> {
  const name = id === 'vgg19' ? fileNameOf(downloadUrl('vgg19'), 'vgg19_notop.h5') : PHOTOWCT_DOWNLOAD;
  return sizeOf(join(root, 'downloads', `${name}.part`));
}

/**
 * Whether a TCP connection to the URL's host opens within `timeoutMs`: the demo's "are we online" test,
 * so that an offline first run says so in one line instead of waiting for a download to time out.
 */
export function canReach(url: string, timeoutMs = 4000): Promise<boolean> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  return new Promise((resolveReach) => {
    const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolveReach(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
