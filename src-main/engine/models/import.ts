/**
 * One entry for every weights file a user brings (CLI `studio models import`, the app's Models panel):
 * FastPhotoStyle's photo_wct.pth (told apart by its keys) or its models.zip (Torch7) becomes an encoder with its four decoders; a
 * Keras .h5 or a torchvision .pth becomes a VGG19. The install is atomic (installModelDir), and a file
 * the catalogue knows (the Keras file, by its published md5; FastPhotoStyle's, by its layout) keeps its licence.
 */
import { extname, join } from 'node:path';
import { StudioError } from '../../errors.ts';
import { CATALOG } from './catalog.ts';
import type { StoredDtype } from './format.ts';
import { checkModelName, installModelDir, modelsDir, saveVgg19 } from './store.ts';

export interface ImportedModel {
  dir: string;
  kind: 'photowct' | 'vgg19';
}

/** Import `file` as the model `name` (default: photowct for FastPhotoStyle's file, else vgg19) under `root`. */
export async function importWeightsFile(file: string, opts: { name?: string; dtype?: StoredDtype; root?: string } = {}): Promise<ImportedModel> {
  const root = opts.root ?? modelsDir();
  if (opts.name !== undefined) checkModelName(opts.name);
  const ext = extname(file).toLowerCase();
  const torch = ext === '.pth' || ext === '.pt';
  if (ext === '.zip' || torch) {
    const photoWct = await import('./import-photowct.ts');
    const dir = join(root, opts.name ?? CATALOG.photowct.dir);
    if (ext === '.zip') {
      // FastPhotoStyle's models.zip (its Torch7 networks) or a zip holding photo_wct.pth.
      const archive = await (await import('./photowct-archive.ts')).openPhotoWct(file);
      try {
        await installModelDir(dir, (tmp) => photoWct.importPhotoWctInto(archive.source, tmp, { dtype: opts.dtype }));
      } finally {
        await archive.dispose();
      }
      return { dir, kind: 'photowct' };
    }
    if (await photoWct.isPhotoWctPth(file)) {
      await installModelDir(dir, (tmp) => photoWct.importPhotoWctInto(file, tmp, { dtype: opts.dtype }));
      return { dir, kind: 'photowct' };
    }
  }
  const keras = ext === '.h5' || ext === '.hdf5';
  if (!keras && !torch) {
    throw new StudioError('UNSUPPORTED_FORMAT', `${file}: not a weights file this studio imports`,
      "use the Keras VGG19 notop .h5, the torchvision vgg19 .pth, or FastPhotoStyle's photo_wct.pth or models.zip");
  }
  const weights = keras
    ? await (await import('./import-keras.ts')).importKerasH5(file)
    : await (await import('./import-torch.ts')).importTorchPth(file);
  if (keras) {
    const { VGG19_MD5 } = await import('./fetch.ts');
    const { md5File } = await import('../../io/files.ts');
    if ((await md5File(file)) === VGG19_MD5) weights.licence = { ...CATALOG.vgg19.licence };
  }
  const dir = join(root, opts.name ?? CATALOG.vgg19.dir);
  await installModelDir(dir, (tmp) => saveVgg19(tmp, weights, { dtype: opts.dtype }));
  return { dir, kind: 'vgg19' };
}
