/**
 * Import the Keras Applications VGG19 weights (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`,
 * REFERENCE §1) with h5wasm. Layout of that file: a root attribute `layer_names`, and per layer a group
 * `block1_conv1` with an attribute `weight_names` (`block1_conv1/kernel:0`, `block1_conv1/bias:0`)
 * naming datasets nested one group down. Older Keras files put `block1_conv1_W_1:0` /
 * `block1_conv1_b_1:0` straight in the layer group; full-model saves put everything under
 * `model_weights/`. Kernels are HWIO already; preprocessing is Caffe's.
 */
import h5wasm from 'h5wasm/node';
import type { Dataset, Group } from 'h5wasm/node';
import { open } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { StudioError } from '../../errors.ts';
import { biasKey, CAFFE_PREPROCESSING, kernelKey, type TensorMap, type Vgg19Weights } from './format.ts';
import { checkVgg19Tensors } from './store.ts';
import { kerasName, vgg19Convs, VGG19_BLOCKS } from './vgg19.ts';

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The HDF5 superblock signature sits at byte 0, or after a user block at 512, 1024, 2048, …
 * Checked before opening, because libhdf5 reports a non-HDF5 file on stderr rather than by throwing.
 */
export async function isHdf5File(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const sig = Buffer.alloc(8);
    for (let off = 0; off + 8 <= size; off = off === 0 ? 512 : off * 2) {
      await fh.read(sig, 0, 8, off);
      if (sig.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    await fh.close();
  }
}

export async function checkReadable(path: string): Promise<void> {
  try {
    const fh = await open(path, 'r');
    await fh.close();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StudioError('FILE_NOT_FOUND', `no such file: ${path}`, undefined, { cause: e });
    if (code === 'EISDIR') throw new StudioError('BAD_FILE', `${path} is a folder, expected a file`, undefined, { cause: e });
    throw new StudioError('BAD_FILE', `cannot read ${path}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

const isGroup = (e: unknown): e is Group => e instanceof h5wasm.Group;
const isDataset = (e: unknown): e is Dataset => e instanceof h5wasm.Dataset;

function stringList(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(stringList);
  if (v instanceof Uint8Array) return [Buffer.from(v).toString('utf8').replace(/\0+$/, '')];
  return [];
}

function getDataset(g: Group, path: string): Dataset | undefined {
  try {
    const e = g.get(path);
    return isDataset(e) ? e : undefined;
  } catch {
    return undefined;
  }
}

/** Every dataset under a group, a few levels deep. */
function datasetsUnder(g: Group, depth = 3): Dataset[] {
  const out: Dataset[] = [];
  for (const key of g.keys()) {
    const e = g.get(key);
    if (isDataset(e)) out.push(e);
    else if (isGroup(e) && depth > 1) out.push(...datasetsUnder(e, depth - 1));
  }
  return out;
}

/** The kernel and bias datasets of one layer group, whatever the Keras version that wrote it. */
function findWeights(layer: Group, name: string): { kernel?: Dataset; bias?: Dataset } {
  // 1. The weight_names attribute names them exactly (paths relative to the layer group).
  if (layer.attrs && 'weight_names' in layer.attrs) {
    const names = stringList(layer.get_attribute('weight_names', false));
    const ds = names.map((n) => getDataset(layer, n)).filter((d): d is Dataset => !!d);
    const kernel = ds.find((d) => /kernel|_W(_\d+)?:\d+$/.test(d.path));
    const bias = ds.find((d) => /bias|_b(_\d+)?:\d+$/.test(d.path));
    if (kernel && bias) return { kernel, bias };
  }
  // 2. The names Keras 2 and Keras 1 use.
  const kernelNames = [`${name}/kernel:0`, 'kernel:0', `${name}_W_1:0`, `${name}_W:0`, `${name}/kernel`, 'kernel'];
  const biasNames = [`${name}/bias:0`, 'bias:0', `${name}_b_1:0`, `${name}_b:0`, `${name}/bias`, 'bias'];
  const kernel = kernelNames.map((n) => getDataset(layer, n)).find((d) => d);
  const bias = biasNames.map((n) => getDataset(layer, n)).find((d) => d);
  if (kernel && bias) return { kernel, bias };
  // 3. Anything else: the one 4-D and the one 1-D dataset in the group.
  const all = datasetsUnder(layer);
  const k4 = all.filter((d) => d.shape?.length === 4);
  const b1 = all.filter((d) => d.shape?.length === 1);
  return { kernel: kernel ?? (k4.length === 1 ? k4[0] : undefined), bias: bias ?? (b1.length === 1 ? b1[0] : undefined) };
}

function readFloat32(d: Dataset, origin: string): Float32Array {
  const v = d.value;
  if (v instanceof Float32Array) return v;
  if (v instanceof Float64Array) return Float32Array.from(v);
  throw new StudioError('BAD_MODEL', `${origin}: dataset ${d.path} is not a float32/float64 array (dtype ${JSON.stringify(d.dtype)})`);
}

export async function importKerasH5(path: string): Promise<Vgg19Weights> {
  const abs = resolve(path);
  const origin = basename(abs);
  await checkReadable(abs);
  if (!(await isHdf5File(abs))) {
    throw new StudioError('BAD_FILE', `${path} is not an HDF5 file`, 'expected the Keras VGG19 weights (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5)');
  }
  await h5wasm.ready;
  let f: InstanceType<typeof h5wasm.File>;
  try {
    f = new h5wasm.File(abs, 'r');
  } catch (e) {
    throw new StudioError('BAD_FILE', `cannot open ${path} as HDF5: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (!(typeof f.file_id === 'bigint' ? f.file_id >= 0n : Number(f.file_id) >= 0)) {
    throw new StudioError('BAD_FILE', `cannot open ${path} as HDF5 (damaged file?)`);
  }
  try {
    let root: Group = f;
    const mw = f.keys().includes('model_weights') ? f.get('model_weights') : null;
    if (isGroup(mw)) root = mw; // a full-model save
    const rootKeys = new Set(root.keys());
    const tensors: TensorMap = new Map();
    const outChannels = new Map<string, number>();
    for (const c of vgg19Convs()) {
      const gname = kerasName(c.name);
      const g = rootKeys.has(gname) ? root.get(gname) : null;
      if (!isGroup(g)) {
        throw new StudioError('BAD_MODEL', `${origin}: layer ${gname} (${c.name}) not found; is this the Keras VGG19 weights file?`);
      }
      const { kernel, bias } = findWeights(g, gname);
      if (!kernel) throw new StudioError('BAD_MODEL', `${origin}: layer ${gname} has no kernel dataset`);
      if (!bias) throw new StudioError('BAD_MODEL', `${origin}: layer ${gname} has no bias dataset`);
      const ks = kernel.shape ?? [];
      const bs = bias.shape ?? [];
      if (ks.length !== 4 || ks[0] !== 3 || ks[1] !== 3 || bs.length !== 1 || bs[0] !== ks[3]) {
        const theano = ks.length === 4 && ks[2] === 3 && ks[3] === 3 && ks[0] !== 3;
        throw new StudioError(
          'BAD_MODEL',
          `${origin}: layer ${gname} has kernel [${ks.join(',')}] and bias [${bs.join(',')}], expected [3,3,in,out] and [out]` +
            (theano ? ' (this looks like a Theano-ordered file; use the tf_dim_ordering one)' : ''),
        );
      }
      outChannels.set(c.name, ks[3]);
      tensors.set(kernelKey(c.name), { dtype: 'F32', shape: [...ks], data: readFloat32(kernel, origin) });
      tensors.set(biasKey(c.name), { dtype: 'F32', shape: [...bs], data: readFloat32(bias, origin) });
    }
    // The width of each block is the output width of its first conv; then every shape must follow.
    const widths = VGG19_BLOCKS.map((_, b) => outChannels.get(`conv${b + 1}_1`)!);
    checkVgg19Tensors(tensors, widths, origin);
    return { architecture: 'vgg19', widths, preprocessing: { ...CAFFE_PREPROCESSING, mean: [...CAFFE_PREPROCESSING.mean], std: [...CAFFE_PREPROCESSING.std] }, tensors, source: origin };
  } finally {
    f.close();
  }
}
