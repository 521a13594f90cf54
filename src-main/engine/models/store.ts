/**
 * The per-user models directory and the project's model folder format:
 *
 *   <modelsDir>/<name>/model.safetensors   conv weights, HWIO kernels (see format.ts for the names)
 *   <modelsDir>/<name>/manifest.json       what the weights are, and a sha256 of every file
 *
 * Writes are atomic (temporary file, then rename), so an interrupted save never leaves a half-written
 * file under the final name. Loading verifies the checksums and every conv's shape against the layer
 * table before anything uses the weights.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { StudioError } from '../../errors.ts';
import { writeFileAtomic } from '../../io/write.ts';
import { decodeSafetensors, encodeSafetensors } from '../tensors/safetensors.ts';
import { biasKey, kernelKey, type Preprocessing, type StoredDtype, type TensorMap, type Vgg19Weights } from './format.ts';
import { isFeatureName, vgg19ConvsTo } from './vgg19.ts';
import type { Licence } from './catalog.ts';

export const MODEL_FILE = 'model.safetensors';
export const MANIFEST_FILE = 'manifest.json';
export const DEFAULT_MODEL = 'vgg19';

export const MODEL_MISSING_HINT =
  'run `studio models fetch vgg19` to download the VGG19 weights, or `studio models tiny DIR` to make a small test network';

export interface ManifestFile {
  /** Relative to the model folder. */
  path: string;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  name: string;
  architecture: 'vgg19';
  widths: number[];
  layout: 'HWIO';
  preprocessing: Preprocessing;
  source: string;
  dtype: StoredDtype;
  /** A partial VGG19's deepest feature (reluB_I), e.g. relu4_1 for FastPhotoStyle's weights; absent: all 16 convs. */
  depth?: string;
  files: ManifestFile[];
  /** ISO 8601 time of the save. */
  created: string;
  /** The weights' licence, when known (fetched or recognised files); `studio models list` shows it. */
  licence?: Licence;
  /** The file it was made from, when the studio downloaded it: URL, size and sha256 as received. */
  download?: DownloadRecord;
}

export interface DownloadRecord {
  url: string;
  file: string;
  bytes: number;
  sha256: string;
  /** A file taken out of the download (photo_wct.pth out of the zip), with its own sha256. */
  extracted?: { file: string; bytes: number; sha256: string };
  /** The Torch7 networks converted (FastPhotoStyle's models.zip), each with its sha256. */
  torch7?: Array<{ file: string; bytes: number; sha256: string }>;
}

