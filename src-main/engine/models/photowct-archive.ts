/**
 * What a PhotoWCT download or a user's file holds, as something importPhotoWct takes:
 * - a photo_wct.pth (either torch.save serialization: a PyTorch zip is told apart by its data.pkl);
 * - a zip holding photo_wct.pth (FastPhotoStyle's PhotoWCTModels as an archive), extracted to a temporary
 *   folder outside the user's;
 * - FastPhotoStyle's Google Drive models.zip: the eight Torch7 networks converter.py reads, converted in
 *   memory (import-photowct-t7.ts).
 * Each file taken out of a zip is described with its sha256 for the manifest.
 */
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { unzipSync } from 'fflate';
import { StudioError } from '../../errors.ts';
import { writeFileAtomic } from '../../io/write.ts';
import type { PhotoWctSource } from './import-photowct.ts';
import { photoWctStateDictFromT7, T7_FILES } from './import-photowct-t7.ts';
import { sha256 } from './store.ts';

export interface FileRecord {
  file: string;
  bytes: number;
  sha256: string;
}

export interface PhotoWctArchive {
  source: PhotoWctSource;
  /** photo_wct.pth taken out of a zip. */
  extracted?: FileRecord;
  /** The Torch7 networks converted (FastPhotoStyle's models.zip). */
  torch7?: FileRecord[];
  /** Removes what was extracted (call in finally). */
  dispose(): Promise<void>;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const nothing = async () => {};

export function isZip(bytes: Uint8Array): boolean {
  return ZIP_MAGIC.every((b, i) => bytes[i] === b);
}

export async function openPhotoWct(file: string): Promise<PhotoWctArchive> {
  // The first bytes tell a zip; a legacy torch.save file is the .pth itself, read once by its importer.
  const head = new Uint8Array(ZIP_MAGIC.length);
  const fh = await open(file, 'r');
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  if (!isZip(head)) return { source: file, dispose: nothing };
  const bytes = await readFile(file);
  const origin = basename(file);
  let names: string[];
  try {
    names = listZip(bytes);
  } catch (e) {
    throw new StudioError('BAD_MODEL', `${origin} is not a readable zip (${(e as Error).message}); download it again`, undefined, { cause: e });
  }
  const entry = (re: RegExp) => names.find((n) => re.test(n));
  const unzipOne = (name: string): Uint8Array => {
    try {
      return unzipSync(bytes, { filter: (f) => f.name === name })[name];
    } catch (e) {
      throw new StudioError('BAD_MODEL', `${origin}: ${name} cannot be unzipped (${(e as Error).message}); download it again`, undefined, { cause: e });
    }
  };

  const pth = entry(/(^|\/)photo_wct\.pth$/);
  if (pth) {
    const out = unzipOne(pth);
    const tmp = await mkdtemp(join(tmpdir(), 'studio-photowct-'));
    const dest = join(tmp, 'photo_wct.pth');
    await writeFileAtomic(dest, out);
    return { source: dest, extracted: { file: pth, bytes: out.length, sha256: sha256(out) }, dispose: () => rm(tmp, { recursive: true, force: true }) };
  }
  if (entry(/(^|\/)data\.pkl$/)) return { source: file, dispose: nothing }; // a PyTorch zip-format .pth

  const t7 = new Map(T7_FILES.map((f) => [f, names.find((n) => n === f || n.endsWith(`/${f}`))]));
  const found = [...t7.values()].filter(Boolean).length;
  if (found > 0 || names.some((n) => n.endsWith('.t7'))) {
    const missing = [...t7].filter(([, n]) => !n).map(([f]) => f);
    if (missing.length) {
      throw new StudioError('BAD_MODEL', `${origin} holds Torch7 files but not all eight of FastPhotoStyle's networks: ${missing.join(', ')} missing`,
        "FastPhotoStyle's models.zip has vgg_normalised_conv{1..4}_1_mask.t7 and feature_invertor_conv{1..4}_1_mask.t7");
    }
    const records: FileRecord[] = [];
    const stateDict = photoWctStateDictFromT7((f) => {
      const name = t7.get(f)!;
      const data = unzipOne(name);
      records.push({ file: name, bytes: data.length, sha256: sha256(data) });
      return data;
    }, origin);
    return { source: { stateDict, origin }, torch7: records, dispose: nothing };
  }
  throw new StudioError('BAD_MODEL', `${origin} holds no photo_wct.pth and none of FastPhotoStyle's Torch7 networks (it has ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`);
}

/** The entry names of a zip, from its central directory (fflate's filter sees each one). */
function listZip(bytes: Uint8Array): string[] {
  const names: string[] = [];
  unzipSync(bytes, { filter: (f) => { names.push(f.name); return false; } });
  return names;
}
