/**
 * The models the studio can fetch by itself: where each comes from, its size and its licence. The CLI
 * (`studio models fetch`), the demo's first run and the app's welcome panel all read this one table, so
 * a user sees the same source and licence before every download, and the manifest records them after.
 *
 * Pure data, browser-safe: the renderer imports it for the welcome panel.
 */

export type CatalogId = 'vgg19' | 'photowct';

export interface Licence {
  /** SPDX-style short name. */
  name: string;
  url: string;
  /** False for non-commercial licences: the studio says so before the download. */
  commercialUse: boolean;
}

export interface CatalogEntry {
  id: CatalogId;
  /** The model folder it installs into (under the models directory). */
  dir: string;
  title: string;
  /** What it enables, in the user's words. */
  enables: string;
  /** Who published the weights and where they are described. */
  publisher: string;
  homepage: string;
  /** Approximate download size in bytes (the server's Content-Length is shown once known). */
  approxBytes: number;
  licence: Licence;
  /** Environment variable that points the download at a mirror (or a test server). */
  urlEnv: string;
}

export const CC_BY_4 = { name: 'CC BY 4.0', url: 'https://creativecommons.org/licenses/by/4.0/', commercialUse: true } as const satisfies Licence;
export const CC_BY_NC_SA_4 = { name: 'CC BY-NC-SA 4.0', url: 'https://creativecommons.org/licenses/by-nc-sa/4.0/', commercialUse: false } as const satisfies Licence;

export const CATALOG: Record<CatalogId, CatalogEntry> = {
  vgg19: {
    id: 'vgg19',
    dir: 'vgg19',
    title: 'VGG19 (ImageNet, Keras notop)',
    enables: 'artistic style transfer (Gatys)',
    // Keras Applications' file, ported from the weights Oxford's Visual Geometry Group released.
    publisher: 'Visual Geometry Group, University of Oxford (Simonyan & Zisserman 2014), via Keras Applications',
    homepage: 'https://www.robots.ox.ac.uk/~vgg/research/very_deep/',
    approxBytes: 80_000_000,
    licence: CC_BY_4,
    urlEnv: 'STUDIO_VGG19_URL',
  },
  photowct: {
    id: 'photowct',
    dir: 'photowct',
    title: 'FastPhotoStyle PhotoWCT (encoder and four decoders)',
    enables: 'neural photorealistic transfer (PhotoWCT)',
    publisher: 'NVIDIA (Li et al. 2018, FastPhotoStyle)',
    homepage: 'https://github.com/NVIDIA/FastPhotoStyle',
    // photo_wct.pth: 12.2 M float32 parameters (four encoders and four decoders up to relu4_1).
    approxBytes: 49_000_000,
    licence: CC_BY_NC_SA_4,
    urlEnv: 'STUDIO_PHOTOWCT_URL',
  },
};

export const CATALOG_IDS = Object.keys(CATALOG) as CatalogId[];

export function isCatalogId(s: string): s is CatalogId {
  return Object.hasOwn(CATALOG, s);
}

/** The one line said before a download: what, how big, whose, under which licence. */
export function licenceNotice(e: CatalogEntry): string {
  const size = `about ${Math.round(e.approxBytes / 1e6)} MB`;
  const use = e.licence.commercialUse ? '' : ' — non-commercial use only';
  return `${e.title}, ${size}, from ${e.publisher}; licence ${e.licence.name}${use} (${e.licence.url})`;
}