/** Where models live: $STUDIO_MODELS_DIR, else the platform's per-user data directory. */
export function modelsDir(): string {
  const env = process.env.STUDIO_MODELS_DIR;
  if (env) return resolve(env);
  const home = homedir();
  if (process.platform === 'darwin') return join(home, 'Library', 'Application Support', 'Style Studio', 'models');
  if (process.platform === 'win32') {
    return join(process.env.APPDATA || join(home, 'AppData', 'Roaming'), 'Style Studio', 'models');
  }
  const xdg = process.env.XDG_DATA_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  const base = xdg && isAbsolute(xdg) ? xdg : join(home, '.local', 'share');
  return join(base, 'style-studio', 'models');
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * A model argument to a folder path. Something that looks like a path (absolute, has a separator or
 * starts with '.') is taken as one; a bare name is a folder under modelsDir(), unless no such model
 * exists there and a folder of that name exists in the working directory.
 */
export function resolveModel(nameOrDir: string = DEFAULT_MODEL): string {
  if (isAbsolute(nameOrDir) || /[\\/]/.test(nameOrDir) || nameOrDir.startsWith('.')) return resolve(nameOrDir);
  const underRoot = join(modelsDir(), nameOrDir);
  if (!existsSync(underRoot) && isDir(nameOrDir)) return resolve(nameOrDir);
  return underRoot;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function checkWidths(widths: unknown, origin: string): number[] {
  if (!Array.isArray(widths) || widths.length !== 5 || !widths.every((w) => Number.isInteger(w) && w > 0)) {
    throw new StudioError('BAD_MODEL', `${origin}: VGG19 needs 5 positive block widths, got ${JSON.stringify(widths)}`);
  }
  return widths as number[];
}

const shapeStr = (s: readonly number[] | undefined): string => (s ? `[${s.join(',')}]` : 'missing');
const sameShape = (a: readonly number[] | undefined, b: readonly number[]): boolean =>
  !!a && a.length === b.length && a.every((d, i) => d === b[i]);

/** A partial network's depth must name a relu of the table (reluB_I). */
function checkDepth(depth: unknown, origin: string): string | undefined {
  if (depth === undefined) return undefined;
  if (typeof depth !== 'string' || !depth.startsWith('relu') || !isFeatureName(depth)) {
    throw new StudioError('BAD_MODEL', `${origin}: bad depth ${JSON.stringify(depth)} (expected a layer such as relu4_1)`);
  }
  return depth;
}

/**
 * Every conv of the table for these widths (up to `depth` for a partial network) is present with
 * kernel [3,3,in,out] and bias [out], and its data length matches. Throws BAD_MODEL naming the first
 * layer at fault.
 */
export function checkVgg19Tensors(tensors: TensorMap, widths: readonly number[], origin: string, depth?: string): void {
  checkWidths(widths, origin);
  for (const c of vgg19ConvsTo(checkDepth(depth, origin), widths)) {
    const k = tensors.get(kernelKey(c.name));
    const b = tensors.get(biasKey(c.name));
    const wantK = [3, 3, c.inChannels, c.outChannels];
    if (!k) throw new StudioError('BAD_MODEL', `${origin}: layer ${c.name} has no kernel (${kernelKey(c.name)})`);
    if (!b) throw new StudioError('BAD_MODEL', `${origin}: layer ${c.name} has no bias (${biasKey(c.name)})`);
    if (!sameShape(k.shape, wantK) || k.data.length !== 9 * c.inChannels * c.outChannels) {
      throw new StudioError('BAD_MODEL', `${origin}: layer ${c.name} kernel has shape ${shapeStr(k.shape)}, expected ${shapeStr(wantK)} (HWIO)`);
    }
    if (!sameShape(b.shape, [c.outChannels]) || b.data.length !== c.outChannels) {
      throw new StudioError('BAD_MODEL', `${origin}: layer ${c.name} bias has shape ${shapeStr(b.shape)}, expected [${c.outChannels}]`);
    }
  }
}

function checkPreprocessing(p: unknown, origin: string): Preprocessing {
  const q = p as Preprocessing;
  const triple = (a: unknown) => Array.isArray(a) && a.length === 3 && a.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (
    typeof q !== 'object' || q === null ||
    (q.colorOrder !== 'RGB' && q.colorOrder !== 'BGR') ||
    typeof q.scale !== 'number' || !(q.scale > 0) ||
    !triple(q.mean) || !triple(q.std) || q.std.some((s) => s === 0)
  ) {
    throw new StudioError('BAD_MODEL', `${origin}: bad preprocessing ${JSON.stringify(p)}`);
  }
  return { colorOrder: q.colorOrder, scale: q.scale, mean: [...q.mean], std: [...q.std] };
}

/** Save weights as a model folder (created if needed). The folder's name becomes the model's name. */
export async function saveVgg19(dir: string, w: Vgg19Weights, opts: { dtype?: StoredDtype; download?: DownloadRecord } = {}): Promise<Manifest> {
  const dtype = opts.dtype ?? 'F32';
  const widths = checkWidths(w.widths, w.source || dir);
  const depth = checkDepth(w.depth, w.source || dir);
  checkVgg19Tensors(w.tensors, widths, w.source || dir, depth);
  const preprocessing = checkPreprocessing(w.preprocessing, w.source || dir);
  // Only the conv tensors, in the project's names: nothing stray ends up in the file.
  const tensors: TensorMap = new Map();
  for (const c of vgg19ConvsTo(depth, widths)) {
    for (const key of [kernelKey(c.name), biasKey(c.name)]) tensors.set(key, w.tensors.get(key)!);
  }
  const metadata = {
    format: 'style-studio',
    architecture: 'vgg19',
    layout: 'HWIO',
    widths: JSON.stringify(widths),
    preprocessing: JSON.stringify(preprocessing),
    source: w.source,
    ...(depth ? { depth } : {}),
  };
  const bytes = encodeSafetensors(tensors, metadata, dtype);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create ${dir}: ${(e as Error).message}`, undefined, { cause: e });
  }
  await writeFileAtomic(join(dir, MODEL_FILE), bytes);
  const manifest: Manifest = {
    name: basename(resolve(dir)),
    architecture: 'vgg19',
    widths,
    layout: 'HWIO',
    preprocessing,
    source: w.source,
    dtype,
    ...(depth ? { depth } : {}),
    files: [{ path: MODEL_FILE, bytes: bytes.length, sha256: sha256(bytes) }],
    created: new Date().toISOString(),
    ...(w.licence ? { licence: { ...w.licence } } : {}),
    ...(opts.download ? { download: opts.download } : {}),
  };
  await writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

function missing(dir: string, what: string, cause?: unknown): StudioError {
  return new StudioError('MODEL_MISSING', `no model at ${dir}: ${what}`, MODEL_MISSING_HINT, { cause });
}

/** Read and check a folder's manifest (no checksums: see loadVgg19). */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw missing(dir, isDir(dir) ? `${MANIFEST_FILE} not found (not a Style Studio model folder)` : 'the folder does not exist', e);
    }
    throw new StudioError('BAD_MODEL', `cannot read ${path}: ${(e as Error).message}`, undefined, { cause: e });
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new StudioError('BAD_MODEL', `${path} is not valid JSON`, undefined, { cause: e });
  }
  if (typeof m !== 'object' || m === null) throw new StudioError('BAD_MODEL', `${path} is not a manifest object`);
  if (m.architecture !== 'vgg19') throw new StudioError('BAD_MODEL', `${path}: unsupported architecture ${JSON.stringify(m.architecture)} (expected vgg19)`);
  if (m.layout !== 'HWIO') throw new StudioError('BAD_MODEL', `${path}: unsupported layout ${JSON.stringify(m.layout)} (expected HWIO)`);
  checkWidths(m.widths, path);
  m.preprocessing = checkPreprocessing(m.preprocessing, path);
  checkDepth(m.depth, path);
  if (
    !Array.isArray(m.files) ||
    !m.files.every((f) => typeof f?.path === 'string' && typeof f.sha256 === 'string' && Number.isInteger(f.bytes)) ||
    !m.files.some((f) => f.path === MODEL_FILE)
  ) {
    throw new StudioError('BAD_MODEL', `${path}: the file list is missing or does not name ${MODEL_FILE}`);
  }
  for (const f of m.files) {
    // Files are named relative to the folder, never outside it.
    if (isAbsolute(f.path) || f.path.split(/[\\/]/).includes('..')) throw new StudioError('BAD_MODEL', `${path}: bad file path ${f.path}`);
  }
  return m;
}

/** Load a model folder, verifying checksums (CHECKSUM_MISMATCH) and the layer shapes (BAD_MODEL). */
export async function loadVgg19(dir: string): Promise<Vgg19Weights> {
  await recoverInterruptedInstalls(dirname(resolve(dir)));
  const m = await readManifest(dir);
  let modelBytes: Buffer | undefined;
  for (const f of m.files) {
    const p = join(dir, f.path);
    let data: Buffer;
    try {
      data = await readFile(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missing(dir, `${f.path} is missing`, e);
      throw new StudioError('BAD_MODEL', `cannot read ${p}: ${(e as Error).message}`, undefined, { cause: e });
    }
    const actual = sha256(data);
    if (actual !== f.sha256 || data.length !== f.bytes) {
      throw new StudioError(
        'CHECKSUM_MISMATCH',
        `${p} does not match its manifest: sha256 ${actual} (${data.length} bytes), expected ${f.sha256} (${f.bytes} bytes)`,
        'the file is damaged or was changed; fetch or import the model again',
      );
    }
    if (f.path === MODEL_FILE) modelBytes = data;
  }
  const modelPath = join(dir, MODEL_FILE);
  const { tensors, metadata } = decodeSafetensors(modelBytes!, modelPath);
  if (metadata.architecture !== undefined && metadata.architecture !== 'vgg19') {
    throw new StudioError('BAD_MODEL', `${modelPath}: architecture ${metadata.architecture}, expected vgg19`);
  }
  if (metadata.layout !== undefined && metadata.layout !== 'HWIO') {
    throw new StudioError('BAD_MODEL', `${modelPath}: layout ${metadata.layout}, expected HWIO`);
  }
  checkVgg19Tensors(tensors, m.widths, modelPath, m.depth);
  return {
    architecture: 'vgg19', widths: [...m.widths], preprocessing: m.preprocessing, tensors, source: m.source,
    ...(m.depth ? { depth: m.depth } : {}), ...(m.licence ? { licence: m.licence } : {}),
  };
}

/** A model's name is one folder under the models directory: letters, digits, '.', '_', '-', not starting with '.'. */
export const MODEL_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

export function checkModelName(name: string): string {
  if (!MODEL_NAME.test(name)) {
    throw new StudioError('BAD_ARGUMENT', `"${name}" is not a model name`, 'use letters, digits, ".", "_" and "-" (up to 64, not starting with "."), e.g. --name my-vgg19');
  }
  return name;
}

/**
 * Installs a model folder without ever leaving a half-made one under its name: `fill` writes into a
 * temporary dot folder beside it (listModels skips those), which then replaces `dir` by renames.
 * A failure or an interruption leaves the previous model, if any, in place.
 */
export async function installModelDir<T>(dir: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  const parent = dirname(resolve(dir));
  // The old folder is deleted after the swap: only ever a model's own folder ('.' or '..' would be its parent's).
  const name = checkModelName(basename(resolve(dir)));
  try {
    await mkdir(parent, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create ${parent}: ${(e as Error).message}`, undefined, { cause: e });
  }
  const tmp = await mkdtemp(join(parent, `.${name}.installing-`));
  await chmod(tmp, 0o755); // mkdtemp makes it 0700: a shared models folder must stay readable
  const old = join(parent, `.${name}.old-${process.pid}-${Date.now()}`);
  try {
    const out = await fill(tmp);
    // The manifest names the folder: it must say the final name, not the temporary one.
    const mpath = join(tmp, MANIFEST_FILE);
    const m = JSON.parse(await readFile(mpath, 'utf8')) as Manifest;
    m.name = name;
    await writeFileAtomic(mpath, JSON.stringify(m, null, 2) + '\n');
    let hadOld = false;
    try {
      await rename(dir, old);
      hadOld = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    try {
      await rename(tmp, dir);
    } catch (e) {
      if (hadOld) await rename(old, dir).catch(() => {});
      throw e;
    }
    if (hadOld) await rm(old, { recursive: true, force: true });
    return out;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The models under a root (default modelsDir()), by name; folders without a readable manifest are skipped. */
/**
 * Puts back what an install killed between its two renames left (the old model moved aside, the new
 * one not yet in place: the model would seem gone) and removes installs in progress a killed process
 * abandoned more than a day ago. Runs before the models are listed or loaded.
 */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export async function recoverInterruptedInstalls(root: string = modelsDir()): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return;
  }
  for (const e of entries) {
    const old = /^\.(.+)\.old-(\d+)-\d+$/.exec(e);
    // Only an installer that is gone: a live one is between its renames and finishes itself.
    if (old && !entries.includes(old[1]) && MODEL_NAME.test(old[1]) && !processAlive(Number(old[2]))) {
      await rename(join(root, e), join(root, old[1])).catch(() => undefined);
      continue;
    }
    if (/^\..+\.installing-/.test(e)) {
      // A day untouched: no download or import takes that long.
      const st = await stat(join(root, e)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 24 * 3600_000) await rm(join(root, e), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

export async function listModels(root: string = modelsDir()): Promise<Array<Manifest & { dir: string }>> {
  await recoverInterruptedInstalls(root);
  let names: string[];
  try {
    // Dot folders are installs in progress (installModelDir).
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name);
  } catch {
    return [];
  }
  const out: Array<Manifest & { dir: string }> = [];
  for (const name of names.sort()) {
    const dir = join(root, name);
    try {
      out.push({ ...(await readManifest(dir)), dir });
    } catch {
      // not a model folder (e.g. downloads/)
    }
  }
  return out;
}
